"""PQuantML baseline: its Keras Dynamic Sparse Training (`pquant-ml` 0.1.0, `PQuantCallback`).

PQuantML pins TensorFlow <= 2.20, so it lives in its own venv and `bench.run` starts this script
with that venv's interpreter (`PQUANT_PYTHON`); build the venv with

    python -m venv /work/venvs/pquant
    /work/venvs/pquant/bin/pip install "tensorflow-cpu==2.20.*" "pquant-ml==0.1.0" numpy

and run it from the repository root:

    /work/venvs/pquant/bin/python -m bench.pquant_baseline --data data.npz --model lenet300 \
        --alpha 5e-4 --threshold-type channelwise --epochs 20 --seed 0 --out result.json

Like the tfmot baseline it builds the model with `bench.models` and trains it with
`bench.common`, so every method trains the same architecture the same way. It prints `epoch i/n` per epoch (the runner's progress bar) and writes the result
as JSON; with --save-weights, the compressed kernels and biases in the layout of
`bench.tfmot_baseline`, which the runner loads into the Keras 3 model to count and export.
"""

import argparse
import os
from importlib.metadata import version

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # PQuantML's DST runs on TensorFlow only


def dst_config(alpha, threshold_type, epochs):
    """A full DST config with every key that matters set, quantization off.

    Built from PQuantML's DST YAML, not a partial dict: its pydantic defaults would silently
    add 50 pretraining epochs (a dense, unpenalised phase) and a different threshold type.
    """
    import pquant

    config = pquant.dst_config()
    pruning = config.pruning_parameters
    pruning.alpha = alpha  # read as a constant when `fit` traces: set before it
    pruning.threshold_type = threshold_type
    pruning.max_pruning_pct = 0.99  # the paper's reset: thresholds to 0 once 99% is masked
    config.quantization_parameters.enable_quantization = False
    training = config.training_parameters
    training.pretraining_epochs = 0
    training.epochs = epochs
    training.fine_tuning_epochs = 0
    training.rounds = 1
    return config


def main(argv=None):
    from bench import common, models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.baseline_arguments(parser, models=("lenet300", "lenet5"))
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--threshold-type", choices=("layerwise", "channelwise", "weightwise"), default="channelwise")
    parser.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import pquant
    import tensorflow as tf
    from pquant.core.keras.layers import PQConv2d, PQDense
    from pquant.core.keras.train import PQuantCallback

    with np.load(args.data) as f:
        arrays = {k: f[k] for k in f.files}
    keras.utils.set_random_seed(args.seed)
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    base = models.MODELS[args.model].build(arrays["x_train"].shape[1:], num_classes)
    names = [layer.name for layer in base.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    # Both LeNets start with a Flatten or Reshape, which matters here: `add_compression_layers`
    # converts `model.layers[1:]` only, so a first Dense or Conv2D would stay unpruned.
    config = dst_config(args.alpha, args.threshold_type, args.epochs)
    model = pquant.add_compression_layers(base, config)
    pruned = [layer for layer in model.layers if isinstance(layer, (PQDense, PQConv2d))]
    assert len(pruned) == len(names), f"only {len(pruned)} of {len(names)} Dense/Conv2D layers converted"

    common.compile_model(keras, model, args.lr, args.momentum, jit_compile=args.jit_compile)
    pq_callback = PQuantCallback(config, log_ebops=False)  # logs "remaining_weights" per epoch
    assert pq_callback.total_epochs == args.epochs
    result = common.fit_and_evaluate(
        keras,
        model,
        arrays,
        args.epochs,
        args.batch_size,
        callbacks=[pq_callback],
        on_epoch=lambda epoch, logs: print(f"epoch {epoch + 1}/{args.epochs}", flush=True),
    )
    # PQuantCallback's on_train_end applied the final compression: each kernel is now its
    # masked weights (mask frozen at the last epoch's end), as PQuantML exports it; the test
    # figures were taken after it.
    weights, per_layer, nonzero, total = [], {}, 0, 0
    for name, layer in zip(names, pruned):
        kernel = np.asarray(layer._kernel)
        mask = np.asarray(layer.pruning_layer.mask)  # in PyTorch's layout: only its count is used
        count = int(np.count_nonzero(kernel))
        assert layer.final_compression_done and count == int(mask.sum()), f"{name}: {count} nonzero, mask {mask.sum()}"
        per_layer[name] = count / kernel.size
        nonzero, total = nonzero + count, total + kernel.size
        weights += [kernel, np.asarray(layer._bias)]
    if args.save_weights:  # for the Keras 3 process to count and export
        np.savez(args.save_weights, **{f"w{i}": w for i, w in enumerate(weights)})

    result.update({
        "remaining": nonzero / total,
        "remaining_per_layer": per_layer,
        "pquant_keep_ratio": float(pquant.get_layer_keep_ratio(model)),
        "config": config.get_dict()["pruning_parameters"],
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "pquant": version("pquant-ml")},
    })  # fmt: skip
    common.write_result(args.out, result)


if __name__ == "__main__":
    main()
