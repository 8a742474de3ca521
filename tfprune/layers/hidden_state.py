"""HiddenStatePrunedLSTM: an LSTM whose hidden state is pruned in chunks by a threshold.

`h_t` is split into chunks of `chunk` units; a chunk whose summed |h| is at or below the
threshold is zeroed before it feeds `U h_t` and the output, so a sparse kernel can skip the
chunk's rows of `U`. This is the inference form `tfprune.strip` leaves; `MaskedLSTM` (lstm.py)
subclasses it to add DST weight masks and trainable thresholds.

The layer computes the (masked) kernels and the input projection `x W + b` once per sequence
and runs only `h U` inside the time loop, which keeps it as fast as `keras.layers.LSTM`. It
also counts, per unit, how often the unit's chunk was kept; `hidden_state_stats()` turns the
counts into the hidden-state sparsity and the share of recurrent multiply-adds skipped.
"""

import inspect

import keras
import numpy as np
from keras import ops
from keras.src import backend  # backend.rnn: the time loop keras.layers.RNN runs, not public

from tfprune.estimator import binary_step

_CELL_ARGS = frozenset(inspect.signature(keras.layers.LSTMCell.__init__).parameters) - {
    "self",
    "units",
    "kwargs",
} | {"implementation"}  # LSTMCell takes it through **kwargs


def _check_chunk(chunk, units):
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer. Received: chunk={chunk!r}")
    if units % chunk:
        divisors = [d for d in range(1, units + 1) if units % d == 0]
        raise ValueError(
            f"chunk={chunk} does not divide units={units}: hidden-state pruning splits h into "
            f"equal chunks. Use a chunk in {divisors} or change units."
        )


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
class HiddenStatePrunedLSTMCell(keras.layers.LSTMCell):
    """`keras.layers.LSTMCell` that zeroes the chunks of `h_t` at or below a fixed threshold.

    The counters behind `hidden_state_stats` are filled by the layer (`HiddenStatePrunedLSTM`),
    which sees the whole output sequence; a bare cell inside `keras.layers.RNN` only prunes.

    Args:
        units: positive integer, dimensionality of the output space.
        chunk: units per chunk; must divide `units`.
        hidden_threshold: initial threshold on a chunk's summed |h| (the value lives in the
            `hidden_threshold` weight, so calibration survives saving).
        hidden_state: `"fixed"`; `MaskedLSTMCell` also accepts `"off"` and `"trained"`.
        **kwargs: the arguments of `keras.layers.LSTMCell`.

    Raises:
        ValueError: `chunk` does not divide `units`, or an unknown `hidden_state`.
    """

    HIDDEN_MODES = ("fixed",)

    def __init__(self, units, chunk=4, hidden_threshold=0.0, hidden_state="fixed", **kwargs):
        super().__init__(units, **kwargs)
        if hidden_state not in self.HIDDEN_MODES:
            raise ValueError(
                f"{type(self).__name__} supports hidden_state in {self.HIDDEN_MODES}. "
                f"Received: hidden_state={hidden_state!r}"
            )
        if hidden_state != "off":
            _check_chunk(chunk, units)
        self.hidden_state = hidden_state
        self.chunk = chunk
        self.initial_hidden_threshold = float(hidden_threshold)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_hidden_state()

    def build_hidden_state(self, penalty=None):
        """Adds the hidden threshold and the per-unit counters behind `hidden_state_stats`."""
        trained = self.hidden_state == "trained"
        self.hidden_threshold = self.add_weight(
            name="hidden_threshold",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_hidden_threshold),
            trainable=trained,
            regularizer=penalty if trained else None,
        )
        self.kept_steps = self.add_weight(
            name="kept_steps",
            shape=(self.units,),
            initializer="zeros",
            dtype="int64",
            trainable=False,
        )
        self.seen_steps = self.add_weight(
            name="seen_steps", shape=(), initializer="zeros", dtype="int64", trainable=False
        )

    # Computation -----------------------------------------------------------------------------

    def effective_kernels(self):
        """`(kernel, recurrent_kernel)` as the cell computes with them."""
        return self.kernel, self.recurrent_kernel

    def input_projection(self, inputs, kernel, training=False):
        """`x W + b` for one step `(batch, features)` or a whole sequence `(batch, time, ...)`."""
        masks = None
        if training and 0.0 < self.dropout < 1.0:
            masks = self.get_dropout_mask(inputs if len(inputs.shape) == 2 else inputs[:, 0])
        z = _per_gate(inputs, kernel, masks)
        return z if self.bias is None else z + self.bias

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
        h = self.prune_hidden(gate(z_o) * self.activation(c))
        return h, [h, c]

    def call(self, inputs, states, training=False):
        kernel, recurrent_kernel = self.effective_kernels()
        z_x = self.input_projection(inputs, kernel, training)
        return self.recurrent_step(z_x, states, recurrent_kernel, training)

    def prune_hidden(self, h):
        """Zeroes every chunk of `h` whose summed |h| is at or below the hidden threshold."""
        if self.hidden_state == "off":
            return h
        chunks = ops.reshape(h, (-1, self.units // self.chunk, self.chunk))
        score = ops.sum(ops.abs(chunks), axis=-1, keepdims=True)
        keep = binary_step(score - ops.cast(self.hidden_threshold, h.dtype))
        return ops.reshape(chunks * keep, ops.shape(h))

    # Hidden-state statistics -----------------------------------------------------------------

    def record_hidden_state(self, outputs, mask=None):
        """Adds the chunks kept in `outputs` `(batch, time, units)` to the counters."""
        shape = ops.shape(outputs)
        chunks = ops.reshape(outputs, (shape[0], shape[1], self.units // self.chunk, self.chunk))
        kept = ops.cast(ops.sum(ops.abs(chunks), axis=-1) > 0, "int64")
        steps = ops.cast(shape[0] * shape[1], "int64")
        if mask is not None:
            valid = ops.cast(mask, "int64")
            kept = kept * ops.expand_dims(valid, -1)
            steps = ops.sum(valid)
        self.kept_steps.assign_add(ops.repeat(ops.sum(kept, axis=(0, 1)), self.chunk))
        self.seen_steps.assign_add(steps)

    def reset_hidden_state_stats(self):
        """Zeroes the counters (e.g. before measuring on calibration data)."""
        self.kept_steps.assign(ops.zeros_like(self.kept_steps))
        self.seen_steps.assign(0)

    def hidden_state_stats(self):
        """Figures over the steps the layer ran since the counters were last reset.

        Returns:
            `{"hidden_sparsity", "recurrent_macs_skipped", "hidden_threshold", "steps"}`:
            the share of chunks zeroed (NaN if no step was seen; 0 when pruning is off), and the
            share of the dense `h U` multiply-adds that zero chunks and zero weights together
            let a sparse kernel skip.
        """
        steps = int(ops.convert_to_numpy(self.seen_steps))
        recurrent = np.asarray(ops.convert_to_numpy(self.effective_kernels()[1]))
        row_nonzero = np.count_nonzero(recurrent, axis=1)
        if self.hidden_state == "off":
            kept = np.ones(self.units)
        elif steps:
            kept = np.asarray(ops.convert_to_numpy(self.kept_steps)) / steps
        else:
            kept = np.full(self.units, np.nan)
        return {
            "hidden_sparsity": float(1.0 - kept.mean()),
            "recurrent_macs_skipped": float(1.0 - kept @ row_nonzero / recurrent.size),
            "hidden_threshold": float(ops.convert_to_numpy(self.hidden_threshold)),
            "steps": steps,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "chunk": self.chunk,
            "hidden_threshold": self.initial_hidden_threshold,
            "hidden_state": self.hidden_state,
        }


@keras.saving.register_keras_serializable(package="tfprune")
class HiddenStatePrunedLSTM(keras.layers.LSTM):
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

    cell_class = HiddenStatePrunedLSTMCell

    def __init__(self, units, chunk=4, hidden_threshold=0.0, **kwargs):
        self._init_layer(units, {"chunk": chunk, "hidden_threshold": hidden_threshold}, kwargs)

    def _init_layer(self, units, cell_options, kwargs):
        """What `keras.layers.LSTM.__init__` does, with this class's cell."""
        if kwargs.pop("use_cudnn", "auto") is True:
            raise ValueError(
                f"{type(self).__name__} cannot run on cuDNN: its masks and chunk pruning are not "
                "cuDNN ops. Received: use_cudnn=True; pass 'auto' or False."
            )
        cell_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in _CELL_ARGS}
        cell = self.cell_class(
            units,
            **cell_options,
            **cell_kwargs,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
        )
        keras.layers.RNN.__init__(self, cell, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.use_cudnn = False  # keeps Bidirectional's fused path, which skips the cell, away
        # The cell is what DynamicPrune, its layer_targets and sparsity_report see: name it
        # after the layer so `sparsity/<layer name>` keys and targets use the name users know.
        cell.name = self.name
        # A runtime switch, not config: tflite_export turns it off so that the exported graph
        # carries no counter variables and keeps only the last output when that is all it returns.
        self.records_stats = True

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """Masks and `x W + b` once per sequence; only `h U` runs inside the time loop."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        cell = self.cell
        kernel, recurrent_kernel = cell.effective_kernels()
        z_x = cell.input_projection(sequences, kernel, training)
        counting = cell.hidden_state != "off" and self.records_stats

        def step(z_t, states):
            return cell.recurrent_step(z_t, states, recurrent_kernel, training)

        last, outputs, states = backend.rnn(
            step,
            z_x,
            list(initial_state),
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences or counting,
        )
        if counting:
            if mask is not None and self.go_backwards:
                mask = ops.flip(mask, axis=1)  # outputs come back in processing order
            cell.record_hidden_state(outputs, mask)
        return last, outputs, states

    @property
    def chunk(self):
        return self.cell.chunk

    @property
    def hidden_state(self):
        return self.cell.hidden_state

    def hidden_state_stats(self):
        """See `HiddenStatePrunedLSTMCell.hidden_state_stats`."""
        return self.cell.hidden_state_stats()

    def reset_hidden_state_stats(self):
        self.cell.reset_hidden_state_stats()

    def get_config(self):
        return {
            **super().get_config(),
            "chunk": self.cell.chunk,
            "hidden_threshold": self.cell.initial_hidden_threshold,
        }
