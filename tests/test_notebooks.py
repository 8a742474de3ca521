"""The notebooks' shape: each opens with "What you will learn", has "What to try next", ends with a
"Try this" exercise (an answer cell filled in fast mode, then a cell that checks it), stays small
and carries no widget state. Running them, their controls and their key results are tested in
JupyterLab (tests/test_notebooks_browser.py, results in tests/notebook_results.py).
"""

from pathlib import Path

import nbformat
import pytest

from notebook_results import KEY_RESULTS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
MAX_BYTES = 400_000


def _read(path):
    return nbformat.read(path, as_version=4)


def test_notebooks_exist():
    assert PATHS, f"no notebooks found in {NOTEBOOKS}"
    assert sorted(KEY_RESULTS) == sorted(p.name[:2] for p in PATHS), "every notebook needs its key result"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_structure_and_size(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "What you will learn" in first.source
    assert any(c.cell_type == "markdown" and "What to try next" in c.source for c in nb.cells)
    # The exercise closes the notebook: a "Try this" cell, the answer cell, the cell checking it.
    exercise, answer, check = nb.cells[-3:]
    assert exercise.cell_type == "markdown" and "Try this" in exercise.source, "end with a Try this exercise"
    assert answer.cell_type == "code" and "if FAST:" in answer.source, "the answer cell fills in fast mode"
    assert check.cell_type == "code" and "assert" in check.source and "Correct:" in check.source
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    assert "widgets" not in nb.metadata, "strip widget state (python notebooks/execute.py)"


