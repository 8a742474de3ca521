"""Masked Keras layers for Dynamic Sparse Training."""

from tfprune.layers.attention import MaskedMultiHeadAttention
from tfprune.layers.base import MaskedMixin, masked_layers
from tfprune.layers.conv import MaskedConv1D, MaskedConv2D, MaskedConv3D, MaskedDepthwiseConv2D
from tfprune.layers.conv_transpose import (
    MaskedConv1DTranspose,
    MaskedConv2DTranspose,
    MaskedConv3DTranspose,
)
from tfprune.layers.dense import MaskedDense
from tfprune.layers.einsum import MaskedEinsumDense
from tfprune.layers.embedding import MaskedEmbedding
from tfprune.layers.hidden_state import HiddenStatePruning, hidden_statistics_off
from tfprune.layers.lstm import (
    HiddenStatePrunedLSTM,
    HiddenStatePrunedLSTMCell,
    MaskedLSTM,
    MaskedLSTMCell,
)
from tfprune.layers.recurrent import (
    HiddenStatePrunedGRU,
    HiddenStatePrunedGRUCell,
    MaskedGRU,
    MaskedGRUCell,
    MaskedSimpleRNN,
    MaskedSimpleRNNCell,
)
from tfprune.layers.separable import MaskedSeparableConv1D, MaskedSeparableConv2D

__all__ = [
    "HiddenStatePrunedGRU",
    "HiddenStatePrunedGRUCell",
    "HiddenStatePrunedLSTM",
    "HiddenStatePrunedLSTMCell",
    "HiddenStatePruning",
    "MaskedConv1D",
    "MaskedConv1DTranspose",
    "MaskedConv2D",
    "MaskedConv2DTranspose",
    "MaskedConv3D",
    "MaskedConv3DTranspose",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedEinsumDense",
    "MaskedEmbedding",
    "MaskedGRU",
    "MaskedGRUCell",
    "MaskedLSTM",
    "MaskedLSTMCell",
    "MaskedMixin",
    "MaskedMultiHeadAttention",
    "MaskedSeparableConv1D",
    "MaskedSeparableConv2D",
    "MaskedSimpleRNN",
    "MaskedSimpleRNNCell",
    "hidden_statistics_off",
    "masked_layers",
]
