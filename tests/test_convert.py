"""prunable() and strip(): conversion keeps outputs; errors are clear."""

import keras
import numpy as np
import pytest

import tfprune
from tfprune.layers import MaskedDense, masked_layers

pytestmark = pytest.mark.backends  # also run under JAX by .ci/run


def _cnn():
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="head")(x)
    return keras.Model(inputs, outputs, name="cnn")


def _nested():
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="inner_dense")], name="inner")
    inputs = keras.Input((6,))
    x = inner(inputs)
    outputs = keras.layers.Dense(3, name="outer_dense")(keras.layers.Dropout(0.1)(x))
    return keras.Model(inputs, outputs)


def _mlp():
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="d1"), keras.layers.Dense(3, name="d2")]
    )


def _randomize(model):
    rng = np.random.default_rng(0)
    for w in model.weights:
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2, size=w.shape).astype("float32"))
        elif w.trainable or "moving_mean" in w.path:
            w.assign(rng.normal(size=w.shape).astype("float32") * 0.5)


@pytest.mark.parametrize("build, shape", [(_mlp, (4, 6)), (_cnn, (2, 10, 10, 3)), (_nested, (4, 6))])
def test_prunable_keeps_outputs(build, shape):
    model = build()
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    masked = tfprune.prunable(model)
    np.testing.assert_allclose(masked.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert len(masked_layers(masked)) >= 2
    assert masked_layers(model) == []  # the original is untouched


def test_nested_models_are_converted():
    masked = tfprune.prunable(_nested())
    names = {layer.name for layer in masked_layers(masked)}
    assert names == {"inner_dense", "outer_dense"}


@pytest.mark.parametrize(
    "selection, expected",
    [
        (["conv"], {"conv"}),
        ("head", {"head"}),
        ([keras.layers.Conv2D, "head"], {"conv", "head"}),
        (lambda layer: layer.name.startswith("d"), {"dw"}),
    ],
)
def test_layer_selection(selection, expected):
    masked = tfprune.prunable(_cnn(), layers=selection)
    assert {layer.name for layer in masked_layers(masked)} == expected


def test_strip_returns_stock_layers_with_exact_zeros():
    model = tfprune.prunable(_cnn())
    _randomize(model)
    for layer in masked_layers(model):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        layer.threshold.assign(np.full(layer.threshold.shape, np.quantile(np.abs(kernel), 0.7), "float32"))
    x = np.random.default_rng(2).normal(size=(3, 10, 10, 3)).astype("float32")
    stripped = tfprune.strip(model)
    assert not masked_layers(stripped)
    assert type(stripped.get_layer("conv")) is keras.layers.Conv2D
    np.testing.assert_allclose(stripped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    report = tfprune.sparsity_report(stripped)
    assert report.sparsity == pytest.approx(tfprune.sparsity_report(model).sparsity)
    assert report.sparsity > 0.6


def test_already_masked_layers_are_copied_not_shared():
    model = keras.Sequential([keras.Input((4,)), MaskedDense(3, name="m"), keras.layers.Dense(2, name="d")])
    again = tfprune.prunable(model)
    assert type(again.get_layer("m")) is MaskedDense
    assert again.get_layer("m") is not model.get_layer("m")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: tfprune.prunable("model.keras"), TypeError, "expects a keras.Model"),
        (lambda: tfprune.prunable(keras.layers.Dense(3)), TypeError, "tfprune.layers"),
        (lambda: tfprune.strip(None), TypeError, "expects a keras.Model"),
        (lambda: tfprune.prunable(_mlp(), layers=["nope"]), ValueError, "No layer named 'nope'.*d1"),
        (lambda: tfprune.prunable(_mlp(), layers=[3]), TypeError, r"layer names.*item 3 in layers=\[3\]"),
        (lambda: tfprune.prunable(_mlp(), layers=[int]), TypeError, "Layer classes.*item <class 'int'>"),
        (lambda: tfprune.prunable(_mlp(), layers=3), TypeError, "predicate.*Received: layers=3"),
        (
            lambda: tfprune.prunable(keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")])),
            ValueError,
            "no layer that tfprune can prune.*Dense",
        ),
        (lambda: tfprune.prunable(_mlp(), layers=keras.layers.Conv2D), ValueError, "no layer that tfprune can prune"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_subclassed_model_gets_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed"):
        tfprune.prunable(net)


def test_sparsity_report_table_and_plot():
    model = tfprune.prunable(_mlp())
    layer = model.get_layer("d1")
    layer.threshold.assign(np.full(8, 10.0, "float32"))
    report = tfprune.sparsity_report(model)
    assert [(r.layer, r.params, r.nonzeros) for r in report.rows] == [("d1", 48, 0), ("d2", 24, 24)]
    assert report.sparsity == pytest.approx(48 / 72)
    text = str(report)
    assert "d1/kernel" in text and "100.00%" in text
    assert report.to_dict()["layers"][0]["sparsity"] == 1.0
    figure = report.plot()
    assert len(figure.axes[0].patches) == 2


def test_granularity_per_model_and_per_layer():
    blocks = tfprune.prunable(_mlp(), granularity=(1, 2))
    assert [l.granularity for l in masked_layers(blocks)] == [(1, 2), (1, 2)]
    mixed = tfprune.prunable(_mlp(), granularity={"d1": "unit"})
    assert [l.granularity for l in masked_layers(mixed)] == ["unit", "weight"]


def _wide():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, name="fc1"), keras.layers.Dense(3, name="fc2")])


@pytest.mark.parametrize(
    "build, granularity, match",
    [
        (_mlp, (1, 4, 4), r"granularity.*Received: granularity=\(1, 4, 4\)"),
        (_mlp, {"nope": "unit"}, "not in model.*d1"),
        (_mlp, {"d1": "rows"}, r"Received: granularity\['d1'\]='rows'"),
        (_mlp, (2, 4), r"\(1, n\).*use \(1, 4\).*Received: granularity=\(2, 4\)"),
        (_mlp, {"d2": (2, 4)}, r"Received: granularity\['d2'\]=\(2, 4\)"),
        # caught in prunable, not at the first call; names the layer, its inputs and the fix
        (_wide, (1, 3), r"Layer 'fc1'.*granularity=\(1, 3\).*64 inputs.*\[2, 4, 8, 16\] or granularity='weight'"),
        (_wide, {"fc2": (1, 16)}, r"Layer 'fc2'.*8 inputs.*\[2, 4, 8\]"),
        (_cnn, {"conv": (1, 2)}, r"Layer 'conv'.*3 inputs.*\[3\] or granularity='weight'"),
    ],
)
def test_bad_granularity(build, granularity, match):
    with pytest.raises(ValueError, match=match):
        tfprune.prunable(build(), granularity=granularity)


def test_block_that_divides_every_layer_is_accepted():
    model = tfprune.prunable(_wide(), granularity={"fc1": (1, 16), "fc2": (1, 8)})
    assert [l.granularity for l in masked_layers(model)] == [(1, 16), (1, 8)]
