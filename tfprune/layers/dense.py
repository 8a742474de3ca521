"""MaskedDense: `keras.layers.Dense` with a DST threshold per output neuron."""

import keras
from keras import ops

from tfprune.layers.base import MaskedMixin


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedDense(MaskedMixin, keras.layers.Dense):
    """A Dense layer whose kernel is masked by `step(|W| - t)` with a trainable `t` per neuron.

    Takes every argument of `keras.layers.Dense` (LoRA excepted) plus `granularity`.

    Args:
        units: positive integer, dimensionality of the output space.
        granularity: `"weight"` (default, the paper), `"unit"` (whole neurons) or a block shape
            `(1, n)` along the input dimension, e.g. `(1, 4)` for TFLite's sparse kernel.
        thresholds: `"unit"` (default, the paper: one per neuron) or `"layer"` (one for the
            kernel: its largest |W| are kept wherever they are).
        **kwargs: the arguments of `keras.layers.Dense`.

    >>> layer = MaskedDense(8, activation="relu")
    >>> layer(np.ones((2, 4))).shape
    (2, 8)
    """

    def __init__(self, units, granularity="weight", **kwargs):
        if kwargs.get("lora_rank"):
            raise ValueError(
                "MaskedDense does not support LoRA. Received: lora_rank="
                f"{kwargs['lora_rank']}. Prune first, then enable LoRA on the stripped model."
            )
        super().__init__(units, **kwargs)
        self._init_granularity(granularity)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.masked_kernel())
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}
