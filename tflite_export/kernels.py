"""Which Keras layers run a sparse TFLite kernel, and why the others run dense.

Sparse storage alone only shrinks the file: TFLite expands a sparse tensor with a DENSIFY op at
load time unless its operator has a sparse kernel for that encoding. The only such kernels are
FULLY_CONNECTED with 1x4 blocks (float) or 1x16 blocks (int8, builtin kernels), so this module
reads each weight tensor's encoding and reader from the flatbuffer and says, per layer, which
case it is in.
"""

import dataclasses
import re

import numpy as np
from keras.layers import RNN

CONV_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "TRANSPOSE_CONV"})
# The converter stores a tensor sparse only from this share of zeros (dense_to_sparse_pass.cc).
MIN_ENCODED_SPARSITY = 0.3


@dataclasses.dataclass
class LayerKernel:
    """How one weight tensor of the .tflite file is computed with.

    Attributes:
        layer: the Keras layer the tensor belongs to, or None when neither its name nor its
            size identifies one.
        tensor: the converter's tensor name.
        op: the operator that reads the weights (after DENSIFY, if any).
        encoding: `"dense"`, `"csr"` or `"block 1x4"`, as stored in the file.
        sparsity: share of zeros in the tensor (None for types numpy cannot read).
        runs_sparse: True when the operator's sparse kernel consumes the stored blocks directly.
        reason: why, in a few words, with what to change for a sparse kernel where one exists.
    """

    layer: str | None
    tensor: str
    op: str | None
    encoding: str
    sparsity: float | None
    runs_sparse: bool
    reason: str


def layer_kernels(tensors, model, sparse=True):
    """One `LayerKernel` per weight tensor, mapped to the layers of the converted `model`.

    Args:
        tensors: `TensorInfo`s from `tflite_export.inspect.read_flatbuffer`.
        model: the Keras model that was converted (stripped and compacted), for layer names.
        sparse: whether sparse encoding was requested.

    Returns:
        A list of `LayerKernel`, in the flatbuffer's tensor order.
    """
    sizes = _kernel_sizes(model)
    named = [_named_layer(t, sizes) for t in tensors]
    claimed = set(named)
    rows = []
    for t, layer in zip(tensors, named):
        if layer is None:  # a folded constant: the one unclaimed layer of its size, else the
            # layer named around its reader (a fused LSTM's gate weights)
            same_size = [n for n, s in sizes.items() if t.total_values in s and n not in claimed]
            layer = same_size[0] if len(same_size) == 1 else _scoped_layer(t.reader_names, sizes)
        runs_sparse, reason = explain(t, sparse)
        rows.append(LayerKernel(layer, t.name, t.reader, t.encoding, t.sparsity, runs_sparse, reason))
    return rows


def explain(tensor, sparse=True):
    """`(runs_sparse, reason)` for one `TensorInfo`."""
    t = tensor
    if t.block_shape and not t.densified and t.reader == "FULLY_CONNECTED":
        block = "x".join(map(str, t.block_shape))
        return True, f"{block} blocks read by the sparse FULLY_CONNECTED kernel"
    if t.densified:
        if t.reader in CONV_OPS:
            return False, ("conv: TFLite's builtin kernels are dense (DENSIFY expands it at load); "
                           "XNNPACK on ARM runs qualifying 1x1 convs sparse (the report's verdict)")
        if t.dtype == "int8":
            return False, (
                "int8: only 1x16 blocks run sparse (granularity=(1, 16), no XNNPACK); "
                "DENSIFY expands it at load"
            )
        if t.encoding == "csr":
            return False, (
                "unstructured sparsity: CSR is expanded by DENSIFY at load "
                "(granularity=(1, 4) runs sparse)"
            )
        return False, f"{t.reader} has no sparse kernel; DENSIFY expands it at load"
    if t.encoding != "dense":
        return False, f"stored {t.encoding}, read by {t.reader} without a sparse kernel"
    if not t.sparsity:
        return False, "dense (no zeros)"
    if not sparse:
        return False, "dense: sparse encoding is off (sparse=False)"
    if t.sparsity < MIN_ENCODED_SPARSITY:
        return False, (
            f"dense: {t.sparsity:.0%} zeros, below the converter's "
            f"{MIN_ENCODED_SPARSITY:.0%} minimum for sparse storage"
        )
    return False, f"dense: {t.reader} takes no sparse weights"


def misaligned_blocks(tensors):
    """Names of block-encoded tensors whose blocked axis the block size does not divide.

    TFLite's block kernel computes such tensors wrongly, so a parity failure names them.
    """
    return [
        t.name
        for t in tensors
        if t.block_shape and any(d % b for d, b in zip(t.shape, t.block_shape))
    ]


def _kernel_sizes(model):
    """`{layer name: {element counts of its weights with two or more axes}}`; an RNN's cell is
    left out, so that its weights are named after the layer the user made."""
    layers = list(model._flatten_layers(include_self=False))
    cells = {id(sub) for layer in layers if isinstance(layer, RNN) for sub in layer.cell._flatten_layers()}
    return {
        layer.name: {int(np.prod(w.shape)) for w in layer.weights if len(w.shape) >= 2}
        for layer in layers
        if id(layer) not in cells
    }


def _named_layer(tensor, sizes):
    """The innermost layer named in the tensor's scope path.

    TF name scopes may append `_<n>` to a layer's name, so a scope `fc1_1` is layer `fc1_1` or
    `fc1`; a layer holding a weight of the tensor's size wins, in any of the `;`-joined names of
    fused operators (a conv's kernel may be named after the ReLU fused into it).
    """
    names = tensor.name.split(";")  # fused ops (conv, BatchNorm, ReLU) join their names
    for name in names:  # a layer holding a weight of the tensor's size, in any fused name
        for scope in reversed(name.split("/")):
            fitting = [n for n in (re.sub(r"_\d+$", "", scope), scope) if tensor.total_values in sizes.get(n, ())]
            if fitting:
                return fitting[0]
    return _scoped_layer(names[:1], sizes)


def _scoped_layer(paths, sizes):
    """The innermost layer named in the first of `paths` that names one."""
    for path in paths:
        for scope in reversed(path.split(";")[0].split("/")):
            candidates = [n for n in (re.sub(r"_\d+$", "", scope), scope) if n in sizes]
            if candidates:
                return candidates[0]
    return None
