"""Transformer encoder and GRU on sequential Fashion-MNIST: dense, DST and tfmot GMP at matched
sparsity (accuracy, TFLite size), and attention-head removal (heads kept vs accuracy, latency).

    python -m bench.sequence --epochs 5 --train 20000        # bench/out/sequence.jsonl
    python -m bench.sequence --quick                          # smoke test

Each image is 28 tokens of 28 pixels. Every row trains with the same settings (Adam, --lr, batch 100, --epochs, the first --train training images, all 10000 test images). Rows in
order per model: dense; DST (`tfprune.prunable` + `DynamicPrune(target_sparsity=--target)`);
GMP (tfmot `prune_low_magnitude`, in its own process, final sparsity = the DST row's measured
kernel sparsity); each exported with `tflite_export` (sparse encoding) next to the dense file.
Then heads: the DST Transformer with its least important heads (value x output slice norms)
zeroed and removed by `tfprune.compact`, for every number of heads kept: evaluated and exported
as compacted, then fine-tuned --head-epochs without masks for a second accuracy figure. Every finished row is one JSON line; a rerun skips
recorded rows (trained models are kept in <out stem>-models/).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench import OUT_DIR, common
from bench.figures import remaining_weights
from bench.records import Store


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.sequence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--head-epochs", type=int, default=1)
    parser.add_argument("--train", type=int, default=20000, help="training images used")
    parser.add_argument("--target", type=float, default=0.8, help="DST target sparsity")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="transformer,gru")
    parser.add_argument("--phases", default="train,heads", help="train (dense, DST, GMP rows), heads")
    parser.add_argument("--quick", action="store_true", help="2000/500 images, 1 epoch")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.head_epochs, args.train = 1, 1, 2000
    args.out = args.out or OUT_DIR / ("sequence-quick.jsonl" if args.quick else "sequence.jsonl")
    args.models = args.models.split(",")
    args.phases = args.phases.split(",")
    return args


def load(args):
    from tfprune.data import load_fashion_mnist

    data = load_fashion_mnist()
    rng = np.random.default_rng(args.seed)
    train = rng.permutation(len(data.x_train))[: args.train]
    test = slice(None, 500 if args.quick else None)
    return {
        "x_train": data.x_train[train], "y_train": data.y_train[train],
        "x_test": data.x_test[test], "y_test": data.y_test[test],
    }  # fmt: skip


def main(argv=None):
    args = parse_args(argv)
    import keras

    import tfprune
    from bench.methods import Context, Run, run_gmp
    from bench.models import MODELS
    from bench.suites import Suite
    from bench.tflite_figures import tflite_figures

    arrays = load(args)
    store = Store(args.out)
    models_dir = args.out.with_name(args.out.stem + "-models")
    models_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("epochs", "train", "lr", "batch_size", "seed", "target")}
    settings["optimizer"] = "adam"
    x_verify = arrays["x_test"][:64]

    def build(name):
        keras.utils.set_random_seed(args.seed)
        return MODELS[name].build(arrays["x_train"].shape[1:], 10)

    def train(model, callbacks=()):
        common.compile_model(keras, model, args.lr, 0.9, optimizer="adam")
        return common.fit_and_evaluate(keras, model, arrays, args.epochs, args.batch_size, callbacks)

    def record(row, result):
        result = {**row, **settings, **result, "status": "ok", "time": time.time()}
        store.append(result)
        print(json.dumps({k: result[k] for k in result if k in ("model", "method", "heads", "test_accuracy", "remaining")}), flush=True)

    for name in args.models if "train" in args.phases else ():
        dense_path = models_dir / f"{name}-dense.keras"
        dst_path = models_dir / f"{name}-dst.keras"
        if not store.recorded(settings, model=name, method="dense"):
            model = build(name)
            result = train(model)
            model.save(dense_path)
            result.update(remaining_weights(model), tflite=tflite_figures(model, build(name), x_verify))
            record({"model": name, "method": "dense"}, result)
        if not store.recorded(settings, model=name, method="dst"):
            keras.backend.clear_session()
            model = tfprune.prunable(build(name))
            result = train(model, [tfprune.DynamicPrune(target_sparsity=args.target)])
            model.save(dst_path)
            result.update(remaining_weights(tfprune.strip(model)))
            result["tflite"] = tflite_figures(model, build(name), x_verify)
            record({"model": name, "method": "dst"}, result)
        if not store.recorded(settings, model=name, method="gmp"):
            dst = next(
                r for r in store.finished(settings) if r["model"] == name and r["method"] == "dst"
            )
            sparsity = round(1 - dst["remaining"], 4)  # matched: the DST row's kernel sparsity
            ctx = Context(Suite(name, (), export=True), arrays, {**settings, "momentum": 0.9}, models_dir)
            run = Run(f"sequence-{name}", "gmp", {"final_sparsity": sparsity}, args.seed, f"{name} gmp")
            result = run_gmp(ctx, run, lambda epoch, logs: None)  # counts and exports in Keras 3
            record({"model": name, "method": "gmp", "final_sparsity": sparsity}, result)
    if "transformer" in args.models and "heads" in args.phases:
        heads(args, arrays, store, settings, models_dir / "transformer-dst.keras", record, tflite_figures, build)


def heads(args, arrays, store, settings, path, record, tflite_figures, build):
    """Heads kept vs accuracy and latency: zero the least important heads, compact, fine-tune."""
    import keras

    import tfprune
    from tfprune.layers.attention import MaskedMultiHeadAttention

    for kept in range(4, 0, -1):
        if store.recorded(settings, model="transformer", method="heads", heads=kept):
            continue
        keras.backend.clear_session()
        model = keras.saving.load_model(path)
        mha = next(l for l in model.layers if isinstance(l, MaskedMultiHeadAttention))
        value, output = mha.projections()["value_dense"], mha.projections()["output_dense"]
        v = keras.ops.convert_to_numpy(value.masked_kernel())  # (features, heads, head_dim)
        o = keras.ops.convert_to_numpy(output.masked_kernel())  # (heads, head_dim, out)
        score = np.linalg.norm(v, axis=(0, 2)) * np.linalg.norm(o, axis=(1, 2))
        drop = np.argsort(score)[: len(score) - kept]
        kernel = keras.ops.convert_to_numpy(value.kernel)
        kernel[:, drop, :] = 0
        value.kernel.assign(kernel)
        small, _ = tfprune.compact(model)
        common.compile_model(keras, small, args.lr / 5, 0.9, optimizer="adam")
        mha_small = next(l for l in small.layers if isinstance(l, keras.layers.MultiHeadAttention))
        result = {
            "heads_dropped": sorted(int(h) for h in drop),
            "heads_after_compact": int(mha_small.num_heads),
            "test_accuracy": float(small.evaluate(arrays["x_test"], arrays["y_test"], verbose=0)[1]),
            "params": int(small.count_params()),
            # The file and its latency: the compacted DST model (its zeros intact).
            "tflite": tflite_figures(small, build("transformer"), arrays["x_test"][:64]),
        }
        # Then --head-epochs of plain fine-tuning (no masks: zeros may regrow), for accuracy only.
        fit = common.fit_and_evaluate(keras, small, arrays, args.head_epochs, args.batch_size)
        result["accuracy_after_finetune"] = fit["test_accuracy"]
        record({"model": "transformer", "method": "heads", "heads": kept}, result)


if __name__ == "__main__":
    main()
