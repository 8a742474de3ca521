"""`python -m tflite_export MODEL.keras -o OUT.tflite`: export a saved Keras model to TFLite.

Prints the report table, optionally writes it as JSON, and exits non-zero with a one-paragraph
message (and no output file) when anything fails. Input files are checked for what they are
(a directory, not a zip, a text or pickled .npy) before Keras or NumPy give a misleading error,
and before TensorFlow is imported (~9 s), so a mistyped path fails at once.
"""

import argparse
import json
import os
import sys
import zipfile

from tflite_export.backend import check_backend, force_tensorflow

force_tensorflow()  # before Keras loads: a shell with KERAS_BACKEND=jax still exports

from tflite_export.errors import BackendError, ConversionError, ParityError  # noqa: E402
from tflite_export.files import check_writable, exclusive, write_atomically  # noqa: E402

NPY_MAGIC = b"\x93NUMPY"

PROG = "tflite-export"
# Failures the user can act on: reported as one message, not a traceback.
EXPECTED_ERRORS = (
    BackendError,
    ConversionError,
    ParityError,
    ValueError,
    TypeError,
    OSError,
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a (pruned) .keras model to a sparse, verified .tflite file.",
    )
    parser.add_argument("model", help="the .keras file (tfprune layers are supported)")
    parser.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    parser.add_argument(
        "--quantize", choices=["dynamic", "int8"], help="int8 weights, or integer kernels too"
    )
    parser.add_argument(
        "--calibration",
        help="a .npy array of typical inputs, shaped (samples, *input_shape); needed for int8, "
        "also used to verify",
    )
    parser.add_argument(
        "--verify-data",
        help="a .npy array of inputs to compare Keras and LiteRT on, shaped (samples, "
        "*input_shape) (default: the calibration data, else random inputs)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="static batch (default: 1 for RNNs, else dynamic)"
    )
    parser.add_argument("--report", help="also write the report as JSON to this path")
    parser.add_argument("--no-sparse", action="store_true", help="store weights densely")
    parser.add_argument("--no-compact", action="store_true", help="keep dead units")
    parser.add_argument("--latency-runs", type=int, default=50, help="timed invocations")
    parser.add_argument(
        "--recurrent", choices=("auto", "loop", "unrolled", "fused"), default="auto",
        help="recurrent layers as a WHILE loop, unrolled, fused (one TFLite LSTM operator per "
        "LSTM), or auto: every form the model allows timed, the fastest that passes parity kept",
    )  # fmt: skip
    return parser


def main(argv=None):
    """Runs the CLI; returns the process exit code (0 on success, 1 on failure)."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except EXPECTED_ERRORS as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0


def run(args):
    """Loads the inputs named by `args`, exports, writes the JSON report; returns the report.

    The output's lock is held until the JSON report is written, so the report describes the
    file at the output path (a concurrent export to it is refused).
    """
    check_writable(args.output, "--output")
    if args.report:
        check_writable(args.report, "--report")
    _check_model_file(args.model)
    arrays = [("--calibration", args.calibration, "calib.npy"), ("--verify-data", args.verify_data, "verify.npy")]
    for flag, path, example in arrays:
        if path:
            _check_npy_file(flag, path, example)
    check_backend()  # imports Keras, on TensorFlow
    import tflite_export

    model = _load(args.model)
    calibration, verify_data = (_load_array(flag, path, example, model) for flag, path, example in arrays)
    with exclusive(args.output):
        report = tflite_export.export(
            model,
            args.output,
            sparse=not args.no_sparse,
            quantize=args.quantize,
            representative_data=calibration,
            verify_data=verify_data,
            batch_size=args.batch_size,
            compact=not args.no_compact,
            latency_runs=args.latency_runs,
            recurrent=args.recurrent,
        )
        if args.report:
            text = json.dumps(report.to_dict(), indent=2, default=_json_value)
            write_atomically(args.report, text.encode())
    return report


def _check_npy_file(flag, path, example):
    """Refuses a path that is not a .npy file, before anything heavy is imported."""
    if not path.endswith(".npy"):
        raise ValueError(
            f"{flag} takes a .npy file. Received: {path!r}. Save with "
            f"numpy.save('{example}', x) (single-input models; use the Python API otherwise)."
        )
    _check_file(flag, path, f"Pass a file written by numpy.save('{example}', x).")
    with open(path, "rb") as file:
        if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise ValueError(
                f"{flag} '{path}' is not a .npy file: it has no NumPy header (text, or another "
                f"format named .npy). Save the array with numpy.save('{example}', x)."
            )


def _load_array(flag, path, example, model):
    """The array in the checked .npy file `path`, checked against `model`; None without the flag."""
    import numpy as np

    from tflite_export.samples import check_data

    if not path:
        return None
    if len(model.inputs) != 1:
        raise ValueError(
            f"{flag} takes the array of a single-input model; this one has {len(model.inputs)} "
            "inputs. Use the Python API: tflite_export.export(..., representative_data=[x1, x2])."
        )
    try:
        array = np.load(path)
    except (ValueError, EOFError) as error:
        if "allow_pickle" not in str(error):
            raise ValueError(f"{flag} '{path}' is truncated or corrupt: {error}") from error
        raise ValueError(
            f"{flag} '{path}' holds Python objects (dtype=object), which are not loaded: "
            f"unpickling can run code. Save a numeric array: numpy.save('{example}', "
            "np.asarray(x, dtype='float32'))."
        ) from error
    return check_data(model, array, f"{flag} '{path}'")[0]


def _check_model_file(path):
    """Refuses a model path that is not a .keras file, before anything heavy is imported."""
    _check_file(
        "Model file",
        path,
        "Pass a .keras file, as model.save('model.keras') writes (Keras 3 loads no SavedModel "
        "directory).",
    )
    if path.endswith(".keras"):
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"Model file '{path}' is not a .keras file: .keras files are zip archives and "
                f"this one ({os.path.getsize(path):,} bytes) has no zip directory (a truncated "
                "copy, or another format named .keras). Save the model again with "
                "model.save('model.keras')."
            )
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ValueError(
                    f"Model file '{path}' is a zip archive but not a Keras model (no "
                    "config.json). Pass a file saved with model.save('model.keras')."
                )


def _load(path):
    import keras

    import tfprune.layers  # noqa: F401  registers tfprune's layers as Keras serializables

    try:
        return keras.saving.load_model(path)
    except Exception as error:
        raise ValueError(
            f"Cannot load '{path}' as a Keras model: {error}. Pass a file saved with "
            "model.save('model.keras'); custom layers must be importable and registered."
        ) from error


def _check_file(what, path, fix):
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} '{path}' is a directory. {fix}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} '{path}' does not exist. {fix}")


def _json_value(value):
    """numpy scalars and arrays as plain JSON values."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


if __name__ == "__main__":
    sys.exit(main())
