"""The inputs `export` calibrates and verifies on, checked before any conversion.

Data that does not fit the model, or holds NaN or inf, is refused up front with the argument
and the first bad sample named: NaN inputs make NaN outputs, and a parity check on them, or an
int8 calibration, proves nothing.
"""

import numpy as np

# Random samples drawn when no verification data is given.
DEFAULT_SAMPLES = 16
# Verification samples borrowed from representative_data when no verify_data is given.
BORROWED_VERIFY_SAMPLES = 64


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
        TypeError, ValueError: either data does not fit the model (see `check_data`).
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
        data: None (draw `DEFAULT_SAMPLES` standard-normal samples), or data as `check_data`
            takes it.
        batch_size: the static batch, or None.
        what: the argument name, for error messages.

    Returns:
        A list of numpy arrays, cast to the inputs' dtypes.

    Raises:
        TypeError, ValueError: see `check_data`; or the data holds fewer samples than one
            static batch; or no data for an input with a dimension that is not fixed.
    """
    step = batch_size or 1
    if data is None:
        for t in model.inputs:
            if None in t.shape[1:]:
                raise ValueError(
                    f"Input '{t.name}' of shape {tuple(t.shape)} has a dimension that is not "
                    f"fixed, so no test samples can be made up for it. Pass {what}= (or "
                    "verify_data=) with real inputs."
                )
        rng = np.random.default_rng(0)
        count = -(-DEFAULT_SAMPLES // step) * step
        return [
            rng.standard_normal((count, *t.shape[1:])).astype(t.dtype)
            if "float" in str(t.dtype)
            else rng.integers(0, 2, (count, *t.shape[1:])).astype(t.dtype)
            for t in model.inputs
        ]
    arrays = check_data(model, data, what)
    count = min(len(x) for x in arrays) // step * step
    if count == 0:
        raise ValueError(
            f"{what} holds {min(len(x) for x in arrays)} sample(s), fewer than one static batch "
            f"of {step}. Pass at least {step} samples."
        )
    return [x[:count] for x in arrays]


def check_data(model, data, what):
    """`data` as numeric arrays cast to the model's input dtypes, all values finite.

    Args:
        model: the Keras model.
        data: an array (single-input model) or a list of arrays, one per input in
            `model.inputs` order, each shaped `(samples, *input_shape)`.
        what: the argument (or CLI flag and file) named in messages.

    Returns:
        A list of numpy arrays.

    Raises:
        TypeError: `data` is not arrays of numbers.
        ValueError: the arrays do not match the inputs, or hold NaN or inf.
    """
    inputs = model.inputs
    if isinstance(data, (list, tuple)):
        arrays = list(data)
    elif hasattr(data, "__array__") and not isinstance(data, (str, bytes)):
        arrays = [data]
    else:
        raise TypeError(
            f"{what} must be a numpy array (single-input model) or a list of arrays, one per "
            f"input. Received: {type(data).__name__}. A tf.data.Dataset: collect its inputs "
            "with np.concatenate([x for x, _ in dataset])."
        )
    if len(arrays) != len(inputs):
        raise ValueError(
            f"{what} holds {len(arrays)} array(s) but the model takes {len(inputs)} input(s). "
            "Pass one array per model input, in model.inputs order (one array for a "
            "single-input model, e.g. np.stack(samples))."
        )
    arrays = [np.asarray(x) for x in arrays]
    for x, t in zip(arrays, inputs):
        if x.dtype.kind not in "biuf":
            raise TypeError(
                f"{what} holds {x.dtype} values; input '{t.name}' takes numbers. Pass a "
                f"numeric array, e.g. x.astype('{t.dtype}')."
            )
        expected = tuple(t.shape[1:])
        if x.ndim != len(t.shape) or any(
            e is not None and e != a for e, a in zip(expected, x.shape[1:])
        ):
            single = " (one sample? add the batch axis: x[None])" * (x.ndim == len(expected))
            raise ValueError(
                f"{what} has shape {x.shape} (per sample {x.shape[1:]}) but input '{t.name}' "
                f"expects per-sample shape {expected}{single}. Pass arrays shaped (samples, "
                "*input_shape)."
            )
    with np.errstate(over="ignore"):  # beyond the input dtype's range: inf, refused below
        arrays = [x.astype(t.dtype) for x, t in zip(arrays, inputs)]
    for index, (x, t) in enumerate(zip(arrays, inputs)):
        if x.dtype.kind == "f":
            bad = ~np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
            if bad.any():
                where = f" (input {index}, '{t.name}')" if len(inputs) > 1 else ""
                raise ValueError(
                    f"{what}{where} holds non-finite values (NaN or inf as {x.dtype}) in "
                    f"{int(bad.sum())} of {len(x)} samples, the first at index "
                    f"{int(bad.argmax())}. Calibration and the parity check need finite "
                    "inputs: drop or repair those samples."
                )
    return arrays
