"""Files for convolutional networks: a model, or a checkpoint to resume training from.

One format for both, a PyTorch zip file (``torch.save``) holding only
tensors, numbers and JSON text -- never pickled objects -- read back with
``torch.load(..., weights_only=True)``, so loading a file cannot run code::

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
together or not at all::

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

import io
import json
import os
import pickle
import pickletools
import zipfile
import zlib
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

    Before ``torch.load`` reads a byte of tensor data, the file is checked
    from its zip directory and its pickled structure alone (``_inspect``):
    the sizes its members declare, bounded by the architecture its header
    declares; no zip bomb; every member's CRC-32. Every way of failing
    becomes ModelFileError naming ``what`` the file should have been; a dict
    without a "format" entry is refused too.
    """
    source = str(path)
    path = Path(path)
    check_input(path, what, MAX_BYTES, ModelFileError)     # a directory, a FIFO, a symlink loop: refused unopened
    if not zipfile.is_zipfile(path):                     # nndl writes only zip files; refuse the rest unread
        from nndl.files.modelfile import is_conv_model
        if is_conv_model(path):
            raise ModelFileError(f"{source} is not {what}: a truncated or damaged PyTorch file (its zip directory "
                                 "is missing)")
        raise ModelFileError(f"{source} is not {what} (not a PyTorch zip file)")
    _inspect(path, source, what)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(f"{source} holds objects other than tensors and numbers, which nndl will not load "
                             "(loading them could run code)") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{source} is not {what} (not a readable PyTorch file: {reason})") from None
    if not isinstance(content, dict) or "format" not in content:
        raise ModelFileError(f"{source} is a PyTorch file but not {what} (no format header)")
    return content


# ---------------------------------------------------------------------------
# Looking at a PyTorch zip file before torch.load: sizes, CRCs, structure
# ---------------------------------------------------------------------------

#: The pickled structure (the header and the History as text included) of any file nndl writes is far smaller.
_MAX_PICKLE_BYTES = 64 * 2**20
#: ... and of far fewer than this many pickle operations (objects, memo entries).
_MAX_PICKLE_OPS = 1_000_000
#: torch.save stores its members uncompressed; a member declaring more than this many times its compressed
#: size (and more than _BOMB_FLOOR bytes) is a zip bomb.
_MAX_RATIO = 16
_BOMB_FLOOR = 2**20
#: Room in a file beyond the tensors its architecture needs: generator states, small tensors, the pickle.
_SLACK_BYTES = 64 * 2**20
#: Copies of the parameters a checkpoint may hold per network: the parameters, the best epoch's, the velocities.
_COPIES = 3
#: The most networks a file of several trained together may declare.
_MAX_MEMBERS = 1024
_ITEM_BYTES = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
               "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}


class _Refused(Exception):
    """Something in the pickle other than tensors, numbers, text, lists and dicts."""


class _Storage:
    def __init__(self, key, item_bytes, numel):
        self.key, self.item_bytes, self.numel = key, item_bytes, numel


class _TensorSkeleton:
    """What a tensor in the file declares (its storage and shape), with no data."""

    def __init__(self, storage, offset, size):
        self.storage, self.offset, self.size = storage, offset, tuple(size)

    @property
    def numel(self):
        n = 1
        for v in self.size:
            n *= v
        return n


class _Dict(dict):
    """An OrderedDict (a state_dict) as unpickled here: a dict that takes attributes (its _metadata)."""


def _rebuild_tensor(storage, offset, size, stride, *args):
    if not isinstance(storage, _Storage) or not isinstance(offset, int) or not isinstance(size, tuple) \
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size):
        raise _Refused("a tensor that is not made of a storage, an offset and a shape")
    return _TensorSkeleton(storage, offset, size)


def _rebuild_parameter(data, *args):
    return data


def _encode(text, encoding="latin1"):                  # bytes, as pickle protocol 2 writes them
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused("bytes in an unknown encoding")
    return text.encode("latin1")


class _Skeleton(pickle.Unpickler):
    """Unpickles torch.save's ``data.pkl`` into dicts, lists, text, numbers and tensor skeletons.

    ``find_class`` hands out only the stand-ins above, never a real class or
    function, so no code of the file's choosing can run, and no storage is
    allocated: a tensor is its declared shape and storage key.
    """

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return _Dict
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if (module, name) == ("_codecs", "encode"):
            return _encode
        if (module, name) == ("torch", "Size"):
            return tuple
        if module == "torch" and name in _ITEM_BYTES:
            return ("storage type", _ITEM_BYTES[name])
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], tuple)
                and len(pid[1]) == 2 and pid[1][0] == "storage type" and isinstance(pid[2], str)
                and isinstance(pid[4], int) and not isinstance(pid[4], bool) and pid[4] >= 0):
            raise _Refused("a storage that is not a plain one of numbers")
        key = pid[2]
        storages = self.storages                          # type: ignore[attr-defined]
        if key not in storages:
            storages[key] = _Storage(key, pid[1][1], pid[4])
        return storages[key]


def _parameter_shapes(config):
    """name -> shape of every tensor of a ConvNetwork of ``config`` (its state_dict), without building it."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (layer, (in_shape, _)) in enumerate(zip(config.layers, config.shapes())):
        if layer["type"] == "conv-pool":
            fh, fw = layer["filter"]
            shapes[f"layers.{i}.weight"] = (layer["filters"], in_shape[0], fh, fw)
            shapes[f"layers.{i}.bias"] = (layer["filters"],)
        else:
            n_in = 1
            for v in in_shape:
                n_in *= v
            shapes[f"layers.{i}.weight"] = (layer["n_out"], n_in)
            shapes[f"layers.{i}.bias"] = (layer["n_out"],)
    return shapes


def _mb(n):
    return f"{n / 2**20:,.1f} MB"


def _inspect(path, source, what):
    """Refuse a PyTorch zip file from its directory and structure alone, before any tensor is read.

    - a member declaring more than ``_MAX_RATIO`` times its compressed size: a zip bomb;
    - ``data.pkl`` (the structure) larger than ``_MAX_PICKLE_BYTES``, or holding anything but
      dicts, lists, text, numbers and tensors (read with ``_Skeleton``: nothing is built);
    - a storage whose record is missing or not exactly its declared size;
    - members declaring more bytes in all than the architecture in the header needs
      (``_COPIES`` copies of its parameters per network, plus ``_SLACK_BYTES``);
    - a member whose data does not match its CRC-32.
    """
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            infos = archive.infolist()
            for info in infos:
                if info.file_size > _BOMB_FLOOR and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
                    raise ModelFileError(f"{source}: member {info.filename} declares {_mb(info.file_size)} from "
                                         f"{_mb(info.compress_size)} compressed -- a zip bomb, not {what}")
            pickles = [info for info in infos if info.filename == "data.pkl" or info.filename.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ModelFileError(f"{source} is not {what} (a zip file, but not one torch.save wrote)")
            pkl = pickles[0]
            if pkl.file_size > _MAX_PICKLE_BYTES:
                raise ModelFileError(f"{source}: its structure (data.pkl) declares {_mb(pkl.file_size)}, more than "
                                     f"the {_mb(_MAX_PICKLE_BYTES)} of any {what}")
            prefix = pkl.filename[:-len("data.pkl")]
            structure = archive.read(pkl)
            _count_operations(structure, source, what)
            unpickler = _Skeleton(io.BytesIO(structure))
            unpickler.storages = {}                        # type: ignore[attr-defined]
            try:
                skeleton = unpickler.load()
            except _Refused as e:
                raise ModelFileError(f"{source} holds objects other than tensors and numbers ({e}), which nndl "
                                     "will not load (loading them could run code)") from None
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                    KeyError, RecursionError, MemoryError) as e:
                raise ModelFileError(f"{source} is not {what} (its structure, data.pkl, is damaged: "
                                     f"{type(e).__name__})") from None
            by_name = {info.filename: info for info in infos}
            stored = 0
            for storage in unpickler.storages.values():  # type: ignore[attr-defined]
                record = by_name.get(f"{prefix}data/{storage.key}")
                needed = storage.numel * storage.item_bytes
                if record is None or record.file_size != needed:
                    found = "missing" if record is None else f"{record.file_size:,} bytes"
                    raise ModelFileError(f"{source} is damaged: tensor data {storage.key} should be {needed:,} "
                                         f"bytes, found {found}")
                stored += needed
            declared = sum(info.file_size for info in infos)
            bound = _bound(skeleton, source, what, os.path.getsize(path))
            if declared > bound:
                raise ModelFileError(f"{source} declares {_mb(declared)} of data, more than the {_mb(bound)} the "
                                     f"network in its header can need: not {what}")
            for info in infos:                             # zipfile checks the CRC-32 at the end of each member
                with archive.open(info) as member:
                    while member.read(2**20):
                        pass
    except zipfile.BadZipFile as e:
        reason = str(e).splitlines()[0] if str(e) else "damaged"
        raise ModelFileError(f"{source} is damaged ({reason}): not {what}") from None
    except (OSError, EOFError, zlib.error, NotImplementedError, UnicodeDecodeError) as e:
        # (a damaged header can name an unsupported compression or zip version, or a member name that is not text)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{source} is damaged or truncated ({reason}): not {what}") from None
    _check_declared_parameters(skeleton, source)


def _count_operations(structure, source, what):
    """Refuse a pickle of more than ``_MAX_PICKLE_OPS`` operations before it is unpickled.

    Each one-byte operation can make an object of some 100 bytes (an empty
    dict), so a few megabytes of them would take gigabytes; nndl's own files
    hold a few thousand (their long texts, the History, are one operation each).
    """
    count = 0
    try:
        for count, _ in enumerate(pickletools.genops(structure), 1):
            if count > _MAX_PICKLE_OPS:
                break
    except ValueError as e:                                # an unknown opcode, a truncated argument
        raise ModelFileError(f"{source} is not {what} (its structure, data.pkl, is damaged: {e})") from None
    if count > _MAX_PICKLE_OPS:
        raise ModelFileError(f"{source}: its structure (data.pkl) holds more than {_MAX_PICKLE_OPS:,} objects; "
                             f"not {what}")


def _header_config(skeleton):
    """(ConvNetConfig, members) the skeleton's header declares, or None when it declares none that is valid."""
    if not isinstance(skeleton, dict) or skeleton.get("format") not in (FORMAT, MEMBERS_FORMAT):
        return None
    try:
        header = json.loads(skeleton["header"])
        config = ConvNetConfig.from_dict(header.get("network"), "header")
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, ConfigError):
        return None                                      # _read says what is wrong, in its words
    k = header.get("members", 1) if skeleton.get("format") == MEMBERS_FORMAT else 1
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_MEMBERS:
        return None
    return config, k


def _bound(skeleton, source, what, file_bytes):
    """The most bytes of data a file with this structure may declare."""
    declared = _header_config(skeleton)
    if declared is None:                                  # not a network's file (predictions), or a bad header
        return max(2 * file_bytes, 0) + _SLACK_BYTES
    config, k = declared
    n = sum(_numel(shape) for shape in _parameter_shapes(config).values())
    return _COPIES * k * n * 8 + _SLACK_BYTES


def _numel(shape):
    n = 1
    for v in shape:
        n *= v
    return n


def _check_declared_parameters(skeleton, source):
    """Refuse parameters whose names and shapes are not those of the architecture the header declares.

    From the skeleton alone, before a network is built: a small file whose
    header declares a network of hundreds of millions of parameters is
    refused here, not after building it.
    """
    declared = _header_config(skeleton)
    if declared is None:
        return
    config, _ = declared
    expected = _parameter_shapes(config)
    parameters = skeleton.get("parameters")
    for i, state in enumerate(parameters if isinstance(parameters, list) else [parameters]):
        if not isinstance(state, dict):
            continue                                      # _read and _check_state say what is wrong
        what = "parameters" if not isinstance(parameters, list) else f"network {i}'s parameters"
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or extra:
            raise ModelFileError(f"{source}: {what} do not match the architecture it declares "
                                 f"(missing {missing or 'none'}, unexpected {extra or 'none'})")
        for name, tensor in state.items():
            shape = tuple(tensor.size) if isinstance(tensor, _TensorSkeleton) else None
            if shape != expected[name]:
                raise ModelFileError(f"{source}: {name} has shape {shape}, but the architecture needs "
                                     f"{expected[name]}")


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
