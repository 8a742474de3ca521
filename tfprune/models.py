"""The reference architectures of the paper, as stock Keras 3 models (convert with `prunable`)."""

import keras
from keras import layers


def lenet_300_100(input_shape=(28, 28), num_classes=10):
    """LeNet-300-100: a 784-300-100-10 ReLU MLP (input flattened)."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Flatten(),
            layers.Dense(300, activation="relu"),
            layers.Dense(100, activation="relu"),
            layers.Dense(num_classes),
        ],
        name="lenet_300_100",
    )


def lenet5_caffe(input_shape=(28, 28, 1), num_classes=10):
    """LeNet-5-Caffe as in Caffe's prototxt: conv 20@5x5, pool, conv 50@5x5, pool, dense 500 ReLU,
    dense classes (no activation after the convolutions, as in Caffe)."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(20, 5),
            layers.MaxPooling2D(2),
            layers.Conv2D(50, 5),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(500, activation="relu"),
            layers.Dense(num_classes),
        ],
        name="lenet5_caffe",
    )
