"""Weight figures of a trained model, as the records store them, from `tfprune.sparsity_report`.

Kernels only (biases excluded): they are what DST and tfmot prune. Ratios are nonzero / size of
the integer counts the report gives, so they are exact and the same however the model was made.
"""


def remaining_weights(model):
    """The MLP/CNN suites' figures: nonzero share of the kernels, overall and per layer.

    Call it on a plain model (`tfprune.strip`, or the tfmot weights in a Keras 3 model), where
    pruned weights are exact zeros.

    Returns:
        `{"remaining", "remaining_per_layer": {layer: ratio}, "weights_total",
        "weights_remaining", "remaining_compacted", "units_per_layer"}`: `remaining_compacted`
        counts the kernels of `tfprune.compact(model)` (dead units removed, the weights that read
        them folded into biases) against the same total; `units_per_layer` is `units_of`'s.
    """
    import tfprune

    report = tfprune.sparsity_report(model)
    rows = report.to_dict()["layers"]
    compacted = tfprune.sparsity_report(tfprune.compact(model)[0])
    return {
        "remaining": report.nonzeros / report.params,
        "remaining_compacted": compacted.nonzeros / report.params,
        "remaining_per_layer": {row["layer"]: row["nonzeros"] / row["params"] for row in rows},
        "weights_total": report.params,
        "weights_remaining": report.nonzeros,
        "units_per_layer": units_of(model),
    }


def units_of(model):
    """How a layer spreads its kept weights over its output units (the kernel's last axis):
    `{layer: {"units", "alive", "fan_in_p10", "fan_in_median", "fan_in_p90"}}`, where `alive`
    counts units with at least one kept weight and fan-in is kept weights per unit. DST's
    per-unit thresholds can concentrate a layer's weights on few units; GMP's cut is layer-wide."""
    import numpy as np

    figures = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        kernel = np.asarray(kernel)
        fan_in = np.count_nonzero(kernel.reshape(-1, kernel.shape[-1]), axis=0)
        p10, median, p90 = (float(v) for v in np.percentile(fan_in, (10, 50, 90)))
        figures[layer.name] = {
            "units": int(fan_in.size), "alive": int(np.count_nonzero(fan_in)),
            "fan_in_p10": p10, "fan_in_median": median, "fan_in_p90": p90,
        }  # fmt: skip
    return figures


def kernel_figures(model):
    """The LSTM suite's figures: nonzero share of every kernel (LSTM kernels, recurrent kernels,
    Dense kernels), overall and per `layer/weight`, plus the parameter count (`param_count`).

    Counted on the masked view of the model (a plain model is made `prunable` first, all masks
    one): `sparsity_report` names a masked layer's rows after the layer, a stock LSTM's after its
    cell, which every LSTM layer calls `lstm_cell`.
    """
    import tfprune

    masked = model if tfprune.layers.masked_layers(model) else tfprune.prunable(model)
    report = tfprune.sparsity_report(masked)
    rows = report.to_dict()["layers"]
    return {
        "remaining": report.nonzeros / report.params,
        "remaining_per_kernel": {
            f"{row['layer']}/{row['weight']}": row["nonzeros"] / row["params"] for row in rows
        },
        "kernel_weights": report.params,
        "kernel_weights_nonzero": report.nonzeros,
        "param_count": param_count(model),
    }


def param_count(model):
    """Kernels and biases of the plain model: what a file of it stores (masks, hidden-state
    thresholds and counters are not parameters)."""
    import tfprune
    from tfprune.counts import count_nonzero

    plain = tfprune.strip(model) if tfprune.layers.masked_layers(model) else model
    return sum(count_nonzero(w)[0] for w in plain.weights if w.name in PARAMETERS)


PARAMETERS = ("kernel", "recurrent_kernel", "depthwise_kernel", "bias")
