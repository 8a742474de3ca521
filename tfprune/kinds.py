"""Every layer kind tfprune knows, registered in one place (`tfprune.registry` holds the table).

Masked kinds: Dense, EinsumDense, Embedding, Conv1D/2D/3D, Conv1D/2D/3DTranspose,
SeparableConv1D/2D, DepthwiseConv2D, MultiHeadAttention, LSTM, GRU, SimpleRNN (the recurrent ones
bare or in Bidirectional, whose LSTM hidden units `compact` removes too), and any of them inside
TimeDistributed. Structural kinds `compact` removes units of or sees through:
HiddenStatePrunedLSTM and HiddenStatePrunedGRU (what `strip` leaves of a hidden-state-pruned LSTM
or GRU), activations, dropout and noise, pooling,
BatchNormalization, merges, Concatenate, Flatten, Reshape and depthwise convolutions. Imported
by `tfprune/__init__.py`, so the table is full whenever tfprune is.
"""

import keras
from keras import layers

from tfprune import cloning, convert, registry
from tfprune.layers import (
    HiddenStatePrunedGRU,
    HiddenStatePrunedLSTM,
    MaskedConv1D,
    MaskedConv1DTranspose,
    MaskedConv2D,
    MaskedConv2DTranspose,
    MaskedConv3D,
    MaskedConv3DTranspose,
    MaskedDense,
    MaskedDepthwiseConv2D,
    MaskedEinsumDense,
    MaskedEmbedding,
    MaskedGRU,
    MaskedLSTM,
    MaskedMultiHeadAttention,
    MaskedSeparableConv1D,
    MaskedSeparableConv2D,
    MaskedSimpleRNN,
)
from tfprune.attention_surgery import HeadSurgery
from tfprune.lstm_surgery import BidirectionalSurgery, LSTMSurgery
from tfprune.recurrent_surgery import RecurrentSurgery
from tfprune.registry import register
from tfprune.surgery import (
    ActivationOp,
    BatchNormOp,
    ZeroPaddingOp,
    ChannelOp,
    ConcatOp,
    ConvSurgery,
    ConvTransposeSurgery,
    DepthwiseOp,
    MergeOp,
    ReshapeOp,
    UnitSurgery,
)

RNN_WEIGHTS = ("cell.kernel", "cell.recurrent_kernel", "cell.bias")


def recurrent_to_stock(stock, hidden_state_pruned):
    """strip for a masked LSTM or GRU: a `stock` layer, or `hidden_state_pruned` (which keeps
    the chunk threshold) when the hidden state is pruned."""

    def to_stock(layer):
        config = layer.get_config()
        for key in layer.masking_config():
            config.pop(key)
        if layer.hidden_state == "off":
            return cloning.rebuild(layer, stock, config, RNN_WEIGHTS, effective=True)
        threshold = float(keras.ops.convert_to_numpy(layer.cell.hidden_threshold))
        config.update(chunk=layer.chunk, hidden_threshold=threshold)
        return cloning.rebuild(layer, hidden_state_pruned, config, RNN_WEIGHTS, effective=True)

    return to_stock


def _bidirectional_to_masked(layer, options):
    entry = registry.for_stock(layer.forward_layer)
    if entry is None or entry.masked is None:
        return cloning.copy_layer(layer)
    return cloning.rewrap(layer, lambda half: convert.to_masked(half, options))


def _bidirectional_to_stock(layer):
    if registry.for_masked(layer.forward_layer) is None:
        return cloning.copy_layer(layer)
    return cloning.rewrap(layer, convert.to_stock)


def _wrapper_to_masked(layer, options):
    entry = registry.for_stock(layer.layer)
    if entry is None or entry.masked is None:
        return cloning.copy_layer(layer)
    return cloning.rewrap_inner(layer, lambda inner: convert.to_masked(inner, options))


def _wrapper_to_stock(layer):
    if registry.for_masked(layer.layer) is None:
        return cloning.copy_layer(layer)
    return cloning.rewrap_inner(layer, convert.to_stock)


def _attention_weights(layer):
    """Weight paths of a MultiHeadAttention: its projections' kernels and biases (gate too)."""
    names = ["_query_dense", "_key_dense", "_value_dense", "_output_dense"]
    names += ["_gate_dense"] if getattr(layer, "_use_gate", False) else []
    return [f"{name}.{weight}" for name in names for weight in ("kernel", "bias")]


def _attention_to_masked(layer, options):
    config = {**layer.get_config(), **options}
    return cloning.rebuild(layer, MaskedMultiHeadAttention, config, _attention_weights(layer))


def _attention_to_stock(layer):
    config = layer.get_config()
    for key in layer.masking_config():
        config.pop(key)
    weights = _attention_weights(layer)
    return cloning.rebuild(layer, layers.MultiHeadAttention, config, weights, effective=True)


# Masked kinds ------------------------------------------------------------------------------------
register(layers.Dense, MaskedDense, units=UnitSurgery())
register(layers.Conv1D, MaskedConv1D, units=ConvSurgery())
register(layers.Conv2D, MaskedConv2D, units=ConvSurgery())
register(layers.Conv3D, MaskedConv3D, units=ConvSurgery())
register(layers.Conv1DTranspose, MaskedConv1DTranspose, units=ConvTransposeSurgery())
register(layers.Conv2DTranspose, MaskedConv2DTranspose, units=ConvTransposeSurgery())
register(layers.Conv3DTranspose, MaskedConv3DTranspose, units=ConvTransposeSurgery())
_SEPARABLE = ("depthwise_kernel", "pointwise_kernel", "bias")
register(layers.SeparableConv1D, MaskedSeparableConv1D, _SEPARABLE)
register(layers.SeparableConv2D, MaskedSeparableConv2D, _SEPARABLE)
register(layers.Embedding, MaskedEmbedding, ("embeddings",))
register(layers.EinsumDense, MaskedEinsumDense)
register(
    layers.MultiHeadAttention,
    MaskedMultiHeadAttention,
    (),
    to_masked=_attention_to_masked,
    to_stock=_attention_to_stock,
    inside=HeadSurgery(),
)
register(
    layers.GRU,
    MaskedGRU,
    RNN_WEIGHTS,
    to_stock=recurrent_to_stock(layers.GRU, HiddenStatePrunedGRU),
    units=RecurrentSurgery(3, 2),
)
register(layers.SimpleRNN, MaskedSimpleRNN, RNN_WEIGHTS, units=RecurrentSurgery(1, 0))
register(layers.DepthwiseConv2D, MaskedDepthwiseConv2D, channels=DepthwiseOp())
register(
    layers.LSTM,
    MaskedLSTM,
    RNN_WEIGHTS,
    to_stock=recurrent_to_stock(layers.LSTM, HiddenStatePrunedLSTM),
    units=LSTMSurgery(),
)
register(
    layers.Bidirectional,
    layers.Bidirectional,
    (),
    to_masked=_bidirectional_to_masked,
    to_stock=_bidirectional_to_stock,
    units=BidirectionalSurgery(),
)
register(
    layers.TimeDistributed,
    layers.TimeDistributed,
    (),
    to_masked=_wrapper_to_masked,
    to_stock=_wrapper_to_stock,
)

# Structural kinds ----------------------------------------------------------------------------
register(HiddenStatePrunedLSTM, units=LSTMSurgery())
register(layers.DepthwiseConv1D, channels=DepthwiseOp())
for _kind in (
    layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D, layers.GaussianNoise,
    layers.GaussianDropout, layers.AlphaDropout, layers.Identity,
    layers.MaxPooling1D, layers.MaxPooling2D, layers.AveragePooling1D, layers.AveragePooling2D,
    layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D, layers.GlobalAveragePooling1D,
    layers.GlobalAveragePooling2D, layers.Cropping1D, layers.Cropping2D, layers.Cropping3D,
    layers.UpSampling1D, layers.UpSampling2D, layers.UpSampling3D,
):  # fmt: skip
    register(_kind, channels=ChannelOp())
for _kind in (layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D):
    register(_kind, channels=ZeroPaddingOp())
for _kind in (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU):
    register(_kind, channels=ActivationOp())
register(layers.Flatten, channels=ReshapeOp())
register(layers.Reshape, channels=ReshapeOp())
register(layers.BatchNormalization, channels=BatchNormOp())
register(layers.Add, channels=MergeOp(lambda x: x.sum(0)))
register(layers.Subtract, channels=MergeOp(lambda x: x[0] - x[1]))
register(layers.Multiply, channels=MergeOp(lambda x: x.prod(0)))
register(layers.Average, channels=MergeOp(lambda x: x.mean(0)))
register(layers.Maximum, channels=MergeOp(lambda x: x.max(0)))
register(layers.Minimum, channels=MergeOp(lambda x: x.min(0)))
register(layers.Concatenate, channels=ConcatOp())
