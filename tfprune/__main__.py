"""`python -m tfprune demo`: train LeNet-300-100 dense and with DST, compare, export to TFLite.

The export runs the export package's CLI in a child process, so the core imports nothing above it.
"""

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser():
    parser = argparse.ArgumentParser(prog="tfprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="dense vs Dynamic Sparse Training on LeNet-300-100")
    demo.add_argument("--dataset", default="auto", help="auto (default), fashion_mnist or digits")
    demo.add_argument("--epochs", type=int, help="epochs per model (default: 10 Fashion-MNIST, 60 digits)")
    demo.add_argument("--alpha", type=float, help="DST alpha (default: 1.5e-3 Fashion-MNIST, 5e-3 digits)")
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--lr", type=float, default=0.01, help="SGD learning rate, momentum 0.9")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="tfprune_demo", help="folder for the .keras and .tflite files")
    return parser


def _train(model, data, args, callbacks=()):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(args.lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=True,
    )
    from tfprune.data import shuffled_batches

    # A new batch order each epoch: Keras' own shuffle repeats one in a seeded run.
    batches = shuffled_batches(data.x_train, data.y_train, args.batch_size, seed=args.seed)
    start = time.perf_counter()
    model.fit(batches, epochs=args.epochs, shuffle=False, callbacks=list(callbacks), verbose=2)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0)
    return accuracy, seconds


def demo(args):
    import keras
    import numpy as np

    import tfprune
    from tfprune.data import load_dataset
    from tfprune.models import lenet_300_100

    data = load_dataset(args.dataset)
    # digits has 1,347 training images (22 steps an epoch): it needs more epochs and a stronger
    # alpha for thresholds to climb as far as on Fashion-MNIST's 938 steps an epoch.
    epochs, alpha = (10, 1.5e-3) if data.name == "fashion_mnist" else (60, 5e-3)
    args.epochs = args.epochs or epochs
    args.alpha = args.alpha if args.alpha is not None else alpha
    print(f"Dataset: {data.name} ({len(data.x_train)} train / {len(data.x_test)} test images)")
    keras.utils.set_random_seed(args.seed)
    dense = lenet_300_100(data.x_train.shape[1:], data.num_classes)
    keras.utils.set_random_seed(args.seed)
    masked = tfprune.prunable(lenet_300_100(data.x_train.shape[1:], data.num_classes))

    print("\n== Dense LeNet-300-100 ==")
    dense_acc, dense_time = _train(dense, data, args)
    print(f"\n== Dynamic Sparse Training, alpha={args.alpha} ==")
    dst_acc, dst_time = _train(masked, data, args, [tfprune.DynamicPrune(alpha=args.alpha)])
    report = tfprune.sparsity_report(masked)

    print("\n== Result ==")
    print(f"dense accuracy  {dense_acc:.4f}   ({dense_time:.1f} s)")
    print(f"DST accuracy    {dst_acc:.4f}   ({dst_time:.1f} s)   difference {100 * (dst_acc - dense_acc):+.2f} points")
    print(f"remaining weights {report.remaining:.2%} ({report.nonzeros:,} of {report.params:,})\n")
    print(report)

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "lenet_300_100_dst")
    masked.save(f"{stem}.keras")
    np.save(f"{stem}_verify.npy", data.x_test[:64])
    print(f"\nSaved the masked model to {stem}.keras")
    return export_with_cli(
        f"{stem}.keras", f"{stem}.tflite", f"{stem}_report.json", f"{stem}_verify.npy"
    )


def export_with_cli(keras_path, tflite_path, report_path, verify_path):
    """Exports a saved model with the export CLI in a child process, its output shown as it runs.

    Args:
        keras_path: the saved .keras model.
        tflite_path: the .tflite file to write.
        report_path: where the CLI writes its report as JSON.
        verify_path: a .npy array of inputs to check Keras and LiteRT agree on.

    Returns:
        The CLI's exit code: 0 on success.
    """
    command = [
        sys.executable, "-m", "tflite_export", keras_path, "-o", tflite_path,
        "--report", report_path, "--verify-data", verify_path,
    ]  # fmt: skip
    print(f"\n== TFLite export: python {' '.join(command[1:])} ==", flush=True)
    code = subprocess.run(command).returncode
    if code:
        print(
            f"tfprune demo: the TFLite export failed (exit code {code}; its error is above). "
            f"The pruned model is saved in {keras_path}: rerun the command above to retry.",
            file=sys.stderr,
        )
    else:
        print(f"\nWrote {tflite_path}; the report as JSON in {report_path}")
    return code


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
