"""The failures `export` raises after its argument checks, and the texts that explain them.

Each text is one paragraph: what failed, where (the op and Keras layer, or the parity figure and
its bound), and what to change; the file at the destination is never touched.
"""

import re


class ConversionError(RuntimeError):
    """The TFLite converter rejected the model; the message names the layer and the fix."""


class BackendError(RuntimeError):
    """Keras runs on a backend other than TensorFlow; the message says how to export anyway."""


class ParityError(RuntimeError):
    """The TFLite model's outputs differ from the Keras model's beyond the tolerance."""


def conversion_failure(error, model, batch_size, quantize):
    """A one-paragraph explanation of a converter failure: op, Keras layer, what to do.

    Args:
        error: the exception tracing or the converter raised.
        model: the Keras model being converted, to name the failing layer.
        batch_size: the static batch, or None.
        quantize: None, `"dynamic"` or `"int8"`.

    Returns:
        The message for a `ConversionError`.
    """
    text = str(error)
    op = _first(re.findall(r"'(tf\.\w+)' op", text) + re.findall(r"Custom ops: (\w+)", text))
    layer = _layer_in(text, model)
    where = f" in layer '{layer}'" if layer else ""
    what = f"op {op}" if op else "the model"
    if "TensorList" in text and batch_size is None:
        advice = (
            "Recurrent layers convert only with a static batch: pass batch_size=1 "
            "(CLI: --batch-size 1)."
        )
    elif "custom op" in text or "flex op" in text or "NEEDS_FLEX" in text:
        advice = (
            f"TFLite has no builtin kernel for {op or 'an op'}. Rebuild the layer from supported "
            "ops (https://ai.google.dev/edge/litert/models/ops_compatibility) or remove it "
            "before export."
        )
    elif quantize == "int8":
        advice = "Some op lacks an int8 kernel: try quantize='dynamic' or quantize=None."
    else:
        advice = "Replace or simplify that layer; the full message is in the chained exception."
    first_error = _first(re.findall(r"error: (?:loc\(.*?\): )?(.+)", text))
    first_error = first_error or (text.splitlines() or [type(error).__name__])[0]
    return (
        f"TFLite conversion failed at {what}{where} (batch_size={batch_size}, "
        f"quantize={quantize!r}): {first_error.strip()}\n{advice}"
    )


def parity_failure(result, path, quantize, misaligned):
    """The message for a `ParityError`: the figure, its bound, and what to try.

    Args:
        result: the failed `verify.Parity`.
        path: the destination that was left untouched.
        quantize: None, `"dynamic"` or `"int8"`.
        misaligned: names of block-encoded weights whose block does not divide an axis
            (`kernels.misaligned_blocks`), a likely cause.

    Returns:
        The message.
    """
    if result.criterion == "finite_outputs":
        return _non_finite_failure(result, path, quantize)
    advice = (
        "Calibrate with more representative_data, or use quantize='dynamic' or None."
        if quantize
        else "A layer computes differently in TFLite: export sub-models to find which."
    )
    return (
        f"The .tflite model disagrees with Keras on {result.samples} samples: "
        f"{result.criterion} is {_figure(result)}, the bound is {result.threshold:.3g} "
        f"(max |diff| {result.max_abs_diff:.3g}). Nothing was written to '{path}'. "
        + advice
        + _misaligned_hint(misaligned)
    )


def _non_finite_failure(result, path, quantize):
    """Weights and inputs were checked finite, so NaN or inf came from computing."""
    if result.keras_non_finite:
        where = f"The Keras model's outputs hold {result.keras_non_finite}"
        advice = (
            "Weights and inputs are finite, so a layer overflows float32: check the inputs' "
            "scale (normalise them) and for very large weights."
        )
    else:
        where = f"The .tflite model's outputs hold {result.tflite_non_finite}"
        fix = "try quantize='dynamic' or None." if quantize else "export sub-models to find which."
        advice = f"Keras computes finite values there, so a layer computes differently: {fix}"
    return (
        f"{where} non-finite value(s) (NaN or inf) on {result.samples} verification samples; "
        f"parity cannot pass with non-finite outputs. Nothing was written to '{path}'. {advice}"
    )


def int8_fallback(float_weights, path):
    """The message for an int8 request whose file came out without integer kernels."""
    what = f"weights {float_weights} stay float" if float_weights else "it has no QUANTIZE op"
    return (
        f"quantize='int8' produced a file without integer kernels ({what}): the converter "
        "fell back to float, which happens when calibration gives no activation ranges. "
        f"Nothing was written to '{path}'. Check representative_data (typical, finite inputs) "
        "or use quantize='dynamic'."
    )


def _figure(result):
    if result.criterion == "argmax_agreement":
        return f"{result.argmax_agreement:.3g}"
    return f"{result.max_abs_diff:.3g}"


def _misaligned_hint(names):
    if not names:
        return ""
    return (
        f" Block-encoded weights {names} have an axis their block size does not divide, which "
        "TFLite's block kernel miscomputes: keep input sizes multiples of the block, or pass "
        "sparse=False."
    )


def _layer_in(text, model):
    """The Keras layer whose name scope appears in the converter's op locations, if any.

    TF name scopes may append `_<n>` to a layer's name, so exact names are tried before that.
    """
    names = sorted(
        (layer.name for layer in model._flatten_layers(include_self=False)), key=len, reverse=True
    )
    for pattern in (r"(?:^|[/\"]){}/", r"(?:^|[/\"]){}_\d+/"):
        for name in names:
            if re.search(pattern.format(re.escape(name)), text):
                return name
    return None


def _first(items):
    return items[0] if items else None
