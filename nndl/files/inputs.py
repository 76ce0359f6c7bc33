"""Opening a file the user named (a model, a checkpoint) for reading, after checking what it is.

``open(path)`` of a FIFO waits for a writer forever, of a device reads
without end, and of a symlink loop or an over-long name fails with an
``OSError`` whose message a person cannot act on. ``check_input`` looks
first, with ``os.stat`` (which never blocks), and refuses in one line,
naming the path:

- anything that is not a regular file (a directory, FIFO, socket, device);
- a file larger than the limit of its kind (``max_bytes``);
- a symbolic-link loop (``ELOOP``) or a name longer than the file system
  allows (``ENAMETOOLONG``), and other names that cannot be looked up.

A missing file stays ``FileNotFoundError`` and an unreadable one
``PermissionError``: the command line reports both in one line already.
``open_input`` then opens the file without blocking even if it was swapped
for a FIFO after the check, and checks the opened file once more.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from nndl.errors import FileFormatError

__all__ = ["check_input", "open_input"]

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def _check_mode(st: os.stat_result, source: str, what: str, max_bytes: int,
                error: type[FileFormatError]) -> int:
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise error(f"{source} is {kind}, not {what}")
    if st.st_size > max_bytes:
        raise error(f"{source} is {_size_text(st.st_size)}, more than the {_size_text(max_bytes)} "
                    f"any {what} can be")
    return st.st_size


def check_input(path: str | os.PathLike[str], what: str, max_bytes: int,
                error: type[FileFormatError] = FileFormatError) -> int:
    """Check that ``path`` is a regular file of at most ``max_bytes`` bytes, without opening it.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file should be, for messages: "an nndl model file".
    max_bytes : int
        The largest file of this kind that makes sense.
    error : type
        The ``FileFormatError`` subclass to raise (``ModelFileError`` for models).

    Returns
    -------
    int
        The file's size in bytes.

    Raises
    ------
    FileNotFoundError, PermissionError
        If there is no such file, or it may not be looked at.
    error
        For anything else: not a regular file, too large, a symlink loop, a
        name too long, a path through a file.
    """
    source = os.fspath(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as e:
        raise error(f"cannot read {source}: {_reason(e)}") from None
    except ValueError as e:                           # a NUL byte in the name
        raise error(f"cannot read {source!r}: {e}") from None
    return _check_mode(st, source, what, max_bytes, error)


def open_input(path: str | os.PathLike[str], what: str, max_bytes: int,
               error: type[FileFormatError] = FileFormatError) -> BinaryIO:
    """``check_input``, then the file opened for reading in binary (the caller closes it)."""
    check_input(path, what, max_bytes, error)
    source = os.fspath(path)
    nonblock = getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | nonblock)
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as e:
        raise error(f"cannot read {source}: {_reason(e)}") from None
    try:
        _check_mode(os.fstat(fd), source, what, max_bytes, error)     # swapped since the check?
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop?)"
    if e.errno == errno.ENAMETOOLONG:
        return "the file name is longer than the file system allows"
    if e.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a directory"
    return (e.strerror or str(e)).lower()
