"""The model file of a feedforward network: read and checked into plain data, or written from it.

This module knows the format, not the network: it reads a file into a
:class:`ModelData` (layer sizes, layer and cost names, dtype, weight and bias
arrays, metadata) and writes one back, needing only NumPy. Building a
``FeedforwardNetwork`` from it, and saving one, is
:mod:`nndl.engine.modelio` (``load``, ``save``), so that ``nndl.files``
depends on nothing in nndl but its errors.

Two formats, both carrying everything needed to rebuild the network:

- **JSON** (``.json``, the default): human-readable. Weights are written with
  Python's shortest round-tripping float repr, so a float64 network loads
  back bit for bit. Layout::

      {"format": "nndl-model", "version": 1,
       "sizes": [784, 30, 10], "activations": ["sigmoid", "sigmoid"],
       "cost": "quadratic", "dtype": "float64",
       "weights": [W1 as nested lists (30, 784), W2 (10, 30)],
       "biases": [b1 (30,), b2 (10,)],
       "metadata": {...}}

- **binary** (``.npz``): the same description (without weights and biases)
  as a JSON string in the member ``description``, and the arrays
  ``weights_0``, ``biases_0``, ``weights_1``, ... in NumPy's zip format;
  compact for large models.

``read_model`` also reads the JSON files written by the book's ``network2.save``
(keys sizes, weights, biases, cost; sigmoid neurons; biases as columns).

Loading trusts nothing in the file. JSON is parsed as data and ``.npz``
members are read through :func:`nndl.files.npz.read_npz` (no pickle). The
description is checked first, every field's type included, and the layer
sizes are bounded (``MAX_LAYERS``, ``MAX_PARAMETERS``) before anything is
allocated from them; then each array's name, dtype and shape are checked
before its data is read. Whatever is wrong with a file, ``read_model``
raises ``ModelFileError`` naming the file. Files are written atomically.
"""

import json
import os
import stat
import zipfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nndl.errors import ModelFileError
from nndl.files.atomic import atomic_writer
from nndl.files.header import brief, check_header, parse_json
from nndl.files.inputs import open_input
from nndl.files.npz import MemberSpec, read_npz

__all__ = ["ModelData", "read_model", "write_model", "is_conv_model", "ModelFileError", "MODEL_FORMAT",
           "MODEL_VERSION", "MAX_LAYERS", "MAX_PARAMETERS"]

MODEL_FORMAT = "nndl-model"
MODEL_VERSION = 1

#: The most layers of weights a model file may describe.
MAX_LAYERS = 1024

#: The most weights and biases a model file may describe in all (2 GiB of float64).
MAX_PARAMETERS = 1 << 28

#: The longest ``description`` member of an ``.npz`` model (its metadata included), in bytes.
_MAX_DESCRIPTION_BYTES = 1 << 24

#: Cost names used by the book's network2.save.
_BOOK_COSTS = {"CrossEntropyCost": "cross-entropy", "QuadraticCost": "quadratic"}

_ZIP_MAGIC = b"PK\x03\x04"

#: The largest model file read: MAX_PARAMETERS float64 values and room for the description.
MAX_MODEL_BYTES = 8 * MAX_PARAMETERS + 2 * _MAX_DESCRIPTION_BYTES
#: The largest JSON model file read whole into memory.
MAX_JSON_MODEL_BYTES = 1 << 30


@dataclass
class ModelData:
    """A feedforward network as a model file holds it: plain data, checked, with no engine attached.

    Attributes
    ----------
    sizes : list of int
        Neurons per layer, inputs first, e.g. ``[784, 30, 10]``.
    activations : list of str
        One activation name per layer of weights (``len(sizes) - 1``).
    cost : str
        The cost's name, e.g. ``"cross-entropy"``.
    dtype : str
        ``"float64"`` or ``"float32"``: the network's dtype.
    weights : list of numpy.ndarray
        Layer l's weights, shape ``(sizes[l + 1], sizes[l])``.
    biases : list of numpy.ndarray
        Layer l's biases, shape ``(sizes[l + 1],)``.
    metadata : dict
        JSON-serialisable notes kept with the model (training settings, accuracy).
    """

    sizes: list[int]
    activations: list[str]
    cost: str
    dtype: str
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    metadata: dict = field(default_factory=dict)


def _description(model: ModelData) -> dict:
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "sizes": list(model.sizes),
        "activations": list(model.activations),
        "cost": model.cost,
        "dtype": model.dtype,
        "metadata": model.metadata or {},
    }


def write_model(model: ModelData, path: str | os.PathLike, *, binary: bool | None = None) -> Path:
    """Write ``model`` to ``path`` atomically.

    Parameters
    ----------
    model : ModelData
    path : str or Path
        ``.npz`` selects the binary format, anything else JSON.
    binary : bool, optional
        Force the format regardless of the suffix.

    Returns
    -------
    Path

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    path = Path(path)
    if binary is None:
        binary = path.suffix.lower() == ".npz"
    description = _description(model)
    with atomic_writer(path) as f:
        if binary:
            arrays = {"description": np.array(json.dumps(description))}
            for l, (w, b) in enumerate(zip(model.weights, model.biases)):
                arrays[f"weights_{l}"] = np.ascontiguousarray(w)
                arrays[f"biases_{l}"] = np.ascontiguousarray(b)
            np.savez_compressed(f, allow_pickle=False, **arrays)
        else:
            description["weights"] = [w.tolist() for w in model.weights]
            description["biases"] = [b.tolist() for b in model.biases]
            f.write(json.dumps(description).encode("utf-8"))
    return path


def is_conv_model(path: str | os.PathLike) -> bool:
    """True when ``path`` is a PyTorch zip file -- a convolutional model of ``nndl.deep`` -- not an .npz or JSON one.

    Looks at the names inside the zip only; needs no PyTorch. A zip whose
    directory at the end is cut off (a truncated copy) is recognised by its
    first member, ``<name>/data.pkl`` in every file ``torch.save`` writes.
    Anything but a regular file is not one (and is never opened here).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(30 + 1024)
            if head[:4] == _ZIP_MAGIC and len(head) >= 30:
                name_length = int.from_bytes(head[26:28], "little")
                first = head[30:30 + name_length]
                if first == b"data.pkl" or first.endswith(b"/data.pkl"):
                    return True
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (OSError, ValueError, zipfile.BadZipFile, NotImplementedError, EOFError):
        return False                      # (a damaged archive: the reader that follows says what is wrong)


def read_model(path: str | os.PathLike, *, known_activations: Collection[str] | None = None,
               known_costs: Collection[str] | None = None) -> ModelData:
    """Read and check a model written by ``write_model`` (JSON or .npz) or by the book's ``network2.save``.

    Parameters
    ----------
    path : str or Path
    known_activations, known_costs : collection of str, optional
        The activation and cost names the caller can build; any other name is
        refused, before a weight is read. None accepts any name.

    Returns
    -------
    ModelData
        The weights and biases as stored (float64 from JSON, the stored floats
        from an .npz), each checked to fit ``dtype``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is not a model this version of nndl can read (a
        directory, unreadable, malformed in any way, or newer), with the reason.
    """
    path = Path(path)
    source = str(path)
    try:
        # Not a regular file (a directory, a FIFO), a symlink loop, a name too long: refused before opening.
        with open_input(path, "a model file", MAX_MODEL_BYTES, ModelFileError) as f:
            head = f.read(4)
            is_zip = head == _ZIP_MAGIC
            if not is_zip and os.fstat(f.fileno()).st_size > MAX_JSON_MODEL_BYTES:
                raise ModelFileError(f"{source} is larger than the {MAX_JSON_MODEL_BYTES // 2**30} GB a JSON model "
                                     "file can be (save large networks as .npz)")
            raw = None if is_zip else head + f.read()        # an .npz is read member by member instead
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as e:                        # an I/O error while reading
        raise ModelFileError(f"cannot read {source}: {(e.strerror or str(e)).lower()}") from None
    if is_zip and is_conv_model(path):
        raise ModelFileError(f"{source} is a convolutional network (chapter 6): load it with "
                             "nndl.deep.checkpoint.load_model")
    known = (known_activations, known_costs)
    if is_zip:
        description, weights, biases = _read_npz(path, source, known)
    else:
        description, weights, biases = _read_json(raw, source, known)
    dtype = np.dtype(description.get("dtype", "float64"))
    if any(np.abs(a).max(initial=0) > np.finfo(dtype).max for a in weights + biases):
        raise ModelFileError(f"{source}: parameters too large for {dtype}")
    return ModelData(sizes=description["sizes"], activations=description["activations"], cost=description["cost"],
                     dtype=dtype.name, weights=weights, biases=biases, metadata=description.get("metadata") or {})


# ---------------------------------------------------------------------------
# The description: every field checked for type and bounds
# ---------------------------------------------------------------------------


def _check_description(data, source, known):
    """Check a parsed description (everything but the arrays) and return its layer sizes.

    ``known`` is (activation names, cost names) the caller accepts, each None for any.

    Returns
    -------
    list of int
        ``sizes``: at least two, each positive, at most ``MAX_LAYERS`` layers
        and ``MAX_PARAMETERS`` weights and biases in all, checked before
        anything is allocated from them.
    """
    check_header(data, MODEL_FORMAT, MODEL_VERSION, source, error=ModelFileError)
    sizes = data.get("sizes")
    if (not isinstance(sizes, list) or not 2 <= len(sizes) <= MAX_LAYERS + 1
            or not all(type(s) is int and s > 0 for s in sizes)):
        raise ModelFileError(f"{source}: \"sizes\" must be a list of 2 to {MAX_LAYERS + 1} positive whole "
                             f"numbers, got {brief(sizes)}")
    parameters = sum(n_out * (n_in + 1) for n_in, n_out in zip(sizes, sizes[1:]))
    if parameters > MAX_PARAMETERS:
        raise ModelFileError(f"{source}: sizes {brief(sizes)} describe {parameters:,} weights and biases, "
                             f"more than the {MAX_PARAMETERS:,} nndl loads")
    layers = len(sizes) - 1
    activations = data.get("activations")
    if not isinstance(activations, list) or len(activations) != layers:
        raise ModelFileError(f"{source}: expected a list of {layers} activation names, got {brief(activations)}")
    known_activations, known_costs = known
    for name in activations:
        if not isinstance(name, str) or (known_activations is not None and name not in known_activations):
            raise ModelFileError(f"{source}: unknown activation {brief(name)}{_known(known_activations)}")
    cost = data.get("cost")
    if not isinstance(cost, str) or (known_costs is not None and cost not in known_costs):
        raise ModelFileError(f"{source}: unknown cost {brief(cost)}{_known(known_costs)}")
    dtype = data.get("dtype", "float64")
    if not isinstance(dtype, str) or dtype not in ("float64", "float32"):
        raise ModelFileError(f"{source}: unsupported dtype {brief(dtype)} (expected float64 or float32)")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ModelFileError(f"{source}: \"metadata\" must be a JSON object, got {brief(metadata)}")
    return sizes


def _known(names):
    """" (known: a, b, c)" after an unknown name, when the caller said which names it knows."""
    return "" if names is None else f" (known: {', '.join(names)})"


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------


def _read_json(raw, source, known):
    """(description, weights, biases) from a JSON model; arrays float64, shapes as the sizes say."""
    data = parse_json(raw, source, error=ModelFileError, kind=MODEL_FORMAT)
    if isinstance(data, dict) and "format" not in data and {"sizes", "weights", "biases", "cost"} <= set(data):
        data = _from_book(data, source)
    sizes = _check_description(data, source, known)
    weights, biases = data.get("weights"), data.get("biases")
    layers = len(sizes) - 1
    for key, value in (("weights", weights), ("biases", biases)):
        if not isinstance(value, list) or len(value) != layers:
            found = f"{len(value)}" if isinstance(value, list) else f"{type(value).__name__} {brief(value)}"
            raise ModelFileError(f"{source}: {layers} layers need {layers} arrays in \"{key}\", found {found}")
    weights = [_json_array(w, [(n_out, n_in)], source, f"weights[{l}]")
               for l, (w, n_in, n_out) in enumerate(zip(weights, sizes, sizes[1:]))]
    biases = [_json_array(b, [(n,), (n, 1)], source, f"biases[{l}]").reshape(n)     # (n, 1): the book's columns
              for l, (b, n) in enumerate(zip(biases, sizes[1:]))]
    return data, weights, biases


def _from_book(data, source):
    """Translate the book's network2.save layout (sigmoid layers, biases as columns)."""
    cost = data["cost"]
    if not isinstance(cost, str) or cost not in _BOOK_COSTS:
        raise ModelFileError(f"{source}: unknown cost {brief(cost)} in a network2 file "
                             f"(expected one of {', '.join(_BOOK_COSTS)})")
    sizes = data["sizes"]
    layers = len(sizes) - 1 if isinstance(sizes, list) else 0
    return {"format": MODEL_FORMAT, "version": 1, "sizes": sizes, "activations": ["sigmoid"] * layers,
            "cost": _BOOK_COSTS[cost], "dtype": "float64", "weights": data["weights"],
            "biases": data["biases"], "metadata": {"source": "network2.save"}}


def _json_array(value, shapes, source, what):
    """``value`` (nested JSON lists of numbers) as a float64 array of one of ``shapes``.

    The nesting is checked against the expected shape before anything is
    converted, so strings, booleans, objects, ragged or over-deep lists are
    refused in words rather than by whatever NumPy would make of them.
    """
    found = _nested_shape(value, max(len(s) for s in shapes))
    if found is None:
        raise ModelFileError(f"{source}: {what} is not an array of numbers")
    if found not in shapes:
        raise ModelFileError(f"{source}: {what} should have shape {' or '.join(map(str, shapes))}, "
                             f"found {found}")
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:                       # a JSON integer beyond float64's range
        raise ModelFileError(f"{source}: {what} holds a number too large for float64") from None
    if not np.all(np.isfinite(array)):
        raise ModelFileError(f"{source}: {what} contains inf or nan")
    return array


def _nested_shape(value, max_ndim):
    """The shape of ``value`` if it is a regular nest of lists of numbers (at most ``max_ndim`` deep), else None."""
    if type(value) in (int, float):             # exactly what JSON numbers parse to; bool is excluded
        return ()
    if not isinstance(value, list) or max_ndim == 0:
        return None
    if not value:
        return (0,)
    inner = {_nested_shape(v, max_ndim - 1) for v in value}
    if len(inner) != 1 or None in inner:
        return None
    return (len(value), *inner.pop())


# ---------------------------------------------------------------------------
# .npz
# ---------------------------------------------------------------------------


def _read_npz(path, source, known):
    """(description, weights, biases) from an ``.npz`` model.

    Two passes over the archive: the description first (bounded by
    ``_MAX_DESCRIPTION_BYTES``), then, once its sizes are checked, exactly
    the arrays it calls for, each with the shape it must have; read_npz
    refuses a member of any other dtype or shape before reading its data.
    """
    text = read_npz(path, {"description": "U"}, allow_extra=True, max_elements=1,
                    max_bytes=_MAX_DESCRIPTION_BYTES, error=ModelFileError, label=source)["description"]
    description = parse_json(str(text.reshape(-1)[0]) if text.size else "", f"{source}: the description",
                             error=ModelFileError)
    sizes = _check_description(description, source, known)
    members: dict[str, MemberSpec] = {"description": "U"}
    for l, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        members[f"weights_{l}"] = ("f", (n_out, n_in))
        members[f"biases_{l}"] = ("f", (n_out,))
    largest = max(n_out * n_in for n_in, n_out in zip(sizes, sizes[1:]))
    arrays = read_npz(path, members, max_elements=largest, max_bytes=max(8 * largest, _MAX_DESCRIPTION_BYTES),
                      error=ModelFileError, label=source)
    layers = len(sizes) - 1
    weights = [arrays[f"weights_{l}"] for l in range(layers)]
    biases = [arrays[f"biases_{l}"] for l in range(layers)]
    for l, (w, b) in enumerate(zip(weights, biases), start=1):
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ModelFileError(f"{source}: layer {l} parameters contain inf or nan")
    return description, weights, biases
