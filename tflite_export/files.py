"""File I/O for export and the CLI: fail on an unwritable path early, write atomically."""

import errno
import os
import tempfile

# Errors opening an O_TMPFILE on a filesystem or kernel that lacks it.
NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def check_writable(path, what="path"):
    """Fails fast, before any heavy work, if a file cannot be created at `path`.

    Args:
        path: the file to be written (str or os.PathLike).
        what: the argument's name, for messages.

    Returns:
        `path` as a str.

    Raises:
        TypeError: `path` is not a path.
        ValueError: `path` is empty.
        OSError: `path` is a directory or a special file, or its directory is missing, not a
            directory or not writable.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{what} must be a file path (str or os.PathLike). Received: {what}={path!r} "
            f"({type(path).__name__})."
        )
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError(f"{what} is empty. Pass the file to write, e.g. 'model.tflite'.")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or path.endswith(os.sep):
        raise IsADirectoryError(
            f"Cannot write '{path}': it names a directory. Pass a file path, e.g. "
            f"'{os.path.join(path, 'model.tflite')}'."
        )
    if os.path.exists(path) and not os.path.isfile(path):
        raise OSError(f"Cannot write '{path}': it exists and is not a regular file.")
    if not os.path.exists(parent):
        raise FileNotFoundError(
            f"Cannot write '{path}': directory '{parent}' does not exist. Create it first "
            "(os.makedirs) or choose another location."
        )
    if not os.path.isdir(parent):
        raise NotADirectoryError(
            f"Cannot write '{path}': '{parent}' is a file, not a directory."
        )
    if not _can_create_in(parent):
        raise PermissionError(
            f"Cannot write '{path}': directory '{parent}' is not writable. Choose a writable "
            "location."
        )
    return path


def _can_create_in(directory):
    """Whether a file can be created in `directory`; the probe leaves no name behind."""
    try:
        fd = _unnamed(directory, 0o600)
    except OSError:
        return False
    if fd is None:
        return os.access(directory, os.W_OK | os.X_OK)
    os.close(fd)
    return True


def _unnamed(directory, mode):
    """An fd on a new file in `directory` that has no name yet, or None where unsupported."""
    if not hasattr(os, "O_TMPFILE"):  # not Linux
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_WRONLY, mode)
    except OSError as error:
        if error.errno in NO_TMPFILE:
            return None
        raise


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
