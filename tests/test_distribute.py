"""Masked layers and DynamicPrune under tf.distribute.MirroredStrategy on two logical CPUs.

Logical devices must be configured before TensorFlow starts, so the run happens in a subprocess.
"""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, tfprune
    from tfprune.data import load_digits
    from tfprune.models import lenet_300_100

    data = load_digits()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = tfprune.prunable(lenet_300_100((8, 8), 10))
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    first = model.get_layer("fc1")
    first.threshold.assign(np.full(300, 5.0, "float32"))  # collapsed: the reset rule must fire
    history = model.fit(data.x_train, data.y_train, epochs=8, batch_size=64, verbose=0,
                        callbacks=[tfprune.DynamicPrune(alpha=5e-3)])
    per_replica = lambda variable: [v.numpy() for v in getattr(variable.value, "values", [variable.value])]
    replicas = per_replica(first.threshold)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "sparsity": history.history["sparsity"],
        "resets": history.history["threshold_resets"][-1],
        "replicas_agree": all(np.array_equal(replicas[0], r) for r in replicas),
        "n_values": len(replicas),
        "accuracy": history.history["accuracy"][-1],
        "alpha": [float(a) for a in per_replica(first.alpha)],
    }))
    """
)


def test_mirrored_strategy_two_cpus():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["n_values"] == 2
    assert result["replicas_agree"]
    assert result["resets"] >= 1
    assert result["sparsity"][-1] > result["sparsity"][1] > 0
    assert result["alpha"] == pytest.approx([5e-3, 5e-3])
    assert result["accuracy"] > 0.5
