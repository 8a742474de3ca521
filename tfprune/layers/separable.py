"""Masked separable convolutions: both kernels, a threshold per depthwise channel and per filter."""

import keras
from keras import ops

from tfprune.layers.conv import MaskedConvolution


class _MaskedSeparableConv(MaskedConvolution):
    """`call` of Keras' base separable convolution, on the two masked kernels.

    The depthwise kernel `(*spatial, inputs, multiplier)` has one threshold per depthwise
    channel, the pointwise kernel `(*1, inputs * multiplier, filters)` one per filter.
    """

    MASKED = {"depthwise_kernel": "depthwise_threshold", "pointwise_kernel": "pointwise_threshold"}
    NO_BLOCKS = "TFLite has no block-sparse depthwise kernel"

    def unit_axes(self, kernel_name, kernel_shape):
        rank = len(kernel_shape)
        return (rank - 2, rank - 1) if kernel_name == "depthwise_kernel" else (rank - 1,)

    def call(self, inputs):
        return self.finish(
            ops.separable_conv(
                inputs,
                self.masked_kernel("depthwise_kernel"),
                self.masked_kernel("pointwise_kernel"),
                strides=self.strides,
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )
        )


_DOC = """`keras.layers.{0}` with DST thresholds on both kernels.

    Takes every argument of `keras.layers.{0}` plus `granularity`: `"weight"` (default) or
    `"unit"` (whole depthwise channels and whole filters).
"""


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedSeparableConv1D(_MaskedSeparableConv, keras.layers.SeparableConv1D):
    __doc__ = _DOC.format("SeparableConv1D")


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedSeparableConv2D(_MaskedSeparableConv, keras.layers.SeparableConv2D):
    __doc__ = _DOC.format("SeparableConv2D")
