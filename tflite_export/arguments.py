"""`export`'s argument checks, run before any conversion; each message echoes the bad value."""

import keras

from tflite_export.convert import QUANTIZE_MODES, has_rnn


def check_arguments(model, quantize, representative_data, batch_size, latency_runs):
    """Refuses arguments `export` cannot honour, saying what to pass instead.

    Args:
        model: the model to export.
        quantize: None, `"dynamic"` or `"int8"`.
        representative_data: calibration inputs, or None.
        batch_size: the static batch, or None.
        latency_runs: timed invocations a round.

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: any other argument is invalid, or `"int8"` lacks `representative_data` or
            meets a recurrent layer.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"export expects a keras.Model. Received: {type(model).__name__}. "
            "Wrap a single layer in keras.Sequential([keras.Input(shape), layer])."
        )
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"Model '{model.name}' has no defined inputs (a subclassed model?). Build it as a "
            "Sequential or functional model starting with keras.Input(shape)."
        )
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Expected quantize None, 'dynamic' or 'int8'. Received: quantize={quantize!r}"
        )
    if quantize == "int8" and has_rnn(model):
        raise ValueError(
            "quantize='int8' is not available for models with recurrent layers: with TensorFlow "
            "2.21 and ai-edge-litert 2.3 full-integer export of an LSTM crashes the process "
            "(segmentation fault, seen even for a stock keras.layers.LSTM). Use "
            "quantize='dynamic' (int8 weights, float activations) or None."
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "quantize='int8' needs representative_data to calibrate activation ranges: pass "
            "about 100 typical inputs (CLI: --calibration calib.npy), or use quantize='dynamic'."
        )
    for name, value in (("batch_size", batch_size), ("latency_runs", latency_runs)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"Expected a positive integer. Received: {name}={value!r}")


def export_batch_size(model, batch_size):
    """The static batch to export with: `batch_size` if given, else 1 for a recurrent model
    (Keras RNNs convert only with a static batch), else None (dynamic)."""
    if batch_size is None and has_rnn(model):
        return 1
    return batch_size
