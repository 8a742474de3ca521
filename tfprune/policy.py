"""XNNPACK's sparse inference: which layers of a CNN it can run sparse, checked on the Keras model.

LiteRT's XNNPACK delegate runs the 1x1 convolutions of a MobileNet-like graph with sparse
kernels (Elsen et al., "Fast Sparse ConvNets", CVPR 2020) when the graph has the shape its
`xnn_check_nchw_compatibility` accepts (XNNPACK `src/subgraph.c`; the delegate README, "Sparse
inference"): a 3x3 stride-2 convolution on 3 input channels padded by 1 on every side starts the
subgraph, a spatial mean ends it, and in between there are only 1x1 stride-1 convolutions, 3x3
or 5x5 depthwise convolutions (stride 1 'same', or stride 2 after a symmetric zero padding),
BatchNormalization (folded at conversion), ReLU-like activations, Add, Multiply and bilinear
upsampling. A 1x1 convolution runs sparse when at least 2/3 of its weights are zero. On x86
processors with AVX, XNNPACK keeps its dense kernels (`xnn_is_chw_compatible_config`), so only ARM
phones gain. `prunable(model, policy="xnnpack")` uses `xnnpack_subgraph` to mask exactly those
convolutions; the export report gives the same verdict on the file.
"""

import dataclasses

import keras

# Share of a 1x1 convolution's weights XNNPACK needs zero to pick its sparse kernel.
MIN_SPARSITY = 2 / 3

# Layers the converter removes (inference) or folds: they never reach the file.
_VANISH = (
    keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.GaussianNoise,
    keras.layers.GaussianDropout, keras.layers.AlphaDropout, keras.layers.Identity,
    keras.layers.BatchNormalization,
)  # fmt: skip
_ACTIVATIONS = ("linear", "relu", "relu6", "leaky_relu", "elu", "sigmoid")


class PolicyError(ValueError):
    """The model does not have the shape XNNPACK's sparse inference needs; says where and how."""


@dataclasses.dataclass(frozen=True)
class SparseSubgraph:
    """Where XNNPACK's sparse inference applies: the stem convolution, the spatial means that
    end the subgraph, and the 1x1 convolutions it can run sparse (in model order)."""

    stem: str
    ends: tuple
    layers: tuple


def xnnpack_subgraph(model):
    """The part of `model` XNNPACK's sparse inference runs, or a `PolicyError` naming the first
    layer (in model order) that breaks its conditions and how to fix it.

    Raises:
        PolicyError: no qualifying stem or spatial mean, or a layer between them that XNNPACK
            cannot run in its sparse (CHW) layout.
    """
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    consumers = _consumers(model)
    stem = _find_stem(model, consumers)
    seen, ends, convs, broken = {stem.name}, [], [], []
    stack = list(consumers[stem.name])
    while stack:
        layer = stack.pop()
        if layer.name in seen:
            continue
        seen.add(layer.name)
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            if layer.keepdims:
                ends.append(layer.name)
                continue
            broken.append((layer, "a spatial mean ends the sparse subgraph only kept 4-D",
                           "use GlobalAveragePooling2D(keepdims=True) followed by Flatten()"))
            continue
        problem = _unsupported(layer, consumers)
        if problem:
            broken.append((layer, *problem))
            continue
        if _is_pointwise(layer):
            convs.append(layer.name)
        stack.extend(consumers[layer.name])
    if broken:
        layer, why, fix = min(broken, key=lambda b: order[b[0].name])
        raise PolicyError(
            f"Layer '{layer.name}' ({_describe(layer)}) breaks XNNPACK's sparse-inference "
            f"conditions: {why}. Fix: {fix}."
        )
    if not ends:
        raise PolicyError(
            f"Model '{model.name}' has no spatial mean after its stem '{stem.name}': XNNPACK's "
            "sparse subgraph must end with GlobalAveragePooling2D(keepdims=True)."
        )
    if not convs:
        raise PolicyError(
            f"Model '{model.name}' has no 1x1 convolution between its stem and its spatial mean: "
            "nothing XNNPACK can run sparse."
        )
    return SparseSubgraph(stem.name, tuple(sorted(ends, key=order.get)), tuple(sorted(convs, key=order.get)))


def _consumers(model):
    """`{layer name: the layers reading its output}` of a built model."""
    if not model.built or not hasattr(model, "inputs") or model.inputs is None:
        raise PolicyError(
            f"Model '{model.name}' is not a built Sequential or functional model: the policy "
            "reads its graph. Build it (call it on data or give it an Input) first."
        )
    consumers = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for tensor in keras.tree.flatten(layer.input) if not isinstance(layer, keras.layers.InputLayer) else ():
            consumers.setdefault(tensor._keras_history.operation.name, []).append(layer)
    return consumers


def _find_stem(model, consumers):
    """The first convolution after the input, checked against XNNPACK's stem conditions."""
    stack = [t._keras_history.operation for t in model.inputs]
    seen = set()
    while stack:
        layer = stack.pop(0)
        if layer.name in seen:
            continue
        seen.add(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            problem = _stem_problem(layer)
            if problem:
                raise PolicyError(
                    f"Layer '{layer.name}' ({_describe(layer)}) cannot start XNNPACK's sparse "
                    f"subgraph: {problem}. Fix: start the network with ZeroPadding2D(1) and "
                    "Conv2D(filters, 3, strides=2, padding='valid') on the RGB image."
                )
            return layer
        if getattr(layer, "weights", None) and not isinstance(layer, keras.layers.InputLayer):
            break
        stack.extend(consumers.get(layer.name, []))
    raise PolicyError(
        f"Model '{model.name}' has no 3x3 stride-2 convolution on 3 input channels at its input: "
        "XNNPACK's sparse subgraph starts there. Fix: start the network with ZeroPadding2D(1) and "
        "Conv2D(filters, 3, strides=2, padding='valid') on the RGB image."
    )


def _stem_problem(layer):
    if tuple(layer.kernel_size) != (3, 3) or tuple(layer.strides) != (2, 2):
        return "the stem must be a 3x3 convolution with stride 2"
    if layer.kernel.shape[-2] != 3:
        return f"the stem must read 3 input channels, not {layer.kernel.shape[-2]}"
    if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
        return "the stem must have no dilation and no groups"
    if not _padded_by(layer, 1):
        return "the stem must be padded by 1 on every side (Keras' 'same' pads stride-2 inputs only bottom and right)"
    return None


def _padded_by(layer, pad):
    """Whether `layer` runs 'valid' on the output of a ZeroPadding2D of `pad` on every side."""
    if layer.padding != "valid":
        return False
    source = layer.input._keras_history.operation
    return isinstance(source, keras.layers.ZeroPadding2D) and tuple(map(tuple, source.padding)) == ((pad, pad), (pad, pad))


def _is_pointwise(layer):
    return isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1)


def _unsupported(layer, consumers):
    """`(why, fix)` when XNNPACK cannot run `layer` inside its sparse subgraph, else None."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        k, s = tuple(layer.kernel_size), tuple(layer.strides)
        if k not in ((3, 3), (5, 5)) or layer.depth_multiplier != 1 or tuple(layer.dilation_rate) != (1, 1):
            return ("only 3x3 or 5x5 depthwise convolutions with depth_multiplier 1 and no dilation run there",
                    "use DepthwiseConv2D(3) or DepthwiseConv2D(5)")
        if s == (1, 1) and layer.padding == "same" or s == (2, 2) and _padded_by(layer, k[0] // 2):
            return _activation_problem(layer)
        return (f"a depthwise convolution runs there with stride 1 and padding 'same', or with stride 2 "
                f"after ZeroPadding2D({k[0] // 2}) with padding 'valid'",
                f"use ZeroPadding2D({k[0] // 2}) then DepthwiseConv2D({k[0]}, strides=2, padding='valid') "
                "for a strided one")  # fmt: skip
    if isinstance(layer, keras.layers.Conv2D):
        if _is_pointwise(layer) and tuple(layer.strides) == (1, 1) and layer.groups == 1:
            return _activation_problem(layer)
        return ("only 1x1 stride-1 convolutions (and depthwise ones) run between the stem and the spatial mean",
                "replace it with a depthwise 3x3 convolution followed by a 1x1 convolution")
    if isinstance(layer, keras.layers.ZeroPadding2D):
        users = consumers.get(layer.name, [])
        if users and all(isinstance(u, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and tuple(u.strides) == (2, 2) and _padded_by(u, u.kernel_size[0] // 2) for u in users):
            return None  # fused into the strided convolution it pads
        return ("zero padding runs there only as the symmetric padding of a strided depthwise convolution",
                "remove it, or pad a stride-2 depthwise convolution with it")
    if isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.Add, keras.layers.Multiply) + _VANISH):
        return None
    if isinstance(layer, keras.layers.Activation):
        return _activation_problem(layer)
    if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == "bilinear":
        return None
    return ("it is not an operation XNNPACK runs in its sparse (CHW) layout (1x1 and depthwise convolutions, "
            "BatchNormalization, ReLU-like activations, Add, Multiply, bilinear UpSampling2D)",
            "move it after GlobalAveragePooling2D(keepdims=True), or replace it")  # fmt: skip


def _activation_problem(layer):
    name = keras.activations.serialize(layer.activation) if getattr(layer, "activation", None) else "linear"
    name = name if isinstance(name, str) else name.get("config", {}).get("name", str(name))
    if name in _ACTIVATIONS:
        return None
    return (f"activation '{name}' does not run there", f"use one of {', '.join(_ACTIVATIONS)}")


def _describe(layer):
    name = type(layer).__name__
    if not hasattr(layer, "kernel_size"):
        return name
    size = "x".join(map(str, layer.kernel_size))
    return f"{name} {size}, stride {layer.strides[0]}, padding '{layer.padding}'"
