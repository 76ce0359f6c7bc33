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

Several networks of one architecture trained together (``nndl.deep.multi``)
share one checkpoint of their own format, so that the K members resume
together or not at all:

    format      "nndl-conv-members"
    version     1
    header      JSON: {"network": ConvNetConfig as a dict, "members": K, "metadata": {...}}
    parameters  [state_dict of member 0, ..., of member K-1]
    training    {"epoch": last finished epoch of any member, "histories": [JSON per
                member], "bests": [state_dict or None per member], "seeds": [int per
                member], "members": [{"eta", "optimizer", "shuffle_rng",
                "dropout_rng"} per member]}

Every tensor is checked against the architecture the header declares (names,
shapes, finite values) before the network is built -- each member's in a
members file. Files are written atomically: a crash or Ctrl-C while saving
leaves the previous file whole.
"""

import json
import pickle
import zipfile
from pathlib import Path

from nndl.deep._torch import torch
from nndl.deep.config import ConvNetConfig
from nndl.errors import ConfigError, ModelFileError
from nndl.files.atomic import atomic_writer
from nndl.files.header import check_header, parse_json
from nndl.files.inputs import check_input

__all__ = ["save_model", "load_model", "save_checkpoint", "load_checkpoint", "load_tensors", "FORMAT", "VERSION",
           "save_members_checkpoint", "load_members_checkpoint", "MEMBERS_FORMAT", "MEMBERS_VERSION"]

FORMAT = "nndl-conv"
VERSION = 1
#: The checkpoint of several networks trained together.
MEMBERS_FORMAT = "nndl-conv-members"
MEMBERS_VERSION = 1
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
    check_input(path, what, MAX_BYTES, ModelFileError)     # a directory, a FIFO, a symlink loop: refused unopened
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


def _read(path, content=None, kind=FORMAT, version=VERSION):
    """(content, ConvNetConfig, header) of a model or checkpoint file (``content``: already loaded).

    ``kind`` and ``version``: the format expected (one network, or several
    trained together); a file of the other says which function reads it.
    """
    source = str(path)
    if content is None:
        content = load_tensors(path)
    found = content.get("format")
    if kind == FORMAT and found == MEMBERS_FORMAT:
        raise ModelFileError(f"{source} holds several networks trained together (nndl.deep.multi), not one; "
                             "read it with nndl.deep.checkpoint.load_members_checkpoint")
    if kind == MEMBERS_FORMAT and found == FORMAT:
        raise ModelFileError(f"{source} holds one network, not several trained together; read it with "
                             "nndl.deep.checkpoint.load_checkpoint and resume it with nndl.deep.train.train")
    check_header({"format": found, "version": content.get("version")}, kind, version, source, error=ModelFileError)
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
    return content, config, header


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
    content, config, header = _read(path, content)
    return _network(content.get("parameters"), config, header.get("metadata", {}), str(path), device)


def _network(parameters, config, metadata, source, device, what="parameters"):
    """A ConvNetwork of ``config`` holding ``parameters`` (a state_dict, checked first), with ``.metadata``."""
    from nndl.deep.network import ConvNetwork
    net = ConvNetwork(config, device=device, seed=0)
    _check_state(parameters, net, source, what)
    net.load_state_dict(parameters)
    net.metadata = metadata
    return net


def load_checkpoint(path, device="cpu"):
    """(net, training_state, metadata) from a checkpoint written by ``save_checkpoint``."""
    content, config, header = _read(path)
    metadata = header.get("metadata", {})
    state = content.get("training")
    if not isinstance(state, dict):
        raise ModelFileError(f"{path} is a model, not a checkpoint: it holds no training state to resume")
    net = _network(content.get("parameters"), config, metadata, str(path), device)
    if "best" in state:
        _check_state(state["best"], net, str(path), "the best epoch's parameters")
    return net, state, metadata


def save_members_checkpoint(path, nets, training_state, metadata=None):
    """Write K networks of one architecture trained together, and the state of their training, atomically.

    ``training_state`` is what ``nndl.deep.multi`` keeps (see the module
    docstring); each member's parameters are stored apart, on the CPU.
    """
    header = {"network": nets[0].config.to_dict(), "members": len(nets), "metadata": metadata or {}}
    return _write(path, {"format": MEMBERS_FORMAT, "version": MEMBERS_VERSION, "header": json.dumps(header),
                         "parameters": [_cpu_state(net.state_dict()) for net in nets], "training": training_state})


def load_members_checkpoint(path, device="cpu"):
    """(nets, training_state, metadata) from a checkpoint written by ``save_members_checkpoint``.

    Every member's parameters (and its best epoch's, where kept) are checked
    against the architecture the header declares before anything is built.

    Raises
    ------
    FileNotFoundError
    ModelFileError
        For anything that is not a valid checkpoint of several networks, saying why.
    """
    source = str(path)
    content, config, header = _read(path, kind=MEMBERS_FORMAT, version=MEMBERS_VERSION)
    metadata = header.get("metadata", {})
    k, parameters, state = header.get("members"), content.get("parameters"), content.get("training")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ModelFileError(f"{source}: the header must say how many networks it holds (a whole number >= 1)")
    if not isinstance(parameters, list) or len(parameters) != k:
        raise ModelFileError(f"{source}: the header declares {k} networks, but the file holds parameters for "
                             f"{len(parameters) if isinstance(parameters, list) else 'none'}")
    if not isinstance(state, dict):
        raise ModelFileError(f"{source} holds no training state to resume")
    nets = [_network(p, config, metadata, source, device, f"network {i}'s parameters")
            for i, p in enumerate(parameters)]
    bests = state.get("bests", [None] * k) if k > 1 or "best" not in state else [state["best"]]
    engine_states = state.get("members")
    if not isinstance(bests, list) or len(bests) != k or not isinstance(engine_states, list) \
            or len(engine_states) != k or not all(isinstance(s, dict) for s in engine_states):
        raise ModelFileError(f"{source}: the training state does not hold one entry per network ({k})")
    for i, (net, best) in enumerate(zip(nets, bests)):
        if best is not None:
            _check_state(best, net, source, f"network {i}'s best epoch's parameters")
    return nets, state, metadata
