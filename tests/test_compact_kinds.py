"""compact() on the kinds of issue 17: exactly the dead filters, heads and units go, outputs stay;
kinds without a rule are named in the report."""

import keras
import numpy as np
import pytest
from keras import layers

import tfprune

DEAD = [1, 3]


def _zero_units(units_axis_of):
    """Zeroes units DEAD of the layer's own weights: `units_axis_of(weight index, shape)` gives
    the axis indexing units (None: leave the weight)."""

    def kill(layer):
        weights = layer.get_weights()
        for i, w in enumerate(weights):
            axis = units_axis_of(i, w.shape)
            if axis is not None:
                index = [slice(None)] * w.ndim
                index[axis] = DEAD
                w[tuple(index)] = 0
        layer.set_weights(weights)

    return kill


def _kill_gate_block(gates, block):
    """GRU/SimpleRNN: zero the candidate block's columns of DEAD in kernels and biases."""

    def kill(layer):
        units = layer.cell.units
        columns = [block * units + u for u in DEAD]
        weights = layer.get_weights()
        for w in weights:
            w[..., columns] = 0
        layer.set_weights(weights)

    return kill


def _kill_heads(layer):
    """Head 1: value kernel slice zero (its nonzero value bias must fold); head 3: output slice."""
    value = layer.value_dense.get_weights()
    value[0][:, 1, :] = 0
    value[1][:] = 0.5
    layer.value_dense.set_weights(value)
    output = layer.output_dense.get_weights()
    output[0][3] = 0
    layer.output_dense.set_weights(output)


_CONV_KERNEL_LAST = _zero_units(lambda i, shape: len(shape) - 1)  # conv kernel (..., filters), bias
_CONV_T = _zero_units(lambda i, shape: len(shape) - 2 if len(shape) > 1 else 0)  # (..., filters, in)

COMPACTED = {
    "Conv3D": (lambda: layers.Conv3D(5, 2), (4, 4, 4, 2), _CONV_KERNEL_LAST),
    "Conv1DTranspose": (lambda: layers.Conv1DTranspose(5, 3, strides=2), (5, 2), _CONV_T),
    "Conv2DTranspose": (lambda: layers.Conv2DTranspose(5, 3, padding="same"), (4, 4, 2), _CONV_T),
    "Conv3DTranspose": (lambda: layers.Conv3DTranspose(5, 2), (3, 3, 3, 2), _CONV_T),
    "MultiHeadAttention": (lambda: layers.MultiHeadAttention(4, 3), (5, 6), _kill_heads),
    "GRU": (lambda: layers.GRU(6, return_sequences=True), (5, 3), _kill_gate_block(3, 2)),
    "GRU-reset_before": (lambda: layers.GRU(6, reset_after=False), (5, 3), _kill_gate_block(3, 2)),
    "SimpleRNN": (lambda: layers.SimpleRNN(6), (5, 3), _kill_gate_block(1, 0)),
}
NOT_COMPACTED = {
    "SeparableConv2D": (lambda: layers.SeparableConv2D(4, 3), (6, 6, 3)),
    "EinsumDense": (lambda: layers.EinsumDense("abc,cd->abd", (5, 4)), (5, 3)),
}


def _model(make, shape):
    inputs = keras.Input(shape)
    layer = make()
    x = layer(inputs, inputs) if isinstance(layer, layers.MultiHeadAttention) else layer(inputs)
    model = keras.Model(inputs, layers.Dense(3, name="head")(layers.Flatten()(x)))
    return model, layer


@pytest.mark.parametrize("name", list(COMPACTED))
def test_dead_units_go_and_outputs_stay(name):
    make, shape, kill = COMPACTED[name]
    model, layer = _model(make, shape)
    kill(layer)
    x = np.random.default_rng(0).normal(size=(8, *shape)).astype("float32")
    small, report = tfprune.compact(model)
    removed = {row.name: row.removed for row in report.layers}
    assert removed[layer.name] == DEAD
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert report.params_after < report.params_before
    assert layer.name not in {row["layer"] for row in report.not_compacted}


@pytest.mark.parametrize("name", list(COMPACTED))
def test_live_units_stay(name):
    make, shape, _ = COMPACTED[name]
    model, layer = _model(make, shape)
    _, report = tfprune.compact(model)
    assert not {row.name: row.removed for row in report.layers}.get(layer.name)


@pytest.mark.parametrize("name", list(NOT_COMPACTED))
def test_kinds_without_a_rule_are_named(name):
    make, shape = NOT_COMPACTED[name]
    model, layer = _model(make, shape)
    _, report = tfprune.compact(model)
    (row,) = [row for row in report.not_compacted if row["layer"] == layer.name]
    assert "no compact rule" in row["reason"] and "not compacted" in str(report)


def test_head_granularity_masks_whole_heads_that_compact_removes():
    inputs = keras.Input((5, 8))
    mha = layers.MultiHeadAttention(4, 2, name="mha")
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(mha(inputs, inputs))))
    pruned = tfprune.prunable(model, granularity="unit")
    masked = pruned.get_layer("mha")
    value = masked.projections()["value_dense"]
    assert tuple(value.threshold.shape) == (4,)  # one threshold per head
    value.threshold.assign(np.array([0, 1e3, 0, 1e3], "float32"))
    mask = keras.ops.convert_to_numpy(value.mask())
    assert not mask[:, [1, 3]].any() and mask[:, [0, 2]].all()
    x = np.random.default_rng(0).normal(size=(4, 5, 8)).astype("float32")
    small, report = tfprune.compact(pruned)
    assert {row.name: row.removed for row in report.layers}["mha"] == [1, 3]
    assert small.get_layer("mha").num_heads == 2
    np.testing.assert_allclose(small.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("name", ["GRU", "GRU-reset_before", "SimpleRNN"])
def test_bias_driven_units_stay(name):
    """A unit whose candidate kernels are zero but whose candidate bias is not emits a nonzero,
    input-independent h that other units and the head read: it must stay."""
    make, shape, kill = COMPACTED[name]
    model, layer = _model(make, shape)
    kill(layer)
    weights = layer.get_weights()
    units = layer.cell.units
    block = 2 if "GRU" in name else 0
    weights[2][..., [block * units + u for u in DEAD]] = 0.3
    layer.set_weights(weights)
    x = np.random.default_rng(0).normal(size=(8, *shape)).astype("float32")
    small, report = tfprune.compact(model)
    assert not {row.name: row.removed for row in report.layers}[layer.name]
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
