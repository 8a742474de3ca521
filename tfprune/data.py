"""Datasets for examples, tests and benchmarks that load without a network.

Fashion-MNIST (the DST paper's data) is read from IDX files wherever they already are: Keras'
cache or Debian's `dataset-fashion-mnist`. Keras' own loader is the last resort because it
downloads. scikit-learn's bundled 8x8 digits always load, so `load_dataset("auto")` never fails.
"""

import dataclasses
import gzip
import logging
import os
import zlib

import keras
import numpy as np

logger = logging.getLogger(__name__)

# The names Keras' `fashion_mnist.load_data()` caches, which are also the upstream names.
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/ format).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DATASETS = ("fashion_mnist", "digits")
_fallback_reported = False


class DatasetUnavailable(OSError):
    """A dataset is neither on disk nor downloadable."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Images as float32 in [0, 1] with shape (N, H, W) and integer labels.

    Callers reshape: `x.reshape(len(x), -1)` for an MLP, `x[..., None]` for a CNN.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    @property
    def num_classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def fashion_mnist_dirs():
    """Where Fashion-MNIST may already be: Keras' cache (honouring KERAS_HOME), then Debian's."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    return [
        os.path.join(os.path.expanduser(keras_home), "datasets", "fashion-mnist"),
        DEBIAN_FASHION_MNIST_DIR,
    ]


def read_idx(path):
    """Reads one IDX file (gzipped if its name ends in `.gz`) into a numpy array.

    Raises:
        FileNotFoundError: there is no file at `path`.
        ValueError: the file is damaged: not gzip (for `.gz`), truncated, a header that is not
            IDX, or a payload that does not match its shape.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise _damaged(path, f"unreadable gzip ({type(e).__name__}: {e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise _damaged(path, f"not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _damaged(path, f"IDX header cut short ({len(data)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], ">u4"))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise _damaged(
            path,
            f"IDX payload of {len(data) - header} bytes does not match shape {shape} "
            f"({expected} bytes)",
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _damaged(path, what):
    """The ValueError for a damaged dataset file: what is wrong, the path and the fix."""
    return ValueError(
        f"Damaged dataset file: {what}. Delete it and fetch it again (Keras' "
        "keras.datasets.fashion_mnist.load_data() downloads Fashion-MNIST into "
        "~/.keras/datasets/fashion-mnist; Debian's copy comes back with "
        f"`apt-get install --reinstall dataset-fashion-mnist`). Received: path={path}"
    )


def find_fashion_mnist(dirs=None):
    """The first directory in `dirs` (default `fashion_mnist_dirs()`) holding all four files."""
    for directory in _directories(dirs):
        if all(os.path.isfile(os.path.join(directory, f)) for f in FASHION_MNIST_FILES.values()):
            return str(directory)
    return None


def _directories(dirs):
    """`dirs` as a list of directories: None means `fashion_mnist_dirs()`, one path is one dir."""
    if dirs is None:
        return fashion_mnist_dirs()
    if isinstance(dirs, (str, os.PathLike)):
        return [dirs]
    if not isinstance(dirs, (list, tuple)):
        raise TypeError(
            f"Expected dirs to be a directory or a list of directories. Received: dirs={dirs!r}"
        )
    return list(dirs)


def load_fashion_mnist(dirs=None):
    """Fashion-MNIST from disk if present, else through Keras' (downloading) loader.

    Args:
        dirs: a directory or a list of directories to search instead of
            `fashion_mnist_dirs()`.

    Returns:
        A `Dataset` of 60000 train and 10000 test 28x28 images.

    Raises:
        DatasetUnavailable: not on disk and the download failed (e.g. no network).
        ValueError: a file on disk is damaged (the message names it).

    >>> data = load_fashion_mnist()
    >>> data.x_train.shape
    (60000, 28, 28)
    """
    directory = find_fashion_mnist(dirs)
    if directory is not None:
        arrays = {k: read_idx(os.path.join(directory, f)) for k, f in FASHION_MNIST_FILES.items()}
    else:
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
        except Exception as e:  # Keras raises a bare Exception when the download fails.
            raise DatasetUnavailable(
                f"Fashion-MNIST is not in {_directories(dirs)} and could not be "
                f"downloaded ({type(e).__name__}: {e}). Put the four IDX .gz files in one of "
                "those directories, or `apt-get install dataset-fashion-mnist`."
            ) from e
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return Dataset(
        x_train=(arrays["x_train"] / np.float32(255)).astype("float32"),
        y_train=arrays["y_train"].astype("int32"),
        x_test=(arrays["x_test"] / np.float32(255)).astype("float32"),
        y_test=arrays["y_test"].astype("int32"),
        name="fashion_mnist",
    )


def load_digits(test_size=0.25, seed=0):
    """scikit-learn's bundled 8x8 digits (1797 images), split stratified with a fixed seed.

    Small and offline: for tests, notebooks in fast mode and `--quick` benchmarks.

    >>> load_digits().x_train.shape
    (1347, 8, 8)
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = (digits.images / np.float32(16)).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target.astype("int32"), test_size=test_size, random_state=seed,
        stratify=digits.target,
    )
    return Dataset(x_train, y_train, x_test, y_test, name="digits")


def load_dataset(name="auto"):
    """Loads a dataset by name; `"auto"` is Fashion-MNIST when available, else digits.

    The reason for falling back is logged once per process, so benchmark output says which
    data it ran on.

    Args:
        name: `"auto"`, `"fashion_mnist"` or `"digits"`.

    Returns:
        A `Dataset`.

    Raises:
        ValueError: for an unknown name.
        DatasetUnavailable: `"fashion_mnist"` was asked for and cannot be had.

    >>> load_dataset("digits").name
    'digits'
    """
    global _fallback_reported
    key = str(name).lower().replace("-", "_")
    if key == "fashion_mnist":
        return load_fashion_mnist()
    if key == "digits":
        return load_digits()
    if key != "auto":
        raise ValueError(
            f"Unknown dataset. Expected 'auto' or one of {DATASETS}. Received: name={name!r}"
        )
    try:
        return load_fashion_mnist()
    except DatasetUnavailable as e:
        if not _fallback_reported:
            logger.warning("Using sklearn digits instead of Fashion-MNIST: %s", e)
            _fallback_reported = True
        return load_digits()


def shuffled_batches(x, y, batch_size, seed):
    """`(x, y)` in batches, in a new order every epoch; the same orders again for the same seed.

    Pass it to `fit` in place of `x, y, shuffle=True`. With the TensorFlow backend, Keras 3.15's
    own shuffle draws the same permutation every epoch once `keras.utils.set_random_seed` has
    been called (its dataset, and the permutation's random state, restart each epoch), so a
    seeded run sees one batch order twenty times. tf_keras and Keras' JAX backend reshuffle;
    on LeNet-5 the repeated order cost the dense model 1.2 test points (BENCHMARKS.md, top note).

    Args:
        x, y: arrays with the same first dimension.
        batch_size: examples per batch; the last batch holds the rest.
        seed: the integer that fixes the sequence of permutations.

    Returns:
        A `tf.data.Dataset` of `(x_batch, y_batch)`, its length known to `fit`.

    >>> batches = shuffled_batches(np.zeros((10, 2)), np.arange(10), batch_size=4, seed=0)
    >>> [len(b) for _, b in batches]
    [4, 4, 2]
    """
    import tensorflow as tf

    if len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of examples. Received: len(x)={len(x)}, len(y)={len(y)}"
        )
    x, y = tf.constant(x), tf.constant(y)
    return (
        tf.data.Dataset.range(len(x))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda i: (tf.gather(x, i), tf.gather(y, i)), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(1)
    )
