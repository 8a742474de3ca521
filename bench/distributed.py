"""DST in 1 against 2 local JAX processes: the same training, its step time and its result.

    python -m bench.distributed --out bench/out/distributed.jsonl
    python -m bench.distributed --table

LeNet-300-100 on Fashion-MNIST, SGD 0.01 momentum 0.9, global batch 64, alpha 5e-4, the same
Glorot-uniform start (`bench.backends.initialised_model`) and no shuffling, so 1 and 2 processes
compute the same training; rows for dense and DST at each process count. The processes are
started by `tfprune.launch` on 127.0.0.1 and joined by `tfprune.distributed.data_parallel`; each
feeds its rows of every global batch (`local_batches`). A step's time is the median epoch's wall
time over its steps, epoch 0 (compilation) left out. The two processes share this machine's two
cores, so the figures show correctness and overhead, not a speed-up. Rerunning skips recorded rows.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench import OUT_DIR, common
from bench.records import Store


def parse_args(argv):
    parser = common.argument_parser("bench.distributed", __doc__)
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, digits or auto")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "distributed.jsonl")
    parser.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a launched process: its JSON
    parser.add_argument("--kind", default="dst", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    store = Store(args.out)
    if args.table:
        print(table(store.records))
        return 0
    from tqdm import tqdm

    from tfprune.launch import launch

    settings = {"model": "lenet300", "dataset": args.dataset, "epochs": args.epochs, "seed": args.seed,
                "batch_size": 64, "lr": 0.01, "momentum": 0.9, "alpha": 5e-4}  # fmt: skip
    plan = [(int(n), kind) for n in args.processes.split(",") for kind in ("dense", "dst")]
    for n, kind in tqdm(plan, desc="distributed", unit="row"):
        head = {"suite": "distributed", "run": f"{kind} {n} process{'es' if n > 1 else ''}",
                "processes": n, "kind": kind, **settings}  # fmt: skip
        if store.recorded(head):
            continue
        result = args.out.parent / f"distributed-{kind}-{n}.json"
        result.unlink(missing_ok=True)
        command = [sys.executable, "-m", "bench.distributed", "--worker", str(result), "--kind", kind,
                   "--epochs", str(args.epochs), "--seed", str(args.seed), "--dataset", args.dataset]  # fmt: skip
        log = open(args.out.parent / f"distributed-{kind}-{n}.log", "w")
        codes = launch(n, command, timeout=3600, out=log)
        if codes != [0] * n or not result.exists():
            store.append({**head, "status": "failed", "error": f"exit codes {codes}, see {log.name}"})
            continue
        store.append({**head, "status": "ok", **json.loads(result.read_text())})
        result.unlink()
    print(table(store.records))
    return 0


def worker(args):
    """One launched process: train, evaluate, and (process 0) write the figures."""
    import keras

    import tfprune
    from bench.backends import initialised_model
    from tfprune import distributed
    from tfprune.data import load_dataset

    distributed.data_parallel()
    n = distributed.process_count()
    data = load_dataset(args.dataset)
    head = {"model": "lenet300", "seed": args.seed}
    model = initialised_model(keras, head, {"x_train": data.x_train, "y_train": data.y_train})
    if args.kind == "dst":
        model = tfprune.prunable(model)
    common.compile_model(keras, model, 0.01, 0.9, jit_compile=True)
    x, y = distributed.local_batches(64, data.x_train, data.y_train)
    x_test, y_test = distributed.local_batches(100, data.x_test, data.y_test)

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.model  # noqa: B018  under JAX, waits for the epoch's last step
            times.append(time.perf_counter() - self.start)

    times = []
    callbacks = [tfprune.DynamicPrune(alpha=5e-4)] if args.kind == "dst" else []
    history = model.fit(x, y, batch_size=64 // n, epochs=args.epochs, shuffle=False, verbose=0,
                        callbacks=[*callbacks, EpochClock()])  # fmt: skip
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=100 // n, verbose=0)
    steps = len(x) // (64 // n)
    if distributed.is_chief():
        figures = {
            "test_accuracy": float(accuracy), "test_loss": float(loss), "steps_per_epoch": steps,
            "ms_per_step": 1000 * float(np.median(times[1:] or times)) / steps,
            "epoch_times": times, "devices": len(keras.distribution.list_devices()),
            "sparsity": history.history.get("sparsity", [0.0])[-1],
            "sparsity_per_epoch": history.history.get("sparsity", []),
            "data": data.name, "n_train": n * len(x), "n_test": n * len(x_test),
        }  # fmt: skip
        args.worker.write_text(json.dumps(figures))
    return 0


def table(records):
    """The BENCHMARKS.md table: one row per process count and kind."""
    rows = [
        "| processes | kind | ms / step | test accuracy | sparsity | epochs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted((r for r in records if r.get("status") == "ok"), key=lambda r: (r["processes"], r["kind"])):
        sparsity = f"{100 * r['sparsity']:.2f}%" if r["kind"] == "dst" else "-"
        rows.append(
            f"| {r['processes']} | {r['kind']} | {r['ms_per_step']:.2f} | "
            f"{100 * r['test_accuracy']:.2f}% | {sparsity} | {r['epochs']} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
