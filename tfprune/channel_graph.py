"""The channel graph `compact` decides on: every position of every tensor's last axis, tied.

Every position on the last (channel) axis of every tensor in the functional graph is a node.
Layers that carry channels through (a `ChannelOp` in the registry) tie positions together: tied
positions are removed together or not at all. Model inputs and outputs, and any layer without a
rule, keep every position. A group of tied positions goes when each weight layer reading it
either has zero weights from it to its kept units, or can fold its constant into its bias
(Dense always; Conv only with 'valid' padding or a zero constant). A Dense layer whose kernel is
sparse in 1x4 or 1x16 input blocks has its inputs removed in whole aligned blocks only, so
TFLite's block-sparse kernel still applies.
"""

import dataclasses
from typing import NamedTuple

import keras
import numpy as np

from tfprune import registry

# Block widths TFLite's sparse FULLY_CONNECTED kernels run (int8 1x16, float 1x4), widest first.
TFLITE_BLOCKS = (16, 4)



@dataclasses.dataclass
class LayerCompaction:
    """One layer's channel axis: units before and after, the removed unit indices, and those
    removed on the data's evidence alone (`compact(model, data=...)`)."""

    name: str
    units_before: int
    units_after: int
    removed: list
    by_data: list = dataclasses.field(default_factory=list)



def block_width(usage):
    """The width N (widest in `TFLITE_BLOCKS`) of a kernel pruned in aligned 1xN input blocks.

    A kernel qualifies when each aligned block of N inputs is all used or all unused by a unit,
    and some unit keeps some blocks and drops others (a unit-pruned kernel does not).

    Args:
        usage: `(inputs, units)` bool, input i feeds unit u.

    Returns:
        N, or None when the kernel has no such structure.
    """
    for n in TFLITE_BLOCKS:
        if usage.shape[0] % n:
            continue
        blocks = usage.reshape(usage.shape[0] // n, n, -1)
        kept = blocks.any(axis=1)
        if np.array_equal(kept, blocks.all(axis=1)) and np.any(kept.any(0) & ~kept.all(0)):
            return n
    return None


def _topological_nodes(model):
    """The Keras nodes between the model's inputs and outputs, producers first."""
    order, seen = [], set()
    stack = [(t, False) for t in reversed(model.outputs)]
    while stack:
        tensor, expanded = stack.pop()
        history = tensor._keras_history
        node = history.operation._inbound_nodes[history.node_index]
        if expanded:
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
            continue
        if id(node) in seen:
            continue
        stack.append((tensor, True))
        stack.extend((t, False) for t in node.arguments.keras_tensors)
    return order


class _Role(NamedTuple):
    """What a graph node does to channel positions."""

    kind: str  # "unit" (owns its output units), "link" (carries positions) or "barrier"
    rule: object = None  # the UnitSurgery or ChannelOp
    weights: list = ()
    links: list = ()  # link: [(input index, input positions, output positions)]
    usage: object = None  # unit: (inputs, units) bool, which input feeds which unit
    recurrent: object = None  # unit: (units, units) bool for recurrent layers
    observed: object = None  # unit: bool per unit, seen at 0 on every step of the data


_BARRIER = _Role("barrier")


class Graph:
    """Channel positions of every tensor, tied into groups, with constants and weight readers.

    Args:
        model: a functional or Sequential model of plain (stripped) layers.
        observed: also treat as constant 0 the units a layer saw at 0 on every step of the data
            the model last predicted (`UnitSurgery.observed_zero`).
    """

    def __init__(self, model, observed=False):
        self.observed = observed
        self.nodes = _topological_nodes(model)
        self.span = {}  # id(tensor) -> position indices of its last axis
        self.size = 0
        for node in self.nodes:
            for t in node.outputs:
                dim = t.shape[-1] if len(t.shape) > 1 else None
                n = dim if isinstance(dim, int) else 0
                self.span[id(t)] = np.arange(self.size, self.size + n)
                self.size += n
        self.parent = list(range(self.size))
        self.fixed = [self.span[id(t)] for t in model.inputs + model.outputs]
        calls = {}
        for node in self.nodes:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        self.role = {id(n): self._classify(n, calls[id(n.operation)] > 1) for n in self.nodes}
        self.root = np.array([self._find(i) for i in range(self.size)], dtype=int)
        self.const = self._constants()

    def _find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _tie(self, a, b):
        for i, j in zip(a.tolist(), b.tolist()):
            self.parent[self._find(i)] = self._find(j)

    def _tie_blocks(self, positions, usage):
        """Ties the inputs of a 1xN block-sparse kernel in aligned groups of N.

        Removing inputs one by one would shift the blocks off TFLite's grid (no sparse kernel)
        or leave an input count N does not divide, which TFLite's block kernel miscomputes.
        """
        n = block_width(usage)
        if n:
            groups = positions.reshape(-1, n)
            for k in range(1, n):
                self._tie(groups[:, k], groups[:, 0])

    def _ins(self, node):
        return node.arguments.keras_tensors

    def _classify(self, node, shared):
        layer, ins, outs = node.operation, self._ins(node), node.outputs
        if isinstance(layer, keras.layers.InputLayer):
            return _BARRIER
        known = ins and len(outs) == 1 and all(len(self.span[id(t)]) for t in ins + outs)
        entry = registry.for_stock(layer)
        surgery = entry and entry.units
        op = entry and entry.channels
        if known and not shared and surgery is not None and len(ins) == 1:
            if surgery.supports(layer):
                if surgery.output_fixed(layer):
                    self.fixed.append(self.span[id(outs[0])])
                w = layer.get_weights()
                usage, recurrent = surgery.usage(layer, w), surgery.recurrent_usage(layer, w)
                if isinstance(layer, keras.layers.Dense):
                    self._tie_blocks(self.span[id(ins[0])], usage)
                seen = surgery.observed_zero(layer, w) if self.observed else None
                if seen is not None and recurrent is not None:
                    recurrent = recurrent & ~seen[:, None]  # a unit seen at 0 feeds nothing
                return _Role("unit", surgery, w, usage=usage, recurrent=recurrent, observed=seen)
        elif known and not shared and op is not None:
            links = op.links(layer, [tuple(t.shape) for t in ins], tuple(outs[0].shape))
            if links is not None:
                for k, in_pos, out_pos in links:
                    self._tie(self.span[id(ins[k])][in_pos], self.span[id(outs[0])][out_pos])
                return _Role("link", op, layer.get_weights(), links)
        self.fixed.extend(self.span[id(t)] for t in ins + outs)
        return _BARRIER

    def _constants(self):
        """Per position: the value it takes for every model input, NaN if input-dependent."""
        const = np.full(self.size, np.nan)
        for node in self.nodes:
            role = self.role[id(node)]
            if role.kind == "barrier":
                continue
            ins = [const[self.span[id(t)]] for t in self._ins(node)]
            out = self.span[id(node.outputs[0])]
            if role.kind == "unit":
                const[out] = role.rule.constants(node.operation, role.weights, ins[0])
                if role.observed is not None:
                    const[out[role.observed]] = 0.0
            else:
                const[out] = role.rule.constants(
                    node.operation, role.weights, ins, role.links, len(out)
                )
        return const

    def decide(self):
        """Largest set of removable groups: shrink from 'all free groups' until consistent."""
        remove = np.ones(self.size, dtype=bool)  # indexed by group root
        for span in self.fixed:
            remove[self.root[span]] = False
        spans = [self.span[id(t)] for n in reversed(self.nodes) for t in n.outputs]
        while True:
            while self._keep_read(remove) or self._balance(remove):
                pass
            # A layer needs at least one unit: keep one where a whole tensor would go.
            empty = [s for s in spans if len(s) and remove[self.root[s]].all()]
            if not empty:
                return remove
            remove[self.root[empty[0][0]]] = False

    def _keep_read(self, remove):
        """Un-removes groups that a kept unit still reads and cannot fold; True if any."""
        changed = False
        for node in self.nodes:
            role, layer = self.role[id(node)], node.operation
            if role.kind != "unit":
                continue
            surgery = role.rule
            p_in, p_out = self.span[id(self._ins(node)[0])], self.span[id(node.outputs[0])]
            kept_out = ~remove[self.root[p_out]]
            c = self.const[p_in]
            foldable = np.isfinite(c) & ((c == 0) | surgery.can_fold(layer))
            read = role.usage[:, kept_out].any(axis=1)
            bad = [p_in[remove[self.root[p_in]] & read & ~foldable]]
            if role.recurrent is not None:  # a kept unit still reads a removed one
                bad.append(p_out[~kept_out & role.recurrent[:, kept_out].any(axis=1)])
            for positions in bad:
                if len(positions):
                    remove[self.root[positions]] = False
                    changed = True
        return changed

    def _balance(self, remove):
        """Un-removes the units a layer's rule must keep for its own shape constraints (the two
        halves of a Bidirectional keep equal counts); True if any."""
        changed = False
        for node in self.nodes:
            role = self.role[id(node)]
            if role.kind != "unit":
                continue
            p_out = self.span[id(node.outputs[0])]
            kept = ~remove[self.root[p_out]]
            extra = role.rule.balance(node.operation, kept) & ~kept
            if extra.any():
                remove[self.root[p_out[extra]]] = False
                changed = True
        return changed

    def plans(self, remove):
        """`{id(layer): (config, weights)}` for rewritten layers, and the report rows."""
        plans, rows = {}, []
        for node in self.nodes:
            role, layer = self.role[id(node)], node.operation
            if role.kind == "barrier":
                continue
            p_ins = [self.span[id(t)] for t in self._ins(node)]
            p_out = self.span[id(node.outputs[0])]
            keep_ins = [~remove[self.root[p]] for p in p_ins]
            keep_out = ~remove[self.root[p_out]]
            config, weights = layer.get_config(), role.weights
            if role.kind == "unit":
                c = self.const[p_ins[0]]
                folded = np.where(~keep_ins[0] & np.isfinite(c), c, 0.0)
                plans[id(layer)] = role.rule.rewrite(
                    layer, config, weights, keep_ins[0], keep_out, folded
                )
            else:
                plans[id(layer)] = role.rule.rewrite(layer, config, weights, keep_ins, keep_out)
            if weights:
                removed = np.flatnonzero(~keep_out).tolist()
                rows.append(LayerCompaction(layer.name, len(p_out), int(keep_out.sum()), removed))
        return plans, rows
