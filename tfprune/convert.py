"""`prunable` and `strip`: clone a model through the registry, stock <-> masked layers."""

import inspect

import keras

from tfprune import registry
from tfprune.cloning import check_model, clone_layers, copy_layer, rebuild
from tfprune.estimator import normalize_granularity
from tfprune.layers.base import masked_layers


def prunable(model, layers=None, granularity="weight"):
    """Returns a copy of `model` whose supported layers are masked DST layers with the same weights.

    Thresholds start at 0, so the new model computes exactly what the old one did until it is
    trained with `tfprune.DynamicPrune`. Layers that are not selected or not supported are copied
    unchanged (with their weights). Sequential, functional and nested models are supported.

    Args:
        model: a Sequential or functional `keras.Model`.
        layers: which layers to convert: None (all supported), or a list of layer names and/or
            layer classes, or a predicate `fn(layer) -> bool`.
        granularity: what one threshold decision covers: `"weight"` (the paper), `"unit"` (whole
            neurons, filters or LSTM hidden units, which `compact` then removes) or a block `(1, n)` along
            the input dimension (`(1, 4)` runs TFLite's sparse float kernel). A dict
            `{layer_name: granularity}` sets it per layer (unlisted layers use `"weight"`).

    Returns:
        A new `keras.Model`; the original is left untouched.

    Raises:
        TypeError: `model` is not a Keras model, or `layers` holds something other than layer
            names and layer classes.
        ValueError: a name in `layers` or `granularity` is not in the model, a granularity is
            invalid, a block's n does not divide a layer's inputs, or nothing can be pruned.

    >>> model = tfprune.prunable(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    """
    check_model(model, "prunable")
    select = _selector(model, layers)
    granularity_of = _granularities(model, granularity)

    def clone(layer):
        entry = registry.for_stock(layer)
        if entry is None or entry.masked is None or not select(layer):
            return copy_layer(layer)
        options = {"granularity": granularity_of(layer)}
        if entry.to_masked is not None:
            return entry.to_masked(layer, options)
        return rebuild(layer, entry.masked, {**layer.get_config(), **options}, entry.weights)

    new_model = clone_layers(model, clone)
    if not masked_layers(new_model):
        supported = sorted({e.stock.__name__ for e in registry.prunable_entries()})
        raise ValueError(
            f"Model '{model.name}' has no layer that tfprune can prune with layers={layers!r}. "
            f"Supported layer types: {', '.join(supported)}. Add such layers, or register your own "
            "with `tfprune.registry.register`."
        )
    return new_model


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

    def clone(layer):
        entry = registry.for_masked(layer)
        if entry is None:
            return copy_layer(layer)
        if entry.to_stock is not None:
            return entry.to_stock(layer)
        config = layer.get_config()
        for key in layer.masking_config():
            config.pop(key)
        return rebuild(layer, entry.stock, config, entry.weights, effective=True)

    return clone_layers(model, clone)


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
