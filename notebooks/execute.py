"""Re-executes the notebooks in fast mode and saves them with light, static-friendly outputs.

    python notebooks/execute.py                 # every notebook, one after the other
    python notebooks/execute.py 01 04           # those whose name starts with 01 or 04

The committed outputs come from this script: `TFPRUNE_FAST=1`, figures as PNG at 80 dpi, widget
state removed (a static page cannot run the controls anyway; their text fallback says so) and
no per-cell timing metadata, so diffs stay small.
"""

import os
import resource
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[interactive controls: open the notebook in JupyterLab and run it to use them]"
MAX_BYTES = 400_000
# Lines TensorFlow and the TFLite converter write straight to the process' stderr (start-up,
# delegates, calibration), bypassing TF_CPP_MIN_LOG_LEVEL.
TF_LOG_PREFIXES = (
    "WARNING: All log messages before absl", "I0000 ", "W0000 ", "E0000 ",
    "INFO: Created TensorFlow Lite", "fully_quantize: ",
)


def execute(path, timeout=600):
    """Runs `path` top to bottom in a fresh `python3` kernel with TFPRUNE_FAST=1."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        record_timing=False,
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    env = {**os.environ, "TFPRUNE_FAST": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    client.execute(env=env)
    return nb


def clean(nb):
    """Drops widget state, execution metadata and TensorFlow's start-up log lines; widget
    outputs keep a readable text fallback."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if not _tf_log(o)]
        for output in cell.outputs:
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                data["text/plain"] = WIDGET_NOTE
    return nb


def _tf_log(output):
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return False
    lines = [line for line in output.get("text", "").splitlines() if line.strip()]
    return all(line.startswith(TF_LOG_PREFIXES) for line in lines)


def main(prefixes):
    paths = sorted(HERE.glob("*.ipynb"))
    if prefixes:
        paths = [p for p in paths if p.name.startswith(tuple(prefixes))]
    for path in paths:
        start, before = time.perf_counter(), _children_cpu()
        nb = clean(execute(path))
        nbformat.write(nb, path)
        size = path.stat().st_size
        flag = "" if size < MAX_BYTES else f"  (over {MAX_BYTES // 1000} KB!)"
        print(
            f"{path.name}: {time.perf_counter() - start:.1f} s wall, "
            f"{_children_cpu() - before:.1f} s kernel CPU, {size / 1000:.0f} KB{flag}",
            flush=True,
        )


def _children_cpu():
    """CPU seconds of finished child processes (the kernels): wall time on a busy machine
    overstates what a notebook costs, CPU time does not."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main(sys.argv[1:])
