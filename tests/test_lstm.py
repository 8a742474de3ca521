"""MaskedLSTM, hidden-state pruning, the tfprune.lstm pipeline and LSTM unit removal."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.layers import HiddenStatePrunedLSTM, MaskedLSTM, MaskedLSTMCell, masked_layers



def _normal(*shape, seed=0):
    """Fixed data per call, so no test depends on which tests ran before it."""
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


X = _normal(4, 6, 5)


def _randomize(layer, scale=0.5):
    rng = np.random.default_rng(1)
    for name in ("kernel", "recurrent_kernel", "bias"):
        variable = getattr(layer.cell, name)
        if variable is not None:
            variable.assign(rng.normal(size=variable.shape).astype("float32") * scale)


def _copy_lstm(source, target):
    for name in ("kernel", "recurrent_kernel", "bias"):
        if getattr(source.cell, name) is not None:
            getattr(target.cell, name).assign(getattr(source.cell, name))


def _outputs(value):
    return [np.asarray(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_lstm(x, kernel, recurrent, bias, chunk=None, threshold=None):
    """Reference LSTM; with `chunk`, zeroes chunks whose summed |h| is <= threshold."""
    batch, steps, _ = x.shape
    units = recurrent.shape[0]
    h, c, outputs, zeroed = np.zeros((batch, units)), np.zeros((batch, units)), [], []
    for t in range(steps):
        i, f, g, o = np.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        if chunk:
            chunks = h.reshape(batch, -1, chunk)
            keep = np.abs(chunks).sum(-1, keepdims=True) > threshold
            zeroed.append(~keep)
            h = (chunks * keep).reshape(batch, units)
        outputs.append(h)
    return np.stack(outputs, 1), np.array(zeroed)


def _stack(first, second, head_units=3, steps=6, features=5):
    inputs = keras.Input((steps, features))
    x = first(inputs)
    x = second(x)
    return keras.Model(inputs, keras.layers.Dense(head_units, name="head")(x))


# The layer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_sequences": True},
        {"go_backwards": True},
        {"go_backwards": True, "return_sequences": True},
        {"return_state": True, "unit_forget_bias": False},
        {"return_sequences": True, "dropout": 0.3, "recurrent_dropout": 0.3},
        {"use_bias": False, "activation": "relu"},
    ],
)
def test_fresh_masked_lstm_equals_keras_lstm(options):
    reference = keras.layers.LSTM(8, **options)
    reference(X)
    _randomize(reference)
    layer = MaskedLSTM(8, **options)
    layer(X)
    _copy_lstm(reference, layer)
    for expected, got in zip(_outputs(reference(X)), _outputs(layer(X))):
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("options", [{"dropout": 0.5}, {"recurrent_dropout": 0.5}])
def test_dropout_applies_in_training_only(options):
    layer = MaskedLSTM(8, return_sequences=True, **options)
    inference = np.asarray(layer(X))
    np.testing.assert_allclose(layer(X, training=False), inference)
    assert not np.allclose(layer(X, training=True), inference, atol=1e-3)


def test_padding_mask_stateful_and_initial_state_follow_keras():
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]] * 2, bool)
    state = [_normal(4, 8, seed=seed) for seed in (1, 2)]
    reference = keras.layers.LSTM(8, return_sequences=True, stateful=True)
    layer = MaskedLSTM(8, return_sequences=True, stateful=True)
    for each in (reference, layer):
        each(X)
    _copy_lstm(reference, layer)
    for each in (reference, layer):
        each.reset_state()
    np.testing.assert_allclose(layer(X, mask=mask), reference(X, mask=mask), atol=1e-5)
    # the second call starts from the carried states
    np.testing.assert_allclose(layer(X), reference(X), atol=1e-5)
    np.testing.assert_allclose(
        layer(X, initial_state=state), reference(X, initial_state=state), atol=1e-5
    )


def test_cell_works_in_a_plain_rnn():
    reference = keras.layers.RNN(keras.layers.LSTMCell(8))
    layer = keras.layers.RNN(MaskedLSTMCell(8))
    reference(X), layer(X)
    _copy_lstm(reference, layer)
    np.testing.assert_allclose(layer(X), reference(X), atol=1e-5)


def test_chunk_pruning_zeroes_exactly_the_chunks_under_the_threshold():
    layer = MaskedLSTM(8, hidden_state="fixed", chunk=2, hidden_threshold=0.4, return_sequences=True)
    layer(X)
    _randomize(layer, scale=0.7)
    layer.reset_hidden_state_stats()  # count only the call below
    got = np.asarray(layer(X))
    cell = layer.cell
    expected, zeroed = _numpy_lstm(
        X, *(np.asarray(v) for v in (cell.kernel, cell.recurrent_kernel, cell.bias)), 2, 0.4
    )
    assert 0.2 < zeroed.mean() < 0.8  # both kinds of chunks occur
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert layer.hidden_state_stats()["hidden_sparsity"] == pytest.approx(zeroed.mean())


def test_counters_skip_padded_steps_also_backwards():
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]] * 2, bool)
    layer = MaskedLSTM(8, hidden_state="fixed", go_backwards=True)  # threshold 0: nothing zeroed
    layer(X, mask=mask)
    stats = layer.hidden_state_stats()
    assert stats["steps"] == mask.sum()
    assert stats["hidden_sparsity"] == 0.0  # padded steps (zero outputs) are not counted


def test_recurrent_macs_skipped_counts_zero_chunks_and_zero_weights():
    layer = MaskedLSTM(4, hidden_state="fixed", chunk=2, hidden_threshold=10.0)  # all zeroed
    layer(X)
    assert layer.hidden_state_stats()["recurrent_macs_skipped"] == 1.0
    layer.cell.hidden_threshold.assign(0.0)
    layer.cell.recurrent_threshold.assign(np.r_[np.full(8, 1e3), np.zeros(8)].astype("float32"))
    layer.reset_hidden_state_stats()
    layer(X)
    stats = layer.hidden_state_stats()
    assert stats["hidden_sparsity"] == 0.0
    assert stats["recurrent_macs_skipped"] == pytest.approx(0.5)  # half the gate columns masked


# Errors ---------------------------------------------------------------------------------------


def _lstm_model():
    return _stack(keras.layers.LSTM(8, return_sequences=True, name="l1"), keras.layers.LSTM(8))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: MaskedLSTM(10, hidden_state="fixed", chunk=4), r"chunk=4 does not divide units=10"),
        (lambda: HiddenStatePrunedLSTM(6, chunk=0), r"positive integer.*chunk=0"),
        (lambda: MaskedLSTM(8, hidden_state="sometimes"), r"hidden_state='sometimes'"),
        (lambda: MaskedLSTM(8, use_cudnn=True), r"use_cudnn=True"),
        (lambda: tfprune.lstm.calibrate(_lstm_model(), X, 1.0), r"\[0, 1\).*target=1.0"),
        (lambda: tfprune.lstm.prune_hidden_state(_lstm_model(), X, -0.1), r"target=-0.1"),
        (
            lambda: tfprune.lstm.prune_hidden_state(_lstm_model(), X, 0.5, layers=["head"]),
            r"'head' \(Dense\) is not an LSTM",
        ),
        (lambda: tfprune.lstm.calibrate(_lstm_model(), X, 0.5), r"do not prune their hidden state"),
        (lambda: tfprune.lstm.magnitude_prune(_lstm_model(), 0.5), r"no MaskedLSTM"),
    ],
)
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_model_is_refused():
    with pytest.raises(TypeError, match="expects a keras.Model"):
        tfprune.lstm.measure(keras.layers.LSTM(4), X)


# Pipeline -------------------------------------------------------------------------------------


def test_calibration_reaches_its_target_on_held_out_data():
    model = _stack(keras.layers.LSTM(8, return_sequences=True), keras.layers.LSTM(8))
    data = _normal(256, 6, 5, seed=3)
    pruned, report = tfprune.lstm.prune_hidden_state(model, data[:128], target=0.6, chunk=2)
    held_out = tfprune.lstm.measure(pruned, data[128:])
    assert len(held_out) == 2
    for name, figures in held_out.items():
        assert figures["hidden_sparsity"] == pytest.approx(0.6, abs=0.05), name
        assert report[name]["hidden_threshold"] > 0
    assert masked_layers(model) == []  # the original is untouched


@pytest.mark.parametrize(
    "weights, learning_rate, weight_sparsity, hidden_sparsity",
    [
        ("magnitude", 1e-3, (0.45, 0.55), (0.4, 0.6)),
        ("dst", 0.05, (0.05, 1.0), (0.05, 1.0)),  # a fast fine-tune moves the hidden sparsity
    ],
)
def test_three_stage_prunes_weights_and_hidden_state(
    weights, learning_rate, weight_sparsity, hidden_sparsity
):
    model = keras.Sequential([keras.Input((6, 5)), keras.layers.LSTM(8), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(learning_rate), "mse")
    x, y = _normal(32, 6, 5, seed=4), _normal(32, 2, seed=5)
    pruned, report = tfprune.lstm.three_stage(
        model, (x, y), x, hidden_target=0.5, weights=weights, epochs=(1, 1, 1), batch_size=8
    )
    (figures,) = report["layers"].values()
    assert weight_sparsity[0] <= figures["weight_sparsity"] <= weight_sparsity[1]
    assert hidden_sparsity[0] <= figures["hidden_sparsity"] <= hidden_sparsity[1]
    assert set(report["history"]) == {"dense", "fine_tune"} | ({"prune"} if weights == "dst" else set())
    assert not any(w.trainable for w in pruned.layers[0].cell.threshold_variables())


def test_dst_training_grows_lstm_sparsity_and_logs_it():
    model = tfprune.prunable(
        keras.Sequential([keras.Input((6, 5)), keras.layers.LSTM(8, name="rnn"), keras.layers.Dense(2)])
    )
    model.compile(keras.optimizers.Adam(0.02), "mse")
    x, y = _normal(64, 6, 5, seed=4), _normal(64, 2, seed=5)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[tfprune.DynamicPrune(1e-3)])
    sparsity = history.history["sparsity/rnn"]
    assert sparsity[-1] > sparsity[0] > 0
    assert history.history["hidden_sparsity/rnn"] == [0.0, 0.0, 0.0]
    assert "recurrent_macs_skipped/rnn" in history.history
    rows = {(row.layer, row.weight) for row in tfprune.sparsity_report(model).rows}
    assert {("rnn", "kernel"), ("rnn", "recurrent_kernel")} <= rows  # the cell carries the name


def test_trained_hidden_threshold_rises_under_the_penalty():
    layer = MaskedLSTM(8, prune_weights=False, hidden_state="trained", name="rnn")
    model = keras.Sequential([keras.Input((6, 5)), layer, keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    x, y = _normal(64, 6, 5, seed=4), _normal(64, 2, seed=5)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[tfprune.DynamicPrune(1e-2)])
    assert float(layer.cell.hidden_threshold) > 0.1
    assert history.history["hidden_sparsity/rnn"][-1] > 0
    assert history.history["sparsity/rnn"][-1] == 0.0  # weight thresholds stayed frozen at 0


# Conversion, saving ---------------------------------------------------------------------------


def _bidirectional_model():
    inputs = keras.Input((6, 5))
    x = keras.layers.LSTM(8, return_sequences=True, name="l1")(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4), name="bi")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    bi = model.get_layer("bi")
    for layer in (model.get_layer("l1"), bi.forward_layer, bi.backward_layer):
        _randomize(layer)
    return model


def test_prunable_and_strip_keep_outputs_incl_bidirectional():
    model = _bidirectional_model()
    masked = tfprune.prunable(model)
    bi = masked.get_layer("bi")
    assert type(masked.get_layer("l1")) is MaskedLSTM
    assert type(bi.forward_layer) is MaskedLSTM and type(bi.backward_layer) is MaskedLSTM
    assert bi.backward_layer.go_backwards
    np.testing.assert_allclose(masked.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-5)

    for cell in (layer for layer in masked_layers(masked) if isinstance(layer, MaskedLSTMCell)):
        cell.kernel_threshold.assign(np.full(cell.kernel_threshold.shape, 0.3, "float32"))
    stripped = tfprune.strip(masked)
    assert type(stripped.get_layer("l1")) is keras.layers.LSTM
    assert type(stripped.get_layer("bi").forward_layer) is keras.layers.LSTM
    assert masked_layers(stripped) == []
    expected = masked.predict(X, verbose=0)
    assert not np.allclose(expected, model.predict(X, verbose=0), atol=1e-3)  # masks matter
    np.testing.assert_allclose(stripped.predict(X, verbose=0), expected, atol=1e-5)


def test_strip_keeps_hidden_state_pruning():
    pruned, _ = tfprune.lstm.prune_hidden_state(_bidirectional_model(), X, 0.5, tolerance=0.1)
    stripped = tfprune.strip(pruned)
    layer = stripped.get_layer("l1")
    assert type(layer) is HiddenStatePrunedLSTM
    assert type(stripped.get_layer("bi").forward_layer) is HiddenStatePrunedLSTM
    assert layer.get_config()["hidden_threshold"] == pytest.approx(
        float(pruned.get_layer("l1").cell.hidden_threshold)
    )
    np.testing.assert_allclose(stripped.predict(X, verbose=0), pruned.predict(X, verbose=0), atol=1e-5)


def test_keras_file_round_trip(tmp_path):
    layer = MaskedLSTM(8, hidden_state="fixed", chunk=2, hidden_threshold=0.3, granularity="unit")
    model = keras.Sequential([keras.Input((6, 5)), layer, keras.layers.Dense(2)])
    layer.cell.unit_threshold.assign(np.linspace(0, 0.2, 8).astype("float32"))
    expected = model.predict(X, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    restored = loaded.layers[0]
    assert restored.get_config() == layer.get_config()
    np.testing.assert_allclose(restored.cell.unit_threshold, layer.cell.unit_threshold)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), expected, atol=1e-6)


# Unit removal ---------------------------------------------------------------------------------


def _model_with_dead_units():
    first = MaskedLSTM(8, hidden_state="fixed", chunk=4, hidden_threshold=0.01, return_sequences=True)
    second = MaskedLSTM(8, name="second")
    model = _stack(first, second)
    _randomize(first), _randomize(second)
    bias = np.array(first.cell.bias)
    bias[3 * 8 + 4 : 4 * 8] = -30.0  # output gate shut: units 4-7 stay under the threshold
    first.cell.bias.assign(bias)
    cell = second.cell
    columns = [g * 8 + u for g in range(4) for u in (2, 5)]
    threshold = np.zeros(32, "float32")
    threshold[columns] = 1e3  # every gate column of units 2 and 5 masked
    cell.kernel_threshold.assign(threshold), cell.recurrent_threshold.assign(threshold)
    bias = np.array(cell.bias)
    bias[2 * 8 + 2], bias[2 * 8 + 5] = 0.0, 0.5  # unit 2 stays at 0; unit 5 follows its bias
    cell.bias.assign(bias)
    return model


def test_compact_with_data_removes_never_active_units():
    model = _model_with_dead_units()
    data = _normal(32, 6, 5, seed=3)
    small, report = tfprune.compact(model, data=data)
    rows = {row.name: row for row in report.layers}
    first = rows[model.layers[1].name]
    assert first.removed == [4, 5, 6, 7] and first.by_data == [4, 5, 6, 7]
    assert rows["second"].removed == [2] and rows["second"].by_data == []
    assert small.layers[1].cell.units == 4 and small.get_layer("second").cell.units == 7
    assert small.get_layer("second").cell.kernel.shape == (4, 28)
    assert small.get_layer("head").kernel.shape == (7, 3)
    np.testing.assert_allclose(small.predict(data, verbose=0), model.predict(data, verbose=0), atol=1e-5)


def test_compact_without_data_uses_structure_only():
    model = _model_with_dead_units()
    model.predict(_normal(32, 6, 5, seed=3), verbose=0)  # counters filled, but no data given
    _, report = tfprune.compact(model)
    rows = {row.name: row for row in report.layers}
    assert rows[model.layers[1].name].removed == []
    assert rows["second"].removed == [2]


def test_compact_shrinks_lstms():
    inputs = keras.Input((6, 5))
    a = keras.layers.LSTM(8, return_sequences=True, name="a")
    b = HiddenStatePrunedLSTM(8, chunk=2, hidden_threshold=0.3, name="b")
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(b(a(inputs))))
    _randomize(a), _randomize(b)
    kernel, recurrent, bias = (np.array(v) for v in (a.cell.kernel, a.cell.recurrent_kernel, a.cell.bias))
    kernel[:, 17], recurrent[:, 17], bias[17] = 0, 0, 0  # a's unit 1 is always 0 ...
    recurrent[6] = 0  # ... and a's unit 6 is read by nobody once b ignores it
    a.cell.kernel.assign(kernel), a.cell.recurrent_kernel.assign(recurrent), a.cell.bias.assign(bias)
    b_kernel, b_recurrent = np.array(b.cell.kernel), np.array(b.cell.recurrent_kernel)
    b_kernel[6] = 0
    b_recurrent[2:5] = 0  # units 2, 3 (one chunk) and 4 (chunk-mate of 5) unread ...
    head_kernel = np.array(model.get_layer("head").kernel)
    head_kernel[2:5] = 0
    b.cell.kernel.assign(b_kernel), b.cell.recurrent_kernel.assign(b_recurrent)
    model.get_layer("head").kernel.assign(head_kernel)

    small, report = tfprune.compact(model)
    removed = {row.name: row.removed for row in report.layers}
    assert removed["a"] == [1, 6]
    assert removed["b"] == [2, 3]  # ... but 4 stays: its chunk-mate 5 is read
    assert small.get_layer("b").cell.kernel.shape == (6, 24)
    np.testing.assert_allclose(small.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-5)


def test_sparsity_report_names_stock_lstm_rows_after_their_layers():
    model = keras.Sequential([
        keras.Input((6, 5)), keras.layers.LSTM(8, return_sequences=True, name="l1"),
        keras.layers.LSTM(4, name="l2"),
    ])  # fmt: skip
    rows = {f"{r.layer}/{r.weight}" for r in tfprune.sparsity_report(model).rows}
    assert rows == {"l1/kernel", "l1/recurrent_kernel", "l2/kernel", "l2/recurrent_kernel"}


def _quiet_chunk_model():
    """An LSTM(16) whose units 8-11 (one chunk) have their output gate shut, so h stays ~0."""
    inputs = keras.Input((6, 5))
    lstm = keras.layers.LSTM(16, name="lstm")
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(lstm(inputs)))
    _randomize(lstm)
    bias = np.array(lstm.cell.bias)
    bias[3 * 16 + 8 : 3 * 16 + 12] = -30.0
    lstm.cell.bias.assign(bias)
    return model


def test_remove_inactive_units_within_the_budget():
    x = _normal(64, 6, 5, seed=4)
    pruned, _ = tfprune.lstm.prune_hidden_state(_quiet_chunk_model(), x, 0.3, tolerance=0.05)
    y = np.argmax(pruned.predict(x, verbose=0), axis=-1)  # accuracy before: 1.0
    small, report = tfprune.lstm.remove_inactive_units(pruned, x, y, max_accuracy_drop=0.0)
    assert report["accuracy_before"] == 1.0 and report["accuracy_after"] == 1.0
    before, after = report["units"]["lstm"]
    assert before == 16 and after <= 12 and after % 4 == 0  # whole chunks, the quiet one included
    assert np.mean(np.argmax(small.predict(x, verbose=0), axis=-1) == y) == 1.0
    assert small.get_layer("head").kernel.shape == (after, 4)

    generous, loose = tfprune.lstm.remove_inactive_units(pruned, x, y, max_accuracy_drop=0.5)
    assert loose["units"]["lstm"][1] <= after and loose["accuracy_after"] >= 0.5


@pytest.mark.parametrize("bad", [-0.1, 1.0, "1%"])
def test_remove_inactive_units_refuses_a_bad_budget(bad):
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        tfprune.lstm.remove_inactive_units(_quiet_chunk_model(), X, [0] * len(X), bad)


def test_remove_inactive_units_needs_hidden_state_pruning():
    with pytest.raises(ValueError, match="prune_hidden_state"):
        tfprune.lstm.remove_inactive_units(_quiet_chunk_model(), X, [0] * len(X))
