"""Training and measuring, shared by the Keras 3 runner and the tf_keras (tfmot) subprocess.

Nothing here imports Keras: callers pass `keras` or `tf_keras`, so both processes use one
definition of the paper's training settings and the epoch clock. (Weights are counted in the
Keras 3 process only: `bench.figures`.)
"""

import argparse
import json
import os
import time

import numpy as np


def compile_model(keras, model, lr, momentum, jit_compile=False, optimizer="sgd", decay_steps=None, weight_decay=0.0):
    """SGD with momentum on logits, as in the paper (lr 0.01, momentum 0.9); or Adam (the
    sequence suite's Transformer and GRU, which SGD trains too slowly for a few epochs). With
    `decay_steps`, the learning rate follows a cosine from `lr` to 0 over that many steps.

    `weight_decay` is the optimizer's (decoupled: `w -= lr * weight_decay * w` each step, the same
    rule in Keras 3 and tf_keras). DST's thresholds are left out: they are not weights, and
    decaying them would pull against the penalty that sets the sparsity."""
    if decay_steps:
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps)
    decay = {"weight_decay": weight_decay} if weight_decay else {}
    if optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=lr, **decay)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum, **decay)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["threshold"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def fit_and_evaluate(keras, model, arrays, epochs, batch_size, callbacks=(), on_epoch=None):
    """Trains on `arrays["x_train"]`, evaluates on the test split, times every epoch.

    No validation data is passed to `fit`, so epoch times are training only.

    Returns:
        `{"test_accuracy", "test_loss", "epoch_times", "epoch_time", "epoch_cpu_times",
        "epoch_cpu_time", "history"}` where `epoch_time` is the mean wall time over epochs
        after the first (which includes graph tracing) and `epoch_cpu_time` the same in CPU
        seconds of this process, which other jobs on the machine disturb far less.
    """

    class EpochClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.cpu_times = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)
            self.cpu_times.append(time.process_time() - self.cpu_start)
            if on_epoch is not None:
                on_epoch(epoch, logs or {})

    # Last, so it sees the logs the other callbacks (e.g. DynamicPrune's sparsity) wrote.
    from tfprune.data import shuffled_batches

    clock = EpochClock()
    # A new batch order every epoch in both frameworks (Keras 3's own shuffle repeats one order
    # in a seeded run: `shuffled_batches`), drawn from numpy's RNG, which the run's seed set.
    batches = shuffled_batches(arrays["x_train"], arrays["y_train"], batch_size, seed=int(np.random.randint(2**31 - 1)))
    history = model.fit(batches, epochs=epochs, shuffle=False, verbose=0, callbacks=[*callbacks, clock])
    loss, accuracy = model.evaluate(arrays["x_test"], arrays["y_test"], batch_size=1000, verbose=0)
    return {
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "epoch_times": clock.times,
        "epoch_time": steady_epoch_time(clock.times),
        "epoch_cpu_times": clock.cpu_times,
        "epoch_cpu_time": steady_epoch_time(clock.cpu_times),
        "history": {  # numeric logs only: a callback may log text (PQuantML's "stage")
            k: [float(v) for v in values]
            for k, values in history.history.items()
            if not any(isinstance(v, str) for v in values)
        },
    }


def steady_epoch_time(times):
    """Mean epoch time without the first epoch (tracing, warm-up) when there is more than one."""
    steady = times[1:] or times
    return float(np.mean(steady))



WARMUP = 10  # steps of each timed round left out of the clock (fit's set-up, first batches)


def timed_steps(keras, model, x, y, steps, batch_size, callbacks=()):
    """Seconds for `steps` training steps of an already-traced model, after `WARMUP` steps.

    One short `fit` (no shuffling), so rounds of two models can alternate in one process and
    load from other jobs hits both alike.
    """

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == WARMUP:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    clock = Clock()
    n = (steps + WARMUP) * batch_size
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
              callbacks=[*callbacks, clock])  # fmt: skip
    return clock.seconds


def argument_parser(module, doc):
    """The parser of a `python -m <module>` entry point: the docstring's first paragraph as the
    description, the rest (its commands) as the epilog, line breaks kept."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=doc.split("\n\n")[0], epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip


def baseline_arguments(parser, models=None):
    """The arguments every baseline script (`tfmot_baseline`, `pquant_baseline`) takes from
    `bench.methods`, which starts it in a process of its own: the data, the model and the
    training settings in, the result JSON and the pruned weights out."""
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--model", required=True, choices=models, help="a name in bench.models.MODELS")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    parser.add_argument("--save-weights", help="also save the pruned weights (.npz, w0, w1, ...)")


def write_result(path, result):
    """A baseline script's result JSON, written whole or not at all (the runner reads it after
    the process ends; a killed process leaves only the `.partial`)."""
    partial = path + ".partial"
    with open(partial, "w") as f:
        json.dump(result, f)
    os.replace(partial, path)


def parse_lists(parser, args, parts=None, zero_ok=True):
    """Turns the comma-separated `--targets` (shares in [0, 1), or (0, 1) without `zero_ok`) and
    `--only` (names in `parts`) into lists, stopping with the parser's error on a bad item."""
    args.targets = [float(t) for t in args.targets.split(",")]
    args.only = args.only.split(",") if args.only else None
    for part in args.only or ():
        if parts is not None and part not in parts:
            parser.error(f"--only takes {', '.join(parts)}. Received: {part}")
    for target in args.targets:
        if not (0 <= target < 1 if zero_ok else 0 < target < 1):
            parser.error(f"targets must be in {'[0' if zero_ok else '(0'}, 1). Received: {target}")
