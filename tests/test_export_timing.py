"""tflite_export.timing: one figure per file from alternating rounds, inputs in the file's order."""

import keras
import numpy as np
import pytest

from tflite_export.convert import to_tflite
from tflite_export.timing import median_latency_us


@pytest.fixture(scope="module")
def two_inputs():
    """A dynamic-batch file whose inputs are not in name order: b (3 values), then a (5)."""
    b, a = keras.Input((3,), name="b"), keras.Input((5,), name="a")
    model = keras.Model([b, a], keras.layers.Dense(2)(keras.layers.Concatenate()([b, a])))
    return to_tflite(model, sparse=False, quantize=None, batch_size=None)


def test_one_figure_per_file_the_fastest_round(tmp_path, two_inputs):
    path = tmp_path / "m.tflite"
    path.write_bytes(two_inputs)
    x = [np.ones((2, 3), "float32"), np.ones((2, 5), "float32")]  # batch 2: resized
    best, rounds = median_latency_us([two_inputs, path], x, rounds=3, runs=5, warmup=1)
    assert np.shape(rounds) == (3, 2)  # rounds x files
    assert best == [min(r[m] for r in rounds) for m in range(2)]
    assert all(t > 0 for t in best)


@pytest.mark.parametrize(
    "inputs, options, message",
    [
        ([np.ones((1, 3))], {}, r"takes 2 input\(s\). Received: 1 array"),
        ([np.ones((1, 5)), np.ones((1, 3))], {}, r"shaped \[-1, 3\].*shaped \[1, 5\]"),
        ([np.ones((1, 3)), np.ones((1, 5))], {"rounds": 0}, "rounds=0"),
        ([np.ones((1, 3)), np.ones((1, 5))], {"warmup": -1}, "warmup=-1"),
    ],
)
def test_inputs_and_counts_are_checked(two_inputs, inputs, options, message):
    with pytest.raises(ValueError, match=message):
        median_latency_us([two_inputs], inputs, runs=1, **options)


def test_no_file_is_refused():
    with pytest.raises(ValueError, match="at least one .tflite file"):
        median_latency_us([], [np.ones((1, 3))])
