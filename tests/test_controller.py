"""The target-sparsity controller: ramp, direction, and convergence in one DST run."""

import keras
import pytest

import tfprune
from tfprune.controller import SparsityController
from tfprune.data import load_digits
from tfprune.models import lenet_300_100


def test_target_ramps_then_holds():
    controller = SparsityController(0.8, ramp_fraction=0.5)
    assert controller.target_at(0.0) == 0.0
    assert 0 < controller.target_at(0.1) < controller.target_at(0.3) < 0.8
    assert controller.target_at(0.5) == pytest.approx(0.8)
    assert controller.target_at(0.9) == pytest.approx(0.8)


def test_alpha_rises_below_target_and_stops_above():
    controller = SparsityController(0.9, initial_alpha=1e-3)
    assert controller.update(0.8, sparsity=0.2) > 1e-3
    assert controller.update(0.8, sparsity=0.95) <= 1e-7


@pytest.mark.parametrize("target", [-0.1, 1.0, 1.5])
def test_target_outside_range_is_rejected(target):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        tfprune.DynamicPrune(target_sparsity=target)


def test_controller_needs_a_float_alpha_and_known_layers():
    with pytest.raises(ValueError, match="starting value"):
        tfprune.DynamicPrune(alpha=lambda epoch: 1e-3, target_sparsity=0.5)
    data = load_digits()
    model = tfprune.prunable(lenet_300_100((8, 8), 10))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="not masked layers.*Masked layers"):
        model.fit(data.x_train[:64], data.y_train[:64], verbose=0,
                  callbacks=[tfprune.DynamicPrune(layer_targets={"head": 0.5})])


def test_controller_reaches_its_targets_in_one_run():
    data = load_digits()
    model = tfprune.prunable(lenet_300_100((8, 8), 10))
    last = model.layers[-1].name
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(
        data.x_train, data.y_train, epochs=40, batch_size=64, verbose=0,
        callbacks=[tfprune.DynamicPrune(target_sparsity=0.9, layer_targets={last: 0.3})],
    )
    assert history.history["sparsity"][-1] == pytest.approx(0.9, abs=0.015)
    assert history.history[f"sparsity/{last}"][-1] == pytest.approx(0.3, abs=0.05)
    assert f"alpha/{last}" in history.history
    assert model.evaluate(data.x_test, data.y_test, verbose=0)[1] > 0.9


def test_target_ramp_sets_when_the_target_is_reached():
    data = load_digits()

    def sparsity_by_epoch(target_ramp):
        keras.utils.set_random_seed(0)
        model = tfprune.prunable(lenet_300_100((8, 8), 10))
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        prune = tfprune.DynamicPrune(target_sparsity=0.8, target_ramp=target_ramp, control_every=5)
        history = model.fit(data.x_train, data.y_train, epochs=16, batch_size=64, verbose=0,
                            callbacks=[prune])
        return history.history["sparsity"]

    fast, slow = sparsity_by_epoch(0.25), sparsity_by_epoch(1.0)
    assert fast[3] > slow[3] + 0.4  # after a quarter of training: near the target against ~10%
    assert fast[-1] == pytest.approx(0.8, abs=0.03) and slow[-1] == pytest.approx(0.8, abs=0.03)
