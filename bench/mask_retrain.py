"""DST's final mask trained again from the same initialization, with the mask fixed (issue #13).

Separates the two halves of DST's result at a given ratio: *which* weights it keeps (the mask) and
*how* it trained them (through the estimator, under a rising penalty). If the mask retrained the
plain way matches GMP, DST's training is what costs the accuracy; if not, the mask is.

`uniform_masks` splits the mask in two halves of its own: DST's choice of weights within each
layer, at GMP's uniform share per layer.
"""

import numpy as np


def kernel_masks(stripped):
    """`{layer_name: 0/1 array}` of the kept weights of a stripped model's kernels."""
    return {
        layer.name: (layer.kernel.numpy() != 0).astype(layer.kernel.dtype)
        for layer in stripped.layers
        if getattr(layer, "kernel", None) is not None
    }


def uniform_masks(model, share):
    """`{layer_name: 0/1 array}`: in every masked layer of a DST model, the `share` of its kernel
    with the highest DST scores `|W| - t` (t the weight's unit threshold), as GMP's uniform
    allocation keeps the same share of every layer."""
    masks = {}
    for layer in model.layers:
        if not hasattr(layer, "MASKED"):
            continue
        kernel, threshold = layer.kernel.numpy(), getattr(layer, layer.MASKED["kernel"]).numpy()
        if threshold.shape != kernel.shape[-1:]:
            raise ValueError(f"uniform_masks: layer '{layer.name}' has no threshold per output unit")
        scores = (np.abs(kernel) - threshold).ravel()
        keep = np.zeros(scores.size, kernel.dtype)
        keep[np.argsort(-scores, kind="stable")[: round(share * scores.size)]] = 1
        masks[layer.name] = keep.reshape(kernel.shape)
    return masks


def hold_masks(layers, masks):
    """Sets the kernel of every layer named in `masks` to `W * mask`."""
    for layer in layers:
        if layer.name in masks:
            layer.kernel.assign(layer.kernel * masks[layer.name])


def fixed_masks_callback(keras, masks):
    """A callback that holds every masked kernel at `W * mask`: at the start and after each batch."""

    class FixedMasks(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            hold_masks(self.model.layers, masks)

        def on_train_batch_end(self, batch, logs=None):
            hold_masks(self.model.layers, masks)

    return FixedMasks()
