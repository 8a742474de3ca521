"""How long `tflite_export.export` takes: the median wall time of a few exports of three models.

    python -m bench.export_time --repeats 3

An untrained, pruned model of each kind (the time depends on the graph, not on the training):
LeNet-300-100 (one form), MobileNetV1-0.25 at 32x32 (one form) and an LSTM(123) over 28 steps
with 80% of its kernels masked (`recurrent="auto"`: the loop, unrolled and fused forms, each
converted, timed and verified). Run it from two checkouts to compare versions of the export.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tqdm import tqdm


def models():
    """`{name: (model, verify_data)}` of the three models."""
    import keras
    import numpy as np

    import tfprune
    from tfprune.models import lenet_300_100, mobilenet_v1

    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28))
    lstm = tfprune.prunable(keras.Model(inputs, keras.layers.Dense(3)(keras.layers.LSTM(123, name="lstm")(inputs))))
    tfprune.lstm.magnitude_prune(lstm, 0.8)
    sequences = np.random.default_rng(0).normal(size=(16, 28, 28)).astype("float32")
    return {
        "LeNet-300-100": (tfprune.prunable(lenet_300_100((28, 28), 10)), None),
        "MobileNetV1-0.25": (tfprune.prunable(mobilenet_v1((32, 32, 3), 10, width=0.25)), None),
        "LSTM(123), auto forms": (lstm, sequences),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="exports per model (the median is reported)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tflite_export

    print(f"tflite_export from {Path(tflite_export.__file__).parent}")
    with tempfile.TemporaryDirectory() as folder:
        for name, (model, data) in models().items():
            seconds = []
            for i in tqdm(range(args.repeats), desc=name, leave=False):
                start = time.perf_counter()
                tflite_export.export(model, Path(folder) / f"{i}.tflite", verify_data=data, latency_runs=10)
                seconds.append(time.perf_counter() - start)
            print(f"{name}: median {statistics.median(seconds):.2f} s ({', '.join(f'{s:.2f}' for s in seconds)})")


if __name__ == "__main__":
    main()
