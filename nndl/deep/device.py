"""Where a network trains: the device, and the CPU settings that make small mini-batches fast.

The book's network3 had a global switch, ``GPU = True``; here the device is
an argument of everything that needs one: ``"auto"`` (a CUDA GPU when there
is one, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
"""

import contextlib
import os
from typing import Any

from nndl.deep._torch import torch
from nndl.errors import ConfigError

__all__ = ["resolve_device", "fast_kernels", "set_threads", "DEVICES"]

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(spec="auto"):
    """The ``torch.device`` that ``spec`` names.

    Parameters
    ----------
    spec : str or torch.device
        "auto", "cpu", "cuda", "cuda:N", or a torch.device.

    Raises
    ------
    ConfigError
        For an unknown name, or a CUDA device when none is available.
    """
    if isinstance(spec, torch.device):
        device = spec
    else:
        name = str(spec).strip().lower()
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"unknown device {spec!r}; choose auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this PyTorch was built without CUDA" if torch.version.cuda is None
                   else "no CUDA GPU is visible")
            raise ConfigError(f"device {spec!r} asked for, but {why}; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r} asked for, but there are only {torch.cuda.device_count()} CUDA "
                              "device(s)")
    elif device.type != "cpu":
        raise ConfigError(f"device {spec!r} is not supported; choose auto, cpu, cuda or cuda:N")
    return device


#: Mini-batches up to this size train faster with PyTorch's own CPU convolutions than with oneDNN's.
SMALL_BATCH = 32


@contextlib.contextmanager
def fast_kernels(device, mini_batch_size=None):
    """The kernels that train the book's networks fastest on ``device``, for the ``with`` block.

    On the CPU with small mini-batches (up to SMALL_BATCH; None counts as
    small), PyTorch's own convolution kernels rather than oneDNN's (mkldnn):
    measured on one core for the two-conv-pool network at the book's
    mini-batch of 10, 4.9 ms a step instead of 6.6 ms; at 100, oneDNN was
    faster and is kept (``benchmarks/bench_chapter6.py``). The previous
    setting is restored afterwards. On a GPU, cuDNN's autotuner is on.
    """
    if device.type == "cpu":
        mkldnn: Any = torch.backends.mkldnn.enabled
        small = mini_batch_size is None or mini_batch_size <= SMALL_BATCH
        torch.backends.mkldnn.enabled = bool(mkldnn) and not small  # type: ignore[assignment]  # (a ContextProp in the stubs)
        try:
            yield
        finally:
            torch.backends.mkldnn.enabled = mkldnn
    else:
        cudnn: Any = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = cudnn


def set_threads(threads=None):
    """Use ``threads`` CPU threads for PyTorch's operations.

    None means the ``OMP_NUM_THREADS`` of the environment when it is a whole
    number of at least 1 (the usual way to give each of several processes one
    core), else one per core, at most 8. Returns the number set. With several
    training processes on one machine (seeds in parallel), give each one
    thread: two threads fighting another process for two cores run many
    times slower.
    """
    if threads is None:
        threads = _environment_threads() or min(
            8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"the number of threads must be a whole number of at least 1, got {threads!r}")
    torch.set_num_threads(threads)
    return threads


def _environment_threads():
    """OMP_NUM_THREADS as a whole number of at least 1, or None (unset, or not such a number)."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) >= 1 else None
