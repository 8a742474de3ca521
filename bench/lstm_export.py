"""The export rows of the LSTM suite: TFLite files of the trained models, and their latency.

Each export runs in a child process (`bench.runner.in_child`): the TFLite converter can crash
outright (int8 LSTMs). The latency row then times every exported file side by side with
`tflite_export.timing.median_latency_us`.
"""

from pathlib import Path

from bench.runner import in_child

# name -> tflite_export.export options. No int8 (full-integer) variant: `export` refuses it for
# recurrent models, whose calibration crashes the converter (the failed int8 rows of
# bench/out/lstm.jsonl); dynamic-range quantization stores int8 weights as well.
EXPORTS = {
    "float": {"sparse": False, "compact": False},
    "sparse": {"sparse": True, "compact": False},
    "compact+sparse": {"sparse": True, "compact": True},
    "compact+sparse dynamic": {"sparse": True, "compact": True, "quantize": "dynamic"},
    "compact dynamic": {"sparse": False, "compact": True, "quantize": "dynamic"},
    "dynamic": {"sparse": False, "compact": False, "quantize": "dynamic"},
}
# source model -> its export rows; "hidden" is the hidden-state model picked when the row runs.
EXPORT_ROWS = {
    "dense": ("float", "dynamic"),
    "dst": ("float", "sparse", "compact+sparse", "compact+sparse dynamic", "compact dynamic"),
    "hidden": ("compact+sparse", "compact+sparse dynamic", "compact dynamic"),
}


def row_export(ctx, source, variant):
    """One `tflite_export.export` of `<ctx.models>/<source>.keras` at batch 1, in a child process."""
    arrays = ctx.arrays
    path = ctx.models / f"{source}-{variant.replace(' ', '-').replace('+', '-')}.tflite"
    return in_child(
        export_one,
        str(ctx.models / f"{source}.keras"),
        str(path),
        EXPORTS[variant],
        arrays["x_test"][: ctx.verify_samples],
        arrays["x_calibration"][:100],
        ctx.latency_runs,
    )


def export_one(model_path, path, options, x_verify, x_calibration, latency_runs):
    """Exports, and records the export's report with the file's physical limit.

    `limit_bytes`: the nonzero weights of the model as converted x the bytes one stored value
    takes: kernels 1 B when quantized (else 4 B), biases 4 B (dynamic-range quantization keeps
    them float). The export report gives the nonzero counts (`weights`: kernels only,
    `nonzero_params`: every weight).
    """
    import keras
    import tflite_export

    model = keras.saving.load_model(model_path)
    representative = x_calibration if options.get("quantize") == "int8" else None  # none planned
    report = tflite_export.export(
        model, path, batch_size=1, verify_data=x_verify, representative_data=representative,
        latency_runs=latency_runs, **options,
    )  # fmt: skip
    kernels = report.weights["nonzeros"]
    limit = kernels * (1 if options.get("quantize") else 4) + 4 * (report.nonzero_params - kernels)
    figures = report.to_dict()
    del figures["tensors"], figures["layers"]
    figures["export_batch_size"] = figures.pop("batch_size")  # the record's is the training batch
    figures["param_count"] = figures.pop("params")  # the record's params are the row's
    return {
        **figures,
        "limit_bytes": limit,
        "size_over_limit": report.size_bytes / limit,
        "latency_us": 1000 * report.latency_ms,
        "dense_encoding_latency_us": 1000 * report.dense_latency_ms,
    }


def row_latency(ctx, exports):
    """Batch-1 latency of every exported file, timed in alternating rounds, each file keeping its
    fastest round's median: the export rows time one file at a time, so load from other jobs on
    the machine can hit one file and not another.

    Args:
        exports: the ok export records of this setup.
    """
    from tflite_export.timing import median_latency_us

    files = {r["run"]: r["path"] for r in exports if Path(r["path"]).exists()}
    if not files:
        raise RuntimeError("no exported file of this setup to time: run the export rows first")
    best, rounds = median_latency_us(
        list(files.values()), [ctx.arrays["x_test"][:1]], rounds=ctx.rounds, runs=ctx.latency_runs
    )
    per_file = [[round_us[m] for round_us in rounds] for m in range(len(files))]  # rounds[r][m]
    return {"latency_us": dict(zip(files, best)), "rounds_us": dict(zip(files, per_file))}
