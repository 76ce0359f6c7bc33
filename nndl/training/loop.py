"""Training by mini-batch stochastic gradient descent (chapters 1 and 3).

``train`` runs epochs of SGD: each epoch shuffles the training data (unless
``shuffle`` is off), splits
it into mini-batches of ``mini_batch_size`` examples (the last one may be
smaller), and for each mini-batch runs backpropagation and one update of
the weights and biases. After each epoch it measures what was asked for,
consults the learning-rate schedule and early stopping, and records it all
in a ``History``.
"""

import time

import numpy as np
from threadpoolctl import ThreadpoolController

from nndl.engine.backprop import Backprop
from nndl.engine.feedforward import as_labels, check_inputs
from nndl.engine.optimizers import SGD
from nndl.engine.regularizers import get_regularizer
from nndl.errors import ConfigError, InputError
from nndl.training import interrupt
from nndl.training.config import NetworkConfig, resolve_training_config
from nndl.training.history import History
from nndl.training.plateau import Plateau

__all__ = ["train", "as_dataset", "saturation"]

#: Mini-batches between two updates of the progress bar.
PROGRESS_EVERY = 250

_CONTROLLER = []


def _blas_threads():
    """The BLAS thread-pool controller, made on first use (it inspects the loaded libraries)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def as_dataset(data, net, name="training data", targets=True):
    """Inputs and desired outputs from a pair of arrays or a split with ``.images`` and ``.labels``.

    Parameters
    ----------
    data : (x, y) or a split
        x of shape (n, sizes[0]), finite. y: integer labels (n,) in
        0..sizes[-1]-1, or -- when ``targets`` -- desired outputs (n, sizes[-1])
        used as given (one-hot rows, soft targets, a single sigmoid output);
        without ``targets``, 2-d rows must be exactly one-hot.
    net : FeedforwardNetwork

    Returns
    -------
    x : ndarray, shape (n, sizes[0])
    y : ndarray, int labels of shape (n,) or float targets of shape (n, sizes[-1])
    """
    if hasattr(data, "images") and hasattr(data, "labels"):
        x, y = data.images, data.labels
    else:
        try:
            x, y = data
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a pair (inputs, labels) or a data split with .images and "
                             ".labels") from None
    x = check_inputs(x, net.sizes[0], name)
    try:
        y = np.asarray(y)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name}: labels must be an array of numbers ({e})") from None
    y = net.targets(y, name) if targets and y.ndim == 2 else as_labels(y, net.sizes[-1], name)
    if x.shape[0] != y.shape[0]:
        raise InputError(f"{name}: {x.shape[0]} inputs but {y.shape[0]} labels")
    return x, y


def train(net, training_data, config=None, *, evaluation_data=None, progress=False, on_epoch=None, **settings):
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
    config = resolve_training_config(config, settings)
    x, y = as_dataset(training_data, net)
    evaluation = None
    if evaluation_data is not None:
        evaluation = as_dataset(evaluation_data, net, "evaluation data", targets=False)
        evaluation = (evaluation[0].astype(net.dtype, copy=False), evaluation[1])   # measured every epoch
    monitor = config.monitors(evaluation is not None)
    n = x.shape[0]
    regularizer = get_regularizer(config.regularization, config.lmbda)
    divisor = config.lmbda_divisor(n)                  # n (network2) or the number of mini-batches (network3)
    _check_weight_decay(config, divisor)
    optimizer = SGD(net.params, config.eta, momentum=config.momentum, nesterov=config.nesterov,
                    weight_decay=regularizer, n=divisor)
    history = History(config=config, network=NetworkConfig.of(net), n_training=n,
                      n_evaluation=evaluation[0].shape[0] if evaluation is not None else 0)
    restore_best = config.restore_best if config.restore_best is not None else config.early_stopping is not None
    epochs = _Epochs(net, x, y, config, optimizer, progress)
    plateau = Plateau()
    best_params = net.copy_params() if restore_best else None
    good_params = net.copy_params()

    # Overflow in a diverging run is detected after the epoch and reported
    # in plain words; NumPy's warnings would only repeat it less clearly.
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            for epoch in range(config.epochs):
                epoch_time = epochs.run(epoch)
                interrupt.check()
                if not net.parameters_finite():
                    net.restore_params(good_params)
                    history.stop("diverged", f"training diverged in epoch {epoch}: weights became inf or nan "
                                             f"(eta = {optimizer.eta:g} is probably too large); the weights "
                                             "from the end of the previous epoch were kept")
                    break
                _copy(net.params, good_params)
                start = time.perf_counter()
                measured = _measure(net, monitor, (x, y), evaluation, regularizer, divisor)
                history.record(epoch, optimizer.eta, epoch_time, time.perf_counter() - start, measured)
                accuracy = history.watched_accuracy()
                if accuracy is not None and plateau.update(epoch, accuracy):
                    history.best_epoch, history.best_accuracy = epoch, accuracy
                    if best_params is not None:
                        _copy(net.params, best_params)
                if on_epoch is not None:
                    on_epoch(history)
                reason = _plateau_rules(config, plateau, optimizer)
                if reason:
                    history.stop(*reason)
                    break
        except KeyboardInterrupt:
            history.stop("interrupted", f"interrupted by the user after {len(history.epochs)} complete epochs")
            if not net.parameters_finite():
                net.restore_params(good_params)
        finally:
            epochs.close()

    if restore_best and history.best_epoch is not None:
        net.restore_params(best_params)
    _diagnose(net, history, x[:1000])
    return history


def _check_weight_decay(config, n):
    """Refuse an L2 lambda so large that weight decay flips the weights' signs every step.

    ``n`` is what lambda is divided by (``config.lmbda_divisor``)."""
    if config.regularization == "l2" and config.lmbda and config.eta * config.lmbda / n >= 1.0:
        what = "training examples" if config.lmbda_scale == "n" else "mini-batches per epoch"
        raise ConfigError(
            f"lambda = {config.lmbda:g} is too large for eta = {config.eta:g} and n = {n:,} {what}: "
            f"each step would multiply the weights by 1 - eta*lambda/n = {1 - config.eta * config.lmbda / n:.3g}; "
            f"choose lambda < n/eta = {n / config.eta:g}")


def _plateau_rules(config, plateau, optimizer):
    """Early stopping and the halve-on-plateau schedule, from the one counter.

    Returns (stop_reason, message) when training should stop, else None;
    may halve ``optimizer.eta``.
    """
    if not config.watches_plateau:
        return None
    if config.early_stopping is not None and plateau.since_best >= config.early_stopping:
        return "early stopping", f"no improvement in validation accuracy for {config.early_stopping} epochs"
    if config.schedule == "halve" and plateau.stalled_for(config.patience):
        optimizer.eta /= 2.0
        if optimizer.eta <= config.eta * config.min_eta_ratio * (1 + 1e-12):
            return "learning-rate schedule", (f"learning rate fell to 1/{round(1 / config.min_eta_ratio)} of its "
                                              f"start after {config.patience} epochs without improvement")
    return None


def _copy(params, into):
    for p, q in zip(params, into):
        np.copyto(q, p)


class _Epochs:
    """Runs epochs of mini-batch SGD: shuffles, slices mini-batches, draws dropout masks, updates.

    Holds what every epoch reuses: the Backprop workspaces (one for full
    mini-batches of m, one for a smaller last one), the random stream, and
    the progress bar.
    """

    def __init__(self, net, x, y, config, optimizer, progress):
        self.net, self.x, self.optimizer = net, x, optimizer
        self.y = net.targets(y)                                    # desired outputs (n, sizes[-1])
        n = x.shape[0]
        # A mini-batch larger than the data is the whole data set, as in the book's slicing.
        self.m, self.p_dropout = min(config.mini_batch_size, n), config.p_dropout
        self.work = Backprop(net, self.m)
        self.last = Backprop(net, n % self.m) if n % self.m else None
        self.rng = np.random.default_rng(config.seed)
        self.shuffle = config.shuffle
        self.progress, self.bar = progress, None

    def run(self, epoch):
        """One epoch; returns the seconds it took."""
        n = self.x.shape[0]
        if self.progress:
            from tqdm import tqdm
            # one bar per epoch, cleared before the epoch's line is printed
            self.bar = tqdm(total=n, desc=f"epoch {epoch}", unit="img", unit_scale=True, leave=False,
                            dynamic_ncols=True, mininterval=0.2)
        start = time.perf_counter()
        # At mini-batch sizes (a 10 x 785 by 785 x 30 product) BLAS's threads
        # cost more in synchronisation than they save: the mini-batch loop
        # runs on one thread, the measurements between epochs on all of them.
        with _blas_threads().limit(limits=1, user_api="blas"):
            order = self.rng.permutation(n) if self.shuffle else np.arange(n)
            _sgd_epoch(self.net, self.x, self.y, order, (self.work, self.last), self.optimizer,
                       self.p_dropout, self.rng, self.bar)
        elapsed = time.perf_counter() - start
        self.close()
        return elapsed

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _sgd_epoch(net, x, y, order, workspaces, optimizer, p_dropout, rng, bar):
    """One pass over the training data in the given order, a mini-batch at a time.

    Parameters
    ----------
    x : ndarray, shape (n, sizes[0])
    y : ndarray, shape (n, sizes[-1])
        Desired outputs.
    order : ndarray of int, shape (n,)
        The shuffled order of the examples.
    workspaces : (Backprop, Backprop or None)
        For full mini-batches of m examples, and for the smaller last one.
    """
    work, last = workspaces
    n, m = x.shape[0], work.m
    hidden = range(1, net.num_layers - 1)
    for chunk in range(0, n, PROGRESS_EVERY * m):
        for k in range(chunk, min(chunk + PROGRESS_EVERY * m, n), m):
            batch = order[k:k + m]
            w = work if batch.shape[0] == m else last
            w.x[...] = x.take(batch, axis=0)                        # (m, sizes[0])
            if p_dropout:
                w.masks = _dropout_masks(net, batch.shape[0], p_dropout, rng, hidden)
            w.forward()
            w.backward(y.take(batch, axis=0))
            optimizer._step_from_backprop(w, batch.shape[0])
        if bar is not None:
            bar.update(min(PROGRESS_EVERY * m, n - chunk))


def _dropout_masks(net, m, p, rng, hidden):
    """Inverted-dropout masks for the hidden layers: 0 with probability p, else 1/(1-p)."""
    masks = [None] * net.num_layers
    for l in hidden:
        keep = rng.random((m, net.sizes[l])) >= p
        masks[l] = keep.astype(net.dtype) / (1.0 - p)
    return masks


def _measure(net, monitor, training, evaluation, regularizer, n):
    """The monitored costs and accuracies after an epoch, as a dict by name.

    One forward pass per data set serves both its cost and its accuracy.
    """
    measured = {}
    for prefix, data in (("training", training), ("evaluation", evaluation)):
        wanted = [name for name in (f"{prefix}_cost", f"{prefix}_accuracy") if name in monitor]
        if not wanted:
            continue
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


def saturation(net, x):
    """The fraction of sigmoid and tanh neurons driven into saturation, |z| > 5, on inputs x.

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


def _diagnose(net, history, x):
    """Say plainly when a network ended no better than guessing, and why if we can tell."""
    if history.best_accuracy is None or history.stop_reason == "diverged" or net.sizes[-1] < 2:
        return                                       # (one output neuron: "accuracy" has no chance level)
    chance = 1.0 / net.sizes[-1]
    if history.best_accuracy > 1.5 * chance:
        return
    note = (f"the network never did much better than guessing (best accuracy {history.best_accuracy:.2%}, "
            f"chance is {chance:.0%})")
    fraction = saturation(net, x.astype(net.dtype, copy=False))
    if fraction is not None and fraction > 0.5:
        note += (f": it has saturated -- {fraction:.0%} of its neurons have |z| > 5, where they barely learn. "
                 f"Try a smaller learning rate (eta = {history.config.eta:g} now)")
        if history.stop_reason == "completed":
            history.stop_reason = "saturated"
    history.message = f"{history.message}; {note}" if history.message else note
