"""Stateful recurrent layers: the batch they keep state for, and running a model from zero
state without losing the user's own.

tfprune runs the user's model to measure it (calibrating hidden-state thresholds, finding
never-active units); a stateful layer would take that data as the next part of its sequence and
refuse any other batch. `tflite_export` verifies a stateful file the same way: the file keeps its
state in variables, starting from zeros as after `reset_states()`.
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


def state_batch(model, batch_size=None, purpose="to run it"):
    """The batch the stateful layers keep state for, or None without stateful layers.

    Raises:
        ValueError: a `batch_size` other than that batch is asked for; the message says it is
            needed `purpose`.
    """
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
            "(keras.Input(shape, batch_size=1)) so that the model, and a file exported from it, "
            "keep one batch's state."
        )
    batch = batches.pop()
    if batch_size not in (None, batch):
        raise ValueError(
            f"Model '{model.name}' has stateful recurrent layers that keep state for batch {batch}: "
            f"pass batch_size={batch} (or None) {purpose}. Received: batch_size={batch_size}."
        )
    return batch


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


def measuring_predict(model, data, batch_size=None):
    """`model.predict(data)` to measure the model: stateful layers run from zero state at the
    batch they keep state for, and get their own state back.

    Raises:
        ValueError: `batch_size` is not the stateful layers' batch, or an array's length is not
            a multiple of it.
    """
    batch = state_batch(model, batch_size, "to run it on data")
    if batch is None:
        return model.predict(data, batch_size=batch_size, verbose=0)
    first = data[0] if isinstance(data, (list, tuple)) else data
    if hasattr(first, "shape") and first.shape[0] % batch:
        raise ValueError(
            f"Model '{model.name}' keeps state for batch {batch}, so the data must come in whole "
            f"batches: it has {first.shape[0]} samples. Pass a multiple of {batch} samples."
        )
    with zero_states(model):
        return model.predict(data, batch_size=batch, verbose=0)
