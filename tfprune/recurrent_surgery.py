"""`compact`'s rule for the hidden units of GRU and SimpleRNN layers.

A unit is dead when its h is 0 at every step from a zero initial state: its candidate (the
SimpleRNN pre-activation, the GRU's `hh`) reads only inputs that are constantly 0 and units that
are themselves always 0, its candidate biases are 0, and the activation maps 0 to 0. Then
`h = z * h + (1 - z) * 0` stays 0 for the GRU, `activation(0) = 0` for the SimpleRNN. It also
goes when nothing kept reads it (zero rows in the next layer and in the recurrent kernel).
A constant input folds into the input bias.
"""

import numpy as np
from keras import ops

from tfprune.surgery import UnitSurgery

_PLAIN = {"kernel", "recurrent_kernel", "bias"}


class RecurrentSurgery(UnitSurgery):
    """Units of a Keras recurrent layer whose kernels are `(inputs, gates * units)`.

    Args:
        gates: gate blocks along the kernel's columns (GRU 3: z, r, h; SimpleRNN 1).
        candidate: the block whose zero keeps h at 0 (GRU's h block 2; SimpleRNN's 0).
    """

    def __init__(self, gates, candidate):
        self.gates, self.candidate = gates, candidate

    def supports(self, layer):
        names = {variable.name for variable in layer.weights}
        return not layer.stateful and names <= _PLAIN

    def output_fixed(self, layer):
        return False  # units are independent outputs of the layer

    def _split(self, kernel):
        return kernel.reshape(kernel.shape[0], self.gates, -1)

    def usage(self, layer, weights):
        return (self._split(weights[0]) != 0).any(axis=1)

    def recurrent_usage(self, layer, weights):
        reads = (self._split(weights[1]) != 0).any(axis=1)
        return reads & ~self.always_zero(layer, weights)[:, None]

    def always_zero(self, layer, weights, in_const=None):
        """Units whose h is 0 at every step (see the module docstring)."""
        cell = layer.cell
        if float(ops.convert_to_numpy(cell.activation(ops.zeros((1,))))[0]) != 0:
            return np.zeros(cell.units, bool)
        kernel, recurrent = self._split(weights[0]), self._split(weights[1])
        varying = np.ones(kernel.shape[0], bool)
        if in_const is not None:
            varying = ~(np.isfinite(in_const) & (in_const == 0))
        zero = ~(kernel[varying, self.candidate] != 0).any(axis=0)
        if len(weights) > 2:
            bias = weights[2].reshape(-1, self.gates, cell.units)
            zero &= ~(bias[:, self.candidate] != 0).any(axis=0)
        while True:  # drop units whose candidate reads a unit that is not always 0
            still = zero & ~(recurrent[~zero, self.candidate] != 0).any(axis=0)
            if (still == zero).all():
                return zero
            zero = still

    def constants(self, layer, weights, in_const):
        return np.where(self.always_zero(layer, weights, in_const), 0.0, np.nan)

    def rewrite(self, layer, config, weights, keep_in, keep_out, folded):
        kernel, recurrent = weights[0], weights[1]
        units = layer.cell.units
        cols = np.concatenate([g * units + np.flatnonzero(keep_out) for g in range(self.gates)])
        if len(weights) > 2:
            bias = weights[2]
        else:  # a GRU with reset_after keeps input and recurrent biases in two rows
            rows = 2 if getattr(layer.cell, "reset_after", False) else 1
            bias = np.zeros((rows, self.gates * units), kernel.dtype).squeeze(0)
        rows = bias.reshape(-1, self.gates * units).copy()
        rows[0] += folded @ kernel  # the input bias (GRU reset_after: row 0 of two)
        use_bias = bool(config.get("use_bias", True)) or bool(np.any(rows != 0))
        bias = rows.reshape(bias.shape)
        config = {**config, "units": int(keep_out.sum()), "use_bias": use_bias}
        new = [kernel[keep_in][:, cols], recurrent[keep_out][:, cols]]
        return config, new + ([bias[..., cols].astype(kernel.dtype)] if use_bias else [])
