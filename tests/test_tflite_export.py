"""tflite_export: parity per quantization, sparse flatbuffers, the CLI; failures leave no file."""

import json
import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from keras import ops

import tflite_export
import tfprune
from tflite_export import pipeline, samples


def mlp(sizes, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.layers.Dense(n, activation="relu") for n in sizes[1:-1]]
    return keras.Sequential([keras.Input((sizes[0],)), *layers, keras.layers.Dense(sizes[-1])])


def zero_kernels(model, sparsity, block=1, seed=0):
    """Zeros `sparsity` of every Dense kernel at random, in blocks of `block` input rows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        rows, cols = kernel.shape
        dead = rng.random((-(-rows // block), cols)) < sparsity
        kernel[np.repeat(dead, block, axis=0)[:rows]] = 0.0
        layer.set_weights([kernel, bias + 0.01])
    return model


def run_file(path, x, note):
    """Runs a written .tflite file independently of tflite_export's own verification."""
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if note else OpResolverType.AUTO
    runner = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    runner = runner.get_signature_runner()
    (name,) = runner.get_input_details()
    (output,) = runner(**{name: x}).values()
    return output


@pytest.fixture
def data():
    return np.random.default_rng(1).random((64, 20)).astype("float32")


@pytest.mark.parametrize(
    "quantize, weight_dtype, operator",
    [(None, "float32", "FULLY_CONNECTED"), ("dynamic", "int8", "FULLY_CONNECTED"),
     ("int8", "int8", "QUANTIZE")],
)  # fmt: skip
def test_parity_per_quantization(tmp_path, data, quantize, weight_dtype, operator):
    model = mlp([20, 64, 32, 4])
    path = tmp_path / "model.tflite"
    report = tflite_export.export(
        model, path, quantize=quantize, representative_data=data, latency_runs=5
    )
    assert report.parity.passed
    assert report.parity.samples == len(data)
    assert report.size_bytes == os.path.getsize(path)
    assert operator in report.operators
    assert report.tensors[0].dtype == weight_dtype
    expected = keras.ops.convert_to_numpy(model(data[:1]))
    actual = run_file(path, data[:1], report.runtime_note)
    if quantize is None:
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    else:
        assert actual.argmax() == expected.argmax()
    assert json.loads(json.dumps(report.to_dict()))["quantize"] == quantize


@pytest.mark.parametrize(
    "block, encoding, densify", [(1, "csr", True), (4, "block 1x4", False)]
)
def test_sparse_mlp_is_encoded_sparse_and_3x_smaller(tmp_path, block, encoding, densify):
    model = zero_kernels(mlp([784, 300, 100, 10]), 0.9, block)
    report = tflite_export.export(model, tmp_path / "sparse.tflite", latency_runs=20)
    big = [t for t in report.tensors if t.total_values >= 100 * 300]
    assert big and all(t.encoding == encoding for t in big)
    assert all(t.sparsity == pytest.approx(0.9, abs=0.03) for t in big)
    assert all(t.stored_values < 0.3 * t.total_values for t in big)
    assert ("DENSIFY" in report.operators) is densify
    assert report.size_bytes * 3 <= report.dense_size_bytes
    assert report.latency_ms > 0 and report.dense_latency_ms > 0
    table = str(report)
    assert encoding in table and "dense export" in table


def test_pruned_model_is_stripped_and_compacted(tmp_path, data):
    stock = mlp([20, 32, 16, 4])
    kernel, bias = stock.layers[0].get_weights()
    kernel[:, :8] = 0.0  # 8 dead hidden units for compact to remove
    stock.layers[0].set_weights([kernel, bias])
    pruned = tfprune.prunable(stock)
    report = tflite_export.export(pruned, tmp_path / "pruned.tflite", verify_data=data)
    assert report.parity.passed
    assert report.compaction["params_after"] < report.compaction["params_before"]
    assert report.params == report.compaction["params_after"]  # counted as converted
    assert report.tensors[0].shape[0] == 24  # FULLY_CONNECTED weights are [out, in]


@pytest.mark.parametrize("quantize, bytes_per_value", [(None, 4), ("dynamic", 1)])
def test_report_counts_the_weights_as_converted(tmp_path, quantize, bytes_per_value):
    pruned = tfprune.prunable(zero_kernels(mlp([20, 32, 4]), 0.7))
    report = tflite_export.export(
        pruned, tmp_path / "m.tflite", quantize=quantize, compact=False, latency_runs=5
    )
    stripped = [ops.convert_to_numpy(w) for w in tfprune.strip(pruned).weights]
    kernels = [w for w in stripped if w.ndim == 2]
    assert report.params == sum(w.size for w in stripped) == 20 * 32 + 32 + 32 * 4 + 4
    assert report.nonzero_params == sum(np.count_nonzero(w) for w in stripped)  # biases too
    assert report.nonzero_params < 0.5 * report.params
    assert report.physical_limit_bytes == bytes_per_value * report.nonzero_params
    assert report.weights["nonzeros"] == sum(np.count_nonzero(k) for k in kernels)
    assert [row["params"] for row in report.weights["layers"]] == [20 * 32, 32 * 4]
    saved = json.loads(json.dumps(report.to_dict()))
    assert saved["size_over_limit"] == report.size_bytes / report.physical_limit_bytes
    assert f"{report.nonzero_params:,} of {report.params:,} nonzero" in str(report)


def test_latency_times_the_file_beside_its_dense_encoding(tmp_path, monkeypatch):
    calls = []

    def timer(models, inputs, **options):
        calls.append((models, inputs, options))
        return [100.0, 300.0], [[100.0, 300.0]]

    monkeypatch.setattr(pipeline, "median_latency_us", timer)
    path = tmp_path / "m.tflite"
    report = tflite_export.export(zero_kernels(mlp([20, 32, 4]), 0.9), path, latency_runs=7)
    ((models, inputs, options),) = calls
    assert models[0] == path.read_bytes() and len(models[1]) == report.dense_size_bytes
    assert [x.shape for x in inputs.values()] == [(1, 20)] and options["runs"] == 7
    assert (report.latency_ms, report.dense_latency_ms) == (0.1, 0.3)


def test_lstm_exports_with_static_batch(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((12, 8)), keras.layers.LSTM(16), keras.layers.Dense(3)]
    )
    report = tflite_export.export(model, tmp_path / "lstm.tflite", latency_runs=5)
    assert report.batch_size == 1
    assert report.parity.passed and report.parity.samples == samples.DEFAULT_SAMPLES
    looped = bool({"WHILE", "UNIDIRECTIONAL_SEQUENCE_LSTM"} & set(report.operators))
    assert looped == (report.recurrent_form == "loop"), (report.recurrent_form, report.operators)


def test_sparse_quantized_hidden_state_lstm_exports_on_builtin_kernels(tmp_path):
    # XNNPACK rejects the sparse int8 weights inside the LSTM's WHILE body only when the loop
    # first runs, after allocate_tensors succeeded: the runtime probe has to invoke.
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((16, 12, 8), dtype="float32")
    model = tfprune.prunable(
        keras.Sequential([keras.Input((12, 8)), keras.layers.LSTM(16), keras.layers.Dense(3)])
    )
    tfprune.lstm.magnitude_prune(model, 0.8)
    model, _ = tfprune.lstm.prune_hidden_state(model, x, 0.5)
    report = tflite_export.export(
        model, tmp_path / "lstm.tflite", quantize="dynamic", verify_data=x, latency_runs=5
    )
    assert report.parity.passed
    assert "builtin kernels" in report.runtime_note
    # The hidden-state counters stay in Keras: no variable updates in the file...
    assert not {"VAR_HANDLE", "ASSIGN_VARIABLE"} & set(report.operators)
    # ...and count again once the export is done.
    (stats,) = tfprune.lstm.measure(model, x).values()
    assert stats["steps"] == x.shape[0] * x.shape[1]


def test_cli_end_to_end(tmp_path, data, capsys):
    """The CLI's int8 path (`main`, in this process: `python -m tflite_export` itself runs in
    tests/test_backends.py and tests/test_demo.py)."""
    from tflite_export.__main__ import main

    pruned = tfprune.prunable(mlp([20, 16, 4]))
    pruned.save(tmp_path / "model.keras")
    np.save(tmp_path / "calib.npy", data)
    out, report = tmp_path / "out.tflite", tmp_path / "report.json"
    code = main([
        str(tmp_path / "model.keras"), "-o", str(out), "--quantize", "int8",
        "--calibration", str(tmp_path / "calib.npy"), "--report", str(report), "--latency-runs", "5",
    ])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    assert "TFLite export" in printed.out
    saved = json.loads(report.read_text())
    assert saved["size_bytes"] == os.path.getsize(out)
    assert saved["parity"]["passed"] and saved["quantize"] == "int8"


class Svd(keras.layers.Layer):
    def call(self, x):
        return ops.svd(x, compute_uv=False)


def test_unsupported_op_names_the_layer(tmp_path):
    inputs = keras.Input((4, 4))
    model = keras.Model(inputs, Svd(name="my_svd")(inputs))
    with pytest.raises(tflite_export.ConversionError, match=r"tf\.Svd in layer 'my_svd'"):
        tflite_export.export(model, tmp_path / "svd.tflite", compact=False)
    assert os.listdir(tmp_path) == []


def test_int8_with_an_lstm_is_refused_before_it_can_crash(tmp_path):
    model = keras.Sequential([keras.Input((6, 5)), keras.layers.LSTM(8), keras.layers.Dense(3)])
    x = np.zeros((8, 6, 5), "float32")
    with pytest.raises(ValueError, match="recurrent layers.*quantize='dynamic'"):
        tflite_export.export(model, tmp_path / "m.tflite", quantize="int8", representative_data=x)
    assert not (tmp_path / "m.tflite").exists()
