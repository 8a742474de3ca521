"""`weight_gradient="masked"`: kept weights learn from the masked product alone, masked ones not at
all, while the thresholds still learn through the step's estimator (the paper's default,
`"estimator"`, gives masked weights a damped gradient)."""

import keras
import numpy as np
import pytest
from keras import ops

import tfprune

pytestmark = pytest.mark.backends  # also run under JAX by .ci/run

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(16, 6)).astype("float32"), RNG.normal(size=(16, 4)).astype("float32")


def _one_step(layer, kernel, threshold):
    """Kernel and threshold after one plain SGD step (no momentum) on `layer` in a model."""
    model = keras.Sequential([keras.Input((6,)), layer])
    layer.kernel.assign(kernel)
    layer.threshold.assign(threshold)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.train_on_batch(X, Y)
    return ops.convert_to_numpy(layer.kernel), ops.convert_to_numpy(layer.threshold)


def test_masked_gradient_leaves_masked_weights_alone_and_trains_kept_ones_as_a_plain_layer():
    kernel = RNG.normal(scale=0.3, size=(6, 4)).astype("float32")
    threshold = np.full(4, 0.25, "float32")
    mask = np.abs(kernel) > threshold
    assert 0 < mask.mean() < 1
    after = {
        name: _one_step(tfprune.layers.MaskedDense(4, weight_gradient=name), kernel, threshold)
        for name in ("estimator", "masked")
    }
    plain = keras.layers.Dense(4)  # the masked product as a stock layer
    model = keras.Sequential([keras.Input((6,)), plain])
    plain.kernel.assign(kernel * mask)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.train_on_batch(X, Y)

    masked_kernel, masked_threshold = after["masked"]
    estimator_kernel, estimator_threshold = after["estimator"]
    np.testing.assert_array_equal(masked_kernel[~mask], kernel[~mask])  # no gradient at all
    assert not np.allclose(estimator_kernel[~mask], kernel[~mask])  # the paper's damped gradient
    np.testing.assert_allclose(masked_kernel[mask], ops.convert_to_numpy(plain.kernel)[mask], rtol=1e-5, atol=1e-7)
    assert not np.allclose(estimator_kernel[mask], masked_kernel[mask])  # the estimator's extra term
    np.testing.assert_allclose(masked_threshold, estimator_threshold, rtol=1e-5)  # thresholds alike
    assert not np.allclose(masked_threshold, threshold)


def test_prunable_passes_it_to_every_masked_layer_and_the_config_keeps_it(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 4))
    h = keras.layers.LSTM(8, return_sequences=True, name="lstm")(inputs)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    h = keras.layers.GRU(5, name="gru")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(h))
    pruned = tfprune.prunable(model, weight_gradient="masked")
    layers = tfprune.layers.masked_layers(pruned)
    assert len(layers) == 7 and {layer.weight_gradient for layer in layers} == {"masked"}
    path = tmp_path / "m.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    assert {layer.weight_gradient for layer in tfprune.layers.masked_layers(loaded)} == {"masked"}
    default = tfprune.prunable(model)
    assert {layer.weight_gradient for layer in tfprune.layers.masked_layers(default)} == {"estimator"}
    stock = tfprune.strip(loaded)  # the option is not a stock config key
    assert not tfprune.layers.masked_layers(stock)


def test_lstm_units_masked_by_their_scores_get_no_gradient_either():
    keras.utils.set_random_seed(0)
    kernel = RNG.normal(scale=0.3, size=(2, 16)).astype("float32")
    moved = {}
    for name in ("estimator", "masked"):
        layer = tfprune.layers.MaskedLSTM(4, granularity="unit", weight_gradient=name)
        model = keras.Sequential([keras.Input((3, 2)), layer])
        cell = layer.cell
        cell.kernel.assign(kernel)
        scores = ops.convert_to_numpy(cell.unit_scores())
        cell.unit_threshold.assign(np.full(4, np.median(scores), "float32"))  # two units masked
        dead = ops.convert_to_numpy(cell.unit_mask()) == 0
        before = ops.convert_to_numpy(cell.kernel).reshape(-1, 4, 4)[:, :, dead].copy()
        model.compile(keras.optimizers.SGD(0.1), "mse")
        model.train_on_batch(RNG.normal(size=(8, 3, 2)).astype("float32"), RNG.normal(size=(8, 4)).astype("float32"))
        after = ops.convert_to_numpy(cell.kernel).reshape(-1, 4, 4)[:, :, dead]
        moved[name] = np.abs(after - before).max()
    assert moved["estimator"] > 0 and moved["masked"] == 0
