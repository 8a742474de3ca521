"""Masked separable convolutions: both kernels, a threshold per depthwise channel and per filter."""

import keras
from keras import ops

from tfprune.layers.base import MaskedMixin


class _MaskedSeparableConv(MaskedMixin):
    """`call` of Keras' base separable convolution, on the two masked kernels.

    The depthwise kernel `(*spatial, inputs, multiplier)` has one threshold per depthwise
    channel, the pointwise kernel `(*1, inputs * multiplier, filters)` one per filter.
    """

    MASKED = {"depthwise_kernel": "depthwise_threshold", "pointwise_kernel": "pointwise_threshold"}

    def __init__(self, *args, granularity="weight", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_granularity(granularity)
        if isinstance(self.granularity, tuple):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' supports granularity 'weight' or 'unit' "
                "(TFLite has no block-sparse depthwise kernel). "
                f"Received: granularity={granularity!r}"
            )

    def unit_axes(self, kernel_name, kernel_shape):
        rank = len(kernel_shape)
        return (rank - 2, rank - 1) if kernel_name == "depthwise_kernel" else (rank - 1,)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def call(self, inputs):
        outputs = ops.separable_conv(
            inputs,
            self.masked_kernel("depthwise_kernel"),
            self.masked_kernel("pointwise_kernel"),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            shape = [1] * len(outputs.shape)
            shape[-1 if self.data_format == "channels_last" else 1] = self.filters
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}


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
