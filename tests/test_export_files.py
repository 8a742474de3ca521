"""The written file: created like any file (umask), whole or absent after a kill -9, one writer
per path at a time, and described by its report's sha256."""

import contextlib
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading

import keras
import pytest

import tflite_export
from tflite_export import files

FILES_PY = files.__file__
# A child process exporting a small model to argv[1]. It prints "converting" when conversion
# starts, then waits there until the file argv[2] exists ("-": no wait), and prints its report's
# sha256 when done.
EXPORT_CHILD = """
import json, os, sys, time
import keras
import tflite_export
from tflite_export import pipeline

out, go = sys.argv[1], sys.argv[2]
convert = pipeline.to_tflite_encodings

def announced(*args, **kwargs):
    print("converting", flush=True)
    while go != "-" and not os.path.exists(go):
        time.sleep(0.05)
    return convert(*args, **kwargs)

pipeline.to_tflite_encodings = announced
keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(8), keras.layers.Dense(4)])
report = tflite_export.export(model, out, latency_runs=2)
print(json.dumps({"sha256": report.sha256}), flush=True)
"""
# A child process that loads files.py alone (no TensorFlow: fast) and kills itself with
# SIGKILL once the content is on disk, before it gets its name: the end of the write window.
# argv: files.py, destination, "named" to force the fallback without O_TMPFILE.
WRITE_CHILD = """
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("files", sys.argv[1])
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)
if sys.argv[3] == "named":
    files._unnamed = lambda directory, mode: None
fill = files._fill

def fill_then_die(*args):
    fill(*args)
    os.kill(os.getpid(), signal.SIGKILL)

files._fill = fill_then_die
files.write_atomically(sys.argv[2], b"x" * 100_000)
"""


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(8), keras.layers.Dense(4)])


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def umask(mask):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def start_export(tmp_path, out, go="-"):
    log = open(tmp_path.parent / f"{tmp_path.name}.child.log", "w")
    child = subprocess.Popen(
        [sys.executable, "-c", EXPORT_CHILD, str(out), str(go)],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    line = child.stdout.readline()
    assert line == "converting\n", (line, open(log.name).read()[-2000:])
    return child


def test_export_follows_the_umask_and_reports_the_files_sha256(tmp_path):
    with umask(0o027):
        report = tflite_export.export(mlp(), tmp_path / "m.tflite", latency_runs=2)
    assert stat.S_IMODE(os.stat(tmp_path / "m.tflite").st_mode) == 0o640
    assert report.sha256 == sha256(tmp_path / "m.tflite")
    assert report.sha256 in str(report) and report.to_dict()["sha256"] == report.sha256
    assert os.listdir(tmp_path) == ["m.tflite"]  # no temporary, no lock


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("named", [False, True])
def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path, monkeypatch,
                                                                       mask, named):  # fmt: skip
    if named:  # the fallback where O_TMPFILE is missing
        monkeypatch.setattr(files, "_unnamed", lambda directory, mode: None)
    path = tmp_path / "r.json"
    with umask(mask):
        files.write_atomically(path, b"{}")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
        os.chmod(path, 0o604)
        files.write_atomically(path, b"[]")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o604 and path.read_bytes() == b"[]"
    assert os.listdir(tmp_path) == ["r.json"]


def can_link_unnamed(directory):
    """Whether this system lets a process name an O_TMPFILE (else the named fallback runs)."""
    fd = files._unnamed(str(directory), 0o600)
    if fd is None:
        return False
    try:
        return files._name(fd, str(directory / ".probe"))
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.remove(directory / ".probe")


def test_a_kill_at_the_end_of_the_write_leaves_no_temporary(tmp_path):
    if not can_link_unnamed(tmp_path):
        pytest.skip("no O_TMPFILE that this process may link: the named fallback applies")
    path = tmp_path / "m.tflite"
    path.write_bytes(b"previous")
    child = subprocess.run([sys.executable, "-c", WRITE_CHILD, FILES_PY, str(path), "unnamed"])
    assert child.returncode == -signal.SIGKILL
    assert os.listdir(tmp_path) == ["m.tflite"] and path.read_bytes() == b"previous"


def test_named_leftovers_of_dead_writers_are_swept(tmp_path):
    path = tmp_path / "m.tflite"
    child = subprocess.Popen([sys.executable, "-c", WRITE_CHILD, FILES_PY, str(path), "named"])
    assert child.wait() == -signal.SIGKILL
    (leftover,) = os.listdir(tmp_path)  # the fallback's named temporary
    assert leftover.startswith(f".m.tflite.{child.pid}.") and leftover.endswith(".tmp")
    live = tmp_path / f".m.tflite.{os.getpid()}.abcd1234.tmp"  # a writer still running
    live.write_bytes(b"")
    other = tmp_path / f".n.tflite.{child.pid}.abcd1234.tmp"  # another file's
    other.write_bytes(b"")
    files.write_atomically(path, b"new")
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "m.tflite"])


def test_a_killed_export_leaves_no_file_and_the_next_one_cleans_up(tmp_path):
    path = tmp_path / "m.tflite"
    child = start_export(tmp_path, path)
    child.send_signal(signal.SIGKILL)  # inside the converter
    child.wait()
    assert set(os.listdir(tmp_path)) <= {".m.tflite.lock"}  # the lock is empty and free
    report = tflite_export.export(mlp(), path, latency_runs=2)
    assert os.listdir(tmp_path) == ["m.tflite"] and report.sha256 == sha256(path)


def test_a_second_export_to_the_same_path_is_refused(tmp_path):
    path, go = tmp_path / "m.tflite", tmp_path.parent / f"{tmp_path.name}.go"
    child = start_export(tmp_path, path, go)  # holds the path, paused in conversion
    try:
        with pytest.raises(BlockingIOError, match=f"Another export \\(process {child.pid}\\)"):
            tflite_export.export(mlp(), path, latency_runs=2)
        assert os.listdir(tmp_path) == [".m.tflite.lock"]
    finally:
        go.write_text("")
    out, _ = child.communicate(timeout=300)
    assert child.returncode == 0
    assert json.loads(out.splitlines()[-1])["sha256"] == sha256(path)  # the child's own file
    report = tflite_export.export(mlp(), path, latency_runs=2)  # now free: replaces it
    assert report.sha256 == sha256(path) != json.loads(out.splitlines()[-1])["sha256"]
    assert os.listdir(tmp_path) == ["m.tflite"]


def test_the_lock_is_reentrant_in_one_thread_only(tmp_path):
    path = tmp_path / "m.tflite"
    refused = []
    with files.exclusive(path), files.exclusive(path):
        thread = threading.Thread(target=lambda: refused.append(_try_lock(path)))
        thread.start()
        thread.join()
    assert refused == ["refused"] and os.listdir(tmp_path) == []


def _try_lock(path):
    try:
        with files.exclusive(path):
            return "held"
    except BlockingIOError:
        return "refused"
