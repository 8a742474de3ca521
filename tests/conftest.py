"""Shared test setup: quiet TensorFlow, deterministic seeds."""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

# Keras' and TensorFlow's import-time objects, out of the cyclic collector's sight: every full
# collection walked them all (0.7 s each), and with the tests' garbage one took 11 s
# (tests/test_kinds, test_lstm, test_export_fused and test_callbacks in one process: 153 s, 135 s
# frozen).
gc.collect()
gc.freeze()


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    # Without `gc.collect()`: it walked TensorFlow's heap after every test (~0.3 s), a quarter
    # of the suite's time (test_bad_inputs.py alone: 18.5 s with it, 1.5 s without).
    keras.backend.clear_session(free_memory=False)


# The longest files first, so that no worker starts a long file while the others run out of work:
# `--no-loadscope-reorder` (pyproject) makes `--dist loadfile` hand files out in collection
# order (by default it hands out the files with the most tests first, and the notebooks, a
# quarter of the suite's time in five tests, came last). Seconds each, clean clone, 2026-12-03.
LONGEST_FIRST = (
    "test_notebooks_browser.py",  # 258
    "test_backends.py",  # 84
    "test_kinds.py",  # 83
    "test_callbacks.py",  # 74
    "test_export_encoding.py",  # 73
    "test_export_fused.py",  # 69
    "test_export_unroll.py",  # 45
    "test_distributed.py",  # 44
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
