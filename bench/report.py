"""Markdown tables and an accuracy-vs-remaining-weights plot from `bench.run` JSONL files.

    python -m bench.report bench/out/lenet300.jsonl [more.jsonl ...] --md out.md --png out.png

Runs are grouped by setup (suite, dataset, data size, epochs) and by row, and figures are
mean ± sample std over seeds. `BENCHMARKS.md` is assembled from this output.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.records import read_records

# weight_decay: only in the records of suites that set it (None elsewhere).
SETUP_KEYS = ("suite", "model", "dataset", "n_train", "n_test", "epochs", "batch_size", "lr", "momentum", "weight_decay")
STYLES = {"dense": ("black", "*"), "dst": ("tab:blue", "o"), "gmp": ("tab:orange", "s"), "pquant": ("tab:green", "^"),
          "gmp_keras3": ("tab:red", "D")}

NOTES = """\
Test accuracy after the last epoch. Train accuracy: Keras' running mean over the last epoch's
batches (masks applied, as the model trained); "train - test" is its gap to the test accuracy, in
points, seed by seed: how much a row fits the training set beyond what it generalises.
Remaining weights: nonzero kernel weights (biases excluded),
counted on the stripped model. Epoch time: training only, mean over epochs 2..N (epoch 1 includes
graph tracing); "vs dense" divides it by the dense run of the same seed. GMP is tfmot's
`prune_low_magnitude` (tf_keras, its own process) with PolynomialDecay from 0 to the sparsity the
matched DST run reached, uniform per layer, ending at 2/3 of training. Export rows: the trained
model through `tflite_export.export` (strip, compact, sparse encoding, parity checked); "dense
model" is the same architecture exported unpruned (size and speed do not depend on the values)."""


def load(paths):
    """The successful records of all files, and how many runs failed and were not redone."""
    records = [record for path in paths for record in read_records(path)]
    ok = [r for r in records if r.get("status") == "ok"]
    redone = {_key(r) for r in ok}
    return ok, len({_key(r) for r in records if r.get("status") != "ok"} - redone)


def _key(record):
    return (*_setup(record), record["run"], record["seed"])


def _setup(record):
    return tuple(record.get(k) for k in SETUP_KEYS)


def group(records):
    """`{setup: {run label: [records]}}`: setups in first-seen order; rows dense first, then by
    method and within a method in first-seen order, so resumed runs do not reorder the table."""
    setups, methods = {}, ["dense"]
    for record in records:
        setup = _setup(record)
        setups.setdefault(setup, {}).setdefault(record["run"], []).append(record)
        if record["method"] not in methods:
            methods.append(record["method"])
    return {
        setup: dict(sorted(rows.items(), key=lambda item: methods.index(item[1][0]["method"])))
        for setup, rows in setups.items()
    }


def across_suites(setups):
    """The setups with the suite left out of the key: one plot panel per model and data, with the
    runs of every suite on them (e.g. DST, GMP and PQuantML rows recorded by different suites)."""
    merged, suites = {}, {}
    for (suite, *rest), rows in setups.items():
        suites.setdefault(tuple(rest), []).append(suite)
        for name, records in rows.items():
            merged.setdefault(tuple(rest), {}).setdefault(name, []).extend(records)
    return {("+".join(suites[rest]), *rest): rows for rest, rows in merged.items()}


def summarise(rows):
    """Per row: mean and std of test and train accuracy, the gap between them, remaining (overall
    and per layer), time, time vs dense."""
    dense_time = {r["seed"]: r["epoch_time"] for runs in rows.values() for r in runs if r["method"] == "dense"}
    summary = {}
    for name, runs in rows.items():
        layers = list(runs[0]["remaining_per_layer"])
        ratios = [r["epoch_time"] / dense_time[r["seed"]] for r in runs if r["seed"] in dense_time]
        train = [100 * r["history"]["accuracy"][-1] for r in runs if "accuracy" in r.get("history", {})]
        train = train if len(train) == len(runs) else []
        summary[name] = {
            "method": runs[0]["method"],
            "params": runs[0]["params"],
            "seeds": len(runs),
            "accuracy": _stats([100 * r["test_accuracy"] for r in runs]),
            "train_accuracy": _stats(train) if train else None,
            "gap": _stats([t - 100 * r["test_accuracy"] for t, r in zip(train, runs)]) if train else None,
            "remaining": _stats([100 * r["remaining"] for r in runs]),
            "epoch_time": _stats([r["epoch_time"] for r in runs]),
            "vs_dense": _stats(ratios) if ratios else None,
            "layers": {
                layer: _stats([100 * r["remaining_per_layer"][layer] for r in runs]) for layer in layers
            },
        }
    return summary


def _stats(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def _cell(stats, digits=2, suffix=""):
    if stats is None:
        return "–"
    mean, std = stats
    return f"{mean:.{digits}f}{suffix}" + ("" if std is None else f" ± {std:.{digits}f}{suffix}")


def markdown(setups, failed=0):
    lines = []
    for setup, rows in setups.items():
        s = dict(zip(SETUP_KEYS, setup))
        summary = summarise(rows)
        lines += [
            f"### {s['suite']}: {s['dataset']}, {s['n_train']} train / {s['n_test']} test, "
            f"{s['epochs']} epochs",
            "",
            f"SGD lr {s['lr']} momentum {s['momentum']}, batch {s['batch_size']}"
            + (f", weight decay {s['weight_decay']} (decoupled, every method)." if s["weight_decay"] else "."),
            "",
            "| Run | Test accuracy (%) | Train accuracy (%) | Train - test | Remaining weights (%) "
            "| Epoch time (s) | vs dense | Seeds |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, row in summary.items():
            lines.append(
                f"| {name} | {_cell(row['accuracy'])} | {_cell(row['train_accuracy'])} | {_cell(row['gap'])} | "
                f"{_cell(row['remaining'])} | "
                f"{_cell(row['epoch_time'])} | {_cell(row['vs_dense'], suffix='x')} | {row['seeds']} |"
            )
        layers = list(next(iter(summary.values()))["layers"])
        lines += [
            "",
            "Remaining weights per layer (%):",
            "",
            "| Run | " + " | ".join(layers) + " |",
            "| --- |" + " ---: |" * len(layers),
        ]
        for name, row in summary.items():
            lines.append(f"| {name} | " + " | ".join(_cell(row["layers"].get(k), 1) for k in layers) + " |")
        lines.append("")
        lines += matched_table(rows)
        lines += export_table(rows)
    lines.append(NOTES)
    if failed:
        lines += ["", f"{failed} failed run(s) are not included."]
    return "\n".join(lines) + "\n"


def matched_table(rows, tolerance=0.1):
    """Each DST row against the GMP (tfmot; Keras 3 where run) and PQuantML runs matched to its
    runs, seed by seed: one table per ratio they were matched on (`remaining`, or
    `remaining_compacted`).

    GMP is given the DST run's ratio; PQuantML searches its alpha for it and may miss: its
    remaining ratio is shown, and a miss by more than `tolerance` (relative) is flagged.
    """
    matched = {}
    for runs in rows.values():
        for r in runs:
            if "matched" in r["params"]:
                key = r["params"].get("matched_on", "remaining")
                matched[(r["method"], key, r["params"]["matched"], r["seed"])] = r
    lines = []
    for key in dict.fromkeys(k[1] for k in matched):
        lines += _matched_rows(rows, {(m, run, seed): r for (m, k, run, seed), r in matched.items() if k == key}, key, tolerance)
    return lines


PEERS = {"gmp": "GMP", "pquant": "PQuantML", "gmp_keras3": "GMP in Keras 3"}  # the last only where run


def _matched_rows(rows, matched, key, tolerance):
    peers_run = {m for m, _, _ in matched}
    methods = [m for m in PEERS if m != "gmp_keras3" or m in peers_run]
    lines = []
    for name, runs in rows.items():
        if runs[0]["method"] != "dst" or not any((m, name, r["seed"]) in matched for m in methods for r in runs):
            continue
        remaining = [100 * r[key] for r in runs]
        cells = [f"{np.mean(remaining):.2f}% ({max(remaining) - min(remaining):.2f})", f"{_mean(runs):.2f}%"]
        for method in methods:
            peers = [matched.get((method, name, r["seed"])) for r in runs]
            if None in peers:
                cells += ["–", "–"]
                continue
            missed = [p for p, r in zip(peers, runs) if abs(p[key] / r[key] - 1) > tolerance]
            at = f" at {100 * np.mean([p[key] for p in peers]):.2f}%" if method == "pquant" else ""
            flag = f" ({len(missed)} of {len(peers)} missed the ratio)" if missed else ""
            cells += [f"{_mean(peers):.2f}%{at}{flag}", f"{_mean(runs) - _mean(peers):+.2f}"]
        ahead = sum(
            r["test_accuracy"] >= matched[("gmp", name, r["seed"])]["test_accuracy"]
            for r in runs if ("gmp", name, r["seed"]) in matched
        )  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ahead} of {len(runs)} |")
    if not lines:
        return []
    peer_columns = "".join(f" {PEERS[m]} | DST - {PEERS[m]} |" for m in methods)
    return [
        f"Matched runs on `{key}`, seed by seed (mean over seeds, spread in points):",
        "",
        f"| DST row | {key} (spread) | DST |{peer_columns} Seeds DST >= GMP |",
        "| --- | ---: | ---: |" + " ---: | ---: |" * len(methods) + " ---: |",
        *lines,
        "",
    ]


def _mean(runs):
    return 100 * float(np.mean([r["test_accuracy"] for r in runs]))


def export_table(rows):
    """Controller target vs reached, and TFLite size and batch-1 latency, for rows that have them.

    The dense model's figures come from the export rows (the same architecture, unpruned).
    """
    exported = {name: runs for name, runs in rows.items() if "tflite" in runs[0]}
    targeted = {name: runs for name, runs in rows.items() if _target(runs[0]) is not None}
    if not exported and not targeted:
        return []
    lines = [
        "TFLite export (batch 1, one thread, fastest of 7 alternating rounds of 500 calls) and the "
        "sparsity controller:",
        "",
        "| Run | Target sparsity (%) | Reached (%) | Params after compaction | File (KiB) | "
        "vs dense | Latency (µs) | Speed-up vs dense | Layers on a sparse kernel |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    if exported:
        figures = [r["tflite"] for runs in exported.values() for r in runs]
        size = np.mean([f["dense_model_size_bytes"] / 1024 for f in figures])
        latency = np.mean([f["dense_model_latency_us"] for f in figures])
        lines.append(f"| dense model | – | – | – | {size:.1f} | 1.00x | {latency:.2f} | 1.00x | – |")
    for name, runs in rows.items():
        if name not in exported and name not in targeted:
            continue
        target = _target(runs[0])
        cells = [
            "–" if target is None else f"{100 * target:.0f}",
            _cell(_stats([100 * (1 - r["remaining"]) for r in runs])),
        ]
        if name in exported:
            f = [r["tflite"] for r in runs]
            sparse = {k["layer"] for x in f for k in x["layers"] if k["runs_sparse"]}
            cells += [
                _cell(_stats([x["params_after"] for x in f]), 0),
                _cell(_stats([x["size_bytes"] / 1024 for x in f]), 1),
                _cell(_stats([x["compression"] for x in f]), 2, "x"),
                _cell(_stats([x["latency_us"] for x in f])),
                _cell(_stats([x["speedup"] for x in f]), 2, "x"),
                ", ".join(sorted(sparse)) or "none",
            ]
        else:
            cells += ["–"] * 6
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    if exported:
        lines += _kernel_table(exported)
    return lines


def _target(record):
    """The sparsity a run was asked for: DST's controller target or GMP's final sparsity."""
    params = record["params"]
    return params.get("target_sparsity", None if "matched" in params else params.get("final_sparsity"))


def _kernel_table(exported):
    """Per layer of each exported row: sparse kernel, or how the weights are stored and densified."""
    first = {name: runs[0]["tflite"]["layers"] for name, runs in exported.items()}
    layers = list(dict.fromkeys(k["layer"] for ks in first.values() for k in ks))
    lines = [
        "TFLite kernel per layer (first seed):",
        "",
        "| Run | " + " | ".join(map(str, layers)) + " |",
        "| --- |" + " --- |" * len(layers),
    ]
    for name, kernels in first.items():
        by_layer = {k["layer"]: k for k in kernels}
        cells = [_kernel_cell(by_layer.get(layer)) for layer in layers]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _kernel_cell(kernel):
    if kernel is None:
        return "–"
    if kernel["runs_sparse"]:
        return f"sparse ({kernel['encoding']})"
    if kernel["encoding"] != "dense":
        return f"{kernel['encoding']} → DENSIFY"
    return "dense" if kernel["sparsity"] else "dense, no zeros"


def plot(setups, path, annotate=True):
    """One panel per setup: accuracy vs remaining weights (log x), one point per run; with
    `annotate`, DST's seed-0 points name their row.

    Runs are drawn one by one rather than as mean ± std: with the reset rule, a seed may end
    with a regrown layer, and a mean of such runs would stand where no run is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(setups), figsize=(6 * len(setups), 4.5), squeeze=False)
    for ax, (setup, rows) in zip(axes[0], setups.items()):
        s = dict(zip(SETUP_KEYS, setup))
        by_method = {}
        for name, records in rows.items():
            for record in records:
                by_method.setdefault(record["method"], []).append((name, record))
        for method, runs in by_method.items():
            color, marker = STYLES.get(method, ("tab:gray", "^"))
            runs.sort(key=lambda run: run[1]["remaining"])
            x = [100 * r["remaining"] for _, r in runs]
            y = [100 * r["test_accuracy"] for _, r in runs]
            ax.plot(x, y, color=color, marker=marker, linewidth=0.8, label=method,
                    linestyle="-" if method != "dense" else "none")  # fmt: skip
            if method == "dense":
                ax.axhline(sum(y) / len(y), color=color, linestyle="--", linewidth=0.8)
            for (name, record), xi, yi in zip(runs, x, y):
                if annotate and method == "dst" and record["seed"] == 0:
                    text = name.split(" ", 1)[1].replace("reset_fraction=None", "no reset")
                    ax.annotate(text, (xi, yi), fontsize=7, textcoords="offset points",
                                xytext=(4, -10))  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("remaining weights (%, log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{s['model']} on {s['dataset']} ({s['epochs']} epochs), every run\n{s['suite']}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSONL files written by bench.run")
    parser.add_argument("--md", type=Path, help="write the tables here (default: print them)")
    parser.add_argument("--png", type=Path, help="plot path (default: first results file, .png)")
    parser.add_argument("--one-panel", action="store_true", help="plot every suite of a model and dataset in one panel")
    args = parser.parse_args(argv)
    records, failed = load(args.results)
    if not records:
        parser.error(f"no successful runs in {', '.join(map(str, args.results))}")
    setups = group(records)
    text = markdown(setups, failed)
    if args.md:
        args.md.write_text(text)
    else:
        sys.stdout.write(text)
    png = args.png or args.results[0].with_suffix(".png")
    plot(across_suites(setups) if args.one_panel else setups, png, annotate=not args.one_panel)
    print(f"plot: {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
