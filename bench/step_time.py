"""Training-step time of DST against dense, alternating the two in one process.

    python -m bench.step_time --model lenet300 --rounds 7 --steps 300

Epoch times of long runs move with whatever else the machine does; alternating short rounds of
the two models and taking each one's median round cancels most of that. Both models use the
same compile settings (XLA for LeNet-300-100, none for LeNet-5, as in the benchmark suites);
DST includes DynamicPrune (penalty, per-batch alpha bookkeeping, reset check every 10 batches).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from bench import common
from bench.models import MODELS
from bench.records import append_record

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet300", choices=("lenet300", "lenet5"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/out/step_time.jsonl"))
    args = parser.parse_args(argv)

    import keras

    import tfprune
    from tfprune.data import load_dataset

    data = load_dataset("auto")
    batch_size = 64
    models = {}
    for kind in ("dense", "dst"):
        keras.utils.set_random_seed(0)
        model = MODELS[args.model].build(data.x_train.shape[1:], data.num_classes, keras=keras)
        if kind == "dst":
            model = tfprune.prunable(model)
        common.compile_model(keras, model, 0.01, 0.9, jit_compile=MODELS[args.model].jit_compile)
        callbacks = [tfprune.DynamicPrune()] if kind == "dst" else []
        common.timed_steps(keras, model, data.x_train, data.y_train, 20, batch_size, callbacks)  # trace, compile
        models[kind] = (model, callbacks)
    times = {kind: [] for kind in models}
    for _ in range(args.rounds):
        for kind, (model, callbacks) in models.items():
            seconds = common.timed_steps(keras, model, data.x_train, data.y_train, args.steps, batch_size, callbacks)
            times[kind].append(1000 * seconds / args.steps)
    record = {
        "model": args.model, "dataset": data.name, "rounds": args.rounds, "steps": args.steps,
        "jit_compile": MODELS[args.model].jit_compile,
        "ms_per_step": {kind: float(np.median(t)) for kind, t in times.items()},
        "all_rounds_ms": times,
    }
    record["dst_vs_dense"] = record["ms_per_step"]["dst"] / record["ms_per_step"]["dense"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    append_record(args.out, record)
    print(json.dumps({k: v for k, v in record.items() if k != "all_rounds_ms"}))


if __name__ == "__main__":
    main()
