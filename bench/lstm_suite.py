"""The LSTM suite of `python -m bench.lstm`: its data, settings, rows and run plan.

Rows run in order: dense, DST, paired step time, hidden-state pruning of the DST model per
target and rounds value, TFLite exports of the dense, DST and one hidden-state model, and the
exported files timed side by side. Row functions are in `lstm_train` and `lstm_export`.
"""

import dataclasses
from pathlib import Path

import numpy as np

from bench import lstm_export, lstm_train
from bench.lstm_train import ALPHA, hidden_file
from bench.records import Store
from bench.runner import Row

__all__ = ["ALPHA", "Context", "best_hidden", "load_arrays", "plan", "settings", "summary"]


@dataclasses.dataclass
class Context:
    """What the rows share: data, settings, the saved models' folder and the records so far."""

    arrays: dict
    settings: dict
    seed: int
    models: Path  # trained models, kept for later rows and reruns
    store: Store
    rounds: int  # alternating rounds of the step-time and latency rows
    latency_runs: int  # invocations per latency measurement
    verify_samples: int  # test images each export checks parity on

    def finished(self):
        """The ok records of this setup."""
        return self.store.finished(self.settings)


def load_arrays(quick):
    from tfprune.data import load_dataset

    data = load_dataset("fashion_mnist")
    n_train, n_test = (2000, 500) if quick else (len(data.x_train), len(data.x_test))
    return data.name, {
        "x_train": data.x_train[:n_train],
        "y_train": data.y_train[:n_train],
        "x_test": data.x_test[:n_test],
        "y_test": data.y_test[:n_test],
        # Thresholds and dead units are set on training images; test images only measure.
        "x_calibration": data.x_train[-(500 if quick else 5000) :],
    }


def settings(dataset, arrays, args):
    """The setup every record carries: a record with other settings is another experiment."""
    return {
        "suite": "lstm",
        "model": "lstm_a",
        "dataset": dataset,
        "n_train": len(arrays["x_train"]),
        "n_test": len(arrays["x_test"]),
        "epochs": args.epochs,
        "finetune_epochs": args.finetune_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": "adam",
    }


def plan(ctx, targets, rounds, only=None):
    """The `Row`s in run order (kinds not in `only` left out).

    The hidden-state model an export row exports is picked when it runs (`best_hidden`), and
    the latency row times the files the export rows recorded.
    """
    specs = [
        ("dense", "dense", {}, lambda: lstm_train.row_dense(ctx)),
        (f"dst alpha={ALPHA:g}", "dst", {"alpha": ALPHA}, lambda: lstm_train.row_dst(ctx)),
        ("step time", "step_time", {}, lambda: lstm_train.row_step_time(ctx)),
    ]
    for target in targets:
        for r in rounds:
            specs.append(
                (f"dst+hidden target={target:g} rounds={r}", "hidden", {"target": target, "rounds": r},
                 lambda t=target, r=r: lstm_train.row_hidden(ctx, t, r))
            )  # fmt: skip
    for source, variants in lstm_export.EXPORT_ROWS.items():
        for variant in variants:
            specs.append(
                (f"export {source} {variant}", "export", {"source": source, "variant": variant},
                 lambda s=source, v=variant: lstm_export.row_export(ctx, _source(ctx, s), v))
            )  # fmt: skip
    exports = lambda: [r for r in ctx.finished() if r["method"] == "export"]  # noqa: E731
    specs.append(("tflite latency", "latency", {}, lambda: lstm_export.row_latency(ctx, exports())))
    for label, method, params, fn in specs:
        if only and method not in only:
            continue
        head = {**ctx.settings, "run": label, "method": method, "params": params, "seed": ctx.seed}
        yield Row(head, fn, {**ctx.settings, "seed": ctx.seed}, _saved(ctx, method, params))


def _saved(ctx, method, params):
    """For rows that save a model: whether it is still there (else a rerun trains it again)."""
    name = {"dense": "dense", "dst": "dst"}.get(method)
    if method == "hidden":
        name = hidden_file(params)
    return None if name is None else lambda: (ctx.models / f"{name}.keras").exists()


def _source(ctx, source):
    return best_hidden(ctx.finished()) if source == "hidden" else source


def best_hidden(records):
    """The hidden-state model to export, from the ok records of one setup: the sparsest hidden
    state (mean over layers, test set) within 1 point of DST's accuracy, else the most accurate.
    """
    dst = [r["test_accuracy"] for r in records if r["method"] == "dst"]
    hidden = sorted(
        (r for r in records if r["method"] == "hidden" and "rounds" in r["params"]),
        key=lambda r: r["params"]["target"],
    )
    if not hidden:
        raise RuntimeError("no hidden-state row finished: nothing to export")
    good = [r for r in hidden if dst and r["test_accuracy"] >= dst[-1] - 0.01]
    if good:
        best = max(good, key=lambda r: np.mean([v["hidden_sparsity"] for v in r["hidden"].values()]))
    else:
        best = max(hidden, key=lambda r: r["test_accuracy"])
    return hidden_file(best["params"])


def summary(record):
    head = f"{record['run']}: "
    if record["status"] != "ok":
        return head + "FAILED\n" + record["error"]
    keys = ("test_accuracy", "remaining", "epoch_time", "ratio_min", "size_bytes", "latency_us")
    text = lstm_train.short({k: record[k] for k in keys if k in record})
    if "hidden" in record:
        text += " hidden " + ", ".join(
            f"{name} {layer['hidden_sparsity']:.3f}" for name, layer in record["hidden"].items()
        )
    return head + text
