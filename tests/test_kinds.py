"""Every layer kind added for issue 17, one table: Keras' own layer harness (float32 and mixed
precision), prunable/strip with equal outputs, DST training, .keras round trip, TFLite export
with parity (all kinds in one model, so the converter runs once).
"""

import dataclasses

import keras
import numpy as np
import pytest
from keras import layers
from keras.src import testing

import tfprune
import tflite_export
from tfprune.layers import (
    MaskedConv1DTranspose,
    MaskedConv2DTranspose,
    MaskedConv3D,
    MaskedConv3DTranspose,
    MaskedEinsumDense,
    MaskedEmbedding,
    MaskedGRU,
    MaskedMultiHeadAttention,
    MaskedSeparableConv1D,
    MaskedSeparableConv2D,
    MaskedSimpleRNN,
    masked_layers,
)
from tfprune.layers.base import sparsity_of


@dataclasses.dataclass(frozen=True)
class Kind:
    masked: type
    stock: type
    kwargs: dict
    shape: tuple  # one sample
    thresholds: int  # trainable threshold weights the twin adds
    state: int = 3  # non-trainable weights the twin adds (alpha, integral, resets per mask owner)
    dtype: str = "float32"

    @property
    def id(self):
        return self.stock.__name__


KINDS = [
    Kind(MaskedConv3D, layers.Conv3D, dict(filters=3, kernel_size=2), (4, 4, 4, 2), 1),
    Kind(MaskedConv1DTranspose, layers.Conv1DTranspose, dict(filters=3, kernel_size=3, strides=2), (5, 2), 1),
    Kind(MaskedConv2DTranspose, layers.Conv2DTranspose, dict(filters=3, kernel_size=3, padding="same"), (4, 4, 2), 1),
    Kind(MaskedConv3DTranspose, layers.Conv3DTranspose, dict(filters=2, kernel_size=2), (3, 3, 3, 2), 1),
    Kind(MaskedSeparableConv1D, layers.SeparableConv1D, dict(filters=4, kernel_size=3, depth_multiplier=2), (7, 3), 2),
    Kind(MaskedSeparableConv2D, layers.SeparableConv2D, dict(filters=4, kernel_size=3), (6, 6, 3), 2),
    Kind(MaskedEmbedding, layers.Embedding, dict(input_dim=20, output_dim=6), (5,), 1, dtype="int32"),
    Kind(MaskedEinsumDense, layers.EinsumDense, dict(equation="abc,cde->abde", output_shape=(5, 2, 3), bias_axes="de"), (5, 4), 1),
    Kind(MaskedMultiHeadAttention, layers.MultiHeadAttention, dict(num_heads=2, key_dim=3), (5, 4), 4, state=12),
    Kind(MaskedGRU, layers.GRU, dict(units=8), (5, 3), 2, state=6),
    Kind(MaskedSimpleRNN, layers.SimpleRNN, dict(units=6), (5, 3), 2),
]  # fmt: skip
IDS = [kind.id for kind in KINDS]


def _inputs(kind, n, seed=0):
    rng = np.random.default_rng(seed)
    if kind.dtype == "int32":
        return rng.integers(0, kind.kwargs["input_dim"], size=(n, *kind.shape)).astype("int32")
    return rng.normal(size=(n, *kind.shape)).astype("float32")


def _model(kind):
    """Input -> the stock layer (named "kind") -> Flatten -> Dense(3), with nonzero biases (a
    twin that dropped its bias would otherwise give the same outputs)."""
    inputs = keras.Input(kind.shape, dtype=kind.dtype)
    layer = kind.stock(**kind.kwargs, name="kind")
    x = layer(inputs, inputs) if kind.stock is layers.MultiHeadAttention else layer(inputs)
    model = keras.Model(inputs, layers.Dense(3, name="head")(layers.Flatten()(x)))
    rng = np.random.default_rng(0)
    for weight in model.weights:
        if weight.path.endswith("bias"):
            weight.assign(rng.uniform(0.1, 0.5, weight.shape).astype(weight.dtype))
    return model


def _median_thresholds(layer):
    """Thresholds at each kernel's median |w|: about half of every masked kernel goes."""
    for owner in masked_layers(layer):
        for kernel, threshold in owner.MASKED.items():
            median = np.median(np.abs(keras.ops.convert_to_numpy(getattr(owner, kernel))))
            variable = getattr(owner, threshold)
            variable.assign(np.full(variable.shape, median, "float32"))


class _Harness(testing.TestCase):
    def runTest(self):
        pass


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_keras_layer_harness(kind):
    """Keras' run_layer_test: build, call, symbolic call, training, serialisation, mixed float16."""
    stock = kind.stock(**kind.kwargs)
    shape = (2, *kind.shape)
    if kind.stock is layers.MultiHeadAttention:
        stock(np.zeros(shape, "float32"), np.zeros(shape, "float32"))
        shape = {"query_shape": shape, "value_shape": shape}
    else:
        stock(np.zeros(shape, kind.dtype))
    _Harness().run_layer_test(
        kind.masked,
        init_kwargs=kind.kwargs,
        input_shape=shape,
        input_dtype=None if isinstance(shape, dict) else kind.dtype,
        expected_num_trainable_weights=len(stock.trainable_weights) + kind.thresholds,
        expected_num_non_trainable_weights=len(stock.non_trainable_weights) + kind.state,
        expected_num_losses=kind.thresholds,  # one alpha * sum(exp(-t)) penalty per threshold
        # As Keras' own tests: its training check feeds a dict that MHA's call cannot take, and
        # integer inputs have no gradient; test_trains_saves_and_exports trains both instead.
        run_training_check=kind.dtype == "float32" and not isinstance(shape, dict),
        run_mixed_precision_check=True,
    )


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_prunable_and_strip_keep_outputs(kind):
    model = _model(kind)
    x = _inputs(kind, 4)
    pruned = tfprune.prunable(model)
    assert type(pruned.get_layer("kind")) is kind.masked
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    _median_thresholds(pruned.get_layer("kind"))
    assert sparsity_of(masked_layers(pruned.get_layer("kind"))) > 0.3
    stripped = tfprune.strip(pruned)
    assert type(stripped.get_layer("kind")) is kind.stock
    assert not masked_layers(stripped)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)
    report = tfprune.sparsity_report(stripped)
    assert any(r.layer.startswith("kind") or r.layer == "query" for r in report.rows)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_trains_to_sparsity_and_round_trips_as_keras_file(kind, tmp_path):
    x = _inputs(kind, 64)
    y = (np.arange(64) % 3).astype("int32")
    model = tfprune.prunable(_model(kind))
    model.compile(keras.optimizers.Adam(0.02), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[tfprune.DynamicPrune(alpha=1e-2)])
    assert sparsity_of(masked_layers(model.get_layer("kind"))) > 0

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("kind")) is kind.masked
    for before, after in zip(masked_layers(model.get_layer("kind")), masked_layers(loaded.get_layer("kind"))):
        for threshold in before.MASKED.values():
            np.testing.assert_array_equal(getattr(after, threshold), getattr(before, threshold))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_every_kind_exports_to_tflite_with_parity(tmp_path):
    """One model with every kind on its own input (one conversion instead of eleven)."""
    inputs, branches, samples = [], [], []
    for i, kind in enumerate(KINDS):
        tensor = keras.Input(kind.shape, dtype=kind.dtype, name=f"in{i}")
        layer = kind.stock(**kind.kwargs, name=f"kind{i}")
        x = layer(tensor, tensor) if kind.stock is layers.MultiHeadAttention else layer(tensor)
        inputs.append(tensor)
        branches.append(layers.Flatten()(x))
        samples.append(_inputs(kind, 4, seed=i))
    model = tfprune.prunable(keras.Model(inputs, layers.Dense(3)(layers.Concatenate()(branches))))
    for i in range(len(KINDS)):
        _median_thresholds(model.get_layer(f"kind{i}"))
    report = tflite_export.export(model, tmp_path / "kinds.tflite", verify_data=samples, latency_runs=1)
    assert report.parity.passed and (tmp_path / "kinds.tflite").exists()
    assert report.nonzero_params < report.params  # the masks reached the file as zeros


def test_wrappers_convert_what_they_hold():
    inputs = keras.Input((5, 3))
    x = layers.Bidirectional(layers.GRU(4, return_sequences=True), name="bi")(inputs)
    x = layers.TimeDistributed(layers.Dense(6), name="td")(x)
    model = keras.Model(inputs, layers.SimpleRNN(3, name="rnn")(x))
    x_in = _inputs(Kind(None, layers.GRU, {}, (5, 3), 0), 4)
    pruned = tfprune.prunable(model)
    assert type(pruned.get_layer("bi").forward_layer) is MaskedGRU
    assert type(pruned.get_layer("td").layer) is tfprune.layers.MaskedDense
    np.testing.assert_allclose(pruned.predict(x_in, verbose=0), model.predict(x_in, verbose=0), atol=1e-5)
    stripped = tfprune.strip(pruned)
    assert type(stripped.get_layer("bi").backward_layer) is layers.GRU
    assert type(stripped.get_layer("td").layer) is layers.Dense
    only_dense = tfprune.prunable(model, layers=[layers.Dense])  # selects inside the wrapper
    assert [type(l).__name__ for l in masked_layers(only_dense)] == ["MaskedDense"]


def test_prunable_names_the_layers_it_leaves_dense():
    inputs = keras.Input((6, 4))
    x = layers.Dense(4, name="fc")(inputs)
    x = layers.LayerNormalization(name="norm")(x)
    x = layers.PReLU(name="prelu")(x)
    x = layers.TimeDistributed(layers.PReLU(), name="td_prelu")(x)
    model = keras.Model(inputs, layers.Conv1D(2, 3, name="conv")(x))
    with pytest.warns(UserWarning, match=r"left 2 layer\(s\).*prelu \(PReLU\); td_prelu \(TimeDistributed\(PReLU\)\)"):
        pruned = tfprune.prunable(model, layers=["fc"])
    rows = {row.layer: row for row in tfprune.left_dense(pruned)}
    assert set(rows) == {"norm", "prelu", "td_prelu", "conv"}
    assert rows["conv"].reason == "not selected by layers=" and not rows["conv"].unsupported
    assert "normalisation" in rows["norm"].reason and not rows["norm"].unsupported
    assert rows["prelu"].unsupported and "no masked twin for PReLU" in rows["prelu"].reason


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: MaskedConv2DTranspose(2, 3, granularity=(1, 4)), "no block-sparse TRANSPOSE_CONV"),
        (lambda: MaskedSeparableConv2D(2, 3, granularity=(1, 4)), "no block-sparse depthwise"),
        (lambda: MaskedEmbedding(5, 4, granularity=(1, 4)), "GATHER"),
        (lambda: MaskedEinsumDense("ab,bc->ac", (4,), granularity=(1, 4)), "use a Dense layer"),
        (lambda: MaskedEinsumDense("ab,bc->ac", (4,), unit_axes=(2,)), r"unit_axes must name axes of the 2-d"),
        (lambda: MaskedMultiHeadAttention(2, 2, granularity="head"), "Received: granularity='head'"),
        (lambda: MaskedGRU(6, hidden_state="fixed", chunk=4), r"chunk=4 does not divide units=6"),
        (lambda: MaskedGRU(4, use_cudnn=True), "cannot run on cuDNN"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_embedding_thresholds_are_per_output_dimension():
    layer = MaskedEmbedding(10, 4, granularity="unit")
    layer(np.array([[1, 2]]))
    assert tuple(layer.threshold.shape) == (4,)
    layer.threshold.assign(np.array([0, 1e3, 0, 0], "float32"))
    mask = keras.ops.convert_to_numpy(layer.mask("embeddings"))
    assert not mask[:, 1].any() and mask[:, [0, 2, 3]].all()  # dimension 1 off for every token


def test_gru_hidden_state_pruning_zeroes_chunks_and_strips_to_its_inference_layer():
    x = _inputs(Kind(None, layers.GRU, {}, (6, 3), 0), 8)
    inputs = keras.Input((6, 3))
    model = keras.Model(inputs, MaskedGRU(8, hidden_state="fixed", chunk=4, hidden_threshold=1.0, return_sequences=True, name="gru")(inputs))
    h = model.predict(x, verbose=0).reshape(8, 6, 2, 4)
    kept = np.abs(h).sum(-1)
    assert ((kept == 0) | (kept > 1.0)).all() and (kept == 0).any()
    stats = model.get_layer("gru").hidden_state_stats()
    assert stats["hidden_sparsity"] == pytest.approx(np.mean(kept == 0))
    stripped = tfprune.strip(model)
    assert type(stripped.get_layer("gru")) is tfprune.layers.HiddenStatePrunedGRU
    np.testing.assert_allclose(stripped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_einsum_unit_axes_survive_config_save_and_strip(tmp_path):
    inputs = keras.Input((5, 4))
    layer = MaskedEinsumDense("abc,cde->abde", (5, 2, 3), unit_axes=(1,), name="kind")
    model = keras.Model(inputs, layer(inputs))
    assert tuple(layer.threshold.shape) == (2,)
    assert MaskedEinsumDense.from_config(layer.get_config()).unit_axes("kernel", (4, 2, 3)) == (1,)
    model.save(tmp_path / "m.keras")
    assert tuple(keras.saving.load_model(tmp_path / "m.keras").get_layer("kind").threshold.shape) == (2,)
    assert type(tfprune.strip(model).get_layer("kind")) is layers.EinsumDense
