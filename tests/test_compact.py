"""compact(): same outputs, fewer units, exactly the units that are dead."""

import sys

import keras
import numpy as np
import pytest
from keras import layers

from tfprune.compact import CompactionReport, compact
from tfprune.layers import MaskedDense


def _edit(model, name, fn):
    """Applies `fn` in place to the layer's weight list (numpy arrays)."""
    weights = model.get_layer(name).get_weights()
    fn(weights)
    model.get_layer(name).set_weights(weights)


def _removed(report):
    return {row.name: row.removed for row in report.layers}


def _assert_same_outputs(model, new_model, shape):
    x = np.random.default_rng(1).normal(size=(16, *shape)).astype("float32")
    np.testing.assert_allclose(new_model(x), model(x), atol=1e-5)


def _mlp(sequential):
    stack = [
        layers.Dense(16, activation="relu", name="d1"),
        layers.Dense(12, activation="tanh", use_bias=False, name="d2"),
        layers.Dense(4, name="out"),
    ]
    if sequential:
        model = keras.Sequential([keras.Input((8,))] + stack)
    else:
        x = keras.Input((8,))
        y = x
        for layer in stack:
            y = layer(y)
        model = keras.Model(x, y)

    def d1(w):
        w[0][:, [1, 3, 5]] = 0  # dead-in: output relu(bias), a constant
        w[1][:] = 0.5
        w[1][5] = -0.5  # relu(-0.5) = 0: nothing to fold

    def d2(w):
        w[0][[7, 9], :] = 0  # dead-out units of d1
        w[0][:, [0, 2]] = 0  # dead-in units of d2: tanh(0) = 0

    def out(w):
        w[0][4, :] = 0  # dead-out unit of d2
        w[0][:, 1] = 0  # dead-in output unit: outputs are never removed
        w[1][:] = 0.25

    for name, fn in [("d1", d1), ("d2", d2), ("out", out)]:
        _edit(model, name, fn)
    return model


@pytest.mark.parametrize("sequential", [False, True])
def test_mlp_removes_dead_in_and_dead_out_units(sequential):
    model = _mlp(sequential)
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (8,))
    assert _removed(report) == {"d1": [1, 3, 5, 7, 9], "d2": [0, 2, 4], "out": []}
    assert new_model.get_layer("d1").units == 11
    # relu(0.5) of the dead d1 units now lives in d2's bias, which d2 did not have.
    assert new_model.get_layer("d2").use_bias
    assert isinstance(new_model, keras.Sequential) == sequential
    assert report.params_after == new_model.count_params() < report.params_before


def test_original_model_is_untouched():
    model = _mlp(sequential=False)
    before = [w.copy() for w in model.get_weights()]
    nodes = [len(layer._inbound_nodes) for layer in model.layers]
    new_model, _ = compact(model)
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)
    assert [len(layer._inbound_nodes) for layer in model.layers] == nodes
    assert model.get_layer("d1").units == 16
    assert not set(map(id, new_model.weights)) & set(map(id, model.weights))


def _cnn(second):
    """Conv -> BN -> MaxPool, then either Flatten -> Dense or another conv of padding `second`."""
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    y = layers.BatchNormalization(name="bn")(y)
    y = layers.MaxPooling2D(name="pool")(y)
    if second == "dense":
        y = layers.Flatten()(y)
        y = layers.Dense(10, activation="relu", name="fc")(y)
    else:
        y = layers.Conv2D(6, 3, padding=second, name="conv2")(y)
        y = layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, layers.Dense(3, name="out")(y))
    rng = np.random.default_rng(0)

    def conv(w):
        w[0][..., [1, 4]] = 0  # dead-in filters: BN turns relu(bias) into another constant
        w[1][:] = 0.3

    def bn(w):
        for v in w:
            v[:] = rng.uniform(0.5, 1.5, size=v.shape)

    def fc(w):  # channel 6 reaches fc at every one of the 4x4 positions: all rows zero
        w[0].reshape(4, 4, 8, 10)[:, :, 6, :] = 0

    _edit(model, "conv", conv)
    _edit(model, "bn", bn)
    if second == "dense":
        _edit(model, "fc", fc)
    return model


def test_cnn_batchnorm_pool_flatten_dense():
    model = _cnn("dense")
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (8, 8, 3))
    removed = _removed(report)
    assert removed["conv"] == removed["bn"] == [1, 4, 6]
    assert new_model.get_layer("fc").kernel.shape == (4 * 4 * 5, 10)


@pytest.mark.parametrize("padding, removed", [("valid", [1, 4]), ("same", [])])
def test_constant_filter_folds_into_conv_only_with_valid_padding(padding, removed):
    model = _cnn(padding)
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (8, 8, 3))
    assert _removed(report)["conv"] == removed


def test_add_and_concatenate_branches():
    x = keras.Input((6,))
    a = layers.Dense(8, activation="relu", name="a")(x)
    b = layers.Dense(8, name="b")(x)
    s = layers.Add()([a, b])
    d = layers.Dense(5, activation="relu", name="d")(x)
    cat = layers.Concatenate()([s, layers.Dropout(0.5)(d)])
    model = keras.Model(x, layers.Dense(3, name="out")(cat))

    def branch(w):
        w[0][:, 2] = 0  # unit 2 is constant in both branches: their sum folds into `out`
        w[1][:] = 0.4

    _edit(model, "a", branch)
    _edit(model, "b", branch)
    _edit(model, "a", lambda w: w[0].__setitem__((slice(None), 5), 0))  # dead in `a` only
    _edit(model, "out", lambda w: w[0].__setitem__(8 + 1, 0))  # d's unit 1, after the offset
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (6,))
    assert _removed(report) == {"a": [2], "b": [2], "d": [1], "out": []}
    assert new_model.get_layer("out").kernel.shape == (7 + 4, 3)


def test_depthwise_channels():
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(4, 1, activation="relu", name="conv")(x)
    y = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(y)
    y = layers.ReLU()(y)
    y = layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, layers.Dense(2, name="out")(y))

    def conv(w):
        w[0][..., 1] = 0
        w[1][:] = 0.2

    def dw(w):
        w[0][:, :, 1, :] = 0  # both outputs of channel 1 output their bias, a constant
        w[1][:] = 0.1

    def out(w):
        w[0][[4, 5], :] = 0  # both outputs of channel 2 are unread
        w[0][6, :] = 0  # only one output of channel 3: it stays

    _edit(model, "conv", conv)
    _edit(model, "dw", dw)
    _edit(model, "out", out)
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (8, 8, 3))
    assert _removed(report) == {"conv": [1, 2], "dw": [2, 3, 4, 5], "out": []}
    assert new_model.get_layer("dw").kernel.shape == (3, 3, 2, 2)


def test_reshape_keeps_channel_bookkeeping():
    x = keras.Input((4, 4, 3))
    y = layers.Conv2D(6, 1, name="conv")(x)
    y = layers.Reshape((16, 6))(y)
    y = layers.Dense(5, name="mix")(y)
    model = keras.Model(x, layers.Dense(2, name="out")(layers.Flatten()(y)))
    _edit(model, "mix", lambda w: w[0].__setitem__(3, 0))
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (4, 4, 3))
    assert _removed(report)["conv"] == [3]


def test_a_wholly_dead_layer_keeps_one_unit():
    x = keras.Input((5,))
    h = layers.Dense(6, activation="relu", name="h")(x)
    d = layers.Dense(4, activation="sigmoid", name="dead")(h)
    model = keras.Model(x, layers.Dense(2, name="out")(d))
    _edit(model, "dead", lambda w: w[0].fill(0))  # outputs sigmoid(bias) whatever the input
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (5,))
    assert _removed(report) == {"h": [1, 2, 3, 4, 5], "dead": [1, 2, 3], "out": []}


def test_nested_models_and_shared_layers_are_left_whole():
    inner = keras.Sequential([keras.Input((5,)), layers.Dense(5, name="inner_dense")], name="inner")
    x = keras.Input((4,))
    before_inner = layers.Dense(5, name="before_inner")(x)
    shared = layers.Dense(5, name="shared")
    y = shared(shared(inner(before_inner)))
    model = keras.Model(x, layers.Dense(2, name="out")(y))
    for name in ["before_inner", "shared"]:
        _edit(model, name, lambda w: w[0].__setitem__((slice(None), 1), 0))
    new_model, report = compact(model)
    _assert_same_outputs(model, new_model, (4,))
    assert _removed(report) == {"before_inner": [], "out": []}
    assert new_model.get_layer("inner") is not inner
    assert new_model.count_params() == model.count_params()


def test_report_table_and_dict():
    _, report = compact(_mlp(sequential=False))
    assert isinstance(report, CompactionReport)
    text = str(report)
    assert "d1" in text and "16" in text and "11" in text and "params:" in text
    as_dict = report.to_dict()
    assert as_dict["layers"][0] == {
        "name": "d1", "units_before": 16, "units_after": 11, "removed": [1, 3, 5, 7, 9],
        "by_data": [],
    }
    assert as_dict["params_after"] < as_dict["params_before"]


def test_masked_models_are_stripped_first(monkeypatch):
    stock = _mlp(sequential=False)
    x = keras.Input((8,))
    masked = keras.Model(x, MaskedDense(4)(x))
    calls = []

    def strip(model):
        calls.append(model)
        return stock

    monkeypatch.setattr(sys.modules["tfprune.compact"], "strip", strip)
    new_model, report = compact(masked)
    assert calls == [masked]
    assert _removed(report)["d1"] == [1, 3, 5, 7, 9]


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (layers.Dense(3), TypeError, "Received: model=<Dense"),
        ([], TypeError, "of type list"),
        ("model.keras", TypeError, "Pass the whole model"),
        (keras.Sequential([layers.Dense(3)]), ValueError, "build a Sequential model first"),
        (_Subclassed(), ValueError, "subclassed models are not supported"),
    ],
)
def test_rejects_what_is_not_a_built_model(bad, error, message):
    with pytest.raises(error, match=message):
        compact(bad)


def _set_unit_masks(model, dead):
    """Masks whole filters/channels through the DST thresholds: `{layer: [unit, ...]}`."""
    for name, units in dead.items():
        layer = model.get_layer(name)
        threshold = np.zeros(layer.threshold.shape, "float32")
        threshold.reshape(-1)[units] = 1e3  # above any |w|: the unit's whole group is masked
        layer.threshold.assign(threshold)


def _randomize_batchnorms(model, rng):
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])


def test_filter_masks_compact_through_batchnorm_residual_add_depthwise_and_concatenate():
    """Residual channels go only when dead in every input of the Add; a depthwise channel's
    mask takes the filter that computes it, and Concatenate keeps the offsets."""
    import tfprune

    x = keras.Input((8, 8, 3))
    s = layers.ReLU()(layers.BatchNormalization(name="s_bn")(layers.Conv2D(6, 3, padding="same", name="stem")(x)))
    a = layers.BatchNormalization(name="a_bn")(layers.Conv2D(8, 1, name="a")(s))
    b = layers.BatchNormalization(name="b_bn")(layers.Conv2D(8, 1, name="b")(layers.ReLU()(a)))
    r = layers.Add(name="add")([a, b])
    c = layers.ReLU()(layers.BatchNormalization(name="c_bn")(layers.Conv2D(6, 1, name="c")(s)))
    d = layers.ReLU()(layers.BatchNormalization(name="d_bn")(layers.DepthwiseConv2D(3, padding="same", name="dw")(c)))
    y = layers.Concatenate(name="cat")([r, d])
    model = keras.Model(x, layers.Dense(3, name="out")(layers.GlobalAveragePooling2D()(y)))
    masked = tfprune.prunable(model, layers=["a", "b", "dw"], granularity="unit")
    _randomize_batchnorms(masked, np.random.default_rng(2))
    _set_unit_masks(masked, {"a": [2, 5], "b": [2], "dw": [1, 4]})
    new_model, report = compact(masked)
    _assert_same_outputs(masked, new_model, (8, 8, 3))
    removed = _removed(report)
    assert removed["a"] == removed["b"] == removed["a_bn"] == [2]  # 5 lives on in b's half of the Add
    assert removed["dw"] == removed["c"] == removed["c_bn"] == [1, 4]  # the channel takes its filter
    assert new_model.get_layer("out").kernel.shape == (7 + 4, 3)


@pytest.mark.parametrize("build", ["mobilenet_v1", "mobilenet_v2"])
def test_depthwise_channel_masks_compact_mobilenets(build):
    """Filter-level DST's grouping (bench.cnn): a masked depthwise channel removes the filter that
    computes it (through BatchNorm, ReLU6 and the stride-2 zero padding) and the next 1x1 conv's
    input row; outputs stay the same."""
    import tfprune
    from tfprune import models

    model = getattr(models, build)((32, 32, 3), num_classes=4, width=0.25)
    masked = tfprune.prunable(model, layers=[layers.DepthwiseConv2D], granularity="unit")
    rng = np.random.default_rng(0)
    _randomize_batchnorms(masked, rng)
    dead = {l.name: list(np.flatnonzero(rng.random(l.threshold.shape[0]) < 0.4))
            for l in masked.layers if isinstance(l, layers.DepthwiseConv2D)}  # fmt: skip
    _set_unit_masks(masked, dead)
    new_model, report = compact(masked)
    _assert_same_outputs(masked, new_model, (32, 32, 3))
    removed = _removed(report)
    for name, units in dead.items():
        assert removed[name] == units, name
    assert new_model.count_params() < 0.8 * model.count_params()


@pytest.mark.parametrize("batchnorm, removed", [(True, []), (False, [3])])
def test_zero_padding_keeps_a_nonzero_constant_channel(batchnorm, removed):
    """A dead filter after BatchNorm is a nonzero constant, which zero padding turns into a map
    whose border differs: the depthwise conv cannot fold it. Without BatchNorm it is 0, which
    padding keeps, so the channel goes."""
    import tfprune

    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(6, 1, use_bias=False, name="pw")(x)
    if batchnorm:
        y = layers.BatchNormalization(name="bn")(y)
    y = layers.DepthwiseConv2D(3, strides=2, name="dw")(layers.ZeroPadding2D(1, name="pad")(y))
    model = keras.Model(x, layers.Dense(2, name="out")(layers.GlobalAveragePooling2D()(y)))
    masked = tfprune.prunable(model, layers=["pw"], granularity="unit")
    _randomize_batchnorms(masked, np.random.default_rng(0))
    _set_unit_masks(masked, {"pw": [3]})
    new_model, report = compact(masked)
    _assert_same_outputs(masked, new_model, (8, 8, 3))
    assert _removed(report)["pw"] == removed


def test_a_dead_filter_before_batchnorm_and_a_same_padded_conv_goes_after_dst():
    """DynamicPrune holds a dead filter's BatchNorm channel at zero output, so the 3x3 'same'
    conv reading it (which cannot fold a nonzero constant) lets compact remove it."""
    import tfprune

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3))
    y = layers.ReLU()(layers.BatchNormalization(name="bn")(layers.Conv2D(6, 3, padding="same", name="c1")(x)))
    y = layers.Conv2D(4, 3, padding="same", name="c2")(y)
    model = keras.Model(x, layers.Dense(2, name="out")(layers.GlobalAveragePooling2D()(y)))
    masked = tfprune.prunable(model, layers=["c1"], granularity="unit")
    _randomize_batchnorms(masked, np.random.default_rng(0))
    _set_unit_masks(masked, {"c1": [1, 4]})
    masked.get_layer("c1").threshold.trainable = False  # the planted masks stay
    rng = np.random.default_rng(1)
    masked.compile("sgd", "mse")
    masked.fit(rng.normal(size=(32, 8, 8, 3)), rng.normal(size=(32, 2)), epochs=1, verbose=0,
               callbacks=[tfprune.DynamicPrune(alpha=0.0, reset_check_every=1)])  # fmt: skip
    new_model, report = compact(masked)
    _assert_same_outputs(masked, new_model, (8, 8, 3))
    assert _removed(report)["c1"] == [1, 4]
