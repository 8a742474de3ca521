"""The paper's reference architectures as stock Keras models (convert them with `prunable`).

Builders take the Keras namespace to build with (Keras 3 by default), so the benchmark's tfmot
baseline, which needs legacy `tf_keras`, trains exactly the same architecture. Layers are named
so per-layer results line up across methods. Models take (H, W) images.
"""

import keras as keras3


def lenet_300_100(input_shape=(28, 28), num_classes=10, keras=keras3):
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


def lenet5_caffe(input_shape=(28, 28), num_classes=10, keras=keras3):
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


def lstm_a(input_shape=(28, 28), num_classes=10, keras=keras3):
    """LSTM-a: LSTM(128, return_sequences) -> LSTM(128) -> dense classes.

    An (H, W) image is read as H steps of W pixels (sequential MNIST / Fashion-MNIST).
    """
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.LSTM(128, return_sequences=True, name="lstm1"),
            layers.LSTM(128, name="lstm2"),
            layers.Dense(num_classes, name="fc"),
        ],
        name="lstm_a",
    )
