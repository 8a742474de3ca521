"""What tfprune computes from fixed weights and data, run on one backend: masks, outputs, DST.

`test_backends` runs `scenarios()` in its own process and, through `python tests/backend_scenarios.py
OUT.npz`, in a child on the other backend, and compares the two. Weights and thresholds come
from numpy's generator, data order is fixed (`shuffle=False`), so the backends should agree to
float tolerance.
"""

import sys

import keras
import numpy as np

import tfprune
from tfprune.models import lenet_300_100
from tfprune.layers import MaskedConv2D, MaskedDense, MaskedDepthwiseConv2D, MaskedLSTM, masked_layers


def _fill(model, seed, threshold_quantile=0.3):
    """Numpy weights for every float weight; thresholds at a quantile of their kernel's |W|."""
    rng = np.random.default_rng(seed)
    for layer in masked_layers(model):
        for kernel_name in layer.MASKED:
            kernel = getattr(layer, kernel_name)
            kernel.assign(rng.normal(scale=0.3, size=kernel.shape).astype("float32"))
    for weight in model.weights:
        if weight.path.endswith("bias"):
            weight.assign(rng.normal(scale=0.1, size=weight.shape).astype("float32"))
    for layer in masked_layers(model):
        for kernel_name, threshold_name in layer.MASKED.items():
            threshold = getattr(layer, threshold_name)
            magnitude = np.abs(keras.ops.convert_to_numpy(getattr(layer, kernel_name)))
            level = np.quantile(magnitude, threshold_quantile)
            threshold.assign(np.full(threshold.shape, level, "float32"))


def _masks(model, prefix):
    return {
        f"{prefix}/mask/{layer.name}/{name}": keras.ops.convert_to_numpy(layer.mask(name))
        for layer in masked_layers(model)
        for name in layer.MASKED
    }


def _conv_model():
    inputs = keras.Input((10, 10, 3))
    x = MaskedConv2D(6, 3, name="conv")(inputs)
    x = MaskedDepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, MaskedDense(4, name="dense")(x))


def _lstm_model():
    inputs = keras.Input((7, 5))
    x = MaskedLSTM(8, hidden_state="fixed", hidden_threshold=0.3, return_sequences=True, name="l1")(inputs)
    x = MaskedLSTM(8, name="l2")(x)
    return keras.Model(inputs, MaskedDense(3, name="head")(x))


def _mlp():
    model = tfprune.prunable(lenet_300_100((6, 6), 4))
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _dst(prefix, x, y, **kwargs):
    """A short DST run from fixed weights: fc1 starts collapsed, so the reset rule fires."""
    model = _mlp()
    _fill(model, 3, threshold_quantile=0.2)
    fc1 = model.get_layer("fc1")
    fc1.threshold.assign(np.full(300, 10.0, "float32"))
    history = model.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
        callbacks=[tfprune.DynamicPrune(reset_check_every=2, **kwargs)],
    )  # fmt: skip
    out = {f"{prefix}/history/{k}": np.asarray(v, "float64") for k, v in history.history.items()}
    for layer in masked_layers(model):
        for kernel_name, threshold_name in layer.MASKED.items():
            out[f"{prefix}/{layer.name}/{kernel_name}"] = keras.ops.convert_to_numpy(getattr(layer, kernel_name))
            out[f"{prefix}/{layer.name}/{threshold_name}"] = keras.ops.convert_to_numpy(getattr(layer, threshold_name))
    out.update(_masks(model, prefix))
    out[f"{prefix}/outputs"] = keras.ops.convert_to_numpy(model(x[:8]))
    return out


def scenarios():
    """`{name: array}`: forward masks and outputs of conv/depthwise/dense and LSTM models, a short
    DST run of the LSTM model (hidden-state figures in its logs), and two of an MLP (reset rule
    with a fixed alpha; the target controller)."""
    rng = np.random.default_rng(0)
    out = {}
    for name, build, shape in (("conv", _conv_model, (4, 10, 10, 3)), ("lstm", _lstm_model, (4, 7, 5))):
        model = build()
        _fill(model, 1)
        x = rng.normal(size=shape).astype("float32")
        out[f"{name}/outputs"] = keras.ops.convert_to_numpy(model(x))
        out.update(_masks(model, name))
        stripped = tfprune.strip(model)
        out[f"{name}/stripped_outputs"] = keras.ops.convert_to_numpy(stripped(x))
    lstm = [layer for layer in masked_layers(model) if layer.name == "l1"][0]
    model.predict(x, verbose=0)
    out["lstm/hidden_sparsity"] = np.float64(lstm.hidden_state_stats()["hidden_sparsity"])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, np.arange(4) % 3, batch_size=2, epochs=2, shuffle=False, verbose=0,
                        callbacks=[tfprune.DynamicPrune(alpha=0.05)])  # fmt: skip
    out.update({f"lstm/history/{k}": np.asarray(v, "float64") for k, v in history.history.items()})
    out["lstm/trained_outputs"] = keras.ops.convert_to_numpy(model(x))
    x = rng.normal(size=(96, 6, 6)).astype("float32")
    y = rng.integers(0, 4, 96)
    out.update(_dst("reset", x, y, alpha=5e-3))
    out.update(_dst("target", x, y, alpha=1e-3, target_sparsity=0.6, control_every=2))
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], backend=keras.backend.backend(), **scenarios())
