"""`.keras` save/load and training resumed from checkpoints keep masks, thresholds and alpha."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.layers import MaskedConv1D, MaskedConv2D, MaskedDense, MaskedDepthwiseConv2D, masked_layers

pytestmark = pytest.mark.backends  # also run under JAX by .ci/run


def _model():
    inputs = keras.Input((8, 8, 2))
    x = MaskedConv2D(4, 3, granularity=(1, 2), name="conv")(inputs)
    x = MaskedDepthwiseConv2D(3, name="dw", granularity="unit")(x)
    x = keras.layers.Reshape((16, 4))(x)
    x = MaskedConv1D(3, 2, name="conv1d")(x)
    x = keras.layers.Flatten()(x)
    outputs = MaskedDense(3, name="dense")(x)
    return keras.Model(inputs, outputs)


def _train(model, x, y, epochs, callbacks=(), initial_epoch=0):
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    return model.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, batch_size=16, verbose=0,
                     callbacks=[tfprune.DynamicPrune(alpha=0.05), *callbacks])


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 8, 8, 2)).astype("float32"), rng.normal(size=(64, 3)).astype("float32")


def test_save_load_round_trips_masks_thresholds_and_alpha(tmp_path):
    x, y = _data()
    model = _model()
    _train(model, x, y, epochs=3)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(masked_layers(model), masked_layers(loaded)):
        assert type(a) is type(b) and a.granularity == b.granularity
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.threshold), keras.ops.convert_to_numpy(b.threshold))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.mask()), keras.ops.convert_to_numpy(b.mask()))
        assert float(b.alpha) == pytest.approx(0.05)
    assert tfprune.sparsity_report(model).sparsity > 0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_model_checkpoint_resume_continues_with_same_masks(tmp_path):
    x, y = _data()
    path = tmp_path / "ckpt.keras"
    model = _model()
    _train(model, x, y, epochs=2, callbacks=[keras.callbacks.ModelCheckpoint(str(path))])
    resumed = keras.models.load_model(path)
    masks = [keras.ops.convert_to_numpy(l.mask()) for l in masked_layers(resumed)]
    np.testing.assert_array_equal(masks[0], keras.ops.convert_to_numpy(model.get_layer("conv").mask()))
    history = resumed.fit(x, y, epochs=3, initial_epoch=2, batch_size=16, verbose=0,
                          callbacks=[tfprune.DynamicPrune(alpha=0.05)])
    assert len(history.history["sparsity"]) == 1
    # one more epoch moves thresholds a little, it does not restart from zero
    assert history.history["sparsity"][0] >= tfprune.sparsity_report(model).sparsity - 0.1


def test_backup_and_restore_resumes_after_interruption(tmp_path):
    x, y = _data()

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    backup = str(tmp_path / "backup")
    model = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        _train(model, x, y, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup), Interrupt()])
    thresholds = keras.ops.convert_to_numpy(model.get_layer("dense").threshold)

    fresh = _model()
    history = _train(fresh, x, y, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    assert len(history.history["sparsity"]) == 2  # epochs 2 and 3 only
    restored = keras.ops.convert_to_numpy(fresh.get_layer("dense").threshold)
    assert np.all(restored >= thresholds.min() - 0.5) and np.any(restored != 0)


def _state(model):
    """Masks, thresholds and the DST state each masked layer carries, as numpy arrays."""
    state = {}
    for layer in masked_layers(model):
        for name in ("threshold", "alpha", "alpha_integral", "threshold_resets"):
            state[f"{layer.name}/{name}"] = keras.ops.convert_to_numpy(getattr(layer, name))
        state[f"{layer.name}/mask"] = keras.ops.convert_to_numpy(layer.mask())
    return state


def _fit_four_epochs(kwargs, callbacks=(), model=None, initial_epoch=0):
    x, y = _data()
    if model is None:
        keras.utils.set_random_seed(0)
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    model.fit(x, y, epochs=4, initial_epoch=initial_epoch, batch_size=16, shuffle=False, verbose=0,
              callbacks=[tfprune.DynamicPrune(control_every=1, **kwargs), *callbacks])
    return model


class _InterruptAtEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("interrupted")


RESUME_SETTINGS = [
    dict(alpha=0.05),
    dict(alpha=0.05, target_sparsity=0.6),
    dict(alpha=0.05, layer_targets={"dense": 0.3}, target_sparsity=0.6),
]


@pytest.mark.parametrize("kwargs", RESUME_SETTINGS)
def test_backup_and_restore_resumes_exactly(tmp_path, kwargs):
    reference = _state(_fit_four_epochs(kwargs))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit_four_epochs(kwargs, [backup, _InterruptAtEpoch2()])
    resumed = _state(_fit_four_epochs(kwargs, [keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))]))
    for key, value in reference.items():
        np.testing.assert_allclose(resumed[key], value, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("kwargs", RESUME_SETTINGS[1:])
def test_model_checkpoint_resumes_the_controller_exactly(tmp_path, kwargs):
    reference = _state(_fit_four_epochs(kwargs))
    path = tmp_path / "epoch2.keras"
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit_four_epochs(kwargs, [keras.callbacks.ModelCheckpoint(str(path)), _InterruptAtEpoch2()])
    resumed = _state(_fit_four_epochs(kwargs, model=keras.models.load_model(path), initial_epoch=2))
    for key, value in reference.items():
        np.testing.assert_allclose(resumed[key], value, atol=1e-6, err_msg=key)
