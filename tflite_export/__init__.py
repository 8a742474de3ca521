"""Export a (pruned) Keras model to a sparse .tflite file, verified against Keras.

`export` strips the DST masks and removes dead units (`tfprune.compact`), converts with sparse
encoding, checks parity with the LiteRT interpreter, times the file against its dense encoding
and only then writes it, atomically. `median_latency_us` is that timer, for benchmarks too.

>>> report = tflite_export.export(model, "model.tflite")
>>> print(report)
"""

import importlib

# Loaded on first use, not here: `python -m tflite_export` imports this package first and must
# choose Keras' backend (TensorFlow) before anything imports Keras.
_PUBLIC = {
    "BackendError": "tflite_export.errors",
    "ConversionError": "tflite_export.errors",
    "ExportReport": "tflite_export.report",
    "ParityError": "tflite_export.errors",
    "export": "tflite_export.pipeline",
    "median_latency_us": "tflite_export.timing",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tflite_export' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__():
    return __all__
