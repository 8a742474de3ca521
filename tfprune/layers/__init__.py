"""Masked Keras layers for Dynamic Sparse Training."""

from tfprune.layers.base import MaskedMixin, masked_layers
from tfprune.layers.conv import MaskedConv1D, MaskedConv2D, MaskedDepthwiseConv2D
from tfprune.layers.dense import MaskedDense

__all__ = [
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedMixin",
    "masked_layers",
]
