"""Fetching files over HTTP(S) with a known SHA-256, as a person would want it done: one file, or MNIST's four.

pooch's ``HTTPDownloader`` does the transfer (requests: redirects, proxies,
certificates; a tqdm progress bar on a terminal). Around it this module adds
what a download of a data set needs and pooch's own ``retrieve`` does not
give (measured: it left downloaded files private, 0600, and left its
temporary files behind when killed):

- an overall time limit per file, not only a socket timeout;
- a line on stderr saying what is being fetched from where;
- the data hashed on the way in, and the file put in place atomically only
  when its SHA-256 is the expected one -- a failed, late or mismatched
  download leaves nothing behind;
- failures described in a few words (HTTP 404, could not connect, no answer).

:func:`download_mnist` fetches the four official MNIST files this way, trying
public mirrors in turn.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from nndl.data import locate
from nndl.data.locate import ENV_VAR, FILES
from nndl.data.verify import GZ_SHA256
from nndl.errors import ConfigError, DownloadError
from nndl.files.atomic import atomic_writer

__all__ = ["download_file", "download_mnist", "on_terminal", "DEFAULT_MIRRORS", "DOWNLOAD_TIME_LIMIT",
           "SOCKET_TIMEOUT"]

#: Public mirrors of the official gzip files, tried in order.  The files are
#: verified by SHA-256, so a plain-http mirror is safe to use.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Seconds one file may take from one mirror in all (connecting, waiting, transferring); MNIST's
#: largest file is 9.9 MB, about a minute and a half at 100 kB/s.
DOWNLOAD_TIME_LIMIT = 300.0

#: Seconds to wait for a connection, or for the next bytes, before giving up on a mirror.
SOCKET_TIMEOUT = 30.0

_USER_AGENT = "nndl/0.1 (pooch)"
_CHUNK = 1 << 16




def on_terminal() -> bool:
    """Whether stderr is a terminal (where a progress bar belongs)."""
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


class _Sink:
    """The file object a download thread writes to: the atomic writer's file, hashed on the way.

    Once closed it refuses every write, and ``close`` waits for a write in
    progress, so after ``close`` returns the file is no longer touched and
    can be discarded, even if the thread is still waiting on the network.
    """

    def __init__(self, out):
        self._out = out
        self._lock = threading.Lock()
        self._open = True
        self.sha256 = hashlib.sha256()
        self.write_error: OSError | None = None      # the local file refusing data (disk full)

    def write(self, chunk: bytes) -> int:
        with self._lock:
            if not self._open:
                raise DownloadError("download abandoned")
            try:
                self._out.write(chunk)
            except OSError as exc:
                self.write_error = exc
                raise
            self.sha256.update(chunk)
        return len(chunk)

    def flush(self) -> None:
        """Nothing: pooch flushes after every chunk; the atomic writer flushes and syncs once, at the end."""

    def close(self) -> None:
        with self._lock:
            self._open = False


def _fetch(url: str, sink: _Sink, *, timeout: float, time_limit: float, progress: bool, label: str) -> None:
    """Download ``url`` into ``sink``, taking at most ``time_limit`` seconds in all.

    A socket timeout bounds each wait for the next bytes, not the whole
    transfer: a server that trickles a byte a second would hold it for
    hours. So the transfer (pooch's ``HTTPDownloader``: requests, redirects,
    proxies, the progress bar) runs in a daemon thread, and this thread waits
    for it until the deadline; then the sink is closed, so the transfer
    writes nothing more, and ends at its next write or socket timeout.

    Raises
    ------
    DownloadError
        Naming what went wrong (not the URL: the caller lists the URLs tried).
    OSError
        If the local file refused the data (e.g. the disk is full).
    """
    import pooch

    timeout = min(timeout, time_limit)
    bar = _progress_bar(label) if progress else None
    downloader = pooch.HTTPDownloader(progressbar=bar or False, chunk_size=_CHUNK, timeout=timeout,
                                      headers={"User-Agent": _USER_AGENT})
    failure: list[BaseException] = []

    def transfer():
        try:
            downloader(url, sink, None)
        except BaseException as exc:                 # handed to the waiting thread
            failure.append(exc)

    worker = threading.Thread(target=transfer, name=f"nndl download of {label}", daemon=True)
    worker.start()
    try:
        worker.join(time_limit)
    finally:                                         # on Ctrl-C too: the transfer must stop writing
        sink.close()
        if bar is not None:
            bar.close()
    if worker.is_alive():
        raise DownloadError(f"took longer than the time limit of {time_limit:g} s")
    if failure:
        if failure[0] is sink.write_error:
            raise failure[0]
        raise DownloadError(_describe(failure[0], timeout)) from None


def _progress_bar(label: str):
    """A tqdm bar on stderr for pooch to fill (it sets the total from Content-Length).

    pooch skips a bar that is false, and a tqdm bar is false until it has a
    total; this one is always true.
    """
    from tqdm import tqdm

    class Bar(tqdm):
        def __bool__(self):
            return True

    return Bar(desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)


def _describe(exc: BaseException, timeout: float) -> str:
    """Why a transfer failed, in a few words."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        return f"could not connect ({_root_cause(exc)})"
    if isinstance(exc, DownloadError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _root_cause(exc: BaseException) -> str:
    """The innermost cause of a chained exception, in words ("Connection refused", "timed out")."""
    for _ in range(20):                              # chains are short; never loop on a cycle
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def download_file(url: str, destination: Path, expected: str, *, timeout: float, time_limit: float,
                  progress: bool) -> None:
    """Fetch ``url`` to ``destination``, which is replaced only if the data's SHA-256 is ``expected``.

    The data goes to the atomic writer's temporary file and is hashed on the
    way; a failed, late or mismatched download leaves nothing behind.
    """
    print(f"downloading {destination.name} from {url} ...", file=sys.stderr, flush=True)
    with atomic_writer(destination) as out:
        sink = _Sink(out)
        _fetch(url, sink, timeout=timeout, time_limit=time_limit, progress=progress, label=destination.name)
        got = sink.sha256.hexdigest()
        if got != expected:
            raise DownloadError(f"checksum mismatch: expected SHA-256 {expected}, got {got}")


def download_mnist(
    directory: str | os.PathLike | None = None,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    checksums: Mapping[str, str] | None = None,
    progress: bool | None = None,
    *,
    timeout: float = SOCKET_TIMEOUT,
    time_limit: float = DOWNLOAD_TIME_LIMIT,
) -> Path:
    """Download the four official MNIST ``.gz`` files.

    For each file, the mirrors are tried in order (the one that worked goes
    first for the next file). A line on stderr says which file is being
    fetched from where, and a progress bar follows it on a terminal. Each
    file is written through nndl's atomic writer and hashed as it arrives;
    only when its SHA-256 matches is it renamed into place, so a failed or
    corrupted download never leaves a file under the official name. Files
    already present with the right checksum are not downloaded again.

    Parameters
    ----------
    directory : str or path-like, optional
        Where to put the files (created if needed).  Default :func:`nndl.data.locate.cache_dir`.
    mirrors : sequence of str
        Base URLs, tried in order for each file; the file name is appended.
    checksums : mapping of str to str, optional
        Expected SHA-256 (hex) of each file, keyed by file name
        (e.g. ``"train-images-idx3-ubyte.gz"``).  Default ``GZ_SHA256``.
    progress : bool, optional
        Show a progress bar on stderr.  Default: when stderr is a terminal.
    timeout : float
        Seconds to wait for a connection, or for the next bytes, before
        giving up on a mirror.
    time_limit : float
        Seconds one file may take from one mirror in all, however the
        server behaves, before giving up on that mirror.

    Returns
    -------
    pathlib.Path
        The directory holding the four files.

    Raises
    ------
    ConfigError
        If ``checksums`` lacks one of the files.
    DownloadError
        If some file could not be fetched with the right checksum from any
        mirror; the message names every URL tried and why it failed.
    OutputError
        If the files cannot be written into ``directory``.
    """
    import pooch

    directory = locate.cache_dir() if directory is None else Path(directory).expanduser()
    checksums = GZ_SHA256 if checksums is None else checksums
    progress = on_terminal() if progress is None else progress
    missing = [name + ".gz" for name in FILES.values() if name + ".gz" not in checksums]
    if missing:
        raise ConfigError(f"no checksum given for {', '.join(missing)}; checksums has {sorted(checksums)}")
    mirrors = list(mirrors)

    for name in FILES.values():
        filename = name + ".gz"
        expected = checksums[filename].lower()
        destination = directory / filename
        if destination.is_file() and pooch.file_hash(str(destination)) == expected:
            continue
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                download_file(url, destination, expected, timeout=timeout, time_limit=time_limit, progress=progress)
            except DownloadError as exc:
                failures.append(f"{url}: {exc}")
                continue
            mirrors.remove(mirror)                   # the mirror that worked goes first for the next files
            mirrors.insert(0, mirror)
            break
        else:
            tried = "; ".join(failures) if failures else "no mirrors were given"
            raise DownloadError(
                f"could not download {filename} into {directory} (tried {tried}). Check the internet "
                f"connection, or download the four MNIST files yourself and pass their directory with "
                f"--data DIR or ${ENV_VAR}"
            )
    return directory
