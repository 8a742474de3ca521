"""The benchmark architectures, defined once for Keras 3 and for legacy Keras 2 (tf_keras).

Each builder takes the Keras namespace to build with, so the tfmot baseline (tf_keras, in its own
process) trains exactly the architecture the Keras 3 rows train. Layers are named so per-layer
results line up across methods. Models take (H, W) images and reshape/flatten inside.
"""

import dataclasses
from typing import Callable


def lenet_300_100(keras, input_shape, num_classes=10):
    """LeNet-300-100: a 784-300-100-10 ReLU MLP (H*W inputs for other image sizes)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Flatten(name="flatten"),
            layers.Dense(300, activation="relu", name="fc1"),
            layers.Dense(100, activation="relu", name="fc2"),
            layers.Dense(num_classes, name="fc3"),
        ],
        name="lenet_300_100",
    )


def lenet5_caffe(keras, input_shape, num_classes=10):
    """LeNet-5-Caffe: conv 20@5x5, pool 2, conv 50@5x5, pool 2, dense 500 ReLU, dense classes.

    No activation after the convolutions, as in Caffe's prototxt the paper used.
    """
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Reshape((*input_shape, 1), name="channel"),
            layers.Conv2D(20, 5, padding="valid", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(50, 5, padding="valid", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(500, activation="relu", name="fc1"),
            layers.Dense(num_classes, name="fc2"),
        ],
        name="lenet5_caffe",
    )


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A builder `fn(keras, input_shape, num_classes)` and the smallest image side it accepts
    (smaller images, e.g. 8x8 digits for LeNet-5, are zero-padded up to it)."""

    build: Callable
    min_side: int = 1


MODELS = {
    "lenet300": ModelSpec(lenet_300_100),
    "lenet5": ModelSpec(lenet5_caffe, min_side=16),
}
