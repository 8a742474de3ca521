"""Masked Keras layers for Dynamic Sparse Training."""

from tfprune.layers.base import MaskedMixin, masked_layers
from tfprune.layers.conv import MaskedConv1D, MaskedConv2D, MaskedDepthwiseConv2D
from tfprune.layers.dense import MaskedDense
from tfprune.layers.hidden_state import HiddenStatePrunedLSTM, HiddenStatePrunedLSTMCell
from tfprune.layers.lstm import MaskedLSTM, MaskedLSTMCell

__all__ = [
    "HiddenStatePrunedLSTM",
    "HiddenStatePrunedLSTMCell",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedLSTM",
    "MaskedLSTMCell",
    "MaskedMixin",
    "masked_layers",
]
