"""Keras vs LiteRT parity: the samples to compare on, the runtime, the comparison rule.

Every invocation starts from reset variables: a fused UNIDIRECTIONAL_SEQUENCE_LSTM keeps its
state between invokes, which would make the second sample depend on the first.
"""

import dataclasses
import re

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

# Float exports: max |keras - tflite| may reach this fraction of max(1, max |keras|).
FLOAT_TOLERANCE = 1e-4
# Quantized exports with a scalar-per-sample output: the same bound, looser.
QUANTIZED_TOLERANCE = 0.1
# Quantized exports with a vector output (classifiers): share of argmax predictions that agree.
MIN_AGREEMENT = 0.9
# Random samples drawn when no verification data is given.
DEFAULT_SAMPLES = 16
# Verification samples borrowed from representative_data when no verify_data is given.
BORROWED_VERIFY_SAMPLES = 64
# Interpreter threads for the runtime probe and verification, as the timer's default.
NUM_THREADS = 1


@dataclasses.dataclass
class Parity:
    """How closely the TFLite model reproduces the Keras model.

    Attributes:
        samples: number of samples compared.
        max_abs_diff: largest |keras - tflite| over all outputs.
        mean_abs_diff: mean |keras - tflite|.
        argmax_agreement: share of samples whose argmax (last axis) agrees; None for outputs
            with a last axis of size 1.
        criterion: `"max_abs_diff"` or `"argmax_agreement"`: what decided `passed`.
        threshold: the bound the criterion was held to.
        passed: whether the criterion held.
    """

    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float | None
    criterion: str
    threshold: float
    passed: bool


def select_samples(model, representative_data, verify_data, batch_size):
    """The calibration inputs and the inputs to verify on, each one array per model input.

    Verification uses `verify_data`, else the first `BORROWED_VERIFY_SAMPLES` calibration
    samples, else `DEFAULT_SAMPLES` random ones.

    Args:
        model: the Keras model.
        representative_data: calibration data as `export` takes it, or None.
        verify_data: verification data as `export` takes it, or None.
        batch_size: the static batch, or None.

    Returns:
        `(calibration, samples)`: lists of arrays (`calibration` is None without
        `representative_data`).

    Raises:
        ValueError: either data does not fit the model (see `sample_inputs`).
    """
    calibration = None
    if representative_data is not None:
        calibration = sample_inputs(model, representative_data, batch_size, "representative_data")
    if verify_data is not None:
        samples = sample_inputs(model, verify_data, batch_size)
    elif calibration is not None:
        samples = sample_inputs(
            model, [x[:BORROWED_VERIFY_SAMPLES] for x in calibration], batch_size
        )
    else:
        samples = sample_inputs(model, None, batch_size)
    return calibration, samples


def sample_inputs(model, data, batch_size, what="verify_data"):
    """Arrays to run, one per model input, with a sample count that is a multiple of the batch.

    Args:
        model: the Keras model.
        data: None (draw `DEFAULT_SAMPLES` standard-normal samples), an array for a single-input
            model, or a list of arrays (one per input, in `model.inputs` order).
        batch_size: the static batch, or None.
        what: the argument name, for error messages.

    Returns:
        A list of numpy arrays, cast to the inputs' dtypes.

    Raises:
        ValueError: the data does not match the model's inputs or holds fewer samples than
            one static batch.
    """
    inputs = model.inputs
    step = batch_size or 1
    if data is None:
        rng = np.random.default_rng(0)
        count = -(-DEFAULT_SAMPLES // step) * step
        return [
            rng.standard_normal((count, *t.shape[1:])).astype(t.dtype)
            if "float" in str(t.dtype)
            else rng.integers(0, 2, (count, *t.shape[1:])).astype(t.dtype)
            for t in inputs
        ]
    arrays = [data] if isinstance(data, np.ndarray) else list(data)
    if len(arrays) != len(inputs):
        raise ValueError(
            f"{what} holds {len(arrays)} array(s) but the model takes {len(inputs)} input(s). "
            "Pass one array per model input, in model.inputs order."
        )
    arrays = [np.asarray(x) for x in arrays]
    for x, t in zip(arrays, inputs):
        if tuple(x.shape[1:]) != tuple(t.shape[1:]):
            raise ValueError(
                f"{what} has per-sample shape {tuple(x.shape[1:])} but input '{t.name}' expects "
                f"{tuple(t.shape[1:])}. Pass arrays shaped (samples, *input_shape)."
            )
    count = min(len(x) for x in arrays) // step * step
    if count == 0:
        raise ValueError(
            f"{what} holds {min(len(x) for x in arrays)} sample(s), fewer than one static batch "
            f"of {step}. Pass at least {step} samples."
        )
    return [x[:count].astype(t.dtype) for x, t in zip(arrays, inputs)]


def choose_runtime(content, tensors=()):
    """The op resolver the file runs under: the default (XNNPACK delegate) if it handles the model.

    XNNPACK refuses to prepare quantized FULLY_CONNECTED layers fed by DENSIFY (sparse int8
    weights), and accepts but miscomputes int8 weights stored in 1x16 blocks (NaN or wrong
    outputs, ai-edge-litert 2.3), so those files run on TFLite's builtin kernels, whose 1x16
    kernel is sparse; the note says so for deployment. The probe invokes the file once, since
    the ops inside a WHILE body (an LSTM's time loop) are prepared only when the loop first runs.

    Args:
        content: the .tflite bytes.
        tensors: its weight tensors (`TensorInfo`s), to spot int8 block encodings.

    Returns:
        `(OpResolverType, note)`, where `note` is empty under the default runtime.
    """
    builtin = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    advice = (
        "so it runs on builtin kernels: create the interpreter with "
        "experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES"
    )
    if any(t.dtype == "int8" and t.block_shape for t in tensors):
        Interpreter(model_content=content, experimental_op_resolver_type=builtin).allocate_tensors()
        return builtin, f"XNNPACK miscomputes int8 weights stored in blocks, {advice}"
    try:
        _invoke_once(Interpreter(model_content=content, num_threads=NUM_THREADS))
        return OpResolverType.AUTO, ""
    except RuntimeError as error:
        if "XNNPack" not in str(error):
            raise
        Interpreter(model_content=content, experimental_op_resolver_type=builtin).allocate_tensors()
        return builtin, f"XNNPACK cannot prepare this file (sparse quantized weights), {advice}"


def _invoke_once(interpreter):
    """Allocates and runs `interpreter` on zeros, which prepares every subgraph it reaches."""
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()


def keras_outputs(model, inputs):
    """The model's inference outputs as a flat list of numpy arrays."""
    outputs = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]


def tflite_outputs(content, resolver, model, inputs, batch_size):
    """Runs the .tflite bytes on `inputs` in chunks of `batch_size` (all at once if None)."""
    interpreter = _interpreter(content, resolver)
    runner = interpreter.get_signature_runner()
    names = [t.name for t in model.inputs]
    step = batch_size or len(inputs[0])
    chunks = []
    for start in range(0, len(inputs[0]), step):
        interpreter.reset_all_variables()
        result = runner(**{n: x[start : start + step] for n, x in zip(names, inputs)})
        chunks.append([result[k] for k in _output_order(result)])
    return [np.concatenate(parts) for parts in zip(*chunks)]


def _output_order(result):
    """Signature output names in Keras output order: `output_<n>` by number, dict keys sorted.

    `keras.tree.flatten` sorts dict outputs by key, so name order matches it for dicts.
    """
    if all(re.fullmatch(r"output_\d+", k) for k in result):
        return sorted(result, key=lambda k: int(k[len("output_") :]))
    return sorted(result)


def parity(expected, actual, quantized):
    """Compares Keras and TFLite outputs under the rule for float or quantized exports.

    Args:
        expected: Keras outputs (list of arrays).
        actual: TFLite outputs, same order.
        quantized: whether the export is quantized (looser rule).

    Returns:
        A `Parity`.
    """
    diffs = np.concatenate([np.abs(e - a).ravel() for e, a in zip(expected, actual)])
    scale = max(1.0, max(float(np.abs(e).max()) for e in expected))
    classifier = all(e.ndim >= 2 and e.shape[-1] > 1 for e in expected)
    agreement = None
    if classifier:
        agreement = float(
            np.mean([np.mean(e.argmax(-1) == a.argmax(-1)) for e, a in zip(expected, actual)])
        )
    if quantized and classifier:
        criterion, threshold, passed = "argmax_agreement", MIN_AGREEMENT, agreement >= MIN_AGREEMENT
    else:
        threshold = (QUANTIZED_TOLERANCE if quantized else FLOAT_TOLERANCE) * scale
        criterion, passed = "max_abs_diff", float(diffs.max()) <= threshold
    return Parity(
        samples=len(expected[0]),
        max_abs_diff=float(diffs.max()),
        mean_abs_diff=float(diffs.mean()),
        argmax_agreement=agreement,
        criterion=criterion,
        threshold=threshold,
        passed=bool(passed),
    )


def _interpreter(content, resolver):
    return Interpreter(
        model_content=content, num_threads=NUM_THREADS, experimental_op_resolver_type=resolver
    )
