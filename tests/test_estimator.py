"""The step and its long-tailed derivative estimator."""

import re

import numpy as np
import pytest
import tensorflow as tf

from tfprune.estimator import binary_step, long_tailed_derivative, mask_from_scores, normalize_granularity


def _grad(points):
    x = tf.constant(points, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = binary_step(x)
    return y.numpy(), tape.gradient(y, x).numpy()


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
    w = tf.Variable([[0.05, 0.5], [-0.02, -0.9]])
    t = tf.Variable([0.1, 0.1])
    with tf.GradientTape() as tape:
        masked = w * mask_from_scores(w, t)
        loss = tf.reduce_sum(masked)
    grad_w, grad_t = tape.gradient(loss, [w, t])
    assert masked.numpy()[0, 0] == 0 and masked.numpy()[1, 0] == 0  # below threshold: masked
    assert grad_w.numpy()[0, 0] != 0 and grad_w.numpy()[1, 0] != 0  # ... yet they get gradient
    assert np.all(grad_t.numpy() != 0)


def test_block_mask_keeps_or_drops_whole_blocks():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3)).astype("float32")
    mask = mask_from_scores(tf.constant(w), tf.constant([0.8, 0.8, 0.8]), (1, 4), input_axis=0).numpy()
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
