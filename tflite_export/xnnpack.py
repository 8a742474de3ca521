"""The export report's verdict on XNNPACK's sparse inference: will the file run sparse, and here?

XNNPACK (LiteRT's default CPU delegate) runs the 1x1 convolutions of a MobileNet-like subgraph
with sparse kernels when the subgraph has the shape `tfprune.policy` checks, its weights are
float and stored sparse, and each 1x1 convolution is at least 2/3 zeros. It does so on ARM only:
on x86 with AVX it keeps its dense kernels (`xnn_is_chw_compatible_config`), so a latency
measured there cannot show the gain.
"""

import platform

import keras

from tfprune.policy import MIN_SPARSITY, PolicyError, xnnpack_subgraph


def sparse_inference_verdict(model, kernels, sparse, quantize, compacted=False):
    """`{"qualifies", "reasons", "layers", "cpu", "cpu_can_use", "runs_sparse_here"}` for a
    convolutional `model` as converted, or None for a model without 2-D convolutions.

    Args:
        model: the Keras model that was converted (stripped, compacted).
        kernels: the report's `LayerKernel`s (how the file stores each weight tensor).
        sparse: whether sparse encoding was requested.
        quantize: the export's quantization (XNNPACK's sparse kernels are float only).
        compacted: whether `compact` ran before conversion (it removes all-zero rows and
            columns, which lowers a kernel's share of zeros).
    """
    if not any(isinstance(l, keras.layers.Conv2D) for l in model._flatten_layers(include_self=False)):
        return None
    reasons, layers = [], {}
    try:
        subgraph = xnnpack_subgraph(model)
    except PolicyError as error:
        reasons.append(str(error))
        subgraph = None
    if quantize:
        reasons.append(f"quantize={quantize!r}: XNNPACK's sparse kernels take float weights only")
    if not sparse:
        reasons.append("sparse=False: the weights are stored dense; export with sparse=True")
    stored = {k.layer: k.encoding for k in kernels if k.layer}
    for name in subgraph.layers if subgraph else ():
        kernel = keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        layers[name] = float((kernel == 0).mean())
        if layers[name] < MIN_SPARSITY:
            hint = (" (compaction removed its all-zero rows and columns: export with compact=False "
                    "to keep them, or prune it further)") if compacted else ""
            reasons.append(f"'{name}' is {layers[name]:.1%} zeros, below the 2/3 XNNPACK needs{hint}")
        elif sparse and stored.get(name, "dense") == "dense":
            reasons.append(f"'{name}' is stored dense by the converter")
    cpu, can_use = _cpu()
    qualifies = not reasons
    return {
        "qualifies": qualifies,
        "reasons": reasons,
        "layers": layers,
        "cpu": cpu,
        "cpu_can_use": can_use,
        "runs_sparse_here": qualifies and can_use,
    }


def _cpu():
    """`(description, whether XNNPACK's sparse kernels run on this processor)`."""
    machine = platform.machine().lower()
    if machine.startswith(("arm", "aarch64")):
        return f"{machine} (ARM): XNNPACK's sparse kernels run here", True
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    if " avx" in flags:
        return (f"{machine} with AVX: XNNPACK keeps its dense kernels here, so the latency above "
                "does not show the sparse speed-up; it applies on ARM phones"), False  # fmt: skip
    return f"{machine}: XNNPACK's sparse kernels are meant for ARM; this processor may not use them", False
