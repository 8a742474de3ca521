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


def _conv_bn_relu(layers, x, filters, kernel, stride, name, depthwise=False):
    """Conv (or depthwise conv) -> BatchNorm -> ReLU6. A stride-2 conv pads 1 (2 for 5x5) on every
    side with `ZeroPadding2D` and then runs 'valid', the symmetric padding XNNPACK's sparse
    inference requires; Keras' 'same' pads only bottom and right at stride 2."""
    if stride == 2:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    padding = "valid" if stride == 2 or kernel == 1 else "same"
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding, use_bias=False, name=name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding, use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def _head(keras, x, num_classes, name):
    """Spatial mean (kept 4-D: TFLite's MEAN, where XNNPACK's sparse subgraph ends), then a
    dense classifier."""
    layers = keras.layers
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(num_classes, name="fc")(x), name


def mobilenet_v1(input_shape=(64, 64, 3), num_classes=10, width=0.5, keras=keras3):
    """MobileNetV1 (Howard et al., 2017) at `width`: a 3x3 stride-2 stem, then 13 depthwise
    separable blocks (3x3 depthwise, 1x1 pointwise), each conv followed by BatchNorm and ReLU6.

    Built to meet XNNPACK's sparse-inference conditions (`tfprune.policy`): the 1x1 convs run
    sparse on ARM when at least 2/3 of their weights are zero.
    """
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = _conv_bn_relu(layers, inputs, int(32 * width), 3, 2, "stem")
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    blocks += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (filters, stride) in enumerate(blocks, start=1):
        x = _conv_bn_relu(layers, x, None, 3, stride, f"dw{i}", depthwise=True)
        x = _conv_bn_relu(layers, x, int(filters * width), 1, 1, f"pw{i}")
    outputs, name = _head(keras, x, num_classes, f"mobilenet_v1_{width}")
    return keras.Model(inputs, outputs, name=name.replace(".", "_"))


def mobilenet_v2(input_shape=(64, 64, 3), num_classes=10, width=0.5, keras=keras3):
    """A MobileNetV2 (Sandler et al., 2018) at `width`, shortened for small images: inverted
    residual blocks (1x1 expansion, 3x3 depthwise, linear 1x1 projection) with residual Adds
    wherever a block keeps its shape, then a 1x1 conv to 640 channels, as in the original head.
    """
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = _conv_bn_relu(layers, inputs, int(32 * width), 3, 2, "stem")
    # (expansion t, channels c, repeats n, first stride s), as in the paper's Table 2
    config = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 160, 2, 2)]
    block = 0
    for t, c, n, s in config:
        for i in range(n):
            block += 1
            stride, channels, name = s if i == 0 else 1, int(c * width), f"block{block}"
            y = x
            if t != 1:
                y = _conv_bn_relu(layers, y, x.shape[-1] * t, 1, 1, f"{name}_expand")
            y = _conv_bn_relu(layers, y, None, 3, stride, f"{name}_dw", depthwise=True)
            y = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_project")(y)
            y = layers.BatchNormalization(name=f"{name}_project_bn")(y)
            x = layers.Add(name=f"{name}_add")([x, y]) if stride == 1 and x.shape[-1] == channels else y
    x = _conv_bn_relu(layers, x, 640, 1, 1, "last")
    outputs, name = _head(keras, x, num_classes, f"mobilenet_v2_{width}")
    return keras.Model(inputs, outputs, name=name.replace(".", "_"))
