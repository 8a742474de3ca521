"""LSTM-a files as the default export writes them, timed side by side against the dense LSTM-a.

    python -m bench.lstm_forms --models units-0.75-ft5=bench/out/lstm_units-models/units-0.75-ft5.keras \
        --out bench/out/lstm_forms.jsonl

Each trained `.keras` model is exported with `tflite_export.export` at batch 1 in each form of
its LSTMs (`recurrent="loop"`, a WHILE loop; `"unrolled"`; `"fused"`, one
UNIDIRECTIONAL_SEQUENCE_LSTM per LSTM), each with parity; the default export (`recurrent="auto"`)
writes the fastest, as this table picks. The reference is the dense LSTM-a (two LSTM(128),
Dense(10)) in its fastest form, found by timing its three forms side by side first. A dense
file's time depends on its shapes, not on its values, so it is built from the seed when no
trained dense model is given (`--dense`), as are the `--widths` models. Each model's files are
then timed in one process beside the dense reference, alternating rounds
(`tflite_export.timing.median_latency_us`: 7 rounds of 300 batch-1 invocations, one thread).
One JSON line per run of this script.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import common, OUT_DIR
from bench.records import append_record

FORMS = ("loop", "unrolled", "fused")


def parse_args(argv):
    parser = common.argument_parser("bench.lstm_forms", __doc__)
    parser.add_argument("--models", nargs="*", default=[], help="name=path.keras of trained models")
    parser.add_argument("--widths", nargs="*", default=[], help="also dense LSTM-a of these widths, e.g. 35x28")
    parser.add_argument("--dense", help="a trained dense LSTM-a .keras (default: built from the seed)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "lstm_forms.jsonl")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import keras

    import tflite_export
    from bench.lstm_units import build
    from tflite_export.timing import median_latency_us

    models = {"dense-128x128": args.dense}
    models.update(dict(item.split("=", 1) for item in args.models))
    models.update({f"dense-{w}": None for w in args.widths})
    x = np.random.default_rng(args.seed).normal(size=(64, 28, 28)).astype("float32")
    files, rows = [], {}
    with tempfile.TemporaryDirectory() as work:
        for name, path in tqdm(models.items(), desc="export", unit="model"):
            if path:
                model = keras.saving.load_model(path)
            else:
                widths = [int(w) for w in name.removeprefix("dense-").split("x")]
                model = build(args.seed, widths)
            row = {"source": path or f"built from seed {args.seed}"}
            for form in FORMS:
                out = Path(work) / f"{name}-{form}.tflite"
                report = tflite_export.export(model, out, batch_size=1, verify_data=x, recurrent=form, latency_runs=20)
                row[form] = {"size_bytes": report.size_bytes, "params": report.params,
                             "parity_max_abs_diff": report.parity.max_abs_diff}  # fmt: skip
                files.append(((name, form), out.read_bytes()))
            rows[name] = row
    files = dict(files)
    reference = rows.pop("dense-128x128")
    best, reference["rounds_us"] = median_latency_us(
        [files[("dense-128x128", form)] for form in FORMS], [x[:1]], rounds=args.rounds, runs=args.runs
    )
    for form, us in zip(FORMS, best):
        reference[form]["latency_us"] = us
    reference["chosen"] = min(FORMS, key=lambda form: reference[form]["latency_us"])
    dense = files[("dense-128x128", reference["chosen"])]
    for name, row in tqdm(rows.items(), desc="time", unit="model"):
        # A few files at a time (the dense reference in its fastest form, this model's forms):
        # many interpreters in one round disturb each other's caches.
        group = [dense, *(files[(name, form)] for form in FORMS)]
        best, rounds = median_latency_us(group, [x[:1]], rounds=args.rounds, runs=args.runs)
        row["dense_us"], row["rounds_us"] = best[0], rounds
        for form, us in zip(FORMS, best[1:]):
            row[form]["latency_us"] = us
        row["chosen"] = min(FORMS, key=lambda form: row[form]["latency_us"])
        row["speedup_vs_dense"] = best[0] / min(best[1:])
    rows = {"dense-128x128": reference, **rows}
    record = {"suite": "lstm_forms", "status": "ok", "rounds": args.rounds, "runs": args.runs,
              "seed": args.seed, "rows": rows, "versions": {"keras": keras.__version__}}  # fmt: skip
    append_record(args.out, record)
    print(table(record))
    return 0


def table(record):
    """Markdown: per model, each form's latency, the one the default export keeps, the speed-up."""
    lines = [
        "| model | as a loop (us) | unrolled (us) | fused (us) | default export | dense 128x128 beside it (us) | speed-up |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, row in record["rows"].items():
        dense = row.get("dense_us", row[row["chosen"]]["latency_us"])
        lines.append(
            f"| {name} | " + " | ".join(f"{row[form]['latency_us']:.1f}" for form in FORMS)
            + f" | {row['chosen']} | {dense:.1f} | {row.get('speedup_vs_dense', 1.0):.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
