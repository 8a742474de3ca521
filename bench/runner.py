"""The row runner shared by every suite: run each planned row once, record it, keep going.

A suite plans `Row`s (a record head and a function giving the row's figures); `run_rows` skips
the rows recorded with the same settings, runs the others under a progress bar, appends each
record at once, and turns a failure into a `status: failed` record instead of a crash. `in_child`
runs a function in a fresh process, for steps that can crash the interpreter (TFLite converter).

Nothing here imports TensorFlow.
"""

import dataclasses
import datetime
import multiprocessing
import signal
import time
import traceback
from typing import Callable

from tqdm import tqdm

from bench.records import IDENTITY


@dataclasses.dataclass
class Row:
    """One planned row.

    Attributes:
        record: the record's leading fields: `suite`, `run` (the row's label), `seed`, what the
            row is (`method`, `params`, ...) and the settings, which the figures must not overwrite.
        run: `run()` -> the row's figures, a JSON-ready dict.
        settings: the setup (data, epochs, ...), also in `record`: a record with other settings
            is another experiment, not this row done.
        ready: for a recorded row, whether what later rows need of it is still there (e.g. its
            saved model); if not, the row runs again.
    """

    record: dict
    run: Callable[[], dict]
    settings: dict
    ready: Callable[[], bool] = None

    @property
    def title(self):
        return f"{self.record['suite']}: {self.record['run']} seed={self.record['seed']}"


def run_rows(rows, store, bar, summary=None):
    """Runs the rows not yet recorded in `store`, appending each record as it finishes.

    Args:
        rows: an iterable of `Row`, which may be a generator planning later rows from the
            records earlier rows left in `store`.
        store: a `bench.records.Store`.
        bar: a tqdm bar, advanced once per row, recorded or run.
        summary: `summary(record)` -> the line printed when a row finishes.

    Returns:
        The number of rows that failed.
    """
    failures = 0
    for row in rows:
        identity = {key: row.record[key] for key in IDENTITY}
        if store.recorded(row.settings, **identity) and (row.ready is None or row.ready()):
            bar.update()
            continue
        bar.set_postfix_str(row.title)
        record = execute(row)
        store.append(record)
        failures += record["status"] != "ok"
        tqdm.write((summary or default_summary)(record))
        bar.update()
    return failures


def execute(row):
    """Runs one row and returns its record; an exception becomes a failed record."""
    record = {
        **row.record,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    start = time.perf_counter()
    try:
        result = row.run()
        clash = sorted(set(result) & set(record))
        if clash:
            raise KeyError(f"the row's figures would overwrite the record's keys {clash}")
        record.update(result, status="ok")
    except Exception:
        record.update(status="failed", error=traceback.format_exc(limit=8)[-4000:])
    record["wall_time"] = time.perf_counter() - start
    return record


def default_summary(record):
    head = f"{record['suite']} | {record['run']} | seed {record['seed']}"
    return f"{head}: FAILED\n{record['error']}" if record["status"] != "ok" else f"{head}: ok"


def in_child(function, *args):
    """`function(*args)` in a fresh process; a crash (e.g. a segfault) becomes a RuntimeError."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, args))
    process.start()
    sender.close()
    try:
        ok, value = receiver.recv()
    except EOFError:
        process.join()
        code = process.exitcode
        name = signal.Signals(-code).name if code is not None and code < 0 else f"exit {code}"
        raise RuntimeError(f"the child process died ({name}) without a result") from None
    process.join()
    if not ok:
        raise RuntimeError(value)
    return value


def _child(sender, function, args):
    try:
        sender.send((True, function(*args)))
    except Exception:
        sender.send((False, traceback.format_exc(limit=8)[-4000:]))
