"""`compact`'s rule for attention heads: a dead head goes from inside a MultiHeadAttention.

Head h is dead, and removing it changes no output, when its output-projection slice is all
zero (it contributes nothing), or when its value-projection kernel slice is all zero: each
query's attention weights sum to 1, so the head then outputs its value bias whatever the input,
and `bias_v[h] @ W_o[h]` folds into the output bias. (With `use_gate`, the gate scales that
constant per input, so only the first case holds.) The layer's inputs and outputs keep their
size, so the channel graph is not involved. At least one head stays.
"""

import numpy as np

# Sublayer name -> the axis of its kernel that indexes heads (bias: the same axis minus one).
_HEAD_AXIS = {"query": 1, "key": 1, "value": 1, "gate": 1, "attention_output": 0}


class HeadSurgery:
    """Removes the dead heads of a `keras.layers.MultiHeadAttention` (registered as `inside`)."""

    def supports(self, layer):
        return set(_named(layer)) <= {(s, w) for s in _HEAD_AXIS for w in ("kernel", "bias")}

    def dead(self, layer):
        """Bool per head: removable without changing any output."""
        named = _named(layer)
        out_kernel = named[("attention_output", "kernel")]
        dead = ~(out_kernel != 0).reshape(out_kernel.shape[0], -1).any(axis=1)
        value = named[("value", "kernel")]
        if not getattr(layer, "_use_gate", False):
            dead |= ~(np.moveaxis(value, 1, 0) != 0).reshape(value.shape[1], -1).any(axis=1)
        return dead

    def plan(self, layer):
        """`(config, weights, heads before, removed heads)`, or None when no head can go."""
        if not self.supports(layer):
            return None
        dead = self.dead(layer)
        if dead.all():
            dead[0] = False  # a layer needs a head; this one outputs a constant
        if not dead.any():
            return None
        keep = ~dead
        named = _named(layer)
        out_kernel = named[("attention_output", "kernel")]
        if ("value", "bias") in named and ("attention_output", "bias") in named:
            folded = np.einsum("hd,hdo->o", named[("value", "bias")][dead], out_kernel[dead])
            named[("attention_output", "bias")] = named[("attention_output", "bias")] + folded
        weights = []
        for (sublayer, weight), value in named.items():
            axis = _HEAD_AXIS[sublayer] - (weight == "bias")
            weights.append(np.compress(keep, value, axis=axis) if axis >= 0 else value)
        config = {**layer.get_config(), "num_heads": int(keep.sum())}
        return config, weights, len(keep), np.flatnonzero(dead).tolist()


def _named(layer):
    """`{(sublayer, weight): array}` in `layer.weights` order."""
    return {
        tuple(variable.path.split("/")[-2:]): np.asarray(value)
        for variable, value in zip(layer.weights, layer.get_weights())
    }
