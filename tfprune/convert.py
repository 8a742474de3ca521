"""`prunable` and `strip`: clone a model through the registry, stock <-> masked layers."""

import inspect

import keras
from keras import ops

from tfprune import registry
from tfprune.estimator import normalize_granularity
from tfprune.layers.base import MaskedMixin, masked_layers


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
            neurons/filters/gate columns, which `compact` then removes) or a block `(1, n)` along
            the input dimension (`(1, 4)` runs TFLite's sparse float kernel). A dict
            `{layer_name: granularity}` sets it per layer (unlisted layers use `"weight"`).

    Returns:
        A new `keras.Model`; the original is left untouched.

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: a name in `layers` or `granularity` is not in the model, a granularity is
            invalid, or nothing in the model can be pruned.

    >>> model = tfprune.prunable(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    """
    check_model(model, "prunable")
    select = _selector(model, layers)
    granularity_of = _granularities(model, granularity)

    def clone(layer):
        entry = registry.for_stock(layer)
        if entry is None or not select(layer):
            return copy_layer(layer)
        options = {"granularity": granularity_of(layer)}
        if entry.to_masked is not None:
            return entry.to_masked(layer, options)
        return rebuild(layer, entry.masked, {**layer.get_config(), **options}, entry.weights)

    new_model = clone_layers(model, clone)
    if not masked_layers(new_model):
        supported = sorted({e.stock.__name__ for e in registry.entries()})
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


def effective_weight(layer, path):
    """The value at `path` as the layer computes with it: `W * mask` for masked kernels."""
    owner_path, _, name = path.rpartition(".")
    owner = registry.resolve(layer, owner_path) if owner_path else layer
    if isinstance(owner, MaskedMixin) and name in owner.MASKED:
        return ops.convert_to_numpy(owner.masked_kernel(name))
    return ops.convert_to_numpy(getattr(owner, name))


def rebuild(layer, cls, config, weights, effective=False):
    """A `cls` layer from `config`, built like `layer`, carrying `layer`'s `weights`."""
    new = cls.from_config(config)
    build_like(new, layer)
    for path in weights:
        target = registry.resolve(new, path)
        if target is None:
            continue
        value = effective_weight(layer, path) if effective else registry.resolve(layer, path)
        target.assign(value)
    return new


def copy_layer(layer):
    """A fresh copy of `layer` with the same weights (clone_model would re-initialise them)."""
    new = layer.__class__.from_config(layer.get_config())
    build_like(new, layer)
    new.set_weights(layer.get_weights())
    return new


def build_like(new, layer):
    """Builds `new` with `layer`'s build config, so weights can be assigned before cloning."""
    build_config = layer.get_build_config()
    if layer.built and build_config:
        new.build_from_config(build_config)


def clone_layers(model, clone_function):
    """`keras.models.clone_model`, recursive into nested models, with a clear subclass error.

    Registry hooks (`Entry.to_masked` / `to_stock`) build their layers with `rebuild`,
    `copy_layer` and `build_like`; this clones the whole model with such a function.
    """
    try:
        return keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    except ValueError as error:
        if "only supported for Sequential models or Functional models" in str(error):
            raise ValueError(
                f"Model '{model.name}' is a subclassed model, which cannot be cloned layer by layer. "
                "Build it as a Sequential or functional model, or use tfprune.layers directly."
            ) from error
        raise


def check_model(model, verb):
    """Raises a TypeError naming `tfprune.<verb>` unless `model` is a Keras model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"tfprune.{verb} expects a keras.Model (Sequential or functional). "
            f"Received: {type(model).__name__}. To prune a single layer, use the classes in "
            "tfprune.layers directly (e.g. tfprune.layers.MaskedDense)."
        )


def _granularities(model, granularity):
    """Turns the `granularity=` argument into `fn(layer) -> granularity`, validating it."""
    if not isinstance(granularity, dict):
        normalize_granularity(granularity)
        return lambda layer: granularity
    names = {layer.name for layer in model._flatten_layers(include_self=False)}
    for name, value in granularity.items():
        if name not in names:
            raise ValueError(
                f"granularity names a layer '{name}' that is not in model '{model.name}'. "
                f"Layer names: {', '.join(sorted(names))}."
            )
        normalize_granularity(value)
    return lambda layer: granularity.get(layer.name, "weight")


def _selector(model, layers):
    """Turns the `layers=` argument into a predicate, checking every name exists."""
    if layers is None:
        return lambda layer: True
    if callable(layers) and not inspect.isclass(layers):
        return layers
    items = [layers] if isinstance(layers, (str, type)) else list(layers)
    names = {layer.name for layer in model._flatten_layers(include_self=False)}
    for item in items:
        if isinstance(item, str) and item not in names:
            raise ValueError(
                f"No layer named '{item}' in model '{model.name}'. "
                f"Layer names: {', '.join(sorted(names))}."
            )
        if not isinstance(item, (str, type)):
            raise TypeError(
                "layers= takes layer names, layer classes or a predicate. "
                f"Received an item of type {type(item).__name__}: {item!r}"
            )
    wanted_names = {i for i in items if isinstance(i, str)}
    wanted_types = tuple(i for i in items if isinstance(i, type))
    return lambda layer: layer.name in wanted_names or isinstance(layer, wanted_types)

