"""The training rows of the LSTM suite: dense, DST, paired step time, hidden-state pruning.

A row is `fn(ctx)` -> its figures, `ctx` a `bench.lstm_suite.Context`. Trained models are saved
in `ctx.models` for the rows after them (hidden-state rows start from DST; exports load them).
"""

import time

import numpy as np
from tqdm import tqdm

from bench import common
from bench.figures import kernel_figures, param_count
from bench.models import MODELS

ALPHA = 1e-3  # Liu et al. 2020, LSTM-a on MNIST


def build(seed):
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return MODELS["lstm_a"].build((28, 28), 10)


def compile_adam(model, lr):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train(model, arrays, batch_size, epochs, callbacks=()):
    """`common.fit_and_evaluate` with a per-batch progress bar."""
    import keras

    steps = -(-len(arrays["x_train"]) // batch_size)
    bar = tqdm(total=epochs * steps, unit="step", desc="  train", mininterval=10, leave=False)

    class Progress(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            bar.update()

        def on_epoch_end(self, epoch, logs=None):
            shown = ("loss", "accuracy", "sparsity")
            bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items() if k in shown})
            tqdm.write(f"  epoch {epoch + 1}/{epochs}: " + short(logs))

    try:
        return common.fit_and_evaluate(
            keras, model, arrays, epochs, batch_size, callbacks=[*callbacks, Progress()]
        )
    finally:
        bar.close()


def row_dense(ctx):
    model = build(ctx.seed)
    compile_adam(model, ctx.settings["lr"])
    result = train(model, ctx.arrays, ctx.settings["batch_size"], ctx.settings["epochs"])
    model.save(ctx.models / "dense.keras")
    return {**result, **kernel_figures(model)}


def row_dst(ctx):
    """DST from scratch; also the hidden-state sparsity the dead units give for free."""
    import tfprune

    model = tfprune.prunable(build(ctx.seed))
    compile_adam(model, ctx.settings["lr"])
    result = train(
        model, ctx.arrays, ctx.settings["batch_size"], ctx.settings["epochs"],
        [tfprune.DynamicPrune(alpha=ALPHA)],
    )  # fmt: skip
    model.save(ctx.models / "dst.keras")
    free, _ = tfprune.lstm.prune_hidden_state(model, ctx.arrays["x_calibration"], 0.0)
    return {
        **result,
        **kernel_figures(model),
        "hidden_at_threshold_0": hidden_figures(free, ctx.arrays["x_test"]),
        **units_removed(model, ctx),
    }


def row_step_time(ctx):
    """Train-step time of DST vs keras.layers.LSTM, alternating, so machine load hits both."""
    import tfprune

    batch = ctx.settings["batch_size"]
    x, y = ctx.arrays["x_train"][:batch], ctx.arrays["y_train"][:batch]
    models = {"dense": build(0), "dst": tfprune.prunable(build(0))}
    for model in models.values():
        compile_adam(model, ctx.settings["lr"])
        model.train_on_batch(x, y)  # tracing
    times = {name: [] for name in models}
    for _ in tqdm(range(ctx.rounds), desc="  rounds", leave=False):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(20):
                model.train_on_batch(x, y)
            times[name].append(1000 * (time.perf_counter() - start) / 20)
    best = {name: min(values) for name, values in times.items()}
    median = {name: float(np.median(values)) for name, values in times.items()}
    return {
        "step_ms_min": best,
        "step_ms_median": median,
        "ratio_min": best["dst"] / best["dense"],
        "ratio_median": median["dst"] / median["dense"],
        "rounds_ms": times,
    }


def row_hidden(ctx, target, rounds):
    """Calibrate the DST model's hidden-state thresholds to `target`, then fine-tune the weights
    in `rounds` slices per epoch, recalibrating before each slice.

    Fine-tuning lifts |h| over fixed thresholds (after a whole epoch at 0.6, the measured sparsity
    fell to 0.35), and recalibrating after the last slice costs accuracy the fine-tune never
    recovers (15 points at 0.6); so thresholds track the target during the fine-tune and the
    model is measured as the last slice leaves it.
    """
    import keras
    import tfprune

    arrays, settings = ctx.arrays, ctx.settings
    dst = keras.saving.load_model(ctx.models / "dst.keras")
    model, calibration = tfprune.lstm.prune_hidden_state(dst, arrays["x_calibration"], target)
    for layer in tfprune.layers.masked_layers(model):
        for threshold in layer.threshold_variables():
            threshold.trainable = False  # stage 3: weights only
    compile_adam(model, settings["lr"])
    _, before = model.evaluate(arrays["x_test"], arrays["y_test"], batch_size=1000, verbose=0)
    hidden_before = hidden_figures(model, arrays["x_test"])
    rng = np.random.default_rng(ctx.seed)
    steps, seconds = [], 0.0
    for epoch in range(settings["finetune_epochs"]):
        order = rng.permutation(len(arrays["x_train"]))
        for part, indices in enumerate(np.array_split(order, rounds)):
            if epoch or part:
                calibration = tfprune.lstm.calibrate(model, arrays["x_calibration"], target)
            sliced = {**arrays, "x_train": arrays["x_train"][indices], "y_train": arrays["y_train"][indices]}
            result = train(model, sliced, settings["batch_size"], 1)
            seconds += result["epoch_times"][0]
            steps.append({
                "test_accuracy": result["test_accuracy"],
                "thresholds": {k: v["hidden_threshold"] for k, v in calibration.items()},
            })  # fmt: skip
    model.save(ctx.models / f"{hidden_file({'target': target, 'rounds': rounds})}.keras")
    return {
        "test_accuracy": steps[-1]["test_accuracy"],
        "epoch_time": seconds / settings["finetune_epochs"],
        "finetune": steps,
        "accuracy_before_finetune": float(before),
        "hidden_before_finetune": hidden_before,
        "calibration": calibration,
        "hidden": hidden_figures(model, arrays["x_test"]),
        **kernel_figures(model),
        **units_removed(model, ctx),
    }


def hidden_file(params):
    """The saved model of the hidden-state row with these params (`target`, `rounds`)."""
    return f"hidden-{params['target']:g}-r{params['rounds']}"


# Figures ---------------------------------------------------------------------------------------


def hidden_figures(model, x):
    """`tfprune.lstm.measure` on `x`, plus `sparse_macs_skipped`: the share of the *sparse* `h U`
    multiply-adds (those left after weight pruning) that zero chunks skip on top.

    `recurrent_macs_skipped` is over the dense `h U`; dividing what is left of it by the
    recurrent kernel's nonzero share (`sparsity_report`) puts it over the sparse one.
    """
    import tfprune

    report = tfprune.lstm.measure(model, x, batch_size=1000)
    rows = tfprune.sparsity_report(model).to_dict()["layers"]
    for name, figures in report.items():
        (row,) = [r for r in rows if (r["layer"], r["weight"]) == (name, "recurrent_kernel")]
        kept = row["nonzeros"] / row["params"]
        done = 1 - figures["recurrent_macs_skipped"]
        figures["sparse_macs_skipped"] = float(1 - done / kept) if kept else 1.0
    return report


def units_removed(model, ctx):
    """Hidden units removed by `tfprune.compact`: exactly dead ones (stripped model), and also
    those never active on the calibration data (`data=`), with the latter's test accuracy."""
    import tfprune

    arrays = ctx.arrays
    compacted, exact = tfprune.compact(model)
    by_data, report = tfprune.compact(model, data=arrays["x_calibration"])
    compile_adam(by_data, ctx.settings["lr"])
    _, accuracy = by_data.evaluate(arrays["x_test"], arrays["y_test"], batch_size=1000, verbose=0)
    return {
        "compact": {
            "units": {layer.name: layer.units_after for layer in exact.layers},
            "param_count": param_count(compacted),
        },
        "compact_by_data": {
            "units": {layer.name: layer.units_after for layer in report.layers},
            "by_data": {layer.name: len(layer.by_data) for layer in report.layers},
            "param_count": param_count(by_data),
            "test_accuracy": float(accuracy),
        },
    }


def short(logs):
    return ", ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
