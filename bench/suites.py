"""The MLP/CNN suites of `python -m bench.run`: their rows, data, settings and run plan.

A suite is a model and its rows (`Experiment`s); a row expands per seed into `Run`s, and `plan`
turns those into `bench.runner.Row`s. GMP rows are matched to DST: one tfmot run at each
remaining ratio a DST run of the same seed reached, planned once those DST runs are recorded.
"""

import dataclasses

import numpy as np

from bench import methods
from bench.allocation import erk_targets
from bench.models import MODELS
from bench.runner import Row

PAPER_ALPHAS = (5e-4, 1.5e-3, 5e-3)  # Liu et al. 2020, the MNIST/Fashion-MNIST sweep.
# A record's setup besides its suite: the data, then the training options (`context`).
DATA_SETTINGS = ("dataset", "n_train", "n_test", "image_shape")
OPTIONS = ("epochs", "batch_size", "lr", "momentum", "jit_compile")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row of a suite: a method (a key of `methods.METHODS`) and its parameters.

    With `match`, the row expands at run time into one run per finished run of the method named
    `match` (same suite and seed), with `final_sparsity` = 1 - the remaining ratio it reached:
    its `remaining`, or with `params["matched_on"] = "remaining_compacted"` what is left of it
    after `tfprune.compact` (the size of the exported file). `match_min_remaining`: only runs
    that kept at least that share of the weights are matched.
    """

    method: str
    params: dict = dataclasses.field(default_factory=dict)
    match: str = None
    match_min_remaining: float = 0.0


@dataclasses.dataclass(frozen=True)
class Suite:
    """A model and its rows; with `export`, pruned rows also record TFLite size and latency;
    `weight_decay` (decoupled, the optimizer's) for every method of the suite alike."""

    model: str
    experiments: tuple
    export: bool = False
    weight_decay: float = 0.0


# A DST row's peers: GMP at each of its runs' ratio, PQuantML with alpha searched for it.
MATCHED = (Experiment("gmp", match="dst"), Experiment("pquant", {"threshold_type": "channelwise"}, match="dst"))
ONE_TRY_PQUANT = Experiment("pquant", {"threshold_type": "channelwise", "alpha_tries": 1}, match="dst")
PAPER_ROWS = (
    Experiment("dense"),
    *(Experiment("dst", {"alpha": alpha}) for alpha in PAPER_ALPHAS),
    # From alpha 1.5e-3 on, LeNet-300's first layer settles near 1% kept, where the reset rule
    # (thresholds to 0 past 99% masked) may regrow it late in training, depending on the seed;
    # these rows show the sparsity DST reaches without the rule.
    *(Experiment("dst", {"alpha": alpha, "reset_fraction": None}) for alpha in PAPER_ALPHAS[1:]),
    Experiment("gmp", match="dst"),
)
# Sparsity that runs fast: 1x4 blocks (TFLite's sparse kernel) against unstructured DST, tfmot's
# block pruning and whole units.
BLOCK_ROWS = (
    Experiment("dense"),
    Experiment("dst", {"granularity": (1, 4), "target_sparsity": 0.9}),
    Experiment("dst", {"target_sparsity": 0.9}),
    Experiment("gmp", {"final_sparsity": 0.9, "block_size": (1, 4)}),
    # tfmot's block_size is in the Keras kernel's (inputs, outputs) layout, so (1, 4) groups four
    # outputs; TFLite's 1x4 blocks group four inputs, which is tfmot's (4, 1).
    Experiment("gmp", {"final_sparsity": 0.9, "block_size": (4, 1)}),
    Experiment("dst", {"granularity": "unit", "target_sparsity": 0.6}),
)
# Epoch times measured on their own, on a machine doing nothing else (the long suites above ran
# side by side with other jobs, so their times are only indicative).
TIMING_ROWS = (
    Experiment("dense"),
    Experiment("dst", {"alpha": PAPER_ALPHAS[0]}),
    Experiment("gmp", match="dst"),
)
# Issue #13: does a fine-tuning phase with frozen masks (the last 4 of 20 epochs) close the gap
# to GMP at the paper's alpha, and does stopping the reset rule at half of training make the
# ratio of a high alpha predictable (the paper's rule regrew one seed in three at 1.5e-3)?
FINETUNE_ROWS = (
    Experiment("dst", {"alpha": PAPER_ALPHAS[0]}),
    Experiment("dst", {"alpha": PAPER_ALPHAS[0], "finetune_epochs": 4}),
    Experiment("dst", {"alpha": PAPER_ALPHAS[1], "reset_until": 0.5}),
    Experiment("dst", {"alpha": PAPER_ALPHAS[2], "reset_until": 0.5}),
    *MATCHED,
)
# Issue #13: the reset rule stopped at half of training on LeNet-5 (the paper's rule kept 5.55%
# at alpha 5e-3 there, one seed).
RESET_ROWS = (
    Experiment("dst", {"alpha": PAPER_ALPHAS[1], "reset_until": 0.5}),
    Experiment("dst", {"alpha": PAPER_ALPHAS[2], "reset_until": 0.5}),
    Experiment("gmp", match="dst"),
)
# Issue #13: is DST's per-layer allocation why it trails GMP at ~9%? DST held to GMP's uniform
# allocation (fc1 at 8.3%, the other layers steered to 8.7%), against GMP matched.
ALLOCATION_ROWS = (
    Experiment("dst", {"target_sparsity": 0.913, "layer_targets": {"fc1": 0.917}}),
    Experiment("gmp", match="dst"),
)
# Issue #13: does a gentler start close the gap at ~9%? Alpha ramped from a fifth of 5e-4 to
# 5e-4 over the first 5 epochs, against GMP matched.
WARMUP_ROWS = (
    Experiment("dst", {"alpha": PAPER_ALPHAS[0], "alpha_ramp_epochs": 5}),
    Experiment("gmp", match="dst"),
)
# The same ramp at a higher alpha, to land under 10% remaining (5e-4 ramped ended at ~11%).
WARMUP_HIGHER_ROWS = (
    Experiment("dst", {"alpha": 7e-4, "alpha_ramp_epochs": 5}),
    Experiment("gmp", match="dst"),
)
# Issue #13, the curves. LeNet-300: alpha ramped in over the first half of training (GMP prunes
# over its first 2/3), each DST run matched by GMP and PQuantML.
RAMP = 10
RAMP_CURVE_300 = (5e-4, 7e-4, 2e-3, 5e-3)  # with 1e-3 in SCHEDULE_SLOW_ROWS: ~15% to ~0.5%
# LeNet-5 at the paper's settings (constant alpha, the reset default), spaced to end at ~10%,
# ~5%, ~2% and ~0.5% remaining (section 1 and reset5: 5.4% at 5e-4, 0.79% at 1.5e-3).
CURVE_5 = (3.5e-4, 6e-4, 1e-3, 2e-3)
# LeNet-5 with the schedule that drew level with GMP on LeNet-300 at ~4-5% (alpha ramped in over
# 10 epochs): the alphas are curve5's ~10% and ~4% ones raised by the 1.4x the ramp cost there.
RAMP_CURVE_5 = (5e-4, 8.5e-4)
# Issue #13: on LeNet-5 DST keeps the convolutions at 72-81% and fc1 at 4.4% (GMP: 9.6% each).
# DST steered to GMP's uniform allocation by the target controller, against GMP matched.
UNIFORM_5 = 0.904
LENET5_KERNELS = {"conv1": (5, 5, 1, 20), "conv2": (5, 5, 20, 50), "fc1": (800, 500), "fc2": (500, 10)}
LENET5_LAYERS = tuple(LENET5_KERNELS)


def uniform_shares(target):
    """GMP's allocation: every LeNet-5 layer at the overall target."""
    return dict.fromkeys(LENET5_LAYERS, target)


ALLOCATION_5_ROWS = (
    Experiment("dst", {"target_sparsity": UNIFORM_5, "layer_targets": uniform_shares(UNIFORM_5)}),
    Experiment("gmp", match="dst"),
)
# Issue #13: the two explanations left, each with a mask rule of `bench.mask_rules`. Unit death:
# every unit keeps 2% of its fan-in (LeNet-300, the paper's alpha). DST's own allocation:
# thresholds in units of each kernel's mean |W| (steered to ~8.7% and ~9.6%, GMP's ratios).
FLOOR_300_ROWS = (
    Experiment("dst", {"alpha": PAPER_ALPHAS[0], "mask_rule": "floor", "floor_fraction": 0.02}),
    Experiment("gmp", match="dst"),
)
# Issue #13: which weights or how they are trained? DST's final mask trained again from the same
# initialization with the mask fixed (`bench.mask_retrain`), against GMP matched.
RETRAIN_300_ROWS = (
    Experiment("dst", {"alpha": PAPER_ALPHAS[0], "retrain_mask": True}),
    Experiment("gmp", match="dst"),
    Experiment("gmp", {"retrain_mask": True}, match="dst"),  # GMP's mask, retrained the same way
)
# DST's scores |W| - t choose the weights within each layer, at GMP's uniform share per layer.
REALLOCATE_5_ROWS = (Experiment("dst", {"alpha": CURVE_5[0], "retrain_mask": "uniform"}),)
RETRAIN_5_ROWS = (
    Experiment("dst", {"alpha": CURVE_5[0], "retrain_mask": True}),
    Experiment("gmp", match="dst"),
    Experiment("gmp", {"retrain_mask": True}, match="dst"),
)
RELATIVE_300_ROWS = (
    Experiment("dst", {"target_sparsity": 0.913, "mask_rule": "relative"}),
    Experiment("gmp", match="dst"),
)
RELATIVE_5_ROWS = (
    Experiment("dst", {"target_sparsity": UNIFORM_5, "mask_rule": "relative"}),
    Experiment("gmp", match="dst"),
)
# Issue #13: GMP's mask beats DST's because it spreads a layer's weights over all its units
# (reallocate5). DST with one threshold per kernel (`thresholds="layer"`) keeps the largest |W|
# within each layer, as GMP does, and still chooses each layer's share; GMP matched.
# The alphas span ~10% to ~3% on LeNet-5 (below 2% curve5's per-unit DST leads GMP by 1 to 5
# points) and ~10% to ~0.5% on LeNet-300; one threshold per layer cuts more at a given alpha.
LAYER_5 = (2.5e-4, 3.5e-4, 6e-4)
LAYER_300 = (4e-4, 5e-4, 1e-3, 3e-3)
LAYER_5_ROWS = (*(Experiment("dst", {"alpha": a, "thresholds": "layer"}) for a in LAYER_5), Experiment("gmp", match="dst"))
LAYER_300_ROWS = (*(Experiment("dst", {"alpha": a, "thresholds": "layer"}) for a in LAYER_300), Experiment("gmp", match="dst"))
# Issue #13: on LeNet-5 one threshold per layer cuts the layer of smallest weights (fc1 to 1-4%)
# and leaves the convolutions dense. The same single threshold in units of the kernel's mean |W|
# (the `relative` rule) keeps GMP's choice within a layer and no longer favours large-weight
# layers; steered by the target controller to ~10%, ~7% and ~4% remaining, GMP matched.
LAYER_RELATIVE_5 = (0.90, 0.93, 0.96)
LAYER_RELATIVE_5_ROWS = (
    *(Experiment("dst", {"target_sparsity": t, "thresholds": "layer", "mask_rule": "relative"}) for t in LAYER_RELATIVE_5),
    Experiment("gmp", match="dst"),
)
# Issue #13: GMP's allocation (every layer at the same share, by the controller's per-layer
# targets) with GMP's choice within a layer (one threshold per layer): what is left between DST
# and GMP is how the weights are trained.
def per_layer_rows(targets=(0.90, 0.95), allocation=uniform_shares, **params):
    """DST rows on LeNet-5 with one threshold per layer (GMP's choice within a layer), each
    layer steered to its share of `allocation(target)` (GMP's uniform one by default), with
    `params`; then GMP matched."""
    return (
        *(Experiment("dst", {"target_sparsity": t, "thresholds": "layer", **params,
                             "layer_targets": allocation(t)}) for t in targets),
        Experiment("gmp", match="dst"),
    )  # fmt: skip


LAYER_UNIFORM_5_ROWS = per_layer_rows()
# Issue #13: with GMP's mask shape DST still trails (layeruniform5): the training path. The
# weights trained with the dense, straight-through gradient of the masked model (masked weights
# too, `bench.mask_rules.weight_gradient`), per-unit and per-layer-uniform, GMP matched.
STRAIGHT_5_ROWS = (
    *(Experiment("dst", {"target_sparsity": t, "weight_gradient": "dense"}) for t in (0.90, 0.95)),
    Experiment("gmp", match="dst"),
)
STRAIGHT_UNIFORM_5_ROWS = per_layer_rows(weight_gradient="dense")
# Without the estimator's term in the weights' gradient (kept weights train as under GMP, masked
# ones not at all; the thresholds still learn through the estimator), per unit and GMP-shaped.
MASKED_GRADIENT_5_ROWS = (
    Experiment("dst", {"target_sparsity": 0.90, "weight_gradient": "masked"}),
    Experiment("gmp", match="dst"),
)
# Keras 3 GMP (`gmp_keras3`) matched too: is GMP's edge at these shapes tf_keras'?
KERAS3_GMP = Experiment("gmp_keras3", match="dst", match_min_remaining=0.03)  # at 4-10%
MASKED_GRADIENT_UNIFORM_5_ROWS = (*per_layer_rows(weight_gradient="masked"), KERAS3_GMP)
# What is left is the masks' path: DST's move until the end, GMP's ramp in over 2/3 of training and
# then freeze. The same rows on GMP's schedule (target ramped over 2/3, masks frozen for the last
# 7 of 20 epochs), and with the freeze alone.
GMP_SCHEDULE = {"target_ramp": 2 / 3, "finetune_epochs": 7}
SCHEDULE_UNIFORM_5_ROWS = (*per_layer_rows(weight_gradient="masked", **GMP_SCHEDULE), KERAS3_GMP)
FROZEN_UNIFORM_5_ROWS = per_layer_rows(weight_gradient="masked", finetune_epochs=7)
# What is left is the allocation: uniform shares are GMP's, DST's own are worse. The ERK shares
# of sparse training (conv1 and fc2 kept dense or nearly, conv2 and fc1 cut further) on the same
# rows (GMP's within-layer choice, masked gradient, GMP's schedule), tfmot GMP matched.
ERK_5_ROWS = per_layer_rows(
    allocation=lambda t: erk_targets(LENET5_KERNELS, t), weight_gradient="masked", **GMP_SCHEDULE
)
# The same gradient with one threshold per layer and DST's own allocation (layer5's alphas).
MASKED_GRADIENT_LAYER_5_ROWS = (
    *(Experiment("dst", {"alpha": a, "thresholds": "layer", "weight_gradient": "masked"}) for a in LAYER_5[1:]),
    Experiment("gmp", match="dst"),
)
# Issue #13: pruning helps generalisation through the noise of its cuts (Bartoldson et al.,
# NeurIPS 2020); DST's cuts are smooth. DST with thresholds jittered while training (weights
# near a threshold drop in and out), one spread per suite, GMP matched.
def jitter_rows(spread, targets=(0.90,)):
    return (
        *(Experiment("dst", {"target_sparsity": t, "mask_rule": "jitter", "jitter": spread}) for t in targets),
        Experiment("gmp", match="dst"),
    )
# Issue #13: tfmot runs in tf_keras, DST in Keras 3. GMP with tfmot's schedule in Keras 3
# (`bench.gmp_keras3`), at curve5's ratios (seed 0: 9.43% and 4.18% remaining), tells whether
# part of the gap is the framework's.
FRAMEWORK_5 = (0.9057, 0.9582)
# GMP scores 0.25-0.33 lower in Keras 3 than in tf_keras at 3 of 4 ratios (3 seeds). The dense
# model in each (tfmot's wrapper at sparsity 0 is tf_keras training the dense model) tells
# whether the framework's difference is GMP's or every model's.
FRAMEWORK_DENSE_5_ROWS = (Experiment("dense"), Experiment("gmp", {"final_sparsity": 0.0}))
# Issue #13: at 4-10% on LeNet-5, DST fits the training set better than GMP and tests lower:
# the gap is generalisation. The same runs with weight decay for both methods (5e-3 decoupled,
# about Caffe's L2 5e-4 under momentum 0.9) show whether the gap survives regularisation.
DECAY = 5e-3
DECAY_5_ROWS = (*(Experiment("dst", {"alpha": a}) for a in CURVE_5[:2]), Experiment("gmp", match="dst"))
# Issue #13: GMP's shape on DST: 4 epochs dense (no penalty), DST for 10, masks frozen for the
# last 6 (GMP: cuts until 2/3 of training, then trains its masks); the alphas raised for the
# shorter DST phase to land near curve5's ratios.
DENSE_5_ROWS = (
    *(Experiment("dst", {"alpha": a, "dense_epochs": 4, "finetune_epochs": 6}) for a in (4.5e-4, 8e-4)),
    Experiment("gmp", match="dst"),
)
# Issue #13: GMP prunes on a cubic schedule over the first 2/3 of training, then trains its
# masks for the last third. DST with the same shape: alpha ramped in, masks frozen at the end.
SCHEDULE_ROWS = (
    Experiment("dst", {"alpha": 7e-4, "alpha_ramp_epochs": 5, "finetune_epochs": 6}),
    Experiment("dst", {"alpha": 1e-3, "alpha_ramp_epochs": 5, "finetune_epochs": 6}),
    Experiment("gmp", match="dst"),
)
# A slower ramp (10 epochs), with and without frozen masks at the end.
SCHEDULE_SLOW_ROWS = (
    Experiment("dst", {"alpha": 1e-3, "alpha_ramp_epochs": 10}),
    Experiment("dst", {"alpha": 1.5e-3, "alpha_ramp_epochs": 10, "finetune_epochs": 6}),
    Experiment("gmp", match="dst"),
)
# Issue #13: how DST (per-unit thresholds) and GMP (a layer-wide cut) spread a layer's kept
# weights over its units, at the paper's alpha (`figures.units_of`, in every record since).
# DST's dead units' outgoing weights fold into biases in `compact`, so GMP is also matched on
# what is left after compaction (the exported size).
UNITS_ROWS = (
    Experiment("dst", {"alpha": PAPER_ALPHAS[0]}),
    Experiment("gmp", match="dst"),
    Experiment("gmp", {"matched_on": "remaining_compacted"}, match="dst"),
)
# PQuantML's Keras DST (own venv and process) at the paper's alphas, one threshold per unit as
# the paper: an outside implementation of the same method, for reference.
PQUANT_ROWS = tuple(
    Experiment("pquant", {"alpha": alpha, "threshold_type": "channelwise"}) for alpha in PAPER_ALPHAS
)
SUITES = {
    "lenet300": Suite("lenet300", PAPER_ROWS),
    "lenet5": Suite("lenet5", PAPER_ROWS),
    "timing300": Suite("lenet300", TIMING_ROWS),
    "timing5": Suite("lenet5", TIMING_ROWS),
    "blocks": Suite("lenet300", BLOCK_ROWS, export=True),
    "finetune300": Suite("lenet300", FINETUNE_ROWS),
    # The frozen-mask phase at the ratio the default reaches without it (~8.4% on the new batch
    # order): alpha raised on the -1.75 log-log slope from 9.65% at 5e-4.
    "finetune300b": Suite("lenet300", (Experiment("dst", {"alpha": 5.5e-4, "finetune_epochs": 4}), MATCHED[0])),
    "reset5": Suite("lenet5", RESET_ROWS),
    "allocation300": Suite("lenet300", ALLOCATION_ROWS),
    "warmup300": Suite("lenet300", WARMUP_ROWS),
    "warmup300b": Suite("lenet300", WARMUP_HIGHER_ROWS),
    "pquant300": Suite("lenet300", PQUANT_ROWS),
    "schedule300": Suite("lenet300", SCHEDULE_ROWS),
    "schedule300b": Suite("lenet300", SCHEDULE_SLOW_ROWS),
    "ramp300": Suite("lenet300", (*(Experiment("dst", {"alpha": a, "alpha_ramp_epochs": RAMP}) for a in RAMP_CURVE_300), *MATCHED)),
    "units300": Suite("lenet300", UNITS_ROWS),
    "curve5": Suite("lenet5", (*(Experiment("dst", {"alpha": a}) for a in CURVE_5), *MATCHED, KERAS3_GMP)),
    # curve5 again after the batch-order fix (`tfprune.data.shuffled_batches`): before it, every
    # Keras 3 row trained on one batch order, tfmot's tf_keras rows on a new one each epoch.
    "reshuffled5": Suite("lenet5", (Experiment("dense"), *(Experiment("dst", {"alpha": a}) for a in CURVE_5[:2]), *MATCHED)),
    # The frozen-mask phase on LeNet-5 near reshuffled5's ~8.6% row (alpha raised as finetune300b's).
    "finetune5": Suite("lenet5", (Experiment("dst", {"alpha": 3.8e-4, "finetune_epochs": 4}), MATCHED[0])),
    # PQuantML's search at these ratios is one try per run: on the fixed order three tries per
    # seed never reached them (its reset rule regrows late, BENCHMARKS section 12).
    "reshuffled5b": Suite("lenet5", (*(Experiment("dst", {"alpha": a}) for a in CURVE_5[2:]), MATCHED[0], ONE_TRY_PQUANT)),
    "allocation5": Suite("lenet5", ALLOCATION_5_ROWS),
    "floor300": Suite("lenet300", FLOOR_300_ROWS),
    "retrain300": Suite("lenet300", RETRAIN_300_ROWS),
    "retrain5": Suite("lenet5", RETRAIN_5_ROWS),
    "reallocate5": Suite("lenet5", REALLOCATE_5_ROWS),
    "relative300": Suite("lenet300", RELATIVE_300_ROWS),
    "relative5": Suite("lenet5", RELATIVE_5_ROWS),
    "dense5": Suite("lenet5", DENSE_5_ROWS),
    "layer5": Suite("lenet5", LAYER_5_ROWS),
    "layer300": Suite("lenet300", LAYER_300_ROWS),
    "layerrel5": Suite("lenet5", LAYER_RELATIVE_5_ROWS),
    "layeruniform5": Suite("lenet5", LAYER_UNIFORM_5_ROWS),
    "straight5": Suite("lenet5", STRAIGHT_5_ROWS),
    "straightuniform5": Suite("lenet5", STRAIGHT_UNIFORM_5_ROWS),
    "framework5": Suite("lenet5", (Experiment("gmp_keras3", {"final_sparsity": FRAMEWORK_5[0]}),)),
    "framework5b": Suite("lenet5", (Experiment("gmp_keras3", {"final_sparsity": FRAMEWORK_5[1]}),)),
    "frameworkdense5": Suite("lenet5", FRAMEWORK_DENSE_5_ROWS),
    "maskedgrad5": Suite("lenet5", MASKED_GRADIENT_5_ROWS),
    "maskedgraduniform5": Suite("lenet5", MASKED_GRADIENT_UNIFORM_5_ROWS),
    "maskedgradlayer5": Suite("lenet5", MASKED_GRADIENT_LAYER_5_ROWS),
    "scheduleuniform5": Suite("lenet5", SCHEDULE_UNIFORM_5_ROWS),
    "frozenuniform5": Suite("lenet5", FROZEN_UNIFORM_5_ROWS),
    "erk5": Suite("lenet5", ERK_5_ROWS),
    "jitter5": Suite("lenet5", jitter_rows(0.25)),
    "jitter5b": Suite("lenet5", jitter_rows(0.5)),
    "jitter5c": Suite("lenet5", jitter_rows(1.0)),
    "jitter5d": Suite("lenet5", jitter_rows(2.0)),
    "decay5": Suite("lenet5", DECAY_5_ROWS, weight_decay=DECAY),
    "ramp5": Suite("lenet5", (*(Experiment("dst", {"alpha": a, "alpha_ramp_epochs": RAMP}) for a in RAMP_CURVE_5), *MATCHED)),
}


# Planning ------------------------------------------------------------------------------------


def label(method, params, matched=None):
    """`"dst alpha=0.0005"`, `"gmp @ dst alpha=0.0005"`: the same for every seed, for grouping."""
    words = [method] + [f"{k}={_fmt(v)}" for k, v in params.items()]
    return " ".join(words + (["@", matched] if matched else []))


def _fmt(value):
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand(experiment, suite_name, seed, finished):
    """The concrete runs of one row, given the `finished` records (for `match` rows)."""
    if experiment.match is None:
        params = dict(experiment.params)
        return [methods.Run(suite_name, experiment.method, params, seed, label(experiment.method, params))]
    runs = []
    for record in finished:
        if (record["suite"] == suite_name and record["seed"] == seed and record["method"] == experiment.match
                and record["remaining"] >= experiment.match_min_remaining):
            params = {
                **experiment.params,
                "final_sparsity": 1.0 - record[experiment.params.get("matched_on", "remaining")],
                "matched": record["run"],
            }
            name = label(experiment.method, experiment.params, matched=record["run"])
            runs.append(methods.Run(suite_name, experiment.method, params, seed, name))
    return runs


def expected_runs(experiment, suite):
    """How many runs a row makes per seed: one, or one per row of the method it matches."""
    if experiment.match is None:
        return 1
    return sum(e.method == experiment.match and e.match is None for e in suite.experiments)


def plan(contexts, seeds, method_names, store, bar):
    """The `Row`s of every suite, seed and row, in run order.

    A generator: a `match` row is expanded when the runner reaches it, from the records the
    rows before it left in `store`; `bar.total` is corrected when it expands to fewer runs
    (matched runs that failed).

    Args:
        contexts: `{suite name: methods.Context}`.
        seeds: the seeds to run, e.g. `range(1, 3)`.
    """
    for name, ctx in contexts.items():
        experiments = [e for e in ctx.suite.experiments if e.method in method_names]
        for seed in seeds:
            for experiment in experiments:
                runs = expand(experiment, name, seed, store.finished(ctx.settings))
                if len(runs) != expected_runs(experiment, ctx.suite):
                    bar.total += len(runs) - expected_runs(experiment, ctx.suite)
                    bar.refresh()
                for run in runs:
                    head = {
                        "suite": run.suite, "model": ctx.suite.model, "run": run.label,
                        "method": run.method, "params": run.params, "seed": run.seed, **ctx.settings,
                    }  # fmt: skip
                    yield Row(head, lambda ctx=ctx, run=run: methods.run_one(ctx, run), ctx.settings)


def total_runs(suite_names, seeds, method_names):
    """How many runs `plan` makes, counting each `match` row as fully matched."""
    return seeds * sum(
        expected_runs(e, SUITES[name])
        for name in suite_names
        for e in SUITES[name].experiments
        if e.method in method_names
    )


# Data and settings ---------------------------------------------------------------------------


def load_arrays(dataset, train_size, test_size):
    from tfprune.data import load_dataset

    data = load_dataset(dataset)
    arrays = {
        "x_train": data.x_train[:train_size],
        "y_train": data.y_train[:train_size],
        "x_test": data.x_test[:test_size],
        "y_test": data.y_test[:test_size],
    }
    return data.name, arrays


def pad_to(arrays, side):
    """Zero-pads images to at least `side` x `side` (centred), for models that need a minimum."""
    height, width = arrays["x_train"].shape[1:]
    if height >= side and width >= side:
        return arrays
    dh, dw = max(0, side - height), max(0, side - width)
    padding = ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2))
    return {k: np.pad(v, padding) if k.startswith("x") else v for k, v in arrays.items()}


def context(name, dataset, arrays, options, workdir):
    """The `methods.Context` of suite `name`: its (padded) data and the settings its records
    carry. `options`: `epochs`, `batch_size`, `lr`, `momentum`, `jit_compile`."""
    suite = SUITES[name]
    suite_arrays = pad_to(arrays, MODELS[suite.model].min_side)
    settings = {
        "dataset": dataset,
        "n_train": len(suite_arrays["x_train"]),
        "n_test": len(suite_arrays["x_test"]),
        "image_shape": list(suite_arrays["x_train"].shape[1:]),
        **{k: options[k] for k in OPTIONS},
        # Only where set, so that the records written before the option keep their setup.
        **({"weight_decay": suite.weight_decay} if suite.weight_decay else {}),
        # Records without it trained Keras 3 rows on one batch order (`tfprune.data.shuffled_batches`).
        "batch_order": "reshuffled",
    }
    return methods.Context(suite, suite_arrays, settings, workdir)


def summary(store):
    """`summary(record)`: one line per finished run, with its epoch time relative to the dense
    run of its suite, seed and settings."""

    def line(record):
        head = f"{record['suite']} | {record['run']} | seed {record['seed']}"
        if record["status"] != "ok":
            return f"{head}: FAILED\n{record['error']}"
        same = {k: record[k] for k in ("suite", "seed", *DATA_SETTINGS, *OPTIONS)}
        dense = [
            r["epoch_time"] for r in store.finished(same) if r is not record and r["method"] == "dense"
        ]  # fmt: skip
        relative = f" ({record['epoch_time'] / dense[-1]:.2f}x dense)" if dense else ""
        return (
            f"{head}: accuracy {record['test_accuracy']:.4f}, remaining {record['remaining']:.4f}, "
            f"epoch {record['epoch_time']:.2f}s{relative}"
        )

    return line
