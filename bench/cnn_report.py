"""The markdown tables of `bench.cnn` records, for BENCHMARKS.md.

    python -m bench.cnn_report bench/out/cnn-mobilenet_v1.jsonl bench/out/cnn-mobilenet_v2.jsonl

Numbers are printed as recorded (the last ok record of each row). Latency comes from the
`tflite latency` row, which times every file side by side in one process (batch 1, one thread);
a file it has not timed shows its export row's own figure, marked with *.
"""

import argparse
import sys

from bench.records import latest, read_records

ORDER = ("filters", "l1", "scratch")


def render(records):
    rows = latest(records)
    dense = rows.get("dense")
    if dense is None:
        return "No `dense` record yet: nothing to compare with."
    timed = rows.get("tflite latency", {}).get("latency_us", {})

    def latency(name):
        if name in timed:
            return timed[name], ""
        export = rows.get(f"export {name}")
        return (1000 * export["latency_ms"], "*") if export else (None, "")

    reference, _ = latency("dense")
    head = dense["settings"] if "settings" in dense else dense
    lines = [
        f"{head['model']} on {head['dataset']}: {head['train_size']} training images at 64x64x3, "
        f"{head['test_size']} test images, {head['epochs']} epochs per row "
        f"({head['finetune']} of them fine-tuning after compaction or L1 pruning)",
        "",
        "| row | channels kept | params | test accuracy | vs dense | latency (µs) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    total = sum(dense["channels"].values())
    labels = ["dense"]
    targets = sorted({r["params"]["target"] for r in rows.values() if r.get("method") == "filters"})
    for target in targets:
        label = f"filters target={target:g}"
        labels += [label, f"l1 (matches {label})", f"scratch (matches {label})"]
    for label in labels:
        record = rows.get(label)
        if record is None:
            continue
        name = "dense" if label == "dense" else f"{record['method']}-{record['params']['target']:g}"
        us, mark = latency(name)
        kept = sum(record["channels"].values())
        delta = 100 * (record["test_accuracy"] - dense["test_accuracy"])
        speed = f"{reference / us:.2f}x" if us and reference and not mark else "-"
        lines.append(
            f"| {label} | {kept}/{total} ({kept / total:.0%}) | {record['params_total']:,} | "
            f"{record['test_accuracy']:.2%} | {delta:+.2f} | "
            f"{f'{us:.0f}{mark}' if us else '-'} | {speed} |"
        )
    lines += ["", *_policy(rows, dense)]
    return "\n".join(lines)


def _policy(rows, dense):
    """The policy row against tfmot GMP with PruneForLatencyOnXNNPack, with the verdicts."""
    lines = [
        "| 1x1 convs at ~90% | their sparsity (min-max) | test accuracy | vs dense | XNNPACK verdict | runs sparse here |",
        "|---|---:|---:|---:|---|---|",
    ]
    for method, name in (("policy", "policy"), ("gmp", "gmp")):
        record = next((r for r in rows.values() if r.get("method") == method), None)
        export = rows.get(f"export {name}")
        if record is None:
            continue
        shares = list(record["sparsity_1x1"].values())
        verdict = export.get("xnnpack_sparse") if export else None
        meets = "-" if not verdict else ("qualifies" if verdict["qualifies"] else "no: " + "; ".join(verdict["reasons"]))
        here = "-" if not verdict else ("yes" if verdict["runs_sparse_here"] else "no (" + verdict["cpu"].split(":")[0] + ")")
        title = "DST, policy='xnnpack'" if method == "policy" else "tfmot GMP, PruneForLatencyOnXNNPack"
        delta = 100 * (record["test_accuracy"] - dense["test_accuracy"])
        lines.append(f"| {title} | {min(shares):.1%}-{max(shares):.1%} | {record['test_accuracy']:.2%} | "
                     f"{delta:+.2f} | {meets} | {here} |")  # fmt: skip
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="bench.cnn JSONL files")
    args = parser.parse_args(argv)
    for path in args.paths:
        print(render(read_records(path)))
        print()


if __name__ == "__main__":
    sys.exit(main())
