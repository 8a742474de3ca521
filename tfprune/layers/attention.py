"""MaskedMultiHeadAttention: DST masks on the query, key, value and output projections."""

import keras

from tfprune.layers.einsum import MaskedEinsumDense

# The projections a MultiHeadAttention builds, and the kernel axis that indexes its heads:
# query/key/value kernels are (features, heads, head_dim), the output's (heads, head_dim, out).
PROJECTIONS = {"_query_dense": 1, "_key_dense": 1, "_value_dense": 1, "_output_dense": 0}


@keras.saving.register_keras_serializable(package="tfprune")
class MaskedMultiHeadAttention(keras.layers.MultiHeadAttention):
    """A `keras.layers.MultiHeadAttention` whose four projections are `MaskedEinsumDense`.

    With `granularity="weight"` each projection has one threshold per output unit (per
    (head, head_dim) for query, key and value; per output feature for the output); with
    `"unit"`, one threshold per head in each projection, so whole heads are masked, and
    `tfprune.compact` removes a head whose value or output slice is all zero. The projections are
    named `<layer>_query`, ... so `DynamicPrune`'s `sparsity/<name>` keys stay unique. The
    optional gate projection (`use_gate=True`) stays dense.

    Args:
        num_heads, key_dim: as for `keras.layers.MultiHeadAttention`.
        granularity: `"weight"` (default) or `"unit"` (whole heads).
        thresholds: `"unit"` (default) or `"layer"`: one threshold per projection kernel.
        weight_gradient: `"estimator"` (default, the paper) or `"masked"` (`MaskedMixin`).
        **kwargs: the arguments of `keras.layers.MultiHeadAttention`.

    >>> layer = MaskedMultiHeadAttention(num_heads=2, key_dim=4, granularity="unit")
    >>> x = np.ones((2, 5, 8))
    >>> layer(x, x).shape
    (2, 5, 8)
    """

    def __init__(self, num_heads, key_dim, granularity="weight", thresholds="unit", weight_gradient="estimator",
                 **kwargs):  # fmt: skip
        super().__init__(num_heads, key_dim, **kwargs)
        probe = MaskedEinsumDense(
            "ab,bc->ac", (None, 1), granularity=granularity, thresholds=thresholds, weight_gradient=weight_gradient
        )
        # validated as the projections will validate them
        self.granularity, self.thresholds = probe.granularity, probe.thresholds
        self.weight_gradient = probe.weight_gradient

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        key_shape = value_shape if key_shape is None else key_shape
        inputs = {
            "_query_dense": query_shape,
            "_key_dense": key_shape,
            "_value_dense": value_shape,
            "_output_dense": self._query_dense.compute_output_shape(query_shape)[:-1]
            + (self._value_dim,),
        }
        for attribute, head_axis in PROJECTIONS.items():
            stock = getattr(self, attribute)
            config = {
                **stock.get_config(),
                "name": f"{self.name}_{stock.name}",
                "granularity": self.granularity,
                "thresholds": self.thresholds,
                "weight_gradient": self.weight_gradient,
                "unit_axes": (head_axis,) if self.granularity == "unit" else None,
            }
            masked = MaskedEinsumDense.from_config(config)
            masked.build(inputs[attribute])
            masked.kernel.assign(stock.kernel)  # the stock initialisation, kept
            self._tracker.replace_tracked_value("layers", stock, masked)
            setattr(self, attribute, masked)

    def projections(self):
        """`{name: MaskedEinsumDense}` of the four projections (after build)."""
        return {attribute.strip("_"): getattr(self, attribute) for attribute in PROJECTIONS}

    def get_config(self):
        granularity = self.granularity
        return {
            **super().get_config(),
            "granularity": list(granularity) if isinstance(granularity, tuple) else granularity,
            "thresholds": self.thresholds,
            "weight_gradient": self.weight_gradient,
        }

    def masking_config(self):
        """The config keys a stock `keras.layers.MultiHeadAttention` does not know."""
        return {"granularity": self.granularity, "thresholds": self.thresholds, "weight_gradient": self.weight_gradient}
