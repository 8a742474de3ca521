"""TFLiteConverter settings: sparse encoding, quantization and a static batch for RNNs.

Keras 3 models go through `keras.export.ExportArchive` (a SavedModel with an inference-mode
endpoint and the input signature we choose) and `TFLiteConverter.from_saved_model`, the path
TensorFlow itself takes for Keras 3 in `from_keras_model`, but with a batch size we control.
"""

import functools
import tempfile

import keras
import tensorflow as tf

from tflite_export.errors import ConversionError, conversion_failure, int8_fallback
from tfprune.layers import hidden_statistics_off

QUANTIZE_MODES = (None, "dynamic", "int8")
# Bytes one stored weight value takes in each mode: the file's physical limit per nonzero.
BYTES_PER_VALUE = {None: 4, "dynamic": 1, "int8": 1}
# Samples fed to int8 calibration: enough for stable activation ranges, cheap to run.
CALIBRATION_SAMPLES = 100


def has_rnn(model):
    """True if `model` holds a recurrent layer, which converts only with a static batch."""
    return any(
        isinstance(layer, keras.layers.RNN) for layer in model._flatten_layers(include_self=False)
    )


def to_tflite(model, *, sparse, quantize, batch_size, calibration=None, input_names=None):
    """Converts a Keras model to .tflite bytes.

    Args:
        model: a built Keras model with defined `inputs`.
        sparse: encode sparse weights (`Optimize.EXPERIMENTAL_SPARSITY`).
        quantize: None (float), `"dynamic"` (int8 weights, float activations) or `"int8"`
            (integer kernels throughout; inputs and outputs stay float).
        batch_size: static batch size, or None for a dynamic batch.
        calibration: for `"int8"`, a list of arrays (one per model input) to calibrate on.
        input_names: the file's input names (default: the model's input tensors' names), so a
            rebuilt copy of a model (`unroll.unrolled`) keeps the original's signature.

    Returns:
        The flatbuffer as bytes.

    Raises:
        ConversionError: the converter failed; the message names the op, the layer and what to do.
    """
    (content,) = to_tflite_encodings(
        model, (sparse,), quantize=quantize, batch_size=batch_size, calibration=calibration,
        input_names=input_names,
    )  # fmt: skip
    return content


def to_tflite_encodings(model, encodings, *, quantize, batch_size, calibration=None, input_names=None):
    """`to_tflite` once per `sparse` value in `encodings`, from one traced and written
    SavedModel read by one converter: tracing, writing and loading it cost about as much as a
    conversion, and the encodings of a file (sparse, and dense for its size baseline) share it.

    Returns:
        A list of flatbuffers, one per entry of `encodings`.

    Raises:
        ConversionError: as `to_tflite`.
    """
    try:
        with tempfile.TemporaryDirectory() as saved_model_dir, hidden_statistics_off(model):
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(
                "serve",
                functools.partial(model.__call__, training=False),
                input_signature=_input_signature(model, batch_size, input_names),
            )
            archive.write_out(saved_model_dir, verbose=False)
            converter = _converter(saved_model_dir, quantize, batch_size, calibration)
            contents = []
            for sparse in encodings:
                converter.optimizations = _optimizations(sparse, quantize)
                contents.append(converter.convert())
            return contents
    except Exception as error:  # tracing and the converter raise many unrelated types
        raise ConversionError(conversion_failure(error, model, batch_size, quantize)) from error


def _converter(saved_model_dir, quantize, batch_size, calibration):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if quantize == "int8":
        converter.representative_dataset = _calibration_batches(calibration, batch_size or 1)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def require_integer_kernels(info, path):
    """Refuses an int8 file that the converter left float, as it silently does when calibration
    gives no ranges (all-NaN data): it would be reported as int8.

    Args:
        info: the file's `inspect.FlatbufferInfo`.
        path: the destination, for the message.

    Raises:
        ConversionError: a weight is stored as float, or there is no QUANTIZE op.
    """
    float_weights = [t.name for t in info.tensors if t.dtype.startswith("float")]
    if float_weights or "QUANTIZE" not in info.operators:
        raise ConversionError(int8_fallback(float_weights, path))


def _input_signature(model, batch_size, names=None):
    names = names or [tensor.name for tensor in model.inputs]
    specs = [
        tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype, name=name)
        for tensor, name in zip(model.inputs, names)
    ]
    return specs if len(specs) == 1 else [specs]


def _optimizations(sparse, quantize):
    optimizations = [tf.lite.Optimize.DEFAULT] if quantize else []
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    return optimizations


def _calibration_batches(calibration, batch_size):
    """A representative-dataset generator over the first `CALIBRATION_SAMPLES` samples."""
    count = min(len(calibration[0]), CALIBRATION_SAMPLES) // batch_size * batch_size

    def batches():
        for start in range(0, count, batch_size):
            yield [x[start : start + batch_size] for x in calibration]

    return batches
