"""Writing files atomically: a reader sees the old file or the new one, never half of one."""

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_writer"]


class atomic_writer:
    """Context manager giving a binary file object that replaces ``path`` on success.

    The data goes to a temporary file in the same directory, which is flushed,
    synced and renamed over ``path`` only when the block ends without an
    exception (os.replace is atomic on POSIX and Windows). On an exception,
    Ctrl-C included, the temporary file is removed and ``path`` is untouched.
    """

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        directory = self.path.parent if str(self.path.parent) else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        # mkstemp makes the file private (0600); give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        self._file = os.fdopen(fd, "wb")
        return self._file

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)
        return False


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path, text):
    """Write ``text`` (str, UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
