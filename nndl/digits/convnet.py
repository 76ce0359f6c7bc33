"""A chapter 6 network read and run with NumPy alone: the default model of the handwriting commands.

``nndl predict``, ``nndl read`` and ``nndl serve`` need a trained network. The
package ships one (:data:`DEFAULT_MODEL`): a convolutional network of the
book's ladder, trained by ``nndl reproduce``, its training command and test
accuracy in its metadata. So that it works right after ``pip install nndl``,
without PyTorch, it is stored as an ``.npz`` file of plain arrays and run
here in NumPy -- inference only (training is :mod:`nndl.deep`'s).

The file: a member ``description`` holding JSON::

    {"format": "nndl-conv-model", "version": 1,
     "network": <ConvNetConfig.to_dict()>, "metadata": {...}}

and, for each layer l (0, 1, ...), ``weights_l`` and ``biases_l`` in
PyTorch's layouts: (filters, channels, fh, fw) and (filters,) for a conv-pool
layer, (n_out, n_in) and (n_out,) for the others. Like every model file of
nndl it is read without trusting it: no pickle, the description checked
first (it must be a valid ``ConvNetConfig``), then each array's dtype and
shape before its data (:func:`nndl.files.npz.read_npz`).

The arithmetic is :class:`nndl.deep.ConvNetwork`'s at inference (tested
equal to 1e-5): each conv-pool layer convolves its input with its filters
("valid", stride 1), adds the shared bias, max-pools over non-overlapping
regions and applies its activation; fully connected layers compute
a = sigma(x W^T + b); the softmax layer gives log-probabilities. "book"
dropout scales a layer's inputs by 1 - p at inference; "inverted" dropout
changes nothing.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nndl.deep.config import ConvNetConfig
from nndl.errors import ConfigError, ModelFileError
from nndl.files.atomic import atomic_write_bytes
from nndl.files.header import parse_json
from nndl.files.npz import MemberSpec, read_npz

__all__ = ["NumpyConvNetwork", "read_conv_model", "write_conv_model", "is_numpy_conv_model", "default_model_path",
           "FORMAT", "DEFAULT_MODEL"]

FORMAT = "nndl-conv-model"
VERSION = 1

#: The file name of the model shipped in this package (see :func:`default_model_path`).
DEFAULT_MODEL = "default-model.npz"

#: The longest description member read (the network and its metadata), in bytes.
_MAX_DESCRIPTION_BYTES = 1 << 20


def default_model_path() -> Path:
    """The path of the convolutional network shipped with nndl (``nndl/digits/default-model.npz``)."""
    return Path(str(resources.files("nndl.digits").joinpath(DEFAULT_MODEL)))


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))           # 1 / (1 + e^-z) without overflow warnings


def _linear(z: np.ndarray) -> np.ndarray:
    return z


_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"relu": _relu, "sigmoid": _sigmoid,
                                                               "tanh": np.tanh, "linear": _linear}


class NumpyConvNetwork:
    """A trained chapter 6 network, for inference in NumPy.

    Parameters
    ----------
    config : ConvNetConfig
    weights : list of ndarray
        One per layer, in PyTorch's layouts (see the module docstring), float32.
    biases : list of ndarray
        One per layer.
    metadata : dict, optional

    The four are kept as attributes of the same names.
    """

    def __init__(self, config: ConvNetConfig, weights: list[np.ndarray], biases: list[np.ndarray],
                 metadata: dict[str, Any] | None = None) -> None:
        if len(weights) != len(config.layers) or len(biases) != len(config.layers):
            raise ConfigError(f"a network of {len(config.layers)} layers needs as many weights and biases, got "
                              f"{len(weights)} and {len(biases)}")
        for (w_shape, b_shape), w, b in zip(_parameter_shapes(config), weights, biases):
            if tuple(w.shape) != w_shape or tuple(b.shape) != b_shape:
                raise ConfigError(f"weights {tuple(w.shape)} and biases {tuple(b.shape)} do not fit a layer of "
                                  f"weights {w_shape} and biases {b_shape}")
        self.config = config
        self.weights = [np.asarray(w, dtype=np.float32) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]
        self.metadata = dict(metadata or {})

    def log_probabilities(self, images: np.ndarray) -> np.ndarray:
        """Log-probabilities (n, n_classes), float32, of images (n, c, h, w) or (n, c*h*w) in [0, 1]."""
        a = np.asarray(images, dtype=np.float32).reshape(-1, *self.config.input_shape)
        for layer, w, b in zip(self.config.layers, self.weights, self.biases):
            if layer["p_dropout"] and self.config.dropout == "book":
                a = a * np.float32(1.0 - layer["p_dropout"])
            if layer["type"] == "conv-pool":
                a = _ACTIVATIONS[layer["activation"]](_max_pool(_convolve(a, w) + b[:, None, None], layer["pool"]))
            else:
                z = a.reshape(a.shape[0], -1) @ w.T + b                        # (n, n_out)
                if layer["type"] == "softmax":
                    z = z - z.max(axis=1, keepdims=True)
                    a = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
                else:
                    a = _ACTIVATIONS[layer["activation"]](z)
        return a

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The most probable class of each image: (n,) int64."""
        return self.log_probabilities(images).argmax(axis=1)

    def n_parameters(self) -> int:
        return sum(w.size + b.size for w, b in zip(self.weights, self.biases))

    def __repr__(self) -> str:
        return f"NumpyConvNetwork({self.config.describe()})"


def _convolve(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (n, c, h, w) convolved with filters w (f, c, fh, fw), "valid", stride 1: (n, f, h - fh + 1, w - fw + 1)."""
    windows = sliding_window_view(x, w.shape[2:], axis=(2, 3))              # (n, c, h', w', fh, fw)
    z = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3]))               # (n, h', w', f)
    return np.ascontiguousarray(z.transpose(0, 3, 1, 2))


def _max_pool(z: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    """Max over non-overlapping (ph, pw) regions of z (n, f, h, w): (n, f, h // ph, w // pw); the rest is cut."""
    ph, pw = pool
    n, f, h, w = z.shape
    z = z[:, :, :h // ph * ph, :w // pw * pw]
    return z.reshape(n, f, h // ph, ph, w // pw, pw).max(axis=(3, 5))


def _parameter_shapes(config: ConvNetConfig) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(weight shape, bias shape) of each layer of ``config``."""
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    for (n_in, _out), layer in zip(config.shapes(), config.layers):
        if layer["type"] == "conv-pool":
            fh, fw = layer["filter"]
            shapes.append(((layer["filters"], n_in[0], fh, fw), (layer["filters"],)))
        else:
            size = int(np.prod(n_in))
            shapes.append(((layer["n_out"], size), (layer["n_out"],)))
    return shapes


def write_conv_model(path: str | os.PathLike[str], config: ConvNetConfig, weights: list[np.ndarray],
                     biases: list[np.ndarray], metadata: dict[str, Any] | None = None) -> Path:
    """Write a network's parameters and JSON-ready ``metadata`` to ``path`` (.npz) atomically; returns the path.

    ``weights``/``biases`` as :class:`NumpyConvNetwork` takes them; from a trained
    ``nndl.deep.ConvNetwork`` net: ``[layer.weight.detach().cpu().numpy() for layer in net.layers]`` and
    the same for ``bias`` (see :func:`from_torch`).
    """
    import io
    network = NumpyConvNetwork(config, weights, biases, metadata)           # checks the shapes
    description = json.dumps({"format": FORMAT, "version": VERSION, "network": config.to_dict(),
                              "metadata": network.metadata})
    arrays: dict[str, np.ndarray] = {"description": np.array(description)}
    for l, (w, b) in enumerate(zip(network.weights, network.biases)):
        arrays[f"weights_{l}"], arrays[f"biases_{l}"] = w, b
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def from_torch(net: Any, metadata: dict[str, Any] | None = None) -> NumpyConvNetwork:
    """The NumPy copy of a trained ``nndl.deep.ConvNetwork`` (float32), for :func:`write_conv_model`."""
    weights = [layer.weight.detach().to("cpu").float().numpy().copy() for layer in net.layers]
    biases = [layer.bias.detach().to("cpu").float().numpy().copy() for layer in net.layers]
    return NumpyConvNetwork(net.config, weights, biases, metadata)


def _read_description(path: str | os.PathLike[str], source: str) -> Any:
    """The parsed JSON of the file's ``description`` member (ModelFileError when there is none, or it is damaged)."""
    text = read_npz(path, {"description": "U"}, allow_extra=True, max_elements=1, max_bytes=_MAX_DESCRIPTION_BYTES,
                    error=ModelFileError, label=source)["description"]
    return parse_json(str(text.reshape(-1)[0]) if text.size else "", f"{source}: the description",
                      error=ModelFileError)


def _description(path: str | os.PathLike[str], source: str) -> dict[str, Any] | None:
    """The file's description when it is an ``.npz`` whose description says nndl-conv-model, else None.

    Anything but a regular file (a FIFO, a device) is not one, and is never opened here.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        data = _read_description(path, source)
    except (OSError, ValueError):                      # ModelFileError is a ValueError
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def is_numpy_conv_model(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an ``.npz`` convolutional model of this module (only its description is read)."""
    return _description(path, str(path)) is not None


def read_conv_model(path: str | os.PathLike[str]) -> NumpyConvNetwork:
    """The network in an ``.npz`` file written by :func:`write_conv_model`, checked before its arrays are read.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ModelFileError
        For anything else that is not such a model, saying why.
    """
    source = str(path)
    if not Path(path).exists():
        raise FileNotFoundError(path)
    data = _read_description(path, source)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{source} is not a convolutional model of nndl's .npz format")
    if data.get("version") != VERSION:
        raise ModelFileError(f"{source} is version {data.get('version')!r} of the {FORMAT} format; this nndl "
                             f"reads version {VERSION}")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{source}: its metadata is not a JSON object")
    try:
        config = ConvNetConfig.from_dict(data.get("network"))
    except (ConfigError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{source}: its network cannot be built ({e})") from None
    shapes = _parameter_shapes(config)
    members: dict[str, MemberSpec] = {"description": "U"}
    for l, (w_shape, b_shape) in enumerate(shapes):
        members[f"weights_{l}"], members[f"biases_{l}"] = ("f", w_shape), ("f", b_shape)
    largest = max(int(np.prod(w)) for w, _ in shapes)
    arrays = read_npz(path, members, max_elements=max(largest, 1), max_bytes=max(8 * largest, _MAX_DESCRIPTION_BYTES),
                      error=ModelFileError, label=source)
    weights = [arrays[f"weights_{l}"] for l in range(len(shapes))]
    biases = [arrays[f"biases_{l}"] for l in range(len(shapes))]
    for l, (w, b) in enumerate(zip(weights, biases), start=1):
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ModelFileError(f"{source}: layer {l} parameters contain inf or nan")
    return NumpyConvNetwork(config, weights, biases, metadata)
