"""Every layer kind tfprune knows, registered in one place (`tfprune.registry` holds the table).

Masked kinds: Dense, Conv1D/2D, DepthwiseConv2D, LSTM (bare or in Bidirectional, whose hidden
units `compact` removes too). Structural kinds `compact` removes units of or sees through: Conv3D, HiddenStatePrunedLSTM (what `strip`
leaves of a hidden-state-pruned LSTM), activations, dropout and noise, pooling,
BatchNormalization, merges, Concatenate, Flatten, Reshape and depthwise convolutions. Imported
by `tfprune/__init__.py`, so the table is full whenever tfprune is.
"""

import keras
from keras import layers

from tfprune import cloning
from tfprune.layers import (
    HiddenStatePrunedLSTM,
    MaskedConv1D,
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    MaskedLSTM,
)
from tfprune.lstm_surgery import BidirectionalSurgery, LSTMSurgery
from tfprune.registry import register
from tfprune.surgery import (
    ActivationOp,
    BatchNormOp,
    ChannelOp,
    ConcatOp,
    ConvSurgery,
    DepthwiseOp,
    MergeOp,
    ReshapeOp,
    UnitSurgery,
)

LSTM_WEIGHTS = ("cell.kernel", "cell.recurrent_kernel", "cell.bias")


def lstm_to_stock(layer):
    """strip: a stock LSTM, or a HiddenStatePrunedLSTM when the hidden state is pruned."""
    config = layer.get_config()
    for key in layer.masking_config():
        config.pop(key)
    if layer.hidden_state == "off":
        return cloning.rebuild(layer, layers.LSTM, config, LSTM_WEIGHTS, effective=True)
    threshold = float(keras.ops.convert_to_numpy(layer.cell.hidden_threshold))
    config.update(chunk=layer.chunk, hidden_threshold=threshold)
    return cloning.rebuild(layer, HiddenStatePrunedLSTM, config, LSTM_WEIGHTS, effective=True)


def _bidirectional_to_masked(layer, options):
    if type(layer.forward_layer) is not layers.LSTM:
        return cloning.copy_layer(layer)

    def to_masked(half):
        config = {**half.get_config(), **options}
        return cloning.rebuild(half, MaskedLSTM, config, LSTM_WEIGHTS)

    return cloning.rewrap(layer, to_masked)


def _bidirectional_to_stock(layer):
    if type(layer.forward_layer) is not MaskedLSTM:
        return cloning.copy_layer(layer)
    return cloning.rewrap(layer, lstm_to_stock)


# Masked kinds ------------------------------------------------------------------------------------
register(layers.Dense, MaskedDense, units=UnitSurgery())
register(layers.Conv1D, MaskedConv1D, units=ConvSurgery())
register(layers.Conv2D, MaskedConv2D, units=ConvSurgery())
register(layers.DepthwiseConv2D, MaskedDepthwiseConv2D, channels=DepthwiseOp())
register(layers.LSTM, MaskedLSTM, LSTM_WEIGHTS, to_stock=lstm_to_stock, units=LSTMSurgery())
register(
    layers.Bidirectional,
    layers.Bidirectional,
    (),
    to_masked=_bidirectional_to_masked,
    to_stock=_bidirectional_to_stock,
    units=BidirectionalSurgery(),
)

# Structural kinds ----------------------------------------------------------------------------
register(layers.Conv3D, units=ConvSurgery())
register(HiddenStatePrunedLSTM, units=LSTMSurgery())
register(layers.DepthwiseConv1D, channels=DepthwiseOp())
for _kind in (
    layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D, layers.GaussianNoise,
    layers.GaussianDropout, layers.AlphaDropout, layers.Identity,
    layers.MaxPooling1D, layers.MaxPooling2D, layers.AveragePooling1D, layers.AveragePooling2D,
    layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D, layers.GlobalAveragePooling1D,
    layers.GlobalAveragePooling2D,
):  # fmt: skip
    register(_kind, channels=ChannelOp())
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
