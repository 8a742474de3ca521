"""`compact(model)`: physically remove the dead units, filters and hidden units of a pruned model.

A unit (Dense neuron, conv or transposed-conv filter, depthwise channel, LSTM, GRU or SimpleRNN
hidden unit) is dead when its value no longer matters: every weight that reads it is zero, or it outputs a constant (`activation(bias)`
when all its incoming weights are zero) whose contribution the next layer's bias can absorb
exactly. The compacted model computes the same outputs as the original. With `data`, LSTM hidden
units that hidden-state pruning never kept on that data go too (exact on that data).

The decision is taken on `tfprune.channel_graph.Graph`; the per-layer rules come from the
registry (`tfprune.kinds`). Attention heads go from inside their layer (`Entry.inside`,
`tfprune.attention_surgery`): the layer's inputs and outputs keep their size. Not compacted:
nested models and shared layers (called more than once) are copied unchanged and keep every
position they touch; channels-first layouts, grouped convolutions, SeparableConv, EinsumDense,
Embedding, LayerNormalization, softmax activations, Bidirectional layers that merge their halves
other than by concatenation or hold GRUs or SimpleRNNs, TimeDistributed and any unregistered
layer likewise; the report's `not_compacted` names the layers with weights among them and why.
"""

import dataclasses

import keras

from tfprune import registry
from tfprune.channel_graph import Graph, LayerCompaction
from tfprune.convert import strip
from tfprune.layers.base import masked_layers
from tfprune.layers.lstm import HiddenStatePrunedLSTM
from tfprune.stateful import measuring_predict


@dataclasses.dataclass
class CompactionReport:
    """What `compact` removed, layer by layer, and the parameter counts before and after."""

    layers: list
    params_before: int
    params_after: int
    not_compacted: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        width = max([len(r.name) for r in self.layers] + [5])
        lines = [f"{'layer':<{width}}  {'before':>6}  {'after':>6}  removed"]
        for r in self.layers:
            shown = ", ".join(map(str, r.removed[:8])) + (", ..." if len(r.removed) > 8 else "")
            lines.append(f"{r.name:<{width}}  {r.units_before:>6}  {r.units_after:>6}  [{shown}]")
        for row in self.not_compacted:
            lines.append(f"{row['layer']:<{width}}  not compacted: {row['reason']}")
        saved = 1 - self.params_after / max(self.params_before, 1)
        lines.append(f"params: {self.params_before} -> {self.params_after} ({saved:.1%} fewer)")
        return "\n".join(lines)


def compact(model, data=None, batch_size=None):
    """Removes dead units, filters, channels and LSTM hidden units; the outputs stay the same.

    Args:
        model: a built Sequential or functional `keras.Model` whose pruned weights are exact
            zeros. Models with tfprune masked layers are stripped first (`tfprune.strip`).
        data: optional calibration inputs (arrays or a `tf.data.Dataset`). With them, LSTM
            hidden units whose hidden-state chunk was never kept while the model predicted
            `data` are removed too: exact on that data, an approximation elsewhere (the report's
            `by_data` lists them). The counters of an unmasked model's LSTMs are refilled.
        batch_size: forwarded to `predict` with `data`.

    Returns:
        `(new_model, report)`: the compacted model (the original is not modified) and a
        `CompactionReport`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model is unbuilt or subclassed (no functional graph to walk).

    >>> small, report = compact(pruned_model)
    >>> small, report = compact(pruned_model, data=x_calibration)   # also never-active LSTM units
    >>> print(report)
    """
    _check_model(model)
    if masked_layers(model):
        model = strip(model)
    if data is not None:
        _observe(model, data, batch_size)
    graph = Graph(model, observed=data is not None)
    plans, rows = graph.plans(graph.decide())
    _plan_inside(model, plans, rows)
    if data is not None:
        structural = Graph(model)
        _, plain_rows = structural.plans(structural.decide())
        plain = {row.name: set(row.removed) for row in plain_rows}
        for row in rows:
            row.by_data = sorted(set(row.removed) - plain.get(row.name, set()))
    new_model = _rebuild(model, plans)
    report = CompactionReport(rows, model.count_params(), new_model.count_params())
    report.not_compacted = _not_compacted(model, plans)
    return new_model, report


def _plan_inside(model, plans, rows):
    """Adds the plans of layers that lose units inside themselves (attention heads)."""
    for layer in model.layers:
        entry = registry.for_stock(layer)
        plan = entry.inside.plan(layer) if entry and entry.inside and id(layer) not in plans else None
        if plan is not None:
            config, weights, before, removed = plan
            plans[id(layer)] = (config, weights)
            rows.append(LayerCompaction(layer.name, before, before - len(removed), removed))


def _not_compacted(model, plans):
    """`[{"layer", "kind", "reason"}]`: layers with weights whose units `compact` cannot remove."""
    rows = []
    for layer in model.layers:
        entry = registry.for_stock(layer)
        if not layer.weights or id(layer) in plans or (entry and entry.channels):
            continue
        if entry and entry.inside and entry.inside.supports(layer):
            continue  # analysed: no dead head
        kind = type(layer).__name__
        if isinstance(layer, keras.Model):
            reason = "a nested model is copied unchanged"
        elif entry is None or entry.units is None and entry.inside is None:
            reason = f"no compact rule for {kind} (its units stay; see the README's layer table)"
        else:
            reason = (
                f"the {kind} rule does not apply here (channels_first, grouped, stateful, shared, "
                "more than one input, or extra weights)"
            )
        rows.append({"layer": layer.name, "kind": kind, "reason": reason})
    return rows


def _observe(model, data, batch_size):
    """Refills the hidden-state counters of `model`'s LSTMs on `data`."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, HiddenStatePrunedLSTM):
            layer.reset_hidden_state_stats()
    measuring_predict(model, data, batch_size)


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "compact() expects a keras.Model (Sequential or functional). Received: "
            f"model={model!r} of type {type(model).__name__}. Pass the whole model, "
            "not a layer or a list."
        )
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        raise ValueError(
            f"compact() needs the model's layer graph, but model {model.name!r} "
            f"({type(model).__name__}) has none: build a Sequential model first (give it a "
            "keras.Input or call model.build(input_shape)); subclassed models are not supported, "
            "rebuild them with the functional API."
        )


def _rebuild(model, plans):
    """Clones the model through `clone_model`, building each layer from its planned config."""
    built = []

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):  # an operation without weights (a mask's NotEqual)
            return layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.Model):  # nested model: an unchanged copy
            new, weights = keras.models.clone_model(layer), layer.get_weights()
        else:
            config, weights = plans.get(id(layer), (layer.get_config(), layer.get_weights()))
            new = layer.__class__.from_config(config)
        built.append((new, weights))
        return new

    inputs = None
    if isinstance(model, keras.Sequential):  # also covers models built by build(shape)
        inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
    new_model = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    for new, weights in built:
        new.set_weights(weights)
    return new_model
