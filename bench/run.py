"""Side-by-side benchmark: dense, DST (tfprune) and tfmot GMP on the same data and settings.

    python -m bench.run --suite lenet300 --epochs 20 --seeds 1 --out bench/out/lenet300.jsonl
    python -m bench.run --quick        # smoke test: 5k-image subset (digits offline), 2 epochs
    python -m bench.run --suite blocks --out bench/out/blocks.jsonl   # block/unit DST + TFLite

Every finished run is appended to --out as one JSON line at once, so a killed session loses only
the run in progress, and rerunning the same command skips the runs already recorded. GMP rows are
matched to DST: one tfmot run at each remaining ratio a DST run of the same seed reached.
`python -m bench.report` turns the file into tables and a plot.
"""

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import common
from bench.models import MODELS
from bench.tflite_figures import tflite_figures

REPO_ROOT = Path(__file__).resolve().parent.parent
PAPER_ALPHAS = (5e-4, 1.5e-3, 5e-3)  # Liu et al. 2020, the MNIST/Fashion-MNIST sweep.


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row of a suite: a method (a key of METHODS) and its parameters.

    With `match`, the row expands at run time into one run per finished run of the method named
    `match` (same suite and seed), with `final_sparsity` = 1 - the remaining ratio it reached.
    """

    method: str
    params: dict = dataclasses.field(default_factory=dict)
    match: str = None


@dataclasses.dataclass(frozen=True)
class Suite:
    """A model and its rows; with `export`, pruned rows also record TFLite size and latency."""

    model: str
    experiments: tuple
    export: bool = False


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: what gets a JSON line."""

    suite: str
    method: str
    params: dict
    seed: int
    label: str


PAPER_ROWS = (
    Experiment("dense"),
    *(Experiment("dst", {"alpha": alpha}) for alpha in PAPER_ALPHAS),
    # From alpha 1.5e-3 on, LeNet-300's first layer settles near 1% kept, where the reset rule
    # (thresholds to 0 past 99% masked) may regrow it late in training, depending on the seed;
    # these rows show the sparsity DST reaches without the rule.
    *(Experiment("dst", {"alpha": alpha, "reset_fraction": None}) for alpha in PAPER_ALPHAS[1:]),
    Experiment("gmp", match="dst"),
)
# Sparsity that runs fast: 1x4 blocks (TFLite's sparse kernel) against unstructured DST, tfmot's
# block pruning and whole units.
BLOCK_ROWS = (
    Experiment("dense"),
    Experiment("dst", {"granularity": (1, 4), "target_sparsity": 0.9}),
    Experiment("dst", {"target_sparsity": 0.9}),
    Experiment("gmp", {"final_sparsity": 0.9, "block_size": (1, 4)}),
    # tfmot's block_size is in the Keras kernel's (inputs, outputs) layout, so (1, 4) groups four
    # outputs; TFLite's 1x4 blocks group four inputs, which is tfmot's (4, 1).
    Experiment("gmp", {"final_sparsity": 0.9, "block_size": (4, 1)}),
    Experiment("dst", {"granularity": "unit", "target_sparsity": 0.6}),
)
# Epoch times measured on their own, on a machine doing nothing else (the long suites above ran
# side by side with other jobs, so their times are only indicative).
TIMING_ROWS = (
    Experiment("dense"),
    Experiment("dst", {"alpha": PAPER_ALPHAS[0]}),
    Experiment("gmp", match="dst"),
)
SUITES = {
    "lenet300": Suite("lenet300", PAPER_ROWS),
    "lenet5": Suite("lenet5", PAPER_ROWS),
    "timing300": Suite("lenet300", TIMING_ROWS),
    "timing5": Suite("lenet5", TIMING_ROWS),
    "blocks": Suite("lenet300", BLOCK_ROWS, export=True),
}


# Methods: fn(ctx, run, on_epoch) -> result dict (see common.fit_and_evaluate + remaining_weights).


def run_dense(ctx, run, on_epoch):
    model, result = _train_keras3(ctx, run, on_epoch)
    return {**result, **common.remaining_weights(model)}


def run_dst(ctx, run, on_epoch):
    """`granularity` goes to `prunable`, the other parameters to `DynamicPrune`."""
    import tfprune

    params = dict(run.params)
    granularity = params.pop("granularity", "weight")
    model, result = _train_keras3(
        ctx, run, on_epoch, convert=lambda m: tfprune.prunable(m, granularity=granularity),
        callbacks=[tfprune.DynamicPrune(**params)],
    )  # fmt: skip
    result.update(common.remaining_weights(tfprune.strip(model)))
    if ctx.suite.export:
        result["tflite"] = tflite_figures(model, _build(ctx), ctx.arrays["x_test"][:256])
    return result


def run_gmp(ctx, run, on_epoch):
    """tfmot in a subprocess (it needs tf_keras); its stderr is kept for the error message.

    In an `export` suite, the subprocess saves the stripped weights and this process exports them.
    """
    params = dict(run.params)
    params.pop("matched", None)
    export = ctx.suite.export
    stem = ctx.workdir / f"gmp-{os.getpid()}-{time.monotonic_ns()}"
    command = [
        sys.executable, "-m", "bench.tfmot_baseline",
        "--data", str(ctx.data_file()),
        "--model", ctx.suite.model,
        "--final-sparsity", repr(params.pop("final_sparsity")),
        "--epochs", str(ctx.settings["epochs"]),
        "--batch-size", str(ctx.settings["batch_size"]),
        "--lr", repr(ctx.settings["lr"]),
        "--momentum", repr(ctx.settings["momentum"]),
        "--seed", str(run.seed),
        "--out", f"{stem}.json",
        *(["--save-weights", f"{stem}.npz"] if export else []),
    ]  # fmt: skip
    for key, value in params.items():
        flag = "--" + key.replace("_", "-")
        command += [flag, *map(str, value)] if isinstance(value, (list, tuple)) else [flag, str(value)]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(f"{stem}.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
        for line in process.stdout:
            if line.startswith("epoch "):
                on_epoch(int(line.split()[1].split("/")[0]) - 1, {})
        returncode = process.wait()
    if returncode != 0:
        tail = Path(f"{stem}.log").read_text().strip().splitlines()[-15:]
        raise RuntimeError(f"tfmot subprocess exited with {returncode}:\n" + "\n".join(tail))
    result = json.loads(Path(f"{stem}.json").read_text())
    if export:
        model = _build(ctx)
        with np.load(f"{stem}.npz") as saved:
            model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
        result["tflite"] = tflite_figures(model, _build(ctx), ctx.arrays["x_test"][:256])
    return result


METHODS = {"dense": run_dense, "dst": run_dst, "gmp": run_gmp}


def _build(ctx):
    """The suite's architecture in Keras 3, freshly initialised."""
    return MODELS[ctx.suite.model].build(ctx.arrays["x_train"].shape[1:], ctx.num_classes)


def _train_keras3(ctx, run, on_epoch, convert=None, callbacks=()):
    import keras
    import tensorflow as tf

    keras.backend.clear_session()
    keras.utils.set_random_seed(run.seed)
    model = _build(ctx)
    if convert is not None:
        model = convert(model)
    common.compile_model(keras, model, ctx.settings["lr"], ctx.settings["momentum"], ctx.settings["jit_compile"])
    result = common.fit_and_evaluate(
        keras, model, ctx.arrays, ctx.settings["epochs"], ctx.settings["batch_size"],
        callbacks=callbacks, on_epoch=on_epoch,
    )  # fmt: skip
    result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
    return model, result


# Planning ------------------------------------------------------------------------------------


def label(method, params, matched=None):
    """`"dst alpha=0.0005"`, `"gmp @ dst alpha=0.0005"`: the same for every seed, for grouping."""
    words = [method] + [f"{k}={_fmt(v)}" for k, v in params.items()]
    return " ".join(words + (["@", matched] if matched else []))


def _fmt(value):
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand(experiment, suite_name, seed, finished):
    """The concrete runs of one row, given the `finished` records (for `match` rows)."""
    if experiment.match is None:
        params = dict(experiment.params)
        return [Run(suite_name, experiment.method, params, seed, label(experiment.method, params))]
    runs = []
    for record in finished:
        if record["suite"] == suite_name and record["seed"] == seed and record["method"] == experiment.match:
            params = {
                **experiment.params,
                "final_sparsity": 1.0 - record["remaining"],
                "matched": record["run"],
            }
            name = label(experiment.method, experiment.params, matched=record["run"])
            runs.append(Run(suite_name, experiment.method, params, seed, name))
    return runs


def expected_runs(experiment, suite):
    """How many runs a row makes per seed: one, or one per row of the method it matches."""
    if experiment.match is None:
        return 1
    return sum(e.method == experiment.match and e.match is None for e in suite.experiments)


# Data and context ----------------------------------------------------------------------------


@dataclasses.dataclass
class Context:
    """What every run of one suite shares: data, settings and a scratch directory."""

    suite: Suite
    arrays: dict
    settings: dict
    workdir: Path
    _data_file: Path = None

    @property
    def num_classes(self):
        return int(max(self.arrays["y_train"].max(), self.arrays["y_test"].max())) + 1

    def data_file(self):
        """The arrays as an .npz, written once, for subprocesses to train on the same data."""
        if self._data_file is None:
            self._data_file = self.workdir / f"data-{id(self)}.npz"
            np.savez(self._data_file, **self.arrays)
        return self._data_file


def load_arrays(dataset, train_size, test_size):
    from tfprune.data import load_dataset

    data = load_dataset(dataset)
    arrays = {
        "x_train": data.x_train[:train_size],
        "y_train": data.y_train[:train_size],
        "x_test": data.x_test[:test_size],
        "y_test": data.y_test[:test_size],
    }
    return data.name, arrays


def pad_to(arrays, side):
    """Zero-pads images to at least `side` x `side` (centred), for models that need a minimum."""
    height, width = arrays["x_train"].shape[1:]
    if height >= side and width >= side:
        return arrays
    dh, dw = max(0, side - height), max(0, side - width)
    padding = ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2))
    return {k: np.pad(v, padding) if k.startswith("x") else v for k, v in arrays.items()}


# Records -------------------------------------------------------------------------------------


def read_records(path):
    """The records in a JSONL file; a line cut short by a killed run is skipped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def append_record(path, record):
    """Appends one line and syncs it, so a kill right after loses nothing."""
    cut_short = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if cut_short else "") + json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def same_setup(record, settings):
    return all(record.get(k) == v for k, v in settings.items())


# Main ----------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("--suite", default="lenet300", help=f"comma-separated: {', '.join(SUITES)} or all")
    parser.add_argument("--dataset", default="auto", help="auto (Fashion-MNIST, else digits), fashion_mnist, digits")
    parser.add_argument("--epochs", type=int, help="default 20 (2 with --quick)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds: runs use seeds 0..N-1")
    parser.add_argument("--methods", help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--train-size", type=int, help="first N training images (default all; 5000 with --quick)")
    parser.add_argument("--test-size", type=int, help="first N test images (default all; 1000 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--no-jit", action="store_true", help="Keras 3 rows without XLA (default: jit_compile=True; tfmot never uses XLA)")
    parser.add_argument("--quick", action="store_true", help="smoke test: small data, 2 epochs")
    parser.add_argument("--out", type=Path, help="JSONL results (default bench/out/<suites>[-quick].jsonl)")
    args = parser.parse_args(argv)
    suites = list(SUITES) if args.suite == "all" else args.suite.split(",")
    for name in suites:
        if name not in SUITES:
            parser.error(f"unknown suite {name!r}; choose from {', '.join(SUITES)} or all")
    methods = args.methods.split(",") if args.methods else list(METHODS)
    for name in methods:
        if name not in METHODS:
            parser.error(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    if args.epochs is None:
        args.epochs = 2 if args.quick else 20
    if args.quick:
        args.train_size = args.train_size or 5000
        args.test_size = args.test_size or 1000
    if args.out is None:
        args.out = REPO_ROOT / "bench" / "out" / f"{'+'.join(suites)}{'-quick' if args.quick else ''}.jsonl"
    args.suites, args.method_names = suites, methods
    return args


def main(argv=None):
    args = parse_args(argv)
    dataset, arrays = load_arrays(args.dataset, args.train_size, args.test_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    records = read_records(args.out)
    rows = {name: [e for e in SUITES[name].experiments if e.method in args.method_names] for name in args.suites}
    total = args.seeds * sum(expected_runs(e, SUITES[name]) for name in rows for e in rows[name])
    print(
        f"bench: {dataset} ({len(arrays['x_train'])} train / {len(arrays['x_test'])} test images), "
        f"{args.epochs} epochs, seeds 0..{args.seeds - 1}, {total} runs -> {args.out}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="tfprune-bench-") as workdir, tqdm(
        total=total, unit="run", desc="bench", dynamic_ncols=True
    ) as bar:
        failures = 0
        for name, experiments in rows.items():
            suite = SUITES[name]
            suite_arrays = pad_to(arrays, MODELS[suite.model].min_side)
            settings = {
                "dataset": dataset,
                "n_train": len(suite_arrays["x_train"]),
                "n_test": len(suite_arrays["x_test"]),
                "image_shape": list(suite_arrays["x_train"].shape[1:]),
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "momentum": args.momentum,
                "jit_compile": not args.no_jit,
            }
            ctx = Context(suite, suite_arrays, settings, Path(workdir))
            for seed in range(args.seeds):
                for experiment in experiments:
                    failures += run_row(ctx, name, experiment, seed, records, args.out, bar)
    print(f"bench: results in {args.out}" + (f"; {failures} run(s) FAILED" if failures else ""))
    return 1 if failures else 0


def run_row(ctx, suite_name, experiment, seed, records, out, bar):
    """Runs the not-yet-recorded runs of one row, appending each record to `out` and `records`.

    Returns the number of runs that failed.
    """
    finished = [r for r in records if r["status"] == "ok" and same_setup(r, ctx.settings)]
    runs = expand(experiment, suite_name, seed, finished)
    if len(runs) != expected_runs(experiment, ctx.suite):  # a `match` row: matched runs failed
        bar.total += len(runs) - expected_runs(experiment, ctx.suite)
        bar.refresh()
    done = {(r["suite"], r["run"], r["seed"]) for r in finished}
    failures = 0
    for run in runs:
        if (run.suite, run.label, run.seed) not in done:
            record = execute(ctx, run, bar)
            append_record(out, record)
            records.append(record)
            failures += record["status"] != "ok"
            tqdm.write(summary(record, finished))
        bar.update()
    return failures


def execute(ctx, run, bar):
    """Runs one `Run` and returns its record; a failure becomes a record, not a crash."""
    bar.set_postfix_str(f"{run.suite}: {run.label} seed={run.seed}")
    record = {
        "suite": run.suite,
        "model": ctx.suite.model,
        "run": run.label,
        "method": run.method,
        "params": run.params,
        "seed": run.seed,
        **ctx.settings,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    start = time.perf_counter()
    with tqdm(total=ctx.settings["epochs"], unit="epoch", desc=run.label, leave=False, dynamic_ncols=True) as epochs:

        def on_epoch(epoch, logs):
            shown = {k: f"{v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "sparsity")}
            epochs.set_postfix(shown, refresh=False)
            epochs.update(epoch + 1 - epochs.n)

        try:
            record.update(METHODS[run.method](ctx, run, on_epoch), status="ok")
        except Exception:
            record.update(status="failed", error=traceback.format_exc(limit=5)[-3000:])
    record["wall_time"] = time.perf_counter() - start
    return record


def summary(record, finished):
    """One line per finished run, with its epoch time relative to the dense run of its seed."""
    head = f"{record['suite']} | {record['run']} | seed {record['seed']}"
    if record["status"] != "ok":
        return f"{head}: FAILED\n{record['error']}"
    dense = [
        r["epoch_time"] for r in finished
        if (r["suite"], r["seed"], r["method"]) == (record["suite"], record["seed"], "dense")
    ]  # fmt: skip
    relative = f" ({record['epoch_time'] / dense[-1]:.2f}x dense)" if dense else ""
    return (
        f"{head}: accuracy {record['test_accuracy']:.4f}, remaining {record['remaining']:.4f}, "
        f"epoch {record['epoch_time']:.2f}s{relative}"
    )


if __name__ == "__main__":
    sys.exit(main())
