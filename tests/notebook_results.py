"""Each notebook's key result, read back from the text its cells printed in fast mode.

Beyond "the cells ran": sparsity rises with alpha; every export passes parity; the chunks the LSTM
zeroes are the ones at or below the threshold; and so on. The figures must hold on Fashion-MNIST and
on the offline fallback, scikit-learn's 8x8 digits. `check_executed` is applied to each notebook
as JupyterLab saved it after *Run All Cells* (tests/test_notebooks_browser.py).
"""

import re

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def check_executed(nb, name):
    """Asserts that a notebook run in fast mode shows what it teaches: no error, a control, a
    figure outside the controls, fast mode, the exercise's check passed, and its key result."""
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    assert [o for o in outputs if WIDGET_VIEW in o.get("data", {})], f"{name} displays no ipywidgets control"
    assert [o for o in outputs if "image/png" in o.get("data", {})], f"{name} draws no figure outside the widgets"
    printed = _printed(nb.cells)
    assert "fast mode" in printed, f"{name} did not report running in fast mode"
    assert _printed(nb.cells[-1:]).startswith("Correct:"), f"{name}: the exercise's check did not pass"
    KEY_RESULTS[name[:2]](printed)


def _printed(cells):
    return "".join(o.get("text", "") for cell in cells if cell.cell_type == "code"
                   for o in cell.outputs if o.output_type == "stream" and o.get("name") == "stdout")


def _find(pattern, text, what):
    """The groups of every match of `pattern` (multiline), as floats where they are numbers."""
    found = re.findall(pattern, text, flags=re.M)
    assert found, f"{what}: /{pattern}/ not in the printed output:\n{text[-3000:]}"
    return [tuple(_number(g) for g in (m if isinstance(m, tuple) else (m,))) for m in found]


def _number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return text


# -- each notebook's key result, from what its cells print ---------------------------------------

def _key_01(text):
    # A masked weight (w=0.3 under t=0.5) still gets gradient: descent grows |w| and lowers t.
    ((mask, y, dw, dt),) = _find(rf"MaskedDense \+ GradientTape: mask=(\d), y=({NUMBER}), "
                                 rf"dL/dw=({NUMBER}), dL/dt=({NUMBER})", text, "one weight")
    assert (mask, y) == (0, 0) and dw < 0 and dt > 0, f"mask {mask}, y {y}, dL/dw {dw}, dL/dt {dt}"
    # ... so it comes back with the long-tailed estimator, sooner than with the sigmoid surrogate,
    # and never with the true derivative.
    runs = dict(_find(r"^(\S.*?)\s{2,}(back after \d+ steps|still masked)$", text, "revival"))
    steps = {name: int(result.split()[2]) if result.startswith("back") else None for name, result in runs.items()}
    assert steps["true derivative (0)"] is None, steps
    assert steps["long-tailed (tfprune)"] is not None, steps
    assert steps["long-tailed (tfprune)"] < steps["sigmoid derivative (k=8)"], steps
    # The exercise: past a gap of -1 the long tail passes nothing.
    ((gap,),) = _find(rf"a start gap \|w\| - t of ({NUMBER})", text, "exercise")
    assert -1.1 <= gap < -1, gap


def _key_02(text):
    # DST makes each layer as sparse as it can afford: fc1 (most weights) most, the classifier least.
    overall, fc1, fc2, fc3 = _find(rf"epochs: ({NUMBER})% of weights masked \(fc1 ({NUMBER})%, "
                                   rf"fc2 ({NUMBER})%, fc3 ({NUMBER})%\)", text, "first run")[0]
    assert overall > 0 and fc1 > fc2 > fc3, (overall, fc1, fc2, fc3)
    ((keys,),) = _find(r"^keys in History: (.*)$", text, "History")
    assert {"sparsity", "sparsity/fc1", "alpha", "threshold_resets"} <= set(keys.split(", ")), keys
    # The forced scenario: fc2 starts fully masked and the reset rule revives it.
    ((resets, fc2_after),) = _find(rf"threshold_resets after the epoch: (\d+) \| final sparsity: "
                                   rf"{{.*'sparsity/fc2': ({NUMBER})", text, "reset demo")
    assert resets >= 1 and fc2_after < 0.99, (resets, fc2_after)
    # Sparsity rises with alpha (the exercise).
    ((small_alpha, small, alpha, large),) = _find(
        rf"sparsity rises with alpha: alpha=({NUMBER}) -> ({NUMBER})% of weights masked, "
        rf"alpha=({NUMBER}) -> ({NUMBER})%", text, "exercise")
    assert small_alpha < alpha and small < large, (small_alpha, small, alpha, large)
    assert large == overall, "the exercise compares with the first run"


def _key_03(text):
    # Calibration hits the target on the calibration data.
    ((calibrated,),) = _find(rf"'hidden_sparsity': ({NUMBER})", text, "calibration")
    assert abs(calibrated - 0.5) <= 0.02, calibrated
    # The sweep: threshold 0 prunes nothing and changes nothing; sparsity rises with the threshold.
    ((dense,),) = _find(rf"^dense LSTM: test accuracy ({NUMBER})$", text, "dense")
    sweep = _find(rf"^\s*({NUMBER})\s+({NUMBER})%\s+({NUMBER})\s+(\d+)$", text, "sweep")
    thresholds, sparsity, accuracy = ([row[i] for row in sweep] for i in range(3))
    assert thresholds == sorted(thresholds) and thresholds[0] == 0, thresholds
    assert sparsity[0] == 0 and accuracy[0] == dense, (sparsity[0], accuracy[0], dense)
    assert sparsity == sorted(sparsity) and sparsity[-1] > 90, sparsity
    # The zeroed chunks are the ones at or below the threshold: every kept one is above it.
    for kept, threshold in _find(rf"smallest kept chunk ({NUMBER}) > ({NUMBER})", text, "heatmap"):
        assert kept > threshold, (kept, threshold)
    # compact(model, data=) removes never-kept units without changing the outputs on that data.
    for (change,) in _find(rf"max \|output change\| on the calibration data ({NUMBER})", text, "compact"):
        assert change < 1e-5, change
    ((before, after),) = _find(r"first threshold with a never-kept unit: threshold \S+, units (\d+) -> (\d+)",
                               text, "unit removal")
    assert after < before, (before, after)
    # Hidden-unit DST: units fall with the target, and the smallest file runs faster than dense.
    rows = _find(rf"^\s*({NUMBER})\s+(\d+)\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})x\s+[\d,]+$", text, "units")
    targets, kept, latency = ([row[i] for row in rows] for i in (0, 1, 3))
    assert targets[0] == 0 and kept[0] == 64 and kept == sorted(kept, reverse=True) and kept[-1] < 32, kept
    assert latency[-1] < latency[0], latency
    ((share,),) = _find(rf"zeroes ({NUMBER})% of the chunks", text, "exercise")
    assert share >= 75, share


def _key_04(text):
    # strip and compact change no output.
    ((stripped,),) = _find(rf"max \|masked - stripped\| over \d+ test images: ({NUMBER})", text, "strip")
    ((compacted,),) = _find(rf"max \|stripped - compacted\|: ({NUMBER})", text, "compact")
    assert stripped == 0 and compacted < 1e-5, (stripped, compacted)
    # Every export passes parity.
    names = ("dense", "sparse", "compacted", "int8", "block 1x4")
    parity = dict(_find(r"^(dense|sparse|compacted|int8|block 1x4) +\d+ .*: (passed|FAILED)$", text, "parity"))
    assert parity == {name: "passed" for name in names}, parity
    # Sparse encoding, compaction and int8 each make the file smaller.
    size = dict(_find(rf"^(dense|sparse|compacted|int8|block 1x4) +({NUMBER}) KiB", text, "sizes"))
    assert size["sparse"] < size["dense"] and size["block 1x4"] < size["dense"], size
    assert size["compacted"] <= size["sparse"] and size["int8"] < size["compacted"], size
    assert _find(r"Correct: the dynamic-range file .* passed parity", text, "exercise")


def _key_05(text):
    # Sparsity rises with alpha; the classifier stays the densest layer at every alpha.
    rows = _find(rf"^\s*({NUMBER})\s+({NUMBER})\s+({NUMBER})%\s+({NUMBER})%\s+({NUMBER})%\s+({NUMBER})%$",
                 text, "alpha sweep")
    rows.sort()
    remaining = [row[2] for row in rows]
    assert len(rows) >= 3 and remaining == sorted(remaining, reverse=True) and len(set(remaining)) == len(rows), rows
    for alpha, _, _, fc1, fc2, fc3 in rows:
        assert fc3 > max(fc1, fc2), f"alpha={alpha}: fc1 {fc1}%, fc2 {fc2}%, fc3 {fc3}%"
    # The DST-shaped dense network is smaller than the original.
    ((original,),) = _find(r"^  dense 300-100 +([\d,]+) parameters", text, "comparison")
    ((shaped,),) = _find(r"^  DST-shaped \d+-\d+ +([\d,]+) parameters", text, "comparison")
    assert shaped < original, (shaped, original)
    # Filter DST on the MobileNet: compaction keeps the outputs and removes channel groups; the
    # policy's file meets XNNPACK's conditions.
    ((dense_params,),) = _find(r"^dense MobileNetV1-0.25: .* ([\d,]+) parameters$", text, "dense CNN")
    ((narrow_params, drift),) = _find(rf"^filter DST, compacted: .* ([\d,]+) parameters, max \|output change\| from compaction ({NUMBER})$",
                                      text, "filter DST")  # fmt: skip
    assert narrow_params < dense_params and drift < 1e-4, (narrow_params, dense_params, drift)
    assert _find(r"^XNNPACK sparse inference: qualifies=True", text, "policy verdict")
    assert _find(r"Correct: fc3 is the densest layer at every alpha", text, "exercise")


KEY_RESULTS = {"01": _key_01, "02": _key_02, "03": _key_03, "04": _key_04, "05": _key_05}
