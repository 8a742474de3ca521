"""Parity can fail: the bounds are pinned, NaN never agrees, and real mismatches are caught."""

import keras
import numpy as np
import pytest

import tflite_export
import tfprune
from tflite_export import verify
from tflite_export.convert import require_integer_kernels, to_tflite
from tflite_export.inspect import read_flatbuffer


def mlp(inputs=20, hidden=16, outputs=4, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((inputs,)), keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(outputs),
    ])  # fmt: skip


# The bounds are written out, not read from `verify`: a test that derives them from the
# constants would pass with the tolerance multiplied by 1e6.
@pytest.mark.parametrize("peak, bound", [(0.5, 1e-4), (1.0, 1e-4), (10.0, 1e-3)])
def test_float_bound_is_1e_4_of_the_output_scale(peak, bound):
    expected = [np.array([[peak, -0.25 * peak], [0.1, 0.2]], "float32")]
    just_above = [expected[0] + np.float32(1.05 * bound) * np.eye(2, dtype="float32")]
    just_below = [expected[0] + np.float32(0.95 * bound) * np.eye(2, dtype="float32")]
    failed = verify.parity(expected, just_above, quantized=False)
    assert not failed.passed and failed.criterion == "max_abs_diff"
    assert failed.threshold == pytest.approx(bound)
    assert verify.parity(expected, just_below, quantized=False).passed


def test_quantized_scalar_bound_is_a_tenth_of_the_scale():
    expected = [np.linspace(-2, 2, 8, dtype="float32")[:, None]]  # one value per sample
    assert not verify.parity(expected, [expected[0] + 0.21], quantized=True).passed
    assert verify.parity(expected, [expected[0] + 0.19], quantized=True).passed


@pytest.mark.parametrize("disagreements, passed", [(0, True), (2, True), (3, False), (20, False)])
def test_quantized_classifier_needs_90_percent_argmax_agreement(disagreements, passed):
    expected = np.eye(10, dtype="float32")[np.arange(20) % 10]  # 20 samples, 10 classes
    actual = expected.copy()
    actual[:disagreements] = np.roll(actual[:disagreements], 1, axis=1)  # another class wins
    result = verify.parity([expected], [actual], quantized=True)
    assert result.criterion == "argmax_agreement"
    assert result.argmax_agreement == pytest.approx(1 - disagreements / 20)
    assert result.passed is passed


@pytest.mark.parametrize("where", ["keras", "tflite", "both"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("quantized", [False, True])
def test_a_non_finite_output_fails(where, value, quantized):
    finite = np.eye(4, dtype="float32")
    broken = finite.copy()
    broken[:, 0] = value  # argmax of NaN is 0 on both sides: "both" would agree on every sample
    keras_side = broken if where in ("keras", "both") else finite
    tflite_side = broken if where in ("tflite", "both") else finite
    result = verify.parity([keras_side], [tflite_side], quantized=quantized)
    assert not result.passed and result.criterion == "finite_outputs"
    assert result.keras_non_finite == (4 if where != "tflite" else 0)
    assert result.tflite_non_finite == (4 if where != "keras" else 0)


def test_an_exported_file_checked_against_another_model_fails(tmp_path):
    """A real Keras/TFLite difference, through the public verify functions: the file is model
    a's, the Keras outputs model b's (same architecture, other weights)."""
    a, b = mlp(seed=0), mlp(seed=1)
    tflite_export.export(a, tmp_path / "a.tflite", compact=False, latency_runs=1)
    content = (tmp_path / "a.tflite").read_bytes()
    resolver, _ = verify.choose_runtime(content)
    x = [np.random.default_rng(0).random((64, 20), dtype="float32")]
    lite = verify.tflite_outputs(content, resolver, a, x, None)
    for quantized in (False, True):
        assert verify.parity(verify.keras_outputs(a, x), lite, quantized=quantized).passed
        result = verify.parity(verify.keras_outputs(b, x), lite, quantized=quantized)
        assert not result.passed, result


def test_outputs_that_overflow_in_keras_are_refused(tmp_path):
    x = np.full((4, 20), 3e38, "float32")  # finite inputs, infinite activations
    with pytest.raises(tflite_export.ParityError, match="Keras model's outputs hold 16 non-"):
        tflite_export.export(mlp(), tmp_path / "m.tflite", verify_data=x, latency_runs=1)
    assert list(tmp_path.iterdir()) == []


def test_an_int8_file_left_float_is_refused():
    """All-NaN calibration makes the converter write float kernels without a word."""
    nan = np.full((32, 20), np.nan, "float32")
    fallback = read_flatbuffer(to_tflite(mlp(), sparse=False, quantize="int8", batch_size=None,
                                         calibration=[nan]))  # fmt: skip
    with pytest.raises(tflite_export.ConversionError, match="without integer kernels"):
        require_integer_kernels(fallback, "m.tflite")
    good = np.random.default_rng(0).random((32, 20), dtype="float32")
    require_integer_kernels(
        read_flatbuffer(to_tflite(mlp(), sparse=False, quantize="int8", batch_size=None,
                                  calibration=[good])), "m.tflite",
    )  # fmt: skip


def test_float_export_of_a_hidden_state_pruned_lstm(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((16, 12, 8), dtype="float32")
    stock = keras.Sequential([keras.Input((12, 8)), keras.layers.LSTM(16), keras.layers.Dense(3)])
    model, _ = tfprune.lstm.prune_hidden_state(stock, x, 0.5)
    (before,) = tfprune.lstm.measure(model, x).values()
    assert before["hidden_sparsity"] == pytest.approx(0.5, abs=0.1)
    (cell,) = [layer.cell for layer in model.layers if hasattr(layer, "cell")]
    counted = int(keras.ops.convert_to_numpy(cell.seen_steps))
    report = tflite_export.export(model, tmp_path / "lstm.tflite", verify_data=x, latency_runs=2)
    assert report.quantize is None and report.tensors[0].dtype == "float32"
    assert report.parity.passed and report.parity.criterion == "max_abs_diff"
    assert report.parity.samples == 16 and report.parity.max_abs_diff <= 1e-4
    # Verification ran the user's model on 16 sequences without touching its statistics.
    assert int(keras.ops.convert_to_numpy(cell.seen_steps)) == counted
