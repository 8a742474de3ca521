"""The export report: what was written, how sparse it is on disk, how faithful and how fast."""

import dataclasses

from tflite_export.inspect import TensorInfo
from tflite_export.kernels import LayerKernel
from tflite_export.verify import Parity

NAME_WIDTH = 44


@dataclasses.dataclass
class ExportReport:
    """What `tflite_export.export` wrote and measured.

    Attributes:
        path: the .tflite file written.
        size_bytes: its size.
        sha256: the SHA-256 of its bytes (hex), to check that a file is the one described.
        dense_size_bytes: size of the same model converted without sparse encoding (same
            quantization), the baseline the sparse encoding is measured against.
        sparse: whether sparse encoding was requested.
        quantize: None, `"dynamic"` or `"int8"`.
        batch_size: the static batch, or None for a dynamic batch.
        operators: `{op name: count}` over all subgraphs (DENSIFY means the weights are expanded
            at load time: smaller file, dense speed).
        tensors: one `TensorInfo` per weight tensor.
        layers: one `LayerKernel` per weight tensor: its Keras layer, whether it runs a sparse
            kernel, and why (or why not).
        parity: Keras vs LiteRT agreement.
        latency_ms: median `invoke()` time under the LiteRT interpreter (one thread), the
            fastest of a few rounds alternating with the dense export (`timing`).
        dense_latency_ms: the same for the dense export, under its own runtime.
        latency_batch: the batch size latency was measured at.
        params: values of every weight of the model as converted (biases included).
        nonzero_params: the nonzero ones: what any file must store at least.
        physical_limit_bytes: `nonzero_params` times the bytes a stored value takes (1 for
            `"dynamic"` and `"int8"`, 4 for float): the size no encoding can go below.
        weights: `tfprune.sparsity_report(model as converted).to_dict()`: params and nonzeros
            per kernel.
        runtime_note: empty when the file runs under LiteRT's default runtime (XNNPACK);
            otherwise why and how it must be run on builtin kernels.
        compaction: `tfprune.compact`'s report as a dict, or None if compaction was off.
        reencoded: tensors stored dense instead of the converter's encoding, each with its
            shape, the block it had and why (`tflite_export.encoding`).
        recurrent_form: for a model with recurrent layers, how the file holds them: `"loop"`
            (a WHILE loop) or `"unrolled"` (`tflite_export.unroll`); None otherwise.
        form_latency_ms: `{form: ms}` of each form converted and timed side by side when more
            than one was (`recurrent="auto"`); the file is the fastest that passed parity.
        form_notes: `{form: why}` for each form `recurrent="auto"` left out: the model does not
            allow it (a GRU is never fused), its conversion failed, or its parity failed (the
            fused operator clips cell states at +-10).
        xnnpack_sparse: for a model with 2-D convolutions, whether the file meets XNNPACK's
            sparse-inference conditions (`qualifies`, else `reasons`: a 1x1 conv under 2/3 zeros,
            a layer outside the set, the stem or the head), each 1x1 conv's share of zeros, and
            whether this CPU can use the sparse kernels (`cpu_can_use`: ARM yes, x86 with AVX
            no) (`tflite_export.xnnpack`); None otherwise.
        hidden_state: per hidden-state-pruned LSTM, the share of chunks zeroed and of recurrent
            multiply-adds that could be skipped on the verification data, and that the file's
            stock kernels do not skip them (`tflite_export.recurrent`).
    """

    path: str
    size_bytes: int
    sha256: str
    dense_size_bytes: int
    sparse: bool
    quantize: str | None
    batch_size: int | None
    operators: dict
    tensors: list[TensorInfo]
    layers: list[LayerKernel]
    parity: Parity
    latency_ms: float
    dense_latency_ms: float
    latency_batch: int
    params: int
    nonzero_params: int
    physical_limit_bytes: int
    weights: dict
    runtime_note: str = ""
    compaction: dict | None = None
    reencoded: list = dataclasses.field(default_factory=list)
    hidden_state: dict = dataclasses.field(default_factory=dict)
    recurrent_form: str | None = None
    form_latency_ms: dict = dataclasses.field(default_factory=dict)
    form_notes: dict = dataclasses.field(default_factory=dict)
    xnnpack_sparse: dict | None = None

    @property
    def compression(self):
        """How many times smaller than the dense export the file is."""
        return self.dense_size_bytes / self.size_bytes

    @property
    def size_over_limit(self):
        """How many times the physical limit the file takes (None when no weight is nonzero)."""
        return self.size_bytes / self.physical_limit_bytes if self.physical_limit_bytes else None

    def to_dict(self):
        """A JSON-serialisable dict of every field, plus `compression` and `size_over_limit`."""
        return {
            **dataclasses.asdict(self),
            "compression": self.compression,
            "size_over_limit": self.size_over_limit,
        }

    def __str__(self):
        parity = self.parity
        agreement = ""
        if parity.argmax_agreement is not None:
            agreement = f", argmax agreement {parity.argmax_agreement:.1%}"
        held = "<=" if parity.criterion == "max_abs_diff" else ">="
        lines = [
            f"TFLite export: {self.path}",
            f"  file size    {_kb(self.size_bytes)}  (dense export {_kb(self.dense_size_bytes)}: "
            f"{self.compression:.2f}x)",
            f"  sha256       {self.sha256}",
            f"  weights      {self.nonzero_params:,} of {self.params:,} nonzero (kernels "
            f"{self.weights['sparsity']:.1%} sparse); physical limit "
            f"{_kb(self.physical_limit_bytes)}" + _times(self.size_over_limit),
            f"  settings     sparse={self.sparse}, quantize={self.quantize}, "
            f"batch={'dynamic' if self.batch_size is None else self.batch_size}",
            "  operators    " + ", ".join(f"{n} x{c}" for n, c in self.operators.items()),
            f"  parity       {'passed' if parity.passed else 'FAILED'} on {parity.samples} samples"
            f": max |diff| {parity.max_abs_diff:.3g}{agreement} "
            f"({parity.criterion} {held} {parity.threshold:.3g})",
            f"  latency      {1000 * self.latency_ms:.1f} µs median at batch {self.latency_batch} "
            f"(dense export {1000 * self.dense_latency_ms:.1f} µs)",
        ]
        if self.recurrent_form:
            timed = ", ".join(f"{f} {1000 * ms:.1f} µs" for f, ms in self.form_latency_ms.items())
            lines.append(f"  recurrent    {self.recurrent_form}" + (f" (the fastest: {timed})" if timed else ""))
            lines += [f"               not {form}: {why}" for form, why in self.form_notes.items()]
        if self.runtime_note:
            lines.append(f"  runtime      {self.runtime_note}")
        if self.xnnpack_sparse:
            x = self.xnnpack_sparse
            verdict = "meets its conditions" if x["qualifies"] else "does not qualify: " + "; ".join(x["reasons"])
            lines.append(f"  XNNPACK sparse inference: {verdict}")
            lines.append(f"               CPU: {x['cpu']}")
        if self.compaction:
            before, after = self.compaction["params_before"], self.compaction["params_after"]
            lines.append(f"  compaction   {before:,} -> {after:,} parameters")
        for name, h in self.hidden_state.items():
            lines.append(
                f"  hidden state {name}: {h['hidden_sparsity']:.1%} of chunks zeroed, "
                f"{h['recurrent_macs_skipped']:.1%} of recurrent multiply-adds skippable on the "
                f"verification data, {'skipped' if h['skipped_in_file'] else 'NOT skipped'} by "
                f"this file: {h['note']}"
            )
        lines += [
            "",
            f"  {'tensor':<{NAME_WIDTH}} {'shape':>11} {'dtype':>7} {'encoding':>10} "
            f"{'stored':>7} {'sparsity':>8} {'bytes':>9}",
        ]
        for t in self.tensors:
            name = _short(t.name)
            encoding = t.encoding + ("*" if t.densified else "")
            sparsity = "-" if t.sparsity is None else f"{t.sparsity:.1%}"
            lines.append(
                f"  {name:<{NAME_WIDTH}} {'x'.join(map(str, t.shape)):>11} {t.dtype:>7} "
                f"{encoding:>10} {t.stored_values / t.total_values:>7.1%} {sparsity:>8} "
                f"{t.nbytes:>9,}"
            )
        if any(t.densified for t in self.tensors):
            lines.append("  * expanded by DENSIFY at load time: smaller file, dense-speed kernel.")
        for r in self.reencoded:
            lines.append(f"  {_short(r['name'])}: {r['reason']}")
        width = max([len(k.layer or "?") for k in self.layers] + [5])
        lines += ["", f"  {'layer':<{width}} {'op':<15} {'kernel':<6}  why"]
        for k in self.layers:
            kernel = "sparse" if k.runs_sparse else "dense"
            lines.append(f"  {k.layer or '?':<{width}} {k.op or '-':<15} {kernel:<6}  {k.reason}")
        return "\n".join(lines)


def _short(name):
    return name if len(name) <= NAME_WIDTH else "..." + name[-NAME_WIDTH + 3 :]


def _kb(size):
    return f"{size / 1024:,.1f} KiB"


def _times(ratio):
    return "" if ratio is None else f" (file {ratio:.2f}x that)"
