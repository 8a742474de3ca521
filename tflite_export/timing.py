"""The one LiteRT latency timer, for `export` and for benchmarks: files timed side by side.

Load from other processes on a shared machine comes and goes. Timing the files in alternating
rounds and keeping each file's fastest round lets a busy moment hit every file alike, instead of
whichever file happened to be running then.
"""

import os
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from tflite_export.inspect import read_flatbuffer
from tflite_export.verify import choose_runtime


def median_latency_us(models, inputs, *, rounds=7, runs=500, num_threads=1, warmup=20):
    """Median `invoke()` time of each .tflite file, timed in alternating rounds.

    Each file runs under the runtime `export` verified it with (`verify.choose_runtime`: builtin
    kernels when XNNPACK refuses or miscomputes the file). Round r times file 0, then file 1, ...,
    `runs` invocations each; a file's figure is the median of its fastest round. Every
    invocation starts from reset variables, as in verification.

    Args:
        models: .tflite files, each as bytes or a path.
        inputs: numpy arrays for one invocation, one per input in the files' input order, or a
            dict of them by signature input name (a multi-input Keras model's input names)
            (`model.inputs` order for files `export` wrote), at the batch the files were
            exported with; a dynamic batch is resized to the arrays'.
        rounds: alternating rounds.
        runs: timed invocations of each file in a round.
        num_threads: interpreter threads.
        warmup: untimed invocations of each file before the first round.

    Returns:
        `(best_us, rounds_us)`: `best_us[m]`, file m's fastest round median in microseconds,
        and `rounds_us[r][m]`, file m's median in round r.

    Raises:
        ValueError: no file, a count below 1 (warmup below 0), or inputs that do not fit.

    >>> (sparse_us, dense_us), _ = median_latency_us([sparse, "dense.tflite"], [x[:1]])
    """
    counts = [("rounds", rounds, 1), ("runs", runs, 1), ("num_threads", num_threads, 1)]
    for name, value, least in [*counts, ("warmup", warmup, 0)]:
        if not isinstance(value, int) or value < least:
            raise ValueError(f"Expected an integer >= {least}. Received: {name}={value!r}")
    if not models:
        raise ValueError(f"Expected at least one .tflite file. Received: models={models!r}")
    interpreters = [_ready(model, inputs, num_threads, warmup) for model in models]
    rounds_us = [[_median_us(i, runs) for i in interpreters] for _ in range(rounds)]
    return [min(column) for column in zip(*rounds_us)], rounds_us


def _ready(model, inputs, num_threads, warmup):
    """An interpreter of `model` under its runtime, `inputs` set, warmed up."""
    if isinstance(model, (bytes, bytearray)):
        content, name = bytes(model), f"a .tflite file of {len(model):,} bytes"
    else:
        with open(model, "rb") as file:
            content, name = file.read(), f"'{os.fspath(model)}'"
    resolver, _ = choose_runtime(content, read_flatbuffer(content).tensors)
    interpreter = Interpreter(
        model_content=content, num_threads=num_threads, experimental_op_resolver_type=resolver
    )
    details = interpreter.get_input_details()
    if isinstance(inputs, dict):  # the file's input order need not be the Keras model's
        signature = interpreter.get_signature_runner().get_input_details()
        by_index = {detail["index"]: key for key, detail in signature.items()}
        if set(inputs) != set(signature):
            raise ValueError(
                f"{name} takes the inputs {sorted(signature)}. Received: {sorted(inputs)}."
            )
        inputs = [inputs[by_index[detail["index"]]] for detail in details]
    if len(inputs) != len(details):
        raise ValueError(
            f"{name} takes {len(details)} input(s). Received: {len(inputs)} array(s). Pass one "
            "array per input, in the file's input order."
        )
    for detail, x in zip(details, inputs):
        shape, expected = list(np.shape(x)), [int(d) for d in detail["shape_signature"]]
        if len(shape) != len(expected) or any(e not in (-1, s) for e, s in zip(expected, shape)):
            raise ValueError(
                f"Input '{detail['name']}' of {name} is shaped {expected} (-1: any size). "
                f"Received: an array shaped {shape}."
            )
        if shape != list(detail["shape"]):
            interpreter.resize_tensor_input(detail["index"], shape)
    interpreter.allocate_tensors()
    for detail, x in zip(details, inputs):
        interpreter.set_tensor(detail["index"], np.asarray(x, detail["dtype"]))
    for _ in range(warmup):
        interpreter.reset_all_variables()
        interpreter.invoke()
    return interpreter


def _median_us(interpreter, runs):
    times = np.empty(runs)
    for i in range(runs):
        interpreter.reset_all_variables()
        start = time.perf_counter()
        interpreter.invoke()
        times[i] = time.perf_counter() - start
    return 1e6 * float(np.median(times))
