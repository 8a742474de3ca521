"""The markdown table of `bench.lstm_units` records, for BENCHMARKS.md.

    python -m bench.lstm_units_report bench/out/lstm_units.jsonl

Numbers are printed as recorded (the last ok record of each row). Latency comes from the
`tflite latency` row, which times every file side by side in one process; files it has not
timed yet show their export row's own measurement, marked with * (and their speed-up is
against the dense file's own export measurement).
"""

import argparse
import sys

from bench.records import latest, read_records
from bench.lstm_units import units_label, units_name


def render(records):
    rows = latest(records)
    dense = rows.get("dense 128x128")
    if dense is None:
        return "No `dense 128x128` record yet: nothing to compare with."
    side_by_side = rows.get("tflite latency", {}).get("latency_us", {})

    def timing(name):
        export = rows.get(f"export {name} float")
        if export is None:
            return None, None, None
        label = f"export {name} float"
        if label in side_by_side:
            return side_by_side[label], "", export
        return export["latency_us"], "*", export

    reference, _, dense_export = timing("dense-128x128")
    alone = dense_export["latency_us"] if dense_export else None
    lines = [
        "| model | widths | params | test accuracy | vs dense | TFLite file | physical limit | latency (us) | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = [("dense 128x128", "dense-128x128")]
    for label, record in rows.items():
        if record["method"] == "units":
            target, finetune = record["params"]["target"], record["params"].get("finetune", 0)
            widths = "x".join(map(str, record["widths"]))
            order.append((label, units_name(target, finetune)))
            matched = units_label(target, finetune).removeprefix("unit dst ")
            order.append((f"dense {widths} (from scratch, matches {matched})", f"dense-{widths}"))
    for label, name in order:
        record = rows.get(label)
        if record is None:
            continue
        us, mark, export = timing(name)
        size = f"{export['size_bytes'] / 1024:.1f} KiB" if export else "-"
        limit = f"{export['limit_bytes'] / 1024:.1f} KiB" if export else "-"
        base = alone if mark else reference  # a file timed alone is compared with dense timed alone
        speed = f"{base / us:.2f}x" if us and base else "-"
        latency = f"{us:.0f}{mark}" if us else "-"
        delta = 100 * (record["test_accuracy"] - dense["test_accuracy"])
        lines.append(
            f"| {label} | {'x'.join(map(str, record['widths']))} | {record['param_count']:,} | "
            f"{100 * record['test_accuracy']:.2f}% | {delta:+.2f} | {size} | {limit} | {latency} | {speed} |"
        )
    weights = rows.get("weight dst alpha=0.001")
    if weights:
        sparse = rows.get("export weights compact+sparse")
        lines += [
            "",
            f"Weight-level DST (alpha 1e-3): {100 * weights['remaining']:.2f}% of the weights remain, test "
            f"accuracy {100 * weights['test_accuracy']:.2f}% ({100 * (weights['test_accuracy'] - dense['test_accuracy']):+.2f} "
            "points against dense)"
            + (f"; compact+sparse file {sparse['size_bytes'] / 1024:.1f} KiB against a physical limit of "
               f"{sparse['limit_bytes'] / 1024:.1f} KiB." if sparse else "."),
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.lstm_units_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("records", help="JSONL written by python -m bench.lstm_units")
    args = parser.parse_args(argv)
    print(render(read_records(args.records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
