"""policy="xnnpack": the model shape XNNPACK's sparse inference needs, its 1x1 convs, their floor."""

import keras
import numpy as np
import pytest
from keras import layers

import tfprune
from tfprune import models
from tfprune.callbacks import lift_to_floor
from tfprune.layers.base import masked_layers
from tfprune.policy import MIN_SPARSITY, PolicyError, xnnpack_subgraph


def _small_v1():
    return models.mobilenet_v1((32, 32, 3), num_classes=4, width=0.25)


def _variant(stem="ok", middle="pointwise", head="keepdims"):
    """stem -> BN -> ReLU6 -> depthwise 3x3 -> middle conv -> spatial mean -> dense."""
    x = keras.Input((16, 16, 3))
    if stem == "same":
        y = layers.Conv2D(8, 3, 2, "same", name="stem")(x)
    else:
        y = layers.Conv2D(8, 3, 2, "valid", name="stem")(layers.ZeroPadding2D(1)(x))
    y = layers.ReLU(6.0)(layers.BatchNormalization()(y))
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = layers.Conv2D(16, 3 if middle == "3x3" else 1, padding="same", name="mid")(y)
    y = layers.Conv2D(16, 1, name="pw")(y)
    y = layers.GlobalAveragePooling2D(keepdims=head == "keepdims", name="mean")(y)
    return keras.Model(x, layers.Dense(4, name="fc")(layers.Flatten()(y)))


def test_accepts_mobilenets_and_names_their_pointwise_convs():
    v1 = xnnpack_subgraph(_small_v1())
    assert v1.stem == "stem" and v1.ends == ("pool",)
    assert v1.layers == tuple(f"pw{i}" for i in range(1, 14))
    v2 = xnnpack_subgraph(models.mobilenet_v2((32, 32, 3), num_classes=4, width=0.25))
    assert "block2_expand" in v2.layers and "block2_project" in v2.layers and "last" in v2.layers
    assert xnnpack_subgraph(_variant()).layers == ("mid", "pw")


@pytest.mark.parametrize(
    "variant, layer, cause",
    [
        ({"stem": "same"}, "'stem'", "padded by 1 on every side"),
        ({"middle": "3x3"}, "'mid'", "only 1x1 stride-1 convolutions"),
        ({"head": "flat"}, "'mean'", "keepdims=True"),
    ],
)
def test_refuses_broken_variants_naming_the_layer_and_the_fix(variant, layer, cause):
    with pytest.raises(PolicyError, match="Fix: ") as error:
        tfprune.prunable(_variant(**variant), policy="xnnpack")
    assert layer in str(error.value) and cause in str(error.value)


def test_masks_exactly_the_pointwise_convs_with_the_floor():
    model = tfprune.prunable(_small_v1(), policy="xnnpack")
    masked = masked_layers(model)
    assert [l.name for l in masked] == [f"pw{i}" for i in range(1, 14)]
    assert all(l.granularity == "weight" and l.min_sparsity == MIN_SPARSITY for l in masked)


def test_floor_survives_save_and_strip(tmp_path):
    model = tfprune.prunable(_variant(), policy="xnnpack")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("pw").min_sparsity == MIN_SPARSITY
    assert type(tfprune.strip(loaded).get_layer("pw")) is layers.Conv2D


@pytest.mark.parametrize("kwargs, message", [
    ({"policy": "arm"}, "policy must be None or 'xnnpack'"),
    ({"policy": "xnnpack", "layers": ["pw"]}, "pass neither layers= nor granularity="),
    ({"policy": "xnnpack", "granularity": "unit"}, "pass neither layers= nor granularity="),
])  # fmt: skip
def test_policy_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfprune.prunable(_variant(), **kwargs)


def test_min_sparsity_is_checked():
    with pytest.raises(ValueError, match="min_sparsity of layer 'c' must be"):
        tfprune.layers.MaskedConv2D(4, 1, min_sparsity=1.5, name="c")


def _train(model, callback, epochs=3):
    """A learnable task, so that the loss holds weights against the penalty: the class is the
    brightest quarter of the image."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(256, *model.input_shape[1:])).astype("float32")
    h, w = x.shape[1] // 2, x.shape[2] // 2
    quarters = [x[:, :h, :w], x[:, :h, w:], x[:, h:, :w], x[:, h:, w:]]
    y = np.argmax([q.mean(axis=(1, 2, 3)) for q in quarters], axis=0)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    return model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[callback])


@pytest.mark.parametrize("target", [None, 0.3])
def test_after_dst_every_policy_layer_is_at_least_two_thirds_sparse(target):
    """A tiny alpha (or a lower target) alone would leave the 1x1 convs denser; the floor's
    controller raises their alpha until they are above 2/3, with no lift needed at the end."""
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(_variant(), policy="xnnpack")
    callback = tfprune.DynamicPrune(alpha=1e-7, target_sparsity=target, control_every=2)
    _train(model, callback, epochs=12)
    assert callback.floor_lifts == {}
    for layer in masked_layers(model):
        assert MIN_SPARSITY <= layer.sparsity() < 0.99, layer.name


def test_a_floor_unmet_at_the_end_is_lifted_with_a_warning():
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(_variant(), policy="xnnpack")
    callback = tfprune.DynamicPrune(alpha=1e-7, control_every=50)  # never controls: 8 batches
    with pytest.warns(UserWarning, match="under their min_sparsity"):
        _train(model, callback, epochs=1)
    assert set(callback.floor_lifts) == {"mid", "pw"}
    assert all(layer.sparsity() >= MIN_SPARSITY for layer in masked_layers(model))


def test_lift_meets_the_floor_with_the_smallest_common_raise():
    layer = tfprune.layers.MaskedConv2D(8, 1, min_sparsity=MIN_SPARSITY)
    layer.build((None, 4, 4, 16))
    layer.kernel.assign(np.random.default_rng(0).normal(size=(1, 1, 16, 8)).astype("float32"))
    lift = lift_to_floor(layer)
    assert lift > 0 and MIN_SPARSITY <= layer.sparsity() < MIN_SPARSITY + 0.02
    assert lift_to_floor(layer) == 0.0  # already there: thresholds untouched


def test_the_lifted_floor_holds_in_the_compacted_model():
    """The lift counts the zeros of units it kills; `compact` then removes those units (and the
    channels they fed), and with them zeros. The floor must hold on what the file keeps."""
    keras.utils.set_random_seed(0)
    model = tfprune.prunable(_variant(), policy="xnnpack")
    mid = model.get_layer("mid")
    kernel = keras.ops.convert_to_numpy(mid.kernel)
    kernel[..., :5] *= 1e-3  # units the lift kills outright
    mid.kernel.assign(kernel)
    callback = tfprune.DynamicPrune(alpha=1e-7, control_every=50)
    with pytest.warns(UserWarning, match="under their min_sparsity"):
        _train(model, callback, epochs=1)
    small, _ = tfprune.compact(model)
    assert small.get_layer("mid").filters < 16  # the case at hand: the lift killed units
    for name in ("mid", "pw"):
        kernel = keras.ops.convert_to_numpy(small.get_layer(name).kernel)
        assert np.mean(kernel == 0) >= MIN_SPARSITY, name
