"""The step and its long-tailed derivative estimator."""

import re

import keras
import numpy as np
import pytest
from gradients import gradients
from keras import ops

from tfprune.estimator import binary_step, long_tailed_derivative, mask_from_scores, normalize_granularity
from tfprune.layers import MaskedConv2D, MaskedDense

pytestmark = pytest.mark.backends  # also run under JAX by .ci/run


def _grad(points):
    x = keras.Variable(np.asarray(points, "float32"))
    # `x + 0.0`: a tensor, as in the layers (TF's custom_gradient refuses to read variables).
    (grad,) = gradients(lambda: ops.sum(binary_step(x + 0.0)), [x])
    return ops.convert_to_numpy(binary_step(x + 0.0)), grad


@pytest.mark.parametrize(
    "x, expected",
    [
        (0.0, 2.0), (0.1, 1.6), (-0.25, 1.0), (0.4, 0.4),  # 2 - 4|x| for |x| <= 0.4
        (0.41, 0.4), (-0.7, 0.4), (1.0, 0.4),  # the long tail
        (1.01, 0.0), (-3.0, 0.0),  # zero beyond 1
    ],
)
def test_gradient_matches_formula_in_each_region(x, expected):
    _, grad = _grad([x])
    np.testing.assert_allclose(grad, [expected], atol=1e-6)


def test_forward_is_a_strict_step():
    y, _ = _grad([-1.0, -1e-6, 0.0, 1e-6, 2.0])
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1])


def test_estimator_is_the_formula_everywhere():
    x = np.linspace(-2, 2, 401).astype("float32")
    a = np.abs(x)
    expected = np.where(a <= 0.4, 2 - 4 * a, np.where(a <= 1, 0.4, 0.0))
    np.testing.assert_allclose(long_tailed_derivative(x), expected, atol=1e-6)


def test_masked_weight_and_threshold_receive_gradient():
    w = keras.Variable([[0.05, 0.5], [-0.02, -0.9]])
    t = keras.Variable([0.1, 0.1])
    grad_w, grad_t = gradients(lambda: ops.sum(w * mask_from_scores(w, t)), [w, t])
    masked = ops.convert_to_numpy(w * mask_from_scores(w, t))
    assert masked[0, 0] == 0 and masked[1, 0] == 0  # below threshold: masked
    assert grad_w[0, 0] != 0 and grad_w[1, 0] != 0  # ... yet they get gradient
    assert np.all(grad_t != 0)


def test_block_mask_keeps_or_drops_whole_blocks():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3)).astype("float32")
    mask = ops.convert_to_numpy(mask_from_scores(w, np.full(3, 0.8, "float32"), (1, 4), input_axis=0))
    blocks = mask.reshape(2, 4, 3)
    assert np.all((blocks.min(axis=1) == blocks.max(axis=1)))
    scores = np.abs(w).reshape(2, 4, 3).mean(axis=1)
    np.testing.assert_array_equal(blocks[:, 0, :], (scores > 0.8).astype("float32"))


@pytest.mark.parametrize("bad", ["neuron", (2, 4, 1), (0, 4), 3, (1, True), (1, 2.0), (2, 4), (4, 1)])
def test_bad_granularity_is_rejected(bad):
    with pytest.raises(ValueError, match=re.escape(f"Received: granularity={bad!r}")):
        normalize_granularity(bad)


def test_block_granularity_is_a_tuple_of_ints():
    assert normalize_granularity([1, np.int64(4)]) == (1, 4)
    assert type(normalize_granularity([1, np.int64(4)])[1]) is int


def test_gradient_is_the_upstream_gradient_times_the_estimator():
    x = keras.Variable([0.1, -0.7, 0.0, 2.0, 0.3])
    upstream = np.array([3.0, -2.0, 0.5, 7.0, 0.0], "float32")
    (grad,) = gradients(lambda: ops.sum(binary_step(x + 0.0) * upstream), [x])
    np.testing.assert_allclose(grad, [3 * 1.6, -2 * 0.4, 0.5 * 2.0, 0.0, 0.0], atol=1e-6)


def _reference(kernel, threshold, upstream, granularity):
    """Numpy mask and gradients of `sum(upstream * W * mask)`, one threshold per last-axis unit."""
    if granularity == "weight":
        reduce, expand = (lambda v: v), (lambda v: v)
    elif granularity == "unit":
        reduce = lambda v: v.mean(axis=tuple(range(v.ndim - 1)))  # noqa: E731
        expand = lambda v: np.broadcast_to(v, kernel.shape)  # noqa: E731
    else:
        axis, n = kernel.ndim - 2 if kernel.ndim > 2 else 0, granularity[1]
        split = kernel.shape[:axis] + (kernel.shape[axis] // n, n) + kernel.shape[axis + 1 :]
        reduce = lambda v: v.reshape(split).mean(axis=axis + 1)  # noqa: E731
        expand = lambda v: np.repeat(v, n, axis=axis)  # noqa: E731
    scores = reduce(np.abs(kernel))
    derivative = np.asarray(long_tailed_derivative(scores - threshold))
    product = reduce(upstream * kernel)  # mean of upstream * W over each group
    mask = expand((scores > threshold).astype("float32"))
    grad_kernel = upstream * mask + np.sign(kernel) * expand(derivative * product)
    size = kernel.size // scores.size  # weights per group
    grad_threshold = -(derivative * product * size).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return mask, grad_kernel, grad_threshold


@pytest.mark.parametrize("granularity", ["weight", "unit", (1, 2)])
@pytest.mark.parametrize(
    "make, input_shape",
    [(lambda g: MaskedDense(3, granularity=g), (None, 8)), (lambda g: MaskedConv2D(3, 2, granularity=g), (None, 5, 5, 4))],
    ids=["dense", "conv2d"],
)
def test_each_unit_masks_and_learns_with_its_own_threshold(make, input_shape, granularity):
    rng = np.random.default_rng(0)
    layer = make(granularity)
    layer.build(input_shape)
    kernel = rng.normal(scale=0.5, size=tuple(layer.kernel.shape)).astype("float32")
    upstream = rng.normal(size=kernel.shape).astype("float32")
    layer.kernel.assign(kernel)
    unit_scores = np.abs(kernel).reshape(-1, 3)
    threshold = np.array([np.quantile(unit_scores[:, j], q) for j, q in enumerate([0.2, 0.5, 0.8])], "float32")
    layer.threshold.assign(threshold)
    grad_kernel, grad_threshold = gradients(
        lambda: ops.sum(layer.masked_kernel() * upstream), [layer.kernel, layer.threshold]
    )

    mask, expected_kernel, expected_threshold = _reference(kernel, threshold, upstream, granularity)
    kept = mask.reshape(-1, 3).mean(axis=0)
    assert kept[0] > kept[1] > kept[2] or granularity == "unit" and kept[0] > kept[2]  # units differ
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.mask()), mask)
    np.testing.assert_allclose(grad_kernel, expected_kernel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_threshold, expected_threshold, rtol=1e-4, atol=1e-5)
    assert len(set(np.round(grad_threshold, 5))) == 3
