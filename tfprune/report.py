"""`sparsity_report`: per-layer parameters, nonzeros and sparsity, as data, a table and a plot."""

import dataclasses

import keras

from tfprune.counts import count_nonzero
from tfprune.layers.base import MaskedMixin

_PRUNABLE_WEIGHTS = (
    "kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "embeddings"
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LayerSparsity:
    """One weight tensor's figures: `layer/weight`, size, nonzeros, and whether it is masked."""

    layer: str
    weight: str
    params: int
    nonzeros: int
    masked: bool

    @property
    def sparsity(self):
        return 1.0 - self.nonzeros / self.params if self.params else 0.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """What `sparsity_report` returns; `print(report)` gives the table."""

    rows: tuple

    @property
    def params(self):
        return sum(r.params for r in self.rows)

    @property
    def nonzeros(self):
        return sum(r.nonzeros for r in self.rows)

    @property
    def sparsity(self):
        """Share of zero weights over every row (kernels of all layers, masked or not)."""
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    @property
    def remaining(self):
        """Share of weights kept: the paper's 'remaining ratio'."""
        return 1.0 - self.sparsity

    def to_dict(self):
        return {
            "layers": [{**dataclasses.asdict(r), "sparsity": r.sparsity} for r in self.rows],
            "params": self.params,
            "nonzeros": self.nonzeros,
            "sparsity": self.sparsity,
        }

    def __str__(self):
        header = f"{'layer/weight':<32} {'params':>10} {'nonzero':>10} {'sparsity':>9}"
        lines = [header, "-" * len(header)]
        for r in self.rows:
            name = f"{r.layer}/{r.weight}" + ("" if r.masked else " (not masked)")
            lines.append(f"{name:<32} {r.params:>10,} {r.nonzeros:>10,} {r.sparsity:>9.2%}")
        lines.append("-" * len(header))
        lines.append(f"{'total':<32} {self.params:>10,} {self.nonzeros:>10,} {self.sparsity:>9.2%}")
        return "\n".join(lines)

    def plot(self, ax=None):
        """A bar chart of per-weight sparsity; returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(max(4, 0.8 * len(self.rows) + 2), 3.2))
        labels = [f"{r.layer}/{r.weight}" for r in self.rows]
        bars = ax.bar(labels, [100 * r.sparsity for r in self.rows], color="tab:blue")
        ax.bar_label(bars, fmt="%.1f%%", fontsize=8)
        ax.set_ylabel("sparsity (%)")
        ax.set_ylim(0, 105)
        ax.set_title(f"Per-layer sparsity (total {self.sparsity:.2%})")
        ax.tick_params(axis="x", labelrotation=30)
        ax.figure.tight_layout()
        return ax.figure


def sparsity_report(model):
    """Per-layer parameters, nonzeros and sparsity of `model`'s kernels.

    Works on masked models (counting `W * mask`) and on stripped or stock models (counting exact
    zeros). Biases and normalisation parameters are not counted: they are not pruned.

    Args:
        model: a `keras.Model`.

    Returns:
        A `SparsityReport`: `print(report)` for the table, `report.to_dict()` for data,
        `report.plot()` for a matplotlib figure.

    >>> print(tfprune.sparsity_report(model))
    """
    rows = []
    # A stock RNN's cell has a generic name ("lstm_cell" in every LSTM): report it as its layer.
    owner = {
        id(layer.cell): layer.name
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(getattr(layer, "cell", None), keras.layers.Layer)
    }
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, MaskedMixin):
            for name, (size, nonzero) in layer.weight_counts().items():
                rows.append(LayerSparsity(layer.name, name, size, nonzero, True))
            continue
        if any(isinstance(sub, MaskedMixin) for sub in layer._flatten_layers(include_self=False)):
            continue  # the masked sublayer (e.g. an LSTM cell) reports itself
        for name in _PRUNABLE_WEIGHTS:
            variable = getattr(layer, name, None)
            if variable is None or not hasattr(variable, "shape"):
                continue
            name_shown = owner.get(id(layer), layer.name)
            rows.append(LayerSparsity(name_shown, name, *count_nonzero(variable), False))
    return SparsityReport(tuple(rows))

