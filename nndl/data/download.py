"""Fetching one file over HTTP(S) with a known SHA-256, as a person would want it done.

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
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

from nndl.errors import DownloadError
from nndl.files.atomic import atomic_writer

__all__ = ["download_file", "on_terminal"]

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
    bar = _progress_bar(label) if progress else False
    downloader = pooch.HTTPDownloader(progressbar=bar, chunk_size=_CHUNK, timeout=timeout,
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
        if bar:
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
