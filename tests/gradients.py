"""Gradients on whichever backend Keras runs, so estimator tests hold on every backend."""

import keras
import numpy as np


def gradients(loss_fn, variables):
    """`d loss_fn() / d v` for each `keras.Variable` in `variables`, as numpy arrays.

    `loss_fn` takes no argument and reads the variables (e.g. a layer's kernel and threshold).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch([v.value for v in variables])
            loss = loss_fn()
        return [np.asarray(g) for g in tape.gradient(loss, [v.value for v in variables])]
    if backend == "jax":
        import jax

        def stateless(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn()

        return [np.asarray(g) for g in jax.grad(stateless)([v.value for v in variables])]
    if backend == "torch":
        import torch

        loss = loss_fn()
        return [g.detach().cpu().numpy() for g in torch.autograd.grad(loss, [v.value for v in variables])]
    raise NotImplementedError(f"no gradient helper for the {backend} backend")
