"""Calibrating a hidden-state threshold: a bracketed search on the sparsity measured on data.

The search runs the whole model, so the feedback of pruned chunks on later steps (and on later
layers) is part of what is calibrated.
"""

import numbers

from tfprune.stateful import measuring_predict


def sparsity_at_threshold(model, layer, data, threshold, batch_size):
    """The hidden-state sparsity `layer` measures on `data` at `threshold` (set in place)."""
    layer.cell.hidden_threshold.assign(threshold)
    layer.reset_hidden_state_stats()
    measuring_predict(model, data, batch_size)
    return layer.hidden_state_stats()["hidden_sparsity"]


def search_threshold(model, layer, data, target, tolerance, max_steps, batch_size):
    """Finds the threshold whose measured sparsity is closest to `target`; it grows with t.

    Steps of x4 from `chunk` (the largest summed |h| of a tanh chunk) bracket the target, then
    each step interpolates linearly inside the bracket, clamped to its middle 80% so the
    bracket always shrinks. Typically 4-8 `predict` passes per layer.
    """
    if target == 0:
        layer.cell.hidden_threshold.assign(0.0)  # only exact-zero chunks count as zeroed
        return
    seen = {}

    def sparsity_at(threshold):
        seen[threshold] = sparsity_at_threshold(model, layer, data, threshold, batch_size)
        return seen[threshold]

    t = float(layer.chunk)
    if sparsity_at(t) >= target:
        while t > 1e-6 and sparsity_at(t / 4) >= target:
            t /= 4
        lo, hi = t / 4, t
    else:
        while t < 1e6 and sparsity_at(4 * t) < target:
            t *= 4
        lo, hi = t, 4 * t
    for _ in range(max_steps):
        s_lo, s_hi = seen.get(lo, 0.0), seen.get(hi, 1.0)
        if min(abs(s - target) for s in seen.values()) <= tolerance or s_hi <= s_lo:
            break
        share = min(max((target - s_lo) / (s_hi - s_lo), 0.1), 0.9)
        middle = lo + share * (hi - lo)
        lo, hi = (middle, hi) if sparsity_at(middle) < target else (lo, middle)
    best = min(seen, key=lambda threshold: abs(seen[threshold] - target))
    layer.cell.hidden_threshold.assign(best)


def check_search(tolerance, max_steps):
    """The calibration search's settings: a tolerance in [0, 1) and a positive step count."""
    if not (isinstance(tolerance, numbers.Real) and 0.0 <= tolerance < 1.0):
        raise ValueError(
            "tolerance is how close the measured hidden-state sparsity must come to the target: "
            f"a number in [0, 1) such as 0.01. Received: tolerance={tolerance!r}"
        )
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(
            "max_steps is the number of search steps per layer and must be a positive integer "
            f"such as 20. Received: max_steps={max_steps!r}"
        )
