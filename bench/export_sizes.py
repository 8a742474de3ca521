"""TFLite sizes and latency of DST-trained models: dense, sparse, compacted+sparse, +int8.

    python -m bench.export_sizes --epochs 20 --out bench/out/export.jsonl

Trains each DST model once (paper settings), then exports it four ways with `tflite_export` and
records file size, batch-1 latency (LiteRT interpreter) and the ratio of each file to its
physical limit: the nonzero parameters of the model as converted times the bytes per stored
value (4 for float32, 1 for int8 weights), as the export report gives them. One JSON line per
model, written when it is done.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from bench import common
from bench.records import append_record

# (model, alpha, XLA): the DST models whose export the benchmark reports.
MODELS = (("lenet300", 1.5e-3, True), ("lenet5", 5e-4, False))
VARIANTS = {
    "dense": dict(sparse=False, compact=False),
    "sparse": dict(sparse=True, compact=False),
    "compacted+sparse": dict(sparse=True, compact=True),
    "compacted+sparse+int8": dict(sparse=True, compact=True, quantize="int8"),
}


def train(name, alpha, jit, data, epochs):
    import keras

    import tfprune
    from bench.models import MODELS as SPECS

    keras.utils.set_random_seed(0)
    model = tfprune.prunable(SPECS[name].build(data.x_train.shape[1:], data.num_classes, keras=keras))
    common.compile_model(keras, model, lr=0.01, momentum=0.9, jit_compile=jit)
    model.fit(data.x_train, data.y_train, batch_size=64, epochs=epochs, verbose=2,
              callbacks=[tfprune.DynamicPrune(alpha=alpha)])
    accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0)[1]
    return model, accuracy


def export_variants(model, data, workdir):
    import tflite_export

    rows = {}
    calibration = data.x_test[:200]
    for variant, options in tqdm(VARIANTS.items(), desc="export", leave=False):
        path = os.path.join(workdir, f"{variant}.tflite")
        report = tflite_export.export(
            model, path, representative_data=calibration, verify_data=data.x_test[:256],
            latency_runs=200, **options,
        )
        rows[variant] = {
            "size_bytes": report.size_bytes,
            "latency_us": 1000 * report.latency_ms,
            "physical_limit_bytes": report.physical_limit_bytes,
            "nonzero_params": report.nonzero_params,
            "ratio_to_limit": report.size_bytes / report.physical_limit_bytes,
            "operators": report.operators,
            "max_abs_diff": report.parity.max_abs_diff,
            "argmax_agreement": report.parity.argmax_agreement,
            "runtime_note": report.runtime_note,
        }
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--models", default=",".join(m for m, _, _ in MODELS))
    parser.add_argument("--dataset", default="auto")
    parser.add_argument("--out", type=Path, default=Path("bench/out/export.jsonl"))
    args = parser.parse_args(argv)

    from tfprune.data import load_dataset

    data = load_dataset(args.dataset)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    wanted = args.models.split(",")
    for name, alpha, jit in MODELS:
        if name not in wanted:
            continue
        start = time.perf_counter()
        model, accuracy = train(name, alpha, jit, data, args.epochs)
        with tempfile.TemporaryDirectory() as workdir:
            variants = export_variants(model, data, workdir)
        record = {
            "model": name, "alpha": alpha, "epochs": args.epochs, "dataset": data.name,
            "test_accuracy": accuracy, "variants": variants,
            "wall_time": time.perf_counter() - start,
        }
        append_record(args.out, record)
        print(json.dumps({k: v for k, v in record.items() if k != "variants"}))
        for variant, row in variants.items():
            print(f"  {variant:<24} {row['size_bytes']:>10,} B  {row['latency_us']:8.1f} µs  "
                  f"x{row['ratio_to_limit']:.2f} of limit")


if __name__ == "__main__":
    main()
