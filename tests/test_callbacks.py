"""DynamicPrune: alpha ownership, the reset rule, logs, errors, and DST on real data."""

import csv

import keras
import numpy as np
import pytest

import tfprune
from tfprune.data import load_digits
from tfprune.models import lenet_300_100


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _compiled(model, lr=0.01):
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _masked_mlp():
    return _compiled(tfprune.prunable(lenet_300_100((8, 8), 10)))


def test_thresholds_rise_and_sparsity_grows(digits):
    model = _masked_mlp()
    history = model.fit(
        digits.x_train, digits.y_train, epochs=6, batch_size=64, verbose=0,
        callbacks=[tfprune.DynamicPrune(alpha=5e-3)],
    )
    sparsity = history.history["sparsity"]
    assert sparsity[-1] > sparsity[0] > 0
    assert all(b >= a - 0.01 for a, b in zip(sparsity, sparsity[1:]))
    thresholds = np.concatenate([keras.ops.convert_to_numpy(l.threshold) for l in tfprune.layers.masked_layers(model)])
    assert thresholds.mean() > 0
    per_layer = {f"sparsity/{layer.name}" for layer in tfprune.layers.masked_layers(model)}
    assert len(per_layer) == 3
    assert set(history.history) >= {"sparsity", "alpha", "threshold_resets", *per_layer}


def test_alpha_zero_leaves_thresholds_to_the_loss(digits):
    model = _masked_mlp()
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0, callbacks=[tfprune.DynamicPrune(alpha=0.0)])
    strong = _masked_mlp()
    strong.fit(digits.x_train, digits.y_train, epochs=1, verbose=0, callbacks=[tfprune.DynamicPrune(alpha=0.05)])
    mean_t = lambda m: np.mean([keras.ops.convert_to_numpy(l.threshold).mean() for l in tfprune.layers.masked_layers(m)])
    assert mean_t(strong) > mean_t(model)


def test_alpha_schedules_are_applied_and_logged(digits):
    model = _masked_mlp()
    by_epoch = model.fit(
        digits.x_train, digits.y_train, epochs=3, verbose=0,
        callbacks=[tfprune.DynamicPrune(alpha=lambda epoch: 1e-4 * (epoch + 1))],
    )
    np.testing.assert_allclose(by_epoch.history["alpha"], [1e-4, 2e-4, 3e-4])
    # A per-step schedule still rising when each epoch ends: alpha must follow the step count.
    schedule = keras.optimizers.schedules.PolynomialDecay(0.0, decay_steps=10_000, end_learning_rate=1.0)
    per_step = model.fit(
        digits.x_train[:320], digits.y_train[:320], epochs=2, batch_size=32, verbose=0,
        callbacks=[tfprune.DynamicPrune(alpha=schedule)],
    )
    start = int(model.optimizer.iterations.numpy()) - 20
    expected = [float(schedule(start + 10)), float(schedule(start + 20))]
    np.testing.assert_allclose(per_step.history["alpha"], expected, rtol=1e-5)
    assert float(model.layers[1].alpha) == pytest.approx(expected[-1], rel=1e-5)


def test_reset_rule_fires_on_a_collapsed_layer(digits):
    model = _masked_mlp()
    layer = model.layers[1]
    layer.threshold.assign(np.full(300, 5.0, "float32"))  # everything masked
    history = model.fit(
        digits.x_train[:64], digits.y_train[:64], epochs=1, batch_size=64, verbose=0,
        callbacks=[tfprune.DynamicPrune(reset_check_every=1, reset_until=1.0)],  # one batch: at 100%
    )
    assert history.history["threshold_resets"] == [1]
    assert not np.any(keras.ops.convert_to_numpy(layer.threshold) > 0.1)
    assert layer.sparsity() < 0.5


def test_reset_rule_can_be_disabled(digits):
    model = _masked_mlp()
    layer = model.layers[1]
    layer.threshold.assign(np.full(300, 5.0, "float32"))
    history = model.fit(
        digits.x_train[:640], digits.y_train[:640], epochs=2, batch_size=32, verbose=0,
        callbacks=[tfprune.DynamicPrune(reset_fraction=None)],  # 40 batches, 4 default checks
    )
    assert layer.sparsity() == 1.0 and history.history["threshold_resets"] == [0, 0]


def _collapsed_fit(digits, batches, masked_share=1.0, **kwargs):
    """Trains `batches` batches of 16 with fc1 masked to `masked_share`; returns the resets (the
    rule runs to the end of training here, so that the last batch is checked too)."""
    model = _masked_mlp()
    layer = model.layers[1]
    scores = np.abs(keras.ops.convert_to_numpy(layer.kernel)).mean(axis=0)
    threshold = np.where(np.arange(300) < round(300 * masked_share), 5.0, -5.0).astype("float32")
    layer.threshold.assign(threshold[np.argsort(np.argsort(-scores))] * 0 + threshold)
    history = model.fit(
        digits.x_train[: 16 * batches], digits.y_train[: 16 * batches], epochs=1, batch_size=16,
        shuffle=False, verbose=0, callbacks=[tfprune.DynamicPrune(alpha=0.0, **{"reset_until": 1.0, **kwargs})],
    )
    return history.history["threshold_resets"][0]


def test_reset_rule_runs_every_reset_check_every_batches(digits):
    assert _collapsed_fit(digits, batches=3, reset_check_every=4) == 0
    assert _collapsed_fit(digits, batches=4, reset_check_every=4) == 1


def test_reset_rule_counts_its_batches_across_epochs(digits):
    # Epochs of 3 batches and a check every 4: the 4th batch of training, the 2nd epoch's first.
    model = _masked_mlp()
    model.layers[1].threshold.assign(np.full(300, 5.0, "float32"))
    history = model.fit(
        digits.x_train[:48], digits.y_train[:48], epochs=2, batch_size=16, shuffle=False, verbose=0,
        callbacks=[tfprune.DynamicPrune(alpha=0.0, reset_check_every=4, reset_until=1.0)],
    )  # fmt: skip
    assert history.history["threshold_resets"] == [0, 1]


def test_reset_rule_uses_its_fraction(digits):
    # 95% of fc1's units masked: past a 0.9 fraction, short of the default 0.99.
    assert _collapsed_fit(digits, batches=2, masked_share=0.95, reset_check_every=1) == 0
    assert _collapsed_fit(digits, batches=2, masked_share=0.95, reset_check_every=1, reset_fraction=0.9) == 1


def test_csv_logger_and_batch_logs_see_the_figures(digits, tmp_path):
    class Seen(keras.callbacks.Callback):
        batches = []

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append("sparsity" in logs)

    path = tmp_path / "log.csv"
    model = _masked_mlp()
    model.fit(
        digits.x_train[:640], digits.y_train[:640], epochs=2, batch_size=64, verbose=0,
        callbacks=[tfprune.DynamicPrune(log_every_n_batches=5), Seen(), keras.callbacks.CSVLogger(str(path))],
    )
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2 and 0 <= float(rows[-1]["sparsity"]) < 1
    assert f"sparsity/{model.layers[-1].name}" in rows[0]
    assert Seen.batches[:10] == [False, False, False, False, True] * 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(alpha=-1e-4), ValueError, "alpha must be a finite number >= 0.*alpha=-0.0001"),
        (dict(alpha=float("nan")), ValueError, "finite number.*alpha=nan"),
        (dict(alpha=float("inf")), ValueError, "finite number.*alpha=inf"),
        (dict(alpha="big"), TypeError, "alpha must be a float"),
        (dict(alpha=True), TypeError, "alpha must be a float"),
        (dict(reset_fraction=1.5), ValueError, "reset_fraction.*1.5"),
        (dict(reset_fraction="0.9"), ValueError, "reset_fraction.*'0.9'"),
        (dict(log_every_n_batches=0), ValueError, "log_every_n_batches"),
        (dict(reset_check_every=None), ValueError, "reset_check_every"),
        (dict(control_every=0), ValueError, "control_every must be a positive integer.*=0"),
        (dict(target_sparsity="0.5"), TypeError, "target_sparsity must be a float.*'0.5'.*str"),
        (dict(target_sparsity=1.0), ValueError, "target_sparsity=1.0"),
        (dict(target_sparsity=float("nan")), ValueError, "target_sparsity=nan"),
        (dict(target_sparsity=0.5, alpha=0.0), ValueError, "must be > 0"),
        (dict(target_ramp=0), ValueError, "target_ramp must be in.*=0"),
        (dict(target_ramp=1.5), ValueError, "target_ramp must be in.*=1.5"),
        (dict(layer_targets={"fc1": "x"}), TypeError, r"layer_targets\['fc1'\]"),
        (dict(layer_targets=[("fc1", 0.5)]), TypeError, "layer_targets must be a dict"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfprune.DynamicPrune(**kwargs)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_schedule_returning_a_bad_alpha_is_refused(digits, value):
    with pytest.raises(ValueError, match=r"finite number >= 0.*alpha\(0\)="):
        _masked_mlp().fit(digits.x_train[:64], digits.y_train[:64], verbose=0,
                          callbacks=[tfprune.DynamicPrune(alpha=lambda epoch: value)])


@pytest.mark.parametrize("kwargs", [{}, {"target_sparsity": 0.5}])
def test_nan_in_the_data_stops_training_naming_layer_and_batch(digits, kwargs):
    x = digits.x_train[:320].copy()
    x[100] = np.nan  # batch 3 of 32
    model = _masked_mlp()
    resets = []

    class Resets(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            resets.append(logs.get("threshold_resets"))

    with pytest.raises(FloatingPointError, match=r"epoch 0, batch 3: .*layer '.*' became nan"):
        model.fit(x, digits.y_train[:320], epochs=2, batch_size=32, shuffle=False, verbose=0,
                  callbacks=[tfprune.DynamicPrune(**kwargs), Resets()])
    assert resets == []  # no epoch ended with figures computed on NaN
    assert all(float(layer.threshold_resets) == 0 for layer in tfprune.layers.masked_layers(model))


def test_empty_training_data_is_an_error(digits):
    with pytest.raises(ValueError, match="no training batch.*empty"):
        _masked_mlp().fit(digits.x_train[:0], digits.y_train[:0], verbose=0,
                          callbacks=[tfprune.DynamicPrune()])


def test_model_without_masked_layers_points_to_prunable(digits):
    model = _compiled(lenet_300_100((8, 8), 10))
    with pytest.raises(ValueError, match="tfprune.prunable"):
        model.fit(digits.x_train[:64], digits.y_train[:64], verbose=0, callbacks=[tfprune.DynamicPrune()])


def test_dst_lenet_300_100_is_sparse_and_accurate(digits):
    """DST reaches >= 80% sparsity within 2 points of the dense model (digits, ~1300 steps)."""
    epochs = 60
    keras.utils.set_random_seed(0)
    dense = _compiled(lenet_300_100((8, 8), 10))
    dense.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=64, verbose=0)
    keras.utils.set_random_seed(0)
    dst = _masked_mlp()
    dst.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=64, verbose=0,
            callbacks=[tfprune.DynamicPrune(alpha=5e-3)])
    dense_acc = dense.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
    dst_acc = dst.evaluate(digits.x_test, digits.y_test, verbose=0)[1]
    assert tfprune.sparsity_report(dst).sparsity >= 0.80
    assert dst_acc >= dense_acc - 0.02


def _mlp_data(n=256):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 16)).astype("float32")
    return x, (x[:, :4].sum(axis=1) > 0).astype("int32")


@pytest.mark.parametrize("thresholds", ["unit", "layer"])
def test_finetune_epochs_freeze_the_masks_and_train_the_weights(thresholds):
    """From the first fine-tuning epoch on, no mask changes at any batch, the penalty is off and
    the kept weights still move."""
    from tfprune.layers.base import masked_layers

    keras.utils.set_random_seed(0)
    model = tfprune.prunable(keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                                               keras.layers.Dense(2)]), thresholds=thresholds)  # fmt: skip
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            layers = masked_layers(self.model)
            seen.append((self.epoch, [np.array(l.mask()) for l in layers], [l.kernel.numpy().copy() for l in layers],
                         float(layers[0].alpha.numpy())))  # fmt: skip

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    x, y = _mlp_data()
    prune = tfprune.DynamicPrune(alpha=5e-2, finetune_epochs=2)
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[prune, Watch()])
    frozen = [s for s in seen if s[0] >= 3]
    first_masks = frozen[0][1]
    assert sum(m.size - m.sum() for m in first_masks) > 0  # there is something to keep masked
    for _, masks, _, alpha in frozen:
        assert alpha == 0.0
        for m, first in zip(masks, first_masks):
            np.testing.assert_array_equal(m, first)
    assert not np.array_equal(frozen[0][2][0], frozen[-1][2][0])  # the weights still train
    assert history.history["masks_frozen"] == [0, 0, 0, 1, 1]
    assert any(not np.array_equal(a[1][0], b[1][0]) for a, b in zip(seen, seen[1:]) if b[0] < 3)  # DST moved before


@pytest.mark.parametrize("kwargs, fit_epochs, message", [
    ({"finetune_epochs": -1}, 2, "finetune_epochs must be an integer >= 0"),
    ({"finetune_epochs": 2}, 2, "leaves no epoch of DST"),
])  # fmt: skip
def test_finetune_epochs_are_checked(kwargs, fit_epochs, message):
    model = tfprune.prunable(keras.Sequential([keras.Input((16,)), keras.layers.Dense(2)]))
    model.compile("sgd", "mse")
    x, y = _mlp_data(32)
    with pytest.raises(ValueError, match=message):
        model.fit(x, np.eye(2)[y], epochs=fit_epochs, verbose=0, callbacks=[tfprune.DynamicPrune(**kwargs)])


def test_finetune_needs_weight_masks():
    model = tfprune.prunable(keras.Sequential([keras.Input((16,)), keras.layers.Dense(2)]), granularity="unit")
    model.compile("sgd", "mse")
    x, y = _mlp_data(32)
    with pytest.raises(ValueError, match="finetune_epochs freezes weight masks"):
        model.fit(x, np.eye(2)[y], epochs=2, verbose=0, callbacks=[tfprune.DynamicPrune(finetune_epochs=1)])


@pytest.mark.parametrize("reset_until, resets", [(1.0, 16), (0.5, 8), ("default", 8)])
def test_reset_rule_never_fires_after_reset_until(digits, reset_until, resets):
    """A layer collapsed again after every batch: the rule fires at every check up to its
    promised share of training (by default half of it), and never after."""
    given = {} if reset_until == "default" else {"reset_until": reset_until}
    model = _masked_mlp()
    layer = model.layers[1]

    class Collapse(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            layer.threshold.assign(np.full(300, 5.0, "float32"))

    history = model.fit(
        digits.x_train[:128], digits.y_train[:128], epochs=2, batch_size=16, shuffle=False, verbose=0,
        callbacks=[Collapse(), tfprune.DynamicPrune(alpha=0.0, reset_check_every=1, **given)],
    )  # fmt: skip
    assert history.history["threshold_resets"][-1] == resets


def test_reset_until_is_checked():
    with pytest.raises(ValueError, match="reset_until must be in"):
        tfprune.DynamicPrune(reset_until=0)
