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
can crash outright (int8 LSTMs). The suite is in `bench.lstm_suite`, its rows in
`bench.lstm_train` and `bench.lstm_export`, the loop in `bench.runner`.
"""

import os
import sys
from pathlib import Path

from tqdm import tqdm

from bench import common, OUT_DIR, lstm_suite
from bench.records import Store
from bench.runner import run_rows


def parse_args(argv):
    parser = common.argument_parser("bench.lstm", __doc__)
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
    common.parse_lists(parser, args)
    args.rounds = [int(r) for r in args.rounds.split(",")]
    args.epochs = args.epochs or (1 if args.quick else 10)
    args.finetune_epochs = args.finetune_epochs or 1
    name = "lstm-quick" if args.quick else "lstm"
    args.out = args.out or OUT_DIR / f"{name}.jsonl"
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads; children inherit
    dataset, arrays = lstm_suite.load_arrays(args.quick)
    settings = lstm_suite.settings(dataset, arrays, args)
    models = args.out.with_name(args.out.stem + "-models")
    models.mkdir(parents=True, exist_ok=True)
    ctx = lstm_suite.Context(
        arrays=arrays,
        settings=settings,
        seed=args.seed,
        models=models,
        store=Store(args.out),
        rounds=3 if args.quick else 7,
        latency_runs=20 if args.quick else 300,
        verify_samples=32 if args.quick else 256,
    )
    rows = list(lstm_suite.plan(ctx, args.targets, args.rounds, args.only))
    print(
        f"bench.lstm: {dataset} as 28 steps x 28 pixels ({settings['n_train']} train / "
        f"{settings['n_test']} test), {args.epochs} epochs (+{args.finetune_epochs} fine-tune), "
        f"{len(rows)} rows -> {args.out}",
        flush=True,
    )
    with tqdm(total=len(rows), unit="row", desc="bench.lstm") as bar:
        failures = run_rows(rows, ctx.store, bar, summary=lstm_suite.summary)
    print(f"bench.lstm: results in {args.out}" + (f"; {failures} row(s) FAILED" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
