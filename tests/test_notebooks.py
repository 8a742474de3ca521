"""Every notebook in notebooks/ runs top to bottom in fast mode in a real Jupyter kernel.

Each notebook must also open with a "What you will learn" cell, end with a "What to try next"
cell and display at least one ipywidgets control.
"""

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Fast mode runs a notebook in well under a minute on 2 idle cores; the per-cell bound leaves room
# for a machine shared with benchmarks.
TIMEOUT_PER_CELL = 300
MAX_BYTES = 400_000


def _read(path):
    return nbformat.read(path, as_version=4)


def _execute(path):
    nb = _read(path)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=TIMEOUT_PER_CELL,
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env={**os.environ, "TFPRUNE_FAST": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    return nb


def test_notebooks_exist():
    assert PATHS, f"no notebooks found in {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_structure_and_size(path):
    nb = _read(path)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and "What you will learn" in first.source
    assert last.cell_type == "markdown" and "What to try next" in last.source
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    assert "widgets" not in nb.metadata, "strip widget state (python notebooks/execute.py)"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_executes_in_fast_mode(path):
    start = time.perf_counter()
    nb = _execute(path)  # raises CellExecutionError, naming the cell, when a cell fails
    elapsed = time.perf_counter() - start

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    widgets = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    assert widgets, f"{path.name} displays no ipywidgets control"
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} draws no figure outside the widgets"
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "fast mode" in printed, f"{path.name} did not report running in fast mode"
    print(f"{path.name}: {elapsed:.1f} s in fast mode")
