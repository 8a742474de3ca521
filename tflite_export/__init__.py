"""Export a (pruned) Keras model to a sparse .tflite file, verified against Keras.

Stages, in order: strip the DST masks (`tfprune.strip`), remove dead units (`tfprune.compact`),
convert with sparse encoding, check parity with the LiteRT interpreter, time it, and only then
write the file, atomically.

>>> report = tflite_export.export(model, "model.tflite")
>>> print(report)
"""

import dataclasses
import os
import tempfile
import warnings

import keras

from tflite_export.convert import QUANTIZE_MODES, ConversionError, has_rnn, to_tflite
from tflite_export.inspect import read_flatbuffer
from tflite_export.kernels import layer_kernels, misaligned_blocks
from tflite_export.report import ExportReport
from tflite_export.verify import (
    ParityError,
    choose_runtime,
    keras_outputs,
    median_latency_ms,
    parity,
    sample_inputs,
    tflite_outputs,
)

__all__ = ["ConversionError", "ExportReport", "ParityError", "export"]

# Verification samples borrowed from representative_data when no verify_data is given.
BORROWED_VERIFY_SAMPLES = 64


def export(
    model,
    path,
    *,
    sparse=True,
    quantize=None,
    representative_data=None,
    batch_size=None,
    verify_data=None,
    compact=True,
    latency_runs=50,
):
    """Strips, compacts, converts, verifies and writes `model` as a .tflite file.

    The file appears only if conversion and parity succeed; on any failure nothing is left at
    `path` (an existing file there is kept unchanged).

    Args:
        model: a Sequential or functional `keras.Model`, with tfprune layers or stock ones.
        path: where to write the .tflite file.
        sparse: store sparse weights sparsely (`Optimize.EXPERIMENTAL_SPARSITY`). Unstructured
            sparsity (CSR) is expanded at load time (smaller file, same speed); 1x4 blocks in
            float Dense layers run TFLite's sparse kernel.
        quantize: None (float32), `"dynamic"` (int8 weights) or `"int8"` (integer kernels,
            float inputs and outputs; needs `representative_data`).
        representative_data: calibration inputs for `"int8"`: an array (single-input model) or
            a list of arrays, shaped `(samples, *input_shape)`. Its first samples also serve as
            verification data when `verify_data` is None.
        batch_size: static batch size of the exported model. None: 1 if the model holds a
            recurrent layer (Keras RNNs convert only with a static batch), else dynamic.
        verify_data: inputs to compare Keras and LiteRT on, shaped like `representative_data`.
            None: `representative_data`, else 16 standard-normal samples.
        compact: remove dead units with `tfprune.compact` before conversion.
        latency_runs: timed `invoke()` calls for the median latency.

    Returns:
        An `ExportReport`; `print(report)` shows a table, `report.to_dict()` is JSON-ready.

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: an invalid argument, or `"int8"` without `representative_data`.
        OSError: `path` cannot be written (checked before any conversion).
        ConversionError: the converter rejected a layer; the message names it and the fix.
        ParityError: the .tflite outputs differ from Keras beyond the tolerance.
    """
    _check_arguments(model, quantize, representative_data, batch_size, latency_runs)
    path = os.fspath(path)
    check_writable(path)
    if batch_size is None and has_rnn(model):
        batch_size = 1
    calibration = None
    if representative_data is not None:
        calibration = sample_inputs(model, representative_data, batch_size, "representative_data")
    if verify_data is not None:
        samples = sample_inputs(model, verify_data, batch_size)
    elif calibration is not None:
        samples = sample_inputs(
            model, [x[:BORROWED_VERIFY_SAMPLES] for x in calibration], batch_size
        )
    else:
        samples = sample_inputs(model, None, batch_size)

    prepared, compaction = _prepare(model, compact)
    settings = dict(quantize=quantize, batch_size=batch_size, calibration=calibration)
    content = to_tflite(prepared, sparse=sparse, **settings)
    dense_content = to_tflite(prepared, sparse=False, **settings) if sparse else content

    info = read_flatbuffer(content)
    resolver, runtime_note = choose_runtime(content, info.tensors)
    if runtime_note:
        warnings.warn(f"{path}: {runtime_note}", stacklevel=2)
    result = parity(
        keras_outputs(model, samples),
        tflite_outputs(content, resolver, prepared, samples, batch_size),
        quantized=quantize is not None,
    )
    if not result.passed:
        raise ParityError(
            f"The .tflite model disagrees with Keras on {result.samples} samples: "
            f"{result.criterion} is {_figure(result)}, the bound is {result.threshold:.3g} "
            f"(max |diff| {result.max_abs_diff:.3g}). Nothing was written to '{path}'. "
            + (
                "Calibrate with more representative_data, or use quantize='dynamic' or None."
                if quantize
                else "A layer computes differently in TFLite: export sub-models to find which."
            )
            + _misaligned_hint(misaligned_blocks(info.tensors))
        )
    latency, latency_batch = median_latency_ms(content, resolver, prepared, samples, latency_runs)
    dense_latency = (
        median_latency_ms(dense_content, resolver, prepared, samples, latency_runs)[0]
        if sparse
        else latency
    )
    write_atomically(path, content)
    return ExportReport(
        path=path,
        size_bytes=len(content),
        dense_size_bytes=len(dense_content),
        sparse=sparse,
        quantize=quantize,
        batch_size=batch_size,
        operators=info.operators,
        tensors=info.tensors,
        layers=layer_kernels(info.tensors, prepared, sparse),
        parity=result,
        latency_ms=latency,
        dense_latency_ms=dense_latency,
        latency_batch=latency_batch,
        runtime_note=runtime_note,
        compaction=compaction,
    )


def _check_arguments(model, quantize, representative_data, batch_size, latency_runs):
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


def check_writable(path):
    """Fails fast, before any heavy work, if a file cannot be created at `path`.

    Args:
        path: the file to be written.

    Raises:
        OSError: `path` is a directory, or its directory is missing or read-only.
    """
    if os.path.isdir(path):
        raise OSError(
            f"Cannot write '{path}': it is a directory. Pass a file path ending in .tflite."
        )
    try:
        handle, probe = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)))
    except OSError as error:
        raise OSError(
            f"Cannot write '{path}': {error.strerror}. Create the directory or choose a "
            "writable location."
        ) from error
    os.close(handle)
    os.remove(probe)


def _prepare(model, compact):
    """The model to convert: masks folded into plain weights, dead units removed."""
    from tfprune import strip  # tflite_export depends on tfprune, never the reverse
    from tfprune.layers import masked_layers

    compaction = None
    if masked_layers(model):
        model = strip(model)
    if compact:
        from tfprune.compact import compact as compact_model

        model, compact_report = compact_model(model)
        compaction = compact_report.to_dict()
    return model, compaction


def _misaligned_hint(names):
    if not names:
        return ""
    return (
        f" Block-encoded weights {names} have an axis their block size does not divide, which "
        "TFLite's block kernel miscomputes: keep input sizes multiples of the block, or pass "
        "sparse=False."
    )


def _figure(result):
    if result.criterion == "argmax_agreement":
        return f"{result.argmax_agreement:.3g}"
    return f"{result.max_abs_diff:.3g}"


def write_atomically(path, content):
    """Writes `content` (bytes) via a temp file in the same directory and `os.replace`.

    Readers see the old file or the complete new one, never a partial file; on failure the
    temp file is removed.

    Args:
        path: the destination.
        content: the bytes to write.
    """
    directory, name = os.path.split(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        os.remove(temp)
        raise
