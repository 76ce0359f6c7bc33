"""The rungs of chapter 6's ladder, each a named network and training run.

``nndl conv --preset NAME`` runs one. Every preset is the book's run as
network3 does it: mini-batches of 10 in stored order, network3's initial
weights and dropout, lambda divided by the number of mini-batches, and the
test accuracy taken at the epoch of best validation accuracy. The book's
numbers are in ``book``; ours are in ``experiments/README.md``.

Pure data: importing this module does not import PyTorch (it sits beside the other
configurations so that the experiments registry can list the ladder without it).
"""

from dataclasses import dataclass
from typing import Any

from nndl.deep.config import ConvNetConfig
from nndl.errors import ConfigError
from nndl.training.config import TrainingConfig

__all__ = ["Preset", "PRESETS", "get_preset", "BOOK_STYLE"]

#: network3's choices, which every preset keeps.
BOOK_STYLE: dict[str, Any] = {"shuffle": False, "lmbda_scale": "batches"}


@dataclass(frozen=True)
class Preset:
    """One run of the book's chapter 6.

    Attributes
    ----------
    name : str
    title : str
    book : float
        The test accuracy the book reports (a fraction).
    network : ConvNetConfig
    training : TrainingConfig
    expanded : bool
        Train on the book's 250,000 images (each training image and its four
        1-pixel shifts) instead of 50,000.
    members : int
        How many networks vote (the book's ensemble: 5).
    """

    name: str
    title: str
    book: float
    network: ConvNetConfig
    training: TrainingConfig
    expanded: bool = False
    members: int = 1


def _conv(filters, activation):
    return {"type": "conv-pool", "filters": filters, "filter": 5, "pool": 2, "activation": activation}


def _fc(n, activation, p=0.0):
    return {"type": "fully-connected", "n_out": n, "activation": activation, "p_dropout": p}


def _softmax(p=0.0):
    return {"type": "softmax", "n_out": 10, "p_dropout": p}


def _net(*layers):
    return ConvNetConfig(layers=layers, init="book", dropout="book")


def _training(epochs, eta, lmbda=0.0):
    return TrainingConfig(epochs=epochs, mini_batch_size=10, eta=eta, lmbda=lmbda, **BOOK_STYLE)


_SIGMOID, _RELU = _training(60, 0.1), _training(60, 0.03, 0.1)
_TWO_CONV_RELU = (_conv(20, "relu"), _conv(40, "relu"))

PRESETS = {p.name: p for p in [
    Preset("fc100", "one fully connected layer of 100 sigmoid neurons", 0.9780,
           _net(_fc(100, "sigmoid"), _softmax()), _SIGMOID),
    Preset("conv1", "a conv-pool layer (20 maps, 5x5, 2x2 max-pooling) before it", 0.9878,
           _net(_conv(20, "sigmoid"), _fc(100, "sigmoid"), _softmax()), _SIGMOID),
    Preset("conv2", "a second conv-pool layer (40 maps)", 0.9906,
           _net(_conv(20, "sigmoid"), _conv(40, "sigmoid"), _fc(100, "sigmoid"), _softmax()), _SIGMOID),
    Preset("relu", "rectified linear units, eta 0.03, L2 lambda 0.1", 0.9923,
           _net(*_TWO_CONV_RELU, _fc(100, "relu"), _softmax()), _RELU),
    Preset("expanded", "the training data expanded to 250,000 by 1-pixel shifts", 0.9937,
           _net(*_TWO_CONV_RELU, _fc(100, "relu"), _softmax()), _RELU, expanded=True),
    Preset("fc300", "expanded data, a fully connected layer of 300", 0.9946,
           _net(*_TWO_CONV_RELU, _fc(300, "relu"), _softmax()), _RELU, expanded=True),
    Preset("fc1000", "expanded data, a fully connected layer of 1,000", 0.9943,
           _net(*_TWO_CONV_RELU, _fc(1000, "relu"), _softmax()), _RELU, expanded=True),
    Preset("2fc100", "expanded data, two fully connected layers of 100", 0.9943,
           _net(*_TWO_CONV_RELU, _fc(100, "relu"), _fc(100, "relu"), _softmax()), _RELU, expanded=True),
    Preset("2fc300", "expanded data, two fully connected layers of 300", 0.9948,
           _net(*_TWO_CONV_RELU, _fc(300, "relu"), _fc(300, "relu"), _softmax()), _RELU, expanded=True),
    Preset("2fc1000", "expanded data, two fully connected layers of 1,000 (no dropout)", 0.9947,
           _net(*_TWO_CONV_RELU, _fc(1000, "relu"), _fc(1000, "relu"), _softmax()), _RELU, expanded=True),
    Preset("dropout", "expanded data, two fully connected layers of 1,000 with dropout 0.5, 40 epochs", 0.9960,
           _net(*_TWO_CONV_RELU, _fc(1000, "relu", 0.5), _fc(1000, "relu", 0.5), _softmax(0.5)),
           _training(40, 0.03), expanded=True),
    Preset("ensemble", "five of the dropout networks voting", 0.9967,
           _net(*_TWO_CONV_RELU, _fc(1000, "relu", 0.5), _fc(1000, "relu", 0.5), _softmax(0.5)),
           _training(40, 0.03), expanded=True, members=5),
]}


def get_preset(name):
    """The preset called ``name`` (ConfigError listing them when there is none)."""
    try:
        return PRESETS[name.strip().lower()]
    except (KeyError, AttributeError):
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
