"""Block and unit granularity end to end: DST training, estimator, reset, compaction, TFLite."""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from gradients import gradients

import tflite_export
import tfprune
from tflite_export.convert import to_tflite
from tflite_export.inspect import read_flatbuffer
from tflite_export.kernels import layer_kernels, misaligned_blocks
from tfprune.channel_graph import block_width
from tfprune.data import load_digits
from tfprune.layers import MaskedDense, masked_layers
from tfprune.models import lenet5_caffe, lenet_300_100


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def train(data, granularity, epochs, **dynamic_prune):
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(lenet_300_100((8, 8), 10), granularity=granularity)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0,
                        callbacks=[tfprune.DynamicPrune(**dynamic_prune)])  # fmt: skip
    return model, history.history


@pytest.fixture(scope="module")
def block_model(digits):
    return train(digits, (1, 4), epochs=10, target_sparsity=0.9)


def masks(model):
    return {layer.name: keras.ops.convert_to_numpy(layer.mask()) for layer in masked_layers(model)}


def test_dst_keeps_or_drops_whole_blocks(block_model, digits):
    model, history = block_model
    for name, mask in masks(model).items():
        blocks = mask.reshape(mask.shape[0] // 4, 4, -1)
        assert np.array_equal(blocks.min(axis=1), blocks.max(axis=1)), name
    fc1 = masks(model)["fc1"].reshape(16, 4, 300)[:, 0]
    assert 0 < fc1.mean() < 0.5  # blocks went and blocks stayed
    assert history["sparsity"][-1] > 0.6
    assert model.evaluate(digits.x_test, digits.y_test, verbose=0)[1] > 0.85


def test_masked_blocks_still_get_gradient():
    layer = MaskedDense(2, granularity=(1, 4))
    layer.build((None, 8))
    layer.kernel.assign(np.full((8, 2), 0.5, "float32") * np.r_[[1.0] * 4, [2.0] * 4][:, None])
    layer.threshold.assign([0.75, 0.75])  # block means 0.5 (masked) and 1.0 (kept)
    ones = np.ones((1, 8), "float32")
    grad_w, grad_t = gradients(lambda: keras.ops.sum(layer(ones)), [layer.kernel, layer.threshold])
    mask = keras.ops.convert_to_numpy(layer.mask())
    np.testing.assert_array_equal(mask[:, 0], [0, 0, 0, 0, 1, 1, 1, 1])
    assert np.all(grad_w[:4] != 0)  # the masked block can come back
    assert np.all(grad_t != 0)


def test_collapsed_block_layer_is_reset(digits):
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(lenet_300_100((8, 8), 10), granularity=(1, 4))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fc2 = model.get_layer("fc2")
    fc2.threshold.assign(np.full(100, 5.0, "float32"))  # every block of fc2 masked
    assert keras.ops.convert_to_numpy(fc2.mask()).sum() == 0
    history = model.fit(digits.x_train[:128], digits.y_train[:128], batch_size=64, verbose=0,
                        callbacks=[tfprune.DynamicPrune(alpha=0.0, reset_check_every=1)])  # fmt: skip
    assert history.history["threshold_resets"][-1] == 1  # at the first of two batches: half way
    assert np.abs(keras.ops.convert_to_numpy(fc2.threshold)).max() < 0.1
    assert keras.ops.convert_to_numpy(fc2.mask()).mean() > 0.9


def test_unit_granularity_masks_neurons_that_compact_removes(digits):
    model, _ = train(digits, "unit", epochs=6, alpha=0.01, reset_fraction=None)
    alive = {}
    for name, mask in masks(model).items():
        assert np.array_equal(mask.min(axis=0), mask.max(axis=0)), name  # whole columns
        alive[name] = int(mask[0].sum())
    assert alive["fc1"] < 300
    small, report = tfprune.compact(tfprune.strip(model))
    assert small.get_layer("fc1").units == alive["fc1"]
    assert small.get_layer("fc2").units == alive["fc2"]
    assert report.params_after < report.params_before
    x = digits.x_test[:64]
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_block_model_exports_to_sparse_kernels(block_model, digits, tmp_path):
    model = block_model[0]
    path = tmp_path / "block.tflite"
    report = tflite_export.export(model, path, verify_data=digits.x_test, latency_runs=5)
    assert "DENSIFY" not in report.operators
    by_layer = {k.layer: k for k in report.layers}
    assert by_layer["fc1"].runs_sparse and by_layer["fc1"].encoding == "block 1x4"
    assert all(k.runs_sparse for k in report.layers if k.encoding != "dense")
    assert "sparse" in str(report) and "1x4 blocks read by" in str(report)
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    (name,) = runner.get_input_details()
    (output,) = runner(**{name: digits.x_test[:32]}).values()
    np.testing.assert_allclose(output, model.predict(digits.x_test[:32], verbose=0), atol=1e-4)


def test_compaction_keeps_blocks_on_the_grid():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(8)])  # fmt: skip
    first, second = model.layers
    k1, b1 = first.get_weights()
    k1[:, [0, 1, 2, 3, 9]] = 0.0  # units 0-3 (one aligned group) and 9 (a lone unit) are dead
    first.set_weights([k1, b1])
    k2, b2 = second.get_weights()
    rng = np.random.default_rng(0)
    k2[np.repeat(rng.random((8, 8)) < 0.6, 4, axis=0)] = 0.0  # 1x4 blocks along the inputs
    second.set_weights([k2, b2])
    small, _ = tfprune.compact(model)
    assert small.layers[0].units == 28  # the aligned group goes, the lone unit stays
    kernel = small.layers[1].get_weights()[0]
    assert block_width(kernel != 0) == 4
    x = rng.normal(size=(8, 16)).astype("float32")
    np.testing.assert_allclose(small(x), model(x), atol=1e-5)


def test_blocks_off_the_grid_are_flagged():
    """TFLite stores 1x4 blocks over 294 inputs, and its block kernel then computes wrong sums."""
    aligned = _zeroed(keras.Sequential([keras.Input((296,)), keras.layers.Dense(56)]), 0.9, 4)
    kernel, bias = aligned.layers[0].get_weights()
    model = keras.Sequential([keras.Input((294,)), keras.layers.Dense(56)])
    model.layers[0].set_weights([kernel[:294], bias])
    tensors = read_flatbuffer(to_tflite(model, sparse=True, quantize=None, batch_size=None)).tensors
    assert tensors[0].encoding == "block 1x4"
    assert misaligned_blocks(tensors) == [tensors[0].name]


def _zeroed(model, share, block=1):
    """Zeros `share` of every kernel at random, in blocks of `block` inputs."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            kernel = weights[0]
            dead = rng.random((*kernel.shape[:-2], kernel.shape[-2] // block, kernel.shape[-1]))
            kernel[np.repeat(dead < share, block, axis=-2)] = 0.0
            layer.set_weights([kernel, *weights[1:]])
    return model


LENET_300 = lambda: lenet_300_100((8, 8), 10)  # noqa: E731


@pytest.mark.parametrize(
    "build, share, quantize, layer, expected",
    [
        (LENET_300, 0.9, None, "fc1", "unstructured sparsity"),
        (LENET_300, 0.1, None, "fc1", "below the converter's 30%"),
        (LENET_300, 0.0, None, "fc1", "dense (no zeros)"),
        (LENET_300, 0.9, "dynamic", "fc1", "int8: only 1x16 blocks"),
        (lambda: lenet5_caffe((16, 16), 10), 0.9, None, "conv2", "conv: TFLite's builtin kernels are dense"),
    ],
)
def test_each_layer_says_why_it_runs_dense(build, share, quantize, layer, expected):
    model = _zeroed(build(), share)
    tensors = read_flatbuffer(to_tflite(model, sparse=True, quantize=quantize, batch_size=None)).tensors
    rows = {row.layer: row for row in layer_kernels(tensors, model)}
    assert set(rows) == {layer.name for layer in model.layers if layer.get_weights()}
    assert not any(row.runs_sparse for row in rows.values())
    assert expected in rows[layer].reason


def test_int8_blocks_run_sparse_on_builtin_kernels(tmp_path):
    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(64, name="fc1"),
                              keras.layers.Dense(10, name="fc2")])  # fmt: skip
    model = _zeroed(model, 0.9, block=16)
    with pytest.warns(UserWarning, match="XNNPACK miscomputes int8 weights"):
        report = tflite_export.export(model, tmp_path / "int8.tflite", quantize="dynamic",
                                      compact=False, latency_runs=5)  # fmt: skip
    assert report.parity.passed and "XNNPACK miscomputes" in report.runtime_note
    fc1 = next(k for k in report.layers if k.layer == "fc1")
    assert fc1.runs_sparse and fc1.encoding == "block 1x16"
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    runner = Interpreter(model_path=str(tmp_path / "int8.tflite"),
                         experimental_op_resolver_type=resolver).get_signature_runner()  # fmt: skip
    x = np.random.default_rng(1).random((4, 256)).astype("float32")
    (output,) = runner(**{next(iter(runner.get_input_details())): x}).values()
    assert np.array_equal(output.argmax(-1), model.predict(x, verbose=0).argmax(-1))
