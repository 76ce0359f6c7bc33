"""Training by mini-batch stochastic gradient descent (chapters 1 and 3).

``train`` runs epochs of SGD: each epoch shuffles the training data, splits
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
from nndl.engine.feedforward import as_labels
from nndl.training.history import History, MONITORS
from nndl.engine.optimizers import SGD
from nndl.engine.regularizers import get_regularizer
from nndl.training.schedules import ConstantSchedule, get_schedule
from nndl.training.stopping import EarlyStopping

__all__ = ["train", "as_dataset", "saturation"]

#: Mini-batches between two updates of the progress bar.
PROGRESS_EVERY = 250

_CONTROLLER = []


def _blas_threads():
    """The BLAS thread-pool controller, made on first use (it inspects the loaded libraries)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def as_dataset(data, name="data"):
    """(inputs, labels) from a pair of arrays or an object with ``.images`` and ``.labels``.

    Returns
    -------
    x : ndarray, shape (n, n_in)
    labels : ndarray of int, shape (n,)
    """
    if hasattr(data, "images") and hasattr(data, "labels"):
        x, y = data.images, data.labels
    else:
        try:
            x, y = data
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a pair (inputs, labels) or a data split with .images and .labels") from None
    x = np.asarray(x)
    y = as_labels(y)
    if x.ndim != 2:
        raise ValueError(f"{name}: inputs must have shape (n, features), got {x.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: {x.shape[0]} inputs but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x, y


def _check_positive_int(value, what):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive whole number, got {value!r}")
    return int(value)


def train(net, training_data, epochs, mini_batch_size, eta, *, lmbda=0.0, regularization="l2",
          momentum=0.0, nesterov=False, p_dropout=0.0, schedule=None, early_stopping=None,
          evaluation_data=None, monitor=None, restore_best=None, seed=None, progress=False,
          on_epoch=None):
    """Train ``net`` by mini-batch stochastic gradient descent.

    Parameters
    ----------
    net : FeedforwardNetwork
    training_data : (x, labels) or a split with ``.images`` and ``.labels``
        x of shape (n, sizes[0]); labels int (n,) or one-hot (n, sizes[-1]).
    epochs : int
    mini_batch_size : int
    eta : float
        The learning rate.
    lmbda : float, default 0.0
        Regularisation parameter lambda, scaled by the training-set size n
        as in the book's network2 (see ``nndl.engine.regularizers``).
    regularization : {"l2", "l1"}
    momentum : float, default 0.0
        The momentum co-efficient mu (0: plain SGD).
    nesterov : bool, default False
    p_dropout : float, default 0.0
        Probability of dropping each hidden neuron, in [0, 1). Inverted
        dropout: kept activations are scaled by 1/(1-p) during training, so
        evaluation uses the weights unchanged (the book's network3 instead
        scales the weights by 1-p at test time; the two are equivalent in
        expectation). Evaluation is always deterministic.
    schedule : None, "constant", "halve" or a schedule object
        Learning-rate schedule driven by the evaluation accuracy.
    early_stopping : int or EarlyStopping or None
        Stop when the evaluation accuracy has not improved for this many
        epochs, and restore the best weights.
    evaluation_data : (x, labels) or split, optional
        Validation or test data measured after each epoch.
    monitor : iterable of str, optional
        Any of "training_cost", "training_accuracy", "evaluation_cost",
        "evaluation_accuracy". Default: evaluation accuracy when there is
        evaluation data.
    restore_best : bool, optional
        Put back the weights of the best epoch at the end (default: only
        with early stopping).
    seed : int or None
        Seeds the shuffling and dropout; with the same network and seed,
        training gives the same numbers.
    progress : bool
        Show a progress bar for each epoch (on stderr).
    on_epoch : callable, optional
        Called as ``on_epoch(history)`` after each epoch is recorded.

    Returns
    -------
    History
        ``stop_reason`` says why training ended. A Ctrl-C stops training
        cleanly between mini-batches with stop_reason "interrupted".
    """
    x, labels = as_dataset(training_data, "training data")
    net.check_inputs(x[:1])
    epochs = _check_positive_int(epochs, "the number of epochs")
    m = _check_positive_int(mini_batch_size, "the mini-batch size")
    optimizer = SGD(eta, momentum=momentum, nesterov=nesterov)
    regularizer = get_regularizer(regularization, lmbda)
    p_dropout = float(p_dropout)
    if not 0.0 <= p_dropout < 1.0:
        raise ValueError(f"the dropout probability p must be in [0, 1), got {p_dropout}")
    evaluation = as_dataset(evaluation_data, "evaluation data") if evaluation_data is not None else None
    if evaluation is not None:
        net.check_inputs(evaluation[0][:1])
    if monitor is None:
        monitor = ("evaluation_accuracy",) if evaluation is not None else ()
    monitor = tuple(monitor)
    for name in monitor:
        if name not in MONITORS:
            raise ValueError(f"unknown monitor {name!r}; choose from {', '.join(MONITORS)}")
        if name.startswith("evaluation") and evaluation is None:
            raise ValueError(f"monitoring {name} needs evaluation data")
    schedule = get_schedule(schedule)
    if isinstance(early_stopping, (int, np.integer)) and not isinstance(early_stopping, bool):
        early_stopping = EarlyStopping(early_stopping)
    needs_accuracy = early_stopping is not None or not isinstance(schedule, ConstantSchedule)
    if needs_accuracy and evaluation is None:
        raise ValueError("early stopping and the halve-on-plateau schedule need evaluation (validation) data")
    if needs_accuracy and "evaluation_accuracy" not in monitor:
        monitor = monitor + ("evaluation_accuracy",)
    if restore_best is None:
        restore_best = early_stopping is not None

    n = x.shape[0]
    rng = np.random.default_rng(seed)
    y = net.targets(labels)                                    # one-hot desired outputs (n, sizes[-1])
    work = Backprop(net, m)
    last = Backprop(net, n % m) if n % m else None
    schedule.reset(optimizer.eta)
    if early_stopping is not None:
        early_stopping.reset()

    history = History(config=dict(
        sizes=list(net.sizes), activations=[layer.name for layer in net.layers], cost=net.cost.name,
        epochs=epochs, mini_batch_size=m, eta=optimizer.eta, lmbda=float(lmbda), regularization=regularization,
        momentum=optimizer.momentum, nesterov=optimizer.nesterov, p_dropout=p_dropout, schedule=schedule.name,
        early_stopping=early_stopping.patience if early_stopping is not None else None, seed=seed,
        dtype=net.dtype.name, n_training=n, n_evaluation=evaluation[0].shape[0] if evaluation is not None else 0))
    best_params = net.copy_params() if restore_best else None
    good_params = net.copy_params()

    bar = None
    if progress:
        from tqdm import tqdm

    # Evaluation data is measured every epoch: convert it to the network's
    # precision once (the training data is converted a mini-batch at a time).
    if evaluation is not None:
        evaluation = (evaluation[0].astype(net.dtype, copy=False), evaluation[1])
    # At mini-batch sizes (a 10 x 785 by 785 x 30 product) BLAS's threads cost
    # more in synchronisation than they save: the mini-batch loop runs on one
    # thread, the measurements between epochs on all of them.
    blas = _blas_threads()
    # Overflow in a diverging run is detected after the epoch and reported
    # in plain words; NumPy's warnings would only repeat it less clearly.
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            for epoch in range(epochs):
                if progress:
                    # one bar per epoch, cleared before the epoch's line is printed
                    bar = tqdm(total=n, desc=f"epoch {epoch}", unit="img", unit_scale=True, leave=False,
                               dynamic_ncols=True, mininterval=0.2)
                start = time.perf_counter()
                with blas.limit(limits=1, user_api="blas"):
                    _sgd_epoch(net, x, y, rng.permutation(n), (work, last), optimizer, regularizer, p_dropout,
                               rng, bar)
                epoch_time = time.perf_counter() - start
                if bar is not None:
                    bar.close()
                    bar = None

                if not net.parameters_finite():
                    net.restore_params(good_params)
                    history.stop_reason = "diverged"
                    history.message = (f"training diverged in epoch {epoch}: weights became inf or nan "
                                       f"(eta = {optimizer.eta:g} is probably too large); the weights from the "
                                       "end of the previous epoch were kept")
                    break
                for p, g in zip(net.params, good_params):
                    np.copyto(g, p)

                start = time.perf_counter()
                measured = _measure(net, monitor, (x, labels), evaluation, regularizer, n)
                # Record the epoch all at once, so that a Ctrl-C during the
                # measurements leaves every per-epoch list the same length.
                history.epochs.append(epoch)
                history.eta.append(optimizer.eta)
                history.epoch_time.append(epoch_time)
                history.monitor_time.append(time.perf_counter() - start)
                for name, value in measured.items():
                    getattr(history, name).append(value)
                accuracy = _best_candidate(history)
                if accuracy is not None and (history.best_accuracy is None or accuracy > history.best_accuracy):
                    history.best_accuracy = accuracy
                    history.best_epoch = epoch
                    if best_params is not None:
                        for p, b in zip(net.params, best_params):
                            np.copyto(b, p)
                if on_epoch is not None:
                    on_epoch(history)

                eval_accuracy = history.evaluation_accuracy[-1] if history.evaluation_accuracy else None
                if early_stopping is not None:
                    reason = early_stopping.update(eval_accuracy)
                    if reason:
                        history.stop_reason = "early stopping"
                        history.message = reason
                        break
                optimizer.eta, reason = schedule.update(optimizer.eta, eval_accuracy)
                if reason:
                    history.stop_reason = "learning-rate schedule"
                    history.message = reason
                    break
        except KeyboardInterrupt:
            history.stop_reason = "interrupted"
            history.message = f"interrupted by the user after {len(history.epochs)} complete epochs"
            if not net.parameters_finite():
                net.restore_params(good_params)
        finally:
            if bar is not None:
                bar.close()

    if restore_best and history.best_epoch is not None:
        net.restore_params(best_params)
    _diagnose(net, history, x[:1000])
    return history


def _sgd_epoch(net, x, y, order, workspaces, optimizer, regularizer, p_dropout, rng, bar):
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
            optimizer.step(net, w, batch.shape[0], n, regularizer)
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
        x, labels = data
        outputs = net.feedforward(x)                                   # (n_data, sizes[-1])
        if f"{prefix}_accuracy" in wanted:
            measured[f"{prefix}_accuracy"] = float(np.mean(outputs.argmax(axis=1) == labels))
        if f"{prefix}_cost" in wanted:
            # The average cost plus the regularisation term. The book's
            # network2 scales that term by the size of the data set being
            # measured; we use the training-set size n for both, so the
            # training and evaluation costs are comparable.
            cost = net.cost.fn(outputs, net.targets(labels)) / labels.shape[0]
            if regularizer is not None:
                cost += regularizer.cost(net.weights, n)
            measured[f"{prefix}_cost"] = float(cost)
    return measured


def _best_candidate(history):
    if history.evaluation_accuracy:
        return history.evaluation_accuracy[-1]
    if history.training_accuracy:
        return history.training_accuracy[-1]
    return None


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
    if history.best_accuracy is None or history.stop_reason == "diverged":
        return
    chance = 1.0 / net.sizes[-1]
    if history.best_accuracy > 1.5 * chance:
        return
    note = (f"the network never did much better than guessing (best accuracy {history.best_accuracy:.2%}, "
            f"chance is {chance:.0%})")
    fraction = saturation(net, x.astype(net.dtype, copy=False))
    if fraction is not None and fraction > 0.5:
        note += (f": it has saturated -- {fraction:.0%} of its neurons have |z| > 5, where they barely learn. "
                 f"Try a smaller learning rate (eta = {history.config.get('eta'):g} now)")
        if history.stop_reason == "completed":
            history.stop_reason = "saturated"
    history.message = f"{history.message}; {note}" if history.message else note
