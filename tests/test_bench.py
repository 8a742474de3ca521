"""The benchmark harness's record store and row runner (no training: fast)."""

import json

import numpy as np
import pytest
from tqdm import tqdm

from bench.records import Store, append_record, read_records, same_setup
from bench.runner import Row, run_rows

SETTINGS = {"dataset": "digits", "epochs": 2, "image_shape": [8, 8]}


def _record(run, status="ok", seed=0, **settings):
    return {"suite": "s", "run": run, "seed": seed, **SETTINGS, **settings, "status": status}


def _row(run, fn, seed=0, ready=None):
    head = {"suite": "s", "run": run, "seed": seed, "method": run, "params": {}, **SETTINGS}
    return Row(head, fn, SETTINGS, ready)


def _bar():
    return tqdm(total=0, disable=True)


def test_read_skips_a_cut_line_and_append_repairs_it(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, {"run": "a"})
    with open(path, "a") as f:
        f.write('{"run": "killed mid-wri')  # a run killed while writing: no newline
    assert read_records(path) == [{"run": "a"}]
    append_record(path, {"run": "b"})
    assert read_records(path) == [{"run": "a"}, {"run": "b"}]
    assert path.read_text().endswith('{"run": "b"}\n')


def test_read_of_a_missing_file_is_empty(tmp_path):
    assert read_records(tmp_path / "none.jsonl") == []


def test_same_setup_normalises_tuples_and_needs_every_key():
    record = json.loads(json.dumps(_record("a")))
    assert same_setup(record, {**SETTINGS, "image_shape": (8, 8)})
    assert not same_setup(record, {**SETTINGS, "epochs": 3})
    assert not same_setup(record, {**SETTINGS, "lr": 0.01})  # a key the record lacks


def test_store_recorded_needs_ok_status_same_settings_and_identity(tmp_path):
    path = tmp_path / "r.jsonl"
    for record in (_record("a"), _record("b", status="failed"), _record("c", epochs=9)):
        append_record(path, record)
    store = Store(path)
    assert store.recorded(SETTINGS, suite="s", run="a", seed=0)
    assert not store.recorded(SETTINGS, suite="s", run="a", seed=1)
    assert not store.recorded(SETTINGS, suite="s", run="b", seed=0)  # failed: run again
    assert not store.recorded(SETTINGS, suite="s", run="c", seed=0)  # other settings
    assert [r["run"] for r in store.finished(SETTINGS)] == ["a"]


def test_run_rows_records_a_failure_and_keeps_going(tmp_path):
    store = Store(tmp_path / "r.jsonl")

    def boom():
        raise ValueError("planted")

    rows = [_row("a", lambda: {"x": 1}), _row("b", boom), _row("c", lambda: {"x": 3})]
    assert run_rows(rows, store, _bar()) == 1
    records = read_records(store.path)
    assert [(r["run"], r["status"]) for r in records] == [("a", "ok"), ("b", "failed"), ("c", "ok")]
    assert "ValueError: planted" in records[1]["error"]
    assert records[0]["x"] == 1 and records[0]["dataset"] == "digits" and "wall_time" in records[0]


def test_run_rows_resumes_only_what_is_not_recorded(tmp_path):
    path = tmp_path / "r.jsonl"
    calls = []

    def row(run, fail=False):
        def fn():
            calls.append(run)
            if fail:
                raise RuntimeError(run)
            return {}

        return _row(run, fn)

    run_rows([row("a"), row("b", fail=True)], Store(path), _bar())
    calls.clear()
    run_rows([row("a"), row("b"), row("c")], Store(path), _bar())
    assert calls == ["b", "c"]  # "a" was recorded ok; "b" had failed


def test_run_rows_reruns_a_recorded_row_that_is_not_ready(tmp_path):
    store = Store(tmp_path / "r.jsonl")
    calls = []
    run_rows([_row("a", lambda: calls.append(1) or {})], store, _bar())
    run_rows([_row("a", lambda: calls.append(2) or {}, ready=lambda: False)], store, _bar())
    run_rows([_row("a", lambda: calls.append(3) or {}, ready=lambda: True)], store, _bar())
    assert calls == [1, 2]


def test_run_rows_fails_a_row_whose_figures_overwrite_the_record(tmp_path):
    store = Store(tmp_path / "r.jsonl")
    assert run_rows([_row("a", lambda: {"epochs": 99})], store, _bar()) == 1
    (record,) = store.records
    assert record["status"] == "failed" and "epochs" in record["error"]
    assert record["epochs"] == 2


def test_run_rows_plans_lazily_from_earlier_records(tmp_path):
    """A generator of rows sees the records of the rows before it (GMP matched to DST)."""
    store = Store(tmp_path / "r.jsonl")

    def plan():
        yield _row("dst", lambda: {"remaining": 0.25})
        (dst,) = store.finished(SETTINGS)
        yield _row("gmp", lambda: {"final_sparsity": 1 - dst["remaining"]})

    run_rows(plan(), store, _bar())
    assert store.records[-1]["final_sparsity"] == 0.75


def test_gmp_rows_expand_to_the_dst_runs_of_their_suite_and_seed():
    from bench import suites

    finished = [
        {"suite": "lenet300", "seed": 0, "method": "dst", "run": "dst alpha=0.001", "remaining": 0.1},
        {"suite": "lenet300", "seed": 1, "method": "dst", "run": "dst alpha=0.001", "remaining": 0.2},
        {"suite": "lenet5", "seed": 0, "method": "dst", "run": "dst alpha=0.001", "remaining": 0.3},
    ]
    (run,) = suites.expand(suites.Experiment("gmp", match="dst"), "lenet300", 0, finished)
    assert run.label == "gmp @ dst alpha=0.001"
    assert run.params == {"final_sparsity": pytest.approx(0.9), "matched": "dst alpha=0.001"}
    dense_only = suites.Experiment("gmp", match="dst", match_min_remaining=0.15)
    assert suites.expand(dense_only, "lenet300", 0, finished) == []
    assert len(suites.expand(dense_only, "lenet300", 1, finished)) == 1


def test_lstm_units_report_prefers_side_by_side_latency_and_compares_with_dense():
    from bench.lstm_units_report import render

    def export(name, us):
        return {"run": f"export {name} float", "status": "ok", "method": "export",
                "size_bytes": 2048, "limit_bytes": 1024, "latency_us": us}

    records = [
        {"run": "dense 128x128", "status": "ok", "method": "dense", "widths": [128, 128],
         "param_count": 1000, "test_accuracy": 0.9},
        export("dense-128x128", 900.0),
        {"run": "unit dst target=0.75", "status": "ok", "method": "units", "params": {"target": 0.75},
         "widths": [30, 34], "param_count": 100, "test_accuracy": 0.89},
        export("units-0.75", 400.0),
        {"run": "tflite latency", "status": "ok", "method": "latency",
         "latency_us": {"export dense-128x128 float": 800.0, "export units-0.75 float": 200.0}},
    ]
    table = render(records)
    assert "| unit dst target=0.75 | 30x34 | 100 | 89.00% | -1.00 | 2.0 KiB | 1.0 KiB | 200 | 4.00x |" in table
    records.pop()  # without the side-by-side row, each export's own figure, marked
    assert "| 400* | 2.25x |" in render(records)


def test_alpha_ramp_reaches_alpha_at_its_last_epoch_and_stays():
    from bench import methods

    ramp = [methods.ramped(5e-4, 5, epoch) for epoch in range(8)]
    np.testing.assert_allclose(ramp, [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 5e-4, 5e-4, 5e-4])
    after_dense = [methods.ramped(5e-4, 2, epoch, dense_epochs=3) for epoch in range(6)]
    np.testing.assert_allclose(after_dense, [0, 0, 0, 2.5e-4, 5e-4, 5e-4])
    np.testing.assert_allclose([methods.ramped(5e-4, 0, epoch, dense_epochs=1) for epoch in range(3)], [0, 5e-4, 5e-4])


def test_across_suites_puts_every_suite_of_a_model_in_one_panel():
    from bench.report import SETUP_KEYS, across_suites, group

    def record(suite, method, seed, model="lenet300"):
        return {**dict.fromkeys(SETUP_KEYS, 1), "suite": suite, "model": model, "method": method,
                "run": f"{method} of {suite}", "seed": seed}  # fmt: skip

    records = [record("a", "dst", 0), record("a", "dst", 1), record("b", "pquant", 0), record("c", "dst", 0, "lenet5")]
    panels = across_suites(group(records))
    assert [setup[:2] for setup in panels] == [("a+b", "lenet300"), ("c", "lenet5")]
    rows = panels[next(iter(panels))]
    assert {name: len(runs) for name, runs in rows.items()} == {"dst of a": 2, "pquant of b": 1}


def test_match_alpha_searches_until_the_ratio_is_reached_and_keeps_the_closest():
    from bench import methods

    tries = []

    def train(alpha):  # remaining ~ alpha ** -2.5: steeper than the first guess of the slope
        tries.append(alpha)
        return {"alpha": alpha, "remaining": 0.1 * (alpha / 5e-4) ** -2.5, "test_accuracy": 0.9}

    result = methods.match_alpha(train, target=0.02, alpha=5e-4)
    assert abs(result["remaining"] / 0.02 - 1) <= 0.1
    assert len(tries) <= 3 and [t["alpha"] for t in result["alpha_search"]] == tries
    assert tries[1] > tries[0]  # fewer weights wanted: the first step raises alpha

    def noisy(alpha):  # a ratio alpha cannot reach: all tries are kept, the closest returned
        return {"alpha": alpha, "remaining": 0.5 if alpha > 1e-3 else 0.03, "test_accuracy": 0.8}

    result = methods.match_alpha(noisy, target=0.01, alpha=5e-4, tries=3)
    assert len(result["alpha_search"]) == 3 and result["remaining"] == 0.03


def test_match_alpha_bounds_each_step_when_a_run_regrew():
    from bench import methods

    def regrew(alpha):  # PQuantML's late regrowth: 3.2% at one alpha, 3.0% at three times it
        return {"alpha": alpha, "remaining": 0.032 if alpha < 5e-3 else 0.030, "test_accuracy": 0.87}

    search = methods.match_alpha(regrew, target=0.005, alpha=2.7e-3, tries=3)["alpha_search"]
    steps = [b["alpha"] / a["alpha"] for a, b in zip(search, search[1:])]
    assert len(steps) == 2 and all(1 < step <= 4.0 + 1e-9 for step in steps)


def test_matched_table_compares_each_dst_row_with_its_peers_seed_by_seed():
    from bench.report import matched_table

    def run(method, seed, accuracy, remaining, matched=None):
        params = {"matched": matched} if matched else {"alpha": 5e-4}
        return {"method": method, "seed": seed, "test_accuracy": accuracy, "remaining": remaining, "params": params}

    dst = "dst alpha=0.0005"
    rows = {
        dst: [run("dst", 0, 0.88, 0.10), run("dst", 1, 0.90, 0.12)],
        "gmp @ " + dst: [run("gmp", 0, 0.89, 0.10, dst), run("gmp", 1, 0.88, 0.12, dst)],
        "pquant @ " + dst: [run("pquant", 0, 0.87, 0.10, dst), run("pquant", 1, 0.86, 0.30, dst)],
    }
    rows["gmp matched_on=remaining_compacted @ " + dst] = [
        {**run("gmp", seed, 0.87, compacted, dst), "remaining_compacted": compacted}
        for seed, compacted in ((0, 0.05), (1, 0.06))
    ]
    for compacted, record in zip((0.05, 0.06), rows[dst]):
        record["remaining_compacted"] = compacted
    for record in rows["gmp matched_on=remaining_compacted @ " + dst]:
        record["params"]["matched_on"] = "remaining_compacted"
    table = matched_table(rows)
    row = table[4]
    assert row == (
        f"| {dst} | 11.00% (2.00) | 89.00% | 88.50% | +0.50 | 86.50% at 20.00% (1 of 2 missed the ratio) "
        "| +2.50 | 1 of 2 |"
    )
    assert table[6].startswith("Matched runs on `remaining_compacted`")  # a table of its own
    assert table[10] == f"| {dst} | 5.50% (1.00) | 89.00% | 87.00% | +2.00 | – | – | 2 of 2 |"
    # Keras 3 GMP gets its own columns, only where it ran
    rows["gmp_keras3 @ " + dst] = [run("gmp_keras3", 0, 0.85, 0.10, dst), run("gmp_keras3", 1, 0.87, 0.12, dst)]
    table = matched_table(rows)
    assert table[2].endswith("| PQuantML | DST - PQuantML | GMP in Keras 3 | DST - GMP in Keras 3 | Seeds DST >= GMP |")
    assert table[4].endswith("| +2.50 | 86.00% | +3.00 | 1 of 2 |")


def test_mask_churn_counts_changes_and_restarts_a_weight_s_run_when_it_comes_back():
    import keras

    from bench.mask_churn import churn_callback

    class Scripted:  # a masked layer whose mask follows a script, one entry per read
        name = "fc"

        def __init__(self, masks):
            self.masks = iter(np.array(masks, dtype=bool))

        def mask(self):
            return next(self.masks)

    layer = Scripted([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    churn = churn_callback(keras, every=1)
    churn.params = {"steps": 2}
    churn.start([layer])
    for epoch in range(2):
        churn.on_epoch_begin(epoch)
        for batch in range(2):
            churn.on_train_batch_end(batch)
        churn.on_epoch_end(epoch)
    assert churn.per_epoch[0]["flips"] == {"fc": 0.375}  # 2 of 4, then 1 of 4
    assert churn.per_epoch[1] == {"epoch": 2, "flips": {"fc": 0.125}, "kept": {"fc": 1.0}}
    # kept since the start: entry 0; since epoch 1: entries 2 and 3 (joined in epoch 1); entry 1
    # left and came back in epoch 2, so its run starts there.
    assert churn.kept_without_break(2) == {"fc": [0.25, 0.75, 1.0]}


def test_units_of_counts_alive_units_and_their_fan_in():
    import keras

    from bench.figures import units_of

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d"), keras.layers.Flatten()])
    model.layers[0].kernel.assign(np.array([[1, 0, 0, 0], [1, 2, 0, 0], [1, 0, 0, 0]], "float32"))
    figures = units_of(model)["d"]  # fan-in per unit: 3, 1, 0, 0
    assert (figures["units"], figures["alive"], figures["fan_in_median"]) == (4, 2, 0.5)


def test_remaining_compacted_drops_the_weights_that_read_dead_units():
    import keras

    from bench.figures import remaining_weights

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    model.layers[0].kernel.assign(np.array([[1, 0, 0, 0], [1, 2, 0, 0], [1, 0, 0, 0]], "float32"))
    figures = remaining_weights(model)  # units 3 and 4 are dead: 4 of the second kernel's 8 read them
    assert (figures["remaining"], figures["remaining_compacted"]) == (12 / 20, 8 / 20)


def test_floor_rule_keeps_every_unit_s_top_weights_and_restores_the_rule_after():
    import tfprune
    from bench.mask_rules import mask_rule
    from tfprune.layers import base

    layer = tfprune.layers.MaskedDense(3)
    layer.build((None, 10))
    layer.kernel.assign(np.arange(1, 31, dtype="float32").reshape(10, 3) / 100)  # |W| <= 0.3
    layer.threshold.assign(np.array([1.0, 0.0, 1.0], "float32"))  # units 0 and 2 cut entirely
    assert np.asarray(layer.mask()).sum(axis=0).tolist() == [0, 10, 0]
    with mask_rule("floor", floor_fraction=0.2):
        kept = np.asarray(layer.mask())
    assert kept.sum(axis=0).tolist() == [2, 10, 2]
    assert kept[8:, 0].all() and kept[8:, 2].all()  # the two largest of a unit's ten
    assert base.mask_from_scores is tfprune.estimator.mask_from_scores


def test_relative_rule_cuts_layers_of_any_weight_scale_alike():
    import tfprune
    from bench.mask_rules import mask_rule

    masks = []
    with mask_rule("relative"):
        for scale in (1.0, 0.01):
            layer = tfprune.layers.MaskedDense(4)
            layer.build((None, 50))
            layer.kernel.assign(scale * np.random.default_rng(0).normal(size=(50, 4)).astype("float32"))
            layer.threshold.assign(np.full(4, 0.8, "float32"))  # 0.8 of the mean |W|
            masks.append(np.asarray(layer.mask()))
    assert 0.3 < masks[0].mean() < 0.7
    np.testing.assert_array_equal(masks[0], masks[1])


def test_fixed_masks_keep_masked_weights_at_zero_through_training_and_train_the_rest():
    import keras

    from bench.mask_retrain import fixed_masks_callback, kernel_masks

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="d")])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    mask = np.tile(np.array([1, 0, 1, 0], "float32"), (6, 1))
    before = model.layers[0].kernel.numpy().copy()
    x, y = np.random.default_rng(0).normal(size=(2, 64, 6)).astype("float32")
    model.fit(x, y[:, :4], batch_size=8, epochs=2, verbose=0, callbacks=[fixed_masks_callback(keras, {"d": mask})])
    after = model.layers[0].kernel.numpy()
    assert not after[mask == 0].any()  # momentum would move them back without the per-batch hold
    assert not np.allclose(after[mask == 1], before[mask == 1])
    np.testing.assert_array_equal(kernel_masks(model)["d"], mask)


def test_weight_decay_shrinks_the_weights_and_leaves_dst_s_thresholds_alone():
    import keras

    import tfprune
    from bench.common import compile_model

    x, y = np.random.default_rng(0).normal(size=(2, 32, 6)).astype("float32")
    after = {}
    for decay in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        model = tfprune.prunable(keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, name="d")]))
        layer = model.get_layer("d")
        layer.threshold.assign(np.full(layer.threshold.shape, 0.1, "float32"))
        kernel = layer.kernel.numpy().copy()
        compile_model(keras, model, lr=0.1, momentum=0.0, weight_decay=decay)
        model.train_on_batch(x, (y[:, 0] > 0).astype("int32"))
        after[decay] = layer.kernel.numpy(), layer.threshold.numpy()
    # Decoupled decay: the step is the same gradient step minus lr * decay * w.
    np.testing.assert_allclose(after[0.5][0], after[0.0][0] - 0.1 * 0.5 * kernel, atol=1e-6)
    np.testing.assert_array_equal(after[0.5][1], after[0.0][1])


def test_report_shows_train_accuracy_and_its_gap_to_test_seed_by_seed():
    from bench.report import summarise

    def run(seed, train, test):
        return {
            "method": "dst", "params": {}, "seed": seed, "test_accuracy": test, "remaining": 0.1,
            "epoch_time": 1.0, "remaining_per_layer": {}, "history": {"accuracy": [0.5, train]},
        }  # fmt: skip

    row = summarise({"dst": [run(0, 0.96, 0.90), run(1, 0.94, 0.90)]})["dst"]
    assert row["train_accuracy"] == pytest.approx((95.0, np.std([96, 94], ddof=1)))
    assert row["gap"][0] == pytest.approx(5.0)
    assert summarise({"dst": [run(0, 0.96, 0.9), {**run(1, 0.9, 0.9), "history": {}}]})["dst"]["gap"] is None


def test_uniform_masks_keep_each_layer_s_share_by_dst_score_not_by_magnitude():
    import keras

    import tfprune
    from bench.mask_retrain import uniform_masks

    model = tfprune.prunable(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="a"), keras.layers.Dense(5, name="b")]))
    a = model.get_layer("a")
    a.kernel.assign(np.array([[0.9, 0.5], [0.8, 0.4], [0.1, 0.3], [0.2, 0.15]], "float32"))
    a.threshold.assign(np.array([0.7, 0.0], "float32"))  # unit 0's large weights score low
    masks = uniform_masks(model, 0.5)
    np.testing.assert_array_equal(masks["a"], [[1, 1], [0, 1], [0, 1], [0, 0]])
    assert masks["b"].sum() == 5  # half of 2x5, whatever its scores


def test_keras3_gmp_follows_tfmot_s_schedule_and_holds_pruned_weights_at_zero():
    import keras

    from bench.gmp_keras3 import gmp_schedule, gradual_magnitude_callback, scheduled_sparsity

    schedule = gmp_schedule(total_steps=30, final_sparsity=0.75)  # end 20, every 2 steps
    assert (schedule["end_step"], schedule["frequency"]) == (20, 2)
    assert scheduled_sparsity(schedule, 0) == 0.0 and scheduled_sparsity(schedule, 20) == 0.75
    assert scheduled_sparsity(schedule, 10) == 0.75 * (1 - 0.5**3)  # the cubic ramp
    assert scheduled_sparsity(schedule, 11) is None and scheduled_sparsity(schedule, 22) is None
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6, name="a"), keras.layers.Dense(4, name="b")])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    x, y = np.random.default_rng(0).normal(size=(2, 30 * 4, 8)).astype("float32")
    model.fit(x, y[:, :4], batch_size=4, epochs=1, verbose=0, callbacks=[gradual_magnitude_callback(keras, schedule)])
    for layer in model.layers:  # each layer at the final share (uniform), pruned weights still 0
        assert (layer.kernel.numpy() == 0).mean() == 0.75


def test_dense_weight_gradient_reaches_masked_weights_and_leaves_the_thresholds_gradient():
    import tensorflow as tf

    import tfprune
    from bench.mask_rules import weight_gradient
    from tfprune.layers import base

    layer = tfprune.layers.MaskedDense(2, use_bias=False)
    layer.build((None, 3))
    layer.kernel.assign(np.array([[0.5, -0.1], [0.05, 0.3], [-0.6, 0.2]], "float32"))
    layer.threshold.assign(np.array([0.2, 0.15], "float32"))
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 3)).astype("float32"))

    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) ** 2)
        return [g.numpy() for g in tape.gradient(loss, [layer.kernel, layer.threshold])]

    own_kernel, own_threshold = gradients()
    with weight_gradient("dense"):
        dense_kernel, dense_threshold = gradients()
        masked_output = layer(x).numpy()
        with tf.GradientTape() as tape:  # the masked product's own gradient, every entry
            tape.watch(effective := tf.constant(np.asarray(layer.masked_kernel())))
            upstream = tape.gradient(tf.reduce_sum((x @ effective) ** 2), effective).numpy()
    np.testing.assert_allclose(masked_output, (x @ layer.masked_kernel()).numpy(), rtol=1e-6)
    mask = np.asarray(layer.mask())
    assert not mask.all() and np.abs(own_kernel[mask == 0]).max() < np.abs(upstream[mask == 0]).max()
    np.testing.assert_allclose(dense_kernel, upstream, rtol=1e-5)
    np.testing.assert_allclose(dense_threshold, own_threshold, rtol=1e-5)
    assert base.MaskedMixin.masked_kernel.__name__ == "masked_kernel"  # restored on exit


def test_jittered_thresholds_move_near_threshold_weights_only_inside_the_train_step():
    import tensorflow as tf

    import tfprune
    from bench.mask_rules import mask_rule

    layer = tfprune.layers.MaskedDense(1)
    layer.build((None, 4))
    layer.kernel.assign(np.array([[0.05], [0.09], [0.11], [0.5]], "float32"))
    layer.threshold.assign(np.array([0.1], "float32"))
    with mask_rule("jitter", jitter=0.5):
        eager = np.asarray(layer.mask())[:, 0]
        traced = tf.function(lambda: layer.mask())
        draws = np.stack([traced().numpy()[:, 0] for _ in range(200)])
    assert eager.tolist() == [0, 0, 1, 1]  # readouts and inference: DST's own rule
    assert draws[:, 3].all() and not draws[:, 0].any()  # beyond the spread: never moves
    assert 0.2 < draws[:, 1].mean() < 0.8 and 0.2 < draws[:, 2].mean() < 0.8


def test_erk_targets_keep_the_overall_share_and_keep_small_layers_dense():
    from bench.allocation import erk_targets
    from bench.suites import LENET5_KERNELS
    from tfprune.models import lenet5_caffe

    model = lenet5_caffe((28, 28), 10)  # the shapes the suite writes out are the model's
    assert {name: tuple(model.get_layer(name).kernel.shape) for name in LENET5_KERNELS} == LENET5_KERNELS
    sizes = {name: np.prod(shape) for name, shape in LENET5_KERNELS.items()}
    for sparsity in (0.90, 0.95, 0.99):
        targets = erk_targets(LENET5_KERNELS, sparsity)
        kept = sum((1 - targets[name]) * sizes[name] for name in sizes)
        assert kept == pytest.approx((1 - sparsity) * sum(sizes.values()))
        assert all(0 <= t < 1 for t in targets.values()), targets
        # every layer not kept whole has the same density per unit of sum(shape) / prod(shape)
        cut = [n for n in sizes if targets[n] > 0]
        scale = {n: (1 - targets[n]) * sizes[n] / sum(LENET5_KERNELS[n]) for n in cut}
        assert len(cut) >= 2 and max(scale.values()) == pytest.approx(min(scale.values())), scale
    assert erk_targets(LENET5_KERNELS, 0.90)["fc2"] == 0.0  # would be denser than dense: kept whole
