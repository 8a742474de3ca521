"""Recurrent layers as a loop or unrolled (or fused, `fused_lstm`): `export` keeps the fastest.

A Keras RNN converts to a WHILE loop whose per-step dispatch costs about the same at any width,
so a small (compacted) LSTM's file is mostly loop; unrolled over its static time steps the same
layer is plain operators. Neither form wins at every width (LSTM-a at batch 1,
`python -m bench.lstm_forms`: 128x128 units 464-485 µs looped against 1078-1108 µs unrolled;
33x29 units 211-229 µs looped against 186-194 µs unrolled), so the export converts both and
times them side by side.
"""

import keras

FORMS = ("loop", "unrolled", "fused")


def check_form(recurrent):
    """Raises unless `recurrent` is "auto" or one of `FORMS`."""
    if not isinstance(recurrent, str) or recurrent not in ("auto", *FORMS):
        raise ValueError(
            "Expected recurrent='auto' (convert recurrent layers as a loop, unrolled and fused, "
            f"keep the fastest), 'loop', 'unrolled' or 'fused'. Received: recurrent={recurrent!r}"
        )


def unrolled(model):
    """A copy of `model` with every recurrent layer unrolled (`unroll=True`), weights copied.

    Raises:
        ValueError: a recurrent layer's time steps are not fixed (e.g. `keras.Input((None, 8))`):
            only a static number of steps can be unrolled.
    """

    def clone(layer):
        config = layer.get_config()
        if not _set_unroll(config):
            return layer.__class__.from_config(config)
        for shape in time_steps(layer):
            if shape is None:
                raise ValueError(
                    f"Layer '{layer.name}' has no fixed number of time steps, so it cannot be "
                    "unrolled. Give the model's input a static length (keras.Input((steps, "
                    "features))) or export with recurrent='loop'."
                )
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _set_unroll(config):
    """Sets every `unroll` in a (nested) layer config to True; whether any was there."""
    found = False
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "unroll":
                config[key], found = True, True
            else:
                found = _set_unroll(value) or found
    elif isinstance(config, list):
        for value in config:
            found = _set_unroll(value) or found
    return found


def time_steps(layer):
    """The time-step dimension of each of `layer`'s inputs (None where it is not fixed)."""
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [x.shape[1] if len(x.shape) > 2 else 0 for x in inputs]
