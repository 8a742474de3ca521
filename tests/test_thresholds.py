"""`thresholds="layer"`: one DST threshold per kernel instead of one per output unit."""

import keras
import numpy as np
import pytest
from keras import ops

import tfprune
from tfprune.layers import MaskedDense

pytestmark = pytest.mark.backends  # also run under JAX by .ci/run


def test_a_layer_threshold_keeps_the_kernel_s_largest_weights_wherever_they_are():
    layer = MaskedDense(3, thresholds="layer")
    layer.build((None, 10))
    layer.kernel.assign(np.arange(1, 31, dtype="float32").reshape(10, 3) / 100)  # |W| 0.01 .. 0.30
    layer.threshold.assign(np.array([0.3, 0.0, 0.15], "float32"))  # the layer's threshold: 0.15
    kept = ops.convert_to_numpy(layer.mask())
    np.testing.assert_array_equal(kept, ops.convert_to_numpy(layer.kernel) > 0.15)
    assert kept.sum(axis=0).tolist() == [5, 5, 5]  # per-unit thresholds would keep 0, 10 and 5


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(32, activation="relu", name="d1"),
            keras.layers.Dense(16, activation="relu", name="d2"),
            keras.layers.Dense(3, name="d3"),
        ]
    )


def test_dst_moves_a_layer_s_thresholds_together_and_the_file_keeps_them(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(256, 20)).astype("float32"), rng.integers(0, 3, 256)
    model = tfprune.prunable(_mlp(), thresholds="layer")
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[tfprune.DynamicPrune(alpha=5e-2)])
    for layer in tfprune.layers.masked_layers(model):
        threshold = ops.convert_to_numpy(layer.threshold)
        assert threshold[0] > 0 and np.ptp(threshold) < 1e-6, (layer.name, threshold)
    assert tfprune.layers.base.sparsity_of(tfprune.layers.masked_layers(model)) > 0.2
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert {layer.thresholds for layer in tfprune.layers.masked_layers(loaded)} == {"layer"}
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(tfprune.strip(model).predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_recurrent_layers_and_attention_take_layer_thresholds():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 4))
    h = keras.layers.LSTM(8, return_sequences=True, name="lstm")(inputs)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    model = keras.Model(inputs, keras.layers.GRU(5, name="gru")(h))
    pruned = tfprune.prunable(model, thresholds="layer")
    layers = tfprune.layers.masked_layers(pruned)
    assert len(layers) == 6 and {layer.thresholds for layer in layers} == {"layer"}  # 2 cells, 4 projections
    cell = pruned.get_layer("lstm").cell
    cell.kernel_threshold.assign(np.linspace(0, 0.2, 32).astype("float32"))  # mean 0.1
    kernel = ops.convert_to_numpy(cell.kernel)
    np.testing.assert_array_equal(ops.convert_to_numpy(cell.mask("kernel")), np.abs(kernel) > 0.1)
    rebuilt = keras.Model.from_config(pruned.get_config())
    assert {layer.thresholds for layer in tfprune.layers.masked_layers(rebuilt)} == {"layer"}
