"""What tfprune's recurrent layers (LSTM, GRU, SimpleRNN) share: the layer built around a given
cell, and a time loop that computes the (masked) kernels once per sequence, not once per step."""

import inspect

import keras
from keras import ops, tree
from keras.src import backend  # backend.rnn: the time loop keras.layers.RNN runs, not public


def _cell_args(cell_class):
    """The keyword arguments a recurrent layer hands to its cell."""
    names = set(inspect.signature(cell_class.__init__).parameters) - {"self", "units", "kwargs"}
    return names | {"implementation"}  # LSTMCell and GRUCell take it through **kwargs


class KernelsOnceRNN:
    """Mixin before a Keras RNN layer whose `cell_class` (a subclass of `stock_cell`) has
    `effective_kernels()` and `step(...)`; an LSTM overrides `sequence_step` to project the
    inputs once too. A cell with a `HiddenStatePruning` component gets the whole output
    sequence for its counters."""

    def _init_layer(self, units, cell_options, kwargs):
        """What the Keras layer's `__init__` does, with `cell_class` as the cell."""
        if kwargs.pop("use_cudnn", "auto") is True:
            raise ValueError(
                f"{type(self).__name__} cannot run on cuDNN: its masks and chunk pruning are not "
                "cuDNN ops. Received: use_cudnn=True; pass 'auto' or False."
            )
        allowed = _cell_args(self.stock_cell)
        cell_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in allowed}
        cell = self.cell_class(
            units,
            **cell_options,
            **cell_kwargs,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
        )
        keras.layers.RNN.__init__(self, cell, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        # keeps the fused cuDNN path (Bidirectional's too) away: it skips the cell
        self.use_cudnn = False
        # The cell is what DynamicPrune, its layer_targets and sparsity_report see: name it
        # after the layer so `sparsity/<layer name>` keys and targets use the name users know.
        cell.name = self.name

    def sequence_step(self, sequences, training):
        """`(step, inputs)` for the time loop: the cell's step with the kernels computed once."""
        cell = self.cell
        kernels = cell.effective_kernels()

        def step(x_t, states):
            return cell.step(x_t, states, *kernels, training=training)

        return step, sequences

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        step, inputs = self.sequence_step(sequences, training)
        hidden = getattr(self.cell, "hidden", None)
        counting = hidden is not None and hidden.counting
        last, outputs, states = backend.rnn(
            step,
            inputs,
            list(initial_state) if tree.is_nested(initial_state) else [initial_state],
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
            hidden.record(outputs, mask)
        return last, outputs, states
