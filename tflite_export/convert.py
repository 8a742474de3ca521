"""TFLiteConverter settings: sparse encoding, quantization and a static batch for RNNs.

Keras 3 models go through `keras.export.ExportArchive` (a SavedModel with an inference-mode
endpoint and the input signature we choose) and `TFLiteConverter.from_saved_model`, the path
TensorFlow itself takes for Keras 3 in `from_keras_model`, but with a batch size we control.
"""

import contextlib
import functools
import re
import tempfile

import keras
import tensorflow as tf

QUANTIZE_MODES = (None, "dynamic", "int8")
# Samples fed to int8 calibration: enough for stable activation ranges, cheap to run.
CALIBRATION_SAMPLES = 100


class ConversionError(RuntimeError):
    """The TFLite converter rejected the model; the message names the layer and the fix."""


def has_rnn(model):
    """True if `model` holds a recurrent layer, which converts only with a static batch."""
    return any(
        isinstance(layer, keras.layers.RNN) for layer in model._flatten_layers(include_self=False)
    )


def to_tflite(model, *, sparse, quantize, batch_size, calibration=None):
    """Converts a Keras model to .tflite bytes.

    Args:
        model: a built Keras model with defined `inputs`.
        sparse: encode sparse weights (`Optimize.EXPERIMENTAL_SPARSITY`).
        quantize: None (float), `"dynamic"` (int8 weights, float activations) or `"int8"`
            (integer kernels throughout; inputs and outputs stay float).
        batch_size: static batch size, or None for a dynamic batch.
        calibration: for `"int8"`, a list of arrays (one per model input) to calibrate on.

    Returns:
        The flatbuffer as bytes.

    Raises:
        ConversionError: the converter failed; the message names the op, the layer and what to do.
    """
    try:
        with tempfile.TemporaryDirectory() as saved_model_dir, _without_counters(model):
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(
                "serve",
                functools.partial(model.__call__, training=False),
                input_signature=_input_signature(model, batch_size),
            )
            archive.write_out(saved_model_dir, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
            converter.optimizations = _optimizations(sparse, quantize)
            if quantize == "int8":
                converter.representative_dataset = _calibration_batches(
                    calibration, batch_size or 1
                )
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            return converter.convert()
    except Exception as error:  # tracing and the converter raise many unrelated types
        raise ConversionError(describe_failure(error, model, batch_size, quantize)) from error


@contextlib.contextmanager
def _without_counters(model):
    """Hidden-state statistics are for Python-side reports: keep their updates out of the file."""
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if getattr(layer, "records_stats", False)
    ]
    for layer in layers:
        layer.records_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.records_stats = True


def _input_signature(model, batch_size):
    specs = [
        tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype, name=tensor.name)
        for tensor in model.inputs
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


def describe_failure(error, model, batch_size, quantize):
    """A one-paragraph explanation of a converter failure: op, Keras layer, what to do."""
    text = str(error)
    op = _first(re.findall(r"'(tf\.\w+)' op", text) + re.findall(r"Custom ops: (\w+)", text))
    layer = _layer_in(text, model)
    where = f" in layer '{layer}'" if layer else ""
    what = f"op {op}" if op else "the model"
    if "TensorList" in text and batch_size is None:
        advice = (
            "Recurrent layers convert only with a static batch: pass batch_size=1 "
            "(CLI: --batch-size 1)."
        )
    elif "custom op" in text or "flex op" in text or "NEEDS_FLEX" in text:
        advice = (
            f"TFLite has no builtin kernel for {op or 'an op'}. Rebuild the layer from supported "
            "ops (https://ai.google.dev/edge/litert/models/ops_compatibility) or remove it "
            "before export."
        )
    elif quantize == "int8":
        advice = "Some op lacks an int8 kernel: try quantize='dynamic' or quantize=None."
    else:
        advice = "Replace or simplify that layer; the full message is in the chained exception."
    first_error = _first(re.findall(r"error: (?:loc\(.*?\): )?(.+)", text))
    first_error = first_error or (text.splitlines() or [type(error).__name__])[0]
    return (
        f"TFLite conversion failed at {what}{where} (batch_size={batch_size}, "
        f"quantize={quantize!r}): {first_error.strip()}\n{advice}"
    )


def _layer_in(text, model):
    """The Keras layer whose name scope appears in the converter's op locations, if any.

    TF name scopes may append `_<n>` to a layer's name, so exact names are tried before that.
    """
    names = sorted(
        (layer.name for layer in model._flatten_layers(include_self=False)), key=len, reverse=True
    )
    for pattern in (r"(?:^|[/\"]){}/", r"(?:^|[/\"]){}_\d+/"):
        for name in names:
            if re.search(pattern.format(re.escape(name)), text):
                return name
    return None


def _first(items):
    return items[0] if items else None
