"""Copying layers and models with their weights: the toolkit `prunable`, `strip`, the registry's
hooks and the LSTM pipeline build their models with.
"""

import os
import reprlib

import keras
import numpy as np
from keras import ops

from tfprune import registry
from tfprune.layers.base import MaskedMixin


def effective_weight(layer, path):
    """The value at `path` as the layer computes with it: `W * mask` for masked kernels."""
    owner_path, _, name = path.rpartition(".")
    owner = registry.resolve(layer, owner_path) if owner_path else layer
    if isinstance(owner, MaskedMixin):
        return ops.convert_to_numpy(owner.effective(name))
    return ops.convert_to_numpy(getattr(owner, name))


def rebuild(layer, cls, config, weights, effective=False):
    """A `cls` layer from `config`, built like `layer`, carrying `layer`'s `weights`."""
    new = cls.from_config(config)
    build_like(new, layer)
    for path in weights:
        target = registry.resolve(new, path)
        if target is None:
            continue
        # A copy, never the source's array: JAX's fit donates its buffers, which would delete
        # the other model's weights if the two variables shared one.
        source = effective_weight(layer, path) if effective else registry.resolve(layer, path)
        target.assign(np.array(source))
    return new


def copy_layer(layer, cls=None, config=None):
    """A fresh copy of `layer` with the same weights (clone_model would re-initialise them).

    `cls` and `config` (default: the layer's own) make a twin with the same weight layout.
    """
    new = (cls or type(layer)).from_config(layer.get_config() if config is None else config)
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
        if isinstance(model, (str, os.PathLike)):
            fix = "Load the file first: model = keras.saving.load_model(path)."
        else:
            fix = (
                "To prune a single layer, use the classes in tfprune.layers directly "
                "(e.g. tfprune.layers.MaskedDense)."
            )
        raise TypeError(
            f"tfprune.{verb} expects a keras.Model (Sequential or functional). "
            f"Received: model={reprlib.repr(model)} of type {type(model).__name__}. {fix}"
        )


def rewrap(bidirectional, convert_half):
    """A Bidirectional around `convert_half(forward)` and `convert_half(backward)`."""
    halves = [convert_half(half) for half in halves_of(bidirectional)]
    config = bidirectional.get_config()
    del config["layer"], config["backward_layer"]
    fresh = [type(half).from_config(half.get_config()) for half in halves]
    new = keras.layers.Bidirectional(fresh[0], backward_layer=fresh[1], **config)
    build_like(new, bidirectional)
    for target, source in zip(halves_of(new), halves):
        target.set_weights(source.get_weights())
    return new


def rewrap_inner(wrapper, convert_inner):
    """A wrapper of the same kind (TimeDistributed, ...) around `convert_inner(wrapper.layer)`."""
    inner = convert_inner(wrapper.layer)
    config = wrapper.get_config()
    del config["layer"]
    fresh = type(inner).from_config(inner.get_config())
    new = type(wrapper)(fresh, **config)
    build_like(new, wrapper)
    fresh.set_weights(inner.get_weights())
    return new


def halves_of(bidirectional):
    return [bidirectional.forward_layer, bidirectional.backward_layer]
