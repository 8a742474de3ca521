"""The demo exports through the export CLI in a child process: tfprune never imports tflite_export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

import tfprune
from tfprune.__main__ import export_with_cli


def test_demo_export_runs_the_cli_without_importing_the_export_package(tmp_path):
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(
        keras.Sequential([keras.Input((20,)), keras.layers.Dense(8), keras.layers.Dense(3)])
    )
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((16, 20), dtype="float32"))
    paths = [str(tmp_path / name) for name in ("m.keras", "m.tflite", "r.json", "x.npy")]
    script = (
        "import sys\n"
        "from tfprune.__main__ import export_with_cli\n"
        f"code = export_with_cli(*{paths!r})\n"
        "assert 'tflite_export' not in sys.modules, 'the demo imported tflite_export'\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "TFLite export" in result.stdout  # the CLI's report table, passed through
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["size_bytes"] == os.path.getsize(tmp_path / "m.tflite")
    assert report["parity"]["passed"] and report["parity"]["samples"] == 16  # the .npy given


def test_demo_export_failure_is_reported(tmp_path, capfd):
    paths = [str(tmp_path / name) for name in ("missing.keras", "m.tflite", "r.json", "x.npy")]
    assert export_with_cli(*paths) == 1
    err = capfd.readouterr().err
    assert "does not exist" in err and "the TFLite export failed (exit code 1" in err
    assert not (tmp_path / "m.tflite").exists()
