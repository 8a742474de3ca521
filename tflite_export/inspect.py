"""Read a .tflite flatbuffer with TensorFlow's own schema module: operators and weight tensors.

The converter's output is the ground truth for what ships: which tensors it stored sparse, with
which encoding (CSR or 1xN blocks), and whether a DENSIFY op expands them back at load time
(smaller file, dense speed) or a sparse kernel consumes them directly.
"""

import dataclasses

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

OPERATOR_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
TYPE_NAMES = {
    code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")
}
# Element types whose buffers numpy can read directly (others are reported without counts).
NUMPY_TYPES = {
    "float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool",
}  # fmt: skip
INDEX_BYTES = {
    schema.SparseIndexVector.Int32Vector: 4,
    schema.SparseIndexVector.Uint16Vector: 2,
    schema.SparseIndexVector.Uint8Vector: 1,
}


@dataclasses.dataclass
class TensorInfo:
    """One constant weight tensor of the flatbuffer.

    Attributes:
        name: the converter's tensor name (it carries the Keras layer path).
        shape: the dense shape, in TFLite's layout (FULLY_CONNECTED weights are `[out, in]`).
        dtype: element type, e.g. `"float32"` or `"int8"`.
        encoding: `"dense"`, `"csr"` or `"block 1x4"` (the block shape in the dense layout).
        block_shape: the block shape as a list, or None when not block-encoded.
        stored_values: values held in the buffer (block encodings store zeros inside blocks).
        total_values: values of the dense tensor.
        sparsity: share of the dense tensor's values that are zero.
        nbytes: bytes of values plus sparse index arrays.
        densified: True when a DENSIFY op expands the tensor at load time (no sparse kernel).
        reader: the operator that computes with the tensor (after DENSIFY, if any), e.g.
            `"FULLY_CONNECTED"`; None if no operator reads it.
        reader_names: the names of that operator's outputs, then of its inputs from the last,
            which carry the layer path when the tensor's own name does not (a fused LSTM's
            gate weights are unnamed constants; its state inputs are named after the layer).
    """

    name: str
    shape: list
    dtype: str
    encoding: str
    block_shape: list | None
    stored_values: int
    total_values: int
    sparsity: float | None
    nbytes: int
    densified: bool
    reader: str | None
    reader_names: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FlatbufferInfo:
    """What a .tflite flatbuffer holds: operator counts (all subgraphs) and weight tensors."""

    operators: dict
    tensors: list


def read_flatbuffer(content):
    """Lists the operators and the weight tensors of a .tflite model.

    Weight tensors are constant tensors that are sparse or have at least two axes longer than
    one (kernels, not biases, scalars or zero states).

    Args:
        content: the .tflite file's bytes.

    Returns:
        A `FlatbufferInfo`.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    operators = {}
    tensors = []
    for graph in model.subgraphs:
        codes = [_operator_name(model.operatorCodes[op.opcodeIndex]) for op in graph.operators]
        for name in codes:
            operators[name] = operators.get(name, 0) + 1
        densified, readers = {}, {}
        for op, name in zip(graph.operators, codes):
            if name == "DENSIFY":
                densified[int(op.inputs[0])] = int(op.outputs[0])
            else:
                around = [*op.outputs, *reversed(op.inputs)]
                names = [graph.tensors[i].name.decode(errors="replace") for i in around if i >= 0]
                for i in op.inputs:
                    readers.setdefault(int(i), (name, names))
        for index, tensor in enumerate(graph.tensors):
            data = model.buffers[tensor.buffer].data if tensor.buffer else None
            long_axes = 0 if tensor.shape is None else sum(int(d) > 1 for d in tensor.shape)
            if data is None or (long_axes < 2 and tensor.sparsity is None):
                continue
            reader = readers.get(densified.get(index, index), (None, []))
            info = _tensor_info(tensor, np.asarray(data, np.uint8), index in densified, *reader)
            tensors.append(info)
    return FlatbufferInfo(operators, tensors)


def _operator_name(code):
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{code.customCode.decode()}"
    return OPERATOR_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _tensor_info(tensor, data, densified, reader, reader_names):
    shape = [int(d) for d in tensor.shape]
    dtype = TYPE_NAMES.get(tensor.type, str(tensor.type))
    total = int(np.prod(shape))
    values = data.view(dtype) if dtype in NUMPY_TYPES else None
    stored = total if values is None else values.size
    nonzero = None if values is None else int(np.count_nonzero(values))
    encoding, block, index_bytes = "dense", None, 0
    if tensor.sparsity is not None:
        encoding, block, index_bytes = _sparse_encoding(tensor.sparsity, len(shape))
    return TensorInfo(
        name=tensor.name.decode(errors="replace"),
        shape=shape,
        dtype=dtype,
        encoding=encoding,
        block_shape=block,
        stored_values=stored,
        total_values=total,
        sparsity=None if nonzero is None else 1.0 - nonzero / total,
        nbytes=int(data.size) + index_bytes,
        densified=densified,
        reader=reader,
        reader_names=reader_names,
    )


def _sparse_encoding(sparsity, rank):
    """`(encoding, block_shape, index_bytes)` from a tensor's `SparsityParameters`.

    The traversal order lists the tensor's `rank` dimensions, then one extra dimension per
    blocked axis (named in `block_map`); the extra dimensions' dense sizes are the block sizes.
    """
    metadata = sparsity.dimMetadata
    index_bytes = 0
    for dim in metadata:
        if dim.format == schema.DimensionType.SPARSE_CSR:
            for kind, vector in (
                (dim.arraySegmentsType, dim.arraySegments),
                (dim.arrayIndicesType, dim.arrayIndices),
            ):
                if vector is not None and vector.values is not None:
                    index_bytes += len(vector.values) * INDEX_BYTES[kind]
    block_map = [] if sparsity.blockMap is None else [int(a) for a in sparsity.blockMap]
    if not block_map:
        return "csr", None, index_bytes
    block = [1] * rank
    for axis, dim in zip(block_map, metadata[rank:]):
        block[axis] = int(dim.denseSize)
    return "block " + "x".join(map(str, block)), block, index_bytes
