"""The one table of layer kinds: what `prunable`, `strip`, `compact` and the export know of each.

An entry is data about one Keras layer class: its masked twin and the weights that move between
them (for `prunable` and `strip`), and its structural rule for `compact`: either a
`surgery.UnitSurgery` (the layer owns its output units, which can be removed) or a
`surgery.ChannelOp` (the layer carries its input channels through). The built-in kinds are all
registered in `tfprune.kinds`; a user adds a kind with one `register` call.

>>> tfprune.registry.register(MyDense, MaskedMyDense, units=tfprune.surgery.UnitSurgery())
"""

import dataclasses
from typing import Callable, Optional

import keras

from tfprune.surgery import ChannelOp, UnitSurgery


@dataclasses.dataclass(frozen=True)
class Entry:
    """Everything tfprune knows about one layer class.

    Attributes:
        stock: the Keras layer class (matched exactly: a subclass may override `call`).
        masked: its masked twin (a subclass of `stock` with `MaskedMixin`), or None when the
            kind is only structural (BatchNormalization, pooling, ...).
        weights: attribute paths (`"kernel"`, `"cell.kernel"`) that move between the twins;
            masked kernels move as `W * mask`.
        to_masked: optional `fn(stock_layer, options) -> layer` for kinds that need more than
            "same config, same weights" (wrappers such as Bidirectional); `options` holds the
            masked layer's extra arguments (`{"granularity": ...}`).
        to_stock: optional `fn(masked_layer) -> layer`, the inverse used by `strip`.
        units: the `UnitSurgery` that removes the layer's dead output units, or None.
        channels: the `ChannelOp` that carries removed channels through the layer, or None.
        inside: a rule with `plan(layer) -> (config, weights, units before, removed) or None`
            for units that go from inside the layer, its inputs and outputs unchanged (attention heads), or None.
    """

    stock: type
    masked: Optional[type] = None
    weights: tuple = ()
    to_masked: Optional[Callable] = None
    to_stock: Optional[Callable] = None
    units: Optional[UnitSurgery] = None
    channels: Optional[ChannelOp] = None
    inside: Optional[object] = None


_ENTRIES = {}


def register(
    stock,
    masked=None,
    weights=("kernel", "bias"),
    *,
    to_masked=None,
    to_stock=None,
    units=None,
    channels=None,
    inside=None,
):
    """Adds (or replaces) the entry for `stock`, so every tfprune verb handles it.

    Args:
        stock: a Keras layer class.
        masked: its masked twin, or None for a kind `compact` only needs to see through.
        weights: attribute paths moved between the twins.
        to_masked: optional custom converter, see `Entry`.
        to_stock: optional custom inverse converter, see `Entry`.
        units: a `tfprune.surgery.UnitSurgery` if `compact` may remove the layer's units.
        channels: a `tfprune.surgery.ChannelOp` if removed channels pass through the layer.
        inside: a rule removing units inside the layer (`tfprune.attention_surgery.HeadSurgery`).

    Returns:
        The new `Entry`.

    Raises:
        TypeError: `stock` or `masked` is not a Keras layer class, or a rule has the wrong type.
        ValueError: both `units` and `channels` are given.

    >>> register(keras.layers.Dense, MaskedDense, units=UnitSurgery())
    """
    for name, cls in (("stock", stock), ("masked", masked)):
        if cls is not None and not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
            raise TypeError(f"Expected a keras.layers.Layer subclass. Received: {name}={cls!r}")
    for name, rule, base in (("units", units, UnitSurgery), ("channels", channels, ChannelOp)):
        if rule is not None and not isinstance(rule, base):
            raise TypeError(f"Expected a {base.__name__} instance. Received: {name}={rule!r}")
    if units is not None and channels is not None:
        raise ValueError(
            f"A layer either owns its units or carries its channels, not both. Received both "
            f"for {stock.__name__}: units={units!r}, channels={channels!r}"
        )
    entry = Entry(
        stock, masked, tuple(weights) if masked else (), to_masked, to_stock, units, channels, inside
    )
    _ENTRIES[stock] = entry
    return entry


def for_stock(layer):
    """The entry whose stock class is exactly `type(layer)`, or None."""
    return _ENTRIES.get(type(layer))


def for_masked(layer):
    """The entry whose masked class is exactly `type(layer)`, or None."""
    return next((e for e in _ENTRIES.values() if e.masked is type(layer)), None)


def prunable_entries():
    """The entries `prunable` converts (those with a masked twin)."""
    return tuple(e for e in _ENTRIES.values() if e.masked is not None)


def entries():
    """Every entry, in registration order."""
    return tuple(_ENTRIES.values())


def resolve(obj, path):
    """`resolve(layer, "cell.kernel")` follows the dotted attribute path."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
