"""GMP's schedule (tfmot's PolynomialDecay, as the tfmot baseline sets it) and the same gradual
magnitude pruning as a Keras 3 callback.

The Keras 3 twin runs GMP in the process and framework DST runs in: tfmot needs tf_keras, so a
difference between DST and tfmot's GMP could be the framework's, not the method's (issue #13).
"""

import numpy as np

from bench.mask_retrain import hold_masks


def gmp_schedule(total_steps, final_sparsity, end_fraction=2 / 3):
    """PolynomialDecay arguments that reach `final_sparsity` at ~`end_fraction` of training.

    Pruning happens every `frequency` steps (at most 100, tfmot's default), and `end_step` is a
    multiple of it: tfmot only prunes on those steps, so otherwise the final sparsity is missed.
    """
    target = max(1, round(total_steps * end_fraction))
    frequency = max(1, min(100, target // 10))
    return {
        "initial_sparsity": 0.0,
        "final_sparsity": final_sparsity,
        "begin_step": 0,
        "end_step": max(frequency, round(target / frequency) * frequency),
        "frequency": frequency,
    }


def scheduled_sparsity(schedule, step):
    """PolynomialDecay's sparsity at `step`, or None where it does not prune."""
    begin, end, frequency = schedule["begin_step"], schedule["end_step"], schedule["frequency"]
    if step < begin or step > end or (step - begin) % frequency:
        return None
    done = (step - begin) / (end - begin)
    initial, final = schedule["initial_sparsity"], schedule["final_sparsity"]
    return final + (initial - final) * (1 - done) ** 3


def magnitude_mask(kernel, sparsity):
    """0/1 mask keeping the `1 - sparsity` largest |W| of `kernel` (tfmot's per-layer rule)."""
    magnitude = np.abs(kernel).ravel()
    cut = int(round(sparsity * magnitude.size))
    mask = np.ones(magnitude.size, kernel.dtype)
    mask[np.argsort(magnitude, kind="stable")[:cut]] = 0
    return mask.reshape(kernel.shape)


def gradual_magnitude_callback(keras, schedule):
    """A callback pruning every Dense/Conv kernel to the schedule's sparsity on its steps and
    holding the pruned weights at zero after every batch (tfmot's wrapper does both)."""

    class GradualMagnitude(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.step = 0
            self.layers = [layer for layer in self.model.layers if getattr(layer, "kernel", None) is not None]
            self.masks = {}

        def on_train_batch_begin(self, batch, logs=None):
            sparsity = scheduled_sparsity(schedule, self.step)
            if sparsity is not None:
                for layer in self.layers:
                    self.masks[layer.name] = magnitude_mask(layer.kernel.numpy(), sparsity)
                hold_masks(self.layers, self.masks)
            self.step += 1

        def on_train_batch_end(self, batch, logs=None):
            hold_masks(self.layers, self.masks)

    return GradualMagnitude()
