"""Removing LSTM hidden units whose state is always 0, by shrinking the layer and its consumer.

A unit can go without changing any output when its h is 0 at every step:

- Structurally: its candidate (g) gate reads nothing but units that are themselves always 0
  (zero columns in both effective kernels) and its g bias is 0, so from a zero initial state c
  stays 0 and h = o * tanh(0) = 0. A unit whose four gate columns are masked but whose g bias
  is not 0 is *not* dead: it emits a bias-driven, input-independent h(t) that other units and
  the next layer read, so it is kept.
- On data: with hidden-state pruning, a unit whose chunk was never kept while the model predicted
  the calibration data. Exact on that data, an approximation elsewhere (the report says which
  units were removed on this evidence alone).

With hidden-state pruning only whole chunks go, so the remaining chunks keep their members and
the pruning decisions do not change. `LSTMSurgery` gives `tfprune.compact` the same rules (plus
its own: units nobody reads), registered for `keras.layers.LSTM` and `HiddenStatePrunedLSTM`,
the layers `strip` leaves (compact strips MaskedLSTM first).
"""

import keras
import numpy as np

from tfprune import convert
from tfprune.layers import HiddenStatePrunedLSTM, MaskedDense, MaskedMixin
from tfprune.surgery import UnitSurgery, register_unit_surgery

_CONSUMERS = (keras.layers.Dense, MaskedDense, keras.layers.LSTM)


def always_zero(cell, kernel, recurrent, bias, in_const=None):
    """Units whose h is 0 at every step from a zero state: their candidate input stays 0.

    `c_t = f c_{t-1} + i activation(z_g)` stays 0 while `z_g` reads only inputs that are
    constantly 0 (`in_const`) and units that are themselves always 0, with a zero g bias.

    Args:
        cell: the LSTM cell (for `units` and `activation`).
        kernel, recurrent, bias: effective weights as numpy arrays (`bias` may be None).
        in_const: optional per-input constants (NaN: varies with the model input).

    Returns:
        A boolean array over the units.
    """
    units = cell.units
    if _numpy(cell.activation(keras.ops.zeros((1,))))[0] != 0:
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


def dead_units(layer, counted=False):
    """Indices of `layer`'s units whose hidden state is 0 at every step.

    Args:
        layer: a `keras.layers.LSTM`, `HiddenStatePrunedLSTM` or `MaskedLSTM`.
        counted: also take units whose chunk was never kept since the layer's counters were
            last reset (hidden-state-pruned layers that counted at least one step).

    Returns:
        A sorted integer array.
    """
    cell = layer.cell
    kernel, recurrent = (_numpy(k) for k in _kernels(cell))
    dead = always_zero(cell, kernel, recurrent, None if cell.bias is None else _numpy(cell.bias))
    if getattr(cell, "hidden_state", "off") == "off":
        return np.flatnonzero(dead)
    if counted and _numpy(cell.seen_steps) > 0:
        dead |= _numpy(cell.kept_steps) == 0
    whole = dead.reshape(-1, cell.chunk).all(axis=1)
    return np.flatnonzero(whole.repeat(cell.chunk))


def remove_dead_units(model, data=None, batch_size=None):
    """Returns a copy of `model` whose LSTMs lose their always-zero hidden units.

    Each shrunk LSTM loses the units' four gate columns in kernel, recurrent kernel, bias and
    thresholds and their recurrent rows; the layer that reads it (Dense, MaskedDense or an
    LSTM, on the sequence or the last step) loses the matching input rows. Outputs are
    unchanged (on `data` for units found on `data`). Masked layers keep their masks: the
    shrunk kernels are the effective `W * mask` ones.

    Only top-level LSTMs are shrunk, and only when nothing else sees the units: not
    stateful, no returned states or `initial_state`, one consumer of a supported kind that is
    not a model output, `"weight"` granularity (strip the model first otherwise). Layers left
    alone are listed in the report with the reason.

    Args:
        model: a Sequential or functional `keras.Model`; it is left untouched (except that,
            with `data`, its hidden-state counters are reset and refilled).
        data: optional calibration inputs; with hidden-state pruning, units never kept on
            them are removed too.
        batch_size: forwarded to `predict`.

    Returns:
        `(new_model, report)`, report `{lstm name: {"units_before", "units_after",
        "removed", "by_data", "skipped"}}` (`by_data`: removed on the data's evidence alone;
        `skipped`: why the layer was left alone, or None).

    Raises:
        TypeError: `model` is not a Keras model.
    """
    convert.check_model(model, "lstm.remove_dead_units")
    lstms = [layer for layer in model.layers if _is_lstm(layer)]
    if data is not None:
        for layer in lstms:
            if isinstance(layer, HiddenStatePrunedLSTM):
                layer.reset_hidden_state_stats()
        model.predict(data, batch_size=batch_size, verbose=0)
    plans, report = {}, {}
    for layer in lstms:
        units = layer.cell.units
        skipped = _why_not(model, layer)
        dead = np.array([], int) if skipped else dead_units(layer, counted=data is not None)
        keep = np.setdiff1d(np.arange(units), dead)
        if keep.size == 0:  # a layer needs a unit: keep the first chunk
            keep = np.arange(_chunk(layer))
        removed = np.setdiff1d(np.arange(units), keep)
        report[layer.name] = {
            "units_before": units,
            "units_after": int(keep.size),
            "removed": removed.tolist(),
            "by_data": np.setdiff1d(removed, dead_units(layer)).tolist(),
            "skipped": skipped,
        }
        if removed.size:
            plans.setdefault(id(layer), [None, None])[1] = keep
            plans.setdefault(id(_consumer(layer)), [None, None])[0] = keep

    def clone(layer):
        plan = plans.get(id(layer))
        return convert.copy_layer(layer) if plan is None else _shrink(layer, *plan)

    return convert.clone_layers(model, clone), report


# Internals -------------------------------------------------------------------------------------


def _is_lstm(layer):
    """Stock LSTM (exactly: subclasses may override call) or a tfprune LSTM."""
    return type(layer) is keras.layers.LSTM or isinstance(layer, HiddenStatePrunedLSTM)


def _chunk(layer):
    """The unit group that must stay together: a chunk when the hidden state is pruned."""
    return layer.cell.chunk if getattr(layer.cell, "hidden_state", "off") != "off" else 1


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def _kernels(cell):
    if hasattr(cell, "effective_kernels"):
        return cell.effective_kernels()
    return cell.kernel, cell.recurrent_kernel


def _consumer(layer):
    return layer._outbound_nodes[0].operation


def _why_not(model, layer):
    """Why `layer`'s units cannot be removed safely, or None."""
    if layer.stateful or layer.return_state:
        return "stateful or returns its states: other code sees every unit"
    if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].input_tensors) != 1:
        return "shared, or called with initial_state (the zero-state argument needs c0 = 0)"
    if any(out._keras_history.operation is layer for out in model.outputs):
        return "its units are model outputs"
    if len(layer._outbound_nodes) != 1:
        return "feeds several layers"
    consumer = _consumer(layer)
    if type(consumer) not in _CONSUMERS and not _is_lstm(consumer):
        return f"feeds {type(consumer).__name__}; only Dense and LSTM inputs can be shrunk"
    for each in (layer.cell, consumer, getattr(consumer, "cell", None)):
        if isinstance(each, MaskedMixin) and each.granularity != "weight":
            return f"granularity {each.granularity!r} of '{each.name}': strip the model first"
    return None


def _shrink(layer, rows, units):
    """A copy of `layer` keeping input rows `rows` and, for an LSTM, hidden units `units`."""
    lstm = _is_lstm(layer)
    config = layer.get_config()
    if units is not None:
        config["units"] = int(units.size)
    new = type(layer).from_config(config)
    shape = list(layer.get_build_config()["input_shape"])
    if rows is not None:
        shape[-1] = int(rows.size)
    new.build(tuple(shape))
    old_owner, new_owner = (layer.cell, new.cell) if lstm else (layer, new)
    rows = slice(None) if rows is None else rows
    if lstm:
        n = old_owner.units
        units = np.arange(n) if units is None else units
        cols = np.concatenate([gate * n + units for gate in range(4)])
        slices = {
            "kernel": lambda w: w[rows][:, cols],
            "recurrent_kernel": lambda w: w[units][:, cols],
            "bias": lambda w: w[cols],
            "kernel_threshold": lambda w: w[cols],
            "recurrent_threshold": lambda w: w[cols],
            "kept_steps": lambda w: w[units],
        }
    else:
        slices = {"kernel": lambda w: w[rows]}
    sources = {variable.name: variable for variable in old_owner.weights}
    for variable in new_owner.weights:
        value = _effective(old_owner, sources[variable.name])
        variable.assign(slices.get(variable.name, lambda w: w)(value))
    return new


def _effective(owner, variable):
    if isinstance(owner, MaskedMixin) and variable.name in owner.MASKED:
        return _numpy(owner.masked_kernel(variable.name))
    return _numpy(variable)


class LSTMSurgery(UnitSurgery):
    """`tfprune.compact`'s rules for LSTM hidden units (stock and HiddenStatePrunedLSTM).

    A unit goes when nothing kept reads it (zero rows in the next layer and in the recurrent
    kernel towards kept units) or when it is always 0. The units of one hidden-state chunk read
    each other (the chunk's summed |h| gates them all), so chunks go whole and the remaining
    chunks keep their members. A constant input folds into the gate biases.
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
        if getattr(layer.cell, "hidden_state", "off") != "off":
            chunk = np.arange(layer.cell.units) // layer.cell.chunk
            reads |= chunk[:, None] == chunk[None, :]
        return reads

    def constants(self, layer, weights, in_const):
        named = _named(layer, weights)
        zero = always_zero(
            layer.cell, named["kernel"], named["recurrent_kernel"], named.get("bias"), in_const
        )
        return np.where(zero, 0.0, np.nan)

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


_LSTM_VARIABLES = {
    "kernel",
    "recurrent_kernel",
    "bias",
    "hidden_threshold",
    "kept_steps",
    "seen_steps",
}
register_unit_surgery(keras.layers.LSTM, LSTMSurgery())
register_unit_surgery(HiddenStatePrunedLSTM, LSTMSurgery())
