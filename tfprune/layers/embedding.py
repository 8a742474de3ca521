"""MaskedEmbedding: `keras.layers.Embedding` with a DST threshold per embedding dimension."""

import keras
from keras import ops

from tfprune.layers.base import MaskedMixin


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedEmbedding(MaskedMixin, keras.layers.Embedding):
    """An Embedding whose table is masked by `step(|E| - t)`, one trainable `t` per output dimension.

    Why per output dimension and not per row (token): every batch trains every dimension's
    threshold, whereas a row's threshold gets a gradient only when its token occurs while the
    penalty pushes it up at every step, so rare tokens would be wiped out first; it is also the
    convention of every other twin (one threshold per output unit), and a dimension that
    `"unit"` granularity drops is one `compact` could remove from the next layer, whereas
    dropping a row would need the token ids remapped.

    Args:
        input_dim: vocabulary size.
        output_dim: embedding dimension.
        granularity: `"weight"` (default) or `"unit"` (whole embedding dimensions).
        thresholds: `"unit"` (default) or `"layer"` (one threshold for the table).
        **kwargs: the arguments of `keras.layers.Embedding` (LoRA and quantization excepted).

    >>> layer = MaskedEmbedding(100, 8)
    >>> layer(np.array([[1, 2, 3]])).shape
    (1, 3, 8)
    """

    MASKED = {"embeddings": "threshold"}

    def __init__(self, input_dim, output_dim, granularity="weight", **kwargs):
        if kwargs.get("lora_rank"):
            raise ValueError(
                f"MaskedEmbedding does not support LoRA. Received: lora_rank={kwargs['lora_rank']}."
                " Prune first, then enable LoRA on the stripped model."
            )
        super().__init__(input_dim, output_dim, **kwargs)
        self._init_granularity(granularity, no_blocks="a table lookup (GATHER) has no block-sparse kernel")

    def build(self, input_shape=None):
        if self.built:
            return
        super().build(input_shape)
        self.build_masks()

    def call(self, inputs):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        outputs = ops.take(self.masked_kernel("embeddings"), inputs, axis=0)
        return ops.cast(outputs, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}
