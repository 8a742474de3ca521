"""Markdown tables from `bench.lstm` JSONL, the LSTM section of BENCHMARKS.md.

    python -m bench.lstm_report bench/out/lstm.jsonl --md bench/out/lstm.md

Numbers are printed as recorded; the last successful record of each row is used.
"""

import argparse
import sys
from pathlib import Path

from bench.lstm_suite import ALPHA, best_hidden
from bench.records import latest, read_records


def failures(records, rows):
    """Failed rows never redone, with the last line of their error."""
    failed = {}
    for record in records:
        if record["status"] != "ok" and record["run"] not in rows:
            failed[record["run"]] = record["error"].strip().splitlines()[-1]
    return failed


def pct(value, digits=2):
    return f"{100 * value:.{digits}f}%"


def render(records, command):
    rows = latest(records)
    dense, dst = rows.get("dense"), rows.get(f"dst alpha={ALPHA:g}")
    hidden = sorted(
        (r for r in rows.values() if r["method"] == "hidden"), key=lambda r: r["params"]["target"]
    )
    any_record = next(iter(rows.values()))
    out = [
        "## LSTM: DST weight masks and hidden-state pruning (sequential Fashion-MNIST)",
        "",
        f"`{command}`",
        "",
        f"Fashion-MNIST ({any_record['n_train']} train / {any_record['n_test']} test images), each "
        "image read as 28 steps of 28 pixels; the paper's LSTM-a: LSTM(128, return_sequences) -> "
        f"LSTM(128) -> Dense(10). Adam {any_record['lr']:g}, batch {any_record['batch_size']}, "
        f"epochs: {any_record['epochs']} for the dense and the DST row; the hidden-state rows start "
        f"from the DST model and fine-tune for {any_record['finetune_epochs']} more. One seed, "
        "CPU (2 cores shared with other jobs: times are noisy, see the paired step times).",
        "",
        "### Training",
        "",
        "| row | test accuracy | vs dense | remaining weights | epoch time | vs dense |",
        "|---|---|---|---|---|---|",
    ]
    for record in [dense, dst, *hidden]:
        if record is None:
            continue
        vs = f"{100 * (record['test_accuracy'] - dense['test_accuracy']):+.2f} pt" if dense else ""
        ratio = f"{record['epoch_time'] / dense['epoch_time']:.2f}x" if dense else ""
        out.append(
            f"| {record['run']} | {pct(record['test_accuracy'])} | {vs} | "
            f"{pct(record['remaining'])} | {record['epoch_time']:.1f} s | {ratio} |"
        )
    out += [
        "",
        "Remaining weights: nonzero kernel weights (both LSTM kernels and the Dense kernel, biases "
        "excluded) of the stripped model. Epoch time: training only, mean over epochs 2..N "
        "(hidden-state rows: mean of their fine-tune epochs).",
    ]
    if dst:
        out += ["", "DST remaining weights per kernel:", "", "| kernel | remaining |", "|---|---|"]
        out += [f"| {k} | {pct(v)} |" for k, v in dst["remaining_per_kernel"].items()]
    step = rows.get("step time")
    if step:
        low, mid = step["step_ms_min"], step["step_ms_median"]
        out += [
            "",
            f"Paired train-step time (batch {step['batch_size']}, {len(step['rounds_ms']['dense'])} "
            "alternating rounds of 20 steps, same process):",
            "",
            "| | keras.layers.LSTM | DST (MaskedLSTM) | DST / dense |",
            "|---|---|---|---|",
            f"| fastest round | {low['dense']:.1f} ms | {low['dst']:.1f} ms | {step['ratio_min']:.2f}x |",
            f"| median round | {mid['dense']:.1f} ms | {mid['dst']:.1f} ms | "
            f"{step['ratio_median']:.2f}x |",
        ]
    out += hidden_table(dst, hidden)
    out += units_table(dense, dst, hidden)
    out += export_table(records, rows)
    failed = failures(records, rows)
    if failed:
        out += ["", "Rows that failed:", ""]
        out += [f"- {label}: `{error}`" for label, error in failed.items()]
    return "\n".join(out) + "\n"


def hidden_table(dst, hidden):
    if not dst:
        return []
    names = list(dst["hidden_at_threshold_0"])
    out = [
        "",
        "### Hidden-state pruning (test set)",
        "",
        "Chunks of 4 units whose summed |h| is at or below a per-layer threshold are zeroed. "
        "Thresholds are calibrated on 5000 training images to the target; then the weights are "
        "fine-tuned with all thresholds frozen: `rounds=1` calibrates once, `rounds=4` "
        "recalibrates before each quarter of the fine-tune epoch; either is measured as the "
        "fine-tune leaves it (fine-tuning lifts |h| above fixed thresholds, so the measured "
        "sparsity ends below the target). Hidden sparsity: share of chunks zeroed "
        "over all steps of the test set. MACs skipped: share of the dense `h U` multiply-adds "
        "that zero weights and zero chunks skip together; \"on top\": share of the remaining "
        "(nonzero-weight) `h U` multiply-adds that zero chunks skip.",
        "",
        "| row | accuracy | vs DST | before fine-tune | "
        + " | ".join(f"{n} hidden sparsity | {n} MACs skipped (on top)" for n in names)
        + " |",
        "|---|---|---|---|" + "---|---|" * len(names),
    ]
    rows = [("DST, threshold 0 (dead units)", dst, dst["hidden_at_threshold_0"], None)]
    rows += [(r["run"], r, r["hidden"], r["accuracy_before_finetune"]) for r in hidden]
    for label, record, figures, before in rows:
        vs = f"{100 * (record['test_accuracy'] - dst['test_accuracy']):+.2f} pt"
        cells = [
            f"{pct(figures[n]['hidden_sparsity'], 1)} | "
            f"{pct(figures[n]['recurrent_macs_skipped'], 1)} ({pct(figures[n]['sparse_macs_skipped'], 1)})"
            for n in names
        ]
        out.append(
            f"| {label} | {pct(record['test_accuracy'])} | {vs} | "
            f"{pct(before) if before is not None else '-'} | " + " | ".join(cells) + " |"
        )
    return out


def units_table(dense, dst, hidden):
    # Records made before `tfprune.compact(model, data=...)` hold `remove_dead_units` figures.
    old = any("remove_dead_units" in r for r in (dst, *hidden) if r)
    key, name = ("remove_dead_units", "remove_dead_units") if old else ("compact_by_data", "compact(data=)")
    by_data = (
        "`tfprune.lstm.remove_dead_units(model, calibration data)` also removes chunks never kept "
        "on the 5000 calibration images"
        if old
        else "`tfprune.compact(model, data=calibration data)` also removes units never active on "
        "the 5000 calibration images"
    )
    out = [
        "",
        "### Hidden units removed",
        "",
        f"`tfprune.compact` (stripped model) removes units that are exactly dead; {by_data} "
        "(accuracy re-measured on the test set). Parameters: kernels and biases.",
        "",
        f"| model | compact: units (lstm1, lstm2) | parameters | {name}: units | "
        "parameters | its accuracy |",
        "|---|---|---|---|---|---|",
    ]
    if dense:
        out.append(f"| dense | 128, 128 | {dense['param_count']:,} | 128, 128 | "
                   f"{dense['param_count']:,} | {pct(dense['test_accuracy'])} |")  # fmt: skip
    for record in [dst, *hidden]:
        if record is None:
            continue
        c, r = record["compact"], record[key]
        out.append(
            f"| {record['run']} | {c['units']['lstm1']}, {c['units']['lstm2']} | "
            f"{c['param_count']:,} | {r['units']['lstm1']}, {r['units']['lstm2']} | "
            f"{r['param_count']:,} | {pct(r['test_accuracy'])} |"
        )
    return out


def export_table(records, rows):
    exports = [r for r in rows.values() if r["method"] == "export"]
    if not exports:
        return []
    ok = [r for r in records if r["status"] == "ok"]
    try:
        source = best_hidden(ok)
    except RuntimeError:
        source = "hidden"
    out = [
        "",
        "### TFLite export (`tflite_export.export`, static batch 1, LiteRT interpreter, 1 thread)",
        "",
        f"Models: dense, DST, and the hidden-state model `{source}` (the sparsest hidden state "
        "within 1 point of DST). Limit: nonzero weights x bytes per stored value (kernels 4 B float or "
        "1 B int8, biases 4 B) of the model as converted (stripped, compacted when so marked). "
        "Latency: one invocation (a whole 28-step sequence) at batch 1, one thread; the "
        "`tflite latency` row times all files side by side in 7 alternating rounds of 300 "
        "invocations and keeps each file's fastest round median (the export's own median, timed "
        "alone, in brackets).",
        "",
        "| model | variant | file | dense float file / file | limit | file / limit | latency | parity "
        "| runtime |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    dense_float = rows.get("export dense float")
    side_by_side = rows.get("tflite latency", {}).get("latency_us", {})
    for record in exports:
        parity = record["parity"]
        agreement = parity["argmax_agreement"]
        check = f"max abs diff {parity['max_abs_diff']:.2g}" + (
            f", argmax {pct(agreement, 1)}" if agreement is not None else ""
        )
        runtime = "builtin kernels" if record["runtime_note"] else "XNNPACK"
        out.append(
            f"| {record['params']['source']} | {record['params']['variant']} | "
            f"{record['size_bytes'] / 1024:,.1f} KiB | "
            + (f"{dense_float['size_bytes'] / record['size_bytes']:.2f}x | " if dense_float else "| ")
            + f"{record['limit_bytes'] / 1024:,.1f} KiB | "
            f"{record['size_over_limit']:.2f} | {_latency(side_by_side.get(record['run']), record)} | "
            f"{check} | "
            f"{runtime} |"
        )
    return out


def _latency(paired, record):
    alone = f"{record['latency_us']:,.0f} µs"
    return f"{paired:,.0f} µs ({alone})" if paired is not None else alone


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.lstm_report", description=__doc__)
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("--md", type=Path, help="write here (default: print)")
    parser.add_argument("--command", default="python -m bench.lstm --epochs 10")
    args = parser.parse_args(argv)
    text = render(read_records(args.jsonl), args.command)
    if args.md:
        args.md.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
