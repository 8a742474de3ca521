"""One row per bad argument, data or file: the exception type, the bad value echoed, the fix named.

DynamicPrune's arguments are covered in test_callbacks.py, the export's in test_tflite_export.py.
"""

import gzip

import keras
import numpy as np
import pytest

import tfprune
from tfprune import data, lstm
from tfprune.layers import MaskedConv2D, MaskedDense, MaskedDepthwiseConv2D, MaskedLSTM

X_SEQ = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
FETCH_AGAIN = "Delete it and fetch it again"


def mlp():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="d1"), keras.layers.Dense(3, name="d2")], name="mlp")


def wide():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, name="fc1"), keras.layers.Dense(3, name="fc2")])


def rnn():
    return keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(8, name="rnn"), keras.layers.Dense(2, name="head")])


def damaged(tmp, name, payload):
    """Writes the bytes `payload` to the file `name` in `tmp`."""
    path = tmp / name
    path.write_bytes(payload)
    return path


def damaged_fashion_mnist(tmp):
    """A Fashion-MNIST folder whose training images are cut off mid-stream."""
    whole = gzip.compress(bytes([0, 0, 8, 3]) + (1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(784))
    for filename in data.FASHION_MNIST_FILES.values():
        (tmp / filename).write_bytes(whole[:30])
    return tmp


# (id, call(tmp_path), exception type, substrings echoing the bad input, the fix named)
ROWS = [
    # tfprune.prunable
    ("prunable-path", lambda t: tfprune.prunable("model.keras"), TypeError, ["model='model.keras'"], "keras.saving.load_model(path)"),
    ("prunable-layer", lambda t: tfprune.prunable(keras.layers.Dense(3)), TypeError, ["of type Dense"], "tfprune.layers.MaskedDense"),
    ("prunable-no-prunable-layer", lambda t: tfprune.prunable(keras.Sequential([keras.Input((4,)), keras.layers.ReLU()])),
     ValueError, ["layers=None"], "tfprune.registry.register"),
    ("layers-unknown-name", lambda t: tfprune.prunable(mlp(), layers=["nope"]), ValueError, ["'nope'"], "Layer names: d1, d2"),
    ("layers-item-int", lambda t: tfprune.prunable(mlp(), layers=["d1", 3]), TypeError, ["item 3", "layers=['d1', 3]"],
     "layer names or keras.layers.Layer classes"),
    ("layers-item-class", lambda t: tfprune.prunable(mlp(), layers=[int]), TypeError, ["<class 'int'>"], "keras.layers.Layer classes"),
    ("layers-int", lambda t: tfprune.prunable(mlp(), layers=3), TypeError, ["layers=3"], "predicate fn(layer) -> bool"),
    ("granularity-name", lambda t: tfprune.prunable(mlp(), granularity="rows"), ValueError, ["granularity='rows'"],
     "'weight', 'unit' or a block shape (1, n)"),
    ("granularity-2x4", lambda t: tfprune.prunable(mlp(), granularity=(2, 4)), ValueError, ["granularity=(2, 4)"], "use (1, 4)"),
    ("granularity-block-not-dividing", lambda t: tfprune.prunable(wide(), granularity=(1, 3)), ValueError,
     ["Layer 'fc1'", "64 inputs", "granularity=(1, 3)"], "d in [2, 4, 8, 16] or granularity='weight'"),
    ("thresholds-name", lambda t: tfprune.prunable(mlp(), thresholds="neuron"), ValueError,
     ["thresholds='neuron'"], "'unit' (one per output unit, the paper) or 'layer'"),
    ("weight-gradient-name", lambda t: tfprune.prunable(mlp(), weight_gradient="dense"), ValueError,
     ["weight_gradient='dense'"], "'estimator' (the paper"),
    ("thresholds-layer-with-unit-masks", lambda t: tfprune.prunable(mlp(), granularity="unit", thresholds="layer"),
     ValueError, ["granularity='unit'", "keep all its units or none"], "Use thresholds='unit' with it"),
    ("granularity-dict-name", lambda t: tfprune.prunable(mlp(), granularity={"nope": "unit"}), ValueError, ["'nope'"], "Layer names: d1, d2"),
    ("granularity-dict-value", lambda t: tfprune.prunable(mlp(), granularity={"d1": (1, 0)}), ValueError,
     ["granularity['d1']=(1, 0)"], "block shape (1, n)"),
    ("granularity-dict-block", lambda t: tfprune.prunable(wide(), granularity={"fc2": (1, 16)}), ValueError,
     ["Layer 'fc2'", "8 inputs"], "d in [2, 4, 8] or granularity='weight'"),
    # tfprune.strip, tfprune.compact
    ("strip-none", lambda t: tfprune.strip(None), TypeError, ["model=None"], "keras.Model (Sequential or functional)"),
    ("strip-path", lambda t: tfprune.strip("m.keras"), TypeError, ["model='m.keras'"], "keras.saving.load_model(path)"),
    ("compact-path", lambda t: tfprune.compact("m"), TypeError, ["model='m'"], "Pass the whole model"),
    ("compact-list", lambda t: tfprune.compact([mlp()]), TypeError, ["of type list"], "Pass the whole model"),
    ("compact-unbuilt", lambda t: tfprune.compact(keras.Sequential([keras.layers.Dense(3)], name="unbuilt")), ValueError,
     ["'unbuilt'"], "keras.Input or call model.build(input_shape)"),
    # tfprune.lstm.prune_hidden_state / calibrate
    ("hidden-target-1", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, 1.0), ValueError, ["target=1.0"], "must be in [0, 1)"),
    ("hidden-target-nan", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, float("nan")), ValueError, ["target=nan"], "must be in [0, 1)"),
    ("hidden-target-str", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, "half"), TypeError, ["target='half'"], "a number in [0, 1)"),
    ("hidden-chunk", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, 0.5, chunk=3), ValueError, ["chunk=3", "units=8"],
     "Use a chunk in [1, 2, 4, 8]"),
    ("hidden-chunk-0", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, 0.5, chunk=0), ValueError, ["chunk=0"], "positive integer"),
    ("hidden-layers-not-lstm", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, 0.5, layers=["head"]), ValueError,
     ["'head' (Dense)"], "LSTM layers of this model: ['rnn']"),
    ("hidden-layers-unknown", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, 0.5, layers="nope"), ValueError, ["'nope'"],
     "LSTM layers: ['rnn']"),
    ("hidden-layers-int", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, 0.5, layers=3), TypeError, ["layers=3"],
     "a layer name or layer, or a list"),
    ("hidden-no-lstm", lambda t: lstm.prune_hidden_state(mlp(), np.ones((2, 6), "float32")), ValueError, ["'mlp'"],
     "use tfprune.prunable"),
    ("hidden-tolerance", lambda t: lstm.prune_hidden_state(rnn(), X_SEQ, 0.5, tolerance=-1), ValueError, ["tolerance=-1"],
     "in [0, 1) such as 0.01"),
    ("calibrate-not-pruned", lambda t: lstm.calibrate(rnn(), X_SEQ, 0.5), ValueError, ["['rnn']"],
     "tfprune.lstm.prune_hidden_state(model, data, target)"),
    ("calibrate-no-lstm", lambda t: lstm.calibrate(mlp(), np.ones((2, 6), "float32"), 0.5), ValueError, ["'mlp'"],
     "use tfprune.prunable"),
    ("calibrate-target", lambda t: lstm.calibrate(rnn(), X_SEQ, 1.5), ValueError, ["target=1.5"], "must be in [0, 1)"),
    ("calibrate-max-steps", lambda t: lstm.calibrate(rnn(), X_SEQ, 0.5, max_steps=0), ValueError, ["max_steps=0"],
     "positive integer such as 20"),
    ("calibrate-path", lambda t: lstm.calibrate("m.keras", X_SEQ, 0.5), TypeError, ["model='m.keras'"], "keras.saving.load_model"),
    # masked layers, built directly
    ("dense-units", lambda t: MaskedDense(units=-3), ValueError, ["units=-3"], "expected a positive integer"),
    ("dense-granularity", lambda t: MaskedDense(4, granularity=None), ValueError, ["granularity=None"], "'weight', 'unit' or a block"),
    ("dense-2x4", lambda t: MaskedDense(4, granularity=(2, 4)), ValueError, ["granularity=(2, 4)"], "use (1, 4)"),
    ("dense-block-build", lambda t: MaskedDense(4, granularity=(1, 3), name="fc").build((None, 64)), ValueError,
     ["Layer 'fc'", "64 inputs", "granularity=(1, 3)"], "d in [2, 4, 8, 16] or granularity='weight'"),
    ("dense-lora", lambda t: MaskedDense(4, lora_rank=2), ValueError, ["lora_rank=2"], "Prune first, then enable LoRA"),
    ("conv-block-0", lambda t: MaskedConv2D(4, 3, granularity=(1, 0)), ValueError, ["granularity=(1, 0)"], "block shape (1, n)"),
    ("conv-block-build", lambda t: MaskedConv2D(4, 3, granularity=(1, 4), name="conv").build((None, 8, 8, 3)), ValueError,
     ["Layer 'conv'", "3 inputs"], "d in [3] or granularity='weight'"),
    ("conv-block-one-channel", lambda t: MaskedConv2D(4, 3, granularity=(1, 4), name="conv").build((None, 8, 8, 1)), ValueError,
     ["Layer 'conv'", "1 inputs"], "Use granularity='weight'"),
    ("depthwise-block", lambda t: MaskedDepthwiseConv2D(3, granularity=(1, 4), name="dw"), ValueError,
     ["'dw'", "granularity=(1, 4)"], "'weight' or 'unit'"),
    ("lstm-hidden-state", lambda t: MaskedLSTM(8, hidden_state="on"), ValueError, ["hidden_state='on'"], "('off', 'fixed', 'trained')"),
    ("lstm-chunk", lambda t: MaskedLSTM(10, hidden_state="fixed", chunk=4), ValueError, ["chunk=4", "units=10"],
     "Use a chunk in [1, 2, 5, 10]"),
    ("lstm-prune-weights", lambda t: MaskedLSTM(8, prune_weights="no"), ValueError, ["prune_weights='no'"], "True (DST masks"),
    ("lstm-hidden-threshold", lambda t: MaskedLSTM(8, hidden_state="fixed", hidden_threshold=float("nan")), ValueError,
     ["hidden_threshold=nan"], "finite number"),
    ("lstm-cudnn", lambda t: MaskedLSTM(8, use_cudnn=True), ValueError, ["use_cudnn=True"], "pass 'auto' or False"),
    ("lstm-block-build", lambda t: MaskedLSTM(6, granularity=(1, 4), name="rnn")(X_SEQ[..., :1].repeat(8, -1)), ValueError,
     ["Layer 'rnn'", "recurrent_kernel has 6 inputs"], "d in [2] or granularity='weight'"),
    # tfprune.data
    ("dataset-name", lambda t: data.load_dataset("mnist"), ValueError, ["name='mnist'"], "one of ('fashion_mnist', 'digits')"),
    ("idx-magic", lambda t: data.read_idx(damaged(t, "a-idx", b"PK\x03\x04zip")), ValueError, ["a-idx", "bad magic number"], FETCH_AGAIN),
    ("idx-payload", lambda t: data.read_idx(damaged(t, "b-idx", bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))), ValueError,
     ["b-idx", "2 bytes does not match shape (5,)"], FETCH_AGAIN),
    ("idx-header", lambda t: data.read_idx(damaged(t, "c-idx", bytes([0, 0, 8, 3, 0, 0]))), ValueError, ["c-idx", "header"], FETCH_AGAIN),
    ("idx-truncated-gz", lambda t: data.read_idx(damaged(t, "d-idx.gz", gzip.compress(bytes(100))[:12])), ValueError,
     ["d-idx.gz", "EOFError"], FETCH_AGAIN),
    ("idx-not-gzip", lambda t: data.read_idx(damaged(t, "e-idx.gz", b"plain")), ValueError, ["e-idx.gz", "BadGzipFile"], FETCH_AGAIN),
    ("fashion-mnist-damaged", lambda t: data.load_fashion_mnist(dirs=[damaged_fashion_mnist(t)]), ValueError,
     ["train-images-idx3-ubyte.gz"], FETCH_AGAIN),
    ("fashion-mnist-one-dir", lambda t: data.load_fashion_mnist(dirs=str(damaged_fashion_mnist(t))), ValueError,
     ["train-images-idx3-ubyte.gz"], FETCH_AGAIN),
    ("fashion-mnist-dirs", lambda t: data.load_fashion_mnist(dirs=3), TypeError, ["dirs=3"], "a directory or a list of directories"),
]


@pytest.mark.parametrize("call, error, echoes, fix", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input_is_refused_with_its_value_and_the_fix(tmp_path, call, error, echoes, fix):
    with pytest.raises(error) as info:
        call(tmp_path)
    message = str(info.value)
    assert type(info.value) is error, f"{type(info.value).__name__}: {message}"
    for echo in echoes:
        assert echo in message, f"{echo!r} not echoed in: {message}"
    assert fix in message, f"fix {fix!r} not named in: {message}"
