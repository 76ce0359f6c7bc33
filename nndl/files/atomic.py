"""Writing files atomically: a reader sees the old file or the new one, never half of one.

Every file nndl writes (models, histories, figures, idx files, expanded data
sets, downloads) goes through ``atomic_writer``:

1. the data goes to a temporary file in the target's own directory (so the
   final rename never crosses file systems), named
   ``.{name}.{pid}.{8 hex digits}.tmp`` after the target and the writing
   process, created with ``os.open(..., O_CREAT | O_EXCL, 0o666)`` so the
   process's umask applies exactly as it does for ``open()``; when the
   target exists, the new file gets the old file's permission bits;
2. when the block ends without an exception the file is flushed and
   fsynced, renamed over the target with ``os.replace`` (atomic on POSIX and
   Windows), and the directory is fsynced so the rename itself survives a
   crash; on an exception (Ctrl-C included) the temporary file is removed
   and the target is untouched.

A target that is a symbolic link stays a link: the file it points to is the
one replaced. Hard links to the old file keep the old contents, and the new
file belongs to the writing user (as with any write-by-rename).

A writer killed outright (``kill -9``, power loss) cannot remove its
temporary file. The next write of the same target removes such leftovers:
every ``.{name}.{pid}.{hex}.tmp`` whose writing process no longer runs on
this machine, or that has not changed for ``STALE_AFTER_S`` seconds (its pid
since reused, or written from another machine on a shared file system).
Temporary files of writers still running are left alone.

Errors name the path the caller gave, never the temporary file: a full disk
while writing ``net.npz`` is an ``OutputError`` (an ``OSError``) with
``errno.ENOSPC`` and ``filename == "net.npz"``.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, TypeGuard

from nndl.errors import NndlError, OutputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_writer", "STALE_AFTER_S"]

#: A leftover temporary file is removed once it has not changed for this many seconds, even if a
#: process with its writer's pid is running (the pid may have been reused).
STALE_AFTER_S = 3600


class atomic_writer:
    """Context manager giving a binary file object that replaces ``path`` on success.

    Parameters
    ----------
    path : str or Path
        The file to write. Missing parent directories are created. If it is a
        symbolic link, the file it points to is replaced and the link kept.

    Raises
    ------
    OutputError
        If the file cannot be written (no permission, disk full, ``path`` is
        a directory, ...). It is an ``OSError`` whose ``filename`` is ``path``
        as given and whose ``errno`` is the system's.

    Examples
    --------
    >>> with atomic_writer("out.bin") as f:          # doctest: +SKIP
    ...     f.write(data)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __enter__(self) -> BinaryIO:
        try:
            target = Path(os.path.realpath(self.path))      # through symlinks: the link itself stays
            if target.is_symlink():
                raise OSError(errno.ELOOP, "Too many levels of symbolic links")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                old_mode = os.stat(target).st_mode
            except FileNotFoundError:
                old_mode = None
            if old_mode is not None and stat.S_ISDIR(old_mode):
                raise OSError(errno.EISDIR, "Is a directory")
            _remove_leftovers(target.parent, target.name)
            self._target = target
            self._tmp, fd = _create_temporary(target)
        except OSError as e:
            raise self._error(e) from None
        try:
            if old_mode is not None:
                os.chmod(self._tmp, stat.S_IMODE(old_mode))
            self._file = os.fdopen(fd, "wb")
        except BaseException as e:
            os.close(fd)
            _unlink(self._tmp)
            raise self._error(e) if isinstance(e, OSError) else e from None
        return self._file

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        replaced = False
        try:
            try:
                if exc_type is None:
                    self._file.flush()
                    os.fsync(self._file.fileno())
            finally:
                self._file.close()                       # may fail too: data can still be buffered
            if exc_type is None:
                os.replace(self._tmp, self._target)
                replaced = True
                _fsync_directory(self._target.parent)
        except OSError as e:
            if exc_type is None:
                raise self._error(e) from None
            # Otherwise the block's own exception, below, is the one to report.
        finally:
            if not replaced:
                _unlink(self._tmp)
        if _is_write_error(exc):
            raise self._error(exc) from None
        return False

    def _error(self, e: OSError) -> OutputError:
        """``e`` as an OutputError naming the caller's path (not the temporary file)."""
        return OutputError(e.errno, e.strerror or str(e), str(self.path))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` (bytes) to ``path`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (str, UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _create_temporary(target: Path) -> tuple[Path, int]:
    """Create and open a new temporary file next to ``target``; returns (path, fd).

    ``O_EXCL`` makes the creation fail rather than reuse an existing file, so
    two writers never share one; mode 0o666 is narrowed by the umask, as for
    any file a program creates.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def _remove_leftovers(directory: Path, name: str) -> None:
    """Remove the temporary files of ``name`` left in ``directory`` by writers that are gone."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            if stale or not _running(int(match.group(1))):
                os.unlink(entry.path)
        except OSError:
            pass                                     # removed by someone else meanwhile, or not ours to remove


def _running(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this machine.

    On Windows, where ``os.kill(pid, 0)`` would stop the process, assume it
    does: leftovers are then removed only by age.
    """
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True                                  # e.g. PermissionError: another user's process
    return True


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows cannot open a directory)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, getattr(errno, "ENOTSUP", errno.EINVAL)):
            raise                                    # some file systems cannot sync a directory: fine
    finally:
        os.close(fd)


def _is_write_error(exc: BaseException | None) -> TypeGuard[OSError]:
    """Whether ``exc``, raised inside the block, is the system refusing a write to the file.

    Such errors (ENOSPC, EDQUOT, EFBIG, EIO) come from ``write()`` without a
    file name; they are reported under the target's name.
    """
    return (isinstance(exc, OSError) and not isinstance(exc, NndlError)
            and exc.errno is not None and exc.filename is None)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
