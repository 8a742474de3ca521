"""MaskedLSTM: DST masks on both LSTM kernels, plus hidden-state (chunk) pruning.

One threshold per gate column (4*units) for the input kernel and one for the recurrent kernel,
the estimator and alpha penalty every masked layer shares, and the chunk pruning of
`HiddenStatePrunedLSTM` with its threshold off, fixed or trained.
"""

import keras

from tfprune.layers.base import MaskedMixin, ThresholdPenalty
from tfprune.layers.hidden_state import HiddenStatePrunedLSTM, HiddenStatePrunedLSTMCell

HIDDEN_MODES = ("off", "fixed", "trained")


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedLSTMCell(MaskedMixin, HiddenStatePrunedLSTMCell):
    """The cell of `MaskedLSTM`: DST masks on both kernels and optional hidden-state pruning.

    Args:
        units: positive integer, dimensionality of the output space.
        granularity: `"weight"` (default), `"unit"` (whole gate columns) or `(1, n)` blocks.
        prune_weights: False freezes the weight thresholds at 0 (no weight pruning, no penalty).
        hidden_state: `"off"` (default), `"fixed"` or `"trained"` (the threshold is a trainable
            weight through the long-tailed estimator, penalised by `alpha * exp(-t)`).
        chunk: units per hidden-state chunk; must divide `units` unless `hidden_state="off"`.
        hidden_threshold: the initial hidden threshold.
        **kwargs: the arguments of `keras.layers.LSTMCell`.
    """

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
        self.prune_weights = bool(prune_weights)

    def build(self, input_shape):
        keras.layers.LSTMCell.build(self, input_shape)
        self.build_masks()
        for threshold in self.threshold_variables():
            threshold.trainable = self.prune_weights
        self.build_hidden_state(ThresholdPenalty(self.alpha))

    def effective_kernels(self):
        return self.masked_kernel("kernel"), self.masked_kernel("recurrent_kernel")

    def pruning_logs(self):
        """Weight sparsity, plus hidden-state figures since the previous call (which resets them).

        Resetting makes each epoch's log describe that epoch's batches.
        """
        stats = self.hidden_state_stats()
        self.reset_hidden_state_stats()
        return {
            f"sparsity/{self.name}": self.sparsity(),
            f"hidden_sparsity/{self.name}": stats["hidden_sparsity"],
            f"recurrent_macs_skipped/{self.name}": stats["recurrent_macs_skipped"],
        }

    def get_config(self):
        config = {**super().get_config(), **self.masking_config()}
        return {**config, "prune_weights": self.prune_weights}


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedLSTM(HiddenStatePrunedLSTM):
    """A `keras.layers.LSTM` for Dynamic Sparse Training and hidden-state pruning.

    Both kernels are masked by `step(|W| - t)` with one trainable threshold per gate column
    (4*units each); thresholds start at 0, so a fresh layer computes exactly what the stock
    LSTM does. `tfprune.DynamicPrune` sets alpha and logs `sparsity/<name>`,
    `hidden_sparsity/<name>` and `recurrent_macs_skipped/<name>`; the reset rule is skipped, as
    in the paper. Every `keras.layers.LSTM` argument is supported (return_sequences,
    return_state, go_backwards, stateful, unroll, dropout, recurrent_dropout, masking,
    initial_state, ...); `use_cudnn=True` is refused because masks and chunk pruning are not
    cuDNN ops, so the generic loop runs, also inside Bidirectional.

    Args:
        units: positive integer, dimensionality of the output space.
        granularity: `"weight"` (default, the paper), `"unit"` (whole gate columns) or a block
            `(1, n)` along the input rows.
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
        **kwargs,
    ):
        options = {
            "granularity": granularity,
            "prune_weights": prune_weights,
            "hidden_state": hidden_state,
            "chunk": chunk,
            "hidden_threshold": hidden_threshold,
        }
        self._init_layer(units, options, kwargs)

    def masking_config(self):
        """The config keys a stock `keras.layers.LSTM` does not know."""
        config = self.get_config()
        keys = ("granularity", "prune_weights", "hidden_state", "chunk", "hidden_threshold")
        return {key: config[key] for key in keys}

    def get_config(self):
        return {
            **super().get_config(),
            **self.cell.masking_config(),
            "prune_weights": self.cell.prune_weights,
            "hidden_state": self.cell.hidden_state,
        }
