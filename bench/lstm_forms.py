"""LSTM-a files as the default export writes them, timed side by side against the dense LSTM-a.

    python -m bench.lstm_forms --models units-0.75-ft5=bench/out/lstm_units-models/units-0.75-ft5.keras \
        --out bench/out/lstm_forms.jsonl

Each trained `.keras` model is exported with `tflite_export.export` at batch 1 and its defaults
(`recurrent="auto"`: the LSTMs both as a WHILE loop and unrolled, the faster written), and with
`recurrent="loop"` for comparison. The reference is the dense LSTM-a (two LSTM(128), Dense(10)) as
the default export writes it; a dense file's time depends on its shapes, not on its values, so it
is built from the seed when no trained dense model is given (`--dense`). All files are then timed
in one process, alternating rounds (`tflite_export.timing.median_latency_us`: 7 rounds of 300
batch-1 invocations, one thread). One JSON line per run of this script.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import common, OUT_DIR
from bench.records import append_record


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
            for form in ("auto", "loop"):
                out = Path(work) / f"{name}-{form}.tflite"
                report = tflite_export.export(model, out, batch_size=1, verify_data=x, recurrent=form, latency_runs=20)
                row[form] = {"chosen": report.recurrent_form, "size_bytes": report.size_bytes,
                             "params": report.params, "parity_max_abs_diff": report.parity.max_abs_diff}  # fmt: skip
                files.append(((name, form), out.read_bytes()))
            rows[name] = row
        best, rounds = median_latency_us([f for _, f in files], [x[:1]], rounds=args.rounds, runs=args.runs)
    for ((name, form), _), us in zip(files, best):
        rows[name][form]["latency_us"] = us
    reference = rows["dense-128x128"]["auto"]["latency_us"]
    for row in rows.values():
        row["speedup_vs_dense"] = reference / row["auto"]["latency_us"]
    record = {"suite": "lstm_forms", "status": "ok", "rounds": args.rounds, "runs": args.runs,
              "seed": args.seed, "rows": rows, "rounds_us": rounds,
              "versions": {"keras": keras.__version__}}  # fmt: skip
    append_record(args.out, record)
    print(table(record))
    return 0


def table(record):
    """Markdown: per model, the form the default export chose, its latency and the speed-up."""
    lines = [
        "| model | default export | latency (us) | as a loop (us) | speed-up vs dense 128x128 |",
        "|---|---|---:|---:|---:|",
    ]
    for name, row in record["rows"].items():
        auto, loop = row["auto"], row["loop"]
        lines.append(
            f"| {name} | {auto['chosen']} | {auto['latency_us']:.1f} | {loop['latency_us']:.1f} | "
            f"{row['speedup_vs_dense']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
