"""Masked convolutions: a DST threshold per filter (per channel for depthwise), 1D to 3D."""

import keras
from keras import ops

from tfprune.layers.base import MaskedMixin, check_floor

_DOC_ARGS = """
    Takes every argument of its Keras twin plus `granularity`: `"weight"` (default, the paper),
    `"unit"` (whole filters) or a block `(1, n)` along the input-channel axis; and `min_sparsity`:
    a share of weights `DynamicPrune` keeps masked at least (`prunable(policy="xnnpack")` sets 2/3);
    and `thresholds`: `"unit"` (default) or `"layer"` (one threshold per kernel, `MaskedMixin`).
"""


class MaskedConvolution(MaskedMixin):
    """What every masked convolution shares: granularity (blocks refused where TFLite has no
    block-sparse kernel: `NO_BLOCKS`), masks built after the kernels, the config, and the bias and
    activation after a convolution computed on masked kernels (`finish`)."""

    NO_BLOCKS = None

    def __init__(self, *args, granularity="weight", min_sparsity=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_granularity(granularity, no_blocks=self.NO_BLOCKS)
        self.min_sparsity = check_floor(min_sparsity, self.name)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def finish(self, outputs):
        """Adds the bias on the channel axis and applies the activation, as Keras' `call` does."""
        if self.use_bias:
            shape = [1] * len(outputs.shape)
            shape[-1 if self.data_format == "channels_last" else 1] = -1
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        return outputs if self.activation is None else self.activation(outputs)

    def masking_config(self):
        return {**super().masking_config(), "min_sparsity": self.min_sparsity}

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}


class _MaskedConv(MaskedConvolution):
    """Masks the kernel inside `convolution_op`, which Keras' base convolution calls."""

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.masked_kernel(kernel=kernel))


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
class MaskedDepthwiseConv2D(MaskedConvolution, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with a trainable DST threshold per output channel.

    Takes every argument of `keras.layers.DepthwiseConv2D` plus `granularity` (`"weight"` or
    `"unit"`; blocks are not offered because TFLite has no block-sparse depthwise kernel).
    """

    NO_BLOCKS = ("TFLite has no block-sparse depthwise kernel (with tfprune.prunable, give blocks "
                 "per layer in a dict)")

    def threshold_shape(self, kernel_shape):
        """One threshold per output channel: (input channels, depth multiplier)."""
        return tuple(kernel_shape[-2:])

    def call(self, inputs):
        return self.finish(
            ops.depthwise_conv(
                inputs,
                self.masked_kernel(),
                strides=self.strides,
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )
        )
