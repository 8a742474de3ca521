"""GMP baseline: tfmot's `prune_low_magnitude` with a PolynomialDecay schedule.

tfmot needs legacy Keras 2 (tf_keras), which cannot share a process with the Keras 3 rows, so
`bench.run` starts this script in its own process:

    TF_USE_LEGACY_KERAS=1 python -m bench.tfmot_baseline --data data.npz --model lenet300 \
        --final-sparsity 0.95 --epochs 20 --seed 0 --out result.json

It prints `epoch i/n` per epoch (the runner's progress bar) and writes the result as JSON; with
--save-weights, the stripped weights too, which the runner loads into the Keras 3 model to count
(`bench.figures`) and export. Counting happens there, so one function counts every row.
"""

import argparse
import math
import os

# Before TensorFlow is imported: tfmot only works with tf.keras = tf_keras.
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def main(argv=None):
    from bench import common, models
    from bench.gmp_keras3 import gmp_schedule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.baseline_arguments(parser)
    parser.add_argument("--final-sparsity", type=float, required=True)
    parser.add_argument("--block-size", type=int, nargs=2, metavar=("ROWS", "COLS"))
    parser.add_argument("--end-fraction", type=float, default=2 / 3)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="decoupled, as in common.compile_model")
    parser.add_argument("--cosine", action="store_true", help="cosine learning-rate decay to 0 (bench.cnn)")
    parser.add_argument("--policy", choices=("xnnpack",), help="tfmot's PruneForLatencyOnXNNPack (bench.cnn)")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras

    with np.load(args.data) as f:
        arrays = {k: f[k] for k in f.files}
    tf_keras.utils.set_random_seed(args.seed)
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    model = models.MODELS[args.model].build(arrays["x_train"].shape[1:], num_classes, keras=tf_keras)

    total_steps = math.ceil(len(arrays["x_train"]) / args.batch_size) * args.epochs
    schedule = gmp_schedule(total_steps, args.final_sparsity, args.end_fraction)
    options = {"block_size": tuple(args.block_size)} if args.block_size else {}
    if args.policy:
        options["pruning_policy"] = tfmot.sparsity.keras.PruneForLatencyOnXNNPack()
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        model, pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(**schedule), **options
    )
    common.compile_model(tf_keras, pruned, args.lr, args.momentum, optimizer=args.optimizer,
                         decay_steps=total_steps if args.cosine else None, weight_decay=args.weight_decay)  # fmt: skip
    result = common.fit_and_evaluate(
        tf_keras,
        pruned,
        arrays,
        args.epochs,
        args.batch_size,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        on_epoch=lambda epoch, logs: print(f"epoch {epoch + 1}/{args.epochs}", flush=True),
    )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    if args.save_weights:  # for the Keras 3 process to count and export
        np.savez(args.save_weights, **{f"w{i}": w for i, w in enumerate(stripped.get_weights())})
    result["schedule"] = {**schedule, "total_steps": total_steps, **options}
    if args.policy:
        result["schedule"]["pruning_policy"] = args.policy
    result["versions"] = {
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "tfmot": tfmot.__version__,
    }
    common.write_result(args.out, result)


if __name__ == "__main__":
    main()
