"""`python -m tfprune demo` end to end on digits, 2 epochs (about 35 s): what it prints is true,
and it exports through the export CLI in a child process without importing `tflite_export`."""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import pytest

import tfprune
from tfprune.__main__ import export_with_cli
from tfprune.data import load_digits

ROOT = pathlib.Path(__file__).resolve().parents[1]
# `python -m tfprune demo ... --out argv[1]`, then whether the demo process imported the export package.
DEMO = """
import runpy, sys
sys.argv = ["tfprune", "demo", "--dataset", "digits", "--epochs", "2", "--out", sys.argv[1]]
try:
    runpy.run_module("tfprune", run_name="__main__", alter_sys=True)
finally:
    print("tflite_export imported:", "tflite_export" in sys.modules)
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", DEMO, str(out)], capture_output=True, text=True, timeout=300, cwd=out, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, out


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the demo's output:\n{text}"
    return float(match.group(1).replace(",", ""))


def test_demo_trains_both_models_for_the_epochs_asked(demo):
    stdout, _ = demo
    assert "Dataset: digits (1347 train / 450 test images)" in stdout
    assert stdout.count("Epoch 2/2") == 2 and "Epoch 3/" not in stdout
    assert _number(r"dense accuracy\s+(\d\.\d+)", stdout) > 0.5


def test_demo_accuracy_and_sparsity_table_describe_the_saved_model(demo):
    stdout, out = demo
    model = keras.saving.load_model(out / "lenet_300_100_dst.keras")
    data = load_digits()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    assert _number(r"DST accuracy\s+(\d\.\d+)", stdout) == pytest.approx(accuracy, abs=1.5 / 450)

    report = tfprune.sparsity_report(model)
    for row in report.rows:
        printed = re.search(rf"^{row.layer}/kernel\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)%$", stdout, re.M)
        assert printed, f"no table row for {row.layer}:\n{stdout}"
        assert (int(printed[1].replace(",", "")), int(printed[2].replace(",", ""))) == (row.params, row.nonzeros)
    total = re.search(r"^total\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)%$", stdout, re.M)
    assert total and float(total[3]) == pytest.approx(100 * report.sparsity, abs=0.01)
    assert _number(r"remaining weights ([\d.]+)%", stdout) == pytest.approx(100 * report.remaining, abs=0.01)
    assert report.sparsity > 0  # DST pruned something in 2 epochs


def test_demo_export_passed_parity_and_wrote_the_file(demo):
    stdout, out = demo
    tflite = out / "lenet_300_100_dst.tflite"
    assert re.search(r"parity\s+passed on 64 samples", stdout)
    assert f"Wrote {tflite}" in stdout
    report = json.loads((out / "lenet_300_100_dst_report.json").read_text())
    assert report["parity"]["passed"] and report["parity"]["samples"] == 64
    assert tflite.is_file() and report["size_bytes"] == tflite.stat().st_size


def test_demo_exports_through_the_cli_without_importing_the_export_package(demo):
    stdout, _ = demo
    assert "== TFLite export: python -m tflite_export" in stdout  # the CLI's report, passed through
    assert stdout.rstrip().endswith("tflite_export imported: False")


def test_demo_export_failure_is_reported(tmp_path, capfd):
    paths = [str(tmp_path / name) for name in ("missing.keras", "m.tflite", "r.json", "x.npy")]
    assert export_with_cli(*paths) == 1
    err = capfd.readouterr().err
    assert "does not exist" in err and "the TFLite export failed (exit code 1" in err
    assert not (tmp_path / "m.tflite").exists()
