"""The thesis' three-stage LSTM pipeline: train dense, prune (weights, hidden state), fine-tune.

>>> model.fit(x, y)                                                       # 1. dense
>>> pruned, report = tfprune.lstm.prune_hidden_state(model, x_cal, 0.5)  # 2. prune
>>> pruned.compile(...); pruned.fit(x, y)                                 # 3. fine-tune
>>> small, report = tfprune.compact(pruned, data=x_cal)                  # drop never-active units
>>> small, report = tfprune.lstm.remove_inactive_units(pruned, x_val, y_val, 0.01)  # within 1 point

`three_stage` runs all three. Hidden-state thresholds are calibrated by a bracketed search on the
hidden-state sparsity the layers measure while the model predicts, so the feedback of pruned
chunks on later steps is part of what is calibrated.
"""

import numbers

import keras
import numpy as np

from tfprune import cloning
from tfprune.callbacks import DynamicPrune
from tfprune.convert import prunable
from tfprune.counts import count_nonzero
from tfprune.estimator import block_scores
from tfprune.inactive_units import remove_inactive_units
from tfprune.kinds import RNN_WEIGHTS
from tfprune.layers import HiddenStatePrunedLSTM, MaskedLSTM
from tfprune.stateful import measuring_predict
from tfprune.threshold_search import check_search, search_threshold

__all__ = [
    "calibrate",
    "lstm_layers",
    "magnitude_prune",
    "measure",
    "prune_hidden_state",
    "remove_inactive_units",
    "three_stage",
]


def lstm_layers(model, layers=None):
    """The LSTM layers of `model` that tfprune handles, Bidirectional halves included.

    Args:
        model: a `keras.Model`.
        layers: None (all), or names / layer objects; a Bidirectional stands for both halves.

    Returns:
        A list of `keras.layers.LSTM` or `HiddenStatePrunedLSTM` (incl. MaskedLSTM) layers.

    Raises:
        TypeError: `model` is not a Keras model, or `layers` is not names / layers.
        ValueError: a requested layer is missing or is not an LSTM (the message names it).
    """
    cloning.check_model(model, "lstm")
    found = [layer for layer in model._flatten_layers(include_self=False) if _is_lstm(layer)]
    if layers is None:
        return found
    if isinstance(layers, (str, keras.layers.Layer)):
        items = [layers]
    elif isinstance(layers, (list, tuple, set)):
        items = list(layers)
    else:
        raise TypeError(
            "Expected layers= to be None, a layer name or layer, or a list of them. "
            f"Received: layers={layers!r}"
        )
    by_name = {}
    for layer in model._flatten_layers(include_self=False):
        by_name.setdefault(layer.name, layer)  # an LSTM comes before its cell of the same name
    chosen = []
    for item in items:
        layer = by_name.get(item) if isinstance(item, str) else item
        if layer is None:
            raise ValueError(
                f"No layer named '{item}' in model '{model.name}'. "
                f"Its LSTM layers: {[layer.name for layer in found]}."
            )
        halves = cloning.halves_of(layer) if isinstance(layer, keras.layers.Bidirectional) else [layer]
        if not all(_is_lstm(half) for half in halves):
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) is not an LSTM: tfprune.lstm "
                "handles keras.layers.LSTM, tfprune.layers.MaskedLSTM / HiddenStatePrunedLSTM "
                f"and Bidirectional around them. LSTM layers of this model: "
                f"{[layer.name for layer in found]}."
            )
        chosen += [half for half in halves if half not in chosen]
    return chosen


def measure(model, data, batch_size=None):
    """Runs `model.predict(data)` and reports what each LSTM's hidden-state pruning did.

    Args:
        model: a `keras.Model` with LSTM layers.
        data: model inputs: arrays or a `tf.data.Dataset` (labels are ignored).
        batch_size: forwarded to `predict`.

    Returns:
        `{layer name: {"hidden_sparsity", "recurrent_macs_skipped", "hidden_threshold",
        "steps", "weight_sparsity"}}` for every HiddenStatePrunedLSTM/MaskedLSTM.
    """
    layers = [layer for layer in lstm_layers(model) if isinstance(layer, HiddenStatePrunedLSTM)]
    for layer in layers:
        layer.reset_hidden_state_stats()
    measuring_predict(model, data, batch_size)
    return {layer.name: _layer_report(layer) for layer in layers}


def calibrate(model, data, target, layers=None, tolerance=0.01, max_steps=20, batch_size=None):
    """Sets hidden-state thresholds (in place) so each layer zeroes a `target` share of chunks.

    Layers are calibrated one after the other in call order, each by a bracketed search on the
    sparsity measured on `data`, so a layer is tuned on the inputs its pruned predecessors give.

    Args:
        model: a `keras.Model` whose LSTMs prune their hidden state (`hidden_state` not off).
        data: calibration inputs (arrays or a `tf.data.Dataset`).
        target: hidden-state sparsity to reach, in [0, 1).
        layers: None (all hidden-state-pruned LSTMs) or names / layers, see `lstm_layers`.
        tolerance: stop once the measured sparsity is this close to `target`.
        max_steps: search steps per layer; the closest threshold seen is kept.
        batch_size: forwarded to `predict`.

    Returns:
        The `measure` report after calibration.

    Raises:
        ValueError: `target` outside [0, 1), a non-LSTM layer, an LSTM without hidden-state
            pruning (convert it with `prune_hidden_state`), `tolerance` outside [0, 1) or
            `max_steps` not a positive integer.
    """
    target = _check_target(target)
    check_search(tolerance, max_steps)
    chosen = lstm_layers(model, layers)
    _check_some_lstm(model, chosen)
    pruned = [layer for layer in chosen if getattr(layer, "hidden_state", "off") != "off"]
    if not pruned or layers is not None and len(pruned) < len(chosen):
        off = [layer.name for layer in chosen if layer not in pruned]
        raise ValueError(
            f"LSTM layers {off} of model '{model.name}' do not prune their hidden state. "
            "Use tfprune.lstm.prune_hidden_state(model, data, target), or build "
            "MaskedLSTM(..., hidden_state='fixed')."
        )
    for layer in pruned:
        search_threshold(model, layer, data, target, tolerance, max_steps, batch_size)
    return measure(model, data, batch_size)


def prune_hidden_state(
    model, data, target=0.5, chunk=4, layers=None, trained=False, tolerance=0.01, batch_size=None
):
    """Stage 2 of the pipeline for the hidden state: convert the LSTMs, then calibrate them.

    Stock LSTMs become `MaskedLSTM(prune_weights=False)`; MaskedLSTMs keep their weight
    masks. Weights are copied, so only the chunk pruning changes the outputs.

    Args:
        model: a Sequential or functional `keras.Model`; it is left untouched.
        data: calibration inputs (arrays or a `tf.data.Dataset`).
        target: hidden-state sparsity to reach, in [0, 1).
        chunk: units per chunk; must divide every selected layer's units.
        layers: None (every LSTM) or names / layers, see `lstm_layers`.
        trained: False fixes the calibrated thresholds; True makes them trainable (DST-style,
            regularised by `DynamicPrune`'s alpha), starting from the calibrated values.
        tolerance: see `calibrate`.
        batch_size: forwarded to `predict`.

    Returns:
        `(new_model, report)` with the `measure` report of the calibrated model.

    Raises:
        TypeError: `target` is not a number, or `layers` is not names / layers.
        ValueError: `target` outside [0, 1), no LSTM or a non-LSTM layer selected, `chunk` not
            dividing units, or `tolerance` outside [0, 1).
    """
    target = _check_target(target)
    check_search(tolerance, 20)
    selected = lstm_layers(model, layers)
    _check_some_lstm(model, selected)
    mode = "trained" if trained else "fixed"

    def convert_one(layer):
        config = {**layer.get_config(), "chunk": chunk, "hidden_state": mode}
        if isinstance(layer, MaskedLSTM):
            return cloning.copy_layer(layer, MaskedLSTM, config)
        config["prune_weights"] = False
        return cloning.rebuild(layer, MaskedLSTM, config, RNN_WEIGHTS)

    def clone(layer):
        if isinstance(layer, keras.layers.Bidirectional) and layer.forward_layer in selected:
            return cloning.rewrap(layer, convert_one)
        return convert_one(layer) if layer in selected else cloning.copy_layer(layer)

    new = cloning.clone_layers(model, clone)
    names = [layer.name for layer in selected]
    calibrate(new, data, target, names, tolerance, batch_size=batch_size)
    return new, measure(new, data, batch_size)


def magnitude_prune(model, target, layers=None):
    """Sets each MaskedLSTM kernel's thresholds (in place) to mask its `target` smallest weights.

    The alternative to DST in stage 2: one threshold per kernel at the `target` quantile of
    the granularity's scores (|W| or block means); with `granularity="unit"`, one threshold
    per layer at the `target` quantile of the hidden units' group scores.

    Args:
        model: a `keras.Model` with MaskedLSTM layers (see `tfprune.prunable`).
        target: weight sparsity per kernel (share of hidden units with "unit"), in [0, 1).
        layers: None or names / layers, see `lstm_layers`.

    Returns:
        `{layer name: weight sparsity}` after pruning.

    Raises:
        ValueError: `target` outside [0, 1), or no MaskedLSTM selected.
    """
    target = _check_target(target)
    chosen = [layer for layer in lstm_layers(model, layers) if isinstance(layer, MaskedLSTM)]
    if not chosen:
        raise ValueError(
            f"Model '{model.name}' has no MaskedLSTM to prune by magnitude. "
            "Convert it first: model = tfprune.prunable(model)."
        )
    for layer in chosen:
        cell = layer.cell
        if cell.granularity == "unit":  # one threshold per hidden unit, over its whole group
            scores = keras.ops.convert_to_numpy(cell.unit_scores())
            cell.unit_threshold.assign(np.full(cell.units, np.quantile(scores, target), "float32"))
            continue
        for kernel_name, threshold_name in cell.MASKED.items():
            magnitude = np.abs(keras.ops.convert_to_numpy(getattr(cell, kernel_name)))
            if isinstance(cell.granularity, tuple):
                magnitude = keras.ops.convert_to_numpy(block_scores(magnitude, cell.granularity, 0))
            threshold = getattr(cell, threshold_name)
            threshold.assign(np.full(threshold.shape, np.quantile(magnitude, target), "float32"))
    return {layer.name: layer.cell.sparsity() for layer in chosen}


def three_stage(
    model,
    train,
    calibration,
    hidden_target=0.5,
    weights="dst",
    weight_target=0.5,
    epochs=(5, 5, 5),
    alpha=5e-4,
    chunk=4,
    **fit_kwargs,
):
    """Train dense, prune weights and hidden state, fine-tune: the thesis' pipeline in one call.

    Stage 1 fits `model` itself. Stage 2 converts its LSTMs to MaskedLSTM, prunes weights by
    DST (`epochs[1]` epochs with `DynamicPrune(alpha)`), by magnitude (`weight_target`) or not
    at all (`weights=None`), then calibrates the hidden-state thresholds to `hidden_target`.
    Stage 3 freezes every threshold and fine-tunes the weights for `epochs[2]` epochs.

    Args:
        model: a compiled Sequential or functional `keras.Model` with LSTM layers.
        train: `(x, y)` or a `tf.data.Dataset` of `(x, y)` batches.
        calibration: inputs for calibration and the final report (use held-out data).
        hidden_target: hidden-state sparsity, in [0, 1).
        weights: `"dst"`, `"magnitude"` or None.
        weight_target: weight sparsity per LSTM kernel for `"magnitude"`, in [0, 1).
        epochs: `(dense, prune, fine_tune)` epochs; stage 2 trains only with `"dst"`.
        alpha: DST regularisation strength for `"dst"`.
        chunk: units per hidden-state chunk.
        **fit_kwargs: forwarded to every `fit` call (batch_size, validation_data, ...).

    Returns:
        `(pruned_model, report)`: report has `"history"` (one History dict per stage that
        trained) and `"layers"` (the `measure` report on `calibration` after fine-tuning).

    Raises:
        ValueError: the model is not compiled, an unknown `weights` method, or a bad target.
    """
    compile_config = model.get_compile_config() if model.compiled else None
    if compile_config is None:
        raise ValueError(
            f"three_stage trains model '{model.name}', so compile it first (its compile "
            "settings are reused for every stage)."
        )
    if weights not in ("dst", "magnitude", None):
        raise ValueError(f"weights must be 'dst', 'magnitude' or None. Received: {weights!r}")
    history = {}
    if epochs[0]:
        history["dense"] = _fit(model, train, epochs[0], [], fit_kwargs)
    if weights is not None:
        model = prunable(model, layers=_holds_lstm)
        if weights == "magnitude":
            magnitude_prune(model, weight_target)
        else:
            model.compile_from_config(compile_config)
            history["prune"] = _fit(model, train, epochs[1], [DynamicPrune(alpha)], fit_kwargs)
    model, _ = prune_hidden_state(model, calibration, hidden_target, chunk=chunk)
    for layer in lstm_layers(model):
        for threshold in layer.cell.threshold_variables():
            threshold.trainable = False
    model.compile_from_config(compile_config)
    if epochs[2]:
        history["fine_tune"] = _fit(model, train, epochs[2], [], fit_kwargs)
    return model, {"history": history, "layers": measure(model, calibration)}


# Internals -------------------------------------------------------------------------------------


def _holds_lstm(layer):
    """An LSTM, or a Bidirectional around one."""
    if isinstance(layer, keras.layers.Bidirectional):
        return _is_lstm(layer.forward_layer)
    return _is_lstm(layer)


def _check_target(target):
    if not (isinstance(target, numbers.Real) and not isinstance(target, bool)):
        raise TypeError(
            "target is the share of hidden-state chunks (or weights) to zero: a number in "
            f"[0, 1) such as 0.5. Received: target={target!r} of type {type(target).__name__}"
        )
    if not 0.0 <= float(target) < 1.0:
        raise ValueError(
            "target is the share of hidden-state chunks (or weights) to zero and must be in "
            f"[0, 1); 1 would silence the layer. Received: target={target!r}"
        )
    return float(target)


def _check_some_lstm(model, chosen):
    if not chosen:
        raise ValueError(
            f"Model '{model.name}' has no LSTM layer to prune the hidden state of: tfprune.lstm "
            "handles keras.layers.LSTM, tfprune.layers.MaskedLSTM and Bidirectional around them. "
            "For Dense and convolution layers use tfprune.prunable and tfprune.DynamicPrune."
        )


def _layer_report(layer):
    counts = [count_nonzero(kernel) for kernel in layer.cell.effective_weights()[:2]]
    size = sum(c[0] for c in counts)
    return {**layer.hidden_state_stats(), "weight_sparsity": 1 - sum(c[1] for c in counts) / size}


def _is_lstm(layer):
    """Stock LSTM (exactly: subclasses may override call) or a tfprune LSTM."""
    return type(layer) is keras.layers.LSTM or isinstance(layer, HiddenStatePrunedLSTM)


def _fit(model, data, epochs, callbacks, fit_kwargs):
    x, y = (data, None) if not isinstance(data, (tuple, list)) else data
    return model.fit(x, y, epochs=epochs, callbacks=callbacks, verbose=0, **fit_kwargs).history
