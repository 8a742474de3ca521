"""`prunable` and `strip`: clone a model through the registry, stock <-> masked layers;
`left_dense`: which layers a model keeps dense, and why."""

import dataclasses
import inspect
import warnings

import keras

from tfprune import registry
from tfprune.cloning import check_model, clone_layers, copy_layer, rebuild
from tfprune.estimator import normalize_granularity
from tfprune.layers.base import check_thresholds, check_weight_gradient, masked_layers
from tfprune.policy import MIN_SPARSITY, xnnpack_subgraph


def prunable(model, layers=None, granularity="weight", policy=None, thresholds="unit", weight_gradient="estimator"):
    """Returns a copy of `model` whose supported layers are masked DST layers with the same weights.

    Thresholds start at 0, so the new model computes exactly what the old one did until it is
    trained with `tfprune.DynamicPrune`. Layers that are not selected or not supported are copied
    unchanged (with their weights). Sequential, functional and nested models are supported, and
    the layers inside `Bidirectional` and `TimeDistributed`. A `UserWarning` names every layer
    with weights whose kind tfprune cannot mask (`left_dense` lists them all, with the reason).

    Args:
        model: a Sequential or functional `keras.Model`.
        layers: which layers to convert: None (all supported), or a list of layer names and/or
            layer classes, or a predicate `fn(layer) -> bool`.
        granularity: what one threshold decision covers: `"weight"` (the paper), `"unit"` (whole
            neurons, filters or LSTM hidden units, which `compact` then removes) or a block `(1, n)` along
            the input dimension (`(1, 4)` runs TFLite's sparse float kernel). A dict
            `{layer_name: granularity}` sets it per layer (unlisted layers use `"weight"`).
        policy: None, or `"xnnpack"`: check that the model has the shape XNNPACK's sparse
            inference needs on ARM (`tfprune.policy.xnnpack_subgraph`), mask exactly the 1x1
            convolutions it can run sparse (weight granularity) and have `DynamicPrune` keep each
            at least 2/3 sparse (`min_sparsity`). The policy chooses the layers and granularity.
        thresholds: `"unit"` (the paper: a threshold per neuron, filter or gate column) or
            `"layer"` (one per kernel: a layer keeps its largest |W| wherever they are, as
            magnitude pruning does, while DST still sets each layer's share; BENCHMARKS.md,
            section 12, compares the two). Not with `granularity="unit"`.
        weight_gradient: how the weights learn: `"estimator"` (the paper: through the step's
            estimator, so masked weights keep a damped gradient and can come back) or `"masked"`
            (kept weights from the masked product alone, masked weights not at all; the
            thresholds still learn through the estimator). BENCHMARKS.md, section 12, measures it.

    Returns:
        A new `keras.Model`; the original is left untouched.

    Raises:
        TypeError: `model` is not a Keras model, or `layers` holds something other than layer
            names and layer classes.
        ValueError: a name in `layers` or `granularity` is not in the model, a granularity is
            invalid, a block's n does not divide a layer's inputs, or nothing can be pruned;
            an unknown policy, or a policy with `layers` or `granularity`; `thresholds` is not
            `"unit"` or `"layer"`, or is `"layer"` for a layer of `granularity="unit"`; an
            unknown `weight_gradient`.
        tfprune.policy.PolicyError: (a ValueError) the model breaks the policy's conditions;
            the message names the first layer that does and how to fix it.

    >>> model = tfprune.prunable(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    """
    check_model(model, "prunable")
    check_thresholds(thresholds)
    check_weight_gradient(weight_gradient)
    floor = None
    if policy is not None:
        layers, floor = _policy_layers(model, policy, layers, granularity)
    select = _selector(model, layers)
    granularity_of = _granularities(model, granularity)

    def clone(layer):
        if not select(layer) and not any(select(inner) for inner in _wrapped(layer)):
            return copy_layer(layer)
        options = {"granularity": granularity_of(layer), "thresholds": thresholds, "weight_gradient": weight_gradient}
        # checked here too: the twin's own check would reach the user wrapped in Keras' TypeError
        check_thresholds(thresholds, options["granularity"], layer.name)
        return to_masked(layer, options if floor is None else {**options, "min_sparsity": floor})

    new_model = clone_layers(model, clone)
    unsupported = [row for row in left_dense(new_model) if row.unsupported]
    if unsupported:
        warnings.warn(
            f"tfprune.prunable left {len(unsupported)} layer(s) of model '{model.name}' dense, "
            "their kind has no masked twin: "
            + "; ".join(f"{row.layer} ({row.kind})" for row in unsupported)
            + ". Register a twin with tfprune.registry.register to prune them.",
            stacklevel=2,
        )
    if not masked_layers(new_model):
        supported = sorted({e.stock.__name__ for e in registry.prunable_entries()})
        raise ValueError(
            f"Model '{model.name}' has no layer that tfprune can prune with layers={layers!r}. "
            f"Supported layer types: {', '.join(supported)}. Add such layers, or register your own "
            "with `tfprune.registry.register`."
        )
    return new_model


def _policy_layers(model, policy, layers, granularity):
    """`(layer names, min_sparsity)` a pruning policy chooses for `model`."""
    if policy != "xnnpack":
        raise ValueError(f"policy must be None or 'xnnpack'. Received: policy={policy!r}")
    if layers is not None or granularity != "weight":
        raise ValueError(
            "policy='xnnpack' chooses the layers (the 1x1 convolutions XNNPACK runs sparse) and "
            "their granularity (weights): pass neither layers= nor granularity= with it. "
            f"Received: layers={layers!r}, granularity={granularity!r}"
        )
    return list(xnnpack_subgraph(model).layers), MIN_SPARSITY


def strip(model):
    """Returns a plain Keras model (stock layers) whose weights are the masked weights.

    Masked-out weights become exact zeros, so the stripped model's inference outputs equal the
    masked model's and it can be saved, compacted or exported without tfprune.

    Args:
        model: a Sequential or functional `keras.Model`, masked or not.

    Returns:
        A new `keras.Model` without tfprune layers (except layers whose entry keeps run-time
        pruning, such as an LSTM with hidden-state pruning).

    Raises:
        TypeError: `model` is not a Keras model.
    """
    check_model(model, "strip")
    return clone_layers(model, to_stock)


def to_masked(layer, options):
    """`layer`'s masked twin with the same weights (a copy if its kind has none).

    `options` holds the twin's extra arguments (`{"granularity": ...}`).
    """
    entry = registry.for_stock(layer)
    if entry is None or entry.masked is None:
        return copy_layer(layer)
    if entry.to_masked is not None:
        return entry.to_masked(layer, options)
    return rebuild(layer, entry.masked, {**layer.get_config(), **options}, entry.weights)


def to_stock(layer):
    """The stock layer of a masked twin, masked weights as exact zeros (a copy otherwise)."""
    entry = registry.for_masked(layer)
    if entry is None:
        return copy_layer(layer)
    if entry.to_stock is not None:
        return entry.to_stock(layer)
    config = layer.get_config()
    for key in layer.masking_config():
        config.pop(key)
    return rebuild(layer, entry.stock, config, entry.weights, effective=True)


# Layers whose weights are per-channel scales and offsets: no pruning library masks them.
NORMALIZATIONS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.UnitNormalization,
)


@dataclasses.dataclass(frozen=True)
class DenseLayer:
    """A layer with weights that a model keeps dense: its name, its kind and why.

    `unsupported` is True when tfprune has no masked twin for the kind (`prunable` warns).
    """

    layer: str
    kind: str
    reason: str
    unsupported: bool


def left_dense(model):
    """Every layer of `model` with weights and no DST mask, with the reason it stays dense.

    Args:
        model: a `keras.Model` (typically what `prunable` returned).

    Returns:
        A list of `DenseLayer` rows, in layer order (nested models included).

    >>> for row in tfprune.left_dense(tfprune.prunable(model)):
    ...     print(row.layer, row.kind, row.reason)
    """
    check_model(model, "left_dense")
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            rows.extend(left_dense(layer))
        elif layer.weights and not masked_layers(layer):
            rows.append(_why_dense(layer))
    return rows


def _why_dense(layer):
    inner = _wrapped(layer)
    kinds = [type(x) for x in inner] or [type(layer)]
    kind = type(layer).__name__ + (f"({kinds[0].__name__})" if inner else "")
    if all(issubclass(k, NORMALIZATIONS) for k in kinds):
        return DenseLayer(layer.name, kind, "normalisation scales and offsets are not pruned", False)
    entries = [registry.for_stock(x) for x in inner or [layer]]
    if all(e is not None and e.masked is not None for e in entries):
        return DenseLayer(layer.name, kind, "not selected by layers=", False)
    return DenseLayer(
        layer.name,
        kind,
        f"no masked twin for {', '.join(k.__name__ for k in kinds)} in tfprune.registry",
        True,
    )


def _wrapped(layer):
    """The layers a wrapper (Bidirectional, TimeDistributed) holds; [] for other layers."""
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    if isinstance(layer, keras.layers.Wrapper):
        return [layer.layer]
    return []


def _granularities(model, granularity):
    """Turns the `granularity=` argument into `fn(layer) -> granularity`, validating it.

    Block sizes are checked against each layer's inputs when the masked layers are built.
    """
    if not isinstance(granularity, dict):
        normalize_granularity(granularity)
        return lambda layer: granularity
    names = {layer.name for layer in model._flatten_layers(include_self=False)}
    for name, value in granularity.items():
        if name not in names:
            raise ValueError(
                f"granularity names a layer {name!r} that is not in model '{model.name}'. "
                f"Layer names: {', '.join(sorted(names))}. Received: granularity={granularity!r}"
            )
        normalize_granularity(value, f"granularity[{name!r}]")
    return lambda layer: granularity.get(layer.name, "weight")


def _selector(model, layers):
    """Turns the `layers=` argument into a predicate, checking every name exists."""
    if layers is None:
        return lambda layer: True
    if callable(layers) and not inspect.isclass(layers):
        return layers
    if isinstance(layers, (str, type)):
        items = [layers]
    elif isinstance(layers, (list, tuple, set, frozenset)):
        items = list(layers)
    else:
        raise TypeError(
            "Expected layers= to be None, a layer name, a layer class, a list of them or a "
            f"predicate fn(layer) -> bool. Received: layers={layers!r}"
        )
    names = {layer.name for layer in model._flatten_layers(include_self=False)}
    for item in items:
        if isinstance(item, str) and item not in names:
            raise ValueError(
                f"No layer named {item!r} in model '{model.name}'. "
                f"Layer names: {', '.join(sorted(names))}. Received: layers={layers!r}"
            )
        if not isinstance(item, str) and not (
            isinstance(item, type) and issubclass(item, keras.layers.Layer)
        ):
            raise TypeError(
                "Expected layers= items to be layer names or keras.layers.Layer classes (or "
                f"layers= to be a predicate fn(layer) -> bool). Received: item {item!r} in "
                f"layers={layers!r}"
            )
    wanted_names = {i for i in items if isinstance(i, str)}
    wanted_types = tuple(i for i in items if isinstance(i, type))
    return lambda layer: layer.name in wanted_names or isinstance(layer, wanted_types)
