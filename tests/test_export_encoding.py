"""The default export of ordinary LSTM shapes passes parity: per-tensor encodings TFLite gets right."""

import keras
import numpy as np
import pytest

import tfprune
import tflite_export
from tflite_export.encoding import densify_misaligned_blocks
from tflite_export.convert import to_tflite
from tflite_export.inspect import read_flatbuffer

STEPS = 10


def _pruned_lstm(features, units, hidden_state):
    """A DST-style LSTM model: 80% of both kernels masked, optionally hidden-state pruned."""
    rng = np.random.default_rng(features * 1000 + units)
    inputs = keras.Input((STEPS, features))
    outputs = keras.layers.Dense(3)(keras.layers.LSTM(units, name="lstm")(inputs))
    model = tfprune.prunable(keras.Model(inputs, outputs), layers=["lstm"])
    cell = model.get_layer("lstm").cell
    for kernel_name, threshold_name in cell.MASKED.items():
        kernel = np.abs(np.asarray(getattr(cell, kernel_name)))
        threshold = getattr(cell, threshold_name)
        threshold.assign(np.full(threshold.shape, np.quantile(kernel, 0.8), "float32"))
    x = rng.normal(size=(48, STEPS, features)).astype("float32")
    if hidden_state:
        model, _ = tfprune.lstm.prune_hidden_state(model, x, 0.3, tolerance=0.05)
    return model, x


@pytest.mark.parametrize(
    "features, units, hidden_state, quantize",
    [
        (1, 16, True, None),
        (1, 16, True, "dynamic"),
        (3, 30, False, "dynamic"),
        (28, 123, False, None),
    ],  # every shape, and float and int8 weights (8 s each: not every pair)
)
def test_default_export_of_ordinary_lstms_passes_parity(tmp_path, features, units, hidden_state, quantize):
    model, x = _pruned_lstm(features, units, hidden_state)
    report = tflite_export.export(model, tmp_path / "m.tflite", quantize=quantize, verify_data=x[:16])
    assert report.parity.passed
    if features == 1:  # the 1-wide input kernel is the tensor the converter gets wrong
        assert report.reencoded and report.reencoded[0]["shape"][-1] == 1
    lstm_tensors = [t for t, k in zip(report.tensors, report.layers) if k.layer == "lstm"]
    assert lstm_tensors and all(t.encoding for t in lstm_tensors)
    for tensor in lstm_tensors:  # every block-encoded LSTM tensor is on TFLite's grid
        if tensor.block_shape:
            assert all(d % b == 0 for d, b in zip(tensor.shape, tensor.block_shape))
    text = str(report)
    assert all(t.name[-40:] in text for t in lstm_tensors)
    for fixed in report.reencoded:  # each tensor stored dense says why
        assert fixed["name"][-40:] in text and "does not divide" in fixed["reason"]


def test_misaligned_block_tensors_are_taken_dense_from_the_dense_conversion():
    model, x = _pruned_lstm(1, 16, hidden_state=False)
    stripped = tfprune.strip(model)
    sparse = to_tflite(stripped, sparse=True, quantize=None, batch_size=1, calibration=None)
    dense = to_tflite(stripped, sparse=False, quantize=None, batch_size=1, calibration=None)
    misaligned = [
        t for t in read_flatbuffer(sparse).tensors
        if t.block_shape and any(d % b for d, b in zip(t.shape, t.block_shape))
    ]
    assert misaligned, "the converter no longer block-encodes a 1-wide input: drop this module"
    fixed, rewritten = densify_misaligned_blocks(sparse, dense)
    assert [r.shape for r in rewritten] == [t.shape for t in misaligned]
    assert "1-wide axis" in rewritten[0].reason
    after = {t.name: t for t in read_flatbuffer(fixed).tensors}
    assert all(after.get(t.name) is None or after[t.name].encoding == "dense" for t in misaligned)
    assert len(fixed) < len(dense)  # the other tensors stay sparse


def test_report_says_what_hidden_state_pruning_skips_and_that_the_file_does_not(tmp_path):
    model, x = _pruned_lstm(1, 16, hidden_state=True)
    expected = tfprune.lstm.measure(model, x[:16])["lstm"]
    seen_before = int(model.get_layer("lstm").cell.seen_steps.numpy())
    report = tflite_export.export(model, tmp_path / "m.tflite", verify_data=x[:16])
    figures = report.hidden_state["lstm"]
    assert figures["hidden_sparsity"] == pytest.approx(expected["hidden_sparsity"])
    assert figures["recurrent_macs_skipped"] == pytest.approx(expected["recurrent_macs_skipped"])
    assert 0 < figures["recurrent_macs_skipped"] and figures["skipped_in_file"] is False
    assert "NOT skipped" in str(report) and "tfprune.compact(model, data=" in str(report)
    assert int(model.get_layer("lstm").cell.seen_steps.numpy()) == seen_before


def test_hidden_state_figures_leave_an_unmasked_models_counters_alone(tmp_path):
    model, x = _pruned_lstm(1, 16, hidden_state=True)
    plain = tfprune.strip(model)
    tfprune.lstm.measure(plain, x[:5])
    before = plain.get_layer("lstm").cell.kept_steps.numpy().copy()
    report = tflite_export.export(plain, tmp_path / "m.tflite", compact=False, verify_data=x[:16])
    assert report.hidden_state["lstm"]["hidden_sparsity"] > 0
    np.testing.assert_array_equal(plain.get_layer("lstm").cell.kept_steps.numpy(), before)


@pytest.mark.parametrize("features, units, quantize", [(1, 123, None), (3, 30, "dynamic"), (28, 123, "dynamic")])
def test_fused_export_of_ordinary_lstms_passes_parity_and_names_each_gate(tmp_path, features, units, quantize):
    model, x = _pruned_lstm(features, units, hidden_state=False)
    report = tflite_export.export(
        model, tmp_path / "m.tflite", quantize=quantize, verify_data=x[:16], recurrent="fused"
    )
    assert report.parity.passed and report.operators["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1
    gates = [k for k in report.layers if k.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    # a (units, 1) input gate has one long axis and is no kernel: only the recurrent gates remain
    assert len(gates) == (4 if features == 1 else 8) and {k.layer for k in gates} == {"lstm"}
    assert all(k.encoding == "dense" and "no sparse weights" in k.reason for k in gates)
    text = str(report)
    assert all(k.tensor[-40:] in text for k in gates)
