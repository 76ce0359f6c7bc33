"""What to train and how: two small typed configurations that check themselves.

``NetworkConfig`` describes a network (sizes, activations, cost, initial
weights, precision) and builds it; ``TrainingConfig`` holds every setting of
stochastic gradient descent. The command line builds them from its options,
``nndl.training.train`` runs one, ``History`` records both, and the
experiment scripts are tables of them. Each validates on construction, so a
bad value is reported before any work starts, and converts to and from a
plain dict (JSON) that rejects unknown keys::

    >>> config = TrainingConfig(epochs=30, mini_batch_size=10, eta=0.5, lmbda=5.0)
    >>> TrainingConfig.from_dict(config.to_dict()) == config
    True
"""

import dataclasses
import numbers
from dataclasses import dataclass, field

from nndl.errors import ConfigError
from nndl.lookup import normalise
from nndl.validate import layer_sizes, real_number, whole_number

__all__ = ["NetworkConfig", "TrainingConfig", "MONITORS", "SCHEDULES", "REGULARIZATIONS"]

#: The per-epoch measurements that can be monitored.
MONITORS = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")
#: Learning-rate schedules: keep eta, or the book's halve-on-plateau.
SCHEDULES = ("constant", "halve")
REGULARIZATIONS = ("l2", "l1")


def _choice(value, choices, what, canon=normalise):
    key = canon(value) if isinstance(value, str) else value
    if key not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return key


def _monitor_name(name):
    return name.strip().lower().replace("-", "_")


class _Config:
    """to_dict / from_dict / replace for the frozen dataclasses below."""

    def to_dict(self):
        """The settings as a JSON-ready dict."""
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, data, source=None):
        """The configuration a dict describes; unknown keys are an error, missing ones take their defaults."""
        where = f" in {source}" if source else ""
        if not isinstance(data, dict):
            raise ConfigError(f"a {cls.__name__}{where} must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} setting(s){where}: {', '.join(map(str, unknown))}")
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{e}{where}") from None

    def replace(self, **changes):
        """A copy with some settings changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown {type(self).__name__} setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class NetworkConfig(_Config):
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

    sizes: tuple = (784, 30, 10)
    activations: tuple = ("sigmoid",)
    cost: str = "quadratic"
    init: str = "large"
    dtype: str = "float64"

    def __post_init__(self):
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
            object.__setattr__(self, "init", _choice(self.init, tuple(INITIALIZERS), "weight initialisation"))
        object.__setattr__(self, "dtype", _choice(self.dtype, ("float64", "float32"), "dtype"))

    def build(self, seed=None):
        """A new ``FeedforwardNetwork`` with freshly drawn weights (seeded by ``seed``)."""
        if self.init is None:
            raise ConfigError("this network configuration does not say how to draw the initial weights (init)")
        import numpy as np
        from nndl.engine.feedforward import FeedforwardNetwork
        return FeedforwardNetwork(self.sizes, activations=list(self.activations), cost=self.cost, init=self.init,
                                  seed=seed, dtype=np.dtype(self.dtype))

    @classmethod
    def of(cls, net):
        """The configuration of an existing network (``init`` None when it was not made by name)."""
        return cls(sizes=tuple(net.sizes), activations=tuple(layer.name for layer in net.layers),
                   cost=net.cost.name, init=getattr(net, "init", None), dtype=net.dtype.name)


@dataclass(frozen=True)
class TrainingConfig(_Config):
    """Every setting of mini-batch stochastic gradient descent (chapters 1 and 3).

    Attributes
    ----------
    epochs : int
    mini_batch_size : int
    eta : float
        The learning rate, > 0.
    lmbda : float
        The regularisation parameter lambda >= 0, **divided by n, the size
        of the training set**, as in the book's network2 (its network3
        divides by the number of mini-batches instead).
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
    """

    epochs: int = 30
    mini_batch_size: int = 10
    eta: float = 3.0
    lmbda: float = 0.0
    regularization: str = "l2"
    momentum: float = 0.0
    nesterov: bool = False
    p_dropout: float = 0.0
    schedule: str = "constant"
    patience: int = 10
    min_eta_ratio: float = 1 / 128
    early_stopping: int = None
    monitor: tuple = field(default=None)
    restore_best: bool = None
    seed: int = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("epochs", whole_number(self.epochs, "the number of epochs"))
        put("mini_batch_size", whole_number(self.mini_batch_size, "the mini-batch size"))
        put("eta", real_number(self.eta, "the learning rate eta", low_open=True))
        put("lmbda", real_number(self.lmbda, "the regularisation parameter lambda"))
        put("regularization", _choice(self.regularization, REGULARIZATIONS, "regularisation"))
        put("momentum", real_number(self.momentum, "the momentum co-efficient mu", high=1.0))
        if not isinstance(self.nesterov, bool):
            raise ConfigError(f"nesterov must be true or false, got {self.nesterov!r}")
        if self.nesterov and self.momentum == 0.0:
            raise ConfigError("Nesterov's momentum needs a momentum co-efficient mu > 0")
        put("p_dropout", real_number(self.p_dropout, "the dropout probability p", high=1.0))
        put("schedule", _choice(self.schedule, SCHEDULES, "learning-rate schedule"))
        put("patience", whole_number(self.patience, "the schedule's patience"))
        put("min_eta_ratio", real_number(self.min_eta_ratio, "min_eta_ratio", low_open=True, high=1.0))
        if self.early_stopping is not None:
            put("early_stopping", whole_number(self.early_stopping, "early stopping's patience"))
        if self.monitor is not None:
            monitor = (self.monitor,) if isinstance(self.monitor, str) else self.monitor
            if not isinstance(monitor, (list, tuple)):
                raise ConfigError(f"monitor must be a list of names ({', '.join(MONITORS)}), got {monitor!r}")
            put("monitor", tuple(dict.fromkeys(_choice(m, MONITORS, "monitor", canon=_monitor_name)
                                               for m in monitor)))
        if self.restore_best is not None and not isinstance(self.restore_best, bool):
            raise ConfigError(f"restore_best must be true, false or null, got {self.restore_best!r}")
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
                raise ConfigError(f"the seed must be a whole number >= 0, got {self.seed!r}")
            put("seed", int(self.seed))

    @property
    def watches_plateau(self):
        """True when early stopping or the schedule needs the validation accuracy every epoch."""
        return self.early_stopping is not None or self.schedule == "halve"

    def monitors(self, has_evaluation):
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
