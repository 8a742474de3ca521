"""Hidden-state (chunk) pruning as one component that LSTM and GRU cells hold: options, weights,
op, stats; and the cell and layer faces (`HiddenStateCell`, `HiddenStateLayer`) they share.

`h_t` is split into chunks of `chunk` units; a chunk whose summed |h| is at or below the
threshold is zeroed before it feeds `U h_t` and the output, so a sparse kernel can skip the
chunk's rows of `U`. The component also counts, per unit, how often the unit's chunk was kept;
`stats()` turns the counts into the hidden-state sparsity and the share of recurrent
multiply-adds skipped.
"""

import contextlib
import math
import numbers

import keras
import numpy as np
from keras import ops

from tfprune.estimator import binary_step

# "off": no pruning; "fixed": a threshold set by hand or calibrated; "trained": a trainable
# threshold through the long-tailed estimator, penalised by DynamicPrune's alpha.
HIDDEN_MODES = ("off", "fixed", "trained")


class HiddenStatePruning:
    """Chunk pruning of an LSTM cell's hidden state.

    Args:
        mode: one of `HIDDEN_MODES`.
        chunk: units per chunk; must divide the cell's units unless `mode` is "off".
        threshold: the initial threshold on a chunk's summed |h| (the value lives in the cell's
            `hidden_threshold` weight, so calibration survives saving).
        modes: the modes the owning cell accepts.

    Raises:
        ValueError: an unknown `mode`, a `chunk` that is not a positive integer or a threshold
            that is not a finite number.
    """

    def __init__(self, mode="fixed", chunk=4, threshold=0.0, modes=HIDDEN_MODES):
        if mode not in modes:
            raise ValueError(f"hidden_state must be one of {modes}. Received: hidden_state={mode!r}")
        if mode != "off" and (not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f"chunk must be a positive integer. Received: chunk={chunk!r}")
        self.mode = mode
        self.chunk = chunk
        if not (
            isinstance(threshold, numbers.Real)
            and not isinstance(threshold, bool)
            and math.isfinite(threshold)
        ):
            raise ValueError(
                "hidden_threshold is the threshold on a chunk's summed |h| and must be a finite "
                f"number such as 0.0 (tfprune.lstm.calibrate sets it from data). "
                f"Received: hidden_threshold={threshold!r}"
            )
        self.initial_threshold = float(threshold)
        # A runtime switch, not config: `hidden_statistics_off` clears it while tracing.
        self.recording = True

    @property
    def active(self):
        return self.mode != "off"

    def bind(self, units):
        """Takes the cell's unit count; a ValueError names its divisors if `chunk` is not one."""
        if self.active and units % self.chunk:
            divisors = [d for d in range(1, units + 1) if units % d == 0]
            raise ValueError(
                f"chunk={self.chunk} does not divide units={units}: hidden-state pruning splits "
                f"h into equal chunks. Use a chunk in {divisors} or change units."
            )
        self.units = units

    def build(self, cell, penalty=None):
        """Adds the threshold and the per-unit counters to `cell` as its weights."""
        trained = self.mode == "trained"
        cell.hidden_threshold = self.threshold = cell.add_weight(
            name="hidden_threshold",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_threshold),
            trainable=trained,
            regularizer=penalty if trained else None,
        )
        cell.kept_steps = self.kept_steps = cell.add_weight(
            name="kept_steps", shape=(self.units,), initializer="zeros", dtype="int64",
            trainable=False,
        )  # fmt: skip
        cell.seen_steps = self.seen_steps = cell.add_weight(
            name="seen_steps", shape=(), initializer="zeros", dtype="int64", trainable=False
        )

    def prune(self, h):
        """Zeroes every chunk of `h` whose summed |h| is at or below the threshold."""
        if not self.active:
            return h
        chunks = ops.reshape(h, (-1, self.units // self.chunk, self.chunk))
        score = ops.sum(ops.abs(chunks), axis=-1, keepdims=True)
        keep = binary_step(score - ops.cast(self.threshold, h.dtype))
        return ops.reshape(chunks * keep, ops.shape(h))

    @property
    def counting(self):
        """Whether the layer should hand its output sequence to `record`."""
        return self.active and self.recording

    def record(self, outputs, mask=None):
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

    def reset(self):
        """Zeroes the counters (e.g. before measuring on calibration data)."""
        self.kept_steps.assign(ops.zeros(self.kept_steps.shape, self.kept_steps.dtype))
        self.seen_steps.assign(0)

    def stats(self, recurrent_kernel):
        """Figures over the steps counted since the last `reset`.

        Args:
            recurrent_kernel: the effective recurrent kernel (zero weights skip work too).

        Returns:
            `{"hidden_sparsity", "recurrent_macs_skipped", "hidden_threshold", "steps"}`: the
            share of chunks zeroed (NaN if no step was seen; 0 when pruning is off), and the
            share of the dense `h U` multiply-adds that zero chunks and zero weights together
            let a sparse kernel skip.
        """
        steps = int(ops.convert_to_numpy(self.seen_steps))
        recurrent = np.asarray(ops.convert_to_numpy(recurrent_kernel))
        row_nonzero = np.count_nonzero(recurrent, axis=1)
        if not self.active:
            kept = np.ones(self.units)
        elif steps:
            kept = np.asarray(ops.convert_to_numpy(self.kept_steps)) / steps
        else:
            kept = np.full(self.units, np.nan)
        return {
            "hidden_sparsity": float(1.0 - kept.mean()),
            "recurrent_macs_skipped": float(1.0 - kept @ row_nonzero / recurrent.size),
            "hidden_threshold": float(ops.convert_to_numpy(self.threshold)),
            "steps": steps,
        }

    def config(self):
        """The cell config keys the component owns."""
        return {
            "chunk": self.chunk,
            "hidden_threshold": self.initial_threshold,
            "hidden_state": self.mode,
        }


class HiddenStateCell:
    """A recurrent cell holding a `HiddenStatePruning` as `self.hidden`: its arguments, build,
    statistics and config keys. Put it before the Keras cell class; the cell gives
    `effective_recurrent_kernel()` (the recurrent kernel it computes with)."""

    HIDDEN_MODES = ("fixed",)

    def __init__(self, units, chunk=4, hidden_threshold=0.0, hidden_state="fixed", **kwargs):
        super().__init__(units, **kwargs)
        self.hidden = HiddenStatePruning(hidden_state, chunk, hidden_threshold, self.HIDDEN_MODES)
        self.hidden.bind(units)

    def build(self, input_shape):
        super().build(input_shape)
        self.hidden.build(self)

    @property
    def chunk(self):
        return self.hidden.chunk

    @property
    def hidden_state(self):
        return self.hidden.mode

    def reset_hidden_state_stats(self):
        """Zeroes the counters (e.g. before measuring on calibration data)."""
        self.hidden.reset()

    def hidden_state_stats(self):
        """See `HiddenStatePruning.stats`."""
        return self.hidden.stats(self.effective_recurrent_kernel())

    def get_config(self):
        return {**super().get_config(), **self.hidden.config()}


class HiddenStateLayer:
    """The layer face of a `HiddenStateCell`: `chunk`, `hidden_state`, its statistics, and the
    `chunk` and `hidden_threshold` arguments in the config. Put it before the Keras layer class."""

    @property
    def chunk(self):
        return self.cell.chunk

    @property
    def hidden_state(self):
        return self.cell.hidden_state

    def hidden_state_stats(self):
        """See `HiddenStatePruning.stats`."""
        return self.cell.hidden_state_stats()

    def reset_hidden_state_stats(self):
        self.cell.reset_hidden_state_stats()

    def get_config(self):
        return {
            **super().get_config(),
            "chunk": self.cell.chunk,
            "hidden_threshold": self.cell.hidden.initial_threshold,
        }


@contextlib.contextmanager
def hidden_statistics_off(model):
    """Pauses the hidden-state counters of every LSTM in `model` inside the `with` block.

    The counters are for Python-side reports; a graph traced for export (TFLite, SavedModel)
    should carry neither their variable updates nor the full output sequence they need.

    >>> with hidden_statistics_off(model):
    ...     content = converter.convert()
    """
    components = [
        layer.hidden
        for layer in model._flatten_layers(include_self=False)
        if isinstance(getattr(layer, "hidden", None), HiddenStatePruning) and layer.hidden.recording
    ]
    for component in components:
        component.recording = False
    try:
        yield
    finally:
        for component in components:
            component.recording = True
