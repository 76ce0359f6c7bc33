"""Saving and loading a ``FeedforwardNetwork`` as a model file (chapter 3's ``network2.save`` files too).

    >>> save(net, "net.npz", metadata={"best_accuracy": 0.97})     # doctest: +SKIP
    >>> net = load("net.npz")                                      # doctest: +SKIP

The file format (JSON or ``.npz``, the book's ``network2.save`` files too,
every field and array checked before use) is :mod:`nndl.files.modelfile`,
which needs only NumPy; this module is the bridge between it and the
network: it turns a network into the file's plain data and back, and only
it knows which activation and cost names can be built.

It computes none of the book's equations.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np

from nndl.engine.activations import ACTIVATIONS
from nndl.engine.costs import COSTS
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import ModelFileError, NndlError
from nndl.files.modelfile import ModelData, is_conv_model, read_model, write_model

__all__ = ["save", "load", "is_conv_model", "ModelFileError"]


def save(net: FeedforwardNetwork, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None,
         binary: bool | None = None) -> Path:
    """Write ``net`` to ``path`` atomically, with ``metadata`` (JSON-serialisable notes: settings, accuracy).

    The format is as :func:`nndl.files.modelfile.write_model` writes it: a
    ``path`` ending ``.npz`` is binary, anything else JSON; ``binary``
    forces one. Returns the path; an ``OutputError`` if it cannot be written.
    """
    model = ModelData(sizes=list(net.sizes), activations=[layer.name for layer in net.layers], cost=net.cost.name,
                      dtype=net.dtype.name, weights=net.weights, biases=net.biases, metadata=metadata or {})
    return write_model(model, path, binary=binary)


def load(path: str | os.PathLike[str]) -> FeedforwardNetwork:
    """Read a network written by ``save`` (JSON or .npz) or by the book's ``network2.save``.

    Returns the ``FeedforwardNetwork``, with ``metadata`` (a dict) from the
    file. Raises ``FileNotFoundError`` if there is no such file, and
    ``ModelFileError`` for one this version of nndl cannot read (as
    :func:`nndl.files.modelfile.read_model` says why) or a network it
    cannot build (e.g. softmax before the output layer).
    """
    model = read_model(path, known_activations=ACTIVATIONS, known_costs=COSTS)
    try:
        net = FeedforwardNetwork(model.sizes, activations=model.activations, cost=model.cost,
                                 dtype=np.dtype(model.dtype), seed=0)
        net.set_parameters(model.weights, model.biases)
    except (NndlError, ValueError) as e:        # a combination the network refuses, e.g. softmax inside
        raise ModelFileError(f"{Path(path)}: {e}") from None
    net.metadata = model.metadata
    return net
