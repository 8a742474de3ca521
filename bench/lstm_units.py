"""Hidden-unit DST on LSTM-a: units removed against accuracy and TFLite latency.

    python -m bench.lstm_units                  # the BENCHMARKS.md rows, bench/out/lstm_units.jsonl
    python -m bench.lstm_units --quick          # smoke test: 2000/500 images, 1 epoch

Sequential Fashion-MNIST, LSTM(128, return_sequences) -> LSTM(128) -> Dense(10), the paper's
LSTM settings (Adam 1e-3, batch 100, 20 epochs). Rows, in order: the dense model; for each
--targets value, hidden-unit DST (`granularity="unit"` on both LSTMs, `target_sparsity` = the
share of hidden units to remove, alpha 1e-3 to start) compacted, then a dense LSTM-a of the
compacted widths trained from scratch for the same epochs; weight-level DST at alpha 1e-3 (the
paper's LSTM-a row). Each trained model is exported at batch 1 (float; the weight-level model
also compact+sparse) with parity, and the last row times every exported file side by side in
one process. Every finished row is appended to --out at once; rerunning skips recorded rows.
"""

import os
import sys
from pathlib import Path

from tqdm import tqdm

from bench import common, OUT_DIR, lstm_suite
from bench.lstm_export import export_one, row_latency
from bench.lstm_train import ALPHA, compile_adam, train
from bench.records import Store
from bench.runner import Row, in_child, run_rows

PARTS = ("dense", "units", "weights", "latency")
EXPORTS = {"float": {"sparse": False, "compact": True}, "compact+sparse": {"sparse": True, "compact": True}}


def build(seed, widths=(128, 128)):
    """LSTM-a with the given hidden widths (the layer names tfprune's LSTM-a uses)."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.LSTM(widths[0], return_sequences=True, name="lstm1"),
            keras.layers.LSTM(widths[1], name="lstm2"),
            keras.layers.Dense(10, name="fc"),
        ],
        name="lstm_a",
    )


def _finish(ctx, model, name, result):
    """Saves `model` as `<name>.keras` and adds what every training row records."""
    from bench.figures import kernel_figures, param_count

    model.save(ctx.models / f"{name}.keras")
    widths = [layer.units for layer in model.layers if hasattr(layer, "units")][:2]
    return {**result, **kernel_figures(model), "widths": widths, "param_count": param_count(model)}


def row_dense(ctx, widths):
    model = build(ctx.seed, widths)
    compile_adam(model, ctx.settings["lr"])
    result = train(model, ctx.arrays, ctx.settings["batch_size"], ctx.settings["epochs"])
    return _finish(ctx, model, _dense_name(widths), result)


def row_units(ctx, target, finetune=0):
    """Hidden-unit DST to `target` (share of hidden units removed), then `compact`; with
    `finetune`, DST takes the first epochs - finetune epochs and the compacted LSTM (its units
    chosen, nothing masked) trains the rest with a fresh Adam: same epochs as every row."""
    import numpy as np
    import tfprune

    model = tfprune.prunable(build(ctx.seed), layers=["lstm1", "lstm2"], granularity="unit")
    compile_adam(model, ctx.settings["lr"])
    callback = tfprune.DynamicPrune(alpha=ALPHA, target_sparsity=target)
    epochs = ctx.settings["epochs"]
    result = train(model, ctx.arrays, ctx.settings["batch_size"], epochs - finetune, [callback])
    small, report = tfprune.compact(model)
    x = ctx.arrays["x_test"][:500]
    drift = float(np.abs(small.predict(x, verbose=0) - model.predict(x, verbose=0)).max())
    compile_adam(small, ctx.settings["lr"])
    extra = {}
    if finetune:
        tuned = train(small, ctx.arrays, ctx.settings["batch_size"], finetune)
        extra = {"finetune_epoch_time": tuned["epoch_time"]}
    _, accuracy = small.evaluate(ctx.arrays["x_test"], ctx.arrays["y_test"], batch_size=1000, verbose=0)
    units = {row.name: row.units_after for row in report.layers if row.name.startswith("lstm")}
    return {
        **_finish(ctx, small, units_name(target, finetune), result),
        "masked_test_accuracy": result["test_accuracy"],
        "test_accuracy": float(accuracy),
        "units_kept": units,
        "compact_max_abs_drift": drift,
        **extra,
    }


def units_name(target, finetune):
    return f"units-{target:g}" + (f"-ft{finetune}" if finetune else "")


def units_label(target, finetune):
    return f"unit dst target={target:g}" + (f" finetune={finetune}" if finetune else "")


def row_weights(ctx):
    """Weight-level DST at the paper's LSTM alpha (Liu et al. 2020: 1.93% kept, +0.06 on MNIST)."""
    import tfprune

    model = tfprune.prunable(build(ctx.seed))
    compile_adam(model, ctx.settings["lr"])
    callback = tfprune.DynamicPrune(alpha=ALPHA)
    result = train(model, ctx.arrays, ctx.settings["batch_size"], ctx.settings["epochs"], [callback])
    return _finish(ctx, model, "weights", result)


def row_export(ctx, name, variant):
    path = ctx.models / f"{name}-{variant.replace('+', '-')}.tflite"
    return in_child(
        export_one, str(ctx.models / f"{name}.keras"), str(path), EXPORTS[variant],
        ctx.arrays["x_test"][: ctx.verify_samples], ctx.arrays["x_calibration"][:100],
        ctx.latency_runs,
    )  # fmt: skip


def _dense_name(widths):
    return "dense-" + "x".join(map(str, widths))


def plan(ctx, targets, only=None, finetune=0):
    """Rows in run order, of the parts in `only` (all by default): `dense` (the 128-unit
    reference), `units` (hidden-unit DST and the matched dense rows, whose widths come from
    the unit row's record), `weights`, `latency`. Each training row brings its exports."""
    only = set(only or PARTS)

    def head(label, method, params):
        return {**ctx.settings, "run": label, "method": method, "params": params, "seed": ctx.seed}

    def saved(name):
        return lambda: (ctx.models / f"{name}.keras").exists()

    def row(label, method, params, fn, name=None):
        return Row(head(label, method, params), fn, {**ctx.settings, "seed": ctx.seed}, name and saved(name))

    def exports(name, variants=("float",)):
        for variant in variants:
            yield row(f"export {name} {variant}", "export", {"source": name, "variant": variant},
                      lambda v=variant: row_export(ctx, name, v))  # fmt: skip

    if "dense" in only:
        yield row("dense 128x128", "dense", {"widths": [128, 128]}, lambda: row_dense(ctx, (128, 128)), "dense-128x128")
        yield from exports("dense-128x128")
    for target in targets if "units" in only else ():
        name, label = units_name(target, finetune), units_label(target, finetune)
        params = {"target": target, **({"finetune": finetune} if finetune else {})}
        yield row(label, "units", params, lambda t=target: row_units(ctx, t, finetune), name)
        yield from exports(name)
        (unit,) = [r for r in ctx.finished() if r["run"] == label] or [None]
        if unit is None:
            continue  # its row failed: no widths to match
        widths = tuple(unit["widths"])
        yield row(f"dense {widths[0]}x{widths[1]} (from scratch, matches {label.removeprefix('unit dst ')})", "dense",
                  {"widths": list(widths), "matched": label},
                  lambda w=widths: row_dense(ctx, w), _dense_name(widths))  # fmt: skip
        yield from exports(_dense_name(widths))
    if "weights" in only:
        yield row(f"weight dst alpha={ALPHA:g}", "weights", {"alpha": ALPHA}, lambda: row_weights(ctx), "weights")
        yield from exports("weights", ("float", "compact+sparse"))
    if "latency" in only:
        files = lambda: [r for r in ctx.store.finished(ctx.settings) if r["method"] == "export"]  # noqa: E731
        yield row("tflite latency", "latency", {}, lambda: row_latency(ctx, files()))


def parse_args(argv):
    parser = common.argument_parser("bench.lstm_units", __doc__)
    parser.add_argument("--epochs", type=int, help="epochs of every training row (default 20; 1 with --quick)")
    parser.add_argument("--targets", default="0.75,0.5,0.875", help="shares of hidden units to remove, comma-separated")
    parser.add_argument("--only", help=f"comma-separated parts to run: {', '.join(PARTS)} (default all); "
                        "two processes with disjoint parts can share one --out")
    parser.add_argument("--finetune", type=int, default=0,
                        help="last epochs of each unit row spent fine-tuning the compacted LSTM (default 0)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 2000/500 images, 1 epoch")
    parser.add_argument("--out", type=Path, help="JSONL results (default bench/out/lstm_units[-quick].jsonl)")
    args = parser.parse_args(argv)
    common.parse_lists(parser, args, PARTS, zero_ok=False)
    args.epochs = args.epochs or (1 if args.quick else 20)
    args.finetune_epochs = 0
    args.out = args.out or OUT_DIR / ("lstm_units-quick.jsonl" if args.quick else "lstm_units.jsonl")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    dataset, arrays = lstm_suite.load_arrays(args.quick)
    settings = {**lstm_suite.settings(dataset, arrays, args), "suite": "lstm_units"}
    models = args.out.with_name(args.out.stem + "-models")
    models.mkdir(parents=True, exist_ok=True)
    ctx = lstm_suite.Context(
        arrays=arrays, settings=settings, seed=args.seed, models=models, store=Store(args.out),
        rounds=3 if args.quick else 7, latency_runs=20 if args.quick else 300,
        verify_samples=32 if args.quick else 256,
    )  # fmt: skip
    print(f"bench.lstm_units: {dataset}, {args.epochs} epochs, targets {args.targets} -> {args.out}", flush=True)
    total = 4 + 4 * len(args.targets) + 3
    with tqdm(total=total, unit="row", desc="bench.lstm_units") as bar:
        failures = run_rows(plan(ctx, args.targets, args.only, args.finetune), ctx.store, bar, summary=lstm_suite.summary)
    print(f"bench.lstm_units: results in {args.out}" + (f"; {failures} row(s) FAILED" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
