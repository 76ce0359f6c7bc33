"""What to train and how: small typed configurations that check themselves.

``NetworkConfig`` describes a fully connected network (sizes, activations,
cost, initial weights, precision) and builds it; ``TrainingConfig`` holds
every setting of stochastic gradient descent (``nndl.deep.config.ConvNetConfig``
describes a chapter 6 convolutional network, as pure data). The command line builds them from its options,
``nndl.training.train`` runs one, ``History`` records both, and the
experiment scripts are tables of them. Each validates on construction, so a
bad value is reported before any work starts, and converts to and from a
plain dict (JSON) that rejects unknown keys::

    >>> config = TrainingConfig(epochs=30, mini_batch_size=10, eta=0.5, lmbda=5.0)
    >>> TrainingConfig.from_dict(config.to_dict()) == config
    True
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nndl import validate
from nndl.deep.config import ConvNetConfig
from nndl.errors import ConfigError
from nndl.settings import Settings, choice
from nndl.validate import layer_sizes, real_number, whole_number

if TYPE_CHECKING:
    import numpy as np

    from nndl.engine.feedforward import FeedforwardNetwork

__all__ = ["Settings", "NetworkConfig", "TrainingConfig", "network_config_from_dict", "resolve_training_config",
           "MONITORS", "SCHEDULES", "REGULARIZATIONS", "LMBDA_SCALES", "LAST_BATCHES"]

#: The per-epoch measurements that can be monitored.
MONITORS = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")
#: Learning-rate schedules: keep eta, or the book's halve-on-plateau.
SCHEDULES = ("constant", "halve")
REGULARIZATIONS = ("l2", "l1")
#: What lambda is divided by: the training-set size n (network2) or the number of mini-batches (network3).
LMBDA_SCALES = ("n", "batches")
#: What an epoch does with the last n mod m examples: train them as a smaller mini-batch (network,
#: network2) or leave them out of that epoch (network3).
LAST_BATCHES = ("train", "drop")
#: TrainingConfig fields whose None means "the engine's chapter default".
_ENGINE_CONVENTIONS = ("last_batch", "best_on_tie")


def _monitor_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


@dataclass(frozen=True)
class NetworkConfig(Settings):
    """A fully connected network, as the book describes one.

    Attributes
    ----------
    sizes : tuple of int
        Neurons per layer, input first: (784, 30, 10).
    activations : tuple of str
        One name per layer after the input (a single name is repeated):
        sigmoid, tanh, relu, linear, softmax (output layer only).
    cost : str
        quadratic, cross-entropy or log-likelihood.
    init : str or None
        "large": weights and biases N(0, 1) (chapter 1); "default": weights
        N(0, 1/n_in), biases N(0, 1) (chapter 3); None when not known (a
        network loaded from a file).
    dtype : str
        float64 or float32.
    """

    sizes: tuple[int, ...] = (784, 30, 10)
    activations: tuple[str, ...] = ("sigmoid",)
    cost: str = "quadratic"
    init: str | None = "large"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        from nndl.engine.activations import ACTIVATIONS, get_activation
        from nndl.engine.costs import get_cost
        from nndl.engine.initializers import INITIALIZERS

        sizes = layer_sizes(self.sizes)
        activations = self.activations
        if isinstance(activations, str):
            activations = (activations,)
        if not isinstance(activations, (list, tuple)) or not activations:
            raise ConfigError(f"activations must be a name or a list of names, got {activations!r}")
        names = tuple(get_activation(a).name if isinstance(a, str) else a for a in activations)
        if any(not isinstance(a, str) for a in names):
            raise ConfigError(f"activations must be names ({', '.join(ACTIVATIONS)}), got {activations!r}")
        if len(names) == 1:
            names = names * (len(sizes) - 1)
        if len(names) != len(sizes) - 1:
            raise ConfigError(f"{len(sizes) - 1} layers after the input need {len(sizes) - 1} activations "
                              f"(or one for all), got {len(names)}")
        if "softmax" in names[:-1]:
            raise ConfigError(f"softmax can only be the output layer, got activations {list(names)}")
        if not isinstance(self.cost, str):
            raise ConfigError(f"cost must be a name, got {self.cost!r}")
        cost = get_cost(self.cost)
        cost.check_output(get_activation(names[-1]))
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activations", names)
        object.__setattr__(self, "cost", cost.name)
        if self.init is not None:
            object.__setattr__(self, "init", choice(self.init, tuple(INITIALIZERS), "weight initialisation"))
        object.__setattr__(self, "dtype", validate.float_dtype(self.dtype).name)

    def build(self, seed: int | np.random.Generator | None = None) -> FeedforwardNetwork:
        """A new ``FeedforwardNetwork`` with freshly drawn weights (seeded by ``seed``)."""
        if self.init is None:
            raise ConfigError("this network configuration does not say how to draw the initial weights (init)")
        import numpy as np

        from nndl.engine.feedforward import FeedforwardNetwork
        return FeedforwardNetwork(self.sizes, activations=list(self.activations), cost=self.cost, init=self.init,
                                  seed=seed, dtype=np.dtype(self.dtype))

    @classmethod
    def of(cls, net: FeedforwardNetwork) -> NetworkConfig:
        """The configuration of an existing network (``init`` None when it was not made by name)."""
        return cls(sizes=tuple(net.sizes), activations=tuple(layer.name for layer in net.layers),
                   cost=net.cost.name, init=getattr(net, "init", None), dtype=net.dtype.name)


@dataclass(frozen=True)
class TrainingConfig(Settings):
    """Every setting of mini-batch stochastic gradient descent (chapters 1 and 3).

    Attributes
    ----------
    epochs : int
    mini_batch_size : int
    eta : float
        The learning rate, > 0.
    lmbda : float
        The regularisation parameter lambda >= 0, divided by ``lmbda_scale``.
    lmbda_scale : {"n", "batches"}
        "n" (default): lambda is divided by n, the size of the training
        set, as in the book's network2: C = C0 + lambda/(2n) sum w^2.
        "batches": divided by the number of mini-batches per epoch, as in
        the book's network3: C = C0 + lambda/(2 n/m) sum w^2 -- m times the
        penalty of network2 for the same lambda.
    regularization : {"l2", "l1"}
    momentum : float
        The momentum co-efficient mu in [0, 1); 0 is plain SGD.
    nesterov : bool
        Nesterov's variant of momentum (needs mu > 0).
    p_dropout : float
        Probability of dropping each hidden neuron, in [0, 1) (inverted
        dropout: evaluation uses the weights as they are).
    schedule : {"constant", "halve"}
        "halve": the book's schedule -- halve eta after ``patience`` epochs
        without a better validation accuracy, stop at ``min_eta_ratio``
        (1/128) of the starting eta.
    patience : int
        The n of the schedule's no-improvement-in-n.
    min_eta_ratio : float
    early_stopping : int or None
        Stop after this many epochs without a better validation accuracy,
        and restore the best weights.
    monitor : tuple of str or None
        Any of MONITORS; None means the evaluation accuracy when there is
        evaluation data.
    restore_best : bool or None
        Put back the weights of the best epoch at the end; None means only
        with early stopping.
    seed : int or None
        Seeds the shuffling and the dropout masks.
    shuffle : bool
        Shuffle the training data every epoch (network and network2 do);
        False takes the mini-batches in stored order every epoch, as the
        book's network3 does.
    last_batch : {"train", "drop"} or None
        The last n mod m examples of an epoch: "train" them as a smaller
        mini-batch (the book's network and network2; a mini-batch larger
        than the data is then the whole data), or "drop" them from that
        epoch (network3's ``n // m`` mini-batches). None: the engine's
        chapter default -- "train" for the NumPy networks of chapters 1-3,
        "drop" for the convolutional networks of chapter 6.
    best_on_tie : bool or None
        Whether an accuracy equal to the best so far makes a new best epoch
        (network3 keeps the last of equal epochs; network2's early stopping
        waits for a strictly better one). None: the engine's chapter
        default -- False for chapters 1-3, True for chapter 6.
    """

    epochs: int = 30
    mini_batch_size: int = 10
    eta: float = 3.0
    lmbda: float = 0.0
    lmbda_scale: str = "n"
    regularization: str = "l2"
    momentum: float = 0.0
    nesterov: bool = False
    p_dropout: float = 0.0
    schedule: str = "constant"
    patience: int = 10
    min_eta_ratio: float = 1 / 128
    early_stopping: int | None = None
    monitor: tuple[str, ...] | None = field(default=None)
    restore_best: bool | None = None
    seed: int | None = None
    shuffle: bool = True
    last_batch: str | None = None
    best_on_tie: bool | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("epochs", whole_number(self.epochs, "the number of epochs"))
        put("mini_batch_size", whole_number(self.mini_batch_size, "the mini-batch size"))
        put("eta", validate.learning_rate(self.eta))
        put("lmbda", validate.lmbda(self.lmbda))
        put("lmbda_scale", choice(self.lmbda_scale, LMBDA_SCALES, "lambda scale"))
        put("regularization", choice(self.regularization, REGULARIZATIONS, "regularisation"))
        put("momentum", validate.momentum(self.momentum))
        validate.nesterov(self.nesterov, self.momentum)
        put("p_dropout", real_number(self.p_dropout, "the dropout probability p", high=1.0))
        put("schedule", choice(self.schedule, SCHEDULES, "learning-rate schedule"))
        put("patience", whole_number(self.patience, "the schedule's patience"))
        put("min_eta_ratio", real_number(self.min_eta_ratio, "min_eta_ratio", low_open=True, high=1.0))
        if self.early_stopping is not None:
            put("early_stopping", whole_number(self.early_stopping, "early stopping's patience"))
        if self.monitor is not None:
            monitor = (self.monitor,) if isinstance(self.monitor, str) else self.monitor
            if not isinstance(monitor, (list, tuple)):
                raise ConfigError(f"monitor must be a list of names ({', '.join(MONITORS)}), got {monitor!r}")
            put("monitor", tuple(dict.fromkeys(choice(m, MONITORS, "monitor", canon=_monitor_name)
                                               for m in monitor)))
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"shuffle must be true or false, got {self.shuffle!r}")
        if self.last_batch is not None:
            put("last_batch", choice(self.last_batch, LAST_BATCHES, "last mini-batch rule"))
        if self.best_on_tie is not None and not isinstance(self.best_on_tie, bool):
            raise ConfigError(f"best_on_tie must be true, false or null, got {self.best_on_tie!r}")
        if self.restore_best is not None and not isinstance(self.restore_best, bool):
            raise ConfigError(f"restore_best must be true, false or null, got {self.restore_best!r}")
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
                raise ConfigError(f"the seed must be a whole number >= 0, got {self.seed!r}")
            put("seed", int(self.seed))

    @property
    def watches_plateau(self) -> bool:
        """True when early stopping or the schedule needs the validation accuracy every epoch."""
        return self.early_stopping is not None or self.schedule == "halve"

    def lmbda_divisor(self, n: int) -> int:
        """What lambda is divided by for a training set of n examples: n, or the number of mini-batches."""
        return n if self.lmbda_scale == "n" else max(1, n // min(self.mini_batch_size, n))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict; a convention left to the engine (None) is not written.

        So the dict of an unresolved configuration is the same as nndl 0.1
        wrote, and results and checkpoints saved before still match it.
        """
        data = super().to_dict()
        for name in _ENGINE_CONVENTIONS:
            if data[name] is None:
                del data[name]
        return data

    def with_conventions(self, last_batch: str, best_on_tie: bool) -> TrainingConfig:
        """This config with ``last_batch`` and ``best_on_tie`` set to an engine's defaults where they are None."""
        changes: dict[str, Any] = {}
        if self.last_batch is None:
            changes["last_batch"] = last_batch
        if self.best_on_tie is None:
            changes["best_on_tie"] = best_on_tie
        return self.replace(**changes) if changes else self

    def monitors(self, has_evaluation: bool) -> tuple[str, ...]:
        """What to measure after each epoch, given whether there is evaluation data."""
        monitor = self.monitor
        if monitor is None:
            monitor = ("evaluation_accuracy",) if has_evaluation else ()
        for name in monitor:
            if name.startswith("evaluation") and not has_evaluation:
                raise ConfigError(f"monitoring {name} needs evaluation data")
        if self.watches_plateau:
            if not has_evaluation:
                raise ConfigError("early stopping and the halve-on-plateau schedule need evaluation "
                                  "(validation) data")
            if "evaluation_accuracy" not in monitor:
                monitor = monitor + ("evaluation_accuracy",)
        return monitor


def resolve_training_config(config: TrainingConfig | None, settings: Mapping[str, Any]) -> TrainingConfig:
    """The run's TrainingConfig from ``config`` and/or keyword ``settings`` (which change it)."""
    if config is None:
        try:
            return TrainingConfig(**settings)
        except TypeError:
            known = {f.name for f in dataclasses.fields(TrainingConfig)}
            unknown = sorted(set(settings) - known)
            raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}") from None
    if not isinstance(config, TrainingConfig):
        raise ConfigError(f"config must be a TrainingConfig, got {type(config).__name__}")
    return config.replace(**settings) if settings else config


def network_config_from_dict(data: object, source: str | None = None) -> NetworkConfig | ConvNetConfig:
    """A NetworkConfig or, when the dict has ``layers``, a ConvNetConfig."""
    if isinstance(data, dict) and "layers" in data:
        return ConvNetConfig.from_dict(data, source)
    return NetworkConfig.from_dict(data, source)
