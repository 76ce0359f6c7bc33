"""Checkpoints of the NumPy engine: everything needed to resume training to exactly the same result.

One ``.npz`` archive, written atomically, never pickled::

    checkpoint      JSON text: {"format": "nndl-numpy-checkpoint", "version": 1,
                    "network": NetworkConfig, "metadata": {...},
                    "training": {"epoch", "eta", "rng" (the generator's state),
                                 "history" (JSON text), "best": bool, "velocities": bool}}
    params_l        [W | b] of layer l, shape (sizes[l+1], sizes[l] + 1)
    velocities_l    momentum runs: the optimiser's velocity of layer l, same shape
    best_l          runs that keep their best epoch: its parameters

The JSON is read first (bounded); the arrays only once their exact shapes
follow from the network it declares, so a small file cannot ask for much
memory. The chapter 6 engine has its own format (``nndl.deep.checkpoint``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import ConfigError, ModelFileError
from nndl.files.atomic import atomic_writer
from nndl.files.header import check_header, parse_json
from nndl.files.inputs import check_input
from nndl.files.modelfile import MAX_PARAMETERS
from nndl.files.npz import read_npz
from nndl.training.config import NetworkConfig

__all__ = ["save_checkpoint", "load_checkpoint", "is_numpy_checkpoint", "FORMAT", "VERSION"]

FORMAT = "nndl-numpy-checkpoint"
VERSION = 1
#: The JSON part (mostly the History) of any real checkpoint is far smaller.
_MAX_JSON_BYTES = 64 * 2**20
#: The largest checkpoint: parameters, velocities and best parameters of the largest model, and the JSON.
MAX_BYTES = 3 * 8 * MAX_PARAMETERS + _MAX_JSON_BYTES


def save_checkpoint(path: str | os.PathLike[str], net: FeedforwardNetwork, state: dict[str, Any],
                    metadata: dict[str, Any] | None = None) -> str:
    """Write ``net`` and the training ``state`` (from the NumPy engine and ``fit``) to ``path`` atomically.

    ``state`` holds "epoch", "eta", "rng", "history" (JSON text), and
    optionally "best" and "velocities" (lists of arrays shaped like
    ``net.params``).
    """
    training = {"epoch": int(state["epoch"]), "eta": float(state["eta"]), "rng": state["rng"],
                "history": state["history"], "best": "best" in state, "velocities": "velocities" in state}
    header = {"format": FORMAT, "version": VERSION, "network": NetworkConfig.of(net).to_dict(),
              "metadata": metadata or {}, "training": training}
    arrays = {"checkpoint": np.array(json.dumps(header))}
    for l, p in enumerate(net.params):
        arrays[f"params_{l}"] = np.ascontiguousarray(p)
    for name in ("velocities", "best"):
        for l, p in enumerate(state.get(name) or ()):
            arrays[f"{name}_{l}"] = np.ascontiguousarray(p)
    with atomic_writer(path) as f:
        np.savez(f, allow_pickle=False, **arrays)
    return str(path)


def is_numpy_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zip archive with a ``checkpoint`` member (without reading its data)."""
    import stat
    import zipfile
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):         # never open a FIFO or a device to look
            return False
        with zipfile.ZipFile(path) as archive:
            return "checkpoint.npy" in archive.namelist()
    except (OSError, ValueError, zipfile.BadZipFile, NotImplementedError, EOFError):
        return False


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[FeedforwardNetwork, dict[str, Any], dict[str, Any]]:
    """(net, training state, metadata) from a checkpoint written by ``save_checkpoint``.

    The training state is what ``nndl.training.train(..., resume=state)``
    takes. Raises ModelFileError naming what is wrong with a damaged file.
    """
    source = str(path)
    check_input(path, "an nndl checkpoint", MAX_BYTES, ModelFileError)     # a FIFO, a symlink loop: one line
    text = read_npz(path, {"checkpoint": "U"}, allow_extra=True, max_elements=1, max_bytes=_MAX_JSON_BYTES,
                    error=ModelFileError, label=source)["checkpoint"]
    header = parse_json(str(text.reshape(-1)[0]) if text.size else "", f"{source}: the checkpoint's description",
                        error=ModelFileError)
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: the checkpoint's description must be a JSON object")
    check_header(header, FORMAT, VERSION, source, error=ModelFileError)
    training, metadata = header.get("training"), header.get("metadata", {})
    if not isinstance(training, dict) or not isinstance(metadata, dict):
        raise ModelFileError(f"{source}: the checkpoint's training state is incomplete or damaged")
    try:
        config = NetworkConfig.from_dict(header.get("network"), source)
    except ConfigError as e:
        raise ModelFileError(f"{source}: the network it describes is not valid: {e}") from None
    shapes = [(n_out, n_in + 1) for n_in, n_out in zip(config.sizes, config.sizes[1:])]
    names = ["params"] + [name for name in ("velocities", "best") if training.get(name) is True]
    members: dict[str, Any] = {"checkpoint": "U"}
    for name in names:
        for l, shape in enumerate(shapes):
            members[f"{name}_{l}"] = ("f", shape)
    largest = max(a * b for a, b in shapes)
    arrays = read_npz(path, members, max_elements=largest, max_bytes=max(8 * largest, _MAX_JSON_BYTES),
                      error=ModelFileError, label=source)
    dtype = np.dtype(config.dtype)
    loaded = {name: [arrays[f"{name}_{l}"].astype(dtype, copy=False) for l in range(len(shapes))] for name in names}
    for name, values in loaded.items():
        if not all(np.all(np.isfinite(a)) for a in values):
            raise ModelFileError(f"{source}: the checkpoint's {name} contain inf or nan")
    net = FeedforwardNetwork(config.sizes, activations=list(config.activations), cost=config.cost, dtype=dtype,
                             seed=0)
    net.restore_params(loaded["params"])
    net.init = config.init                       # as recorded in the run's History
    net.metadata = metadata
    state = {key: training.get(key) for key in ("epoch", "eta", "rng", "history")}
    if any(value is None for value in state.values()) or not isinstance(state["history"], str):
        raise ModelFileError(f"{source}: the checkpoint's training state is incomplete or damaged")
    for name in ("velocities", "best"):
        if name in loaded:
            state[name] = loaded[name]
    return net, state, metadata
