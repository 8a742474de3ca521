"""The notebooks as a learner sees them: JupyterLab in headless Chromium.

One JupyterLab server (127.0.0.1, random free port and token, TFPRUNE_FAST=1 in the environment its
kernels inherit) serves a temporary copy of notebooks/ (plus the benchmark file notebooks 2 and 5
read), so nothing the browser does touches the repository. For each notebook the test opens it,
runs *Run > Run All Cells*, checks that no cell raised and the exercise's check passed, then moves
one control (a slider's readout, a dropdown, a button) and asserts that the figure and the number
that control governs change as they should. Before that, the notebook JupyterLab saves after
Run All must show its key result (`notebook_results.check_executed`): this run is the suite's
only execution of the notebooks. A screenshot of each notebook, scrolled to that control, is written to
`test-artifacts/notebooks/NN.png` (next to the JUnit report `.ci/run` writes; set
TFPRUNE_TEST_ARTIFACTS to put them elsewhere).

Needs Debian's `chromium` and `chromium-driver` and the `test` extra (selenium, jupyterlab). If they
are missing the tests FAIL with the install command: they never skip.
"""

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

import browser_support
from browser_support import JupyterLab, LabPage
from notebook_results import check_executed

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ARTIFACTS = Path(os.environ.get("TFPRUNE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "notebooks"
BENCH_FILES = ["bench/out/lenet300.jsonl"]  # what notebooks 2 and 5 read, copied beside the notebooks


@dataclass
class Interaction:
    """One control to move in a notebook and what must change because of it."""

    control: str  # label of a control in the cell (slider/dropdown description or button text)
    steps: list  # (method of LabPage, arguments after the cell)
    pattern: str  # regex with the numbers the control governs, read from the cell's text
    check: callable = field(repr=False)  # (groups before, groups after) -> None, asserting

    def run(self, page, cell):
        for method, *arguments in self.steps:
            getattr(page, method)(cell, *arguments)


def _check_01(before, after):
    # default w = 0.3 under t = 0.5 is masked; w = 0.9 is kept, and the layer's output follows
    assert (before[0], after[0]) == ("0", "1"), f"mask {before[0]} -> {after[0]}, expected 0 -> 1"
    assert float(before[1]) == 0 and float(after[1]) != 0, f"y {before[1]} -> {after[1]}"


def _check_02(before, after):
    # retrained with a larger alpha: more of the weights are masked
    assert float(after[0]) == pytest.approx(0.01), f"trained with alpha {after[0]}, not the slider's 0.01"
    assert float(after[2]) > float(before[2]), (
        f"alpha {before[0]} -> {after[0]} should raise the sparsity, got {before[2]}% -> {after[2]}%")


def _check_03(before, after):
    # threshold 0 prunes (almost) nothing: the hidden sparsity falls
    assert float(after[0]) == 0, f"threshold {after[0]}, not the slider's 0"
    assert float(after[1]) < float(before[1]), f"hidden sparsity {before[1]}% -> {after[1]}% at threshold 0"


def _check_04(before, after):
    # the parity figure of the float export instead of int8's
    assert (before[0], after[0]) == ("int8", "compacted"), f"report of {before[0]} -> {after[0]}"
    assert float(after[1]) < 1e-3 < float(before[1]), f"max |diff| {before[1]} -> {after[1]}"


def _check_05(before, after):
    # a wider multiplier gives wider hidden layers (each capped at the original width)
    widths_before, widths_after = [int(w) for w in before[:2]], [int(w) for w in after[:2]]
    assert float(after[2]) == 2, f"multiplier {after[2]}, not the slider's 2"
    assert all(a >= b for a, b in zip(widths_after, widths_before)) and widths_after != widths_before, (
        f"hidden units {widths_before} -> {widths_after} with multiplier {before[2]} -> {after[2]}")


INTERACTIONS = {
    "01": Interaction(
        "weight w", [("set_slider", "weight w", 0.9)],
        r"MaskedDense \+ GradientTape: mask=(\d), y=([+-]\d+\.\d+)", _check_01),
    "02": Interaction(
        "Train", [("set_slider", "alpha", 0.01), ("click", "Train")],
        r"alpha=(\S+), (\d+) epochs: (\d+\.\d)% of weights masked", _check_02),
    "03": Interaction(
        "threshold", [("set_slider", "threshold", 0)],
        r"threshold (\d+\.\d+): hidden sparsity (\d+\.\d)%", _check_03),
    "04": Interaction(
        "export", [("select", "export", "compacted")],
        r"TFLite export: \S*?(\w+)\.tflite[\s\S]*?parity +passed on \d+ samples: max \|diff\| ([\d.e+-]+)",
        _check_04),
    "05": Interaction(
        "Train and compare", [("set_slider", "width ×", 2.0), ("click", "Train and compare")],
        r"-> hidden units \[(\d+), (\d+)\] \(multiplier ([\d.]+)\)", _check_05),
}


def _digest(data_url):
    return hashlib.sha256(data_url.encode()).hexdigest()[:16]


def _last(pattern, text, where):
    found = re.findall(pattern, text)
    assert found, f"/{pattern}/ not found in {where}"
    last = found[-1]
    return last if isinstance(last, tuple) else (last,)


def _saved(path, timeout=60):
    """The notebook JupyterLab saved, once the file is whole (the server may still be writing)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return nbformat.reads(path.read_text(), as_version=4)
        except (nbformat.reader.NotJSONError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_every_notebook_has_an_interaction():
    assert sorted(INTERACTIONS) == sorted(p.name[:2] for p in NOTEBOOKS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = browser_support.missing_browser()
    if reason:
        pytest.fail(f"the browser test cannot run: {reason}", pytrace=False)
    work = tmp_path_factory.mktemp("jupyterlab")
    root = work / "root"
    browser_support.copy_tree(REPO / "notebooks", root / "notebooks", "*.ipynb")
    for relative in BENCH_FILES:
        if (REPO / relative).exists():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, root / relative)
    env = {"TFPRUNE_FAST": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = JupyterLab(root, work, env=env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(lab):
    driver = browser_support.chromium()
    try:
        yield LabPage(driver, lab)
    finally:
        driver.quit()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_in_jupyterlab(page, lab, path):
    number = path.name[:2]
    interaction = INTERACTIONS[number]
    screenshot, failed = ARTIFACTS / f"{number}.png", ARTIFACTS / f"{number}-failed.png"
    for stale in (screenshot, failed):
        stale.unlink(missing_ok=True)
    start = time.monotonic()
    try:
        page.open(f"notebooks/{path.name}")
        ran = page.run_all()
        assert not page.errors(), f"{path.name} raised in JupyterLab:\n" + "\n".join(page.errors())
        text = page.output_text()
        assert "fast mode" in text, f"{path.name}: the kernel did not get TFPRUNE_FAST=1"
        assert "Correct:" in text, f"{path.name}: the exercise's check did not pass"
        page.save()  # as Run All Cells left it, before a control moves
        check_executed(_saved(lab.root / "notebooks" / path.name), path.name)  # the key result, from what the cells printed

        cell = page.widget_cell(interaction.control)
        before = page.view(cell)
        interaction.run(page, cell)
        after = page.wait_for_widget_output(cell, interaction.pattern, changed_from=before[3])
        page.screenshot(cell, screenshot)
        assert _digest(after[3]) != _digest(before[1]), (
            f"{path.name}: the figure did not change when {interaction.control!r} moved")
        old = _last(interaction.pattern, before[0], "the cell before the change")
        new = _last(interaction.pattern, after[2], "the widget output after the change")
        interaction.check(old, new)
        page.save()  # nothing unsaved: leaving the page asks no question
        print(f"{path.name}: ran in {ran:.1f} s, {interaction.control!r}: {old} -> {new}, "
              f"{time.monotonic() - start:.1f} s in all; screenshot {screenshot}")
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.driver.save_screenshot(str(failed))  # what the page showed when the test failed
        raise
    finally:
        lab.shutdown_kernels()
