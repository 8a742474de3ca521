"""Hidden-unit granularity on LSTMs: a masked unit is dead, `compact` removes it exactly."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.layers import MaskedLSTM, masked_layers

X = np.random.default_rng(0).normal(size=(5, 6, 3)).astype("float32")


def _stacked():
    inputs = keras.Input((6, 3))
    x = keras.layers.LSTM(12, return_sequences=True, name="l1")(inputs)
    x = keras.layers.LSTM(8, name="l2")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def _bidirectional():
    inputs = keras.Input((6, 3))
    x = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True), name="bi")(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(6), name="bi2")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def _go_backwards():
    inputs = keras.Input((6, 3))
    x = keras.layers.LSTM(12, go_backwards=True, return_sequences=True, name="l1")(inputs)
    x = keras.layers.LSTM(8, go_backwards=True, name="l2")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def _return_sequences():
    inputs = keras.Input((6, 3))
    x = keras.layers.LSTM(12, return_sequences=True, name="l1")(inputs)
    x = keras.layers.LSTM(8, return_sequences=True, name="l2")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))  # per step


def _kill_units(model, seed=0):
    """Masks about 40% of every LSTM's hidden units (at least one, never all)."""
    rng = np.random.default_rng(seed)
    killed = {}
    for layer in masked_layers(model):
        if isinstance(layer, keras.layers.LSTMCell):
            kill = rng.random(layer.units) < 0.4
            kill[0], kill[-1] = True, False
            layer.unit_threshold.assign(np.where(kill, 1e3, 0.0).astype("float32"))
            killed[layer.name] = kill
    return killed


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.backends  # also run under JAX by .ci/run
def test_masked_unit_is_dead_in_every_output_and_state():
    layer = MaskedLSTM(8, granularity="unit", return_sequences=True, return_state=True)
    layer(X)
    dead = np.arange(8) % 3 == 0
    layer.cell.unit_threshold.assign(np.where(dead, 1e3, 0.0).astype("float32"))
    sequence, h, c = (_numpy(v) for v in layer(X * 10))
    for value in (sequence[..., dead], h[:, dead], c[:, dead]):
        np.testing.assert_array_equal(value, 0.0)
    assert np.all(np.abs(sequence[..., ~dead]) > 0)
    size, pruned = layer.cell.target_counts()
    assert (size, pruned) == (8, dead.sum())


def test_one_threshold_per_hidden_unit_over_its_whole_group():
    layer = MaskedLSTM(4, granularity="unit")
    layer(X)
    cell = layer.cell
    assert [tuple(t.shape) for t in cell.threshold_variables()] == [(4,)]
    cell.unit_threshold.assign(np.array([1e3, 0, 0, 0], "float32"))
    kernel, recurrent, bias = (_numpy(w) for w in cell.effective_weights())
    gate_columns = np.arange(16) % 4 == 0
    np.testing.assert_array_equal(kernel[:, gate_columns], 0)
    np.testing.assert_array_equal(recurrent[:, gate_columns], 0)
    np.testing.assert_array_equal(recurrent[0], 0)  # the unit's row: what reads it
    np.testing.assert_array_equal(bias[gate_columns], 0)
    assert np.all(kernel[:, ~gate_columns] != 0) and np.all(bias[5:8] != 0)  # kept units keep their f-gate bias (1)


@pytest.mark.parametrize("build", [_stacked, _bidirectional, _go_backwards, _return_sequences])
def test_compact_removes_masked_units_with_outputs_unchanged(build):
    stock = build()
    names = [layer.name for layer in stock.layers[1:-1]]
    model = tfprune.prunable(stock, granularity={name: "unit" for name in names})
    killed = _kill_units(model)
    expected = _numpy(model(X))
    small, report = tfprune.compact(model)
    np.testing.assert_allclose(_numpy(small(X)), expected, atol=1e-5)
    removed = {row.name: row.units_before - row.units_after for row in report.layers}
    for name in names:
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.Bidirectional):
            # Both halves keep one width: the half with fewer dead units sets it.
            dead = [killed[half.name].sum() for half in (layer.forward_layer, layer.backward_layer)]
            assert removed[name] == 2 * min(dead)
            assert small.get_layer(name).forward_layer.units == layer.forward_layer.units - min(dead)
        else:
            assert removed[name] == killed[name].sum()
    assert small.count_params() < model.count_params()


def test_bidirectional_other_merge_modes_stay_whole():
    inputs = keras.Input((6, 3))
    x = keras.layers.Bidirectional(keras.layers.LSTM(8), merge_mode="sum", name="bi")(inputs)
    model = tfprune.prunable(keras.Model(inputs, keras.layers.Dense(4)(x)), granularity="unit")
    _kill_units(model)
    expected = _numpy(model(X))
    small, report = tfprune.compact(model)
    np.testing.assert_allclose(_numpy(small(X)), expected, atol=1e-5)
    assert small.get_layer("bi").forward_layer.units == 8


@pytest.mark.backends  # also run under JAX by .ci/run
def test_target_sparsity_counts_hidden_units_and_logs_them():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6, 3)).astype("float32")
    y = (x[:, :, 0].sum(1) > 0).astype("int32")
    inputs = keras.Input((6, 3))
    hidden = keras.layers.LSTM(16, name="lstm")(inputs)
    model = tfprune.prunable(
        keras.Model(inputs, keras.layers.Dense(2, name="fc")(hidden)), layers=["lstm"], granularity="unit"
    )
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(
        x, y, batch_size=16, epochs=6, verbose=0,
        callbacks=[tfprune.DynamicPrune(alpha=1e-3, target_sparsity=0.5, control_every=2)],
    )  # fmt: skip
    kept = history.history["units_kept/lstm"][-1]
    assert 5 <= kept <= 9, history.history["units_kept/lstm"]  # 8 of 16 units; counting weights gives 11
    small, _ = tfprune.compact(model)
    assert small.get_layer("lstm").units == kept


def test_unit_granularity_saves_and_loads(tmp_path):
    model = tfprune.prunable(_stacked(), granularity={"l1": "unit", "l2": "unit"})
    _kill_units(model)
    path = tmp_path / "units.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.get_layer("l1").cell.granularity == "unit"
    np.testing.assert_allclose(_numpy(restored(X)), _numpy(model(X)), atol=1e-6)


def test_weight_masks_inside_the_surviving_units():
    """The combination: remove units, compact, then weight-level DST on the smaller LSTMs."""
    model = tfprune.prunable(_stacked(), granularity={"l1": "unit", "l2": "unit"})
    _kill_units(model)
    small, _ = tfprune.compact(model)
    weights = tfprune.prunable(small)
    cell = weights.get_layer("l1").cell
    cell.kernel_threshold.assign(np.full(cell.kernel_threshold.shape, 0.3, "float32"))
    assert 0 < cell.sparsity() < 1
    assert cell.units < 12
