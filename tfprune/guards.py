"""Non-finite values stop DST loudly: a NaN threshold must never pass for sparsity 1.0.

With NaN weights every mask reads 0 (NaN > t is false), so sparsity looks like 1.0, the reset
rule fires and the target controller lowers alpha: success on the logs, garbage in the model.
"""

import math

import numpy as np
from keras import ops


def thresholds_finite(layers):
    """Whether every threshold is finite: the per-batch check, cheap (a few hundred values).

    A NaN batch turns the thresholds NaN in the same update as the weights (their gradient flows
    through the masked kernels), and a weight that overflows alone makes the next loss non-finite,
    which the loss check sees; the full check (`first_non_finite`) runs before the reset rule or
    the controller act, and at the end of every epoch.
    """
    return all(
        np.isfinite(np.asarray(ops.convert_to_numpy(getattr(layer, name)))).all()
        for layer in layers
        for name in layer.MASKED.values()
    )


def first_non_finite(layers):
    """`(layer name, weight name, value)` of the first masked layer holding NaN/inf, or None."""
    for layer in layers:
        for name in (*layer.MASKED, *layer.MASKED.values()):
            values = np.asarray(ops.convert_to_numpy(getattr(layer, name)))
            bad = values[~np.isfinite(values)]
            if bad.size:
                return layer.name, name, float(bad[0])
    return None


def check_finite(layers, epoch, batch, loss=None):
    """Raises FloatingPointError naming the layer and batch where training went non-finite.

    Args:
        layers: the masked layers `DynamicPrune` drives.
        epoch, batch: where training is (for the message).
        loss: the batch's loss, if known.

    Raises:
        FloatingPointError: the loss, a threshold or a masked weight is NaN or inf.
    """
    where = f"epoch {epoch}, batch {batch}"
    culprit = first_non_finite(layers)
    if culprit is not None:
        layer, weight, value = culprit
        raise FloatingPointError(
            f"DynamicPrune stopped training at {where}: {weight!r} of layer '{layer}' became "
            f"{value}. Sparsity figures, the reset rule and the target controller would all act "
            "on garbage from here. Check the training data for NaN/inf "
            "(np.isfinite(x).all()), lower the learning rate or alpha, or clip gradients "
            "(e.g. optimizer clipnorm=1.0)."
        )
    if loss is not None and not math.isfinite(loss):
        raise FloatingPointError(
            f"DynamicPrune stopped training at {where}: the loss is {loss} while every threshold "
            "and masked weight is still finite, so the inputs or labels of this batch likely "
            "hold NaN or inf. Check them with np.isfinite(x).all()."
        )
