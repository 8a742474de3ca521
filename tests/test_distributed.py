"""DST in two JAX processes on 127.0.0.1 keeps its state in step, and resumes after a crash.

The processes run tests/distributed_worker.py through `tfprune.launch` (free port, bounded in
time, every process stopped on failure). The reference is one process with two CPU devices and
the same global batch: the same computation, so the figures must agree to float tolerance.
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

from tfprune import distributed
from tfprune.launch import launch, main

WORKER = [sys.executable, str(Path(__file__).with_name("distributed_worker.py"))]
TIMEOUT = 400


def _run(num_processes, out, scenarios, *extra, env=None):
    out.mkdir(exist_ok=True)
    log = StringIO()
    codes = launch(num_processes, [*WORKER, str(out), scenarios, *extra], timeout=TIMEOUT, env=env, out=log)
    assert codes == [0] * num_processes, log.getvalue()[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two processes (alpha, target, no distribution, crash) beside one process of two devices;
    then two processes resuming the crashed run."""
    root = tmp_path_factory.mktemp("distributed")
    backup = ["--backup", str(root / "backup")]
    one = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    with ThreadPoolExecutor(1) as pool:
        reference = pool.submit(_run, 1, root / "one", "alpha,target", env=one)
        _run(2, root / "two", "alpha,target,nodist,crash", *backup)
        reference.result()
    _run(2, root / "resumed", "resume", *backup)
    return root


def _state(path):
    assert path.exists(), f"{path.name} missing: {sorted(p.name for p in path.parent.iterdir())}"
    return dict(np.load(path))


@pytest.mark.parametrize("scenario", ["alpha", "target"])
def test_two_processes_end_with_identical_masks_and_thresholds(runs, scenario):
    first, second = (_state(runs / "two" / f"{scenario}-{rank}.npz") for rank in (0, 1))
    assert first.keys() == second.keys() and any(k.endswith("/mask") for k in first)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert 0.2 < first["sparsity"][-1] < 0.9


@pytest.mark.parametrize("scenario", ["alpha", "target"])
def test_two_processes_match_one_process_with_the_same_global_batch(runs, scenario):
    two, one = _state(runs / "two" / f"{scenario}-0.npz"), _state(runs / "one" / f"{scenario}-0.npz")
    # Stated tolerance: sparsity within 0.1 points every epoch, thresholds within 1e-5.
    np.testing.assert_allclose(two["sparsity"], one["sparsity"], atol=1e-3)
    for key in two:
        if key.endswith("/threshold"):
            np.testing.assert_allclose(two[key], one[key], atol=1e-5, err_msg=key)


def test_processes_without_a_distribution_are_refused(runs):
    for rank in (0, 1):
        message = (runs / "two" / f"nodist-{rank}.error").read_text()
        assert f"process {rank} of 2" in message and "data_parallel()" in message


def test_interrupted_processes_resume_to_the_uninterrupted_masks(runs):
    for rank in (0, 1):
        assert "interrupted at epoch 2" in (runs / "two" / f"crash-{rank}.error").read_text()
        resumed, straight = _state(runs / "resumed" / f"resume-{rank}.npz"), _state(runs / "two" / f"alpha-{rank}.npz")
        assert len(resumed["sparsity"]) == 1  # epoch 2 only: epochs 0 and 1 came from the backup
        assert resumed["sparsity"][-1] == straight["sparsity"][-1]
        for key in resumed:
            if key != "sparsity":
                np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)


def test_launch_stops_every_process_when_one_fails(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "import os, sys, time\n"
        "if os.environ['TFPRUNE_PROCESS_ID'] == '1':\n"
        "    sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    log = StringIO()
    codes = launch(2, [sys.executable, str(script)], timeout=30, out=log)
    assert codes == [-9, 3]


def test_launch_cli_gives_each_process_its_rank_and_the_cluster(tmp_path, capsys):
    script = tmp_path / "show.py"
    script.write_text(
        "import os\n"
        "keys = ['KERAS_BACKEND', 'KERAS_DISTRIBUTION_NUM_PROCESSES', 'KERAS_DISTRIBUTION_PROCESS_ID']\n"
        "print(*[os.environ[k] for k in keys], os.environ['KERAS_DISTRIBUTION_JOB_ADDRESSES'][:10])\n"
    )
    assert main(["-n", "3", "--timeout", "60", str(script)]) == 0
    lines = sorted(capsys.readouterr().out.splitlines())
    assert lines == [f"[{r}] jax 3 {r} 127.0.0.1:" for r in range(3)]
    with pytest.raises(SystemExit):
        main(["-n", "0", str(script)])


def test_local_batches_split_each_global_batch_by_rank(monkeypatch):
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    monkeypatch.setattr(distributed, "process_count", lambda: 2)
    parts = {}
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "process_index", lambda rank=rank: rank)
        parts[rank] = distributed.local_batches(4, x, y)
    # global batches [0..3] and [4..7]; rows 8 and 9 make no whole batch
    assert parts[0][1].tolist() == [0, 1, 4, 5] and parts[1][1].tolist() == [2, 3, 6, 7]
    assert parts[0][0].tolist() == x[[0, 1, 4, 5]].tolist()
    with pytest.raises(ValueError, match="multiple of the 2 processes"):
        distributed.local_batches(3, x)
    with pytest.raises(ValueError, match="fewer"):
        distributed.local_batches(12, x)


def test_tensorflow_multi_worker_strategy_is_refused_with_the_upstream_issue():
    class ClusterSpec:
        def num_tasks(self, job):
            return 2

    class Resolver:
        def cluster_spec(self):
            return ClusterSpec()

    class MultiWorkerMirroredStrategy:
        cluster_resolver = Resolver()

    class Model:
        distribute_strategy = MultiWorkerMirroredStrategy()

    with pytest.raises(RuntimeError, match="keras-team/keras#20585"):
        distributed.check_setting(Model())
    ClusterSpec.num_tasks = lambda self, job: 1
    distributed.check_setting(Model())  # one worker: nothing to keep in step


def test_data_parallel_needs_jax():
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=jax"):
        distributed.data_parallel()
