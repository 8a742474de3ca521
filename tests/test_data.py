"""tfprune.data: the IDX reader on files written here, the offline fallback, digits. No downloads."""

import gzip
import logging
import struct

import keras
import numpy as np
import pytest

from tfprune import data


def write_idx(path, array, type_byte=0x08):
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(data._IDX_DTYPES[type_byte]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_fake_fashion_mnist(directory, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    sizes = {"x_train": n_train, "y_train": n_train, "x_test": n_test, "y_test": n_test}
    arrays = {}
    for key, filename in data.FASHION_MNIST_FILES.items():
        shape = (sizes[key], 28, 28) if key.startswith("x") else (sizes[key],)
        arrays[key] = rng.integers(0, 256 if key.startswith("x") else 10, shape, dtype=np.uint8)
        write_idx(directory / filename, arrays[key])
    return arrays


@pytest.fixture
def no_download(monkeypatch):
    """Keras' loader fails as it does offline, and counts its calls."""
    calls = []

    def fail():
        calls.append(1)
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", fail)
    monkeypatch.setattr(data, "_fallback_reported", False)
    return calls


@pytest.mark.parametrize(
    "array, type_byte",
    [
        (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.arange(5, dtype=np.uint8), 0x08),
        (np.array([[-3, 70000], [1, 2]], dtype=np.int32), 0x0C),
        (np.array([0.5, -1.25], dtype=np.float32), 0x0D),
    ],
)
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_round_trips(tmp_path, array, type_byte, suffix):
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, array, type_byte)
    result = data.read_idx(path)
    np.testing.assert_array_equal(result, array)
    assert result.dtype.isnative


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x07", "bad magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x07", "bad magic"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x07", "does not match shape"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, payload, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        data.read_idx(path)


def test_load_fashion_mnist_reads_first_complete_dir(tmp_path, no_download):
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    write_idx(incomplete / data.FASHION_MNIST_FILES["x_train"], np.zeros((1, 28, 28), np.uint8))
    arrays = write_fake_fashion_mnist(tmp_path / "complete")

    ds = data.load_fashion_mnist(dirs=[incomplete, tmp_path / "complete"])

    assert ds.name == "fashion_mnist"
    assert ds.x_train.shape == (6, 28, 28) and ds.x_test.shape == (4, 28, 28)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() <= ds.x_train.max() <= 1.0
    np.testing.assert_allclose(ds.x_test, arrays["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    assert not no_download


def test_keras_cache_dir_follows_keras_home(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    write_fake_fashion_mnist(tmp_path / "datasets" / "fashion-mnist")
    assert data.fashion_mnist_dirs()[0] == str(tmp_path / "datasets" / "fashion-mnist")
    assert data.load_fashion_mnist().x_train.shape == (6, 28, 28)


def test_load_fashion_mnist_reports_failed_download(tmp_path, no_download):
    with pytest.raises(data.DatasetUnavailable, match="could not be downloaded"):
        data.load_fashion_mnist(dirs=[tmp_path])
    assert no_download == [1]


def test_load_fashion_mnist_uses_keras_loader_when_not_on_disk(tmp_path, monkeypatch):
    x = np.full((3, 28, 28), 255, np.uint8)
    y = np.array([1, 2, 3], np.uint8)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", lambda: ((x, y), (x, y)))
    ds = data.load_fashion_mnist(dirs=[tmp_path])
    assert ds.x_train.max() == 1.0 and ds.y_test.tolist() == [1, 2, 3]


def test_auto_prefers_fashion_mnist_on_disk(tmp_path, monkeypatch, no_download):
    write_fake_fashion_mnist(tmp_path)
    monkeypatch.setattr(data, "fashion_mnist_dirs", lambda: [tmp_path])
    assert data.load_dataset("auto").name == "fashion_mnist"


def test_auto_falls_back_to_digits_and_says_why_once(tmp_path, monkeypatch, no_download, caplog):
    monkeypatch.setattr(data, "fashion_mnist_dirs", lambda: [tmp_path / "empty"])
    with caplog.at_level(logging.WARNING, logger="tfprune.data"):
        first = data.load_dataset()
        second = data.load_dataset("auto")
    assert first.name == second.name == "digits"
    reasons = [r.getMessage() for r in caplog.records if "instead of Fashion-MNIST" in r.getMessage()]
    assert len(reasons) == 1 and "could not be downloaded" in reasons[0]


def test_explicit_fashion_mnist_does_not_fall_back(tmp_path, monkeypatch, no_download):
    monkeypatch.setattr(data, "fashion_mnist_dirs", lambda: [tmp_path])
    with pytest.raises(data.DatasetUnavailable):
        data.load_dataset("fashion-mnist")


def test_digits_split_is_fixed_and_scaled():
    a, b = data.load_digits(), data.load_dataset("digits")
    assert a.x_train.shape == (1347, 8, 8) and a.x_test.shape == (450, 8, 8)
    assert a.x_train.dtype == np.float32 and a.x_train.min() == 0.0 and a.x_train.max() == 1.0
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert set(np.unique(a.y_test)) == set(range(10)) and a.num_classes == 10


@pytest.mark.parametrize("name", ["mnist", "", "cifar10"])
def test_unknown_dataset_names_are_rejected(name):
    with pytest.raises(ValueError, match=f"Unknown dataset.*name={name!r}"):
        data.load_dataset(name)


def test_one_directory_may_be_given_as_a_string(tmp_path, no_download):
    write_fake_fashion_mnist(tmp_path)
    assert data.load_fashion_mnist(dirs=str(tmp_path)).x_train.shape == (6, 28, 28)
    assert not no_download


def test_auto_refuses_damaged_fashion_mnist_rather_than_falling_back(tmp_path, monkeypatch, no_download):
    write_fake_fashion_mnist(tmp_path)
    (tmp_path / data.FASHION_MNIST_FILES["x_test"]).write_bytes(b"\x1f\x8b\x08\x00cut")
    monkeypatch.setattr(data, "fashion_mnist_dirs", lambda: [tmp_path])
    with pytest.raises(ValueError, match="Damaged dataset file.*Delete it and fetch it again.*t10k-images"):
        data.load_dataset("auto")
    assert not no_download


def _orders_seen_by_fit(batches, epochs):
    """The labels of every batch `fit` trains on, epoch by epoch, after a seeded start."""
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append([])

    class Recorder(keras.layers.Layer):
        def call(self, inputs):
            if seen:  # not the symbolic call that builds the model, before fit starts
                seen[-1].extend(keras.ops.convert_to_numpy(inputs)[:, 0].astype(int).tolist())
            return inputs

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), Recorder(), keras.layers.Dense(1)])
    model.compile("sgd", "mse", run_eagerly=True)
    model.fit(batches, epochs=epochs, shuffle=False, verbose=0, callbacks=[Record()])
    return seen


@pytest.mark.backends
def test_shuffled_batches_reorder_every_epoch_of_a_seeded_fit_and_repeat_for_the_seed():
    x, y = np.arange(32, dtype="float32")[:, None], np.zeros(32, "float32")
    orders = _orders_seen_by_fit(data.shuffled_batches(x, y, batch_size=8, seed=5), epochs=3)
    assert all(sorted(order) == list(range(32)) for order in orders)  # every example once an epoch
    assert len({tuple(order) for order in orders}) == 3, orders
    again = _orders_seen_by_fit(data.shuffled_batches(x, y, batch_size=8, seed=5), epochs=3)
    assert again == orders


def test_shuffled_batches_need_as_many_labels_as_examples():
    with pytest.raises(ValueError, match="same number of examples"):
        data.shuffled_batches(np.zeros((4, 1)), np.zeros(3), batch_size=2, seed=0)
