"""Structural rules for `compact`, one class per way a layer treats the channel axis.

* `UnitSurgery`: a layer that *owns* its output units (Dense, Conv1D/2D/3D; LSTM hidden units in
  `tfprune.lstm_surgery`). It answers which input positions feed which units (`usage`), which
  units output a constant whatever the model input (`constants`), whether a constant input folds
  into the bias exactly (`can_fold`), and how to rewrite config and weights for the kept inputs
  and units (`rewrite`). Units live on the last axis of the layer's output.
* `ChannelOp`: a layer that *carries* its inputs' last axis through (activations, dropout,
  pooling, BatchNormalization, Add, Concatenate, Flatten, Reshape, DepthwiseConv): which input
  positions become which output positions (`links`), how constants pass through (`constants`)
  and how to slice its own weights and config (`rewrite`).

Rules are attached to layer classes in `tfprune.registry` (built-ins in `tfprune.kinds`); a class
without a rule is a barrier: its inputs and outputs keep every position.
"""

import numpy as np
from keras import ops

NOT_ELEMENTWISE = frozenset({"softmax", "log_softmax", "glu", "sparsemax"})


def elementwise_activation(layer):
    """True when the layer's activation maps each unit alone, so units are independent."""
    name = layer.get_config().get("activation", "linear")
    return isinstance(name, str) and name not in NOT_ELEMENTWISE


def apply_to_constants(fn, values):
    """`fn` on a vector of per-unit constants; NaN (input-dependent) stays NaN."""
    values = np.asarray(values, dtype="float64")
    known = np.isfinite(values)
    out = ops.convert_to_numpy(fn(ops.convert_to_tensor(np.where(known, values, 0.0), "float32")))
    return np.where(known, np.asarray(out, dtype="float64"), np.nan)


def gather_constants(n_out, in_pos, out_pos, in_const):
    """Output constants of a position map; an output fed by differing inputs is not constant."""
    vals = in_const[in_pos]
    out = np.full(n_out, np.nan)
    out[out_pos] = vals
    out[out_pos[vals != out[out_pos]]] = np.nan
    return out


class UnitSurgery:
    """Dense-like layers: weights `[kernel (..., inputs, units), bias (units,)?]`."""

    units_key = "units"

    def supports(self, layer):
        """Whether this layer instance can be rewritten (plain weights, known layout)."""
        return len(layer.get_weights()) == 1 + bool(getattr(layer, "use_bias", False))

    def output_fixed(self, layer):
        """Units can only go when they do not interact (no softmax across units)."""
        return not elementwise_activation(layer)

    def _taps(self, weights):
        """The kernel as `(spatial taps, inputs, units)` in float64."""
        kernel = weights[0]
        return kernel.reshape(-1, *kernel.shape[-2:]).astype("float64")

    def usage(self, layer, weights):
        """`(inputs, units)` bool: input position i feeds unit u."""
        return np.any(self._taps(weights) != 0, axis=0)

    def recurrent_usage(self, layer, weights):
        """`(units, units)` bool for recurrent layers (unit u feeds unit v); None otherwise."""
        return None

    def observed_zero(self, layer, weights):
        """Units seen to be 0 at every step of the data `compact(model, data=...)` ran; or None.

        Only layers that count their activity (hidden-state-pruned LSTMs) can tell.
        """
        return None

    def can_fold(self, layer):
        """Whether a constant nonzero input can be folded into the bias exactly."""
        return True

    def balance(self, layer, keep_out):
        """The units to keep given `keep_out`, for layers whose shape ties unit counts."""
        return keep_out

    def constants(self, layer, weights, in_const):
        """Per-unit output constant (NaN where the unit depends on the model input)."""
        known = np.isfinite(in_const)
        usable = known & ((in_const == 0) | self.can_fold(layer))
        const = ~np.any(self.usage(layer, weights) & ~usable[:, None], axis=0)
        bias = weights[1] if len(weights) > 1 else 0.0
        pre = bias + np.where(usable, in_const, 0.0) @ self._taps(weights).sum(0)
        out = apply_to_constants(layer.activation, pre)
        return np.where(const & elementwise_activation(layer), out, np.nan)

    def rewrite(self, layer, config, weights, keep_in, keep_out, folded):
        """New config and weights; `folded[i]` is the constant of a removed input to add."""
        kernel = weights[0]
        bias = weights[1] if len(weights) > 1 else np.zeros(kernel.shape[-1], kernel.dtype)
        bias = (bias + folded @ self._taps(weights).sum(0))[keep_out]
        use_bias = bool(config.get("use_bias", True)) or bool(np.any(bias != 0))
        config = {**config, self.units_key: int(keep_out.sum()), "use_bias": use_bias}
        new = [kernel[..., keep_in, :][..., keep_out]]
        return config, new + ([bias.astype(kernel.dtype)] if use_bias else [])


class ConvSurgery(UnitSurgery):
    """Conv1D/2D/3D, channels-last, ungrouped: kernel `(*spatial, in, filters)`."""

    units_key = "filters"

    def supports(self, layer):
        return (
            super().supports(layer)
            and layer.data_format == "channels_last"
            and getattr(layer, "groups", 1) == 1
        )

    def can_fold(self, layer):
        # With zero padding, border outputs see fewer copies of a constant input.
        return layer.padding == "valid"


class ConvTransposeSurgery(ConvSurgery):
    """Conv1D/2D/3DTranspose, channels-last: kernel `(*spatial, filters, inputs)`."""

    def _taps(self, weights):
        kernel = np.swapaxes(weights[0], -1, -2)
        return kernel.reshape(-1, *kernel.shape[-2:]).astype("float64")

    def can_fold(self, layer):
        # Output positions overlap different numbers of taps (stride, borders): only zeros fold.
        return False

    def rewrite(self, layer, config, weights, keep_in, keep_out, folded):
        kernel = weights[0][..., keep_out, :][..., keep_in]
        config = {**config, "filters": int(keep_out.sum())}
        return config, [kernel] + [w[keep_out] for w in weights[1:]]


class ChannelOp:
    """Identity on the last axis (dropout, pooling, noise): output i is input i."""

    def links(self, layer, in_shapes, out_shape):
        """`[(input index, input positions, output positions)]`, or None when not exact."""
        if len(in_shapes) != 1 or in_shapes[0][-1] != out_shape[-1]:
            return None
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return None
        n = out_shape[-1]
        return [(0, np.arange(n), np.arange(n))]

    def constants(self, layer, weights, in_consts, links, n_out):
        """Output constants from the inputs' (NaN: depends on the model input)."""
        out = np.full(n_out, np.nan)
        for k, in_pos, out_pos in links:
            out[out_pos] = gather_constants(n_out, in_pos, out_pos, in_consts[k])[out_pos]
        return out

    def rewrite(self, layer, config, weights, keep_ins, keep_out):
        """New config and weights for the kept input and output positions."""
        return config, weights


class ActivationOp(ChannelOp):
    """Elementwise activation layers: constants pass through the activation."""

    def links(self, layer, in_shapes, out_shape):
        return super().links(layer, in_shapes, out_shape) if elementwise_activation(layer) else None

    def constants(self, layer, weights, in_consts, links, n_out):
        return apply_to_constants(layer.call, in_consts[0])


class ZeroPaddingOp(ChannelOp):
    """ZeroPadding1D/2D/3D: a channel keeps its position, but only a zero constant stays constant
    (a padded border of any other constant depends on the position)."""

    def constants(self, layer, weights, in_consts, links, n_out):
        return np.where(in_consts[0] == 0, 0.0, np.nan)


class BatchNormOp(ChannelOp):
    """BatchNormalization over the last axis: slice gamma/beta/mean/variance."""

    def links(self, layer, in_shapes, out_shape):
        if layer.axis not in (-1, len(out_shape) - 1):
            return None
        return super().links(layer, in_shapes, out_shape)

    def constants(self, layer, weights, in_consts, links, n_out):
        gamma = ops.convert_to_numpy(layer.gamma) if layer.scale else 1.0
        beta = ops.convert_to_numpy(layer.beta) if layer.center else 0.0
        mean = ops.convert_to_numpy(layer.moving_mean)
        var = ops.convert_to_numpy(layer.moving_variance)
        return (in_consts[0] - mean) / np.sqrt(var + layer.epsilon) * gamma + beta

    def rewrite(self, layer, config, weights, keep_ins, keep_out):
        return config, [w[keep_out] for w in weights]


class MergeOp(ChannelOp):
    """Elementwise merges of same-shaped inputs: position i of every input is output i."""

    def __init__(self, combine):
        self.combine = combine

    def links(self, layer, in_shapes, out_shape):
        if any(tuple(s) != tuple(out_shape) for s in in_shapes):
            return None  # broadcasting would mix positions
        n = out_shape[-1]
        return [(k, np.arange(n), np.arange(n)) for k in range(len(in_shapes))]

    def constants(self, layer, weights, in_consts, links, n_out):
        return self.combine(np.stack(in_consts))


class ConcatOp(ChannelOp):
    """Concatenate on the last axis: input k's positions sit at its offset in the output."""

    def links(self, layer, in_shapes, out_shape):
        if layer.axis not in (-1, len(out_shape) - 1):
            return None
        sizes = [s[-1] for s in in_shapes]
        offsets = np.cumsum([0] + sizes)
        return [(k, np.arange(n), offsets[k] + np.arange(n)) for k, n in enumerate(sizes)]


class ReshapeOp(ChannelOp):
    """Flatten and Reshape, when one last axis divides the other (channel-last flatten order)."""

    def links(self, layer, in_shapes, out_shape):
        a, b = in_shapes[0][-1], out_shape[-1]
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return None
        if a % b == 0:  # each input row splits into output rows: output j is input i % b
            return [(0, np.arange(a), np.arange(a) % b)]
        if b % a == 0:  # output rows join input rows: output j is input j % a
            return [(0, np.arange(b) % a, np.arange(b))]
        return None

    def rewrite(self, layer, config, weights, keep_ins, keep_out):
        if "target_shape" in config:
            config = {**config, "target_shape": (*config["target_shape"][:-1], int(keep_out.sum()))}
        return config, weights


class DepthwiseOp(ChannelOp):
    """DepthwiseConv1D/2D: input channel c makes outputs `c*m .. c*m+m-1` (m: depth_multiplier)."""

    def links(self, layer, in_shapes, out_shape):
        c, m = in_shapes[0][-1], layer.depth_multiplier
        if layer.data_format != "channels_last" or not elementwise_activation(layer):
            return None
        if len(layer.get_weights()) != 1 + bool(layer.use_bias):
            return None
        return [(0, np.repeat(np.arange(c), m), np.arange(c * m))]

    def constants(self, layer, weights, in_consts, links, n_out):
        kernel = weights[0].astype("float64")
        bias = weights[1] if len(weights) > 1 else 0.0
        c_in = np.repeat(in_consts[0], layer.depth_multiplier)
        ksum = kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1])
        dead = ~np.any(ksum != 0, axis=0)  # output ignores its input: bias only
        fold_ok = np.isfinite(c_in) & ((c_in == 0) | (layer.padding == "valid"))
        pre = bias + np.where(fold_ok & ~dead, c_in, 0.0) * ksum.sum(0)
        return np.where(dead | fold_ok, apply_to_constants(layer.activation, pre), np.nan)

    def rewrite(self, layer, config, weights, keep_ins, keep_out):
        keep_c = keep_ins[0]
        new = [weights[0][..., keep_c, :]]
        if len(weights) > 1:
            new.append(weights[1].reshape(len(keep_c), -1)[keep_c].ravel())
        return config, new
