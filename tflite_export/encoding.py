"""Choosing, per weight tensor, an encoding TFLite computes correctly.

The converter block-encodes a sparse FULLY_CONNECTED weight in 1x4 (float) or 1x16 (int8) blocks
even when the block does not divide the tensor's input axis, and such a tensor comes out wrong
(an LSTM reading one feature per step, or 123 units left after compaction: the values past the
last whole block are lost). Those tensors are taken instead from the dense conversion of the
same graph, stored as plain constants: exact, and small (a misaligned axis is short).
"""

import dataclasses

import flatbuffers
from tensorflow.lite.python import schema_py_generated as schema


@dataclasses.dataclass(frozen=True)
class Reencoded:
    """A tensor stored dense instead of the converter's block encoding, and why."""

    name: str
    shape: list
    block: list
    reason: str


def densify_misaligned_blocks(content, dense_content):
    """Replaces the block-encoded tensors whose block does not divide their axis by dense ones.

    Args:
        content: the sparse conversion's .tflite bytes.
        dense_content: the same model converted without sparse encoding (same settings
            otherwise); its operators come in the same order.

    Returns:
        `(content, rewritten)`: the corrected bytes (the input itself when nothing needed it) and
        a list of `Reencoded`.

    Raises:
        ValueError: a misaligned tensor has no dense counterpart (the graphs differ).
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    dense = schema.ModelT.InitFromPackedBuf(bytearray(dense_content), 0)
    dense_weights = _weights_by_reader(dense)
    rewritten = []
    for key, tensor in _weights_by_reader(model).items():
        shape = [] if tensor.shape is None else [int(d) for d in tensor.shape]
        block = _block_shape(tensor, len(shape))
        if block is None or not any(d % b for d, b in zip(shape, block)):
            continue
        twin = dense_weights.get(key)
        if twin is None or [int(d) for d in twin.shape] != shape or twin.sparsity:
            raise ValueError(
                f"Tensor {tensor.name.decode(errors='replace')!r} is block-encoded on an axis "
                "its block does not divide, and the dense conversion has no such tensor to "
                "take instead. Export with sparse=False."
            )
        model.buffers[tensor.buffer].data = dense.buffers[twin.buffer].data
        tensor.sparsity, tensor.quantization = None, twin.quantization
        axis = next(a for a, (d, b) in enumerate(zip(shape, block)) if d % b)
        rewritten.append(
            Reencoded(
                tensor.name.decode(errors="replace"),
                shape,
                block,
                f"dense: a {'x'.join(map(str, block))} block does not divide its "
                f"{shape[axis]}-wide axis, which TFLite's block encoding gets wrong",
            )
        )
    if not rewritten:
        return content, []
    builder = flatbuffers.Builder(len(content))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), rewritten


def _weights_by_reader(model):
    """Constant weight inputs keyed by where they are read, which both conversions share.

    Tensor and activation names differ between a sparse and a dense conversion of one graph,
    but the operators come in the same order once the sparse file's DENSIFY ops are skipped:
    the key is `(subgraph, operator ordinal without DENSIFY, operator code, input slot)`.
    """
    found = {}
    densify = schema.BuiltinOperator.DENSIFY
    for position, graph in enumerate(model.subgraphs):
        codes = [_code(model.operatorCodes[op.opcodeIndex]) for op in graph.operators]
        densified = {
            int(op.outputs[0]): int(op.inputs[0])
            for op, code in zip(graph.operators, codes)
            if code == densify
        }
        readers = [(op, code) for op, code in zip(graph.operators, codes) if code != densify]
        for ordinal, (op, code) in enumerate(readers):
            for slot, index in enumerate(int(i) for i in op.inputs):
                index = densified.get(index, index)
                tensor = graph.tensors[index] if index >= 0 else None
                if tensor is None or not tensor.buffer or model.buffers[tensor.buffer].data is None:
                    continue
                found[(position, ordinal, code, slot)] = tensor
    return found


def _code(operator_code):
    return max(operator_code.builtinCode, operator_code.deprecatedBuiltinCode)


def _block_shape(tensor, rank):
    sparsity = tensor.sparsity
    if sparsity is None or sparsity.blockMap is None or len(sparsity.blockMap) == 0:
        return None
    block = [1] * rank
    for k, axis in enumerate(sparsity.blockMap):
        block[int(axis)] = int(sparsity.dimMetadata[rank + k].denseSize)
    return block
