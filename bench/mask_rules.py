"""DST with its mask rule swapped for a variant, to test why DST trails GMP (issue #13).

DST cuts each output unit at its own absolute threshold. Two variants test two explanations of the
gap at 4-10% remaining (a DST row's `mask_rule` parameter):

- `"floor"`: every unit keeps at least `floor_fraction` of its fan-in (its threshold is capped
  under the unit's k-th largest |W|), so no unit dies: is unit death the cause?
- `"relative"`: thresholds count in the kernel's mean |W|, so a layer of small weights (a wide
  fc1) is not cut harder than one of large weights: is DST's own allocation the cause?
"""

import contextlib

import numpy as np
from keras import ops

from tfprune import estimator
from tfprune.layers import base


def floor_mask(fraction):
    """A mask rule that keeps each unit's top `fraction` of incoming weights whatever its threshold."""

    def mask(weight, threshold):
        units = int(np.prod(threshold.shape))
        fan_in = int(np.prod(weight.shape)) // units
        k = max(1, round(fraction * fan_in))
        magnitude = ops.abs(weight)
        rows = ops.transpose(ops.reshape(ops.stop_gradient(magnitude), (fan_in, units)))
        kth = ops.reshape(ops.top_k(rows, k)[0][:, -1], threshold.shape)
        cap = kth * (1 - 1e-6)  # strictly under the k-th magnitude, so the k-th weight is kept
        return estimator.binary_step(magnitude - ops.minimum(threshold, cap))

    return mask


def relative_mask(weight, threshold):
    """A mask rule whose thresholds count in the kernel's mean |W|."""
    scale = ops.stop_gradient(ops.mean(ops.abs(weight)))
    return estimator.binary_step(ops.abs(weight) / scale - threshold)


def jitter_mask(spread):
    """A mask rule whose thresholds jitter by up to `spread` of themselves, per weight and step,
    while training (in the traced train step; eager readouts and inference see DST's own rule):
    weights near their threshold drop in and out, the noise a magnitude cut injects."""
    import tensorflow as tf

    def mask(weight, threshold):
        magnitude = ops.abs(weight)
        if not tf.inside_function():
            return estimator.binary_step(magnitude - threshold)
        noise = tf.random.uniform(tf.shape(weight), -spread, spread, dtype=weight.dtype)
        return estimator.binary_step(magnitude - threshold * (1 + noise))

    return mask


def _weight_masks_only(rule):
    """`rule` for per-weight masks; unit and block masks keep DST's own rule."""

    def mask_from_scores(weight, threshold, granularity="weight", input_axis=0):
        if granularity != "weight":
            return estimator.mask_from_scores(weight, threshold, granularity, input_axis)
        return rule(weight, threshold)

    return mask_from_scores


def _dense_gradient_kernel(self, kernel_name="kernel", kernel=None):
    """`W * mask` forward; backward, W gets the whole gradient of the masked kernel (masked
    weights too, as if the mask were not there) and the thresholds keep the estimator's."""
    kernel = getattr(self, kernel_name) if kernel is None else kernel
    frozen = ops.stop_gradient(kernel)
    return frozen * self.mask(kernel_name, frozen) + (kernel - frozen)


@contextlib.contextmanager
def weight_gradient(name):
    """Inside, every masked layer trains its weights with gradient `name`: `"dense"` (the
    straight-through gradient of dynamic pruning with feedback, Lin et al. 2020) or `None`
    (the layers' own `weight_gradient`)."""
    if name is None:
        yield
        return
    if name != "dense":
        raise ValueError(f"weight_gradient must be 'dense' or None; got {name!r}")
    saved = base.MaskedMixin.masked_kernel
    base.MaskedMixin.masked_kernel = _dense_gradient_kernel
    try:
        yield
    finally:
        base.MaskedMixin.masked_kernel = saved


@contextlib.contextmanager
def mask_rule(name, floor_fraction=0.02, jitter=0.5):
    """Every masked layer computes its mask with rule `name` ("floor", "relative") inside; with
    `name=None`, DST's own rule."""
    if name is None:
        yield
        return
    rules = {
        "floor": lambda: floor_mask(floor_fraction),
        "relative": lambda: relative_mask,
        "jitter": lambda: jitter_mask(jitter),
    }
    if name not in rules:
        raise ValueError(f"mask_rule must be one of {sorted(rules)}; got {name!r}")
    if not 0 < floor_fraction <= 1:
        raise ValueError(f"floor_fraction must be in (0, 1]; got {floor_fraction!r}")
    saved, base.mask_from_scores = base.mask_from_scores, _weight_masks_only(rules[name]())
    try:
        yield
    finally:
        base.mask_from_scores = saved
