"""Keras vs LiteRT parity: the runtime, both sides' outputs, the comparison rule.

Invocations run back to back without resetting variables, as an app calls the file: a file whose
output depends on the invocation before it (a fused LSTM's state kept between invokes) fails,
unless the Keras model is stateful too and computes the same sequence of outputs.
"""

import dataclasses
import re

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from tfprune.stateful import stateful_layers

# Float exports: max |keras - tflite| may reach this fraction of max(1, max |keras|).
FLOAT_TOLERANCE = 1e-4
# Quantized exports with a scalar-per-sample output: the same bound, looser.
QUANTIZED_TOLERANCE = 0.1
# Quantized exports with a vector output (classifiers): share of argmax predictions that agree.
MIN_AGREEMENT = 0.9
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
        criterion: `"max_abs_diff"` or `"argmax_agreement"`: what decided `passed`; or
            `"finite_outputs"` when either side computed NaN or inf, which always fails.
        threshold: the bound the criterion was held to.
        passed: whether the criterion held.
        keras_non_finite: NaN or inf values among the Keras outputs.
        tflite_non_finite: NaN or inf values among the TFLite outputs.
    """

    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float | None
    criterion: str
    threshold: float
    passed: bool
    keras_non_finite: int = 0
    tflite_non_finite: int = 0


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


def keras_outputs(model, inputs, batch_size=None):
    """The model's inference outputs as a flat list of numpy arrays.

    A model with stateful recurrent layers runs `batch_size` samples at a time, in order, from
    zero state (`tfprune.stateful`), as the file is invoked."""
    layers = stateful_layers(model)
    if not layers:
        return _outputs(model, inputs)
    for layer in layers:
        layer.reset_states()
    chunks = [
        _outputs(model, [x[start : start + batch_size] for x in inputs])
        for start in range(0, len(inputs[0]), batch_size)
    ]  # fmt: skip
    return [np.concatenate(parts) for parts in zip(*chunks)]


def _outputs(model, inputs):
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
        A `Parity`. Any NaN or inf on either side fails it: argmax of NaN is 0 on both sides,
        and NaN compares as no difference to a bound.
    """
    keras_bad, tflite_bad = _non_finite(expected), _non_finite(actual)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, failed below anyway
        diffs = np.concatenate([np.abs(e - a).ravel() for e, a in zip(expected, actual)])
    scale = max(1.0, max(float(np.abs(e).max()) for e in expected))
    classifier = all(e.ndim >= 2 and e.shape[-1] > 1 for e in expected)
    agreement = None
    if classifier:
        agreement = float(
            np.mean([np.mean(e.argmax(-1) == a.argmax(-1)) for e, a in zip(expected, actual)])
        )
    if keras_bad or tflite_bad:
        criterion, threshold, passed = "finite_outputs", 0, False
    elif quantized and classifier:
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
        keras_non_finite=keras_bad,
        tflite_non_finite=tflite_bad,
    )


def _non_finite(outputs):
    return sum(int(o.size - np.count_nonzero(np.isfinite(o))) for o in outputs)


def _interpreter(content, resolver):
    return Interpreter(
        model_content=content, num_threads=NUM_THREADS, experimental_op_resolver_type=resolver
    )
