"""DST under each Keras backend, side by side: same data, seed, initial weights and settings.

    python -m bench.backends --out bench/out/backends.jsonl     # LeNet-300-100 and LeNet-5, TF and JAX
    python -m bench.backends --quick                            # digits, 2 epochs, short timing rounds

Per model and backend, two rows, each in its own process with KERAS_BACKEND set (Keras fixes its
backend at import): a DST run at the paper's settings (SGD 0.01 momentum 0.9, batch 64, alpha
5e-4, 20 epochs: test accuracy, remaining weights), and a step-time row alternating dense and DST
rounds in one process (the DST/dense ratio; `bench.step_time`'s method). Initial weights are
Glorot-uniform from numpy's generator for the seed, so every backend starts from the same model;
the batch order is each backend's own shuffle. TensorFlow compiles with XLA where the suites do
(LeNet-300-100), JAX always (it has no graph mode without `jax.jit`).

Every finished row is appended to --out as one JSON line; rerunning skips recorded rows.
"""

import math
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import OUT_DIR, common
from bench.records import Store
from bench.runner import Row, in_child, run_rows

BACKENDS = ("tensorflow", "jax", "torch")
KINDS = ("dst", "step time")


def parse_args(argv):
    parser = common.argument_parser("bench.backends", __doc__)
    parser.add_argument("--models", default="lenet300,lenet5", help="comma-separated: lenet300, lenet5")
    parser.add_argument("--backends", default="tensorflow,jax", help="comma-separated: " + ", ".join(BACKENDS))
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, digits or auto")
    parser.add_argument("--epochs", type=int, help="default 20 (2 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=5e-4)
    parser.add_argument("--rounds", type=int, help="step-time rounds of each model (default 5; 2 with --quick)")
    parser.add_argument("--steps", type=int, help="steps a timed round (default 200; 20 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke test: digits, 2 epochs, short rounds")
    parser.add_argument("--out", type=Path, help="JSONL results (default bench/out/backends[-quick].jsonl)")
    parser.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")
    args = parser.parse_args(argv)
    args.model_names = args.models.split(",")
    args.backend_names = args.backends.split(",")
    for name in args.model_names:
        if name not in ("lenet300", "lenet5"):
            parser.error(f"unknown model {name!r}; choose from lenet300, lenet5")
    for name in args.backend_names:
        if name not in BACKENDS:
            parser.error(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if args.quick:
        args.dataset = "digits"
    args.epochs = args.epochs or (2 if args.quick else 20)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.steps = args.steps or (20 if args.quick else 200)
    args.out = args.out or OUT_DIR / f"backends{'-quick' if args.quick else ''}.jsonl"
    return args


def plan(args):
    """The rows in run order: per model, the step-time rows, then the (long) DST runs."""
    settings = {
        "dataset": args.dataset, "epochs": args.epochs, "batch_size": 64, "lr": 0.01,
        "momentum": 0.9, "alpha": args.alpha, "rounds": args.rounds, "steps": args.steps,
    }  # fmt: skip
    for model_name in args.model_names:
        for kind in ("step time", "dst"):
            for backend in args.backend_names:
                head = {
                    "suite": "backends", "run": f"{model_name} {backend} {kind}", "seed": args.seed,
                    "model": model_name, "backend": backend, "kind": kind, **settings,
                }  # fmt: skip
                function = step_time_row if kind == "step time" else dst_row
                yield Row(head, lambda f=function, h=head: in_child(f, h), settings)


def summary(record):
    head = f"{record['run']} | seed {record['seed']}"
    if record["status"] != "ok":
        return f"{head}: FAILED\n{record['error']}"
    if record["kind"] == "step time":
        ms = record["ms_per_step"]
        return f"{head}: dense {ms['dense']:.2f} ms, dst {ms['dst']:.2f} ms, ratio {record['dst_vs_dense']:.2f}"
    return (
        f"{head}: accuracy {record['test_accuracy']:.4f}, remaining {record['remaining']:.4f}, "
        f"epoch {record['epoch_time']:.1f} s"
    )


# In the child process -------------------------------------------------------------------------


def dst_row(head):
    """A DST training run: test accuracy, remaining weights (stripped model), epoch times."""
    keras = _keras(head["backend"])
    import tfprune
    from bench.figures import remaining_weights

    arrays, data_name = _arrays(head)
    model = tfprune.prunable(initialised_model(keras, head, arrays))
    common.compile_model(keras, model, head["lr"], head["momentum"], _jit(head))
    result = common.fit_and_evaluate(
        keras, model, arrays, head["epochs"], head["batch_size"],
        callbacks=[tfprune.DynamicPrune(alpha=head["alpha"])],
    )  # fmt: skip
    result.update(remaining_weights(tfprune.strip(model)))
    return {**result, **_about(keras, head, arrays, data_name)}


def step_time_row(head):
    """Median ms a training step of dense and of DST (with DynamicPrune), alternating rounds."""
    keras = _keras(head["backend"])
    import tfprune

    arrays, data_name = _arrays(head)
    x, y = arrays["x_train"], arrays["y_train"]
    models = {}
    for kind in ("dense", "dst"):
        model = initialised_model(keras, head, arrays)
        model = tfprune.prunable(model) if kind == "dst" else model
        common.compile_model(keras, model, head["lr"], head["momentum"], _jit(head))
        callbacks = [tfprune.DynamicPrune(alpha=head["alpha"])] if kind == "dst" else []
        common.timed_steps(keras, model, x, y, 20, head["batch_size"], callbacks)  # trace, compile
        models[kind] = (model, callbacks)
    times = {kind: [] for kind in models}
    for _ in range(head["rounds"]):
        for kind, (model, callbacks) in models.items():
            seconds = common.timed_steps(keras, model, x, y, head["steps"], head["batch_size"], callbacks)
            times[kind].append(1000 * seconds / head["steps"])
    ms = {kind: float(np.median(t)) for kind, t in times.items()}
    return {
        "ms_per_step": ms, "all_rounds_ms": times, "dst_vs_dense": ms["dst"] / ms["dense"],
        **_about(keras, head, arrays, data_name),
    }  # fmt: skip


def _keras(backend):
    """Keras on `backend`; refuses a process where Keras is already imported on another one."""
    os.environ["KERAS_BACKEND"] = backend
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"Keras runs on {keras.backend.backend()} in this process, not {backend}")
    return keras


def _jit(head):
    from bench.models import MODELS

    return head["backend"] == "jax" or (head["backend"] == "tensorflow" and MODELS[head["model"]].jit_compile)


def _arrays(head):
    from bench.suites import pad_to
    from bench.models import MODELS
    from tfprune.data import load_dataset

    data = load_dataset(head["dataset"])
    arrays = {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test}
    return pad_to(arrays, MODELS[head["model"]].min_side), data.name


def initialised_model(keras, head, arrays):
    """The stock model with Glorot-uniform kernels drawn by numpy: the same on every backend."""
    from bench.models import MODELS

    keras.utils.set_random_seed(head["seed"])  # the backend's own: shuffling
    num_classes = int(arrays["y_train"].max()) + 1
    model = MODELS[head["model"]].build(arrays["x_train"].shape[1:], num_classes, keras=keras)
    rng = np.random.default_rng(head["seed"])
    for weight in model.weights:
        if weight.path.endswith("kernel"):
            shape = tuple(weight.shape)
            receptive = math.prod(shape[:-2])
            limit = math.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
            weight.assign(rng.uniform(-limit, limit, shape).astype("float32"))
    return model


def _about(keras, head, arrays, data_name):
    backend = sys.modules[head["backend"]]
    return {
        "data": data_name, "n_train": len(arrays["x_train"]), "n_test": len(arrays["x_test"]),
        "jit_compile": _jit(head),
        "versions": {"keras": keras.__version__, head["backend"]: backend.__version__},
    }  # fmt: skip


def table(records):
    """The BENCHMARKS.md table: per model and backend, the DST run and the step-time row."""
    rows = {}
    for r in records:
        if r.get("status") == "ok":
            rows.setdefault((r["model"], r["backend"]), {})[r["kind"]] = r
    lines = [
        "| Model | Backend | Test accuracy (%) | Remaining weights (%) | Epoch time (s) "
        "| Dense step (ms) | DST step (ms) | DST/dense |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (model, backend), kinds in rows.items():
        dst, timing = kinds.get("dst"), kinds.get("step time")
        cells = [f"{100 * dst['test_accuracy']:.2f}", f"{100 * dst['remaining']:.2f}", f"{dst['epoch_time']:.1f}"] if dst else ["not recorded"] * 3
        if timing:
            ms = timing["ms_per_step"]
            cells += [f"{ms['dense']:.2f}", f"{ms['dst']:.2f}", f"{timing['dst_vs_dense']:.2f}x"]
        else:
            cells += ["not recorded"] * 3
        lines.append(f"| {model} | {backend} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.table:
        print(table(Store(args.out).records))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.out)
    rows = list(plan(args))
    print(f"bench: {len(rows)} rows ({args.dataset}, {args.epochs} epochs, seed {args.seed}) -> {args.out}", flush=True)
    with tqdm(total=len(rows), unit="row", desc="backends", dynamic_ncols=True) as bar:
        failures = run_rows(rows, store, bar, summary=summary)
    print(f"bench: results in {args.out}" + (f"; {failures} row(s) FAILED" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
