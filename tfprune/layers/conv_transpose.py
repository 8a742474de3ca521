"""Masked transposed convolutions: a DST threshold per filter.

Keras stores a transposed kernel as `(*spatial, filters, inputs)`, so the units sit on the
second-to-last axis; `unit_axes` says so and the shared `mask` moves them last.
"""

import keras
from keras import ops

from tfprune.layers.conv import MaskedConvolution


class _MaskedConvTranspose(MaskedConvolution):
    """`call` of Keras' base transposed convolution, on the masked kernel."""

    NO_BLOCKS = "TFLite has no block-sparse TRANSPOSE_CONV kernel, so blocks would buy nothing"

    def unit_axes(self, kernel_name, kernel_shape):
        return (len(kernel_shape) - 2,)

    def call(self, inputs):
        return self.finish(
            ops.conv_transpose(
                inputs,
                self.masked_kernel(),
                strides=list(self.strides),
                padding=self.padding,
                output_padding=self.output_padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )
        )


_DOC = """`keras.layers.{0}` with a trainable DST threshold per filter.

    Takes every argument of `keras.layers.{0}` plus `granularity`: `"weight"` (default) or
    `"unit"` (whole filters, which `compact` removes); and `thresholds`: `"unit"` (default) or
    `"layer"` (one threshold per kernel, `MaskedMixin`).
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
