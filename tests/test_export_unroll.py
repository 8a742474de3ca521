"""Recurrent layers exported as a loop, unrolled or fused: each computes the model, auto keeps the
fastest."""

import numpy as np
import pytest

import keras
import tflite_export
from tflite_export import pipeline


def _stacked(steps=6):
    return keras.Sequential(
        [
            keras.Input((steps, 5)),
            keras.layers.LSTM(8, return_sequences=True),
            keras.layers.Bidirectional(keras.layers.LSTM(4)),
            keras.layers.Dense(3),
        ]
    )


def _x(steps=6):
    return np.random.default_rng(1).normal(size=(8, steps, 5)).astype("float32")


@pytest.mark.parametrize("form", ["loop", "unrolled", "fused"])
def test_each_form_passes_parity_and_is_what_the_file_holds(tmp_path, form):
    report = tflite_export.export(_stacked(), tmp_path / "m.tflite", verify_data=_x(), recurrent=form)
    assert report.parity.passed and report.recurrent_form == form and report.form_latency_ms == {}
    assert ("WHILE" in report.operators) == (form == "loop"), report.operators
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in report.operators) == (form == "fused"), report.operators
    assert f"recurrent    {form}" in str(report)


# The loop is converted first: a form after it must win when it is the fastest.
@pytest.mark.parametrize("fastest", ["unrolled", "fused"])
def test_auto_times_every_form_and_writes_the_fastest(tmp_path, monkeypatch, fastest):
    calls = []
    files = {"loop": [300.0, 350.0], "unrolled": [300.0, 350.0], "fused": [300.0, 350.0]}
    files[fastest] = [100.0, 150.0]

    def timer(models, inputs, **options):
        calls.append(len(models))  # in order: each form's file, then its dense encoding
        us = [t for form in ("loop", "unrolled", "fused") for t in files[form]]
        return us, [us]

    monkeypatch.setattr(pipeline, "median_latency_us", timer)
    path = tmp_path / "m.tflite"
    report = tflite_export.export(_stacked(), path, verify_data=_x())
    assert calls == [6] and report.recurrent_form == fastest
    assert report.form_latency_ms == {form: us[0] / 1000 for form, us in files.items()}
    assert report.latency_ms == 0.1 and report.dense_latency_ms == 0.15
    assert ("WHILE" in report.operators) == (fastest == "loop") and report.parity.passed
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in report.operators) == (fastest == "fused")
    assert report.sha256 and path.read_bytes() and "(the fastest: loop" in str(report)


def test_auto_converts_only_the_loop_when_steps_are_not_fixed(tmp_path):
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    report = tflite_export.export(model, tmp_path / "m.tflite", verify_data=_x())
    assert report.recurrent_form == "loop" and report.form_latency_ms == {} and report.parity.passed


def test_unrolled_without_fixed_steps_is_refused_and_writes_nothing(tmp_path):
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match="no fixed number of time steps.*recurrent='loop'"):
        tflite_export.export(model, path, verify_data=_x(), recurrent="unrolled")
    assert list(tmp_path.iterdir()) == []


def test_made_up_samples_need_fixed_shapes(tmp_path):
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not fixed.*verify_data="):
        tflite_export.export(model, tmp_path / "m.tflite")


def test_a_model_without_recurrent_layers_has_no_form(tmp_path):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    report = tflite_export.export(model, tmp_path / "m.tflite")
    assert report.recurrent_form is None and report.form_latency_ms == {} and "recurrent " not in str(report)


def test_bad_form_is_refused(tmp_path):
    with pytest.raises(ValueError, match="recurrent='auto'"):
        tflite_export.export(_stacked(), tmp_path / "m.tflite", recurrent="unroll")
