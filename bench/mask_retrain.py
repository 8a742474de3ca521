"""DST's final mask trained again from the same initialization, with the mask fixed (issue #13).

Separates the two halves of DST's result at a given ratio: *which* weights it keeps (the mask) and
*how* it trained them (through the estimator, under a rising penalty). If the mask retrained the
plain way matches GMP, DST's training is what costs the accuracy; if not, the mask is.
"""


def kernel_masks(stripped):
    """`{layer_name: 0/1 array}` of the kept weights of a stripped model's kernels."""
    return {
        layer.name: (layer.kernel.numpy() != 0).astype(layer.kernel.dtype)
        for layer in stripped.layers
        if getattr(layer, "kernel", None) is not None
    }


def fixed_masks_callback(keras, masks):
    """A callback that holds every masked kernel at `W * mask`: at the start and after each batch."""

    class FixedMasks(keras.callbacks.Callback):
        def apply(self):
            for layer in self.model.layers:
                if layer.name in masks:
                    layer.kernel.assign(layer.kernel * masks[layer.name])

        def on_train_begin(self, logs=None):
            self.apply()

        def on_train_batch_end(self, batch, logs=None):
            self.apply()

    return FixedMasks()
