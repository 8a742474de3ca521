"""LSTM benchmark on sequential Fashion-MNIST: dense, DST, hidden-state pruning, TFLite.

    python -m bench.lstm --epochs 10       # the BENCHMARKS.md rows, bench/out/lstm.jsonl
    python -m bench.lstm --quick           # smoke test: 2000/500 images, 1 epoch

Each image is 28 steps of 28 pixels; LSTM(128, return_sequences) -> LSTM(128) -> Dense(10),
Adam 1e-3, batch 100. Rows run in order: dense, DST (alpha 1e-3, the paper's LSTM value), a
paired step-time comparison, hidden-state pruning of the DST model for each --targets and
--rounds value (calibrate, fine-tune --finetune-epochs with thresholds recalibrated --rounds
times an epoch), TFLite exports (batch 1) of the dense, DST and one hidden-state model, and the
exported files timed again side by side. Every finished row is appended to --out as one JSON
line at once; a rerun of the same command skips recorded rows (trained models are kept in
<out stem>-models/ for later rows). Exports run in a child process each: the TFLite converter
can crash outright (int8 LSTMs).
"""

import argparse
import datetime
import multiprocessing
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import common
from bench.models import MODELS
from bench.run import REPO_ROOT, append_record, read_records, same_setup

ALPHA = 1e-3  # Liu et al. 2020, LSTM-a on MNIST
KERNELS = ("kernel", "recurrent_kernel")
WEIGHTS = (*KERNELS, "bias")
# name -> tflite_export.export options; "limit" rows compare the file to its nonzero weights.
EXPORTS = {
    "float": {"sparse": False, "compact": False},
    "sparse": {"sparse": True, "compact": False},
    "compact+sparse": {"sparse": True, "compact": True},
    "compact+sparse dynamic": {"sparse": True, "compact": True, "quantize": "dynamic"},
    "compact+sparse int8": {"sparse": True, "compact": True, "quantize": "int8"},
    "compact dynamic": {"sparse": False, "compact": True, "quantize": "dynamic"},
    "dynamic": {"sparse": False, "compact": False, "quantize": "dynamic"},
    "int8": {"sparse": False, "compact": False, "quantize": "int8"},
}
EXPORT_ROWS = {
    "dense": ("float", "dynamic", "int8"),
    "dst": (
        "float", "sparse", "compact+sparse", "compact+sparse dynamic", "compact dynamic",
        "compact+sparse int8",
    ),
    "hidden": ("compact+sparse", "compact+sparse dynamic", "compact dynamic", "compact+sparse int8"),
}


# Training rows ---------------------------------------------------------------------------------


def build(seed):
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return MODELS["lstm_a"].build((28, 28), 10)


def compile_adam(model, lr):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train(model, ctx, epochs, callbacks=()):
    """`common.fit_and_evaluate` with a per-batch progress bar."""
    import keras

    arrays = ctx["arrays"]
    steps = -(-len(arrays["x_train"]) // ctx["settings"]["batch_size"])
    bar = tqdm(total=epochs * steps, unit="step", desc="  train", mininterval=10, leave=False)

    class Progress(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            bar.update()

        def on_epoch_end(self, epoch, logs=None):
            shown = ("loss", "accuracy", "sparsity")
            bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if k in shown})
            tqdm.write(f"  epoch {epoch + 1}/{epochs}: " + _short(logs))

    try:
        return common.fit_and_evaluate(
            keras, model, arrays, epochs, ctx["settings"]["batch_size"],
            callbacks=[*callbacks, Progress()],
        )  # fmt: skip
    finally:
        bar.close()


def row_dense(ctx):
    model = build(ctx["seed"])
    compile_adam(model, ctx["settings"]["lr"])
    result = train(model, ctx, ctx["settings"]["epochs"])
    model.save(ctx["models"] / "dense.keras")
    return {**result, **weight_counts(model)}


def row_dst(ctx):
    """DST from scratch; also the hidden-state sparsity the dead units give for free."""
    import tfprune

    model = tfprune.prunable(build(ctx["seed"]))
    compile_adam(model, ctx["settings"]["lr"])
    result = train(model, ctx, ctx["settings"]["epochs"], [tfprune.DynamicPrune(alpha=ALPHA)])
    model.save(ctx["models"] / "dst.keras")
    free, _ = tfprune.lstm.prune_hidden_state(model, ctx["arrays"]["x_calibration"], 0.0)
    return {
        **result,
        **weight_counts(tfprune.strip(model)),
        "hidden_at_threshold_0": hidden_figures(free, ctx["arrays"]["x_test"]),
        **units_removed(model, ctx),
    }


def row_step_time(ctx):
    """Train-step time of DST vs keras.layers.LSTM, alternating, so machine load hits both."""
    import tfprune

    arrays, batch = ctx["arrays"], ctx["settings"]["batch_size"]
    x, y = arrays["x_train"][:batch], arrays["y_train"][:batch]
    models = {"dense": build(0), "dst": tfprune.prunable(build(0))}
    for model in models.values():
        compile_adam(model, ctx["settings"]["lr"])
        model.train_on_batch(x, y)  # tracing
    times = {name: [] for name in models}
    for _ in tqdm(range(ctx["rounds"]), desc="  rounds", leave=False):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(20):
                model.train_on_batch(x, y)
            times[name].append(1000 * (time.perf_counter() - start) / 20)
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    return {
        "step_ms_min": best,
        "step_ms_median": median,
        "ratio_min": best["dst"] / best["dense"],
        "ratio_median": median["dst"] / median["dense"],
        "rounds_ms": times,
    }


def row_hidden(ctx, target, rounds):
    """Calibrate the DST model's hidden-state thresholds to `target`, then fine-tune the weights
    in `rounds` slices per epoch, recalibrating before each slice.

    Fine-tuning lifts |h| over fixed thresholds (after a whole epoch at 0.6, the measured sparsity
    fell to 0.35), and recalibrating after the last slice costs accuracy the fine-tune never
    recovers (15 points at 0.6); so thresholds track the target during the fine-tune and the
    model is measured as the last slice leaves it.
    """
    import keras
    import tfprune

    arrays, settings = ctx["arrays"], ctx["settings"]
    dst = keras.saving.load_model(ctx["models"] / "dst.keras")
    model, calibration = tfprune.lstm.prune_hidden_state(dst, arrays["x_calibration"], target)
    for layer in tfprune.layers.masked_layers(model):
        for threshold in layer.threshold_variables():
            threshold.trainable = False  # stage 3: weights only
    compile_adam(model, settings["lr"])
    _, before = model.evaluate(arrays["x_test"], arrays["y_test"], batch_size=1000, verbose=0)
    hidden_before = hidden_figures(model, arrays["x_test"])
    rng = np.random.default_rng(ctx["seed"])
    steps, seconds = [], 0.0
    for epoch in range(settings["finetune_epochs"]):
        order = rng.permutation(len(arrays["x_train"]))
        for part, indices in enumerate(np.array_split(order, rounds)):
            if epoch or part:
                calibration = tfprune.lstm.calibrate(model, arrays["x_calibration"], target)
            sliced = {**arrays, "x_train": arrays["x_train"][indices], "y_train": arrays["y_train"][indices]}
            result = train(model, {**ctx, "arrays": sliced}, 1)
            seconds += result["epoch_times"][0]
            steps.append({
                "test_accuracy": result["test_accuracy"],
                "thresholds": {k: v["hidden_threshold"] for k, v in calibration.items()},
            })  # fmt: skip
    model.save(ctx["models"] / f"hidden-{target:g}-r{rounds}.keras")
    return {
        "test_accuracy": steps[-1]["test_accuracy"],
        "epoch_time": seconds / settings["finetune_epochs"],
        "finetune": steps,
        "accuracy_before_finetune": float(before),
        "hidden_before_finetune": hidden_before,
        "calibration": calibration,
        "hidden": hidden_figures(model, arrays["x_test"]),
        **weight_counts(tfprune.strip(model)),
        **units_removed(model, ctx),
    }


# Figures ---------------------------------------------------------------------------------------


def weight_counts(model):
    """Nonzero share of every LSTM / Dense kernel, overall (kernels only, as in the paper) and
    per kernel, plus the parameter count (kernels and biases)."""
    per_kernel, total, kept, params = {}, 0, 0, 0
    for variable in model.weights:
        if variable.name not in WEIGHTS:
            continue
        values = np.asarray(variable)
        params += values.size
        if variable.name in KERNELS:
            nonzero = int(np.count_nonzero(values))
            per_kernel[variable.path] = nonzero / values.size
            total, kept = total + values.size, kept + nonzero
    return {
        "remaining": kept / total,
        "remaining_per_kernel": per_kernel,
        "kernel_weights": total,
        "kernel_weights_nonzero": kept,
        "param_count": params,
    }


def hidden_figures(model, x):
    """`tfprune.lstm.measure` on `x`, plus the share of the *sparse* `h U` multiply-adds (those
    left after weight pruning) that zero chunks skip on top."""
    import keras
    import tfprune

    report = tfprune.lstm.measure(model, x, batch_size=1000)
    for layer in tfprune.lstm.lstm_layers(model):
        cell = layer.cell
        steps = int(keras.ops.convert_to_numpy(cell.seen_steps))
        kept = np.asarray(keras.ops.convert_to_numpy(cell.kept_steps)) / max(steps, 1)
        rows = np.count_nonzero(keras.ops.convert_to_numpy(cell.effective_kernels()[1]), axis=1)
        report[layer.name]["sparse_macs_skipped"] = float(1 - kept @ rows / max(rows.sum(), 1))
    return report


def units_removed(model, ctx):
    """Hidden units removed exactly (`tfprune.compact` on the stripped model) and on the
    calibration data's evidence (`remove_dead_units`), with the latter's test accuracy."""
    import tfprune

    arrays = ctx["arrays"]
    stripped = tfprune.strip(model)
    compacted, report = tfprune.compact(stripped)
    by_data, units = tfprune.lstm.remove_dead_units(model, arrays["x_calibration"])
    compile_adam(by_data, ctx["settings"]["lr"])
    _, accuracy = by_data.evaluate(arrays["x_test"], arrays["y_test"], batch_size=1000, verbose=0)
    return {
        "compact": {
            "units": {layer["name"]: layer["units_after"] for layer in report.to_dict()["layers"]},
            "param_count": weight_counts(compacted)["param_count"],
        },
        "remove_dead_units": {
            "units": {name: layer["units_after"] for name, layer in units.items()},
            "by_data": {name: len(layer["by_data"]) for name, layer in units.items()},
            "param_count": weight_counts(tfprune.strip(by_data))["param_count"],
            "test_accuracy": float(accuracy),
        },
    }


# Export rows -----------------------------------------------------------------------------------


def row_export(ctx, source, variant):
    """One `tflite_export.export` at batch 1, in a child process (see the module docstring)."""
    options = EXPORTS[variant]
    arrays = ctx["arrays"]
    path = ctx["models"] / f"{source}-{variant.replace(' ', '-').replace('+', '-')}.tflite"
    return in_child(
        export_one,
        str(ctx["models"] / f"{source}.keras"),
        str(path),
        options,
        arrays["x_test"][: ctx["verify_samples"]],
        arrays["x_calibration"][:100],
        ctx["latency_runs"],
    )


def export_one(model_path, path, options, x_verify, x_calibration, latency_runs):
    """Exports and adds the file's physical limit: nonzero weights x bytes per stored value."""
    import keras
    import tfprune
    import tflite_export

    model = keras.saving.load_model(model_path)
    representative = x_calibration if options.get("quantize") == "int8" else None
    report = tflite_export.export(
        model, path, batch_size=1, verify_data=x_verify, representative_data=representative,
        latency_runs=latency_runs, **options,
    )  # fmt: skip
    prepared = tfprune.strip(model) if tfprune.layers.masked_layers(model) else model
    if options["compact"]:
        prepared, _ = tfprune.compact(prepared)
    kernel_bytes = 1 if options.get("quantize") else 4
    limit = 0
    for variable in prepared.weights:
        if variable.name in WEIGHTS:
            nonzero = int(np.count_nonzero(np.asarray(variable)))
            limit += nonzero * (kernel_bytes if variable.name in KERNELS else 4)
    figures = report.to_dict()
    del figures["tensors"], figures["layers"]
    figures["export_batch_size"] = figures.pop("batch_size")  # the record's is the training batch
    return {
        **figures,
        "limit_bytes": limit,
        "size_over_limit": report.size_bytes / limit,
        "latency_us": 1000 * report.latency_ms,
        "dense_encoding_latency_us": 1000 * report.dense_latency_ms,
        "param_count": weight_counts(prepared)["param_count"],
    }


def row_latency(ctx):
    """Batch-1 latency of every exported file, timed in alternating rounds, each file keeping its
    fastest round's median: the export rows time one file at a time, so load from other jobs on
    the machine can hit one file and not another."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    done = [r for r in ctx["records"] if r["status"] == "ok" and same_setup(r, ctx["settings"])]
    exports = {r["run"]: r for r in done if r["method"] == "export" and Path(r["path"]).exists()}
    if not exports:
        raise RuntimeError("no exported file of this setup to time: run the export rows first")
    sample = ctx["arrays"]["x_test"][:1]
    interpreters = {}
    for label, record in exports.items():
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if not record["runtime_note"]:
            resolver = OpResolverType.AUTO
        interpreter = Interpreter(
            model_path=record["path"], num_threads=1, experimental_op_resolver_type=resolver
        )
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
        interpreters[label] = interpreter
    rounds = {label: [] for label in interpreters}
    for _ in tqdm(range(ctx["rounds"]), desc="  rounds", leave=False):
        for label, interpreter in interpreters.items():
            times = []
            for _ in range(ctx["latency_runs"]):
                interpreter.reset_all_variables()
                start = time.perf_counter()
                interpreter.invoke()
                times.append(time.perf_counter() - start)
            rounds[label].append(1e6 * float(np.median(times)))
    return {"latency_us": {k: min(v) for k, v in rounds.items()}, "rounds_us": rounds}


def in_child(function, *args):
    """`function(*args)` in a fresh process; a crash (e.g. a segfault) becomes a RuntimeError."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, args))
    process.start()
    sender.close()
    try:
        ok, value = receiver.recv()
    except EOFError:
        process.join()
        code = process.exitcode
        name = signal.Signals(-code).name if code is not None and code < 0 else f"exit {code}"
        raise RuntimeError(f"the export process died ({name}) without a result") from None
    process.join()
    if not ok:
        raise RuntimeError(value)
    return value


def _child(sender, function, args):
    try:
        sender.send((True, function(*args)))
    except Exception:
        sender.send((False, traceback.format_exc(limit=8)[-4000:]))


# Plan and main ---------------------------------------------------------------------------------


def plan(args):
    """`[(label, method, params, fn)]` in run order; export rows of the hidden-state model pick
    their source when they run (see `best_hidden`)."""
    rows = [
        ("dense", "dense", {}, row_dense),
        (f"dst alpha={ALPHA:g}", "dst", {"alpha": ALPHA}, row_dst),
        ("step time", "step_time", {}, row_step_time),
    ]
    for target in args.targets:
        for rounds in args.rounds:
            params = {"target": target, "rounds": rounds}
            rows.append(
                (f"dst+hidden target={target:g} rounds={rounds}", "hidden", params,
                 lambda ctx, t=target, r=rounds: row_hidden(ctx, t, r))
            )  # fmt: skip
    for source, variants in EXPORT_ROWS.items():
        for variant in variants:
            params = {"source": source, "variant": variant}
            rows.append(
                (f"export {source} {variant}", "export", params,
                 lambda ctx, s=source, v=variant: row_export(ctx, _source(ctx, s), v))
            )  # fmt: skip
    rows.append(("tflite latency", "latency", {}, row_latency))
    return rows


def _source(ctx, source):
    return best_hidden(ctx) if source == "hidden" else source


def best_hidden(ctx):
    """The hidden-state model to export: the sparsest hidden state (mean over layers, test set)
    within 1 point of DST's accuracy, else the most accurate."""
    done = [r for r in ctx["records"] if r["status"] == "ok" and same_setup(r, ctx["settings"])]
    dst = [r["test_accuracy"] for r in done if r["method"] == "dst"]
    hidden = sorted(
        (r for r in done if r["method"] == "hidden" and "rounds" in r["params"]),
        key=lambda r: r["params"]["target"],
    )
    if not hidden:
        raise RuntimeError("no hidden-state row finished: nothing to export")
    good = [r for r in hidden if dst and r["test_accuracy"] >= dst[-1] - 0.01]
    if good:
        best = max(good, key=lambda r: np.mean([v["hidden_sparsity"] for v in r["hidden"].values()]))
    else:
        best = max(hidden, key=lambda r: r["test_accuracy"])
    return _hidden_file(best["params"])


def _hidden_file(params):
    return f"hidden-{params['target']:g}-r{params['rounds']}"


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


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.lstm", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, help="dense and DST epochs (default 10; 1 with --quick)")
    parser.add_argument("--finetune-epochs", type=int, help="after hidden-state pruning (default 1)")
    parser.add_argument("--targets", default="0.4,0.5,0.6,0.8", help="hidden-state sparsity targets, comma-separated")
    parser.add_argument("--rounds", default="1,4", help="hidden-state calibrations per fine-tune epoch, comma-separated: one row per target and value (default 1,4)")
    parser.add_argument("--only", help="comma-separated row kinds to run: dense, dst, step_time, hidden, export, latency")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 2000/500 images, 1 epoch")
    parser.add_argument("--out", type=Path, help="JSONL results (default bench/out/lstm[-quick].jsonl)")
    args = parser.parse_args(argv)
    args.targets = [float(t) for t in args.targets.split(",")]
    args.only = args.only.split(",") if args.only else None
    args.rounds = [int(r) for r in args.rounds.split(",")]
    for target in args.targets:
        if not 0 <= target < 1:
            parser.error(f"targets must be in [0, 1). Received: {target}")
    args.epochs = args.epochs or (1 if args.quick else 10)
    args.finetune_epochs = args.finetune_epochs or 1
    name = "lstm-quick" if args.quick else "lstm"
    args.out = args.out or REPO_ROOT / "bench" / "out" / f"{name}.jsonl"
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads; children inherit
    dataset, arrays = load_arrays(args.quick)
    settings = {
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
    models = args.out.with_name(args.out.stem + "-models")
    models.mkdir(parents=True, exist_ok=True)
    ctx = {
        "arrays": arrays,
        "settings": settings,
        "seed": args.seed,
        "models": models,
        "records": read_records(args.out),
        "rounds": 3 if args.quick else 7,
        "latency_runs": 20 if args.quick else 300,
        "verify_samples": 32 if args.quick else 256,
    }
    rows = plan(args)
    print(
        f"bench.lstm: {dataset} as 28 steps x 28 pixels ({settings['n_train']} train / "
        f"{settings['n_test']} test), {args.epochs} epochs (+{args.finetune_epochs} fine-tune), "
        f"{len(rows)} rows -> {args.out}",
        flush=True,
    )
    failures = 0
    for label, method, params, fn in tqdm(rows, unit="row", desc="bench.lstm"):
        if _recorded(ctx, label, method, params) or args.only and method not in args.only:
            continue
        record = {
            **settings, "run": label, "method": method, "params": params, "seed": args.seed,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }  # fmt: skip
        tqdm.write(f"{label} ...")
        start = time.perf_counter()
        try:
            result = fn(ctx)
            clash = sorted(set(result) & set(record))
            if clash:
                raise KeyError(f"the row's figures would overwrite the record's keys {clash}")
            record.update(result, status="ok")
        except Exception:
            record.update(status="failed", error=traceback.format_exc(limit=8)[-4000:])
            failures += 1
        record["wall_time"] = time.perf_counter() - start
        append_record(args.out, record)
        ctx["records"].append(record)
        tqdm.write(f"{label}: " + summary(record))
    print(f"bench.lstm: results in {args.out}" + (f"; {failures} row(s) FAILED" if failures else ""))
    return 1 if failures else 0


def _recorded(ctx, label, method, params):
    """A row is done when recorded ok; a training row also needs its saved model."""
    done = any(
        r["run"] == label and r["status"] == "ok" and same_setup(r, ctx["settings"])
        for r in ctx["records"]
    )
    saved = {"dense": "dense.keras", "dst": "dst.keras"}.get(method)
    if method == "hidden":
        saved = _hidden_file(params) + ".keras"
    return done and (saved is None or (ctx["models"] / saved).exists())


def summary(record):
    if record["status"] != "ok":
        return "FAILED\n" + record["error"]
    keys = ("test_accuracy", "remaining", "epoch_time", "ratio_min", "size_bytes", "latency_us")
    text = _short({k: record[k] for k in keys if k in record})
    if "hidden" in record:
        text += " hidden " + ", ".join(
            f"{name} {layer['hidden_sparsity']:.3f}" for name, layer in record["hidden"].items()
        )
    return text


def _short(logs):
    return ", ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))


if __name__ == "__main__":
    sys.exit(main())
