"""DynamicPrune: the callback that owns alpha, applies the reset rule and logs sparsity."""

import math
import numbers
import warnings

import keras
from keras import ops

from tfprune import distributed
from tfprune.compact import compact
from tfprune.controller import SparsityController, check_target
from tfprune.counts import count_nonzero
from tfprune.dead_channels import batchnorm_followers, silence
from tfprune.freeze import FrozenMasks
from tfprune.guards import check_finite, thresholds_finite
from tfprune.layers.base import masked_layers, sparsity_of, target_sparsity_of


DEFAULT_ALPHA = 5e-4
# A floor's controller aims this far above the floor, so that noise around it stays above.
FLOOR_MARGIN = 0.02
FLOOR_ROUNDS = 5  # lifts and compactions at the end of training (`_lift_floors`)


class DynamicPrune(keras.callbacks.Callback):
    """Drives Dynamic Sparse Training: `model.fit(x, y, callbacks=[tfprune.DynamicPrune()])`.

    Every masked layer adds `alpha * sum(exp(-t))` over its thresholds to the loss. This callback
    owns alpha (the layers read it from a variable, so it can change without recompiling), resets
    the thresholds of a layer that is more than `reset_fraction` masked (not LSTMs, as in the
    paper) and writes global and per-layer sparsity into `logs`, where History, CSVLogger and
    TensorBoard see them (`sparsity`, `sparsity/<layer>`, `alpha`, `threshold_resets`).

    Training stops with a `FloatingPointError` naming the layer and batch when the loss, a
    threshold or a masked weight becomes NaN or inf. What the callback carries across batches
    (alpha, the controller's integral term, the reset counts) lives in the layers' weights, so
    `BackupAndRestore` or a `ModelCheckpoint` resumes a run exactly.

    Every `reset_check_every` batches and when training ends, the BatchNormalization channel after
    a dead unit of a `granularity="unit"` layer is held at zero output (`tfprune.dead_channels`),
    so that `compact` can remove the unit whatever reads it.

    A layer with `min_sparsity` (`prunable(policy="xnnpack")` sets 2/3 on the 1x1 convolutions
    XNNPACK runs sparse) gets a controller of its own that raises its alpha whenever its sparsity
    falls below the floor's ramp (the same cubic ramp as a target); above the floor the layer
    follows the shared alpha. A layer still under its floor when training ends has its
    thresholds raised by the smallest common amount that meets it (`floor_lifts`, with a warning).

    Under `keras.distribution.DataParallel` on JAX (several processes or devices) that state is
    replicated, so every process takes the same decisions (`tfprune.distributed`).

    Args:
        alpha: the regularisation strength: a float >= 0 (default 5e-4, the paper's MNIST value),
            a callable `epoch -> float`, or a `keras.optimizers.schedules.LearningRateSchedule`
            evaluated at every training step.
        reset_fraction: a layer whose share of masked weights exceeds this gets its thresholds
            set back to 0. None disables the rule.
        reset_check_every: batches between two checks of the reset rule (default 10: one check
            costs about a fifth of a LeNet-300-100 training step on CPU), counted across
            epochs, so that epochs shorter than this are checked too.
        log_every_n_batches: also write the sparsity figures into batch logs every N batches.
        target_sparsity: if set, alpha (then the starting value) is steered so that training ends
            at this global sparsity; see `tfprune.controller.SparsityController`.
        layer_targets: `{layer_name: sparsity}` for layers steered to their own target (e.g.
            keep the first and last layers denser); the other layers share `target_sparsity`.
        control_every: steps between two alpha updates of the controller.
        reset_until: the share of training (0..1] after which the reset rule no longer fires
            (1.0: the paper's rule, to the end). A reset late in training regrows a collapsed
            layer with no time left to prune it again, which made high alphas a lottery; the
            default 0.5 keeps a given alpha's remaining ratio within 0.11 points over 3 seeds
            (BENCHMARKS.md section 12).
        target_ramp: the share of training (0..1] over which the controller's target rises, on a
            cubic ramp, from 0 to `target_sparsity` (tfmot GMP's `end_step`, as a share).
        finetune_epochs: the last epochs of `fit` train with the masks frozen: thresholds fixed,
            penalty off, reset rule and controllers off, the weights still training
            (`tfprune.freeze`); `logs["masks_frozen"]` is 1 then. Weight granularity only.

    Raises:
        ValueError: alpha < 0 or not finite, reset_fraction outside (0, 1], a target outside
            [0, 1), a step count that is not a positive integer, or (at train begin) a model
            without masked layers or an unknown name in `layer_targets`; (at the end of an
            epoch) training data that gave no batch.
        TypeError: alpha or a target of the wrong type.
        FloatingPointError: (while training) a non-finite loss, threshold or weight.
        RuntimeError: (at train begin) a distributed setting that cannot keep DST's state the
            same in every process.

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
        finetune_epochs=0,
        reset_until=0.5,
        target_ramp=0.5,
    ):
        super().__init__()
        if (target_sparsity is not None or layer_targets) and not _is_real(alpha):
            raise ValueError(
                "With target_sparsity or layer_targets, alpha is the controller's starting value "
                f"and must be a float. Received: alpha={alpha!r}"
            )
        if layer_targets is not None and not isinstance(layer_targets, dict):
            raise TypeError(
                "layer_targets must be a dict {layer_name: sparsity}. "
                f"Received: layer_targets={layer_targets!r}"
            )
        check_target(target_sparsity, "target_sparsity", optional=True)
        for name, target in (layer_targets or {}).items():
            check_target(target, f"layer_targets[{name!r}]")
        if _is_real(alpha):
            _check_alpha(alpha)
            if (target_sparsity is not None or layer_targets) and alpha == 0:
                raise ValueError(
                    "With a target, alpha is the controller's starting value, which moves in log "
                    "space: it must be > 0. Received: alpha=0"
                )
        elif not callable(alpha):
            raise TypeError(
                "alpha must be a float, a callable epoch -> float or a LearningRateSchedule. "
                f"Received: alpha={alpha!r}"
            )
        if reset_fraction is not None and not (
            _is_real(reset_fraction) and 0 < reset_fraction <= 1
        ):
            raise ValueError(
                "reset_fraction must be in (0, 1] (or None to disable the reset rule). "
                f"Received: reset_fraction={reset_fraction!r}"
            )
        checks = [("reset_check_every", reset_check_every), ("control_every", control_every)]
        if log_every_n_batches is not None:
            checks.append(("log_every_n_batches", log_every_n_batches))
        for name, value in checks:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not isinstance(finetune_epochs, int) or isinstance(finetune_epochs, bool) or finetune_epochs < 0:
            raise ValueError(
                f"finetune_epochs must be an integer >= 0. Received: finetune_epochs={finetune_epochs!r}"
            )
        self.finetune_epochs = finetune_epochs
        if not (_is_real(reset_until) and 0 < reset_until <= 1):
            raise ValueError(
                "reset_until must be in (0, 1]: the share of training after which the reset rule "
                f"no longer fires. Received: reset_until={reset_until!r}"
            )
        self.reset_until = reset_until
        if not (_is_real(target_ramp) and 0 < target_ramp <= 1):
            raise ValueError(
                "target_ramp must be in (0, 1]: the share of training over which the target "
                f"sparsity ramps in. Received: target_ramp={target_ramp!r}"
            )
        self.target_ramp = target_ramp
        self.target_sparsity = target_sparsity
        self.layer_targets = dict(layer_targets or {})
        self.control_every = control_every
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
        distributed.check_setting(self.model)
        self._epoch = 0
        self._batches = 0
        self._steps = 0  # batches since training began: checks keep their pace in short epochs
        self._resettable = [layer for layer in self._layers if layer.RESETS]
        self._check_layer_targets()
        self._groups = None
        self._floors = {}
        self.floor_lifts = {}
        self._silenced = batchnorm_followers(self.model, self._layers)
        self._frozen = None
        epochs = self.params.get("epochs") if self.params else None
        if self.finetune_epochs and epochs is not None and self.finetune_epochs >= epochs:
            raise ValueError(
                f"finetune_epochs={self.finetune_epochs} leaves no epoch of DST in a fit of "
                f"{epochs} epochs: make it smaller than epochs."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._batches = 0
        if self._groups is None:
            # Here, not at train begin: BackupAndRestore restores the layers' state then.
            self._groups = self._control_groups()
            self._floors = {
                layer.name: (layer, self._controller([layer], min(layer.min_sparsity + FLOOR_MARGIN, 0.999), floor=True))
                for layer in self._layers if layer.min_sparsity
            }  # fmt: skip
        epochs = self.params.get("epochs") or 0
        if self.finetune_epochs and epoch >= epochs - self.finetune_epochs:
            if self._frozen is None:
                self._lift_floors()  # before the masks freeze, so that the frozen ones meet them
                self._frozen = FrozenMasks(self._layers)
            self._set_alpha(self._layers, 0.0)
            return
        if not self._groups:
            self._set_alpha(self._layers, self._alpha_value(epoch))

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        self._steps += 1
        check_due = self._steps % self.reset_check_every == 0
        # Under JAX, fit trains on its own copies of the variables and writes them back only
        # when an epoch ends or a callback reads `self.model` (Keras' jax_state_sync): reading
        # it here makes the checks see this batch's weights, and what this method assigns the
        # state the next step trains from. Elsewhere it is a plain attribute.
        self.model  # noqa: B018
        if self._frozen is not None:
            self._frozen.hold()
            return
        loss = (logs or {}).get("loss")
        control = (self._groups or self._floors) and batch % self.control_every == 0
        reset = (
            self.reset_fraction is not None
            and self._resettable
            and check_due
            and self._progress(batch) <= self.reset_until
        )
        suspect = (loss is not None and not math.isfinite(loss)) or not thresholds_finite(self._layers)
        if suspect or control or reset:
            check_finite(self._layers, self._epoch, batch, loss)  # never act on NaN
        if control:
            self._control(batch)
        elif not self._groups and _is_step_schedule(self.alpha):
            self._set_alpha(self._layers, self._alpha_value(self._epoch))
        if reset:
            self._apply_reset_rule()
        if self._silenced and check_due:
            silence(self._silenced)
        n = self.log_every_n_batches
        if n and logs is not None and (batch + 1) % n == 0:
            logs.update(self.figures())

    def on_train_end(self, logs=None):
        silence(self._silenced)
        self._lift_floors()

    def _lift_floors(self):
        """Lifts the layers still under their floor, as the exported file counts it; warns with
        what it did.

        A lift counts the zeros of the units it kills, and `compact` removes those units and the
        channels they fed, so a layer at its floor can end under it once compacted. Each round
        raises a layer's goal by its shortfall in the compacted model, until none is short.
        """
        if not self._floors:
            return
        floors = {name: layer.min_sparsity for name, (layer, _) in self._floors.items()}
        goals = dict(floors)
        lifted = {}
        for _ in range(FLOOR_ROUNDS):
            for name, (layer, _) in self._floors.items():
                lift = lift_to_floor(layer, goals[name])
                if lift:
                    lifted[name] = lifted.get(name, 0.0) + lift
            shares = compacted_sparsity(self.model, floors)
            short = {name: share for name, share in shares.items() if share < floors[name]}
            if not short:
                break
            for name, share in short.items():
                goals[name] = min(goals[name] + floors[name] - share + 1e-3, 0.999)
        else:
            warnings.warn(
                f"DynamicPrune could not bring these layers to their min_sparsity in the compacted "
                f"model within {FLOOR_ROUNDS} lifts (share of zeros: {short}); XNNPACK will run them "
                "dense. Train longer or start from a larger alpha.",
                stacklevel=2,
            )
        self.floor_lifts.update(lifted)
        if lifted:
            warnings.warn(
                "DynamicPrune ended DST with layers under their min_sparsity; their thresholds were "
                f"raised to meet it: {lifted}. Train longer or start from a larger alpha "
                "to let training reach the floor itself.",
                stacklevel=2,
            )

    def on_epoch_end(self, epoch, logs=None):
        if not self._batches:
            raise ValueError(
                f"DynamicPrune saw no training batch in epoch {epoch}: the training data is "
                "empty, so nothing was trained or pruned. Pass non-empty x and y (or a dataset "
                "that yields batches)."
            )
        check_finite(self._layers, epoch, self._batches - 1)
        if logs is not None:
            logs.update(self.figures())

    # Figures ----------------------------------------------------------------------------------

    def figures(self):
        """`{"sparsity": global, "sparsity/<layer>": ..., "alpha": ...}` for the current weights."""
        figures = {}
        for layer in self._layers:
            figures.update(layer.pruning_logs())
        figures["sparsity"] = sparsity_of(self._layers)
        figures["threshold_resets"] = int(sum(_read(l.threshold_resets) for l in self._layers))
        figures["masks_frozen"] = int(self._frozen is not None)
        shared = self._groups.get(None, ([], None))[1]
        figures["alpha"] = shared.alpha if shared else _read(self._layers[-1].alpha)
        for name in self.layer_targets:
            figures[f"alpha/{name}"] = self._groups[name][1].alpha
        return figures

    # Internals --------------------------------------------------------------------------------

    def _alpha_value(self, epoch):
        if _is_step_schedule(self.alpha):
            step = int(self.model.optimizer.iterations.numpy())
            value, source = float(self.alpha(step)), f"alpha schedule at step {step}"
        elif callable(self.alpha):
            value, source = float(self.alpha(epoch)), f"alpha({epoch})"
        else:
            value, source = float(self.alpha), "alpha"
        _check_alpha(value, source)
        return value

    def _set_alpha(self, layers, value):
        for layer in layers:
            layer.alpha.assign(value)

    def _check_layer_targets(self):
        names = {layer.name for layer in self._layers}
        unknown = sorted(set(self.layer_targets) - names)
        if unknown:
            raise ValueError(
                f"layer_targets names {unknown}, which are not masked layers of the model. "
                f"Masked layers: {sorted(names)}."
            )

    def _control_groups(self):
        """`{name or None: (layers, controller)}`: one group per layer target, one for the rest."""
        if self.target_sparsity is None and not self.layer_targets:
            return {}
        by_name = {layer.name: layer for layer in self._layers}
        groups = {}
        for name, target in self.layer_targets.items():
            groups[name] = ([by_name[name]], target)
        rest = [layer for layer in self._layers if layer.name not in self.layer_targets]
        if rest and self.target_sparsity is not None:
            groups[None] = (rest, self.target_sparsity)
        if self.target_sparsity is None:
            self._set_alpha(rest, float(self.alpha))
        return {key: (layers, self._controller(layers, target)) for key, (layers, target) in groups.items()}

    def _controller(self, layers, target, floor=False):
        """A controller for `layers`, resuming the state their weights carry (if alpha ran)."""
        holder = next((l for l in layers if not l.min_sparsity), layers[0])  # floors keep their own
        start, integral = _read(holder.alpha), None
        if start > 0:  # a checkpoint or an earlier fit: continue where it stopped
            integral = _read(holder.alpha_integral)
        else:
            start = self.alpha if _is_real(self.alpha) else DEFAULT_ALPHA
            # A floor starts no weaker than the default: a tiny shared alpha must not stall it.
            start = max(start, DEFAULT_ALPHA) if floor else start
        return SparsityController(target, start, ramp_fraction=self.target_ramp, integral=integral)

    def _progress(self, batch):
        """The share of training done after `batch` of the current epoch."""
        steps, epochs = self.params.get("steps") or 1, self.params.get("epochs") or 1
        return (self._epoch * steps + batch + 1) / (epochs * steps)

    def _control(self, batch):
        progress = self._progress(batch)
        for layers, controller in self._groups.values():
            self._set_alpha(layers, controller.update(progress, target_sparsity_of(layers)))
            for layer in layers:
                if layer.name not in self._floors:  # a floored layer keeps its floor's integral
                    layer.alpha_integral.assign(controller.integral)
        for layer, controller in self._floors.values():
            floor_alpha = controller.update(progress, target_sparsity_of([layer]))
            layer.alpha.assign(max(floor_alpha, self._base_alpha(layer)))
            layer.alpha_integral.assign(controller.integral)

    def _base_alpha(self, layer):
        """The alpha `layer` would have without its floor: its group's, or the set value."""
        for layers, controller in self._groups.values():
            if layer in layers:
                return controller.alpha
        return self._alpha_value(self._epoch)

    def _apply_reset_rule(self):
        """Sets a layer's thresholds to 0 when more than `reset_fraction` of it is masked."""
        for layer in self._resettable:
            masks = [layer.mask(name) for name in layer.MASKED]
            kept = sum(float(ops.convert_to_numpy(ops.sum(mask))) for mask in masks)
            size = sum(math.prod(mask.shape) for mask in masks)
            if kept < (1.0 - self.reset_fraction) * size:
                for threshold in layer.threshold_variables():
                    threshold.assign(ops.zeros(threshold.shape, threshold.dtype))
                layer.threshold_resets.assign(layer.threshold_resets + 1)


def lift_to_floor(layer, floor=None, steps=40):
    """Raises `layer`'s thresholds by the smallest common amount (bisection) that brings its
    sparsity to `floor` (default: its `min_sparsity`); returns the amount (0.0 when it was
    already there)."""
    floor = layer.min_sparsity if floor is None else floor
    if target_sparsity_of([layer]) >= floor:
        return 0.0
    thresholds = [(t, ops.convert_to_numpy(t)) for t in layer.threshold_variables()]

    def shift(delta):
        for variable, start in thresholds:
            variable.assign(start + delta)
        return target_sparsity_of([layer])

    low = 0.0
    high = max(float(ops.convert_to_numpy(ops.max(ops.abs(getattr(layer, k))))) for k in layer.MASKED)
    high = high - min(float(start.min()) for _, start in thresholds) + 1e-6
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if shift(middle) >= floor else (middle, high)
    shift(high)
    return high


def compacted_sparsity(model, names):
    """`{name: share of zeros}` of the named layers' kernels in `compact(model)`, for the layers
    compaction keeps."""
    small, _ = compact(model)
    kept = {layer.name: count_nonzero(layer.kernel) for layer in small.layers if layer.name in names}
    return {name: (size - nonzero) / size for name, (size, nonzero) in kept.items()}


def _read(variable):
    return float(keras.ops.convert_to_numpy(variable))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_step_schedule(alpha):
    return isinstance(alpha, keras.optimizers.schedules.LearningRateSchedule)


def _check_alpha(value, source="alpha"):
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            "alpha must be a finite number >= 0: it scales the penalty alpha * "
            "sum(exp(-threshold)) that makes the model sparse (0 turns it off). "
            f"Received: {source}={value}"
        )
