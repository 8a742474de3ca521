"""Starts N local processes of one training script, joined as one JAX cluster on loopback.

    python -m tfprune.launch -n 2 train.py --epochs 5

For trying multi-process DST on one machine (README, "Training on several machines"; on real
hosts start one process per host with the same variables, see `tfprune.distributed`). Each
process gets `KERAS_BACKEND=jax`, JAX's gloo CPU collectives, Keras' cluster variables
(coordinator 127.0.0.1 on a free port, the process count, its rank) and `TFPRUNE_PROCESS_ID`.
Their output is prefixed with `[rank]`. When one process fails or the timeout passes, the others
are stopped (they would wait forever for it) and the launcher exits with that failure's code.
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(rank, num_processes, port, base=None):
    """The environment of process `rank`: JAX backend, CPU collectives, Keras' cluster variables."""
    env = dict(os.environ if base is None else base)
    env.update(
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
        KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
        KERAS_DISTRIBUTION_NUM_PROCESSES=str(num_processes),
        KERAS_DISTRIBUTION_PROCESS_ID=str(rank),
        TFPRUNE_PROCESS_ID=str(rank),
        PYTHONUNBUFFERED="1",
    )
    return env


def launch(num_processes, command, timeout=None, env=None, out=None):
    """Runs `command` (an argv list) in `num_processes` processes; returns their exit codes.

    Args:
        num_processes: processes to start (>= 1).
        command: the argv each process runs, e.g. `[sys.executable, "train.py"]`.
        timeout: seconds before every process still running is killed (None: no limit).
        env: the environment to extend (default: this process's).
        out: where the prefixed output goes (default sys.stdout).

    Returns:
        One exit code per rank; a process stopped because another failed or the time ran out
        reports -9.

    Raises:
        ValueError: num_processes < 1 or an empty command.
    """
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be an integer >= 1. Received: {num_processes!r}")
    if not command:
        raise ValueError("Give the command each process runs, e.g. ['python', 'train.py'].")
    out = out or sys.stdout
    port = free_port()
    procs = [
        subprocess.Popen(
            command, env=process_env(rank, num_processes, port, env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        for rank in range(num_processes)
    ]
    lock = threading.Lock()

    def relay(rank, stream):
        for line in stream:
            with lock:
                out.write(f"[{rank}] {line}")
                out.flush()

    relays = [threading.Thread(target=relay, args=(r, p.stdout), daemon=True) for r, p in enumerate(procs)]
    for thread in relays:
        thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            failed = any(p.poll() not in (None, 0) for p in procs)
            late = deadline is not None and time.monotonic() > deadline
            if failed or late:
                if late:
                    out.write(f"tfprune.launch: stopping every process after {timeout} s\n")
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
        for p in procs:
            p.wait()
        for thread in relays:
            thread.join(timeout=5)
    return [p.returncode for p in procs]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfprune.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--num-processes", type=int, default=2, help="processes to start (default 2)")
    parser.add_argument("--timeout", type=float, help="seconds before every process is stopped")
    parser.add_argument("script", help="the Python script each process runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    args = parser.parse_args(argv)
    if args.num_processes < 1:
        parser.error(f"-n must be >= 1. Received: {args.num_processes}")
    if not os.path.isfile(args.script):
        parser.error(f"no script at {args.script!r}")
    codes = launch(args.num_processes, [sys.executable, args.script, *args.args], timeout=args.timeout)
    bad = [(rank, code) for rank, code in enumerate(codes) if code]
    if bad:
        print("tfprune.launch: " + ", ".join(f"process {r} exited with {c}" for r, c in bad), file=sys.stderr)
    return next((code for _, code in bad if code > 0), 1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
