"""Stateful recurrent layers: the file carries their state from one invoke to the next.

A Keras RNN with `stateful=True` converts to a file that keeps its state in variables
(VAR_HANDLE, ASSIGN_VARIABLE), starting from zeros as after `reset_states()`. Parity then means
equal outputs over a sequence of calls, so the Keras side runs the verification samples batch
by batch, in order, from zero state. The user's model gets its own state back afterwards.
"""

import contextlib

import keras
import numpy as np


def stateful_layers(model):
    """The RNN layers of `model` (nested ones too) with `stateful=True`."""
    return [
        layer for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.RNN) and layer.stateful
    ]  # fmt: skip


def state_batch(model):
    """The batch the stateful layers keep state for, or None without stateful layers."""
    batches = {
        int(layer.states[0].shape[0]) if layer.states else model.inputs[0].shape[0]
        for layer in stateful_layers(model)
    }  # fmt: skip
    if not batches:
        return None
    if None in batches or len(batches) > 1:
        raise ValueError(
            f"The stateful recurrent layers of model '{model.name}' keep state for batch sizes "
            f"{sorted(batches, key=str)}: give the model's Input a fixed batch_size "
            "(keras.Input(shape, batch_size=1)) so that the file can keep the same state."
        )
    return batches.pop()


@contextlib.contextmanager
def zero_states(model):
    """The stateful layers of `model` at zero state inside the block, at their own state after."""
    layers = [layer for layer in stateful_layers(model) if layer.states is not None]
    saved = [[np.array(keras.ops.convert_to_numpy(v)) for v in layer.states] for layer in layers]
    try:
        for layer in layers:
            layer.reset_states()
        yield
    finally:
        for layer, values in zip(layers, saved):
            for variable, value in zip(layer.states, values):
                variable.assign(value)
