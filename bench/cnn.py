"""Filter-level DST on MobileNets: channels removed against accuracy and TFLite latency.

    python -m bench.cnn --model mobilenet_v1    # BENCHMARKS.md §11, bench/out/cnn-mobilenet_v1.jsonl
    python -m bench.cnn --model mobilenet_v2    # (residual blocks) bench/out/cnn-mobilenet_v2.jsonl
    python -m bench.cnn --model mobilenet_v1 --quick   # smoke test: 512/256 images, 1 epoch

Fashion-MNIST resized to 64x64 and repeated to 3 channels (the first --train-size training
images, the whole test set); SGD 0.9 momentum, batch 64, the same --epochs for every row, the
learning rate decaying along a cosine to 0 over each training phase (from 0.05; from 0.01 for
fine-tuning), so that the last epochs settle and rows compare on a stable figure. Rows:
  - dense: the stock model;
  - filters: filter-level DST (`granularity="unit"` on every DepthwiseConv2D, whose channel gates
    the whole channel group: the filter that computes it, its BatchNorm and the next 1x1 conv's
    input row) steered by `target_sparsity` (share of channels removed) for epochs - finetune,
    then `compact` and --finetune epochs of the compacted model;
  - l1: magnitude filter pruning (Li et al., ICLR 2017): the dense model trained epochs -
    finetune, in each group the channels whose producing filter has the smallest L1 norm
    removed, as many as the filters row kept, then the same fine-tuning;
  - scratch: the filters row's compacted architecture trained from a fresh start;
  - policy: `prunable(policy="xnnpack")` (1x1 convs only, weight-level, at least 2/3 sparse)
    at --policy-target of the 1x1 weights, exported with sparse tensors, and its verdict;
  - gmp: tfmot GMP with `PruneForLatencyOnXNNPack` at the same sparsity (own process);
  - latency: every exported file timed side by side (batch 1, one thread, alternating rounds).
Each finished row is appended to --out at once; rerunning skips recorded rows.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import OUT_DIR, REPO_ROOT, common
from bench.records import Store
from bench.runner import Row, in_child, run_rows

PARTS = ("dense", "filters", "policy", "gmp", "latency")


def load_arrays(train_size, test_size, side=64):
    """Fashion-MNIST (digits where it is missing) at side x side x 3, float32 in [0, 1]."""
    import tensorflow as tf
    from tfprune.data import load_dataset

    data = load_dataset("auto")

    def images(x):
        x = tf.image.resize(x[..., None], (side, side)).numpy()
        return np.repeat(x, 3, axis=-1).astype("float32")

    return data.name, {
        "x_train": images(data.x_train[:train_size]), "y_train": data.y_train[:train_size],
        "x_test": images(data.x_test[:test_size]), "y_test": data.y_test[:test_size],
    }  # fmt: skip


class Context:
    def __init__(self, args):
        self.args = args
        self.dataset, self.arrays = load_arrays(args.train_size, args.test_size)
        self.settings = {
            "suite": "cnn", "model": args.model, "dataset": self.dataset, "epochs": args.epochs,
            "finetune": args.finetune, "train_size": len(self.arrays["x_train"]),
            "test_size": len(self.arrays["x_test"]), "batch_size": 64, "lr": 0.05, "finetune_lr": 0.01,
            "momentum": 0.9, "lr_schedule": "cosine",
        }  # fmt: skip
        self.models = args.out.with_name(args.out.stem + "-models")
        self.models.mkdir(parents=True, exist_ok=True)
        self.store = Store(args.out)

    def build(self, seed=None):
        import keras
        from tfprune import models

        keras.backend.clear_session()
        keras.utils.set_random_seed(self.args.seed if seed is None else seed)
        return getattr(models, self.args.model)(self.arrays["x_train"].shape[1:])

    def train(self, model, epochs, callbacks=(), finetune=False):
        """Compiles `model` with a fresh optimizer (cosine decay over these epochs) and trains it."""
        import keras

        steps = epochs * -(-len(self.arrays["x_train"]) // 64)
        lr = self.settings["finetune_lr" if finetune else "lr"]
        common.compile_model(keras, model, lr, self.settings["momentum"], decay_steps=steps)
        return common.fit_and_evaluate(keras, model, self.arrays, epochs, 64, callbacks)

    def evaluate(self, model):
        a = self.arrays
        return float(model.evaluate(a["x_test"], a["y_test"], batch_size=500, verbose=0)[1])

    def finish(self, model, name, result):
        """Saves `<name>.keras` and records its size and channel widths."""
        model.save(self.models / f"{name}.keras")
        return {**result, "params_total": int(model.count_params()), "channels": channels(model)}


def channels(model):
    """`{depthwise layer: channels}`: the width of every channel group."""
    import keras

    return {l.name: int(l.kernel.shape[-2]) for l in model.layers if isinstance(l, keras.layers.DepthwiseConv2D)}


def producers(model):
    """`{depthwise layer: the Conv2D computing its input channels}`, through BN, ReLU and padding."""
    import keras

    found = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.DepthwiseConv2D):
            continue
        source = layer.input._keras_history.operation
        while not isinstance(source, keras.layers.Conv2D):
            source = source.input._keras_history.operation
        found[layer.name] = source.name
    return found


def row_dense(ctx):
    model = ctx.build()
    return ctx.finish(model, "dense", ctx.train(model, ctx.args.epochs))


def row_filters(ctx, target):
    """Filter-level DST to `target`, compacted, fine-tuned (same epochs as every row)."""
    import keras
    import tfprune

    model = tfprune.prunable(ctx.build(), layers=[keras.layers.DepthwiseConv2D], granularity="unit")
    callback = tfprune.DynamicPrune(target_sparsity=target)
    result = ctx.train(model, ctx.args.epochs - ctx.args.finetune, [callback])
    small, _ = tfprune.compact(model)
    x = ctx.arrays["x_test"][:256]
    drift = float(np.abs(small.predict(x, verbose=0) - model.predict(x, verbose=0)).max())
    masked_accuracy = result["test_accuracy"]
    if ctx.args.finetune:
        result = ctx.train(small, ctx.args.finetune, finetune=True)
    return {**ctx.finish(small, f"filters-{target:g}", result), "masked_test_accuracy": masked_accuracy,
            "compact_max_abs_drift": drift, "channels_before": channels(model)}  # fmt: skip


def row_l1(ctx, target, kept):
    """L1-norm filter pruning to the channel counts `kept`, then the same fine-tuning."""
    import tfprune

    model = ctx.build()
    ctx.train(model, ctx.args.epochs - ctx.args.finetune)
    for depthwise, producer in producers(model).items():
        filters = model.get_layer(producer).kernel.numpy()
        norms = np.abs(filters).reshape(-1, filters.shape[-1]).sum(0)
        drop = np.argsort(norms)[: len(norms) - kept[depthwise]]
        weights = model.get_layer(depthwise).get_weights()
        weights[0][:, :, drop, :] = 0  # the channel is no longer read: compact removes its group
        model.get_layer(depthwise).set_weights(weights)
    small, _ = tfprune.compact(model)
    result = ctx.train(small, ctx.args.finetune, finetune=True) if ctx.args.finetune else {"test_accuracy": ctx.evaluate(small)}
    return ctx.finish(small, f"l1-{target:g}", result)


def row_scratch(ctx, target):
    """The compacted architecture of the filters row, from a fresh start, every epoch."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(ctx.args.seed)
    trained = keras.saving.load_model(ctx.models / f"filters-{target:g}.keras")
    model = keras.models.clone_model(trained)  # same layers, new initial weights
    return ctx.finish(model, f"scratch-{target:g}", ctx.train(model, ctx.args.epochs))


def row_policy(ctx):
    """Weight-level DST on exactly the 1x1 convs XNNPACK can run sparse, each >= 2/3 sparse."""
    import tfprune

    model = tfprune.prunable(ctx.build(), policy="xnnpack")
    callback = tfprune.DynamicPrune(target_sparsity=ctx.args.policy_target)
    result = ctx.train(model, ctx.args.epochs, [callback])
    from tfprune.layers.base import masked_layers, sparsity_of

    sparsity = {l.name: l.sparsity() for l in masked_layers(model)}
    return {**ctx.finish(model, "policy", result), "sparsity_1x1": sparsity,
            "sparsity": float(sparsity_of(masked_layers(model)))}  # fmt: skip


def row_gmp(ctx):
    """tfmot GMP with PruneForLatencyOnXNNPack, in its own tf_keras process."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(data, **ctx.arrays)
        command = [
            sys.executable, "-m", "bench.tfmot_baseline", "--data", str(data), "--model", ctx.args.model,
            "--final-sparsity", str(ctx.args.policy_target), "--policy", "xnnpack",
            "--epochs", str(ctx.args.epochs), "--lr", str(ctx.settings["lr"]), "--cosine", "--seed", str(ctx.args.seed), "--out", str(out),
            "--save-weights", str(ctx.models / "gmp-weights.npz"),
        ]  # fmt: skip
        subprocess.run(command, check=True, cwd=REPO_ROOT, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
        result = json.loads(out.read_text())
    model = ctx.build()
    with np.load(ctx.models / "gmp-weights.npz") as f:
        model.set_weights([f[f"w{i}"] for i in range(len(f.files))])
    zeros = {l.name: float(np.mean(l.kernel.numpy() == 0)) for l in model.layers
             if getattr(l, "kernel_size", None) == (1, 1)}  # fmt: skip
    return {**ctx.finish(model, "gmp", result), "sparsity_1x1": zeros}


def export_one(model_path, path, sparse, x_verify):
    import keras
    import tflite_export

    report = tflite_export.export(keras.saving.load_model(model_path), path, batch_size=1,
                                  verify_data=x_verify, sparse=sparse, latency_runs=50)  # fmt: skip
    figures = report.to_dict()
    keep = ("path", "size_bytes", "latency_ms", "dense_latency_ms", "parity", "xnnpack_sparse")
    return {k: figures[k] for k in keep if k in figures}


def row_export(ctx, name, sparse=False):
    path = ctx.models / f"{name}.tflite"
    return in_child(export_one, str(ctx.models / f"{name}.keras"), str(path), sparse, ctx.arrays["x_test"][:64])


def row_latency(ctx):
    from tflite_export.timing import median_latency_us

    exports = [r for r in ctx.store.finished(ctx.settings) if r["method"] == "export"]
    files = {r["params"]["source"]: r["path"] for r in exports if Path(r["path"]).exists()}
    best, rounds = median_latency_us(list(files.values()), [ctx.arrays["x_test"][:1]], rounds=7, runs=200)
    dense = best[list(files).index("dense")] if "dense" in files else None
    return {"latency_us": dict(zip(files, best)),
            "speedup": {k: dense / v for k, v in zip(files, best)} if dense else {},
            "rounds_us": {k: [r[i] for r in rounds] for i, k in enumerate(files)}}  # fmt: skip


def plan(ctx):
    args = ctx.args
    only = set(args.only or PARTS)

    def row(label, method, params, fn, name=None):
        head = {**ctx.settings, "run": label, "method": method, "params": params, "seed": args.seed}
        saved = name and (lambda: (ctx.models / f"{name}.keras").exists())
        return Row(head, fn, {**ctx.settings, "seed": args.seed}, saved)

    def export(name, sparse=False):
        return row(f"export {name}", "export", {"source": name, "sparse": sparse},
                   lambda: row_export(ctx, name, sparse))  # fmt: skip

    def record(label):
        return next((r for r in reversed(ctx.store.finished(ctx.settings)) if r["run"] == label), None)

    if "dense" in only:
        yield row("dense", "dense", {}, lambda: row_dense(ctx), "dense")
        yield export("dense")
    for target in args.targets if "filters" in only else ():
        label = f"filters target={target:g}"
        yield row(label, "filters", {"target": target}, lambda t=target: row_filters(ctx, t), f"filters-{target:g}")
        yield export(f"filters-{target:g}")
        found = record(label)
        if found is None:
            continue
        yield row(f"l1 (matches {label})", "l1", {"target": target, "matched": label},
                  lambda t=target, k=found["channels"]: row_l1(ctx, t, k), f"l1-{target:g}")  # fmt: skip
        yield export(f"l1-{target:g}")
        yield row(f"scratch (matches {label})", "scratch", {"target": target, "matched": label},
                  lambda t=target: row_scratch(ctx, t), f"scratch-{target:g}")  # fmt: skip
        yield export(f"scratch-{target:g}")
    if "policy" in only:
        yield row(f"policy xnnpack target={args.policy_target:g}", "policy", {"target": args.policy_target},
                  lambda: row_policy(ctx), "policy")  # fmt: skip
        yield export("policy", sparse=True)
    if "gmp" in only:
        yield row(f"gmp xnnpack sparsity={args.policy_target:g}", "gmp", {"target": args.policy_target},
                  lambda: row_gmp(ctx), "gmp")  # fmt: skip
        yield export("gmp", sparse=True)
    if "latency" in only:
        yield row("tflite latency", "latency", {}, lambda: row_latency(ctx))


def parse_args(argv):
    parser = common.argument_parser("bench.cnn", __doc__)
    parser.add_argument("--model", choices=("mobilenet_v1", "mobilenet_v2"), default="mobilenet_v1")
    parser.add_argument("--epochs", type=int, help="epochs of every row (default 8; 1 with --quick)")
    parser.add_argument("--finetune", type=int, help="of them, fine-tuning after compaction (default 2; 0 with --quick)")
    parser.add_argument("--targets", default="0.3,0.45,0.6", help="shares of channels to remove, comma-separated")
    parser.add_argument("--policy-target", type=float, default=0.9, help="sparsity of the 1x1 convs (default 0.9)")
    parser.add_argument("--train-size", type=int, help="training images (default 10000)")
    parser.add_argument("--test-size", type=int, help="test images (default 10000)")
    parser.add_argument("--only", help=f"comma-separated parts: {', '.join(PARTS)} (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 512/256 images, 1 epoch")
    parser.add_argument("--out", type=Path, help="JSONL results (default bench/out/cnn-<model>[-quick].jsonl)")
    args = parser.parse_args(argv)
    common.parse_lists(parser, args, PARTS, zero_ok=False)
    args.epochs = args.epochs or (1 if args.quick else 8)
    args.finetune = args.finetune if args.finetune is not None else (0 if args.quick else 2)
    args.train_size = args.train_size or (512 if args.quick else 10000)
    args.test_size = args.test_size or (256 if args.quick else 10000)
    if not 0 <= args.finetune < args.epochs:
        parser.error(f"--finetune must be in [0, epochs). Received: {args.finetune}")
    args.out = args.out or OUT_DIR / f"cnn-{args.model}{'-quick' if args.quick else ''}.jsonl"
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ctx = Context(args)
    print(f"bench.cnn: {args.model} on {ctx.dataset}, {args.epochs} epochs -> {args.out}", flush=True)
    total = 2 + 6 * len(args.targets) + 5
    with tqdm(total=total, unit="row", desc="bench.cnn") as bar:
        failures = run_rows(plan(ctx), ctx.store, bar)
    print(f"bench.cnn: results in {args.out}" + (f"; {failures} row(s) FAILED" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
