"""Export a (pruned) Keras model to a sparse .tflite file, verified against Keras.

`export` strips the DST masks and removes dead units (`tfprune.compact`), converts with sparse
encoding, checks parity with the LiteRT interpreter, times the file against its dense encoding
and only then writes it, atomically. `median_latency_us` is that timer, for benchmarks too.

>>> report = tflite_export.export(model, "model.tflite")
>>> print(report)
"""

from tflite_export.errors import ConversionError, ParityError
from tflite_export.pipeline import export
from tflite_export.report import ExportReport
from tflite_export.timing import median_latency_us

__all__ = ["ConversionError", "ExportReport", "ParityError", "export", "median_latency_us"]
