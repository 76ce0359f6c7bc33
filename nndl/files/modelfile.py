"""Saving and loading networks.

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

- **binary** (``.npz``): the same description as a JSON string plus the
  arrays, in NumPy's zip format; compact for large models.

``load`` also reads the JSON files written by the book's ``network2.save``
(keys sizes, weights, biases, cost; sigmoid neurons; biases as columns).

Loading never executes code from the file: JSON is parsed as data and
``.npz`` files are read with ``allow_pickle=False``. Every shape and name is
checked before a network is built. Files are written atomically.
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from nndl.engine.activations import ACTIVATIONS
from nndl.engine.costs import COSTS
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import ModelFileError
from nndl.files.atomic import atomic_writer

__all__ = ["save", "load", "ModelFileError", "MODEL_FORMAT", "MODEL_VERSION"]

MODEL_FORMAT = "nndl-model"
MODEL_VERSION = 1

#: Cost names used by the book's network2.save.
_BOOK_COSTS = {"CrossEntropyCost": "cross-entropy", "QuadraticCost": "quadratic"}


def _description(net, metadata):
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "sizes": list(net.sizes),
        "activations": [layer.name for layer in net.layers],
        "cost": net.cost.name,
        "dtype": net.dtype.name,
        "metadata": metadata or {},
    }


def save(net, path, metadata=None, binary=None):
    """Write ``net`` to ``path`` atomically.

    Parameters
    ----------
    net : FeedforwardNetwork
    path : str or Path
        ``.npz`` selects the binary format, anything else JSON.
    metadata : dict, optional
        JSON-serialisable notes kept with the model (training settings, accuracy).
    binary : bool, optional
        Force the format regardless of the suffix.

    Returns
    -------
    Path
    """
    path = Path(path)
    if binary is None:
        binary = path.suffix.lower() == ".npz"
    description = _description(net, metadata)
    with atomic_writer(path) as f:
        if binary:
            arrays = {"description": np.array(json.dumps(description))}
            for l, (w, b) in enumerate(zip(net.weights, net.biases)):
                arrays[f"weights_{l}"] = np.ascontiguousarray(w)
                arrays[f"biases_{l}"] = np.ascontiguousarray(b)
            np.savez_compressed(f, **arrays)
        else:
            description["weights"] = [w.tolist() for w in net.weights]
            description["biases"] = [b.tolist() for b in net.biases]
            f.write(json.dumps(description).encode("utf-8"))
    return path


def load(path):
    """Read a network written by ``save`` (JSON or .npz) or by the book's ``network2.save``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is not a model this version of nndl can read, with the reason.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, not a model file") from None
    except PermissionError:
        raise ModelFileError(f"cannot read {path}: permission denied") from None
    if raw[:2] == b"PK":
        description, weights, biases = _read_npz(raw, path)
    else:
        description, weights, biases = _read_json(raw, path)
    return _build(description, weights, biases, path)


def _read_json(raw, path):
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path} is not a model file: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} is not a model file: expected a JSON object")
    if "format" not in data and {"sizes", "weights", "biases", "cost"} <= set(data):
        data = _from_book(data, path)
    for key in ("weights", "biases"):
        if not isinstance(data.get(key), list):
            raise ModelFileError(f"{path}: missing or malformed \"{key}\" (expected a list of arrays)")
    weights = [_as_array(w, path, f"weights[{i}]") for i, w in enumerate(data["weights"])]
    biases = [_as_array(b, path, f"biases[{i}]") for i, b in enumerate(data["biases"])]
    return data, weights, biases


def _from_book(data, path):
    """Translate the book's network2.save layout (sigmoid layers, biases as columns)."""
    cost = data["cost"]
    if cost not in _BOOK_COSTS:
        raise ModelFileError(f"{path}: unknown cost {cost!r} in a network2 file "
                             f"(expected one of {', '.join(_BOOK_COSTS)})")
    sizes = data["sizes"]
    if not isinstance(sizes, list):
        raise ModelFileError(f"{path}: \"sizes\" must be a list of layer sizes")
    return {"format": MODEL_FORMAT, "version": 1, "sizes": sizes, "activations": ["sigmoid"] * (len(sizes) - 1),
            "cost": _BOOK_COSTS[cost], "dtype": "float64", "weights": data["weights"],
            "biases": data["biases"],  # (n, 1) columns; _build flattens them
            "metadata": {"source": "network2.save"}}


def _as_array(value, path, what):
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelFileError(f"{path}: {what} is not an array of numbers") from None
    if not np.all(np.isfinite(a)):
        raise ModelFileError(f"{path}: {what} contains inf or nan")
    return a


def _read_npz(raw, path):
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ModelFileError(f"{path} is not a readable .npz model file ({e})") from None
    if "description" not in arrays:
        raise ModelFileError(f"{path}: no model description in this .npz file")
    try:
        description = json.loads(str(arrays["description"]))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: the model description is not valid JSON ({e})") from None
    if not isinstance(description, dict):
        raise ModelFileError(f"{path}: the model description must be a JSON object")
    n = len(description.get("sizes", [])) - 1
    try:
        weights = [arrays[f"weights_{l}"] for l in range(n)]
        biases = [arrays[f"biases_{l}"] for l in range(n)]
    except KeyError as e:
        raise ModelFileError(f"{path}: missing array {e.args[0]}") from None
    for l, (w, b) in enumerate(zip(weights, biases)):
        if not np.issubdtype(w.dtype, np.floating) or not np.issubdtype(b.dtype, np.floating):
            raise ModelFileError(f"{path}: layer {l + 1} parameters are not floating-point numbers")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ModelFileError(f"{path}: layer {l + 1} parameters contain inf or nan")
    return description, weights, biases


def _build(description, weights, biases, path):
    if description.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not an nndl model file (no \"format\": \"{MODEL_FORMAT}\")")
    version = description.get("version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: malformed format version {version!r}")
    if version > MODEL_VERSION:
        raise ModelFileError(f"{path} was written in model format version {version}, newer than this nndl "
                             f"understands (version {MODEL_VERSION}); upgrade nndl to load it")
    sizes = description.get("sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)):
        raise ModelFileError(f"{path}: \"sizes\" must be a list of at least two positive integers, got {sizes!r}")
    activations = description.get("activations")
    if not isinstance(activations, list) or len(activations) != len(sizes) - 1:
        raise ModelFileError(f"{path}: expected {len(sizes) - 1} activation names, got {activations!r}")
    for name in activations:
        if name not in ACTIVATIONS:
            raise ModelFileError(f"{path}: unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})")
    cost = description.get("cost")
    if cost not in COSTS:
        raise ModelFileError(f"{path}: unknown cost {cost!r} (known: {', '.join(COSTS)})")
    dtype = description.get("dtype", "float64")
    if dtype not in ("float64", "float32"):
        raise ModelFileError(f"{path}: unsupported dtype {dtype!r}")
    if len(weights) != len(sizes) - 1 or len(biases) != len(sizes) - 1:
        raise ModelFileError(f"{path}: {len(sizes) - 1} layers need {len(sizes) - 1} weight matrices and bias "
                             f"vectors, found {len(weights)} and {len(biases)}")
    for l, (w, b) in enumerate(zip(weights, biases), start=1):
        if w.shape != (sizes[l], sizes[l - 1]) or b.reshape(-1).shape != (sizes[l],):
            raise ModelFileError(f"{path}: layer {l} should have weights of shape {(sizes[l], sizes[l - 1])} and "
                                 f"{sizes[l]} biases, found {w.shape} and {b.shape}")
    try:
        net = FeedforwardNetwork(sizes, activations=activations, cost=cost, dtype=np.dtype(dtype), seed=0)
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}") from None
    net.set_parameters(weights, [b.reshape(-1) for b in biases])
    net.metadata = description.get("metadata") or {}
    return net
