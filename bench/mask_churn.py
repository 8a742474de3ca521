"""How much DST's masks move while it trains, and how long its final weights have been kept.

    python -m bench.mask_churn --model lenet300 --alpha 5e-4 --seeds 3

GMP's masks only shrink: every weight it ends with has been in the mask, and training, since
the first step. DST's thresholds move every step, so a weight can leave and come back. This
trains DST at the paper's settings and records, per epoch and masked layer, the share of mask
entries that changed over each span of `--every` batches (mean over the epoch), and at the end
the share of each layer's final weights that were kept without a break since the end of each
epoch. One JSON line per seed, appended to --out.
"""

import argparse
import functools
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench import OUT_DIR, common
from bench.methods import ramped
from bench.models import MODELS
from bench.records import append_record


def churn_callback(keras, every):
    """A callback recording mask changes every `every` batches, and since when each entry of
    each mask has been on without a break (in epochs, fractional)."""
    from tfprune.layers.base import masked_layers

    class MaskChurn(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start(masked_layers(self.model))

        def start(self, layers):
            self.layers = layers
            self.masks = self._masks()
            self.kept_since = [np.zeros(m.shape) for m in self.masks]
            self.epoch_flips, self.per_epoch = [], []

        def _masks(self):
            return [keras.ops.convert_to_numpy(layer.mask()).astype(bool) for layer in self.layers]

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.epoch_flips = epoch, []

        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % every:
                return
            masks = self._masks()
            self.epoch_flips.append([float(np.mean(new != old)) for new, old in zip(masks, self.masks)])
            now = self.epoch + (batch + 1) / self.params["steps"]
            for since, new, old in zip(self.kept_since, masks, self.masks):
                since[new & ~old] = now  # (re)joined: its run of being kept starts now
            self.masks = masks

        def on_epoch_end(self, epoch, logs=None):
            flips = np.mean(self.epoch_flips, axis=0) if self.epoch_flips else [0.0] * len(self.layers)
            self.per_epoch.append({
                "epoch": epoch + 1,
                "flips": {layer.name: float(f) for layer, f in zip(self.layers, flips)},
                "kept": {layer.name: float(m.mean()) for layer, m in zip(self.layers, self.masks)},
            })  # fmt: skip

        def kept_without_break(self, epochs):
            """`{layer: [share of its final weights kept since the end of epoch e, e = 0..N]}`."""
            return {
                layer.name: [float(np.mean(since[mask] <= e)) for e in range(epochs + 1)]
                for layer, mask, since in zip(self.layers, self.masks, self.kept_since)
            }

    return MaskChurn()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet300", choices=("lenet300", "lenet5"))
    parser.add_argument("--alpha", type=float, default=5e-4)
    parser.add_argument("--alpha-ramp-epochs", type=int, default=0)
    parser.add_argument("--finetune-epochs", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--every", type=int, default=100, help="batches between two mask reads")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "mask_churn.jsonl")
    args = parser.parse_args(argv)

    import keras

    import tfprune
    from tfprune.data import load_dataset

    data = load_dataset("auto")
    alpha = args.alpha
    if args.alpha_ramp_epochs:
        alpha = functools.partial(ramped, args.alpha, args.alpha_ramp_epochs)
    for seed in tqdm(range(args.seeds), unit="seed", desc="mask churn"):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        spec = MODELS[args.model]
        model = tfprune.prunable(spec.build(data.x_train.shape[1:], data.num_classes))
        common.compile_model(keras, model, 0.01, 0.9, jit_compile=spec.jit_compile)
        churn = churn_callback(keras, args.every)
        prune = tfprune.DynamicPrune(alpha=alpha, finetune_epochs=args.finetune_epochs)
        model.fit(data.x_train, data.y_train, batch_size=64, epochs=args.epochs, verbose=0, callbacks=[prune, churn])
        _, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1000, verbose=0)
        append_record(args.out, {
            "model": args.model, "dataset": data.name, "seed": seed, "epochs": args.epochs,
            "alpha": args.alpha, "alpha_ramp_epochs": args.alpha_ramp_epochs,
            "finetune_epochs": args.finetune_epochs, "every": args.every,
            "test_accuracy": float(accuracy), "per_epoch": churn.per_epoch,
            "kept_without_break": churn.kept_without_break(args.epochs),
        })  # fmt: skip


if __name__ == "__main__":
    main()
