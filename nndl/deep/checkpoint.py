"""Files for convolutional networks: a model, or a checkpoint to resume training from.

One format for both, a PyTorch zip file (``torch.save``) holding only
tensors, numbers and JSON text -- never pickled objects -- read back with
``torch.load(..., weights_only=True)``, so loading a file cannot run code:

    format      "nndl-conv"
    version     1
    header      JSON: {"network": ConvNetConfig as a dict, "metadata": {...}}
    parameters  {"layers.0.weight": tensor, ...}: the network's state_dict
    training    (checkpoints only) {"epoch": last finished epoch, "eta": float,
                "history": JSON, "optimizer": BookSGD's state_dict (learning rate,
                velocities), "shuffle_rng": tensor, "dropout_rng": tensor,
                "best": state_dict or absent, "dropout_rngs": [tensor per rank]
                when written by a distributed run}. Checkpoints of nndl 0.1 have
                "velocities": [tensors] instead of "optimizer"; they still resume.

Every tensor is checked against the architecture the header declares (names,
shapes, finite values) before the network is built. Files are written
atomically: a crash or Ctrl-C while saving leaves the previous file whole.
"""

import json
import os
import pickle
import zipfile
from pathlib import Path

from nndl.deep._torch import torch
from nndl.deep.config import ConvNetConfig
from nndl.errors import ConfigError, ModelFileError
from nndl.files.atomic import atomic_writer
from nndl.files.header import check_header, parse_json

__all__ = ["save_model", "load_model", "save_checkpoint", "load_checkpoint", "load_tensors", "FORMAT", "VERSION"]

FORMAT = "nndl-conv"
VERSION = 1
#: No convolutional network of nndl's comes near this; a bigger file is not one of ours.
MAX_BYTES = 8 * 2**30


def _cpu_state(state):
    return {name: tensor.detach().to("cpu").clone() for name, tensor in state.items()}


def _write(path, content):
    with atomic_writer(path) as f:
        torch.save(content, f)
    return str(path)


def save_model(net, path, metadata=None):
    """Write ``net`` (a ConvNetwork) and JSON-ready ``metadata`` to ``path`` atomically; returns the path."""
    header = {"network": net.config.to_dict(), "metadata": metadata or {}}
    return _write(path, {"format": FORMAT, "version": VERSION, "header": json.dumps(header),
                         "parameters": _cpu_state(net.state_dict())})


def save_checkpoint(path, net, training_state, metadata=None):
    """Write the network and the state of its training (see ``nndl.deep.train``) atomically."""
    header = {"network": net.config.to_dict(), "metadata": metadata or {}}
    return _write(path, {"format": FORMAT, "version": VERSION, "header": json.dumps(header),
                         "parameters": _cpu_state(net.state_dict()), "training": training_state})


def load_tensors(path, what="an nndl convolutional model"):
    """The dict a ``torch.save`` file of tensors, numbers and text holds, never unpickling objects.

    Every way of failing becomes ModelFileError naming ``what`` the file
    should have been; a dict without a "format" entry is refused too.
    """
    source = str(path)
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{source} is a directory, not a model file")
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", source)
    if os.path.getsize(path) > MAX_BYTES:
        raise ModelFileError(f"{source} is larger than {MAX_BYTES // 2**30} GB: not {what}")
    if not zipfile.is_zipfile(path):                     # nndl writes only zip files; refuse the rest unread
        raise ModelFileError(f"{source} is not {what} (not a PyTorch zip file)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelFileError(f"{source} holds objects other than tensors and numbers, which nndl will not load "
                             f"(loading them could run code): {str(e).splitlines()[0]}") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{source} is not {what} (not a readable PyTorch file: {reason})") from None
    if not isinstance(content, dict) or "format" not in content:
        raise ModelFileError(f"{source} is a PyTorch file but not {what} (no format header)")
    return content


def _read(path, content=None):
    """(content, ConvNetConfig, metadata) of a model or checkpoint file (``content``: already loaded)."""
    source = str(path)
    if content is None:
        content = load_tensors(path)
    check_header({"format": content.get("format"), "version": content.get("version")}, FORMAT, VERSION, source,
                 error=ModelFileError)
    header = content.get("header")
    if not isinstance(header, str):
        raise ModelFileError(f"{source}: the header must be JSON text")
    header = parse_json(header, source, error=ModelFileError)
    if not isinstance(header, dict) or not isinstance(header.get("metadata", {}), dict):
        raise ModelFileError(f"{source}: the header must be an object with 'network' and 'metadata'")
    try:
        config = ConvNetConfig.from_dict(header.get("network"), source)
    except ConfigError as e:
        raise ModelFileError(f"{source}: the network it describes is not valid: {e}") from None
    return content, config, header.get("metadata", {})


def _check_state(state, net, source, what="parameters"):
    """Refuse a state_dict that does not match ``net`` exactly: names, shapes, finite values."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{source}: {what} must be a set of named tensors")
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{source}: {what} do not match the architecture it declares "
                             f"(missing {missing or 'none'}, unexpected {extra or 'none'})")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelFileError(f"{source}: {name} has shape {tuple(tensor.shape)}, but the architecture needs "
                                 f"{tuple(expected[name].shape)}")
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{source}: {name} must hold finite floating-point numbers")


def load_model(path, device="cpu", content=None):
    """A ConvNetwork from a model or checkpoint file, with ``.metadata`` (a dict) from the file.

    ``content``: the file's dict when ``load_tensors`` has read it already.

    Raises
    ------
    FileNotFoundError
    ModelFileError
        For anything that is not a valid nndl convolutional model, saying why.
    """
    return _network(*_read(path, content), str(path), device)


def _network(content, config, metadata, source, device):
    from nndl.deep.network import ConvNetwork
    net = ConvNetwork(config, device=device, seed=0)
    _check_state(content.get("parameters"), net, source)
    net.load_state_dict(content["parameters"])
    net.metadata = metadata
    return net


def load_checkpoint(path, device="cpu"):
    """(net, training_state, metadata) from a checkpoint written by ``save_checkpoint``."""
    content, config, metadata = _read(path)
    state = content.get("training")
    if not isinstance(state, dict):
        raise ModelFileError(f"{path} is a model, not a checkpoint: it holds no training state to resume")
    net = _network(content, config, metadata, str(path), device)
    if "best" in state:
        _check_state(state["best"], net, str(path), "the best epoch's parameters")
    return net, state, metadata
