"""keras.callbacks.TensorBoard records what DynamicPrune writes into the epoch logs."""

import glob
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfprune


def _scalar(name, data, step=None, description=None):
    """`tensorboard.summary.v2.scalar`, for when the tensorboard package is not installed."""
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    with tf.summary.experimental.summary_scope(name, "scalar_summary", values=[data, step]) as (tag, _):
        return tf.summary.write(tag=tag, tensor=tf.cast(data, tf.float32), step=step, metadata=metadata)


def _tensorboard(log_dir):
    callback = keras.callbacks.TensorBoard(log_dir, write_graph=False)
    try:
        import tensorboard  # noqa: F401
    except ImportError:  # tf.summary.scalar needs it: write the same event with tf.summary.write
        names = {k: getattr(tf.summary, k) for k in dir(tf.summary) if not k.startswith("_")}
        callback._summary_module = types.SimpleNamespace(**{**names, "scalar": _scalar})
    return callback


def _scalars(log_dir):
    """`{tag: [value per epoch]}` from the event files under `log_dir/train`."""
    values = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "train", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                values.setdefault(value.tag, []).append(float(number))
    return values


def _fit(log_dir, callbacks):
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(
        keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="fc1"), keras.layers.Dense(3, name="fc2")])
    )
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.get_layer("fc1").threshold.assign(np.full(8, 10.0, "float32"))  # fc1 collapsed: reset at batch 1
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    model.fit(x, np.arange(32) % 3, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
    return _scalars(log_dir)


def test_tensorboard_records_sparsity_alpha_and_resets(tmp_path):
    prune = tfprune.DynamicPrune(alpha=2e-3, reset_check_every=1)
    scalars = _fit(str(tmp_path), [prune, _tensorboard(str(tmp_path))])
    for tag in ("epoch_sparsity", "epoch_alpha", "epoch_threshold_resets", "epoch_sparsity/fc1", "epoch_sparsity/fc2"):
        assert len(scalars.get(tag, [])) == 2, (tag, sorted(scalars))  # one value per epoch
    assert scalars["epoch_alpha"] == pytest.approx([2e-3, 2e-3])
    assert scalars["epoch_threshold_resets"][0] == 1  # the collapsed layer was reset once
    assert all(0.0 <= s <= 1.0 for s in scalars["epoch_sparsity"] + scalars["epoch_sparsity/fc1"])


@pytest.mark.xfail(
    strict=True,
    reason="Keras calls callbacks in list order: a TensorBoard listed before DynamicPrune writes its "
    "epoch logs before the sparsity figures are in them (tfprune/callbacks.py)",
)
def test_tensorboard_listed_first_records_sparsity(tmp_path):
    scalars = _fit(str(tmp_path), [_tensorboard(str(tmp_path)), tfprune.DynamicPrune()])
    assert "epoch_sparsity" in scalars
