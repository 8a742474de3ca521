"""Steering alpha so that DST ends at a requested sparsity.

DST's sparsity follows from alpha, not from a number the user asks for. `SparsityController`
closes the loop: the target rises along a cubic ramp (dense first, as in gradual magnitude
pruning) and alpha moves in log space in proportion to the gap between the target and the
measured sparsity. Reducing alpha lets the task loss pull thresholds back down, so an overshoot
corrects itself.
"""

import math
import numbers


class SparsityController:
    """Proportional-integral control of `log(alpha)` toward a ramped sparsity target.

    Alpha sets how fast thresholds climb, not where they stop, so a pure integral controller
    overshoots; the proportional term reacts to the current gap and the integral term finds the
    alpha that holds the target (where the penalty balances the task loss).

    Args:
        target: final sparsity in [0, 1).
        initial_alpha: the alpha to start from.
        ramp_fraction: share of training over which the target ramps from 0 to `target`.
        gain: proportional gain: `log(alpha)` offset per unit of sparsity error.
        integral_gain: change of the integral term per unit of error at each update.
        bounds: smallest and largest alpha allowed.
        integral: the integral term to resume from (default: `log(initial_alpha)`).
    """

    def __init__(self, target, initial_alpha=5e-4, ramp_fraction=0.5, gain=4.0, integral_gain=0.5,
                 bounds=(1e-8, 1.0), integral=None):
        check_target(target)
        self.target = target
        self.log_alpha = math.log(initial_alpha)
        self.integral = self.log_alpha if integral is None else integral
        self.ramp_fraction = ramp_fraction
        self.gain = gain
        self.integral_gain = integral_gain
        self.bounds = bounds

    def target_at(self, progress):
        """The sparsity the model should have after `progress` (0..1) of training."""
        ramp = min(1.0, progress / self.ramp_fraction) if self.ramp_fraction else 1.0
        return self.target * (1.0 - (1.0 - ramp) ** 3)

    @property
    def alpha(self):
        return math.exp(self.log_alpha)

    def update(self, progress, sparsity):
        """Moves alpha toward closing the gap at `progress`; returns the new alpha."""
        error = self.target_at(progress) - sparsity
        low, high = (math.log(b) for b in self.bounds)
        self.integral = min(high, max(low, self.integral + self.integral_gain * error))
        # Above target, the penalty is switched off: thresholds keep their momentum, so any
        # alpha > 0 would keep pushing sparsity past the target.
        self.log_alpha = low if error < 0 else min(high, max(low, self.integral + self.gain * error))
        return self.alpha


def check_target(target, name="target", optional=False):
    """Raises unless `target` is a sparsity in [0, 1) (or None when `optional`).

    Raises:
        TypeError: not a number (e.g. the string "0.5").
        ValueError: outside [0, 1) or NaN.
    """
    if target is None and optional:
        return
    if not isinstance(target, numbers.Real) or isinstance(target, bool):
        raise TypeError(
            f"{name} must be a float in [0, 1). Received: {name}={target!r} "
            f"of type {type(target).__name__}"
        )
    if not 0 <= target < 1:
        raise ValueError(
            f"A target sparsity must be in [0, 1): the share of weights to prune. "
            f"Received: {name}={target}"
        )
