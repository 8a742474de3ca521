"""`export()`: check -> prepare (strip, compact) -> convert -> verify -> time -> report -> write.

Every argument, the weights and the data are checked before any heavy work; every stage that can
fail runs before the write, so a failed export leaves nothing behind. One export at a time may
write a path (`files.exclusive`), so the file is the one its report describes (`sha256`).
"""

import dataclasses
import hashlib
import warnings

import tfprune
from tflite_export.arguments import check_arguments, check_finite_weights, export_batch_size
from tflite_export.backend import check_backend
from tflite_export.convert import BYTES_PER_VALUE, has_rnn, require_integer_kernels, to_tflite_encodings
from tflite_export.encoding import densify_misaligned_blocks
from tflite_export.errors import ConversionError, ParityError, parity_failure
from tflite_export.files import check_writable, exclusive, write_atomically
from tflite_export.fused_lstm import fused
from tflite_export.inspect import read_flatbuffer
from tflite_export.kernels import layer_kernels, misaligned_blocks
from tflite_export.xnnpack import sparse_inference_verdict
from tflite_export.recurrent import hidden_state_savings
from tflite_export.report import ExportReport
from tflite_export.samples import select_samples
from tflite_export.timing import median_latency_us
from tflite_export.unroll import check_form, unrolled
from tflite_export.verify import choose_runtime, keras_outputs, parity, tflite_outputs
from tfprune.counts import stored_params
from tfprune.layers import hidden_statistics_off, masked_layers
from tfprune.stateful import zero_states

# Alternating timing rounds of the file and its dense encoding: fewer than a benchmark's, so
# export stays quick, but enough that one busy moment on the machine does not decide.
LATENCY_ROUNDS = 3
# How each form other than the loop (the model as it is) is built for conversion.
BUILDERS = {"unrolled": unrolled, "fused": fused}


def export(
    model,
    path,
    *,
    sparse=True,
    quantize=None,
    representative_data=None,
    batch_size=None,
    verify_data=None,
    compact=True,
    latency_runs=50,
    recurrent="auto",
):
    """Strips, compacts, converts, verifies and writes `model` as a .tflite file.

    The file appears only if conversion and parity succeed; on any failure nothing is left at
    `path` (an existing file there is kept unchanged). It is created like any file (mode 0666
    minus the umask; a replaced file keeps its mode) and no temporary survives a killed export.

    Args:
        model: a Sequential or functional `keras.Model`, with tfprune layers or stock ones.
        path: where to write the .tflite file.
        sparse: store sparse weights sparsely (`Optimize.EXPERIMENTAL_SPARSITY`). Unstructured
            sparsity (CSR) is expanded at load time (smaller file, same speed); 1x4 blocks in
            float Dense layers run TFLite's sparse kernel.
        quantize: None (float32), `"dynamic"` (int8 weights) or `"int8"` (integer kernels,
            float inputs and outputs; needs `representative_data`).
        representative_data: calibration inputs for `"int8"`: an array (single-input model) or
            a list of arrays, shaped `(samples, *input_shape)`. Its first samples also serve as
            verification data when `verify_data` is None.
        batch_size: static batch size of the exported model. None: 1 if the model holds a
            recurrent layer (Keras RNNs convert only with a static batch), else dynamic. A
            model with stateful recurrent layers exports at the batch they keep state for; the
            file carries their state from one invoke to the next, starting from zero (a new
            interpreter starts a new sequence), and parity runs the samples in order.
        verify_data: inputs to compare Keras and LiteRT on, shaped like `representative_data`.
            None: `representative_data`, else 16 standard-normal samples.
        compact: remove dead units with `tfprune.compact` before conversion.
        latency_runs: timed `invoke()` calls a round; the file and its dense encoding are
            timed in `LATENCY_ROUNDS` alternating rounds (`median_latency_us`).
        recurrent: how recurrent layers are converted: `"loop"` (a WHILE loop), `"unrolled"`
            (plain operators per time step), `"fused"` (stock LSTMs as one
            UNIDIRECTIONAL_SEQUENCE_LSTM operator each, `tflite_export.fused_lstm`) or
            `"auto"`: every form the model allows, timed side by side, and the fastest that
            passes parity written (small LSTMs run fastest fused, large ones looped);
            `report.form_notes` says why a form was left out. Unrolled and fused need a fixed
            number of time steps.

    Returns:
        An `ExportReport`; `print(report)` shows a table, `report.to_dict()` is JSON-ready.

    Raises:
        TypeError: `model` is not a Keras model, or an argument has the wrong type.
        ValueError: an invalid argument, a `batch_size` other than a stateful layer's, `"int8"`
            without `representative_data`, a NaN or inf weight (the layer and weight are named)
            or data value (the argument and sample),
            `recurrent="unrolled"` or `"fused"` for a model that form cannot hold (the message
            names the layer).
        OSError: `path` cannot be written (checked before any conversion);
            `BlockingIOError` if another export is writing `path`.
        ConversionError: the converter rejected a layer (the message names it and the fix), or
            `"int8"` came out without integer kernels.
        BackendError: Keras runs on JAX or PyTorch in this process (export from a `.keras`
            file with `python -m tflite_export` instead).
        ParityError: the .tflite outputs differ from Keras beyond the tolerance, or either
            side's outputs hold NaN or inf.

    >>> report = tflite_export.export(model, "model.tflite", quantize="dynamic")
    """
    check_backend()
    check_arguments(
        model,
        sparse=sparse,
        quantize=quantize,
        representative_data=representative_data,
        batch_size=batch_size,
        compact=compact,
        latency_runs=latency_runs,
    )
    check_form(recurrent)
    path = check_writable(path)
    check_finite_weights(model)
    batch_size = export_batch_size(model, batch_size)
    calibration, samples = select_samples(model, representative_data, verify_data, batch_size)
    # A stateful model converts with zero state, which the file starts from; its own comes back.
    with exclusive(path), zero_states(model):
        prepared, compaction = _prepare(model, compact)
        names = [t.name for t in prepared.inputs]
        settings = dict(
            sparse=sparse, quantize=quantize, batch_size=batch_size, calibration=calibration,
            input_names=names,
        )  # fmt: skip
        forms, form_notes = _converted_forms(prepared, recurrent, settings)
        latency_batch = batch_size or 1
        named = {t.name: x[:latency_batch] for t, x in zip(prepared.inputs, samples)}
        form_latency_ms, dense_ms = _time(forms, named, latency_runs)
        order = sorted(forms, key=form_latency_ms.get)
        for form in order:  # the fastest form that computes the model
            content, dense_content, reencoded = forms[form]
            info = read_flatbuffer(content)
            if quantize == "int8":
                require_integer_kernels(info, path)
            try:
                result, runtime_note = _verify(
                    model, prepared, content, info, samples, batch_size=batch_size,
                    quantize=quantize, path=path,
                )  # fmt: skip
                break
            except ParityError as error:
                if form == order[-1]:  # no form left to try
                    raise
                form_notes[form] = f"parity failed, another form written: {error.args[0].splitlines()[0]}"
        kernels = layer_kernels(info.tensors, prepared, sparse)
        report = ExportReport(
            path=path,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            dense_size_bytes=len(dense_content),
            sparse=sparse,
            quantize=quantize,
            batch_size=batch_size,
            operators=info.operators,
            tensors=info.tensors,
            layers=kernels,
            xnnpack_sparse=sparse_inference_verdict(prepared, kernels, sparse, quantize, compaction is not None),
            parity=result,
            latency_ms=form_latency_ms[form],
            dense_latency_ms=dense_ms[form],
            recurrent_form=form if has_rnn(prepared) else None,
            form_latency_ms=form_latency_ms if len(forms) > 1 else {},
            form_notes=form_notes,
            latency_batch=latency_batch,
            runtime_note=runtime_note,
            compaction=compaction,
            reencoded=[dataclasses.asdict(r) for r in reencoded],
            hidden_state=hidden_state_savings(prepared, samples, restore_counters=prepared is model),
            **_weight_figures(prepared, quantize),
        )
        write_atomically(path, content)
    return report


def _prepare(model, compact):
    """The model to convert, masks folded into plain weights (`compact` strips them itself)."""
    if compact:
        prepared, compaction = tfprune.compact(model)
        return prepared, compaction.to_dict()
    return (tfprune.strip(model) if masked_layers(model) else model), None


def _converted_forms(prepared, recurrent, settings):
    """`{form: _convert(...)}` of every form `recurrent` asks for, and `{form: why not}` of
    those "auto" tried and could not convert; the loop, and a form asked for by name, must."""
    models, notes = _forms(prepared, recurrent)
    converted = {}
    for form, model in models.items():
        try:
            converted[form] = _convert(model, **settings)
        except ConversionError as error:
            if form == "loop" or recurrent != "auto":
                raise
            notes[form] = f"conversion failed: {str(error).splitlines()[0]}"
    return converted, notes


def _convert(prepared, *, sparse, quantize, batch_size, calibration, input_names):
    """The file's bytes, the same model without sparse encoding (the size baseline), and the
    tensors whose sparse encoding TFLite would get wrong, stored dense instead."""
    settings = dict(
        quantize=quantize, batch_size=batch_size, calibration=calibration, input_names=input_names
    )
    if not sparse:
        (content,) = to_tflite_encodings(prepared, (False,), **settings)
        return content, content, []
    dense_content, sparse_content = to_tflite_encodings(prepared, (False, True), **settings)
    content, reencoded = densify_misaligned_blocks(sparse_content, dense_content)
    return content, dense_content, reencoded


def _verify(model, prepared, content, info, samples, *, batch_size, quantize, path):
    """Parity of the file with the Keras model; `(Parity, runtime note)` or a `ParityError`."""
    resolver, runtime_note = choose_runtime(content, info.tensors)
    if runtime_note:
        warnings.warn(f"{path}: {runtime_note}", stacklevel=3)
    with hidden_statistics_off(model):  # verifying must not add to the user's statistics
        expected = keras_outputs(model, samples, batch_size)
    result = parity(
        expected,
        tflite_outputs(content, resolver, prepared, samples, batch_size),
        quantized=quantize is not None,
    )
    if not result.passed:
        raise ParityError(parity_failure(result, path, quantize, misaligned_blocks(info.tensors)))
    return result, runtime_note


def _forms(prepared, recurrent):
    """`{form: Keras model}` to convert (the model as it is is the loop), and `{form: why not}`
    of the forms "auto" could not build."""
    if not has_rnn(prepared) or recurrent == "loop":
        return {"loop": prepared}, {}
    if recurrent != "auto":
        return {recurrent: BUILDERS[recurrent](prepared)}, {}
    models, notes = {"loop": prepared}, {}
    for form, build in BUILDERS.items():
        try:
            models[form] = build(prepared)
        except ValueError as error:  # e.g. time steps not fixed, a GRU: not this form
            notes[form] = str(error)
        except Exception as error:  # a model Keras cannot rebuild: still exported as a loop
            notes[form] = f"the model could not be rebuilt this way ({type(error).__name__}: {error})"
    return models, notes


def _time(forms, inputs, runs):
    """Every form's file and the dense encoding of each, timed side by side: `{form: ms}` of
    the files and of their dense encodings."""
    contents, where = [], {}
    for form, (content, dense_content, _) in forms.items():
        for key, blob in ((form, content), (f"{form} dense", dense_content)):
            if not any(blob is c for c in contents):
                contents.append(blob)
            where[key] = next(i for i, c in enumerate(contents) if c is blob)
    best_us, _ = median_latency_us(contents, inputs, rounds=LATENCY_ROUNDS, runs=runs)
    ms = {form: best_us[where[form]] / 1000 for form in forms}
    return ms, {form: best_us[where[f"{form} dense"]] / 1000 for form in forms}


def _weight_figures(prepared, quantize):
    """What the converted model holds: all weights, nonzeros, their physical size, per kernel."""
    params, nonzero = stored_params(prepared)
    return dict(
        params=params,
        nonzero_params=nonzero,
        physical_limit_bytes=nonzero * BYTES_PER_VALUE[quantize],
        weights=tfprune.sparsity_report(prepared).to_dict(),
    )
