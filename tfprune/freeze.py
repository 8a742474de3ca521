"""Freezing DST's masks for a fine-tuning phase: the weights train on, the masks do not change.

Fixing the thresholds is not enough: a kept weight the task loss shrinks below its threshold
would be masked, and a masked weight that grows above it would come back. So after every batch
`FrozenMasks.hold` puts the thresholds back and keeps every kept weight's magnitude at least a
hair above its threshold and every masked weight at zero (masked weights do not reach the
output, so zeroing them changes nothing the model computes).
"""

import numpy as np
from keras import ops

from tfprune.layers.base import _units_last

# How far above its threshold a kept weight is held, relative to the threshold's scale.
MARGIN = 1e-6


class FrozenMasks:
    """The masks and thresholds of `layers` at the moment of freezing.

    Raises:
        ValueError: a layer whose granularity is not `"weight"` (a unit's or block's decision
            rests on a mean of magnitudes, which per-weight holding cannot pin).
    """

    def __init__(self, layers):
        self.entries = []
        for layer in layers:
            if layer.granularity != "weight":
                raise ValueError(
                    f"finetune_epochs freezes weight masks; layer '{layer.name}' has "
                    f"granularity={layer.granularity!r}. Use granularity='weight' for it, or "
                    "finetune_epochs=0."
                )
            for kernel_name, threshold_name in layer.MASKED.items():
                kernel, threshold = getattr(layer, kernel_name), getattr(layer, threshold_name)
                values = ops.convert_to_numpy(threshold).copy()
                effective = ops.convert_to_numpy(layer.effective_threshold(kernel_name))
                full = _broadcast(layer, kernel_name, tuple(kernel.shape), effective)
                kept = ops.convert_to_numpy(layer.mask(kernel_name)).astype(bool)
                self.entries.append((kernel, threshold, values, full, kept))

    def hold(self):
        """Restores the thresholds and pins every kept weight above, every masked one at 0."""
        for kernel, threshold, values, full, kept in self.entries:
            threshold.assign(values)
            w = ops.convert_to_numpy(kernel)
            floor = full + MARGIN * np.maximum(np.abs(full), 1.0)
            sign = np.where(w < 0, -1.0, 1.0)
            held = np.where(kept, sign * np.maximum(np.abs(w), floor), 0.0).astype(w.dtype)
            if not np.array_equal(held, w):
                kernel.assign(held)

    def masks(self):
        """The frozen masks, in layer order (for checks)."""
        return [kept for *_, kept in self.entries]


def _broadcast(layer, kernel_name, shape, threshold):
    """The threshold of every weight of the kernel: per-unit thresholds spread over its inputs."""
    order, permuted = _units_last(layer.unit_axes(kernel_name, shape), shape)
    full = np.broadcast_to(threshold, permuted)
    return full if order is None else np.transpose(full, np.argsort(order))
