"""The registry: one table every verb reads, and a user's own layer kind taken end to end."""

import keras
import numpy as np
import pytest
from keras import ops

import tfprune
import tflite_export
from tfprune import registry
from tfprune.layers import MaskedMixin
from tfprune.surgery import ChannelOp, UnitSurgery


@keras.saving.register_keras_serializable(package="test_registry")
class Affine(keras.layers.Layer):
    """A user's own Dense-like layer: `relu(x @ kernel + bias)`."""

    def __init__(self, units, use_bias=True, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias = units, use_bias
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
            if self.use_bias
            else None
        )

    def call(self, inputs):
        kernel = self.masked_kernel() if isinstance(self, MaskedMixin) else self.kernel
        y = ops.matmul(inputs, kernel)
        return self.activation(y if self.bias is None else y + self.bias)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package="test_registry")
class MaskedAffine(MaskedMixin, Affine):
    def __init__(self, units, granularity="weight", **kwargs):
        super().__init__(units, **kwargs)
        self._init_granularity(granularity)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_masks()

    def get_config(self):
        return {**super().get_config(), **self.masking_config()}


@pytest.fixture
def affine_registered():
    registry.register(Affine, MaskedAffine, units=UnitSurgery())
    yield
    registry._ENTRIES.pop(Affine)


def _model():
    inputs = keras.Input((12,))
    hidden = Affine(16, name="custom")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(hidden))


def test_builtin_kinds_are_in_one_table():
    kinds = {entry.stock for entry in registry.entries()}
    assert {keras.layers.Dense, keras.layers.LSTM, keras.layers.BatchNormalization} <= kinds
    assert registry.for_stock(keras.layers.Dense(2)).units is not None
    assert registry.for_stock(keras.layers.Flatten()).channels is not None
    assert registry.for_stock(keras.layers.Flatten()).masked is None


def test_custom_layer_through_prunable_fit_strip_compact_export(affine_registered, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 12)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    model = tfprune.prunable(_model(), layers=[Affine])
    assert type(model.get_layer("custom")) is MaskedAffine
    assert type(model.get_layer("head")) is keras.layers.Dense  # not selected
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[tfprune.DynamicPrune(alpha=1e-3)])

    # Kill 5 units of the custom layer by hand: compact must remove them through the registry.
    layer = model.get_layer("custom")
    threshold = np.zeros(16, "float32")
    threshold[[1, 4, 7, 10, 13]] = 1e3
    layer.threshold.assign(threshold)
    layer.bias.assign(np.where(threshold > 0, 0.0, np.asarray(layer.bias)).astype("float32"))
    expected = model.predict(x, verbose=0)

    stripped = tfprune.strip(model)
    assert type(stripped.get_layer("custom")) is Affine
    small, report = tfprune.compact(model)
    assert type(small.get_layer("custom")) is Affine and small.get_layer("custom").units == 11
    assert {row.name: row.removed for row in report.layers}["custom"] == [1, 4, 7, 10, 13]
    np.testing.assert_allclose(small.predict(x, verbose=0), expected, atol=1e-5)

    exported = tflite_export.export(model, tmp_path / "custom.tflite", verify_data=x[:32])
    assert exported.parity.passed and (tmp_path / "custom.tflite").exists()
    assert exported.compaction["params_after"] < exported.compaction["params_before"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"stock": "Dense"}, TypeError, "keras.layers.Layer subclass"),
        ({"stock": Affine, "units": ChannelOp()}, TypeError, "UnitSurgery instance"),
        ({"stock": Affine, "channels": UnitSurgery()}, TypeError, "ChannelOp instance"),
        ({"stock": Affine, "units": UnitSurgery(), "channels": ChannelOp()}, ValueError, "not both"),
    ],
)
def test_register_refuses_bad_entries(kwargs, error, match):
    with pytest.raises(error, match=match):
        registry.register(**kwargs)
    assert Affine not in {entry.stock for entry in registry.entries()}
