"""The NumPy engine: mini-batch stochastic gradient descent for the networks of chapters 1 and 3.

``train`` is the library's entry point: it checks the data, builds a
``NumpyEngine`` and hands it to the one epoch loop, ``nndl.training.fit``.
Each epoch shuffles the training data (unless ``shuffle`` is off), splits it
into mini-batches of ``mini_batch_size`` examples (the last one smaller, or
left out with ``last_batch="drop"``), and for each mini-batch runs
backpropagation (BP1-BP4, ``nndl.engine.backprop``) and one update of the
weights and biases (``nndl.engine.optimizers.SGD``, on its fused BLAS path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeAlias, cast

import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import ThreadpoolController

from nndl.arrays import FloatArray, IntArray, NumberArray
from nndl.engine.backprop import Backprop
from nndl.engine.feedforward import FeedforwardNetwork, as_labels, check_inputs
from nndl.engine.optimizers import SGD
from nndl.engine.regularizers import Regularizer, get_regularizer
from nndl.errors import ConfigError, InputError
from nndl.files.lock import sole_writer
from nndl.training.config import NetworkConfig, TrainingConfig, resolve_training_config
from nndl.training.fit import PROGRESS_EVERY, Progress, check_weight_decay, fit
from nndl.training.history import History

__all__ = ["train", "as_dataset", "saturation", "NumpyEngine", "PROGRESS_EVERY", "LabelledImages", "Dataset"]

#: The book's conventions of chapters 1-3 (network, network2): the last partial mini-batch is trained,
#: and only a strictly better accuracy is a new best.
LAST_BATCH, BEST_ON_TIE = "train", False

_CONTROLLER: list[ThreadpoolController] = []


class LabelledImages(Protocol):
    """A data split such as ``nndl.data.splits.Split``: inputs ``images`` (n, sizes[0]) and their ``labels``."""

    @property
    def images(self) -> ArrayLike: ...

    @property
    def labels(self) -> ArrayLike: ...


#: Training or evaluation data: a pair (inputs, labels or desired outputs), or a split with ``.images``
#: and ``.labels``.
Dataset: TypeAlias = "tuple[ArrayLike, ArrayLike] | LabelledImages"
#: What ``as_dataset`` returns: the inputs, and integer labels (n,) or desired outputs (n, sizes[-1]).
Examples: TypeAlias = "tuple[NumberArray, IntArray | FloatArray]"


def _blas_threads() -> ThreadpoolController:
    """The BLAS thread-pool controller, made on first use (it inspects the loaded libraries)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def as_dataset(data: Dataset, net: FeedforwardNetwork, name: str = "training data",
               targets: bool = True, *, check_pixels: bool = True) -> Examples:
    """Inputs and desired outputs from a pair of arrays or a split with ``.images`` and ``.labels``.

    Parameters
    ----------
    data : (x, y) or a split
        x of shape (n, sizes[0]), finite. y: integer labels (n,) in
        0..sizes[-1]-1, or -- when ``targets`` -- desired outputs (n, sizes[-1])
        used as given (one-hot rows, soft targets, a single sigmoid output);
        without ``targets``, 2-d rows must be exactly one-hot.
    net : FeedforwardNetwork
    check_pixels : bool, default True
        Refuse inputs that look like unscaled 0-255 pixels (``check_inputs``);
        False accepts any finite real features.

    Returns
    -------
    x : ndarray, shape (n, sizes[0])
    y : ndarray, int labels of shape (n,) or float targets of shape (n, sizes[-1])
    """
    if hasattr(data, "images") and hasattr(data, "labels"):
        split = cast(LabelledImages, data)
        x, y = split.images, split.labels
    else:
        try:
            x, y = data
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a pair (inputs, labels) or a data split with .images and "
                             ".labels") from None
    x = check_inputs(x, net.sizes[0], name, check_pixels=check_pixels)
    try:
        y = np.asarray(y)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name}: labels must be an array of numbers ({e})") from None
    y = net.targets(y, name) if targets and y.ndim == 2 else as_labels(y, net.sizes[-1], name)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"{name}: {x.shape[0]} inputs but {y.shape[0]} labels")
    return x, y


def train(net: FeedforwardNetwork, training_data: Dataset, config: TrainingConfig | None = None, *,
          evaluation_data: Dataset | None = None, progress: bool = False,
          on_epoch: Callable[[History], None] | None = None,
          checkpoint: str | None = None, checkpoint_metadata: dict[str, Any] | None = None,
          resume: dict[str, Any] | None = None, check_pixels: bool = True, **settings: Any) -> History:
    """Train ``net`` by mini-batch stochastic gradient descent.

    Parameters
    ----------
    net : FeedforwardNetwork
    training_data : (x, y) or a split with ``.images`` and ``.labels``
        x of shape (n, sizes[0]); y integer labels (n,), or desired outputs
        (n, sizes[-1]) used as given.
    config : TrainingConfig, optional
        Every setting of the run (see there). Keyword ``settings`` build one,
        or change the given one: ``train(net, data, epochs=30, eta=0.5)``.
    evaluation_data : (x, labels) or split, optional
        Validation or test data measured after each epoch; labels (n,) or
        one-hot rows.
    progress : bool
        Show a progress bar for each epoch (on stderr).
    on_epoch : callable, optional
        Called as ``on_epoch(history)`` after each epoch is recorded.
    checkpoint : str, optional
        Write the complete training state to this ``.npz`` file after every
        epoch (atomically); see ``nndl.training.checkpoint``.
    resume : dict, optional
        A training state from ``nndl.training.checkpoint.load_checkpoint``:
        go on from its last epoch to exactly the result of an uninterrupted
        run. The config may differ only in ``epochs``.
    check_pixels : bool, default True
        Refuse inputs that look like unscaled 0-255 pixel values; False
        accepts any finite real features (as ``nndl.sklearn`` does).

    Returns
    -------
    History
        ``stop_reason`` says why training ended. A Ctrl-C stops training
        cleanly between mini-batches with stop_reason "interrupted".

    Raises
    ------
    ConfigError, InputError
        Before any training, for settings or data that cannot work.
    """
    config = resolve_training_config(config, settings).with_conventions(LAST_BATCH, BEST_ON_TIE)
    x, y = as_dataset(training_data, net, check_pixels=check_pixels)
    evaluation = None
    if evaluation_data is not None:
        ex, ey = as_dataset(evaluation_data, net, "evaluation data", targets=False, check_pixels=check_pixels)
        evaluation = (ex.astype(net.dtype, copy=False), ey)               # measured every epoch
    monitor = config.monitors(evaluation is not None)
    engine = NumpyEngine(net, (x, y), config, evaluation)
    history = History(config=config, network=NetworkConfig.of(net), n_training=x.shape[0],
                      n_evaluation=evaluation[0].shape[0] if evaluation is not None else 0)
    # Overflow in a diverging run is detected after the epoch and reported
    # in plain words; NumPy's warnings would only repeat it less clearly.
    with np.errstate(over="ignore", invalid="ignore"):
        [history] = fit(engine, config, [history], monitor=monitor, progress=progress, on_epoch=on_epoch,
                        checkpoint=checkpoint, checkpoint_metadata=checkpoint_metadata, resume=resume)
    return history


class NumpyEngine:
    """One FeedforwardNetwork trained by SGD on arrays in memory: the engine ``fit`` drives for chapters 1-3.

    Holds what every epoch reuses: the optimiser, the Backprop workspaces (one
    for full mini-batches of m, one for a smaller last one), and the random
    stream that shuffles the data and draws the dropout masks.

    Parameters
    ----------
    net : FeedforwardNetwork
    training : (x, y)
        x of shape (n, sizes[0]); y labels (n,) or desired outputs (n, sizes[-1]) (from ``as_dataset``).
    config : TrainingConfig
        Checked, with ``last_batch`` resolved.
    evaluation : (x, labels) or None
    """

    members = 1
    divergence = "weights"

    def __init__(self, net: FeedforwardNetwork, training: Examples, config: TrainingConfig,
                 evaluation: Examples | None = None) -> None:
        x, y = training
        n = x.shape[0]
        m = config.mini_batch_size
        if config.last_batch == "drop":
            if m > n:
                raise ConfigError(f"the mini-batch size {m} is larger than the {n} training examples (with "
                                  "last_batch 'drop' an epoch would train nothing)")
            self.batches = n // m
        else:
            m = min(m, n)          # a mini-batch larger than the data is the whole data set, as the book slices
            self.batches = -(-n // m)
        self.net, self.config, self.x, self.labels = net, config, x, y
        self.y = net.targets(y)                                          # desired outputs (n, sizes[-1])
        self.evaluation = evaluation
        self.m, self.p_dropout = m, config.p_dropout
        self.images_per_epoch = n if config.last_batch == "train" else self.batches * m
        self.divisor = config.lmbda_divisor(n)     # n (network2) or the number of mini-batches (network3)
        check_weight_decay(config, self.divisor)
        self.regularizer: Regularizer | None = get_regularizer(config.regularization, config.lmbda)
        self.optimizer = SGD(net.params, config.eta, momentum=config.momentum, nesterov=config.nesterov,
                             weight_decay=self.regularizer, n=self.divisor)
        self.work = Backprop(net, m)
        self.last = Backprop(net, n % m) if n % m and config.last_batch == "train" else None
        self.rng = np.random.default_rng(config.seed)
        self.hidden = range(1, net.num_layers - 1)

    # --- the epoch -------------------------------------------------------------------------------

    def run_epoch(self, epoch: int, active: Sequence[bool], progress: Progress) -> list[bool]:
        """One pass over the training data in a fresh order, a mini-batch at a time."""
        n, m = self.x.shape[0], self.m
        # At mini-batch sizes (a 10 x 785 by 785 x 30 product) BLAS's threads
        # cost more in synchronisation than they save: the mini-batch loop
        # runs on one thread, the measurements between epochs on all of them.
        with _blas_threads().limit(limits=1, user_api="blas"):
            order = self.rng.permutation(n) if self.config.shuffle else np.arange(n)
            end = self.batches * m if self.last is None else n
            for chunk in range(0, end, PROGRESS_EVERY * m):
                _sgd_chunk(self, order, chunk, min(chunk + PROGRESS_EVERY * m, end))
                progress(min(PROGRESS_EVERY * m, end - chunk))
        return [True]

    # --- what fit asks between epochs -----------------------------------------------------------

    def finite(self, i: int) -> bool:
        return bool(self.net.parameters_finite())

    def measure(self, i: int, monitor: Sequence[str]) -> dict[str, float]:
        return _measure(self.net, monitor, (self.x, self.labels), self.evaluation, self.regularizer, self.divisor)

    def copy_params(self, i: int) -> list[FloatArray]:
        return self.net.copy_params()

    def restore_params(self, i: int, params: list[FloatArray]) -> None:
        self.net.restore_params(params)

    def params_from_state(self, params: list[ArrayLike]) -> list[FloatArray]:
        return [np.array(p, dtype=self.net.dtype) for p in params]

    def get_eta(self, i: int) -> float:
        return self.optimizer.eta

    def set_eta(self, i: int, eta: float) -> None:
        self.optimizer.eta = eta

    def network_config(self) -> NetworkConfig:
        return NetworkConfig.of(self.net)

    def saturation(self, i: int) -> float | None:
        return saturation(self.net, self.x[:1000].astype(self.net.dtype, copy=False))

    def write_checkpoint(self, path: str, state: dict[str, Any], metadata: dict[str, Any] | None) -> None:
        from nndl.training.checkpoint import save_checkpoint
        state = {**state, "eta": float(self.optimizer.eta), "rng": self.rng.bit_generator.state}
        if self.optimizer.velocities is not None:
            state["velocities"] = self.optimizer.velocities
        save_checkpoint(path, self.net, state, metadata)

    def hold_checkpoint(self, path: str) -> AbstractContextManager[None]:
        return sole_writer(path)

    def load_state(self, state: dict[str, Any]) -> None:
        from nndl.errors import ModelFileError
        try:
            self.optimizer.eta = float(state["eta"])
            self.rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"the checkpoint's training state is incomplete or damaged ({e})") from None
        if self.optimizer.velocities is not None:
            velocities = state.get("velocities")
            if velocities is None:
                raise ModelFileError("the checkpoint has no velocities for this momentum run")
            for v, saved in zip(self.optimizer.velocities, velocities):
                np.copyto(v, saved)

    def close(self) -> None:
        pass


def _sgd_chunk(engine: NumpyEngine, order: IntArray, start: int, stop: int) -> None:
    """Backpropagation and one update for each mini-batch of ``order[start:stop]`` (indices into x).

    The per-mini-batch work of the NumPy engine, with everything it touches
    bound to local names once per chunk: at the book's sizes a mini-batch
    takes some 50 us, so attribute look-ups are worth saving.
    """
    x, y, m, net, rng, p = engine.x, engine.y, engine.m, engine.net, engine.rng, engine.p_dropout
    hidden = engine.hidden
    work, last, step = engine.work, engine.last, engine.optimizer._step_from_backprop
    for k in range(start, stop, m):
        batch = order[k:k + m]
        w = work if batch.shape[0] == m else last
        assert w is not None
        w.x[...] = x.take(batch, axis=0)                                  # (m, sizes[0])
        if p:
            w.masks = _dropout_masks(net, batch.shape[0], p, rng, hidden)
        w.forward()
        w.backward(y.take(batch, axis=0))
        step(w, batch.shape[0])


def _dropout_masks(net: FeedforwardNetwork, m: int, p: float, rng: np.random.Generator,
                   hidden: Sequence[int]) -> list[FloatArray | None]:
    """Inverted-dropout masks for the hidden layers: 0 with probability p, else 1/(1-p)."""
    masks: list[FloatArray | None] = [None] * net.num_layers
    for l in hidden:
        keep = rng.random((m, net.sizes[l])) >= p
        masks[l] = keep.astype(net.dtype) / (1.0 - p)
    return masks


def _measure(net: FeedforwardNetwork, monitor: Sequence[str], training: Examples, evaluation: Examples | None,
             regularizer: Regularizer | None, n: int) -> dict[str, float]:
    """The monitored costs and accuracies after an epoch, as a dict by name.

    One forward pass per data set serves both its cost and its accuracy.
    """
    measured: dict[str, float] = {}
    for prefix, data in (("training", training), ("evaluation", evaluation)):
        wanted = [name for name in (f"{prefix}_cost", f"{prefix}_accuracy") if name in monitor]
        if not wanted or data is None:                                 # (monitors() asks for evaluation
            continue                                                   # measures only with evaluation data)
        x, y = data                                                    # y: labels (n,) or targets (n, k)
        outputs = net.feedforward(x)                                   # (n_data, sizes[-1])
        if f"{prefix}_accuracy" in wanted:
            labels = y if y.ndim == 1 else y.argmax(axis=1)
            measured[f"{prefix}_accuracy"] = float(np.mean(outputs.argmax(axis=1) == labels))
        if f"{prefix}_cost" in wanted:
            # The average cost plus the regularisation term. The book's
            # network2 scales that term by the size of the data set being
            # measured; we use the training-set size n for both, so the
            # training and evaluation costs are comparable.
            cost = net.cost.fn(outputs, net.targets(y)) / y.shape[0]
            if regularizer is not None:
                cost += regularizer.cost(net.weights, n)
            measured[f"{prefix}_cost"] = float(cost)
    return measured


def saturation(net: FeedforwardNetwork, x: FloatArray) -> float | None:
    """The fraction of sigmoid and tanh neurons driven into saturation, ``|z| > 5``, on inputs x.

    There sigma'(z) < 0.007 (tanh'(z) < 0.0002): such a neuron barely learns
    (chapter 3's learning slowdown). Returns None when the network has no
    sigmoid or tanh layer.
    """
    saturated = total = 0
    a = x
    for p, layer in zip(net.params, net.layers):
        z = a @ p[:, :-1].T + p[:, -1]                   # (n, n_l)
        if layer.name in ("sigmoid", "tanh"):
            saturated += int(np.count_nonzero(np.abs(z) > 5.0))
            total += z.size
        a = layer.fn(z)
    return saturated / total if total else None
