"""`export`'s argument checks, run before any conversion; each message echoes the bad value.

A model with NaN or inf weights is refused here too: it computes NaN, and a NaN parity check
would look like agreement (argmax of NaN is 0 on both sides).
"""

import numbers

import keras
import numpy as np

from tflite_export.convert import QUANTIZE_MODES, has_rnn
from tfprune.stateful import state_batch


def check_arguments(
    model, *, sparse, quantize, representative_data, batch_size, compact, latency_runs
):
    """Refuses arguments `export` cannot honour, saying what to pass instead.

    Args:
        model: the model to export.
        sparse, compact: booleans.
        quantize: None, `"dynamic"` or `"int8"`.
        representative_data: calibration inputs, or None (checked by `samples.check_data`).
        batch_size: the static batch, or None.
        latency_runs: timed invocations a round.

    Raises:
        TypeError: `model` is not a Keras model, or a flag or count has the wrong type.
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
    for name, value in (("sparse", sparse), ("compact", compact)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(
                f"Expected {name}=True or False. Received: {name}={value!r} "
                f"({type(value).__name__})."
            )
    if not (quantize is None or isinstance(quantize, str)) or quantize not in QUANTIZE_MODES:
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
    if batch_size is not None:
        _check_count("batch_size", batch_size)
    _check_count("latency_runs", latency_runs)


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Expected {name} to be an integer. Received: {name}={value!r} "
            f"({type(value).__name__})."
        )
    if value < 1:
        raise ValueError(f"Expected a positive integer. Received: {name}={value!r}")


def check_finite_weights(model):
    """Refuses a model with a NaN or inf weight, naming the layer and the weight.

    Raises:
        ValueError: the first float weight holding a non-finite value.
    """
    for variable in model.weights:
        if "float" not in str(variable.dtype):
            continue  # integer counters, e.g. hidden-state statistics
        values = np.asarray(keras.ops.convert_to_numpy(variable))
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            layer = variable.path.rpartition("/")[0] or model.name
            raise ValueError(
                f"Layer '{layer}' weight '{variable.name}' holds {bad} non-finite value(s) "
                f"(NaN or inf) of {values.size}: the model computes NaN, which no export can "
                "verify or run. Export a checkpoint saved before training diverged "
                "(keras.callbacks.TerminateOnNaN stops training at the first NaN) or retrain "
                "with a lower learning rate."
            )


def export_batch_size(model, batch_size):
    """The static batch to export with: `batch_size` if given, else 1 for a recurrent model
    (Keras RNNs convert only with a static batch), else None (dynamic). A model with stateful
    recurrent layers exports at the batch they keep state for.

    Raises:
        ValueError: `batch_size` differs from the stateful layers' batch.
    """
    stateful = state_batch(model, batch_size, "to export it (the file keeps the same state)")
    if stateful is not None:
        return stateful
    if batch_size is None and has_rnn(model):
        return 1
    return batch_size
