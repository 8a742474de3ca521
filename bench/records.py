"""The record store: one JSON line per finished run, read back by resumed runs and by reports.

Every entry point appends through `append_record` and every report reads through
`read_records`, so a file written by a killed run (its last line cut short) reads the same
everywhere. A run is *recorded* when an ok record has the same settings and identity; rerunning
a command skips those (see `Store.recorded`).

Nothing here imports TensorFlow: tests and reports use it without the 9 s import.
"""

import json
import os
from pathlib import Path

IDENTITY = ("suite", "run", "seed")  # with the settings, what makes two records the same run


def read_records(path):
    """The records in a JSONL file (none if it does not exist); a line cut short is skipped."""
    path = Path(path)
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def append_record(path, record):
    """Appends one line and syncs it, so a kill right after loses nothing.

    A last line cut short by an earlier kill is ended first, so it stays one unreadable line
    (skipped by `read_records`) instead of swallowing this record.
    """
    path = Path(path)
    cut_short = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if cut_short else "") + json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def same_setup(record, settings):
    """Whether `record` has every key of `settings` with the same value (JSON-normalised, so a
    tuple in the settings equals the list the file holds)."""
    return all(_plain(record.get(k)) == _plain(v) for k, v in settings.items())


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Store:
    """A JSONL file and the records read from it, kept in step as records are appended."""

    def __init__(self, path):
        self.path = Path(path)
        self.records = read_records(self.path)

    def append(self, record):
        append_record(self.path, record)
        self.records.append(record)

    def finished(self, settings):
        """The ok records of this setup, in file order."""
        return [r for r in self.records if r.get("status") == "ok" and same_setup(r, settings)]

    def recorded(self, settings, **identity):
        """Whether an ok record has these settings and identity (e.g. `suite`, `run`, `seed`)."""
        return any(same_setup(r, identity) for r in self.finished(settings))


def latest(records):
    """`{run label: record}`: the last ok record of each row (reruns replace earlier ones)."""
    rows = {}
    for record in records:
        if record["status"] == "ok":
            rows[record["run"]] = record
    return rows
