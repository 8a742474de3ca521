"""File I/O for export and the CLI: fail on an unwritable path early, write atomically."""

import os
import tempfile


def check_writable(path):
    """Fails fast, before any heavy work, if a file cannot be created at `path`.

    Args:
        path: the file to be written.

    Raises:
        OSError: `path` is a directory, or its directory is missing or read-only.
    """
    if os.path.isdir(path):
        raise OSError(
            f"Cannot write '{path}': it is a directory. Pass a file path ending in .tflite."
        )
    try:
        handle, probe = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)))
    except OSError as error:
        raise OSError(
            f"Cannot write '{path}': {error.strerror}. Create the directory or choose a "
            "writable location."
        ) from error
    os.close(handle)
    os.remove(probe)


def write_atomically(path, content):
    """Writes `content` (bytes) via a temp file in the same directory and `os.replace`.

    Readers see the old file or the complete new one, never a partial file; on failure the
    temp file is removed.

    Args:
        path: the destination.
        content: the bytes to write.
    """
    directory, name = os.path.split(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        os.remove(temp)
        raise
