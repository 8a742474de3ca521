"""LSTMs with hidden-state pruning (`HiddenStatePrunedLSTM`) and DST weight masks (`MaskedLSTM`).

`HiddenStatePrunedLSTM` is the inference form `tfprune.strip` leaves: a stock LSTM whose cell
holds a `HiddenStatePruning` component. `MaskedLSTM` adds DST masks on both kernels, one
threshold per gate column (4*units each), with the estimator and alpha penalty every masked
layer shares, and the hidden-state threshold off, fixed or trained.

The layers compute the (masked) kernels and the input projection `x W + b` once per sequence
and run only `h U` inside the time loop, which keeps them as fast as `keras.layers.LSTM`.
"""

import keras
import numpy as np
from keras import ops

from tfprune.estimator import binary_step
from tfprune.layers.base import MaskedMixin, ThresholdPenalty
from tfprune.layers.hidden_state import HIDDEN_MODES, HiddenStateCell, HiddenStateLayer
from tfprune.layers.rnn_loop import KernelsOnceRNN

def _expand(mask, x):
    """A per-sample dropout mask broadcast over the time axis of a sequence."""
    return mask if len(x.shape) == 2 else ops.expand_dims(mask, 1)


def _per_gate(x, kernel, masks):
    """`x @ kernel`, with one dropout mask per gate when `masks` is a list (implementation 1)."""
    if masks is None:
        return ops.matmul(x, kernel)
    if not isinstance(masks, (list, tuple)):
        return ops.matmul(x * _expand(masks, x), kernel)
    gates = ops.split(kernel, 4, axis=1)
    return ops.concatenate(
        [ops.matmul(x * _expand(m, x), k) for m, k in zip(masks, gates)], axis=-1
    )


@keras.saving.register_keras_serializable(package="tfprune")
class HiddenStatePrunedLSTMCell(HiddenStateCell, keras.layers.LSTMCell):
    """`keras.layers.LSTMCell` that zeroes the chunks of `h_t` at or below a fixed threshold.

    The counters behind `hidden_state_stats` are filled by the layer (`HiddenStatePrunedLSTM`),
    which sees the whole output sequence; a bare cell inside `keras.layers.RNN` only prunes.

    Args:
        units: positive integer, dimensionality of the output space.
        chunk: units per chunk; must divide `units`.
        hidden_threshold: initial threshold on a chunk's summed |h|.
        hidden_state: `"fixed"`; `MaskedLSTMCell` also accepts `"off"` and `"trained"`.
        **kwargs: the arguments of `keras.layers.LSTMCell`.

    Raises:
        ValueError: `chunk` does not divide `units`, or an unknown `hidden_state`.
    """

    def effective_weights(self):
        """`(kernel, recurrent_kernel, bias)` as the cell computes with them."""
        return self.kernel, self.recurrent_kernel, self.bias

    def input_projection(self, inputs, kernel, bias, training=False):
        """`x W + b` for one step `(batch, features)` or a whole sequence `(batch, time, ...)`."""
        masks = None
        if training and 0.0 < self.dropout < 1.0:
            masks = self.get_dropout_mask(inputs if len(inputs.shape) == 2 else inputs[:, 0])
        z = _per_gate(inputs, kernel, masks)
        return z if bias is None else z + bias

    def recurrent_step(self, z_x, states, recurrent_kernel, training=False):
        """One LSTM step from the precomputed input projection `z_x`."""
        h_tm1, c_tm1 = states
        masks = None
        if training and 0.0 < self.recurrent_dropout < 1.0:
            masks = self.get_recurrent_dropout_mask(h_tm1)
        z = z_x + _per_gate(h_tm1, recurrent_kernel, masks)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        gate = self.recurrent_activation
        c = gate(z_f) * c_tm1 + gate(z_i) * self.activation(z_c)
        h = self.hidden.prune(gate(z_o) * self.activation(c))
        return h, [h, c]

    def call(self, inputs, states, training=False):
        kernel, recurrent_kernel, bias = self.effective_weights()
        z_x = self.input_projection(inputs, kernel, bias, training)
        return self.recurrent_step(z_x, states, recurrent_kernel, training)

    def effective_recurrent_kernel(self):
        return self.effective_weights()[1]


@keras.saving.register_keras_serializable(package="tfprune")
class HiddenStatePrunedLSTM(HiddenStateLayer, KernelsOnceRNN, keras.layers.LSTM):
    """`keras.layers.LSTM` whose hidden state is pruned chunk-wise by a fixed threshold.

    Takes every argument of `keras.layers.LSTM` plus `chunk` and `hidden_threshold`;
    `use_cudnn=True` is refused (the chunk threshold is not a cuDNN op), so the generic loop runs.

    Args:
        units: positive integer, dimensionality of the output space.
        chunk: units per chunk; must divide `units`.
        hidden_threshold: threshold on a chunk's summed |h|.
        **kwargs: the arguments of `keras.layers.LSTM`.

    Raises:
        ValueError: `chunk` does not divide `units`.

    >>> layer = HiddenStatePrunedLSTM(8, chunk=4, hidden_threshold=0.5)
    >>> layer(np.ones((2, 5, 3))).shape
    (2, 8)
    """

    stock_cell = keras.layers.LSTMCell
    cell_class = HiddenStatePrunedLSTMCell

    def __init__(self, units, chunk=4, hidden_threshold=0.0, **kwargs):
        self._init_layer(units, {"chunk": chunk, "hidden_threshold": hidden_threshold}, kwargs)

    def sequence_step(self, sequences, training):
        """Masks and `x W + b` once per sequence; only `h U` runs inside the time loop."""
        cell = self.cell
        kernel, recurrent_kernel, bias = cell.effective_weights()
        z_x = cell.input_projection(sequences, kernel, bias, training)

        def step(z_t, states):
            return cell.recurrent_step(z_t, states, recurrent_kernel, training)

        return step, z_x


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedLSTMCell(MaskedMixin, HiddenStatePrunedLSTMCell):
    """The cell of `MaskedLSTM`, with the same arguments (those of `keras.layers.LSTMCell`
    plus `granularity`, `prune_weights`, `hidden_state`, `chunk` and `hidden_threshold`)."""

    MASKED = {"kernel": "kernel_threshold", "recurrent_kernel": "recurrent_threshold"}
    RESETS = False  # the paper exempts LSTMs from the reset rule
    HIDDEN_MODES = HIDDEN_MODES

    def __init__(
        self,
        units,
        granularity="weight",
        prune_weights=True,
        hidden_state="off",
        chunk=4,
        hidden_threshold=0.0,
        **kwargs,
    ):
        super().__init__(
            units,
            chunk=chunk,
            hidden_threshold=hidden_threshold,
            hidden_state=hidden_state,
            **kwargs,
        )
        self._init_granularity(granularity)
        if self.granularity == "unit":
            self.MASKED = {"kernel": "unit_threshold", "recurrent_kernel": "unit_threshold"}
        if not isinstance(prune_weights, (bool, np.bool_)):
            raise ValueError(
                "Expected prune_weights to be True (DST masks on both kernels) or False "
                f"(hidden-state pruning only). Received: prune_weights={prune_weights!r}"
            )
        self.prune_weights = bool(prune_weights)

    def build(self, input_shape):
        keras.layers.LSTMCell.build(self, input_shape)
        self.build_masks()
        for threshold in self.threshold_variables():
            threshold.trainable = self.prune_weights
        self.hidden.build(self, ThresholdPenalty(self.alpha))

    def threshold_shape(self, kernel_shape):
        """One threshold per gate column, or per hidden unit with `granularity="unit"`."""
        return (self.units,) if self.granularity == "unit" else tuple(kernel_shape[-1:])

    def unit_scores(self):
        """Mean |w| of each hidden unit's group: its four gate columns in both kernels and its
        row of the recurrent kernel (what computes the unit, and what reads it inside the layer).
        """
        kernel = ops.abs(ops.reshape(self.scored(self.kernel), (-1, 4, self.units)))
        recurrent = ops.abs(ops.reshape(self.scored(self.recurrent_kernel), (self.units, 4, self.units)))
        total = (
            ops.sum(kernel, axis=(0, 1))
            + ops.sum(recurrent, axis=(0, 1))
            + ops.sum(recurrent, axis=(1, 2))
        )
        return total / (4 * kernel.shape[0] + 8 * self.units)

    def unit_mask(self):
        """0/1 per hidden unit (`granularity="unit"`), through the long-tailed estimator."""
        scores = self.unit_scores()
        return binary_step(scores - ops.cast(self.unit_threshold, scores.dtype))

    def mask(self, kernel_name="kernel", kernel=None):
        if self.granularity != "unit":
            return super().mask(kernel_name, kernel)
        unit = self.unit_mask()
        columns = ops.tile(unit, (4,))[None, :]
        if kernel_name == "kernel":
            return ops.broadcast_to(columns, self.kernel.shape)
        return columns * unit[:, None]

    def effective_weights(self):
        """The masked kernels; with `granularity="unit"` a masked unit's biases are masked too,
        so its gates read nothing, `c` stays 0 and `h = o * tanh(0) = 0`: the unit is dead
        (from a zero initial state) and `compact` removes it exactly."""
        kernel = self.masked_kernel("kernel")
        recurrent = self.masked_kernel("recurrent_kernel")
        bias = self.bias
        if self.granularity == "unit" and bias is not None:
            bias = bias * ops.tile(self.unit_mask(), (4,))
        return kernel, recurrent, bias

    def effective(self, name):
        if name == "bias":
            return self.effective_weights()[2]
        return super().effective(name)

    def target_counts(self):
        """Hidden units with `granularity="unit"` (a target of 0.75 removes 75% of them)."""
        if self.granularity != "unit":
            return super().target_counts()
        kept = float(ops.convert_to_numpy(ops.sum(self.unit_mask())))
        return self.units, self.units - kept

    def pruning_logs(self):
        """Weight sparsity, plus hidden-state figures since the previous call (which resets them).

        Resetting makes each epoch's log describe that epoch's batches.
        """
        stats = self.hidden_state_stats()
        self.reset_hidden_state_stats()
        logs = {
            f"sparsity/{self.name}": self.sparsity(),
            f"hidden_sparsity/{self.name}": stats["hidden_sparsity"],
            f"recurrent_macs_skipped/{self.name}": stats["recurrent_macs_skipped"],
        }
        if self.granularity == "unit":
            size, pruned = self.target_counts()
            logs[f"units_kept/{self.name}"] = int(round(size - pruned))
        return logs

    def get_config(self):
        config = {**super().get_config(), **self.masking_config()}
        return {**config, "prune_weights": self.prune_weights}


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedLSTM(HiddenStatePrunedLSTM):
    """A `keras.layers.LSTM` for Dynamic Sparse Training and hidden-state pruning.

    Both kernels are masked by `step(|W| - t)` with one trainable threshold per gate column
    (4*units each), or per hidden unit with `granularity="unit"`; thresholds start at 0, so a fresh layer computes exactly what the stock
    LSTM does. `tfprune.DynamicPrune` sets alpha and logs `sparsity/<name>`,
    `hidden_sparsity/<name>` and `recurrent_macs_skipped/<name>`; the reset rule is skipped, as
    in the paper. Every `keras.layers.LSTM` argument is supported (return_sequences,
    return_state, go_backwards, stateful, unroll, dropout, recurrent_dropout, masking,
    initial_state, ...); `use_cudnn=True` is refused because masks and chunk pruning are not
    cuDNN ops, so the generic loop runs, also inside Bidirectional.

    Args:
        units: positive integer, dimensionality of the output space.
        granularity: `"weight"` (default, the paper), `"unit"` (whole hidden units: one
            threshold per unit over its four gate columns in both kernels, its gate biases and
            its row of the recurrent kernel; a masked unit is dead and `tfprune.compact` removes
            it with the consumer's rows) or a block `(1, n)` along the input rows.
        thresholds: `"unit"` (default) or `"layer"` (one threshold per kernel).
        weight_gradient: `"estimator"` (default, the paper) or `"masked"` (`MaskedMixin`).
        prune_weights: False keeps the weight thresholds at 0 and untrained (hidden-state
            pruning only).
        hidden_state: `"off"` (default), `"fixed"` (threshold set by hand or by
            `tfprune.lstm.calibrate`) or `"trained"` (learned like the weight thresholds).
        chunk: units per hidden-state chunk (default 4); must divide `units` unless off.
        hidden_threshold: initial threshold on a chunk's summed |h|.
        **kwargs: the arguments of `keras.layers.LSTM`.

    Raises:
        ValueError: `chunk` does not divide `units`, an unknown `hidden_state` or granularity.

    >>> layer = MaskedLSTM(8, hidden_state="fixed", hidden_threshold=0.1)
    >>> layer(np.ones((2, 5, 3))).shape
    (2, 8)
    """

    cell_class = MaskedLSTMCell

    def __init__(
        self,
        units,
        granularity="weight",
        prune_weights=True,
        hidden_state="off",
        chunk=4,
        hidden_threshold=0.0,
        thresholds="unit",
        weight_gradient="estimator",
        **kwargs,
    ):
        options = {
            "granularity": granularity,
            "thresholds": thresholds,
            "weight_gradient": weight_gradient,
            "prune_weights": prune_weights,
            "hidden_state": hidden_state,
            "chunk": chunk,
            "hidden_threshold": hidden_threshold,
        }
        self._init_layer(units, options, kwargs)

    def masking_config(self):
        """The config keys a stock `keras.layers.LSTM` does not know."""
        config = self.get_config()
        keys = ("granularity", "thresholds", "weight_gradient", "prune_weights", "hidden_state", "chunk",
                "hidden_threshold")
        return {key: config[key] for key in keys}

    def get_config(self):
        return {
            **super().get_config(),
            **self.cell.masking_config(),
            "prune_weights": self.cell.prune_weights,
            "hidden_state": self.cell.hidden_state,
        }
