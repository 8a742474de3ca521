"""Each CLI flag changes what it says in the file and in the JSON report, next to a default run."""

import hashlib
import json
import os
import stat

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tfprune
from tflite_export.__main__ import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A pruned model with 16 dead hidden units and 90% zeros in its second kernel, saved.

    Kernels hold over 1024 values: smaller ones the converter leaves float under "dynamic".
    """
    folder = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4),
    ])  # fmt: skip
    kernel, bias = model.layers[0].get_weights()
    kernel[:, :16] = 0.0
    model.layers[0].set_weights([kernel, bias])
    kernel, bias = model.layers[1].get_weights()
    kernel[np.random.default_rng(0).random(kernel.shape) < 0.9] = 0.0
    model.layers[1].set_weights([kernel, bias + 0.01])
    tfprune.prunable(model).save(folder / "model.keras")
    np.save(folder / "x.npy", np.random.default_rng(1).random((64, 32), dtype="float32"))
    return folder


def run_cli(folder, name, *flags):
    """Runs the CLI in this process; returns the JSON report and the file's input details."""
    out, report = folder / f"{name}.tflite", folder / f"{name}.json"
    previous = os.umask(0o022)
    try:
        code = main([str(folder / "model.keras"), "-o", str(out), "--report", str(report),
                     "--verify-data", str(folder / "x.npy"), "--latency-runs", "2", *flags])  # fmt: skip
    finally:
        os.umask(previous)
    assert code == 0
    result = json.loads(report.read_text())
    assert result["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert result["size_bytes"] == os.path.getsize(out) and result["parity"]["passed"]
    assert stat.S_IMODE(os.stat(report).st_mode) == 0o644  # the JSON too: umask, atomic
    (given,) = Interpreter(model_path=str(out)).get_input_details()
    return result, given


def kernel_shapes(result):
    """The file's kernel shapes ([out, in]) in layer order."""
    rows = {row["tensor"]: row["layer"] for row in result["layers"]}
    tensors = sorted(result["tensors"], key=lambda t: rows[t["name"]])
    return [t["shape"] for t in tensors]


@pytest.fixture(scope="module")
def default(saved):
    return run_cli(saved, "default")


def test_default_run_is_sparse_compacted_float_and_dynamic_batch(default):
    result, given = default
    assert result["sparse"] and result["quantize"] is None and result["batch_size"] is None
    assert {t["dtype"] for t in result["tensors"]} == {"float32"}
    assert "csr" in {t["encoding"] for t in result["tensors"]} and "DENSIFY" in result["operators"]
    assert result["compaction"]["params_after"] < result["compaction"]["params_before"]
    (units, inputs), *_ = kernel_shapes(result)
    assert units <= 48 and inputs == 32  # the 16 dead units (and any unit nothing reads) gone
    assert list(given["shape_signature"]) == [-1, 32]


def test_quantize_dynamic_stores_int8_weights(saved, default):
    result, given = run_cli(saved, "dynamic", "--quantize", "dynamic")
    assert result["quantize"] == "dynamic"
    assert {t["dtype"] for t in result["tensors"] if t["total_values"] >= 1024} == {"int8"}
    assert "QUANTIZE" not in result["operators"] and given["dtype"] == np.float32
    assert result["physical_limit_bytes"] == result["nonzero_params"]  # one byte a value
    assert result["size_bytes"] < default[0]["size_bytes"]


def test_no_sparse_stores_every_weight_dense(saved, default):
    result, _ = run_cli(saved, "dense", "--no-sparse")
    assert not result["sparse"]
    assert {t["encoding"] for t in result["tensors"]} == {"dense"}
    assert "DENSIFY" not in result["operators"]
    assert result["size_bytes"] == result["dense_size_bytes"] > default[0]["size_bytes"]


def test_no_compact_keeps_dead_units(saved, default):
    result, _ = run_cli(saved, "whole", "--no-compact")
    assert result["compaction"] is None
    assert kernel_shapes(result)[0] == [64, 32]
    assert result["params"] == 32 * 64 + 64 + 64 * 64 + 64 + 64 * 4 + 4 > default[0]["params"]


def test_batch_size_fixes_the_files_batch(saved):
    result, given = run_cli(saved, "batch4", "--batch-size", "4")
    assert result["batch_size"] == 4 and result["latency_batch"] == 4
    assert list(given["shape"]) == [4, 32] and list(given["shape_signature"]) == [4, 32]
    assert result["parity"]["samples"] == 64
