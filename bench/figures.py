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
        "weights_remaining"}`.
    """
    import tfprune

    report = tfprune.sparsity_report(model)
    rows = report.to_dict()["layers"]
    return {
        "remaining": report.nonzeros / report.params,
        "remaining_per_layer": {row["layer"]: row["nonzeros"] / row["params"] for row in rows},
        "weights_total": report.params,
        "weights_remaining": report.nonzeros,
    }


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
