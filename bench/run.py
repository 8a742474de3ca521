"""Side-by-side benchmark: dense, DST (tfprune) and tfmot GMP on the same data and settings.

    python -m bench.run --suite lenet300 --epochs 20 --seeds 1 --out bench/out/lenet300.jsonl
    python -m bench.run --quick        # smoke test: 5k-image subset (digits offline), 2 epochs
    python -m bench.run --suite blocks --out bench/out/blocks.jsonl   # block/unit DST + TFLite

Every finished run is appended to --out as one JSON line at once, so a killed session loses only
the run in progress, and rerunning the same command skips the runs already recorded. GMP rows are
matched to DST: one tfmot run at each remaining ratio a DST run of the same seed reached.
`python -m bench.report` turns the file into tables and a plot. The suites are in `bench.suites`,
the methods in `bench.methods`, the loop in `bench.runner`.
"""

import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from bench import common, OUT_DIR, methods, suites
from bench.records import Store
from bench.runner import run_rows


def parse_args(argv):
    parser = common.argument_parser("bench.run", __doc__)
    parser.add_argument("--suite", default="lenet300", help=f"comma-separated: {', '.join(suites.SUITES)} or all")
    parser.add_argument("--dataset", default="auto", help="auto (Fashion-MNIST, else digits), fashion_mnist, digits")
    parser.add_argument("--epochs", type=int, help="default 20 (2 with --quick)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds: runs use seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0, help="start at this seed (a second process on other seeds)")
    parser.add_argument("--methods", help="comma-separated subset of " + ", ".join(methods.METHODS))
    parser.add_argument("--train-size", type=int, help="first N training images (default all; 5000 with --quick)")
    parser.add_argument("--test-size", type=int, help="first N test images (default all; 1000 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--no-jit", action="store_true", help="Keras 3 rows without XLA (default: jit_compile=True; tfmot never uses XLA)")
    parser.add_argument("--quick", action="store_true", help="smoke test: small data, 2 epochs")
    parser.add_argument("--out", type=Path, help="JSONL results (default bench/out/<suites>[-quick].jsonl)")
    args = parser.parse_args(argv)
    names = list(suites.SUITES) if args.suite == "all" else args.suite.split(",")
    for name in names:
        if name not in suites.SUITES:
            parser.error(f"unknown suite {name!r}; choose from {', '.join(suites.SUITES)} or all")
    method_names = args.methods.split(",") if args.methods else list(methods.METHODS)
    for name in method_names:
        if name not in methods.METHODS:
            parser.error(f"unknown method {name!r}; choose from {', '.join(methods.METHODS)}")
    if args.epochs is None:
        args.epochs = 2 if args.quick else 20
    if args.quick:
        args.train_size = args.train_size or 5000
        args.test_size = args.test_size or 1000
    if args.out is None:
        args.out = OUT_DIR / f"{'+'.join(names)}{'-quick' if args.quick else ''}.jsonl"
    if not 0 <= args.first_seed < args.seeds:
        parser.error(f"--first-seed must be in 0..{args.seeds - 1} (--seeds is {args.seeds})")
    args.suites, args.method_names = names, method_names
    args.seed_range = range(args.first_seed, args.seeds)
    return args


def main(argv=None):
    args = parse_args(argv)
    dataset, arrays = suites.load_arrays(args.dataset, args.train_size, args.test_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.out)
    total = suites.total_runs(args.suites, len(args.seed_range), args.method_names)
    print(
        f"bench: {dataset} ({len(arrays['x_train'])} train / {len(arrays['x_test'])} test images), "
        f"{args.epochs} epochs, seeds {args.first_seed}..{args.seeds - 1}, {total} runs -> {args.out}",
        flush=True,
    )
    options = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "momentum": args.momentum,
        "jit_compile": not args.no_jit,
    }
    with tempfile.TemporaryDirectory(prefix="tfprune-bench-") as workdir, tqdm(
        total=total, unit="run", desc="bench", dynamic_ncols=True
    ) as bar:
        contexts = {name: suites.context(name, dataset, arrays, options, Path(workdir)) for name in args.suites}
        rows = suites.plan(contexts, args.seed_range, args.method_names, store, bar)
        failures = run_rows(rows, store, bar, summary=suites.summary(store))
    print(f"bench: results in {args.out}" + (f"; {failures} run(s) FAILED" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
