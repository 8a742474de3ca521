"""Dead filters that BatchNorm would keep alive: holding their BatchNorm channel at zero output.

A filter whose whole mask is zero outputs 0, but the BatchNormalization after it outputs its offset
`beta - gamma * moving_mean / sqrt(moving_variance + eps)`: a constant. A reader that can fold a
constant into its bias (Dense, 1x1 or 'valid' conv) lets `compact` remove the filter anyway, but a
3x3 'same' conv or a zero padding cannot (the padded border makes the constant position-dependent),
so the filter would stay. `DynamicPrune` therefore keeps the BatchNorm channel of every dead unit
of a `granularity="unit"` layer at zero output (beta 0, moving mean = the unit's constant output,
its bias), as the pruned network will
be: the network trains without the channel, and `compact` removes it exactly whatever reads it.
"""

import keras
import numpy as np
from keras import ops


def batchnorm_followers(model, layers):
    """`[(masked layer, BatchNormalization)]`: each `granularity="unit"` layer among `layers` whose
    output feeds only a BatchNormalization over its channel (last) axis."""
    transposed = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
    units = {id(layer) for layer in layers
             if getattr(layer, "granularity", None) == "unit" and not isinstance(layer, transposed)}  # fmt: skip
    pairs = []
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        source = layer.input._keras_history.operation
        if id(source) in units and len(source._outbound_nodes) == 1:
            pairs.append((source, layer))
    return pairs


def dead_units(layer):
    """Indices of the output channels whose whole mask is zero (a depthwise kernel's channel
    `c * multiplier + j` is its input channel c, copy j)."""
    mask = ops.convert_to_numpy(layer.mask())
    outputs = mask.shape[-2] * mask.shape[-1] if isinstance(layer, keras.layers.DepthwiseConv2D) else mask.shape[-1]
    return np.flatnonzero(mask.reshape(-1, outputs).max(axis=0) == 0)


def silence(pairs):
    """Gives the dead units' BatchNorm channels zero output: beta 0, and the moving mean equal
    to what a dead unit outputs (its bias, or 0), which the channel then subtracts."""
    for layer, norm in pairs:
        dead = dead_units(layer)
        if not len(dead):
            continue
        bias = ops.convert_to_numpy(layer.bias) if layer.use_bias else np.zeros(norm.moving_mean.shape)
        for variable, value in ((norm.beta if norm.center else None, 0.0), (norm.moving_mean, bias[dead])):
            if variable is not None:
                updated = ops.convert_to_numpy(variable).copy()
                updated[dead] = value
                variable.assign(updated)
