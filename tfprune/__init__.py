"""tfprune: Dynamic Sparse Training and LSTM hidden-state pruning for Keras 3.

>>> model = tfprune.prunable(model)
>>> model.compile(...)
>>> model.fit(x, y, callbacks=[tfprune.DynamicPrune()])
>>> tflite_export.export(model, "model.tflite")
"""

from tfprune import kinds  # noqa: F401  fills the registry with every built-in layer kind
from tfprune import distributed, layers, lstm, models, policy, registry, surgery
from tfprune.callbacks import DynamicPrune
from tfprune.compact import compact
from tfprune.convert import left_dense, prunable, strip
from tfprune.report import sparsity_report

__all__ = [
    "DynamicPrune",
    "compact",
    "distributed",
    "layers",
    "left_dense",
    "lstm",
    "models",
    "policy",
    "prunable",
    "registry",
    "sparsity_report",
    "strip",
    "surgery",
]
__version__ = "0.1.0"
