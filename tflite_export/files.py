"""Files for export and the CLI: a destination checked early, one export per path, atomic writes.

A file is written into an unnamed `O_TMPFILE` and linked in only when complete, so a killed
process leaves no temporary behind. Where the system cannot create or link one, a named
`.<name>.<pid>.<token>.tmp` is used instead, and leftovers whose process is gone are swept by
the next write. New files get mode 0666 minus the umask, like any file; a replaced file keeps
its mode. The lock `.<name>.lock` beside the destination lives while an export runs.
"""

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import secrets
import stat
import threading

# Errors opening an O_TMPFILE on a filesystem or kernel that lacks it.
NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000  # <fcntl.h>, for linkat
_libc = ctypes.CDLL(None, use_errno=True)
_held = set()  # (lock path, thread id) pairs: `exclusive` is re-entrant within one thread


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


@contextlib.contextmanager
def exclusive(path):
    """Holds the lock beside `path` in the `with` block; a second holder is refused.

    Re-entrant within one thread (the CLI holds it across `export` and its JSON report). The
    lock file is removed on exit; one left by a killed process is reused and removed next time.

    Raises:
        BlockingIOError: another export (its process id is named) is writing `path`.
    """
    directory, name = os.path.split(os.path.abspath(path))
    lock = os.path.join(directory, f".{name}.lock")
    key = (lock, threading.get_ident())  # each thread adds and removes only its own key
    if key in _held:
        yield
        return
    fd = _acquire(lock, path)
    _held.add(key)
    try:
        yield
    finally:
        _held.discard(key)
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock)  # while still held: a waiter on this inode re-checks, starts over
        os.close(fd)


def _acquire(lock, path):
    """An fd holding `flock` on the file now named `lock`, its content our process id."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BlockingIOError(
                f"Another export (process {holder}) is writing '{path}' right now; this one "
                "stopped before converting. Wait for it to finish or choose another path."
            ) from None
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the holder removed it between our open and flock: start over


def write_atomically(path, content):
    """Writes `content` (bytes) so readers see the old file or the complete new one.

    Args:
        path: the destination.
        content: the bytes to write.
    """
    directory, name = os.path.split(os.path.abspath(path))
    _sweep(directory, name)
    mode = _existing_mode(path)
    fd = _unnamed(directory, 0o666)
    linked = False
    if fd is not None:
        try:
            _fill(fd, content, mode)
            linked = _link_in(fd, directory, name)
        finally:
            os.close(fd)
    if not linked:
        _write_named(directory, name, content, mode)
    _sync(directory)


def _link_in(fd, directory, name):
    """Gives the unnamed file `fd` the name `name`, replacing any file there; False if this
    system allows no way to name it."""
    target = os.path.join(directory, name)
    try:
        return _name(fd, target)
    except FileExistsError:
        temp = _temp_name(directory, name)  # linkat cannot replace: link beside, then rename
        if not _name(fd, temp):
            return False
        os.replace(temp, target)
        return True


def _name(fd, target):
    """Links the unnamed file `fd` at `target`: through /proc (any user), else with
    AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH). False if neither works here.

    Raises:
        FileExistsError: `target` exists.
    """
    try:
        os.link(f"/proc/self/fd/{fd}", target, follow_symlinks=True)
        return True
    except FileExistsError:
        raise
    except OSError:
        pass  # no /proc, or a kernel that refuses the /proc link (EXDEV in some sandboxes)
    if _libc.linkat(fd, b"", AT_FDCWD, os.fsencode(target), AT_EMPTY_PATH) == 0:
        return True
    if ctypes.get_errno() == errno.EEXIST:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target)
    return False


def _write_named(directory, name, content, mode):
    """The fallback without O_TMPFILE: a named temporary, renamed over the destination."""
    temp = _temp_name(directory, name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            _fill(fd, content, mode)
        finally:
            os.close(fd)
        os.replace(temp, os.path.join(directory, name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise


def _temp_name(directory, name):
    return os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fill(fd, content, mode):
    if mode is not None:
        os.fchmod(fd, mode)
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _existing_mode(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _sweep(directory, name):
    """Removes `.<name>.<pid>.<token>.tmp` files whose writing process no longer exists."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[0-9a-f]+\.tmp")
    for entry in os.listdir(directory):
        match = pattern.fullmatch(entry)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, entry))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return True


def _sync(directory):
    """Makes the new name durable: fsync of the directory."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
