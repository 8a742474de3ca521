"""Masked convolutions: a DST threshold per filter (per channel for depthwise), 1D to 3D."""

import keras
from keras import ops

from tfprune.layers.base import MaskedMixin

_DOC_ARGS = """
    Takes every argument of its Keras twin plus `granularity`: `"weight"` (default, the paper),
    `"unit"` (whole filters) or a block `(1, n)` along the input-channel axis.
"""


class _MaskedConv(MaskedMixin):
    """Masks the kernel inside `convolution_op`, which Keras' base convolution calls."""

    def __init__(self, *args, granularity="weight", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_granularity(granularity)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.masked_kernel(kernel=kernel))

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedConv1D(_MaskedConv, keras.layers.Conv1D):
    __doc__ = "`keras.layers.Conv1D` with a trainable DST threshold per filter.\n" + _DOC_ARGS


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedConv2D(_MaskedConv, keras.layers.Conv2D):
    __doc__ = "`keras.layers.Conv2D` with a trainable DST threshold per filter.\n" + _DOC_ARGS


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedConv3D(_MaskedConv, keras.layers.Conv3D):
    __doc__ = "`keras.layers.Conv3D` with a trainable DST threshold per filter.\n" + _DOC_ARGS


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedDepthwiseConv2D(MaskedMixin, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with a trainable DST threshold per output channel.

    Takes every argument of `keras.layers.DepthwiseConv2D` plus `granularity` (`"weight"` or
    `"unit"`; blocks are not offered because TFLite has no block-sparse depthwise kernel).
    """

    def __init__(self, *args, granularity="weight", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_granularity(granularity)
        if isinstance(self.granularity, tuple):
            raise ValueError(
                f"MaskedDepthwiseConv2D '{self.name}' supports granularity 'weight' or 'unit' "
                "(TFLite has no block-sparse depthwise kernel); with tfprune.prunable, give "
                f"blocks per layer in a dict. Received: granularity={granularity!r}"
            )

    def threshold_shape(self, kernel_shape):
        """One threshold per output channel: (input channels, depth multiplier)."""
        return tuple(kernel_shape[-2:])

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def call(self, inputs):
        outputs = ops.depthwise_conv(
            inputs,
            self.masked_kernel(),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            channel_axis = -1 if self.data_format == "channels_last" else 1
            shape = [1] * len(outputs.shape)
            shape[channel_axis] = -1
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}
