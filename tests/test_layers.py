"""Masked layers behave like their Keras twins, mask by threshold, and round-trip configs."""

import keras
import numpy as np
import pytest

from tfprune.layers import MaskedConv1D, MaskedConv2D, MaskedDense, MaskedDepthwiseConv2D

pytestmark = pytest.mark.backends  # also run under JAX by .ci/run

CASES = [
    (keras.layers.Dense, MaskedDense, dict(units=6, activation="relu"), (3, 5)),
    (keras.layers.Conv1D, MaskedConv1D, dict(filters=4, kernel_size=3, padding="same", dilation_rate=2), (2, 9, 3)),
    (keras.layers.Conv2D, MaskedConv2D, dict(filters=4, kernel_size=3, strides=2, groups=2), (2, 9, 9, 4)),
    (keras.layers.DepthwiseConv2D, MaskedDepthwiseConv2D, dict(kernel_size=3, depth_multiplier=2), (2, 7, 7, 3)),
]


@pytest.mark.parametrize("stock_cls, masked_cls, kwargs, shape", CASES)
def test_zero_thresholds_equal_the_keras_twin(stock_cls, masked_cls, kwargs, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    stock, masked = stock_cls(**kwargs), masked_cls(**kwargs)
    stock(x), masked(x)
    masked.kernel.assign(stock.kernel)
    masked.bias.assign(stock.bias)
    np.testing.assert_allclose(masked(x), stock(x), atol=1e-6)
    assert masked.sparsity() == 0.0


@pytest.mark.parametrize("stock_cls, masked_cls, kwargs, shape", CASES)
def test_threshold_masks_small_weights_per_unit(stock_cls, masked_cls, kwargs, shape):
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    layer = masked_cls(**kwargs)
    layer(x)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    threshold = np.full(tuple(layer.threshold.shape), np.median(np.abs(kernel)), "float32")
    layer.threshold.assign(threshold)
    expected = kernel * (np.abs(kernel) > threshold)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.masked_kernel()), expected)
    assert layer.sparsity() == pytest.approx(np.mean(expected == 0))


@pytest.mark.parametrize("stock_cls, masked_cls, kwargs, shape", CASES)
def test_config_round_trip(stock_cls, masked_cls, kwargs, shape):
    layer = masked_cls(**kwargs, granularity="unit")
    clone = masked_cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.granularity == "unit"


def test_thresholds_are_per_unit_and_start_at_zero():
    dense = MaskedDense(7)
    dense(np.ones((1, 3), "float32"))
    depthwise = MaskedDepthwiseConv2D(3, depth_multiplier=2)
    depthwise(np.ones((1, 5, 5, 4), "float32"))
    assert tuple(dense.threshold.shape) == (7,)
    assert tuple(depthwise.threshold.shape) == (4, 2)
    assert not np.any(keras.ops.convert_to_numpy(dense.threshold))


def test_penalty_is_alpha_times_sum_exp_minus_t():
    layer = MaskedDense(5)
    layer(np.ones((1, 3), "float32"))
    layer.alpha.assign(0.01)
    layer.threshold.assign(np.arange(5, dtype="float32"))
    (penalty,) = layer.losses
    assert float(penalty) == pytest.approx(0.01 * np.exp(-np.arange(5)).sum(), rel=1e-5)


def test_unit_granularity_drops_whole_neurons():
    layer = MaskedDense(4, granularity="unit")
    layer(np.ones((1, 6), "float32"))
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    means = np.abs(kernel).mean(axis=0)
    layer.threshold.assign(np.full(4, np.median(means), "float32"))
    mask = keras.ops.convert_to_numpy(layer.mask())
    np.testing.assert_array_equal(mask, np.broadcast_to(means > np.median(means), mask.shape))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: MaskedDense(4, lora_rank=2), "LoRA"),
        (lambda: MaskedDense(4, granularity="rows"), "granularity"),
        (lambda: MaskedDepthwiseConv2D(3, granularity=(1, 4)), "granularity"),
    ],
)
def test_bad_arguments_are_rejected(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_block_size_must_divide_inputs():
    layer = MaskedDense(4, granularity=(1, 4))
    with pytest.raises(ValueError, match="does not divide"):
        layer(np.ones((1, 6), "float32"))
