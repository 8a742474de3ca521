"""Stateful LSTMs: the file carries the state between invokes as Keras does, parity is checked
over a sequence of calls, and exporting, calibrating and measuring leave the user's model state as
it was."""

import numpy as np
import pytest

import keras
import tflite_export
from ai_edge_litert.interpreter import Interpreter

import tfprune
from tfprune.stateful import measuring_predict


def _model(batch=1):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((5, 3), batch_size=batch), keras.layers.LSTM(8, stateful=True), keras.layers.Dense(2)]
    )


def _x(samples):
    return np.random.default_rng(1).normal(size=(samples, 5, 3)).astype("float32")


def test_the_file_continues_the_sequence_as_the_stateful_model_does(tmp_path):
    model = _model()
    model(_x(1))  # the user's model is mid-sequence: its state is not zero
    state = [np.array(v) for v in model.layers[0].states]
    path = tmp_path / "m.tflite"
    report = tflite_export.export(model, path, latency_runs=1)  # default verification: 16 calls in a row
    assert report.batch_size == 1 and report.parity.samples == 16
    for before, after in zip(state, model.layers[0].states):
        np.testing.assert_array_equal(before, after)  # export gave the model its state back

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    model.layers[0].reset_states()
    for x in _x(4):
        interpreter.set_tensor(given["index"], x[None])
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(taken["index"]), model(x[None]), atol=1e-5)


def test_a_batch_the_state_is_not_kept_for_is_refused_up_front(tmp_path):
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match="keep state for batch 2.*pass batch_size=2"):
        tflite_export.export(_model(batch=2), path, batch_size=1)
    assert not path.exists()
    report = tflite_export.export(_model(batch=2), path, verify_data=_x(6), latency_runs=1, recurrent="loop")
    assert report.batch_size == 2 and report.parity.passed


def _states(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.get_layer("lstm").states]


def test_a_stateful_hidden_state_pruned_lstm_calibrates_and_reports_from_zero_state(tmp_path):
    """Calibrating, measuring and exporting run the model on data; a stateful layer would take it
    as the next part of its sequence (and refuse any batch but its own). Each runs from zero state
    at the layer's batch, and the user's model keeps its place in the sequence."""
    x = _x(16)
    masked = tfprune.prunable(_model(), layers=["lstm"])
    masked(x[:1])  # mid-sequence: the state is not zero
    state = _states(masked)
    model, _ = tfprune.lstm.prune_hidden_state(masked, x, 0.3, tolerance=0.05)  # a new model
    for before, after in zip(state, _states(masked)):
        np.testing.assert_array_equal(before, after)
    model(x[:1])
    state = _states(model)
    measured = tfprune.lstm.measure(model, x)["lstm"]["hidden_sparsity"]
    assert abs(measured - 0.3) <= 0.05
    assert tfprune.lstm.measure(model, x)["lstm"]["hidden_sparsity"] == measured  # from zero state each time
    report = tflite_export.export(model, tmp_path / "m.tflite", verify_data=x, latency_runs=1)
    assert report.parity.passed and report.hidden_state["lstm"]["hidden_sparsity"] == measured
    for before, after in zip(state, _states(model)):
        np.testing.assert_array_equal(before, after)


def test_measuring_a_stateful_model_takes_its_batch_only():
    with pytest.raises(ValueError, match="keep state for batch 1: pass batch_size=1 .* Received: batch_size=4"):
        measuring_predict(_model(), _x(8), batch_size=4)
    with pytest.raises(ValueError, match="whole batches: it has 5 samples. Pass a multiple of 2"):
        measuring_predict(_model(batch=2), _x(5))
