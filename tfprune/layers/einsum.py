"""MaskedEinsumDense: `keras.layers.EinsumDense` with a DST threshold per output unit."""

import keras
from keras import ops

from tfprune.layers.base import MaskedMixin


def output_axes(equation):
    """The kernel axes that appear in the output: `"abc,cde->abde"` gives `(1, 2)`."""
    inputs, output = equation.replace(" ", "").split("->")
    kernel = inputs.split(",")[1]
    return tuple(i for i, letter in enumerate(kernel) if letter in output)


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedEinsumDense(MaskedMixin, keras.layers.EinsumDense):
    """An EinsumDense whose kernel is masked by `step(|W| - t)`.

    A unit is one position of the kernel's output axes (those the equation keeps), so
    `"ab,bc->ac"` has one threshold per column like `MaskedDense`. `unit_axes` chooses other
    kernel axes; `MaskedMultiHeadAttention` uses it to make the heads its units.

    Args:
        equation: the einsum equation of `keras.layers.EinsumDense`.
        output_shape: its output shape.
        granularity: `"weight"` (default) or `"unit"` (whole units).
        thresholds: `"unit"` (default) or `"layer"` (one threshold for the kernel).
        unit_axes: kernel axes that hold the units (one threshold each); default: every kernel
            axis the output keeps.
        **kwargs: the arguments of `keras.layers.EinsumDense` (LoRA and quantization excepted).

    Raises:
        ValueError: a block granularity, LoRA, or `unit_axes` that are not kernel axes.

    >>> layer = MaskedEinsumDense("abc,cd->abd", output_shape=(None, 8))
    >>> layer(np.ones((2, 5, 4))).shape
    (2, 5, 8)
    """

    def __init__(self, equation, output_shape, granularity="weight", unit_axes=None, **kwargs):
        if kwargs.get("lora_rank"):
            raise ValueError(
                "MaskedEinsumDense does not support LoRA. Received: lora_rank="
                f"{kwargs['lora_rank']}. Prune first, then enable LoRA on the stripped model."
            )
        super().__init__(equation, output_shape, **kwargs)
        self._init_granularity(granularity, no_blocks="for TFLite's 1xN block-sparse kernel use a Dense layer")
        rank = len(equation.replace(" ", "").split("->")[0].split(",")[1])
        default = output_axes(equation)
        self._unit_axes = tuple(int(a) for a in (default if unit_axes is None else unit_axes))
        if not self._unit_axes or any(not 0 <= a < rank for a in self._unit_axes):
            raise ValueError(
                f"unit_axes must name axes of the {rank}-d kernel of '{equation}', e.g. "
                f"{default}. Received: unit_axes={unit_axes!r}"
            )

    def unit_axes(self, kernel_name, kernel_shape):
        return self._unit_axes

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def call(self, inputs, training=None):
        x = ops.einsum(self.equation, inputs, self.masked_kernel())
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def masking_config(self):
        return {**super().masking_config(), "unit_axes": list(self._unit_axes)}

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}
