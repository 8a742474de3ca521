"""DST in several processes: Keras' `DataParallel` on JAX, with DST's state kept in step.

DST's state (thresholds, alpha, the controller's integral, the reset counts) lives in layer
weights, which `DataParallel` replicates, and `DynamicPrune` decides from those weights alone,
so every process takes the same decision at the same step. Processes that never joined one
distribution would each train their own model: `DynamicPrune` refuses that when training
begins. (A weight assigned a different value in one process is JAX's to catch: its
`device_put` asserts the value is the same on each process, and the run stops.) TensorFlow's multi-worker strategy does not run Keras 3's `fit` at all
(keras-team/keras#20585), so DST refuses it with that reason instead of training.

    # every process, started by `python -m tfprune.launch -n 2 train.py` (or by hand, below)
    tfprune.distributed.data_parallel()
    x, y = tfprune.distributed.local_batches(64, x, y)   # this process's rows of each batch
    model.fit(x, y, batch_size=64 // tfprune.distributed.process_count(), shuffle=False,
              callbacks=[tfprune.DynamicPrune()])
"""

import os

import keras
import numpy as np

ISSUE = "keras-team/keras#20585"


def data_parallel():
    """Joins the cluster the environment describes and trains data-parallel on all its devices.

    The cluster comes from Keras' variables `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's
    host:port), `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`, which
    `python -m tfprune.launch` sets; without them this is one process (on every local device).
    Each process then feeds its own rows (`auto_shard_dataset=False`; see `local_batches`).

    Returns:
        The `keras.distribution.DataParallel` now in effect.

    Raises:
        RuntimeError: Keras is not on JAX.
    """
    if keras.backend.backend() != "jax":
        raise RuntimeError(
            "tfprune's multi-process training uses keras.distribution, which runs on JAX. Set "
            "KERAS_BACKEND=jax before Keras is imported (python -m tfprune.launch does). "
            f"TensorFlow's MultiWorkerMirroredStrategy cannot run Keras 3's fit ({ISSUE})."
        )
    import jax

    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1:
        if not jax.distributed.is_initialized():
            keras.distribution.initialize()
    distribution = keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    return distribution


def process_count():
    """Processes training together (1 unless JAX's distributed runtime joined several)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def process_index():
    """This process's rank; 0 is the one that writes checkpoints and exports."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def is_chief():
    """True in the process that should write files (checkpoints, exports, plots)."""
    return process_index() == 0


def local_batches(global_batch_size, *arrays):
    """This process's rows of every global batch, so the processes together see what one would.

    Global batch b holds rows `[b*G, (b+1)*G)`; process p of n takes the p-th of its n equal
    slices. Fit each process with `batch_size=global_batch_size // n` and `shuffle=False` to
    train on exactly the batches one process would (with `shuffle=True` each process shuffles
    its own rows). Rows after the last whole global batch are dropped: every process must run
    the same number of steps.

    Raises:
        ValueError: a global batch the processes cannot split evenly, arrays of unequal length,
            or fewer rows than one global batch.
    """
    n, p = process_count(), process_index()
    if not isinstance(global_batch_size, int) or global_batch_size < 1 or global_batch_size % n:
        raise ValueError(
            f"global_batch_size must be a positive multiple of the {n} processes. "
            f"Received: global_batch_size={global_batch_size!r}"
        )
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"Every array needs the same number of rows. Received lengths {sorted(lengths)}")
    batches = lengths.pop() // global_batch_size
    if not batches:
        raise ValueError(
            f"{global_batch_size} rows make one global batch; the arrays hold fewer. Pass more "
            "data or a smaller global_batch_size."
        )
    share = global_batch_size // n
    out = []
    for array in arrays:
        array = np.asarray(array)
        whole = array[: batches * global_batch_size].reshape(batches, global_batch_size, *array.shape[1:])
        out.append(whole[:, p * share : (p + 1) * share].reshape(batches * share, *array.shape[1:]))
    return out[0] if len(out) == 1 else tuple(out)


def check_setting(model):
    """Refuses a distributed setting in which DST's state cannot stay the same everywhere."""
    strategy = getattr(model, "distribute_strategy", None)
    if _workers(strategy) > 1:
        raise RuntimeError(
            f"DynamicPrune cannot run under {type(strategy).__name__}: Keras 3's fit fails there "
            f"({ISSUE}, open upstream). Train on JAX with keras.distribution.DataParallel "
            "instead: README, 'Training on several machines'."
        )
    if process_count() > 1 and keras.distribution.distribution() is None:
        raise RuntimeError(
            f"This is process {process_index()} of {process_count()}, but no keras.distribution "
            "is set: each process would train and prune its own model. Call "
            "tfprune.distributed.data_parallel() (or keras.distribution.set_distribution) "
            "before building the model."
        )


def _workers(strategy):
    """Workers of a TensorFlow multi-worker strategy (1 for any other strategy or none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if "MultiWorker" not in type(strategy).__name__ or resolver is None:
        return 1
    return max(1, resolver.cluster_spec().num_tasks("worker"))
