"""Markdown tables of `bench.sequence`'s records: `python -m bench.sequence_report [FILE.jsonl]`."""

import sys

from bench import OUT_DIR
from bench.records import read_records


def _kb(n):
    return f"{n / 1024:.1f} KB"


def tables(records):
    """The training table (dense, DST, GMP per model) and the head-removal table, as markdown."""
    rows = [r for r in records if r.get("status") == "ok"]
    lines = [
        "| model | method | test accuracy | remaining kernel weights | TFLite file | dense file | "
        "latency (batch 1) | dense latency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["method"] == "heads":
            continue
        t = r["tflite"]
        method = r["method"] + (f" (final sparsity {r['final_sparsity']:.4f})" if r["method"] == "gmp" else "")
        lines.append(
            f"| {r['model']} | {method} | {r['test_accuracy']:.2%} | {r['remaining']:.2%} | "
            f"{_kb(t['size_bytes'])} | {_kb(t['dense_model_size_bytes'])} | "
            f"{t['latency_us']:.0f} µs | {t['dense_model_latency_us']:.0f} µs |"
        )
    heads = [r for r in rows if r["method"] == "heads"]
    if heads:
        lines += [
            "",
            "| heads kept | heads dropped | test accuracy | after fine-tune | params | TFLite file | "
            "latency (batch 1) | dense 4-head latency |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(heads, key=lambda r: -r["heads"]):
            t = r["tflite"]
            lines.append(
                f"| {r['heads_after_compact']} | {r['heads_dropped'] or '-'} | "
                f"{r['test_accuracy']:.2%} | {r['accuracy_after_finetune']:.2%} | {r['params']:,} | "
                f"{_kb(t['size_bytes'])} | {t['latency_us']:.0f} µs | {t['dense_model_latency_us']:.0f} µs |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables(read_records(sys.argv[1] if len(sys.argv) > 1 else OUT_DIR / "sequence.jsonl")))
