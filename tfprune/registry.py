"""The one table of stock Keras layers and their masked twins.

`prunable`, `strip`, `compact` and the export step read it; a new layer kind is one `register`
call. Each entry names the weights (attribute paths such as `"kernel"` or `"cell.kernel"`) that
move between the twins; masked kernels move as `W * mask`.
"""

import dataclasses
from typing import Callable, Optional

import keras

from tfprune.layers import (
    MaskedConv1D,
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """How one stock layer class and its masked twin exchange weights.

    Attributes:
        stock: the Keras layer class.
        masked: the tfprune class that subclasses it.
        weights: attribute paths of the weights both share.
        to_masked: optional `fn(stock_layer, options) -> masked_layer` for layers that need more
            than "same config, same weights" (wrappers such as Bidirectional); `options` holds
            the masked layer's extra arguments (`{"granularity": ...}`).
        to_stock: optional `fn(masked_layer) -> layer`, the inverse used by `strip`.
    """

    stock: type
    masked: type
    weights: tuple
    to_masked: Optional[Callable] = None
    to_stock: Optional[Callable] = None


_ENTRIES = []


def register(stock, masked, weights=("kernel", "bias"), to_masked=None, to_stock=None):
    """Adds (or replaces) the entry for `stock`, so `prunable` and `strip` handle it.

    Args:
        stock: a Keras layer class, matched exactly (subclasses are not converted, since they
            may override `call`).
        masked: its masked twin.
        weights: attribute paths moved between the two.
        to_masked: optional custom converter, see `Entry`.
        to_stock: optional custom inverse converter, see `Entry`.

    Returns:
        The new `Entry`.
    """
    entry = Entry(stock, masked, tuple(weights), to_masked, to_stock)
    _ENTRIES[:] = [e for e in _ENTRIES if e.stock is not stock] + [entry]
    return entry


def for_stock(layer):
    """The entry whose stock class is exactly `type(layer)`, or None."""
    return next((e for e in _ENTRIES if type(layer) is e.stock), None)


def for_masked(layer):
    """The entry whose masked class is exactly `type(layer)`, or None."""
    return next((e for e in _ENTRIES if type(layer) is e.masked), None)


def entries():
    return tuple(_ENTRIES)


def resolve(obj, path):
    """`resolve(layer, "cell.kernel")` follows the dotted attribute path."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


register(keras.layers.Dense, MaskedDense)
register(keras.layers.Conv1D, MaskedConv1D)
register(keras.layers.Conv2D, MaskedConv2D)
register(keras.layers.DepthwiseConv2D, MaskedDepthwiseConv2D)
