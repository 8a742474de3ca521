"""GRU and SimpleRNN twins: DST masks on both kernels; GRU with chunked hidden-state pruning.

As for the LSTM, the layer computes the (masked) kernels once per sequence and the time loop
runs the cell's `step` with them (`tfprune.layers.rnn_loop`). `HiddenStatePrunedGRU` is what
`tfprune.strip` leaves of a GRU whose hidden state is pruned: a stock GRU whose cell holds a
`HiddenStatePruning` component (the same one the LSTM cells hold).
"""

import keras
from keras import ops, tree

from tfprune.layers.base import MaskedMixin, ThresholdPenalty
from tfprune.layers.hidden_state import HIDDEN_MODES, HiddenStateCell, HiddenStateLayer
from tfprune.layers.rnn_loop import KernelsOnceRNN


# SimpleRNN ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedSimpleRNNCell(MaskedMixin, keras.layers.SimpleRNNCell):
    """The cell of `MaskedSimpleRNN`: a threshold per unit on the kernel and the recurrent kernel."""

    MASKED = {"kernel": "kernel_threshold", "recurrent_kernel": "recurrent_threshold"}
    RESETS = False  # recurrent layers are exempt from the reset rule, as the LSTM in the paper

    def __init__(self, units, granularity="weight", **kwargs):
        super().__init__(units, **kwargs)
        self._init_granularity(granularity)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def effective_kernels(self):
        return self.masked_kernel("kernel"), self.masked_kernel("recurrent_kernel")

    def step(self, inputs, states, kernel, recurrent_kernel, training=False):
        """One step of `keras.layers.SimpleRNNCell` with the given kernels."""
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        h = ops.matmul(inputs, kernel)
        if self.bias is not None:
            h = ops.add(h, self.bias)
        h = h + ops.matmul(h_tm1, recurrent_kernel)
        if self.activation is not None:
            h = self.activation(h)
        return h, [h] if isinstance(states, (list, tuple)) else h

    def call(self, inputs, states, training=False):
        return self.step(inputs, states, *self.effective_kernels(), training=training)

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedSimpleRNN(KernelsOnceRNN, keras.layers.SimpleRNN):
    """A `keras.layers.SimpleRNN` with DST masks on both kernels (one threshold per unit each).

    Args:
        units: positive integer, dimensionality of the output space.
        granularity: `"weight"` (default), `"unit"` or a block `(1, n)` along the input rows.
        thresholds: `"unit"` (default) or `"layer"` (one threshold per kernel).
        weight_gradient: `"estimator"` (default, the paper) or `"masked"` (`MaskedMixin`).
        **kwargs: the arguments of `keras.layers.SimpleRNN`.

    >>> MaskedSimpleRNN(8)(np.ones((2, 5, 3))).shape
    (2, 8)
    """

    stock_cell = keras.layers.SimpleRNNCell
    cell_class = MaskedSimpleRNNCell

    def __init__(self, units, granularity="weight", thresholds="unit", weight_gradient="estimator", **kwargs):
        options = {"granularity": granularity, "thresholds": thresholds, "weight_gradient": weight_gradient}
        self._init_layer(units, options, kwargs)

    def masking_config(self):
        return self.cell.masking_config()

    def get_config(self):
        return {**super().get_config(), **self.cell.masking_config()}


# GRU -------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="tfprune")
class HiddenStatePrunedGRUCell(HiddenStateCell, keras.layers.GRUCell):
    """`keras.layers.GRUCell` that zeroes the chunks of `h_t` at or below a fixed threshold.

    The pruned `h_t` is both the output and the state the next step reads, so the zeroed chunks'
    rows of the recurrent kernel are skipped, as for the LSTM's `h_t`.

    Args:
        units: positive integer, dimensionality of the output space.
        chunk: units per chunk; must divide `units`.
        hidden_threshold: initial threshold on a chunk's summed |h|.
        hidden_state: `"fixed"`; `MaskedGRUCell` also accepts `"off"` and `"trained"`.
        **kwargs: the arguments of `keras.layers.GRUCell`.
    """

    def effective_kernels(self):
        """`(kernel, recurrent_kernel)` as the cell computes with them."""
        return self.kernel, self.recurrent_kernel

    def step(self, inputs, states, kernel, recurrent_kernel, training=False):
        """One GRU step (Keras' fused implementation; gates z, r, h) with the given kernels."""
        h_tm1 = states[0] if tree.is_nested(states) else states
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        h_read = h_tm1
        if training and 0.0 < self.recurrent_dropout < 1.0:
            h_read = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        input_bias = recurrent_bias = None
        if self.use_bias:
            input_bias, recurrent_bias = (
                (self.bias[0], self.bias[1]) if self.reset_after else (self.bias, None)
            )
        x = ops.matmul(inputs, kernel)
        if input_bias is not None:
            x = x + input_bias
        x_z, x_r, x_h = ops.split(x, 3, axis=-1)
        units = self.units
        if self.reset_after:
            inner = ops.matmul(h_read, recurrent_kernel)
            if recurrent_bias is not None:
                inner = inner + recurrent_bias
            rec_z, rec_r, rec_h = ops.split(inner, 3, axis=-1)
        else:
            rec_z, rec_r = ops.split(ops.matmul(h_read, recurrent_kernel[:, : 2 * units]), 2, -1)
        z = self.recurrent_activation(x_z + rec_z)
        r = self.recurrent_activation(x_r + rec_r)
        if self.reset_after:
            rec_h = r * rec_h
        else:
            rec_h = ops.matmul(r * h_read, recurrent_kernel[:, 2 * units :])
        h = self.hidden.prune(z * h_tm1 + (1 - z) * self.activation(x_h + rec_h))
        return h, [h] if tree.is_nested(states) else h

    def call(self, inputs, states, training=False):
        return self.step(inputs, states, *self.effective_kernels(), training=training)

    def effective_recurrent_kernel(self):
        return self.effective_kernels()[1]


@keras.saving.register_keras_serializable(package="tfprune")
class HiddenStatePrunedGRU(HiddenStateLayer, KernelsOnceRNN, keras.layers.GRU):
    """`keras.layers.GRU` whose hidden state is pruned chunk-wise by a fixed threshold.

    Takes every argument of `keras.layers.GRU` plus `chunk` and `hidden_threshold`
    (`use_cudnn=True` is refused: the chunk threshold is not a cuDNN op).

    >>> HiddenStatePrunedGRU(8, chunk=4, hidden_threshold=0.5)(np.ones((2, 5, 3))).shape
    (2, 8)
    """

    stock_cell = keras.layers.GRUCell
    cell_class = HiddenStatePrunedGRUCell

    def __init__(self, units, chunk=4, hidden_threshold=0.0, **kwargs):
        options = {"chunk": chunk, "hidden_threshold": hidden_threshold}
        self._init_layer(units, options, kwargs)



@keras.saving.register_keras_serializable(package="tfprune")
class MaskedGRUCell(MaskedMixin, HiddenStatePrunedGRUCell):
    """The cell of `MaskedGRU` (the arguments of `keras.layers.GRUCell` plus `granularity`,
    `hidden_state`, `chunk` and `hidden_threshold`)."""

    MASKED = {"kernel": "kernel_threshold", "recurrent_kernel": "recurrent_threshold"}
    RESETS = False
    HIDDEN_MODES = HIDDEN_MODES

    def __init__(self, units, granularity="weight", hidden_state="off", **kwargs):
        super().__init__(units, hidden_state=hidden_state, **kwargs)
        self._init_granularity(granularity)

    def build(self, input_shape):
        keras.layers.GRUCell.build(self, input_shape)
        self.build_masks()
        self.hidden.build(self, ThresholdPenalty(self.alpha))

    def effective_kernels(self):
        return self.masked_kernel("kernel"), self.masked_kernel("recurrent_kernel")

    def pruning_logs(self):
        """Weight sparsity, plus hidden-state figures since the previous call (which resets them)."""
        logs = {f"sparsity/{self.name}": self.sparsity()}
        if self.hidden.active:
            stats = self.hidden_state_stats()
            self.reset_hidden_state_stats()
            logs[f"hidden_sparsity/{self.name}"] = stats["hidden_sparsity"]
            logs[f"recurrent_macs_skipped/{self.name}"] = stats["recurrent_macs_skipped"]
        return logs

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedGRU(HiddenStatePrunedGRU):
    """A `keras.layers.GRU` for Dynamic Sparse Training and hidden-state pruning.

    Both kernels are masked with one trainable threshold per gate column (3*units each); with
    `hidden_state` on, chunks of `h_t` whose summed |h| is at or below the threshold are zeroed,
    exactly as in `MaskedLSTM` (`tfprune.lstm.calibrate` sets a fixed threshold).

    Args:
        units: positive integer, dimensionality of the output space.
        granularity: `"weight"` (default), `"unit"` (whole gate columns) or a block `(1, n)`.
        thresholds: `"unit"` (default) or `"layer"` (one threshold per kernel).
        weight_gradient: `"estimator"` (default, the paper) or `"masked"` (`MaskedMixin`).
        hidden_state: `"off"` (default), `"fixed"` or `"trained"`.
        chunk: units per hidden-state chunk; must divide `units` unless off.
        hidden_threshold: initial threshold on a chunk's summed |h|.
        **kwargs: the arguments of `keras.layers.GRU`.

    >>> MaskedGRU(8, hidden_state="fixed", hidden_threshold=0.1)(np.ones((2, 5, 3))).shape
    (2, 8)
    """

    cell_class = MaskedGRUCell

    def __init__(
        self, units, granularity="weight", hidden_state="off", chunk=4, hidden_threshold=0.0,
        thresholds="unit", weight_gradient="estimator", **kwargs,
    ):  # fmt: skip
        options = {
            "granularity": granularity,
            "thresholds": thresholds,
            "weight_gradient": weight_gradient,
            "hidden_state": hidden_state,
            "chunk": chunk,
            "hidden_threshold": hidden_threshold,
        }
        self._init_layer(units, options, kwargs)

    def masking_config(self):
        """The config keys a stock `keras.layers.GRU` does not know."""
        config = self.get_config()
        keys = ("granularity", "thresholds", "weight_gradient", "hidden_state", "chunk", "hidden_threshold")
        return {key: config[key] for key in keys}

    def get_config(self):
        return {
            **super().get_config(),
            **self.cell.masking_config(),
            "hidden_state": self.cell.hidden_state,
        }
