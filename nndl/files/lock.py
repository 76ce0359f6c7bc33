"""One process at a time for a file a long run rewrites: a second run into the same checkpoint refuses.

A checkpoint is replaced atomically after every epoch (``nndl.files.atomic``),
so a reader never sees half of one. Two processes training *into* the same
checkpoint are another matter: each would replace the other's epochs with its
own, and the run that resumes later would go on from whichever wrote last.
That happens easily with runs of hours: the same ``nndl reproduce`` command
started again in a second terminal, or a script that resumes a run which is
still going. ``sole_writer`` makes the second one stop at once, in one line
that names the process holding the file, before it trains anything.

The lock is the operating system's, on ``PATH.lock`` beside the file, so it
is released when the process ends, however it ends (Ctrl-C, ``kill -9``, a
crash): a run killed outright never leaves a stale lock. On POSIX it is
``flock``; the holder writes its process id into the lock file and removes
the file while still holding the lock when it is done, and a process that
locked a file which was removed meanwhile tries again, so no file is left
behind and no two processes ever hold one name. On Windows the ``filelock``
package does the same with the system's own locks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from nndl.errors import OutputError

__all__ = ["sole_writer", "lock_path", "holder"]


def lock_path(path: str | os.PathLike[str]) -> str:
    """The lock file of ``path``: ``PATH.lock`` beside it."""
    return f"{os.fspath(path)}.lock"


def holder(path: str | os.PathLike[str]) -> int | None:
    """The process id of the running process that holds the lock of ``path``, or None.

    Read only: the lock is never taken (taking it, even for a moment, could
    refuse a run starting then). The pid comes from the lock file, and it
    counts only if that process still runs, so the file of a holder killed
    outright says nothing. Always None on Windows, whose lock file holds no pid.
    """
    if os.name == "nt":
        return None
    try:
        with open(lock_path(path), "rb") as f:
            pid = int(f.read(32).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:
        return pid                             # e.g. another user's process: it exists
    return pid


@contextmanager
def sole_writer(path: str | os.PathLike[str], what: str = "training") -> Iterator[None]:
    """Hold the lock of ``path`` for the block; OutputError at once if another process holds it.

    ``what`` names the work in the message ("training"). A ``path`` whose
    folder does not exist is refused too. The lock belongs to one opening of
    the lock file, so a second ``sole_writer`` of the same path is refused
    even in the same process.
    """
    name = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {name}: the folder {folder} does not exist")
    if os.name == "nt":
        with _windows_lock(name, what):
            yield
        return
    fd = _posix_lock(name, what)
    try:
        yield
    finally:
        if fd is not None:
            _posix_unlock(name, fd)


def _refusal(name: str, what: str, holder: str) -> OutputError:
    by = f"process {holder}" if holder else "another process"
    return OutputError(f"{by} is already {what} into {name} (it holds {lock_path(name)}); two at once would "
                       "overwrite each other's epochs: wait for it to finish or stop it, then run this again to "
                       "go on from its last epoch")


def _posix_lock(name: str, what: str) -> int | None:
    """The open lock file of ``name``, locked; None where the file system has no locks (NFS without them)."""
    import fcntl
    lock = lock_path(name)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise OutputError(f"cannot lock {name} for {what}: {lock} cannot be created ({e.strerror or e})") \
                from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise _refusal(name, what, holder) from None
        except OSError:                          # no locks here (ENOLCK, ENOTSUP): train unguarded, as before
            _posix_unlock(name, fd)
            return None
        try:                                     # the file locked may have been removed by its last holder
            current = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return fd
        os.close(fd)


def _posix_unlock(name: str, fd: int) -> None:
    """Remove the lock file while still holding it, then let go."""
    try:
        os.unlink(lock_path(name))
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _windows_lock(name: str, what: str) -> Iterator[None]:
    from filelock import FileLock, Timeout
    lock = FileLock(lock_path(name), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise _refusal(name, what, "") from None
    except OSError as e:
        raise OutputError(f"cannot lock {name} for {what}: {lock_path(name)} cannot be created ({e.strerror or e})") \
            from None
    try:
        yield
    finally:
        lock.release()
