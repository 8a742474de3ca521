"""Masked Keras layers for Dynamic Sparse Training."""

from tfprune.layers.base import MaskedMixin, masked_layers
from tfprune.layers.conv import MaskedConv1D, MaskedConv2D, MaskedDepthwiseConv2D
from tfprune.layers.dense import MaskedDense
from tfprune.layers.hidden_state import HiddenStatePruning, hidden_statistics_off
from tfprune.layers.lstm import (
    HiddenStatePrunedLSTM,
    HiddenStatePrunedLSTMCell,
    MaskedLSTM,
    MaskedLSTMCell,
)

__all__ = [
    "HiddenStatePrunedLSTM",
    "HiddenStatePrunedLSTMCell",
    "HiddenStatePruning",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedLSTM",
    "MaskedLSTMCell",
    "MaskedMixin",
    "hidden_statistics_off",
    "masked_layers",
]
