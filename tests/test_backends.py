"""tfprune on every Keras backend: DynamicPrune sees and steers the state fit trains, TensorFlow
and JAX compute the same masks, outputs and DST runs, and a model trained under JAX reaches TFLite.

Tests marked `backends` run again under `KERAS_BACKEND=jax` in CI (`.ci/run`). Under JAX, `fit`
trains on its own copies of the variables and writes them back when an epoch ends or a callback
reads `self.model`; the first two tests pin that DynamicPrune reads the weights of the batch just
trained and that what it assigns (a reset, a new alpha) is what the next step trains from.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import tfprune
from tfprune.models import lenet_300_100

ROOT = Path(__file__).resolve().parent.parent
OTHER = {"tensorflow": "jax", "jax": "tensorflow"}


def _child(backend, args, cwd=ROOT):
    """Runs `python *args` in `cwd` with Keras on `backend` and this checkout's packages."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    model = tfprune.prunable(lenet_300_100((8, 8), 10))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _data(n):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8, 8)).astype("float32"), rng.integers(0, 10, n)


class _Thresholds(keras.callbacks.Callback):
    """Records fc1's thresholds after every batch (listed after DynamicPrune)."""

    def on_train_begin(self, logs=None):
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(keras.ops.convert_to_numpy(self.model.get_layer("fc1").threshold))


@pytest.mark.backends
def test_dynamic_prune_reads_the_weights_of_the_batch_just_trained():
    x, y = _data(16 * 6)
    logged = []

    class Logged(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            logged.append(logs["sparsity"])

    pruning = tfprune.DynamicPrune(alpha=0.5, log_every_n_batches=1, reset_fraction=None)
    _mlp().fit(x, y, batch_size=16, shuffle=False, verbose=0, callbacks=[pruning, Logged()])
    assert len(set(logged)) == 6  # sparsity moves every batch: a stale read would show
    for batches in (1, 3, 6):  # the same run stopped after `batches`, read once fit returned
        model = _mlp()
        model.fit(x[: 16 * batches], y[: 16 * batches], batch_size=16, shuffle=False, verbose=0,
                  callbacks=[tfprune.DynamicPrune(alpha=0.5, reset_fraction=None)])  # fmt: skip
        assert logged[batches - 1] == pytest.approx(tfprune.sparsity_report(model).sparsity, abs=1e-9)


@pytest.mark.backends
def test_a_reset_is_what_the_next_step_trains_from():
    x, y = _data(16 * 4)
    model = _mlp()
    model.get_layer("fc1").threshold.assign(np.full(300, 5.0, "float32"))  # fc1 fully masked
    probe = _Thresholds()
    history = model.fit(x, y, batch_size=16, shuffle=False, verbose=0,
                        callbacks=[tfprune.DynamicPrune(reset_check_every=1), probe])  # fmt: skip
    assert history.history["threshold_resets"] == [1]
    np.testing.assert_array_equal(probe.seen[0], 0.0)  # the reset, seen at once
    assert max(np.abs(t).max() for t in probe.seen[1:]) < 0.05  # trained on from 0, not from 5


class _AlphaFrom(keras.optimizers.schedules.LearningRateSchedule):
    """Alpha 0 for the first `step` training steps, then `value`."""

    def __init__(self, step, value):
        self.step, self.value = step, value

    def __call__(self, step):
        return self.value if int(step) >= self.step else 0.0


@pytest.mark.backends
def test_an_alpha_set_mid_epoch_drives_the_next_step():
    x, y = _data(16 * 6)
    probe = _Thresholds()
    model = _mlp()
    model.fit(x, y, batch_size=16, shuffle=False, verbose=0,
              callbacks=[tfprune.DynamicPrune(alpha=_AlphaFrom(3, 10.0), reset_fraction=None), probe])  # fmt: skip
    rise = [float(np.mean(b - a)) for a, b in zip([np.zeros(300)] + probe.seen, probe.seen)]
    # Steps 1-3 train with alpha 0 (the task loss alone barely moves thresholds); the callback
    # sets alpha 10 after step 3, so step 4 adds lr * alpha = 0.1 (plus momentum).
    assert max(abs(r) for r in rise[:3]) < 0.01
    assert rise[3] == pytest.approx(0.1, rel=0.05)
    assert float(model.get_layer("fc1").alpha) == 10.0


def test_the_other_backend_computes_the_same_masks_outputs_and_dst_runs(tmp_path):
    """Conv, depthwise, dense and LSTM (hidden-state pruning) masks and outputs from the same
    weights, and two short DST runs (reset rule; target controller), on this backend and the
    other one (`tests/backend_scenarios.py` in a child process)."""
    import backend_scenarios

    here = backend_scenarios.scenarios()
    other = OTHER[keras.backend.backend()]
    _child(other, ["tests/backend_scenarios.py", str(tmp_path / "other.npz")])
    there = np.load(tmp_path / "other.npz")
    assert str(there["backend"]) == other
    assert set(there.files) - {"backend"} == set(here)
    for name, value in here.items():
        if "/mask/" in name or "sparsity" in name or "threshold_resets" in name:
            np.testing.assert_array_equal(there[name], value, err_msg=name)
        else:
            np.testing.assert_allclose(there[name], value, rtol=1e-4, atol=1e-4, err_msg=name)
    assert here["reset/history/threshold_resets"][-1] >= 1  # the runs exercised the reset rule
    assert len(set(here["target/history/alpha"])) == 2  # ... and the controller moved alpha


TRAIN_UNDER_JAX = """
import os, numpy as np, keras, tfprune, tflite_export
from tfprune.models import lenet_300_100
assert keras.backend.backend() == "jax"
rng = np.random.default_rng(0)
x, y = rng.normal(size=(640, 8, 8)).astype("float32"), rng.integers(0, 10, 640)
model = tfprune.prunable(lenet_300_100((8, 8), 10))
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[tfprune.DynamicPrune(alpha=5e-3)])
try:
    tflite_export.export(model, "in-process.tflite")
except tflite_export.BackendError as error:
    print("REFUSED", error)
assert not os.path.exists("in-process.tflite")
model.save("model.keras")
np.save("x.npy", x[:64])
np.save("outputs.npy", keras.ops.convert_to_numpy(model(x[:64])))
print("SPARSITY", tfprune.sparsity_report(model).sparsity)
"""


def test_a_model_trained_under_jax_exports_from_the_cli_with_parity(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    trained = _child("jax", ["-c", TRAIN_UNDER_JAX], cwd=tmp_path)
    assert "python -m tflite_export model.keras -o model.tflite" in trained.stdout  # REFUSED ...
    assert float(trained.stdout.split("SPARSITY")[1]) > 0.3
    # The user's shell still says jax: the CLI must load Keras on TensorFlow anyway.
    _child("jax", ["-m", "tflite_export", "model.keras", "-o", "model.tflite", "--verify-data", "x.npy",
                   "--report", "report.json"], cwd=tmp_path)  # fmt: skip
    assert json.loads((tmp_path / "report.json").read_text())["parity"]["passed"]
    interpreter = Interpreter(model_path=str(tmp_path / "model.tflite"))
    x, expected = np.load(tmp_path / "x.npy"), np.load(tmp_path / "outputs.npy")
    runner = interpreter.get_signature_runner()
    (got,) = runner(**{next(iter(runner.get_input_details())): x}).values()
    np.testing.assert_allclose(got, expected, atol=1e-4)  # LiteRT against the JAX model
