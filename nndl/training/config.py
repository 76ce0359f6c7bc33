"""What to train and how: small typed configurations that check themselves.

``NetworkConfig`` describes a fully connected network (sizes, activations,
cost, initial weights, precision) and builds it; ``ConvNetConfig`` describes
a chapter 6 convolutional network layer by layer (it is pure data: building
one needs PyTorch, see ``nndl.deep``); ``TrainingConfig`` holds every setting of
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
from nndl import validate
from nndl.validate import MAX_PARAMETERS, layer_sizes, real_number, whole_number

__all__ = ["Settings", "NetworkConfig", "ConvNetConfig", "TrainingConfig", "network_config_from_dict", "resolve_training_config", "MONITORS", "SCHEDULES",
           "REGULARIZATIONS", "LMBDA_SCALES", "LAST_BATCHES"]

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


def _choice(value, choices, what, canon=normalise):
    key = canon(value) if isinstance(value, str) else value
    if key not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return key


def _monitor_name(name):
    return name.strip().lower().replace("-", "_")


def _plain(value):
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class Settings:
    """to_dict / from_dict / replace for frozen dataclasses of settings.

    The configurations below derive from it, and so do the experiments'
    (``nndl.experiments``): a setting may itself be a Settings (a network
    inside an experiment), and ``to_dict`` writes it as a nested dict.
    """

    def to_dict(self):
        """The settings as a JSON-ready dict."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

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
        object.__setattr__(self, "dtype", validate.float_dtype(self.dtype).name)

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
    early_stopping: int = None
    monitor: tuple = field(default=None)
    restore_best: bool = None
    seed: int = None
    shuffle: bool = True
    last_batch: str | None = None
    best_on_tie: bool | None = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("epochs", whole_number(self.epochs, "the number of epochs"))
        put("mini_batch_size", whole_number(self.mini_batch_size, "the mini-batch size"))
        put("eta", validate.learning_rate(self.eta))
        put("lmbda", validate.lmbda(self.lmbda))
        put("lmbda_scale", _choice(self.lmbda_scale, LMBDA_SCALES, "lambda scale"))
        put("regularization", _choice(self.regularization, REGULARIZATIONS, "regularisation"))
        put("momentum", validate.momentum(self.momentum))
        validate.nesterov(self.nesterov, self.momentum)
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
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"shuffle must be true or false, got {self.shuffle!r}")
        if self.last_batch is not None:
            put("last_batch", _choice(self.last_batch, LAST_BATCHES, "last mini-batch rule"))
        if self.best_on_tie is not None and not isinstance(self.best_on_tie, bool):
            raise ConfigError(f"best_on_tie must be true, false or null, got {self.best_on_tie!r}")
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

    def lmbda_divisor(self, n):
        """What lambda is divided by for a training set of n examples: n, or the number of mini-batches."""
        return n if self.lmbda_scale == "n" else max(1, n // min(self.mini_batch_size, n))

    def to_dict(self):
        """The settings as a JSON-ready dict; a convention left to the engine (None) is not written.

        So the dict of an unresolved configuration is the same as nndl 0.1
        wrote, and results and checkpoints saved before still match it.
        """
        data = super().to_dict()
        for name in _ENGINE_CONVENTIONS:
            if data[name] is None:
                del data[name]
        return data

    def with_conventions(self, last_batch, best_on_tie):
        """This config with ``last_batch`` and ``best_on_tie`` set to an engine's defaults where they are None."""
        changes = {}
        if self.last_batch is None:
            changes["last_batch"] = last_batch
        if self.best_on_tie is None:
            changes["best_on_tie"] = best_on_tie
        return self.replace(**changes) if changes else self

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


#: The kinds of layer a convolutional network is made of, and the settings each takes.
CONV_LAYERS = {
    "conv-pool": ("filters", "filter", "pool", "activation", "p_dropout"),
    "fully-connected": ("n_out", "activation", "p_dropout"),
    "softmax": ("n_out", "p_dropout"),
}
#: Activations of convolutional and fully connected layers (network3's sigmoid, tanh, ReLU, linear).
CONV_ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")
#: How to draw the first weights: the book's network3, or scaled by fan-in (see nndl.deep.layers).
CONV_INITS = ("book", "fan-in")
#: Dropout as network3 does it (mask, then scale the weights by 1 - p at inference) or inverted.
DROPOUT_STYLES = ("book", "inverted")
#: Where the gradient of a max-pooling region goes: one maximum, or every input equal to it (Theano's rule).
POOL_GRADIENTS = ("one", "all-ties")


def _pair(value, what):
    """(h, w) from 5 or (5, 5)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"{what} must be one size or a pair (height, width), got {list(value)}")
        return tuple(whole_number(v, what) for v in value)
    n = whole_number(value, what)
    return (n, n)


def _conv_layer(spec, index):
    """One layer's settings, normalised, with its defaults filled in."""
    where = f"layer {index + 1}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where} must be a dict with a 'type' ({', '.join(CONV_LAYERS)}), got {spec!r}")
    kind = _choice(spec["type"], CONV_LAYERS, f"layer type in {where}")
    allowed = CONV_LAYERS[kind]
    unknown = sorted(set(spec) - set(allowed) - {"type"})
    if unknown:
        raise ConfigError(f"{where} ({kind}) has unknown setting(s) {', '.join(unknown)}; it takes "
                          f"{', '.join(allowed)}")
    layer = {"type": kind}
    if kind == "conv-pool":
        layer["filters"] = whole_number(spec.get("filters"), f"the number of filters in {where}")
        layer["filter"] = _pair(spec.get("filter", 5), f"the filter size in {where}")
        layer["pool"] = _pair(spec.get("pool", 2), f"the pool size in {where}")
    else:
        layer["n_out"] = whole_number(spec.get("n_out"), f"n_out of {where}")
    if kind != "softmax":
        layer["activation"] = _choice(spec.get("activation", "sigmoid"), CONV_ACTIVATIONS, f"activation in {where}")
    layer["p_dropout"] = real_number(spec.get("p_dropout", 0.0), f"the dropout probability of {where}", high=1.0)
    return layer


@dataclass(frozen=True)
class ConvNetConfig(Settings):
    """A network of chapter 6: conv-pool layers, fully connected layers, a softmax output.

    Pure data (no PyTorch needed): ``nndl.deep.ConvNetwork.from_config``
    builds it. The shapes are checked here, so a network whose layers do not
    fit together is refused before anything is built.

    Attributes
    ----------
    input_shape : (channels, height, width)
        (1, 28, 28) for MNIST.
    layers : tuple of dict
        In order, each one of
        ``{"type": "conv-pool", "filters": 20, "filter": (5, 5), "pool": (2, 2), "activation": "relu"}``,
        ``{"type": "fully-connected", "n_out": 100, "activation": "relu", "p_dropout": 0.5}``,
        ``{"type": "softmax", "n_out": 10, "p_dropout": 0.5}``. The last
        layer is the softmax; conv-pool layers come before fully connected
        ones. ``p_dropout`` drops the layer's *inputs* during training.
    init : {"book", "fan-in"}
        "book": network3's weights, N(0, 1/n_out) with n_out the layer's
        outputs per input (filters x filter area / pool area for a conv-pool
        layer), biases N(0, 1), the softmax layer all zeros. "fan-in":
        weights N(0, g/n_in) (g = 2 for ReLU, else 1), biases zero.
    dropout : {"book", "inverted"}
        "book": inputs masked without rescaling, weights times (1 - p) at
        inference. "inverted": kept inputs scaled by 1/(1 - p) during
        training, nothing changed at inference. The same in expectation.
    dtype : {"float32", "float64"}
    pool_gradient : {"one", "all-ties"}
        "one": the gradient of each max-pooling region goes to one input
        equal to its maximum (PyTorch's rule; the true gradient wherever it
        exists). "all-ties": to every input equal to the maximum, as Theano's
        max_pool_2d did under the book's network3 -- which counts the
        gradient of a flat region (MNIST's blank background) up to ph x pw
        times. Kept to study that difference, not as a recommendation.
    """

    input_shape: tuple = (1, 28, 28)
    layers: tuple = ()
    init: str = "book"
    dropout: str = "book"
    dtype: str = "float32"
    pool_gradient: str = "one"

    def __post_init__(self):
        shape = self.input_shape
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            raise ConfigError(f"input_shape must be (channels, height, width), got {shape!r}")
        object.__setattr__(self, "input_shape", tuple(whole_number(v, "every input dimension") for v in shape))
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise ConfigError("a convolutional network needs at least its softmax output layer")
        layers = tuple(_conv_layer(spec, i) for i, spec in enumerate(self.layers))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "init", _choice(self.init, CONV_INITS, "weight initialisation"))
        object.__setattr__(self, "dropout", _choice(self.dropout, DROPOUT_STYLES, "dropout style"))
        object.__setattr__(self, "dtype", _choice(self.dtype, ("float32", "float64"), "dtype"))
        object.__setattr__(self, "pool_gradient", _choice(self.pool_gradient, POOL_GRADIENTS, "pool gradient"))
        kinds = [layer["type"] for layer in layers]
        if kinds[-1] != "softmax" or "softmax" in kinds[:-1]:
            raise ConfigError(f"the softmax layer must be the last layer and only the last, got {kinds}")
        first_dense = next(i for i, kind in enumerate(kinds) if kind != "conv-pool")
        if "conv-pool" in kinds[first_dense:]:
            raise ConfigError(f"conv-pool layers must come before the fully connected ones, got {kinds}")
        n_params = 0
        for (n_in, n_out), layer in zip(self.shapes(), layers):
            if layer["type"] == "conv-pool":
                n_params += layer["filters"] * (n_in[0] * layer["filter"][0] * layer["filter"][1] + 1)
            else:
                n_params += (_size(n_in) + 1) * layer["n_out"]
        if n_params > MAX_PARAMETERS:
            raise ConfigError(f"this network has {n_params:,} weights and biases, more than the {MAX_PARAMETERS:,} "
                              "nndl allows")

    def shapes(self):
        """The input and output shape of each layer: a list of (in_shape, out_shape) tuples."""
        shapes, shape = [], self.input_shape
        for i, layer in enumerate(self.layers):
            if layer["type"] == "conv-pool":
                (fh, fw), (ph, pw) = layer["filter"], layer["pool"]
                c, h, w = shape
                if fh > h or fw > w:
                    raise ConfigError(f"layer {i + 1}: a {fh}x{fw} filter does not fit its {h}x{w} input")
                if (h - fh + 1) < ph or (w - fw + 1) < pw:
                    raise ConfigError(f"layer {i + 1}: {ph}x{pw} pooling does not fit the {h - fh + 1}x{w - fw + 1} "
                                      "output of its convolution")
                out = (layer["filters"], (h - fh + 1) // ph, (w - fw + 1) // pw)
            else:
                out = (layer["n_out"],)
            shapes.append((shape, out))
            shape = out
        return shapes

    @property
    def n_outputs(self):
        return self.layers[-1]["n_out"]

    def describe(self):
        """One line, e.g. "conv-pool 20 5x5/2x2 relu -> fully-connected 100 relu -> softmax 10"."""
        parts = []
        for layer in self.layers:
            if layer["type"] == "conv-pool":
                (fh, fw), (ph, pw) = layer["filter"], layer["pool"]
                text = f"conv-pool {layer['filters']} {fh}x{fw}/{ph}x{pw} {layer['activation']}"
            elif layer["type"] == "fully-connected":
                text = f"fully-connected {layer['n_out']} {layer['activation']}"
            else:
                text = f"softmax {layer['n_out']}"
            if layer["p_dropout"]:
                text += f" (dropout {layer['p_dropout']:g})"
            parts.append(text)
        return " -> ".join(parts)

    def to_dict(self):
        data = super().to_dict()
        data["layers"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in layer.items()}
                          for layer in self.layers]
        return data


def _size(shape):
    n = 1
    for v in shape:
        n *= v
    return n


def resolve_training_config(config, settings):
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


def network_config_from_dict(data, source=None):
    """A NetworkConfig or, when the dict has ``layers``, a ConvNetConfig."""
    if isinstance(data, dict) and "layers" in data:
        return ConvNetConfig.from_dict(data, source)
    return NetworkConfig.from_dict(data, source)
