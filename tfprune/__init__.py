"""tfprune: Dynamic Sparse Training and LSTM hidden-state pruning for Keras 3.

>>> model = tfprune.prunable(model)
>>> model.compile(...)
>>> model.fit(x, y, callbacks=[tfprune.DynamicPrune()])
>>> tflite_export.export(model, "model.tflite")
"""

from tfprune import layers, registry
from tfprune.callbacks import DynamicPrune
from tfprune.compact import compact
from tfprune.convert import prunable, strip
from tfprune.report import sparsity_report
from tfprune import lstm  # also registers LSTM and Bidirectional with the registry

__all__ = [
    "DynamicPrune",
    "compact",
    "layers",
    "lstm",
    "prunable",
    "registry",
    "sparsity_report",
    "strip",
]
__version__ = "0.1.0"
