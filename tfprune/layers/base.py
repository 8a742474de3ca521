"""What every masked layer shares: thresholds, the alpha penalty, masks and sparsity.

A masked layer subclasses its Keras twin and this mixin. It names its masked kernels in
`MASKED = {kernel_attribute: threshold_attribute}` and calls `build_masks()` at the end of
`build`. Thresholds and alpha are real layer weights, so `.keras` files carry them.
"""

import keras
import numpy as np
from keras import ops

from tfprune.counts import count_nonzero
from tfprune.estimator import check_block, mask_from_scores, normalize_granularity


class ThresholdPenalty:
    """`alpha * sum(exp(-t))`: the sparse regulariser that pushes thresholds up.

    `alpha` is a non-trainable variable of the layer that `DynamicPrune` assigns, so alpha can
    follow a schedule without recompiling.
    """

    def __init__(self, alpha):
        self.alpha = alpha

    def __call__(self, threshold):
        return ops.cast(self.alpha, threshold.dtype) * ops.sum(ops.exp(-threshold))


# "unit": a threshold per output unit (the paper); "layer": one per kernel, which keeps a layer's
# largest |W| wherever they are, as magnitude pruning does (BENCHMARKS section 12).
THRESHOLDS = ("unit", "layer")
# How the weights learn (the thresholds always learn through the estimator): "estimator" (the
# paper: through `W * step(|W| - t)`, so masked weights get a damped gradient and can come back)
# or "masked" (kept weights get the masked product's gradient alone, masked weights none, as
# under magnitude pruning; BENCHMARKS section 12).
WEIGHT_GRADIENTS = ("estimator", "masked")


class MaskedMixin:
    """Trainable thresholds and `mask = step(|W| - t)` for the kernels in `MASKED`.

    Every masked layer takes `thresholds`: `"unit"` (default, the paper: one threshold per
    output unit) or `"layer"` (one threshold per kernel, stored as its units' thresholds, which
    share every update, so that alpha means what it means per unit); and `weight_gradient`:
    `"estimator"` (default, the paper) or `"masked"` (`WEIGHT_GRADIENTS`).
    """

    MASKED = {"kernel": "threshold"}
    RESETS = True  # DynamicPrune's reset rule applies (the paper exempts LSTMs)
    min_sparsity = None  # a floor DynamicPrune holds the layer's sparsity above (convolutions)

    def __init__(self, *args, thresholds="unit", weight_gradient="estimator", **kwargs):
        super().__init__(*args, **kwargs)
        self.thresholds = check_thresholds(thresholds)
        self.weight_gradient = check_weight_gradient(weight_gradient)

    def _init_granularity(self, granularity, no_blocks=None):
        """Sets `granularity`; `no_blocks` says why this layer refuses 1xN blocks (None: takes them)."""
        self.granularity = normalize_granularity(granularity)
        if no_blocks and isinstance(self.granularity, tuple):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' supports granularity 'weight' or 'unit': "
                f"{no_blocks}. Received: granularity={granularity!r}"
            )
        check_thresholds(self.thresholds, self.granularity, self.name)

    def threshold_shape(self, kernel_shape):
        """One threshold per output unit: the kernel's last axis."""
        return tuple(kernel_shape[-1:])

    def unit_axes(self, kernel_name, kernel_shape):
        """The kernel axes holding its units (one threshold each); the other axes are inputs.

        By default `threshold_shape`'s trailing axes. Twins whose units are not the trailing
        axes (transposed convolutions, EinsumDense, attention heads) or whose kernels differ
        (SeparableConv) override it; `mask` then moves the unit axes last.
        """
        rank = len(kernel_shape)
        return tuple(range(rank - len(self.threshold_shape(kernel_shape)), rank))

    def input_axis(self, kernel_shape):
        """The kernel axis that holds the inputs (the axis 1xN blocks group)."""
        return len(kernel_shape) - 2 if len(kernel_shape) > 2 else 0

    def build_masks(self):
        """Adds alpha and one threshold weight per masked kernel; call at the end of `build`.

        Raises:
            ValueError: a block granularity `(1, n)` whose n does not divide a kernel's inputs.
        """
        shapes = {name: tuple(getattr(self, name).shape) for name in self.MASKED}
        shapes = {name: _units_last(self.unit_axes(name, s), s)[1] for name, s in shapes.items()}
        inputs = {name: shape[self.input_axis(shape)] for name, shape in shapes.items()}
        check_block(self.granularity, inputs, self.name)
        self.alpha = self.add_weight(
            name="alpha", shape=(), initializer="zeros", trainable=False
        )
        # DynamicPrune's state across batches, kept in the layer so that a checkpoint or
        # BackupAndRestore carries it: the target controller's integral term and the number of
        # times the reset rule fired.
        self.alpha_integral = self.add_weight(
            name="alpha_integral", shape=(), initializer="zeros", trainable=False
        )
        self.threshold_resets = self.add_weight(
            name="threshold_resets", shape=(), initializer="zeros", trainable=False
        )
        penalty = ThresholdPenalty(self.alpha)
        for kernel_name, threshold_name in self.MASKED.items():
            if hasattr(self, threshold_name):
                continue  # kernels that share a threshold (an LSTM's hidden units) get one
            kernel_shape = tuple(getattr(self, kernel_name).shape)
            axes = self.unit_axes(kernel_name, kernel_shape)
            if axes == MaskedMixin.unit_axes(self, kernel_name, kernel_shape):
                shape = self.threshold_shape(kernel_shape)
            else:  # units on other axes than the trailing ones: one threshold per position
                shape = tuple(kernel_shape[a] for a in axes)
            setattr(
                self,
                threshold_name,
                self.add_weight(
                    name=threshold_name,
                    shape=shape,
                    initializer="zeros",
                    regularizer=penalty,
                ),
            )

    def threshold_variables(self):
        return [getattr(self, t) for t in dict.fromkeys(self.MASKED.values())]

    def effective_threshold(self, kernel_name="kernel"):
        """The threshold `mask` compares a kernel with: its per-unit thresholds, or with
        `thresholds="layer"` their mean (so each gets the mean of their gradients)."""
        threshold = getattr(self, self.MASKED[kernel_name])
        return ops.mean(threshold) if self.thresholds == "layer" else threshold

    def mask(self, kernel_name="kernel", kernel=None):
        """The current 0/1 mask of a masked kernel (differentiable through the estimator)."""
        kernel = getattr(self, kernel_name) if kernel is None else kernel
        threshold = ops.cast(self.effective_threshold(kernel_name), kernel.dtype)
        order, shape = _units_last(self.unit_axes(kernel_name, tuple(kernel.shape)), kernel.shape)
        if order is None:
            return mask_from_scores(kernel, threshold, self.granularity, self.input_axis(shape))
        mask = mask_from_scores(
            ops.transpose(kernel, order), threshold, self.granularity, self.input_axis(shape)
        )
        return ops.transpose(mask, tuple(int(a) for a in np.argsort(order)))

    def scored(self, weight):
        """`weight` as a mask reads it: with `weight_gradient="masked"` without its gradient, so
        the weights learn only through `W * mask` (where kept) and the thresholds still through
        the estimator."""
        return ops.stop_gradient(weight) if self.weight_gradient == "masked" else weight

    def masked_kernel(self, kernel_name="kernel", kernel=None):
        """`W * mask`: the weights the layer actually computes with."""
        kernel = getattr(self, kernel_name) if kernel is None else kernel
        return kernel * self.mask(kernel_name, self.scored(kernel))

    def effective(self, name):
        """The weight `name` as the layer computes with it (`W * mask` for a masked kernel)."""
        return self.masked_kernel(name) if name in self.MASKED else getattr(self, name)

    def weight_counts(self):
        """`{kernel_name: (size, nonzero)}` of the effective (masked) kernels."""
        return {name: count_nonzero(self.masked_kernel(name)) for name in self.MASKED}

    def target_counts(self):
        """`(size, pruned)` of what a sparsity target counts here: weights by default."""
        counts = self.weight_counts().values()
        size = sum(c[0] for c in counts)
        return size, size - sum(c[1] for c in counts)

    def sparsity(self):
        """Share of this layer's masked-kernel weights that are zero."""
        return sparsity_of([self])

    def pruning_logs(self):
        """The figures `DynamicPrune` writes into `logs` for this layer."""
        return {f"sparsity/{self.name}": self.sparsity()}

    def save_own_variables(self, store):
        """Saves every variable: Keras' Dense/Conv save only kernel and bias (for quantisation)."""
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def masking_config(self):
        granularity = self.granularity
        return {
            "granularity": list(granularity) if isinstance(granularity, tuple) else granularity,
            "thresholds": self.thresholds,
            "weight_gradient": self.weight_gradient,
        }


def check_weight_gradient(weight_gradient):
    """`weight_gradient` if it is one of `WEIGHT_GRADIENTS`; a clear error otherwise."""
    if weight_gradient not in WEIGHT_GRADIENTS:
        raise ValueError(
            "weight_gradient must be 'estimator' (the paper: weights learn through the step's "
            "estimator, masked ones too) or 'masked' (kept weights learn from the masked product "
            f"alone). Received: weight_gradient={weight_gradient!r}"
        )
    return weight_gradient


def check_thresholds(thresholds, granularity="weight", name=None):
    """`thresholds` if it is one of `THRESHOLDS` and fits layer `name`'s granularity; a clear
    error otherwise."""
    if thresholds not in THRESHOLDS:
        raise ValueError(
            "thresholds must be 'unit' (one per output unit, the paper) or 'layer' (one per "
            f"kernel). Received: thresholds={thresholds!r}"
        )
    if granularity == "unit" and thresholds == "layer":
        raise ValueError(
            f"Layer '{name}' has granularity='unit', which decides each unit by its own threshold: "
            "one threshold for the layer would keep all its units or none. Use thresholds='unit' "
            "with it, or granularity='weight' or a block with thresholds='layer'."
        )
    return thresholds


def check_floor(min_sparsity, name):
    """`min_sparsity` as a float in [0, 1), or None; raises a clear error otherwise."""
    if min_sparsity is None:
        return None
    if isinstance(min_sparsity, bool) or not isinstance(min_sparsity, (int, float)) or not 0 <= min_sparsity < 1:
        raise ValueError(
            f"min_sparsity of layer '{name}' must be a share of weights in [0, 1) or None. "
            f"Received: min_sparsity={min_sparsity!r}"
        )
    return float(min_sparsity)


def _units_last(unit_axes, kernel_shape):
    """`(permutation or None, permuted shape)` that moves `unit_axes` after the input axes."""
    rank = len(kernel_shape)
    order = [a for a in range(rank) if a not in unit_axes] + list(unit_axes)
    shape = tuple(kernel_shape[a] for a in order)
    return (None if order == list(range(rank)) else tuple(order)), shape


def sparsity_of(layers):
    """Share of zero weights over every masked kernel of `layers` taken together."""
    counts = [c for layer in layers for c in layer.weight_counts().values()]
    return 1.0 - sum(c[1] for c in counts) / sum(c[0] for c in counts)


def target_sparsity_of(layers):
    """The share a sparsity target steers over `layers`: pruned weights, or pruned hidden units
    of LSTMs with `granularity="unit"` (so a target of 0.75 removes 75% of their units)."""
    counts = [layer.target_counts() for layer in layers]
    return sum(c[1] for c in counts) / sum(c[0] for c in counts)


def masked_layers(model):
    """Every layer or cell inside `model` (nested models included) that carries DST masks."""
    return [
        layer for layer in model._flatten_layers(include_self=True) if isinstance(layer, MaskedMixin)
    ]
