"""The export report's verdict on XNNPACK's sparse inference, for files that qualify and not."""

import keras
import numpy as np
import pytest
from keras import layers

import tfprune
import tflite_export
from tfprune import models
from tfprune.layers.base import masked_layers
from tflite_export import xnnpack


def _policy_model(share=0.8, input_shape=(32, 32, 3)):
    """A small MobileNetV1 under policy='xnnpack' with `share` of each 1x1 conv masked."""
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(models.mobilenet_v1(input_shape, 4, width=0.25), policy="xnnpack")
    for layer in masked_layers(model):
        cut = np.quantile(np.abs(keras.ops.convert_to_numpy(layer.kernel)), share)
        layer.threshold.assign(np.full(layer.threshold.shape, cut, "float32"))
    return model


def _export(model, tmp_path, **options):
    x = np.random.default_rng(0).uniform(size=(4, *model.input_shape[1:])).astype("float32")
    return tflite_export.export(model, tmp_path / "m.tflite", verify_data=x, latency_runs=3, **options)


def test_a_qualifying_file_is_said_to_qualify_and_not_to_run_sparse_on_this_x86(tmp_path, monkeypatch):
    monkeypatch.setattr(xnnpack.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(xnnpack, "_cpu", lambda: ("x86_64 with AVX: XNNPACK keeps its dense kernels", False))
    report = _export(_policy_model(), tmp_path)
    verdict = report.xnnpack_sparse
    assert verdict["qualifies"] and verdict["reasons"] == []
    assert set(verdict["layers"]) == {f"pw{i}" for i in range(1, 14)}
    assert all(share >= 2 / 3 for share in verdict["layers"].values())
    assert not verdict["runs_sparse_here"]
    assert "meets its conditions" in str(report) and "dense kernels" in str(report)


@pytest.mark.parametrize("machine, runs", [("aarch64", True), ("arm64", True)])
def test_arm_processors_can_use_the_sparse_kernels(machine, runs, monkeypatch):
    monkeypatch.setattr(xnnpack.platform, "machine", lambda: machine)
    assert xnnpack._cpu()[1] is runs


def test_this_machine_is_described():
    cpu, can_use = xnnpack._cpu()
    assert cpu and isinstance(can_use, bool)


def test_a_conv_under_two_thirds_zeros_is_named(tmp_path):
    report = _export(_policy_model(share=0.5), tmp_path)
    verdict = report.xnnpack_sparse
    assert not verdict["qualifies"] and not verdict["runs_sparse_here"]
    assert any("'pw1' is" in r and "below the 2/3" in r and "compact=False" in r for r in verdict["reasons"])


def test_dense_storage_and_quantization_are_reasons(tmp_path):
    assert any("sparse=False" in r for r in _export(_policy_model(), tmp_path, sparse=False).xnnpack_sparse["reasons"])
    stock = tfprune.strip(_policy_model())
    verdict = xnnpack.sparse_inference_verdict(stock, [], sparse=True, quantize="dynamic")
    assert any("float weights only" in r for r in verdict["reasons"])


def test_a_model_of_the_wrong_shape_gets_the_policy_reason(tmp_path):
    x = keras.Input((16, 16, 3))
    y = layers.Conv2D(8, 3, 2, "same", name="stem")(x)  # 'same' at stride 2: asymmetric padding
    y = layers.Conv2D(8, 1, name="pw")(y)
    y = layers.GlobalAveragePooling2D(keepdims=True)(y)
    model = keras.Model(x, layers.Dense(2)(layers.Flatten()(y)))
    verdict = _export(model, tmp_path).xnnpack_sparse
    assert not verdict["qualifies"]
    assert "'stem'" in verdict["reasons"][0] and "padded by 1" in verdict["reasons"][0]


def test_models_without_convolutions_get_no_verdict(tmp_path):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    assert _export(model, tmp_path).xnnpack_sparse is None
