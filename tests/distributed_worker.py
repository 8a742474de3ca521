"""One process of tests/test_distributed.py, started by `tfprune.launch`.

    python tests/distributed_worker.py OUT_DIR SCENARIO[,SCENARIO...] [--backup DIR]

Scenarios (each a fresh model on the 8x8 digits, global batch 64, shuffle off, 3 epochs):
`alpha` (fixed alpha), `target` (target_sparsity), `nodist` (no distribution set), `crash`
(`alpha` under BackupAndRestore(DIR/process-<rank>), stopped at the start of epoch 2 as a crash
would) and `resume` (`alpha` under that BackupAndRestore again). Each writes
OUT_DIR/<scenario>-<rank>.npz (thresholds, masks, sparsity per epoch) or, when fit raises,
OUT_DIR/<scenario>-<rank>.error.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import tfprune  # noqa: E402
from tfprune import distributed  # noqa: E402
from tfprune.layers.base import masked_layers  # noqa: E402

GLOBAL_BATCH = 64
EPOCHS = 3


class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"interrupted at epoch {epoch}")


def model_and_data():
    digits = load_digits()
    x = (digits.data / 16).astype("float32")
    y = digits.target.astype("int32")
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(
        keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(64, activation="relu", name="hidden"),
             keras.layers.Dense(10, name="logits")]
        )
    )
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model, *distributed.local_batches(GLOBAL_BATCH, x, y)


def run(scenario, args):
    callbacks = {
        "alpha": [tfprune.DynamicPrune(alpha=5e-3)],
        "target": [tfprune.DynamicPrune(target_sparsity=0.6, control_every=5)],
        "nodist": [tfprune.DynamicPrune(alpha=5e-3)],
        "crash": [tfprune.DynamicPrune(alpha=5e-3), Interrupt(2)],
        "resume": [tfprune.DynamicPrune(alpha=5e-3)],
    }[scenario]
    if scenario in ("crash", "resume"):
        rank_dir = os.path.join(args.backup, f"process-{distributed.process_index()}")
        callbacks.insert(0, keras.callbacks.BackupAndRestore(rank_dir))
    distribution = keras.distribution.distribution()
    if scenario == "nodist":
        keras.distribution.set_distribution(None)
    try:
        model, x, y = model_and_data()
        batch = GLOBAL_BATCH // distributed.process_count()
        history = model.fit(x, y, batch_size=batch, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=callbacks)
    finally:
        keras.distribution.set_distribution(distribution)
    state = {"sparsity": np.array(history.history["sparsity"])}
    for layer in masked_layers(model):
        state[f"{layer.name}/threshold"] = keras.ops.convert_to_numpy(layer.threshold)
        state[f"{layer.name}/mask"] = keras.ops.convert_to_numpy(layer.mask())
    return state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("scenarios")
    parser.add_argument("--backup")
    args = parser.parse_args()
    distributed.data_parallel()
    rank = distributed.process_index()
    for scenario in args.scenarios.split(","):
        try:
            state = run(scenario, args)
        except (RuntimeError, KeyboardInterrupt) as error:
            (args.out / f"{scenario}-{rank}.error").write_text(f"{type(error).__name__}: {error}")
            continue
        np.savez(args.out / f"{scenario}-{rank}.npz", **state)


if __name__ == "__main__":
    main()
