"""TFLite figures for a benchmark row: file size and batch-1 latency against the dense model.

The dense model is the row's architecture exported without pruning, with its weights as
initialised: a dense kernel's size and speed do not depend on its values. The two files are timed
in alternating rounds and each keeps its fastest round's median (`tflite_export.timing`), so load
from other processes on a shared machine hits both alike.
"""

import dataclasses
import os
import tempfile

ROUNDS = 7
RUNS = 500  # invocations a round: a LeNet-300-100 call takes 5-20 µs


def tflite_figures(model, dense_model, x):
    """Exports `model` (pruned) and `dense_model` with `tflite_export` and times both at batch 1.

    Args:
        model: the trained model (tfprune layers or stock layers with zeros).
        dense_model: the same architecture, unpruned.
        x: verification inputs (a few hundred test images).

    Returns:
        A JSON-ready dict: sizes, latencies (µs), speed-up, compaction, per-layer kernels.
    """
    import tflite_export
    from tflite_export.timing import median_latency_us

    with tempfile.TemporaryDirectory() as tmp:
        pruned = tflite_export.export(model, os.path.join(tmp, "p.tflite"), verify_data=x)
        dense = tflite_export.export(
            dense_model, os.path.join(tmp, "d.tflite"), sparse=False, compact=False, verify_data=x
        )
        (pruned_us, dense_us), rounds = median_latency_us(
            [pruned.path, dense.path], [x[:1]], rounds=ROUNDS, runs=RUNS
        )
    compaction = pruned.compaction or {}
    return {
        "size_bytes": pruned.size_bytes,
        "latency_us": float(pruned_us),
        "dense_model_size_bytes": dense.size_bytes,
        "dense_model_latency_us": float(dense_us),
        "speedup": float(dense_us / pruned_us),
        "compression": dense.size_bytes / pruned.size_bytes,
        "dense_encoding_latency_us": 1000 * pruned.dense_latency_ms,
        "params_before": compaction.get("params_before"),
        "params_after": compaction.get("params_after"),
        "operators": pruned.operators,
        "runtime_note": pruned.runtime_note,
        "parity_max_abs_diff": pruned.parity.max_abs_diff,
        "layers": [dataclasses.asdict(k) for k in pruned.layers],
        "rounds_us": rounds,
    }

