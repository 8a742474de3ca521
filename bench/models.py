"""The benchmark architectures: tfprune's reference builders, plus the smallest image each takes.

Builders take the Keras namespace (`keras` or `tf_keras`), so the tfmot baseline trains exactly
the architecture the Keras 3 rows train.
"""

import dataclasses
from typing import Callable

from bench.sequence_models import gru, transformer
from tfprune.models import lenet5_caffe, lenet_300_100, lstm_a, mobilenet_v1, mobilenet_v2


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A builder `fn(input_shape, num_classes, keras=...)`, the smallest image side it accepts
    (smaller images, e.g. 8x8 digits for LeNet-5, are zero-padded up to it), and whether its
    TensorFlow timing rows compile with XLA (XLA's CPU convolutions were 3x slower than oneDNN's)."""

    build: Callable
    min_side: int = 1
    jit_compile: bool = True


MODELS = {
    "lenet300": ModelSpec(lenet_300_100),
    "lenet5": ModelSpec(lenet5_caffe, min_side=16, jit_compile=False),
    "lstm_a": ModelSpec(lstm_a),  # bench.lstm (Adam, hidden-state rows)
    "transformer": ModelSpec(transformer),  # bench.sequence
    "gru": ModelSpec(gru),  # bench.sequence
    "mobilenet_v1": ModelSpec(mobilenet_v1, jit_compile=False),  # bench.cnn
    "mobilenet_v2": ModelSpec(mobilenet_v2, jit_compile=False),  # bench.cnn
}
