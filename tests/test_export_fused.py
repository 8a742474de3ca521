"""The fused LSTM form: one UNIDIRECTIONAL_SEQUENCE_LSTM per LSTM, stateless between invokes, and
left out (with the reason) wherever it would not compute the model."""

import numpy as np
import pytest

import keras
import tflite_export
from ai_edge_litert.interpreter import Interpreter
from tflite_export import pipeline
from tflite_export.errors import ParityError


def _x(steps=6, features=5, samples=8):
    return np.random.default_rng(2).normal(size=(samples, steps, features)).astype("float32")


def test_every_invocation_starts_from_a_zero_state(tmp_path):
    # The operator keeps its state tensors between invokes; a constant zero initial state would
    # become that state, and the second call would continue the first sequence.
    model = keras.Sequential([keras.Input((6, 5)), keras.layers.LSTM(8, return_sequences=True), keras.layers.LSTM(4)])
    path = tmp_path / "m.tflite"
    tflite_export.export(model, path, verify_data=_x(), recurrent="fused")
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    x = _x(samples=1)
    outputs = []
    for _ in range(3):
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(taken["index"]).copy())
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])
    np.testing.assert_allclose(outputs[0], model(x), atol=1e-5)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
def test_bidirectional_and_go_backwards_fuse_with_parity(tmp_path, merge_mode):
    model = keras.Sequential(
        [
            keras.Input((6, 5)),
            keras.layers.LSTM(8, return_sequences=True, go_backwards=True),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), merge_mode=merge_mode),
            keras.layers.Bidirectional(keras.layers.LSTM(3)),
            keras.layers.Dense(2),
        ]
    )
    report = tflite_export.export(model, tmp_path / "m.tflite", verify_data=_x(), recurrent="fused")
    assert report.parity.passed and report.operators["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 5
    assert "WHILE" not in report.operators


def _gru_model():
    return keras.Sequential([keras.Input((6, 5)), keras.layers.GRU(4), keras.layers.Dense(2)])


def _masked_model():
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(10, 5, mask_zero=True)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.LSTM(4)(x)))


def _relu_model():
    return keras.Sequential([keras.Input((6, 5)), keras.layers.LSTM(4, activation="relu"), keras.layers.Dense(2)])


@pytest.mark.parametrize(
    "build, data, why",
    [
        (_gru_model, _x(), "'gru' is a GRU; only stock LSTMs fuse"),
        (_masked_model, np.tile(np.arange(6), (8, 1)).astype("int32"), "takes a mask"),
        (_relu_model, _x(), "activation='relu'"),
    ],
)
def test_what_cannot_fuse_is_left_out_with_the_reason_or_refused_by_name(tmp_path, build, data, why):
    model = build()
    report = tflite_export.export(model, tmp_path / "auto.tflite", verify_data=data)
    assert report.parity.passed and why in report.form_notes["fused"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in report.operators and "not fused: " in str(report)
    path = tmp_path / "fused.tflite"
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        tflite_export.export(model, path, verify_data=data, recurrent="fused")
    assert not path.exists()


def _clipped_cell_model():
    """An LSTM whose cell climbs to 15 on +1 inputs and falls by 10 on -1 inputs: Keras ends
    at 5, the fused operator (cells clipped to +-10) at 0, and the outputs differ."""
    model = keras.Sequential([keras.Input((25, 1)), keras.layers.LSTM(1)])
    kernel = np.array([[0.0, 0.0, 10.0, 0.0]], "float32")  # gates i, f, g (tanh(10x) = +-1), o
    bias = np.array([10.0, 10.0, 0.0, 10.0], "float32")  # i, f, o saturated at 1
    model.set_weights([kernel, np.zeros((1, 4), "float32"), bias])
    x = np.concatenate([np.ones((4, 15, 1)), -np.ones((4, 10, 1))], axis=1).astype("float32")
    return model, x


def test_a_form_that_fails_parity_gives_way_to_the_next_fastest(tmp_path, monkeypatch):
    model, x = _clipped_cell_model()
    with pytest.raises(ParityError):
        tflite_export.export(model, tmp_path / "fused.tflite", verify_data=x, recurrent="fused")

    def fused_first(models, inputs, **options):  # files: loop, unrolled, fused, each twice
        us = [300.0, 300.0, 200.0, 200.0, 100.0, 100.0][: len(models)]
        return us, [us]

    monkeypatch.setattr(pipeline, "median_latency_us", fused_first)
    report = tflite_export.export(model, tmp_path / "auto.tflite", verify_data=x)
    assert report.recurrent_form == "unrolled" and report.parity.passed
    assert report.form_notes["fused"].startswith("parity failed, another form written")
    assert "not fused: parity failed" in str(report)
