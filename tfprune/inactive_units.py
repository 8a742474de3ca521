"""Turning hidden-state sparsity into speed: remove the LSTM units that are (nearly) never active.

Zeroed chunks of `h_t` save nothing in a stock TFLite file; fewer units make the recurrent product
smaller on every runtime. Units whose chunk calibration data shows kept at most a given share of
the steps are made dead exactly (their candidate gate reads nothing and has no bias, so
`c = h = 0` at every step) and `compact` removes them with everything only they fed. The share is
the largest that keeps accuracy within the user's budget.
"""

import numpy as np

from tfprune.cloning import check_model, clone_layers, copy_layer
from tfprune.compact import compact
from tfprune.convert import strip
from tfprune.layers import HiddenStatePrunedLSTM, masked_layers
from tfprune.stateful import measuring_predict


def remove_inactive_units(model, x, y, max_accuracy_drop=0.01, batch_size=None):
    """Removes the least active hidden units of every hidden-state-pruned LSTM within a budget.

    Args:
        model: a model whose LSTMs prune their hidden state (`tfprune.lstm.prune_hidden_state`),
            masked or stripped; it is left untouched.
        x, y: calibration inputs and integer class labels (held-out data, ideally): activity is
            counted and accuracy measured on them.
        max_accuracy_drop: the accuracy (a share, 0.01 = one point) the removal may cost on
            `(x, y)`.
        batch_size: forwarded to `predict`.

    Returns:
        `(small_model, report)`: the compacted model and `{"activity_cutoff", "accuracy_before",
        "accuracy_after", "units": {layer: (before, after)}, "compaction": CompactionReport}`.

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: no LSTM prunes its hidden state, or `max_accuracy_drop` is not in [0, 1).

    >>> small, report = tfprune.lstm.remove_inactive_units(pruned, x_val, y_val, 0.01)
    """
    check_model(model, "lstm.remove_inactive_units")
    if not (isinstance(max_accuracy_drop, (int, float)) and 0 <= max_accuracy_drop < 1):
        raise ValueError(
            "max_accuracy_drop is the accuracy the removal may cost, a share in [0, 1) such as "
            f"0.01 (one point). Received: max_accuracy_drop={max_accuracy_drop!r}"
        )
    plain = strip(model) if masked_layers(model) else clone_layers(model, copy_layer)
    layers = [
        layer for layer in plain._flatten_layers(include_self=False)
        if isinstance(layer, HiddenStatePrunedLSTM)
    ]  # fmt: skip
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no LSTM that prunes its hidden state, so no activity to "
            "go by. Run tfprune.lstm.prune_hidden_state(model, x, target) first."
        )
    for layer in layers:
        layer.reset_hidden_state_stats()
    before = _accuracy(plain, x, y, batch_size)
    activity = {  # share of steps each unit's chunk was kept
        id(layer): layer.cell.kept_steps.numpy() / max(int(layer.cell.seen_steps.numpy()), 1)
        for layer in layers
    }
    levels = np.unique(np.concatenate(list(activity.values())))
    best, best_accuracy, best_model = -1.0, before, plain
    lo, hi = 0, len(levels) - 1  # accuracy falls as the cutoff rises: find the last level within
    while lo <= hi:
        middle = (lo + hi) // 2
        trial = _silenced(plain, layers, activity, levels[middle])
        accuracy = _accuracy(trial, x, y, batch_size)
        if accuracy >= before - max_accuracy_drop:
            best, best_accuracy, best_model, lo = levels[middle], accuracy, trial, middle + 1
        else:
            hi = middle - 1
    small, compaction = compact(best_model)
    units = {
        layer.name: (layer.cell.units, small.get_layer(layer.name).cell.units) for layer in layers
    }
    report = {
        "activity_cutoff": float(best),
        "accuracy_before": before,
        "accuracy_after": best_accuracy,
        "units": units,
        "compaction": compaction,
    }
    return small, report


def _silenced(plain, layers, activity, cutoff):
    """A copy of `plain` whose units kept on at most `cutoff` of the steps output 0 exactly."""
    chosen = {layer.name: activity[id(layer)] <= cutoff for layer in layers}

    def clone(layer):
        new = copy_layer(layer)
        dead = chosen.get(layer.name)
        if dead is not None and dead.any():
            units, cell = new.cell.units, new.cell
            columns = 2 * units + np.flatnonzero(dead)  # the candidate (g) gate
            for variable in (cell.kernel, cell.recurrent_kernel):
                values = np.asarray(variable.numpy())
                values[:, columns] = 0
                variable.assign(values)
            if cell.bias is not None:
                bias = np.asarray(cell.bias.numpy())
                bias[columns] = 0
                cell.bias.assign(bias)
        return new

    return clone_layers(plain, clone)


def _accuracy(model, x, y, batch_size):
    predictions = measuring_predict(model, x, batch_size)
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(y).reshape(-1)))

