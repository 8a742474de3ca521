"""DynamicPrune: the callback that owns alpha, applies the reset rule and logs sparsity."""

import numbers

import keras
import tensorflow as tf

from tfprune.controller import SparsityController
from tfprune.layers.base import masked_layers, sparsity_of


class DynamicPrune(keras.callbacks.Callback):
    """Drives Dynamic Sparse Training: `model.fit(x, y, callbacks=[tfprune.DynamicPrune()])`.

    Every masked layer adds `alpha * sum(exp(-t))` over its thresholds to the loss. This callback
    owns alpha (the layers read it from a variable, so it can change without recompiling), resets
    the thresholds of a layer that is more than `reset_fraction` masked (not LSTMs, as in the
    paper) and writes global and per-layer sparsity into `logs`, where History, CSVLogger and
    TensorBoard see them (`sparsity`, `sparsity/<layer>`, `alpha`, `threshold_resets`).

    Args:
        alpha: the regularisation strength: a float >= 0 (default 5e-4, the paper's MNIST value),
            a callable `epoch -> float`, or a `keras.optimizers.schedules.LearningRateSchedule`
            evaluated at every training step.
        reset_fraction: a layer whose share of masked weights exceeds this gets its thresholds
            set back to 0. None disables the rule.
        reset_check_every: batches between two checks of the reset rule (default 10: one check
            costs about a fifth of a LeNet-300-100 training step on CPU).
        log_every_n_batches: also write the sparsity figures into batch logs every N batches.
        target_sparsity: if set, alpha (then the starting value) is steered so that training ends
            at this global sparsity; see `tfprune.controller.SparsityController`.
        layer_targets: `{layer_name: sparsity}` for layers steered to their own target (e.g.
            keep the first and last layers denser); the other layers share `target_sparsity`.
        control_every: steps between two alpha updates of the controller.

    Raises:
        ValueError: alpha < 0, reset_fraction outside (0, 1], a target outside [0, 1), or (at
            train begin) a model without masked layers or an unknown name in `layer_targets`.

    >>> model.fit(x, y, epochs=20, callbacks=[tfprune.DynamicPrune(alpha=5e-4)])
    >>> model.fit(x, y, epochs=20, callbacks=[tfprune.DynamicPrune(target_sparsity=0.9)])
    """

    def __init__(
        self,
        alpha=5e-4,
        reset_fraction=0.99,
        reset_check_every=10,
        log_every_n_batches=None,
        target_sparsity=None,
        layer_targets=None,
        control_every=20,
    ):
        super().__init__()
        if (target_sparsity is not None or layer_targets) and not isinstance(alpha, numbers.Real):
            raise ValueError(
                "With target_sparsity or layer_targets, alpha is the controller's starting value "
                f"and must be a float. Received: alpha={alpha!r}"
            )
        for target in [target_sparsity, *(layer_targets or {}).values()]:
            if target is not None:
                SparsityController(target)  # validates the range
        self.target_sparsity = target_sparsity
        self.layer_targets = dict(layer_targets or {})
        self.control_every = control_every
        if isinstance(alpha, numbers.Real):
            _check_alpha(alpha)
        elif not callable(alpha):
            raise TypeError(
                "alpha must be a float, a callable epoch -> float or a LearningRateSchedule. "
                f"Received: alpha={alpha!r}"
            )
        if reset_fraction is not None and not 0 < reset_fraction <= 1:
            raise ValueError(
                "reset_fraction must be in (0, 1] (or None to disable the reset rule). "
                f"Received: reset_fraction={reset_fraction}"
            )
        checks = [("reset_check_every", reset_check_every)]
        if log_every_n_batches is not None:
            checks.append(("log_every_n_batches", log_every_n_batches))
        for name, value in checks:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        self.alpha = alpha
        self.reset_fraction = reset_fraction
        self.reset_check_every = reset_check_every
        self.log_every_n_batches = log_every_n_batches

    # Training hooks -------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._layers = masked_layers(self.model)
        if not self._layers:
            raise ValueError(
                f"DynamicPrune found no masked layer in model '{self.model.name}'. Convert the "
                "model with `model = tfprune.prunable(model)` (then compile it) or build it from "
                "tfprune.layers."
            )
        self._epoch = 0
        self._resettable = [layer for layer in self._layers if layer.RESETS]
        self._resets = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._reset_function = None
        if self.reset_fraction is not None and self._resettable:
            self._reset_function = tf.function(self._apply_reset_rule)
        self._groups = self._control_groups()
        if not self._groups:
            self._set_alpha(self._layers, self._alpha_value(epoch=0))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if not self._groups and not isinstance(self.alpha, keras.optimizers.schedules.LearningRateSchedule):
            self._set_alpha(self._layers, self._alpha_value(epoch))

    def on_train_batch_end(self, batch, logs=None):
        if self._groups:
            if batch % self.control_every == 0:
                self._control(batch)
        elif isinstance(self.alpha, keras.optimizers.schedules.LearningRateSchedule):
            self._set_alpha(self._layers, self._alpha_value(self._epoch))
        if self._reset_function is not None and (batch + 1) % self.reset_check_every == 0:
            self._reset_function()
        n = self.log_every_n_batches
        if n and logs is not None and (batch + 1) % n == 0:
            logs.update(self.figures())

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.figures())
            logs["threshold_resets"] = int(self._resets.numpy())

    # Figures ----------------------------------------------------------------------------------

    def figures(self):
        """`{"sparsity": global, "sparsity/<layer>": ..., "alpha": ...}` for the current weights."""
        figures = {}
        for layer in self._layers:
            figures.update(layer.pruning_logs())
        figures["sparsity"] = sparsity_of(self._layers)
        shared = self._groups.get(None, ([], None))[1]
        figures["alpha"] = shared.alpha if shared else _read(self._layers[-1].alpha)
        for name in self.layer_targets:
            figures[f"alpha/{name}"] = self._groups[name][1].alpha
        return figures

    # Internals --------------------------------------------------------------------------------

    def _alpha_value(self, epoch):
        if isinstance(self.alpha, keras.optimizers.schedules.LearningRateSchedule):
            value = float(self.alpha(self.model.optimizer.iterations))
        elif callable(self.alpha):
            value = float(self.alpha(epoch))
        else:
            value = float(self.alpha)
        _check_alpha(value)
        return value

    def _set_alpha(self, layers, value):
        for layer in layers:
            layer.alpha.assign(value)

    def _control_groups(self):
        """`{name or None: (layers, controller)}`: one group per layer target, one for the rest."""
        if self.target_sparsity is None and not self.layer_targets:
            return {}
        by_name = {layer.name: layer for layer in self._layers}
        unknown = sorted(set(self.layer_targets) - set(by_name))
        if unknown:
            raise ValueError(
                f"layer_targets names {unknown}, which are not masked layers of the model. "
                f"Masked layers: {sorted(by_name)}."
            )
        groups = {}
        for name, target in self.layer_targets.items():
            groups[name] = ([by_name[name]], target)
        rest = [layer for layer in self._layers if layer.name not in self.layer_targets]
        if rest and self.target_sparsity is not None:
            groups[None] = (rest, self.target_sparsity)
        if self.target_sparsity is None:
            self._set_alpha(rest, float(self.alpha))
        return {
            key: (layers, SparsityController(target, _read(layers[0].alpha) or self.alpha))
            for key, (layers, target) in groups.items()
        }

    def _control(self, batch):
        steps, epochs = self.params.get("steps") or 1, self.params.get("epochs") or 1
        progress = (self._epoch * steps + batch + 1) / (epochs * steps)
        for layers, controller in self._groups.values():
            self._set_alpha(layers, controller.update(progress, sparsity_of(layers)))

    def _apply_reset_rule(self):
        """Sets a layer's thresholds to 0 when more than `reset_fraction` of it is masked."""
        for layer in self._resettable:
            kept = 0.0
            size = 0
            for name in layer.MASKED:
                mask = layer.mask(name)
                kept += tf.reduce_sum(mask)
                size += int(mask.shape.num_elements())
            collapsed = kept < (1.0 - self.reset_fraction) * size
            for threshold in layer.threshold_variables():
                threshold.assign(tf.where(collapsed, tf.zeros_like(threshold), threshold))
            self._resets.assign_add(tf.cast(collapsed, tf.int64))


def _read(variable):
    return float(keras.ops.convert_to_numpy(variable))


def _check_alpha(value):
    if value < 0:
        raise ValueError(
            "alpha must be >= 0: it scales the penalty alpha * sum(exp(-threshold)) that makes "
            f"the model sparse (0 turns it off). Received: alpha={value}"
        )
