"""Stopping training on Ctrl-C or SIGTERM, reliably.

Python turns Ctrl-C into a ``KeyboardInterrupt`` raised wherever the main
thread happens to be. Raised inside a destructor, a weakref callback or some
callbacks from C code, it is only printed ("Exception ignored in ...") and
training goes on as if nothing happened. The handler installed here also
remembers that a stop was asked for, and the training loop
(``nndl.training.fit``) calls ``check()`` every 250 mini-batches and after
each epoch, which raises the ``KeyboardInterrupt`` again if the first one was
lost. The loop catches it, keeps the finished epochs and saves what was asked.

Used by the command line (``nndl.cli.main``); a library user's own program
keeps Python's usual Ctrl-C, and ``check()`` is then a no-op.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["install", "check"]

_requested = False


def _stop(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> Callable[[], None]:
    """Handle Ctrl-C and SIGTERM (kill, a job scheduler) as a remembered ``KeyboardInterrupt``.

    A SIGINT that is ignored (``nohup``, a background job) or handled by someone
    else stays so. Returns a function that puts the previous handlers back and forgets
    the request; in a thread other than the main one, where handlers cannot be
    set, nothing is installed.
    """
    global _requested
    _requested = False
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | signal.Handlers | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(signum)
        if signum == signal.SIGINT and current is not signal.default_int_handler:
            continue
        previous[signum] = signal.signal(signum, _stop)

    def restore() -> None:
        global _requested
        _requested = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return restore


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was asked for (its first one may have been lost)."""
    if _requested:
        raise KeyboardInterrupt
