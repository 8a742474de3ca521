"""The methods of the MLP/CNN suites: dense, DST (tfprune), and in processes of their own GMP
(tfmot) and PQuantML's DST.

A method is `fn(ctx, run, on_epoch)` -> the run's figures: `common.fit_and_evaluate`'s, the
kernel figures of `figures.remaining_weights`, and in an `export` suite the TFLite figures.
"""

import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import REPO_ROOT, common
from bench.figures import remaining_weights
from bench.models import MODELS
from bench.tflite_figures import tflite_figures


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: what gets a JSON line."""

    suite: str
    method: str
    params: dict
    seed: int
    label: str


@dataclasses.dataclass
class Context:
    """What every run of one suite shares: data, settings and a scratch directory."""

    suite: object  # a `bench.suites.Suite`
    arrays: dict
    settings: dict
    workdir: Path
    _data_file: Path = None

    @property
    def num_classes(self):
        return int(max(self.arrays["y_train"].max(), self.arrays["y_test"].max())) + 1

    def data_file(self):
        """The arrays as an .npz, written once, for subprocesses to train on the same data."""
        if self._data_file is None:
            self._data_file = self.workdir / f"data-{id(self)}.npz"
            np.savez(self._data_file, **self.arrays)
        return self._data_file


def run_one(ctx, run):
    """Runs `run` with its method under a per-epoch progress bar; returns its figures."""
    with tqdm(total=ctx.settings["epochs"], unit="epoch", desc=run.label, leave=False, dynamic_ncols=True) as epochs:

        def on_epoch(epoch, logs):
            shown = {k: f"{v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "sparsity")}
            epochs.set_postfix(shown, refresh=False)
            epochs.update(epoch + 1 - epochs.n)

        return METHODS[run.method](ctx, run, on_epoch)


def run_dense(ctx, run, on_epoch):
    model, result = _train_keras3(ctx, run, on_epoch)
    return {**result, **remaining_weights(model)}


def run_dst(ctx, run, on_epoch):
    """`granularity` and `thresholds` go to `prunable`, `retrain_mask` (True, or "uniform":
    `mask_retrain`) retrains the final mask, `dense_epochs` trains without the penalty first and
    `alpha_ramp_epochs` then ramps alpha in (`ramped`), `mask_rule` and
    `floor_fraction` swap the mask rule, `weight_gradient` goes to `prunable` (`"dense"`: to
    `bench.mask_rules.weight_gradient`), the other parameters go to
    `DynamicPrune`."""
    import tfprune

    from bench import mask_rules
    from bench.mask_retrain import uniform_masks

    params = dict(run.params)
    granularity = params.pop("granularity", "weight")
    thresholds = params.pop("thresholds", "unit")
    ramp = params.pop("alpha_ramp_epochs", 0)
    dense = params.pop("dense_epochs", 0)
    if ramp or dense:
        params["alpha"] = functools.partial(ramped, params["alpha"], ramp, dense_epochs=dense)
    rule = params.pop("mask_rule", None)
    floor_fraction = params.pop("floor_fraction", 0.02)
    jitter = params.pop("jitter", 0.5)
    retrain = params.pop("retrain_mask", False)
    gradient = params.pop("weight_gradient", "estimator")
    straight = gradient == "dense"  # bench-only (`mask_rules.weight_gradient`); the others tfprune's
    options = {"granularity": granularity, "thresholds": thresholds, "weight_gradient": "estimator" if straight else gradient}
    with mask_rules.mask_rule(rule, floor_fraction, jitter), mask_rules.weight_gradient("dense" if straight else None):
        model, result = _train_keras3(
            ctx, run, on_epoch, convert=lambda m: tfprune.prunable(m, **options),
            callbacks=[tfprune.DynamicPrune(**params)],
        )  # fmt: skip
        stripped = tfprune.strip(model)
        result.update(remaining_weights(stripped))
        if ctx.suite.export:
            result["tflite"] = tflite_figures(model, _build(ctx), ctx.arrays["x_test"][:256])
    # "uniform": DST's choice within each layer, at GMP's uniform share.
    masks = uniform_masks(model, result["remaining"]) if retrain == "uniform" else None
    return _retrain_mask(ctx, run, on_epoch, stripped, result, masks) if retrain else result


def run_gmp_keras3(ctx, run, on_epoch):
    """GMP as the tfmot row runs it (same schedule), in Keras 3 and this process
    (`bench.gmp_keras3`): `final_sparsity`, or matched to DST like the tfmot rows."""
    from bench.gmp_keras3 import gmp_schedule, gradual_magnitude_callback

    import keras

    total = math.ceil(len(ctx.arrays["x_train"]) / ctx.settings["batch_size"]) * ctx.settings["epochs"]
    schedule = gmp_schedule(total, run.params["final_sparsity"])
    model, result = _train_keras3(ctx, run, on_epoch, callbacks=[gradual_magnitude_callback(keras, schedule)])
    return {**result, **remaining_weights(model), "schedule": {**schedule, "total_steps": total}}


def _retrain_mask(ctx, run, on_epoch, stripped, pruned_result, masks=None):
    """`pruned_result` with its final mask (or `masks`) trained again from the Keras 3
    initialization of its seed: the accuracy, history and times become the retrained model's,
    the run's own are kept beside in `before_retrain`. With `masks` the weight figures become the
    retrained model's too (the run's own go to `before_retrain`); without, they stay (the mask is
    the same)."""
    import keras

    from bench.mask_retrain import fixed_masks_callback, kernel_masks

    given = masks is not None
    masks = masks if given else kernel_masks(stripped)
    model, result = _train_keras3(ctx, run, on_epoch, callbacks=[fixed_masks_callback(keras, masks)])
    kept = sum(int(m.sum()) for m in masks.values())
    if sum(int(m.sum()) for m in kernel_masks(model).values()) > kept:
        raise RuntimeError(f"retrain_mask: the masks {sorted(masks)} did not reach the rebuilt model's layers")
    weights = remaining_weights(model) if given else {}
    result.update(weights)
    replaced = ("test_accuracy", "history", "epoch_time", *weights)
    before = {k: pruned_result[k] for k in replaced if k in pruned_result}
    return {**pruned_result, **result, "before_retrain": before}


def ramped(alpha, epochs, epoch, dense_epochs=0):
    """Alpha at `epoch`: off for the first `dense_epochs`, then grown linearly to its value over
    `epochs` (at once with 0)."""
    if epoch < dense_epochs:
        return 0.0
    return alpha * min(1.0, (epoch - dense_epochs + 1) / epochs) if epochs else alpha


def run_gmp(ctx, run, on_epoch):
    """tfmot in a subprocess (it needs tf_keras): `_run_baseline`."""
    params = dict(run.params)
    params.pop("matched", None)
    params.pop("matched_on", None)
    retrain = params.pop("retrain_mask", False)
    stem = ctx.workdir / f"gmp-{os.getpid()}-{time.monotonic_ns()}"
    command = [
        sys.executable, "-m", "bench.tfmot_baseline",
        "--data", str(ctx.data_file()),
        "--model", ctx.suite.model,
        "--final-sparsity", repr(params.pop("final_sparsity")),
        "--epochs", str(ctx.settings["epochs"]),
        "--batch-size", str(ctx.settings["batch_size"]),
        "--lr", repr(ctx.settings["lr"]),
        "--momentum", repr(ctx.settings["momentum"]),
        "--optimizer", ctx.settings.get("optimizer", "sgd"),
        "--weight-decay", repr(ctx.settings.get("weight_decay", 0.0)),
        "--seed", str(run.seed),
        "--out", f"{stem}.json",
        "--save-weights", f"{stem}.npz",
    ]  # fmt: skip
    for key, value in params.items():
        flag = "--" + key.replace("_", "-")
        command += [flag, *map(str, value)] if isinstance(value, (list, tuple)) else [flag, str(value)]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    model, result = _run_baseline(ctx, "tfmot", command, env, stem, on_epoch)
    return _retrain_mask(ctx, run, on_epoch, model, result) if retrain else result


def run_pquant(ctx, run, on_epoch):
    """PQuantML's DST (`alpha`, `threshold_type`) in a subprocess of its own venv: it pins
    TensorFlow <= 2.20. The venv's interpreter is `$PQUANT_PYTHON`.

    A matched row (`final_sparsity`, from a DST run) cannot set its ratio, only alpha: it trains
    at the alphas of `match_alpha` and keeps the run closest to the ratio, with every try in
    `alpha_search`; `alpha_tries` caps the search (default 3)."""
    if ctx.settings.get("weight_decay"):
        raise ValueError("pquant rows do not take a suite's weight_decay (PQuantML's own training loop); drop them from the suite")
    python = os.environ.get("PQUANT_PYTHON", "/work/venvs/pquant/bin/python")
    if not os.access(python, os.X_OK):
        raise RuntimeError(
            f"no PQuantML interpreter at {python} (set PQUANT_PYTHON); build it with: python -m venv "
            '/work/venvs/pquant && /work/venvs/pquant/bin/pip install "tensorflow-cpu==2.20.*" "pquant-ml==0.1.0" numpy'
        )

    def train(alpha):
        stem = ctx.workdir / f"pquant-{os.getpid()}-{time.monotonic_ns()}"
        command = [
            python, "-m", "bench.pquant_baseline",
            "--data", str(ctx.data_file()),
            "--model", ctx.suite.model,
            "--alpha", repr(alpha),
            "--threshold-type", run.params.get("threshold_type", "channelwise"),
            "--epochs", str(ctx.settings["epochs"]),
            "--batch-size", str(ctx.settings["batch_size"]),
            "--lr", repr(ctx.settings["lr"]),
            "--momentum", repr(ctx.settings["momentum"]),
            "--seed", str(run.seed),
            "--out", f"{stem}.json",
            "--save-weights", f"{stem}.npz",
        ] + (["--jit-compile"] if ctx.settings["jit_compile"] else [])  # fmt: skip
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
        return {"alpha": alpha, **_run_baseline(ctx, "PQuantML", command, env, stem, on_epoch)[1]}

    if "final_sparsity" not in run.params:
        return train(run.params["alpha"])
    target = 1.0 - run.params["final_sparsity"]
    anchor_alpha, anchor_remaining = PQUANT_ANCHORS[ctx.suite.model]
    alpha = run.params.get("alpha", anchor_alpha * (target / anchor_remaining) ** (1 / PQUANT_SLOPE))
    return match_alpha(train, target, alpha, tries=run.params.get("alpha_tries", 3))


# PQuantML's remaining ratio against alpha on LeNet-300-100 (BENCHMARKS section 12, pquant300):
# 8.85% at 5e-4 and 1.30% at 1.5e-3, i.e. remaining ~ alpha ** -1.75 between them. A matched
# row's first alpha lies on that slope through its model's anchor, unless the row gives one.
# LeNet-5's anchor is tfprune's DST at 5e-4 (section 1), which PQuantML follows on LeNet-300.
PQUANT_SLOPE = -1.75
PQUANT_ANCHORS = {"lenet300": (5e-4, 0.0885), "lenet5": (5e-4, 0.054)}


def match_alpha(train, target, alpha, tries=3, tolerance=0.1, max_step=4.0):
    """Searches alpha for `train(alpha)` (-> figures with `remaining`) to end at `target`.

    The first try is `alpha`, then secant steps on log(remaining) against log(alpha), starting
    from `PQUANT_SLOPE` (and kept to a negative slope: more penalty, fewer weights), each step at
    most `max_step` times alpha either way: a run that regrew late (a flat or noisy secant) must
    not send the next try to an alpha of thousands. Stops when a run is within `tolerance`
    (relative) of `target` or after `tries` runs; returns the run closest to it in log ratio,
    with `alpha_search`: every try's alpha, remaining and accuracy.
    """
    runs = []
    slope = PQUANT_SLOPE
    for _ in range(tries):
        runs.append(train(alpha))
        if abs(runs[-1]["remaining"] / target - 1) <= tolerance:
            break
        if len(runs) >= 2:
            (a0, r0), (a1, r1) = ((math.log(r["alpha"]), math.log(r["remaining"])) for r in runs[-2:])
            if a1 != a0 and (r1 - r0) / (a1 - a0) < 0:
                slope = min(-0.25, (r1 - r0) / (a1 - a0))
        step = (math.log(target) - math.log(runs[-1]["remaining"])) / slope
        alpha = math.exp(math.log(alpha) + max(-math.log(max_step), min(math.log(max_step), step)))
    best = min(runs, key=lambda r: abs(math.log(r["remaining"] / target)))
    search = [{k: r[k] for k in ("alpha", "remaining", "test_accuracy")} for r in runs]
    return {**best, "alpha_search": search}


def _run_baseline(ctx, name, command, env, stem, on_epoch):
    """Runs a baseline script, following its `epoch i/n` lines; its stderr is kept for the error
    message. The script saves its pruned weights; this process loads them into the Keras 3
    architecture to count them (and, in an `export` suite, to export them). Returns that model and
    the run's figures."""
    with open(f"{stem}.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
        for line in process.stdout:
            if line.startswith("epoch "):
                on_epoch(int(line.split()[1].split("/")[0]) - 1, {})
        returncode = process.wait()
    if returncode != 0:
        tail = Path(f"{stem}.log").read_text().strip().splitlines()[-15:]
        raise RuntimeError(f"{name} subprocess exited with {returncode}:\n" + "\n".join(tail))
    result = json.loads(Path(f"{stem}.json").read_text())
    model = _build(ctx)
    with np.load(f"{stem}.npz") as saved:
        model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
    result.update(remaining_weights(model))
    if ctx.suite.export:
        result["tflite"] = tflite_figures(model, _build(ctx), ctx.arrays["x_test"][:256])
    return model, result


METHODS = {"dense": run_dense, "dst": run_dst, "gmp": run_gmp, "gmp_keras3": run_gmp_keras3, "pquant": run_pquant}


def _build(ctx):
    """The suite's architecture in Keras 3, freshly initialised."""
    return MODELS[ctx.suite.model].build(ctx.arrays["x_train"].shape[1:], ctx.num_classes)


def _train_keras3(ctx, run, on_epoch, convert=None, callbacks=()):
    import keras
    import tensorflow as tf

    keras.backend.clear_session()
    keras.utils.set_random_seed(run.seed)
    model = _build(ctx)
    if convert is not None:
        model = convert(model)
    common.compile_model(
        keras, model, ctx.settings["lr"], ctx.settings["momentum"], ctx.settings["jit_compile"],
        weight_decay=ctx.settings.get("weight_decay", 0.0),
    )  # fmt: skip
    result = common.fit_and_evaluate(
        keras, model, ctx.arrays, ctx.settings["epochs"], ctx.settings["batch_size"],
        callbacks=callbacks, on_epoch=on_epoch,
    )  # fmt: skip
    result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
    return model, result
