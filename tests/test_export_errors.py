"""Bad inputs, one table each for arguments, data and files: every one is refused before any
heavy work, with a message that echoes the value and names the fix, and leaves nothing behind."""

import os
import re
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

import tflite_export
from tflite_export import pipeline
from tflite_export.__main__ import main


def mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(8), keras.layers.Dense(4)])


def with_nan_weight(value):
    model = mlp()
    kernel, bias = model.layers[1].get_weights()
    kernel[3, 2] = value
    model.layers[1].set_weights([kernel, bias])
    return model


def nan_at(index, value=np.nan, dtype="float32"):
    x = np.random.default_rng(0).random((64, 20)).astype(dtype)
    x[index, 7] = value
    return x


@pytest.fixture(autouse=True)
def no_heavy_work(monkeypatch):
    """Strip, compact and convert are the first heavy stage: none of these cases may reach it."""

    def refuse(*args):
        raise AssertionError("a bad input reached strip/compact/convert")

    monkeypatch.setattr(pipeline, "_prepare", refuse)


X = np.random.default_rng(0).random((64, 20), dtype="float32")

ARGUMENTS = [
    ("model", dict(model=lambda: "model.keras"), TypeError, "keras.Model. Received: str"),
    ("empty path", dict(path=""), ValueError, "path is empty"),
    ("path type", dict(path=7), TypeError, r"path=7 \(int\)"),
    ("path is a directory", dict(path="."), OSError, "it names a directory"),
    ("missing directory", dict(path="nowhere/m.tflite"), OSError, "'.*nowhere' does not exist"),
    ("parent is a file", dict(path="a_file/m.tflite"), OSError, "is a file, not a directory"),
    ("sparse", dict(sparse="no"), TypeError, r"sparse=True or False. Received: sparse='no'"),
    ("compact", dict(compact=1), TypeError, r"compact=True or False. Received: compact=1"),
    ("quantize value", dict(quantize="float16"), ValueError, "quantize='float16'"),
    ("quantize type", dict(quantize=8), ValueError, "quantize=8"),
    ("int8 needs data", dict(quantize="int8"), ValueError, "needs representative_data"),
    ("batch_size 0", dict(batch_size=0), ValueError, "batch_size=0"),
    ("batch_size str", dict(batch_size="4"), TypeError, r"batch_size='4' \(str\)"),
    ("batch_size bool", dict(batch_size=True), TypeError, r"batch_size=True \(bool\)"),
    ("latency_runs", dict(latency_runs=None), TypeError, "latency_runs=None"),
    ("NaN weight", dict(model=lambda: with_nan_weight(np.nan)), ValueError,
     r"Layer '\S*dense_1' weight 'kernel' holds 1 non-finite value.*TerminateOnNaN"),
    ("inf weight, int8", dict(model=lambda: with_nan_weight(np.inf), quantize="int8",
                              representative_data=X), ValueError, "weight 'kernel' holds 1 non"),
]  # fmt: skip

DATA = [
    ("not an array", dict(representative_data="x.npy"), TypeError,
     "representative_data must be a numpy array .* Received: str"),
    ("a dataset-like object", dict(verify_data={"x": X}), TypeError, "Received: dict"),
    ("list of samples", dict(verify_data=list(X[:3])), ValueError,
     r"holds 3 array\(s\) but the model takes 1 input.*np.stack"),
    ("wrong width", dict(verify_data=X[:, :10]), ValueError,
     r"verify_data has shape \(64, 10\).*expects per-sample shape \(20,\)"),
    ("one sample, no batch axis", dict(verify_data=X[0]), ValueError, r"add the batch axis"),
    ("strings", dict(verify_data=np.full((4, 20), "a")), TypeError, "holds <U1 values"),
    ("no samples", dict(verify_data=X[:0]), ValueError, "holds 0 sample"),
    ("NaN verify", dict(verify_data=nan_at(5)), ValueError,
     "verify_data holds non-finite values .* in 1 of 64 samples, the first at index 5"),
    ("inf calibration", dict(representative_data=nan_at(2, np.inf)), ValueError,
     "representative_data holds non-finite .* the first at index 2"),
    ("all-NaN calibration, int8", dict(quantize="int8", representative_data=X * np.nan),
     ValueError, "representative_data holds non-finite .* in 64 of 64 samples, .* index 0"),
    ("beyond float32", dict(verify_data=nan_at(9, 1e300, "float64")), ValueError,
     "NaN or inf as float32.* index 9"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs, error, message", [c[1:] for c in ARGUMENTS + DATA],
                         ids=[c[0] for c in ARGUMENTS + DATA])  # fmt: skip
def test_bad_argument_or_data_is_refused_before_any_work(tmp_path, kwargs, error, message):
    (tmp_path / "a_file").write_text("")
    kwargs = dict(kwargs)
    model = kwargs.pop("model", mlp)()
    path = kwargs.pop("path", "m.tflite")
    with pytest.raises(error, match=message):
        tflite_export.export(model, tmp_path / path if isinstance(path, str) and path else path,
                             **kwargs)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def _files(tmp_path):
    """Files on disk for the CLI table, by name."""
    keras.utils.set_random_seed(0)
    mlp().save(tmp_path / "model.keras")
    content = (tmp_path / "model.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(content[: len(content) // 2])
    (tmp_path / "text.keras").write_text("not a model")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("notes.txt", "a zip, but no Keras model")
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "text.npy").write_text("0.1 0.2 0.3\n")
    np.save(tmp_path / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "narrow.npy", X[:8, :10])
    np.save(tmp_path / "nan.npy", nan_at(3))
    np.save(tmp_path / "good.npy", X)
    good = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(good[:-100])


FILES = [
    ("model is a directory", ["saved_model", "-o", "out.tflite"],
     "'.*saved_model' is a directory. Pass a .keras file"),
    ("model missing", ["missing.keras", "-o", "out.tflite"], "'.*missing.keras' does not exist"),
    ("model not a zip", ["text.keras", "-o", "out.tflite"],
     r"is not a .keras file: .keras files are zip archives and this one \(11 bytes\)"),
    ("model truncated", ["truncated.keras", "-o", "out.tflite"], "has no zip directory"),
    ("zip without a model", ["other.keras", "-o", "out.tflite"], r"not a Keras model \(no config"),
    ("npy is text", ["model.keras", "-o", "out.tflite", "--calibration", "text.npy"],
     "--calibration '.*text.npy' is not a .npy file: it has no NumPy header"),
    ("npy holds objects", ["model.keras", "-o", "out.tflite", "--verify-data", "objects.npy"],
     r"--verify-data '.*objects.npy' holds Python objects \(dtype=object\)"),
    ("npy truncated", ["model.keras", "-o", "out.tflite", "--calibration", "truncated.npy"],
     "'.*truncated.npy' is truncated or corrupt"),
    ("npy shape", ["model.keras", "-o", "out.tflite", "--calibration", "narrow.npy"],
     r"--calibration '.*narrow.npy' has shape \(8, 10\).*expects per-sample shape \(20,\)"),
    ("npy with NaN", ["model.keras", "-o", "out.tflite", "--verify-data", "nan.npy"],
     "'.*nan.npy' holds non-finite values .* the first at index 3"),
    ("npy missing", ["model.keras", "-o", "out.tflite", "--calibration", "gone.npy"],
     "--calibration '.*gone.npy' does not exist"),
    ("not .npy", ["model.keras", "-o", "out.tflite", "--calibration", "calib.txt"],
     "takes a .npy file"),
    ("output is a directory", ["model.keras", "-o", "saved_model"], "it names a directory"),
    ("output empty", ["model.keras", "-o", ""], "--output is empty"),
    ("report in a missing directory", ["model.keras", "-o", "out.tflite", "--report",
                                       "nowhere/r.json"], "'.*nowhere' does not exist"),
    ("int8 without calibration", ["model.keras", "-o", "out.tflite", "--quantize", "int8"],
     "needs representative_data"),
    ("batch size 0", ["model.keras", "-o", "out.tflite", "--batch-size", "0"], "batch_size=0"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_bad_file_is_named_by_the_cli(tmp_path, capsys, monkeypatch, argv, message):
    _files(tmp_path)
    before = sorted(os.listdir(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("tflite-export: error: ")
    assert len(re.findall(message, err)) == 1, err
    assert sorted(os.listdir(tmp_path)) == before


# A fresh `python -m tflite_export` with these paths; then whether Keras or TensorFlow loaded.
BEFORE_TENSORFLOW = """
import runpy, sys
sys.argv = ["tflite_export", *sys.argv[1:]]
try:
    runpy.run_module("tflite_export", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    print("exit", exit.code, "loaded", sorted({"keras", "tensorflow"} & set(sys.modules)))
"""
EARLY = [c for c in FILES if c[0] in (
    "model is a directory", "model missing", "model not a zip", "model truncated", "zip without a model",
    "npy is text", "npy missing", "not .npy", "output is a directory", "output empty",
    "report in a missing directory",
)]  # fmt: skip


@pytest.mark.parametrize("argv, message", [c[1:] for c in EARLY], ids=[c[0] for c in EARLY])
def test_a_bad_path_is_refused_before_tensorflow_loads(tmp_path, argv, message):
    """A mistyped path fails at once: no 9 s TensorFlow import to learn it."""
    _files(tmp_path)
    done = subprocess.run([sys.executable, "-c", BEFORE_TENSORFLOW, *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)  # fmt: skip
    assert len(re.findall(message, done.stderr)) == 1, done.stderr[-2000:]
    assert done.stdout.split() == ["exit", "1", "loaded", "[]"], done.stdout + done.stderr[-2000:]
