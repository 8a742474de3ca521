"""`compact`'s rules for LSTM hidden units: which are dead, and how a layer loses them.

A unit can go without changing any output when its h is 0 at every step:

- Structurally: its candidate (g) gate reads nothing but inputs that are constantly 0 and units
  that are themselves always 0, and its g bias is 0, so from a zero initial state c stays 0 and
  h = o * tanh(0) = 0. A unit whose four gate columns are masked but whose g bias is not 0 is
  *not* dead: it emits a bias-driven, input-independent h(t) that other units read.
- On data (`compact(model, data=x)`): with hidden-state pruning, a unit whose chunk was never
  kept while the model predicted `x`. Exact on that data, an approximation elsewhere.

Or when nothing kept reads it (zero rows in the next layer and in the recurrent kernel towards
kept units). The units of one hidden-state chunk read each other (the chunk's summed |h| gates
them all), so chunks go whole and the remaining chunks keep their members.
"""

import keras
import numpy as np

from tfprune.layers.lstm import HiddenStatePrunedLSTM
from tfprune.surgery import UnitSurgery

_LSTM_VARIABLES = {
    "kernel",
    "recurrent_kernel",
    "bias",
    "hidden_threshold",
    "kept_steps",
    "seen_steps",
}


def always_zero(cell, kernel, recurrent, bias, in_const=None):
    """Units whose h is 0 at every step from a zero state: their candidate input stays 0.

    `c_t = f c_{t-1} + i activation(z_g)` stays 0 while `z_g` reads only inputs that are
    constantly 0 (`in_const`) and units that are themselves always 0, with a zero g bias.

    Args:
        cell: the LSTM cell (for `units` and `activation`).
        kernel, recurrent, bias: weights as numpy arrays (`bias` may be None).
        in_const: optional per-input constants (NaN: varies with the model input).

    Returns:
        A boolean array over the units.
    """
    units = cell.units
    if np.asarray(keras.ops.convert_to_numpy(cell.activation(keras.ops.zeros((1,)))))[0] != 0:
        return np.zeros(units, bool)  # h = o * activation(0) is not 0
    gate = slice(2 * units, 3 * units)
    varying = np.ones(kernel.shape[0], bool)
    if in_const is not None:
        varying = ~(np.isfinite(in_const) & (in_const == 0))
    zero = ~(kernel[varying, gate] != 0).any(axis=0)
    if bias is not None:
        zero &= bias[gate] == 0
    while True:  # drop units whose candidate reads a unit that is not always 0
        still = zero & ~(recurrent[~zero, gate] != 0).any(axis=0)
        if (still == zero).all():
            return zero
        zero = still


def _chunked(cell):
    return getattr(cell, "hidden_state", "off") != "off"


class LSTMSurgery(UnitSurgery):
    """Hidden units of `keras.layers.LSTM` and `HiddenStatePrunedLSTM` (what `strip` leaves).

    A constant input folds into the gate biases.
    """

    def supports(self, layer):
        return not layer.stateful and {v.name for v in layer.weights} <= _LSTM_VARIABLES

    def usage(self, layer, weights):
        kernel = _named(layer, weights)["kernel"]
        return (kernel.reshape(kernel.shape[0], 4, -1) != 0).any(axis=1)

    def recurrent_usage(self, layer, weights):
        named = _named(layer, weights)
        recurrent = named["recurrent_kernel"]
        reads = (recurrent.reshape(recurrent.shape[0], 4, -1) != 0).any(axis=1)
        zero = always_zero(layer.cell, named["kernel"], recurrent, named.get("bias"))
        reads &= ~zero[:, None]  # a unit that is always 0 feeds nothing
        if _chunked(layer.cell):
            chunk = np.arange(layer.cell.units) // layer.cell.chunk
            reads |= chunk[:, None] == chunk[None, :]
        return reads

    def constants(self, layer, weights, in_const):
        named = _named(layer, weights)
        zero = always_zero(
            layer.cell, named["kernel"], named["recurrent_kernel"], named.get("bias"), in_const
        )
        return np.where(zero, 0.0, np.nan)

    def observed_zero(self, layer, weights):
        named = _named(layer, weights)
        if not _chunked(layer.cell) or not named["seen_steps"]:
            return None
        never = named["kept_steps"] == 0
        return never.reshape(-1, layer.cell.chunk).all(axis=1).repeat(layer.cell.chunk)

    def rewrite(self, layer, config, weights, keep_in, keep_out, folded):
        named = _named(layer, weights)
        kernel, units = named["kernel"], layer.cell.units
        cols = np.concatenate([gate * units + np.flatnonzero(keep_out) for gate in range(4)])
        bias = named.get("bias", np.zeros(4 * units, kernel.dtype)) + folded @ kernel
        use_bias = bool(config.get("use_bias", True)) or bool(np.any(bias != 0))
        sliced = {
            "kernel": kernel[keep_in][:, cols],
            "recurrent_kernel": named["recurrent_kernel"][keep_out][:, cols],
            "bias": bias[cols].astype(kernel.dtype),
        }
        if "kept_steps" in named:
            sliced["kept_steps"] = named["kept_steps"][keep_out]
        order = ["kernel", "recurrent_kernel"] + ["bias"] * use_bias
        order += [name for name in named if name not in ("kernel", "recurrent_kernel", "bias")]
        config = {**config, "units": int(keep_out.sum()), "use_bias": use_bias}
        return config, [sliced.get(name, named.get(name)) for name in order]


def _named(layer, weights):
    return dict(zip((variable.name for variable in layer.weights), weights))


class BidirectionalSurgery(UnitSurgery):
    """A Bidirectional around two LSTMs, merged by concatenation: units `[forward, backward]`.

    Each half keeps its own units, as many as the other half (Keras builds both halves of one
    width); the consumer's rows of a removed unit go with it. Other merge modes add or multiply the halves unit by unit, which
    ties units across halves: those layers are left whole.
    """

    def __init__(self):
        self.half = LSTMSurgery()

    def supports(self, layer):
        halves = (layer.forward_layer, layer.backward_layer)
        return (
            layer.merge_mode == "concat"
            and not layer.return_state
            and all(type(h) in (keras.layers.LSTM, HiddenStatePrunedLSTM) for h in halves)
            and all(self.half.supports(h) for h in halves)
        )

    def _split(self, layer, weights):
        n = len(layer.forward_layer.weights)
        return [(layer.forward_layer, weights[:n]), (layer.backward_layer, weights[n:])]

    def usage(self, layer, weights):
        return np.concatenate([self.half.usage(h, w) for h, w in self._split(layer, weights)], 1)

    def recurrent_usage(self, layer, weights):
        (f, wf), (b, wb) = self._split(layer, weights)
        forward, backward = self.half.recurrent_usage(f, wf), self.half.recurrent_usage(b, wb)
        reads = np.zeros([n + m for n, m in zip(forward.shape, backward.shape)], bool)
        reads[: len(forward), : len(forward)] = forward
        reads[len(forward) :, len(forward) :] = backward
        return reads

    def constants(self, layer, weights, in_const):
        return np.concatenate(
            [self.half.constants(h, w, in_const) for h, w in self._split(layer, weights)]
        )

    def observed_zero(self, layer, weights):
        seen = [self.half.observed_zero(h, w) for h, w in self._split(layer, weights)]
        if all(s is None for s in seen):
            return None
        halves = (layer.forward_layer, layer.backward_layer)
        return np.concatenate(
            [np.zeros(h.cell.units, bool) if s is None else s for s, h in zip(seen, halves)]
        )

    def balance(self, layer, keep_out):
        """Keras builds a Bidirectional's output for two halves of one width: the half that
        loses more units keeps some of its dead ones (exact: they output 0)."""
        n = layer.forward_layer.cell.units
        halves = [keep_out[:n].copy(), keep_out[n:].copy()]
        short, long = sorted(halves, key=lambda kept: kept.sum())
        short[np.flatnonzero(~short)[: long.sum() - short.sum()]] = True
        return np.concatenate(halves)

    def rewrite(self, layer, config, weights, keep_in, keep_out, folded):
        n = layer.forward_layer.cell.units
        config = {**config}
        new = []
        for key, (half, w), keep in zip(
            ("layer", "backward_layer"), self._split(layer, weights), (keep_out[:n], keep_out[n:])
        ):
            half_config, half_weights = self.half.rewrite(
                half, half.get_config(), w, keep_in, keep, folded
            )
            # Without its build config the half is built for the compacted input.
            config[key] = {k: v for k, v in config[key].items() if k != "build_config"}
            config[key]["config"] = half_config
            new += half_weights
        return config, new
