"""What hidden-state pruning would save in a file's LSTMs, and what the file actually does.

Zeroed chunks of `h_t` let a kernel that skips zero inputs drop those rows of the recurrent
product `h U`; TFLite's stock FULLY_CONNECTED inside the LSTM's WHILE loop does not look at its
input, so the file computes every multiply-add. The report says both, so neither figure passes for
the other. Speed comes from removing units calibration shows never active
(`tfprune.compact(model, data=...)`), which makes `U` smaller for real.
"""

import numpy as np
from keras import ops

from tfprune.layers import HiddenStatePrunedLSTM
from tfprune.lstm import measure

ADVICE = (
    "TFLite's stock kernels compute the full h U product, so the zeroed chunks save no time in this "
    "file; tfprune.compact(model, data=x) removes units never active on x, and "
    "tfprune.lstm.remove_inactive_units(model, x, y, max_accuracy_drop) the least active ones "
    "within an accuracy budget, which makes the recurrent product smaller for real"
)


def hidden_state_savings(prepared, samples, restore_counters):
    """Per hidden-state-pruned LSTM of `prepared`, the recurrent work its zero chunks skip.

    Args:
        prepared: the model as converted (stripped, compacted).
        samples: the verification inputs (a list of arrays), the calibration data of record.
        restore_counters: put the layers' counters back afterwards (when `prepared` is the
            user's own model, whose statistics must not change).

    Returns:
        `{layer name: {"hidden_sparsity", "recurrent_macs_skipped", "skipped_in_file", "note"}}`;
        empty when the model prunes no hidden state.
    """
    layers = [
        layer for layer in prepared._flatten_layers(include_self=False)
        if isinstance(layer, HiddenStatePrunedLSTM)
    ]  # fmt: skip
    if not layers:
        return {}
    saved = [[np.asarray(ops.convert_to_numpy(v)) for v in _counters(layer)] for layer in layers]
    figures = measure(prepared, samples[0] if len(samples) == 1 else samples)
    if restore_counters:
        for layer, values in zip(layers, saved):
            for variable, value in zip(_counters(layer), values):
                variable.assign(value)
    return {
        name: {
            "hidden_sparsity": stats["hidden_sparsity"],
            "recurrent_macs_skipped": stats["recurrent_macs_skipped"],
            "skipped_in_file": False,
            "note": ADVICE,
        }
        for name, stats in figures.items()
    }


def _counters(layer):
    return layer.cell.kept_steps, layer.cell.seen_steps
