"""Masked transposed convolutions: a DST threshold per filter.

Keras stores a transposed kernel as `(*spatial, filters, inputs)`, so the units sit on the
second-to-last axis; `unit_axes` says so and the shared `mask` moves them last.
"""

import keras
from keras import ops

from tfprune.layers.base import MaskedMixin


class _MaskedConvTranspose(MaskedMixin):
    """`call` of Keras' base transposed convolution, on the masked kernel."""

    def __init__(self, *args, granularity="weight", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_granularity(granularity)
        if isinstance(self.granularity, tuple):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' supports granularity 'weight' or 'unit': "
                "TFLite has no block-sparse TRANSPOSE_CONV kernel, so blocks would buy nothing. "
                f"Received: granularity={granularity!r}"
            )

    def unit_axes(self, kernel_name, kernel_shape):
        return (len(kernel_shape) - 2,)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def call(self, inputs):
        outputs = ops.conv_transpose(
            inputs,
            self.masked_kernel(),
            strides=list(self.strides),
            padding=self.padding,
            output_padding=self.output_padding,
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


_DOC = """`keras.layers.{0}` with a trainable DST threshold per filter.

    Takes every argument of `keras.layers.{0}` plus `granularity`: `"weight"` (default) or
    `"unit"` (whole filters, which `compact` removes).
"""


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedConv1DTranspose(_MaskedConvTranspose, keras.layers.Conv1DTranspose):
    __doc__ = _DOC.format("Conv1DTranspose")


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedConv2DTranspose(_MaskedConvTranspose, keras.layers.Conv2DTranspose):
    __doc__ = _DOC.format("Conv2DTranspose")


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedConv3DTranspose(_MaskedConvTranspose, keras.layers.Conv3DTranspose):
    __doc__ = _DOC.format("Conv3DTranspose")
