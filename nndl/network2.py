"""The book's chapter 3 ``network2`` module, running on nndl's fast engine.

The chapter 3 sessions run as printed, with only the import changed::

    >>> from nndl import mnist_loader, network2
    >>> training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    >>> net = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost)
    >>> net.large_weight_initializer()
    >>> net.SGD(training_data, 30, 10, 0.5, evaluation_data=test_data,
    ...         monitor_evaluation_accuracy=True)
    Epoch 0 training complete
    Accuracy on evaluation data: 9120 / 10000
    ...

How it maps onto the engine
---------------------------
``Network`` wraps an ``nndl.engine.feedforward.FeedforwardNetwork`` (``net.engine``)
with sigmoid neurons. ``weights[l]`` (shape (n_out, n_in)) and ``biases[l]``
(shape (n_out, 1), the book's columns) are views into the engine's
parameter matrices (``nndl.bookcompat.ParameterList``): changing them in
place, assigning an item (``net.weights[0] = W``) or the whole list changes
the network, with shapes checked.

The book's data -- lists of ``(x, y)`` pairs with x a (n_in, 1) column and
y the desired (n_out, 1) output (one-hot for MNIST training data, but any
values: soft targets, the single output of a [2, 3, 1] network) or an
integer label (validation and test data) -- is converted *once* per call
into arrays of rows (``nndl.bookcompat.from_book_pairs``); vector y are
used as given, never reduced to labels. ``SGD`` then hands the arrays to
``nndl.training.train``, which processes each mini-batch as one matrix, and
prints the book's per-epoch lines from its ``on_epoch`` callback.
``update_mini_batch`` applies the book's update rule to the gradients of
the engine's matrix-based backpropagation.

What differs from the book
--------------------------
- Python 3 and NumPy arrays of float64 (or float32 with ``dtype=``);
  every method that takes data accepts any iterable of pairs, and lists are
  returned where the book returns lists.
- Speed: mini-batches are matrix products, not loops over examples.
- Randomness: the initial weights and the shuffling of the training data
  come from NumPy's global random state (``np.random.seed(...)`` repeats a
  run), not from Python's ``random`` module; pass ``seed=`` to
  ``Network`` for a private, repeatable stream instead. ``SGD`` leaves the
  order of the caller's ``training_data`` alone (the book shuffles the
  caller's list in place).
- ``feedforward`` also takes a block of columns (n_in, k) and nndl's rows
  (n, n_in); see there.
- Mistakes raise ``nndl.errors`` classes: ``InputError`` for data of the
  wrong shape or kind, ``ConfigError`` for settings that cannot work.
- The cross-entropy of an output that is exactly 0 or 1 is clipped to a
  large finite value (the book's ``np.nan_to_num`` gives about 1.8e308).
- Monitored costs: ``SGD`` prints and returns costs with the book's
  convention -- the regularisation term 0.5 * (lmbda / n) * sum ||w||^2
  uses n = the size of the data set being measured -- computed in the
  ``on_epoch`` callback with ``total_cost``'s convention. (``nndl.training.train``
  itself, when asked to monitor costs, uses n = the training-set size for
  evaluation data too, so that training and evaluation costs are
  comparable; its ``History`` is kept in ``net.history`` but its cost lists
  are not filled by ``SGD``.)
- Early stopping (``early_stopping_n``) stops like the book's -- after n
  epochs without a higher evaluation accuracy -- and, like the book, keeps
  the final weights rather than restoring the best ones; the reason for
  stopping is printed.
- ``accuracy`` and ``total_cost`` accept the book's ``convert`` flag but
  recognise integer labels and one-hot columns by themselves, so either
  kind of data works with either value.
- ``save`` writes the book's JSON layout atomically; ``load`` also reads
  nndl's own model files (``nndl.engine.modelio``), provided every layer is
  sigmoid.
"""

import json

import numpy as np

from nndl.bookcompat import (
    BookNetwork,
    check_dtype,
    check_number,
    check_sizes,
    draw_seed,
    labels_of,
    plain,
    private_rng,
    sigmoid,
    sigmoid_prime,
    targets_of,
    vectorized_result,
)
from nndl.engine import costs as _costs
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.engine.initializers import get_initializer
from nndl.errors import ConfigError, ModelFileError
from nndl.files.atomic import atomic_write_text
from nndl.training import train

__all__ = ["Network", "QuadraticCost", "CrossEntropyCost", "load", "vectorized_result", "sigmoid",
           "sigmoid_prime"]


# --- costs ----------------------------------------------------------------
#
# The book calls its costs on the class, with column vectors:
# ``CrossEntropyCost.fn(a, y)`` and ``CrossEntropyCost.delta(z, a, y)``. The
# engine calls the same methods on an instance, with mini-batches of rows and
# more arguments. Static methods serve both.

_ENGINE_QUADRATIC = _costs.QuadraticCost()
_ENGINE_CROSS_ENTROPY = _costs.CrossEntropyCost()


class QuadraticCost(_costs.QuadraticCost):
    """The quadratic cost 1/2 ||a - y||^2, usable as the book's static class.

    ``fn(a, y)`` sums over every entry (one column or many rows);
    ``delta(z, a, y)`` is the book's output error (a - y) * sigma'(z).
    """

    @staticmethod
    def fn(a, y):
        d = np.asarray(a) - np.asarray(y)
        return 0.5 * float(np.vdot(d, d))

    @staticmethod
    def delta(z, a, y, activation=None, tmp=None, out=None):
        if activation is None:                       # the book's call, sigmoid output layer
            return (np.asarray(a) - np.asarray(y)) * sigmoid_prime(np.asarray(z))
        return _ENGINE_QUADRATIC.delta(z, a, y, activation, tmp, out)


class CrossEntropyCost(_costs.CrossEntropyCost):
    """The cross-entropy cost -sum [y ln a + (1 - y) ln(1 - a)], usable as the book's static class.

    ``fn(a, y)`` sums over every entry (one column or many rows);
    ``delta(z, a, y)`` is the book's output error a - y for sigmoid outputs.
    """

    @staticmethod
    def fn(a, y):
        return _ENGINE_CROSS_ENTROPY.fn(np.asarray(a), np.asarray(y))

    @staticmethod
    def delta(z, a, y, activation=None, tmp=None, out=None):
        if activation is None:                       # the book's call, sigmoid output layer
            return np.asarray(a) - np.asarray(y)
        return _ENGINE_CROSS_ENTROPY.delta(z, a, y, activation, tmp, out)


_BOOK_COSTS = {"quadratic": QuadraticCost, "cross-entropy": CrossEntropyCost}


def _book_cost(spec):
    """The network2 cost class for a class, instance or name of the quadratic or cross-entropy cost."""
    if isinstance(spec, str) and spec in ("QuadraticCost", "CrossEntropyCost"):
        spec = {"QuadraticCost": "quadratic", "CrossEntropyCost": "cross-entropy"}[spec]
    name = _costs.get_cost(spec).name
    if name not in _BOOK_COSTS:
        raise ConfigError(f"network2 has the quadratic and cross-entropy costs only, not {name!r}; "
                         "use nndl.engine.feedforward.FeedforwardNetwork for other costs")
    return _BOOK_COSTS[name]


# --- the network ------------------------------------------------------------

class Network(BookNetwork):
    """The chapter 3 network: sigmoid neurons, a choice of cost, better initial weights.

    Parameters
    ----------
    sizes : list of int
        Neurons per layer, e.g. [784, 30, 10].
    cost : QuadraticCost or CrossEntropyCost (class), default CrossEntropyCost
        Also accepted: an instance, nndl.engine.costs' classes, or the names
        "quadratic" / "cross-entropy".
    seed : int, optional
        Seeds the initial weights (the same as ``FeedforwardNetwork``'s with
        that seed) and, with a separate private stream, the initialisers and
        the shuffling in ``SGD``; without it NumPy's global random state is
        used, as the book uses its global generators.
    dtype : numpy float dtype, default float64

    The weights start from ``default_weight_initializer``: N(0, 1/n_in)
    weights and N(0, 1) biases.

    Attributes
    ----------
    num_layers : int
    sizes : list of int
    weights, biases : ParameterList
        ``weights[l]`` (sizes[l+1], sizes[l]) and ``biases[l]`` (sizes[l+1], 1).
    cost : QuadraticCost or CrossEntropyCost
    engine : FeedforwardNetwork
    history : History or None
        The record of the last ``SGD`` run.
    """

    def __init__(self, sizes, cost=CrossEntropyCost, seed=None, dtype=np.float64):
        sizes = check_sizes(sizes)
        cost = _book_cost(cost)
        rng = private_rng(seed)
        engine = FeedforwardNetwork(sizes, activations="sigmoid", cost=cost(), init="default",
                                    seed=seed if seed is not None else draw_seed(), dtype=check_dtype(dtype))
        self._attach(engine, seed, rng)

    def _attach(self, engine, seed, rng):
        self.engine = engine
        self.sizes = list(engine.sizes)
        self.num_layers = len(self.sizes)
        self.seed = seed
        self._rng = rng
        self.history = None

    @property
    def cost(self):
        """The cost class, ``QuadraticCost`` or ``CrossEntropyCost`` (assignable)."""
        return type(self.engine.cost)

    @cost.setter
    def cost(self, value):
        self.engine.cost = _book_cost(value)()

    # --- initial weights --------------------------------------------------------

    def _initialize(self, init):
        rng = self._rng if self._rng is not None else np.random.default_rng(draw_seed())
        initializer = get_initializer(init)
        drawn = [initializer(n_in, n_out, rng, dtype=self.engine.dtype)
                 for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]
        self.weights = [w for w, _ in drawn]
        self.biases = [b for _, b in drawn]

    def default_weight_initializer(self):
        """Draw new weights from N(0, 1/n_in) and biases from N(0, 1) (the default since chapter 3).

        Scaling each weight by 1/sqrt(n_in) keeps the weighted input z of a
        neuron of width about 1, so the sigmoids start away from saturation.
        """
        self._initialize("default")

    def large_weight_initializer(self):
        """Draw new weights and biases from N(0, 1), the initialisation of chapter 1."""
        self._initialize("large")

    # --- training -----------------------------------------------------------------

    def SGD(self, training_data, epochs, mini_batch_size, eta, lmbda=0.0, evaluation_data=None,
            monitor_evaluation_cost=False, monitor_evaluation_accuracy=False, monitor_training_cost=False,
            monitor_training_accuracy=False, early_stopping_n=0):
        """Train by mini-batch stochastic gradient descent with L2 regularisation, as in the book.

        Parameters
        ----------
        training_data : list of (x, y)
            x a (sizes[0], 1) column, y the desired (sizes[-1], 1) output,
            used as given (one-hot or not); integer labels are also
            accepted (as their one-hot columns).
        epochs, mini_batch_size : int
        eta : float
            The learning rate.
        lmbda : float, default 0.0
            The L2 regularisation parameter; each step shrinks the weights by
            the factor 1 - eta * lmbda / n, n = len(training_data).
        evaluation_data : list of (x, label), optional
            Validation or test data, labels as ints. None or an empty list
            (falsy, as the book tests it) means no evaluation data.
        monitor_evaluation_cost, monitor_evaluation_accuracy, monitor_training_cost, monitor_training_accuracy : bool
            What to measure, print and return after each epoch.
        early_stopping_n : int, default 0
            When > 0, stop once the evaluation accuracy has not improved for
            this many epochs (needs ``evaluation_data``). As in the book the
            final weights are kept, not the best ones.

        Returns
        -------
        (evaluation_cost, evaluation_accuracy, training_cost, training_accuracy) : four lists
            One entry per epoch for each quantity monitored, empty lists for
            the others. Costs are floats computed like ``total_cost`` (the
            regularisation term uses the size of the data set measured);
            accuracies are counts of correctly classified examples (ints),
            the largest output compared with the label (with the largest
            desired output, for training data). The full record of the run
            is in ``net.history``.

        Per epoch it prints "Epoch j training complete", then for what is
        monitored "Cost on training data: ...", "Accuracy on training data:
        c / n", "Cost on evaluation data: ..." and "Accuracy on evaluation
        data: c / n", then an empty line.
        """
        x, y = self._data(training_data, "training_data")
        n = x.shape[0]
        lmbda = check_number(lmbda, "the regularisation parameter lmbda", minimum=0)
        early_stopping_n = check_number(early_stopping_n or 0, "early_stopping_n", minimum=0, whole=True)
        evaluation_pairs = list(evaluation_data) if evaluation_data is not None else []
        evaluation = self._data(evaluation_pairs, "evaluation_data") if evaluation_pairs else None
        if (monitor_evaluation_cost or monitor_evaluation_accuracy or early_stopping_n) and evaluation is None:
            raise ConfigError("monitoring the evaluation cost or accuracy, and early stopping, need "
                              "evaluation_data (validation or test data)")

        monitor = []
        if monitor_training_accuracy:
            monitor.append("training_accuracy")
        if monitor_evaluation_accuracy or early_stopping_n:
            monitor.append("evaluation_accuracy")
        evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = [], [], [], []

        def report(history):
            # The engine measured the accuracies (as fractions); the costs are
            # measured here with the book's convention for the regularisation
            # term: n = the size of the data set whose cost is measured.
            print(f"Epoch {history.epochs[-1]} training complete")
            if monitor_training_cost:
                cost = self._total_cost(x, y, lmbda)
                training_cost.append(cost)
                print(f"Cost on training data: {cost}")
            if monitor_training_accuracy:
                correct = int(round(history.training_accuracy[-1] * n))
                training_accuracy.append(correct)
                print(f"Accuracy on training data: {correct} / {n}")
            if monitor_evaluation_cost and evaluation is not None:          # (evaluation is given: see above)
                cost = self._total_cost(evaluation[0], evaluation[1], lmbda)
                evaluation_cost.append(cost)
                print(f"Cost on evaluation data: {cost}")
            if monitor_evaluation_accuracy and evaluation is not None:
                n_data = evaluation[0].shape[0]
                correct = int(round(history.evaluation_accuracy[-1] * n_data))
                evaluation_accuracy.append(correct)
                print(f"Accuracy on evaluation data: {correct} / {n_data}")
            print(flush=True)

        self.history = train(self.engine, (x, y), epochs=plain(epochs), mini_batch_size=plain(mini_batch_size),
                             eta=plain(eta), lmbda=lmbda, regularization="l2",
                             evaluation_data=(evaluation[0], labels_of(evaluation[1])) if evaluation else None,
                             monitor=tuple(monitor), early_stopping=early_stopping_n or None, restore_best=False,
                             seed=draw_seed(self._rng), on_epoch=report)
        if self.history.stop_reason != "completed":           # diverged, saturated, stopped early
            print(self.history.message, flush=True)
        return evaluation_cost, evaluation_accuracy, training_cost, training_accuracy

    def update_mini_batch(self, mini_batch, eta, lmbda, n):
        """One step of gradient descent with L2 weight decay on a list of (x, y) pairs.

        w -> (1 - eta lmbda / n) w - (eta / m) sum_x dC_x/dw and
        b -> b - (eta / m) sum_x dC_x/db, with m = len(mini_batch) and n the
        size of the whole training set; all m examples go through the
        network as one matrix.
        """
        lmbda = check_number(lmbda, "the regularisation parameter lmbda", minimum=0)
        n = check_number(n, "n, the size of the training set", positive=True, whole=True)
        self._gradient_step(mini_batch, eta, lmbda, n)

    def backprop(self, x, y):
        """The gradient of the cost C_x for one example, as ``(nabla_b, nabla_w)``.

        ``x`` is a (sizes[0], 1) column and ``y`` the desired (sizes[-1], 1)
        output (an integer label is also accepted). ``nabla_b[l]`` has
        shape (sizes[l+1], 1) and ``nabla_w[l]`` (sizes[l+1], sizes[l]),
        like ``biases`` and ``weights``.
        """
        return self._backprop(x, y)

    # --- measuring ------------------------------------------------------------------

    def accuracy(self, data, convert=False):
        """How many of the (x, y) pairs in ``data`` the network classifies correctly (an int).

        The network's answer is the index of its most active output neuron.
        In the book ``convert=True`` marks training data, whose y are one-hot
        columns (compared by their largest entry), and ``convert=False``
        validation or test data, whose y are integer labels; here both
        kinds of y are recognised whatever ``convert`` says.
        """
        return self._count_correct(data, "data")

    def total_cost(self, data, lmbda, convert=False):
        """The average cost over ``data`` plus the L2 term 0.5 * (lmbda / len(data)) * sum ||w||^2.

        As in the book, the regularisation term uses the size of ``data``
        itself. In the book ``convert=True`` marks validation or test data,
        whose y are integer labels to be turned into one-hot columns; here
        labels and vector y (used as given) are both recognised whatever
        ``convert`` says.
        """
        lmbda = check_number(lmbda, "the regularisation parameter lmbda", minimum=0)
        x, y = self._data(data, "data")
        return self._total_cost(x, y, lmbda)

    def _total_cost(self, x, y, lmbda):
        """``total_cost`` on arrays: x (n, sizes[0]); y labels (n,) or desired outputs (n, sizes[-1])."""
        n_data = x.shape[0]
        outputs = self.engine.feedforward(x)                                  # (n_data, sizes[-1])
        cost = self.cost.fn(outputs, targets_of(y, self.sizes[-1])) / n_data
        squares = sum(float(np.vdot(w, w)) for w in self.weights)
        return float(cost + 0.5 * (lmbda / n_data) * squares)

    # --- files ------------------------------------------------------------------------

    def save(self, filename):
        """Write the network to ``filename`` in the book's JSON layout, atomically.

        Keys: "sizes", "weights" (nested lists), "biases" (nested lists of
        shape (n, 1)) and "cost" ("QuadraticCost" or "CrossEntropyCost"), so
        the book's own ``network2.load`` reads it too.
        """
        data = {"sizes": list(self.sizes),
                "weights": [np.asarray(w, dtype=np.float64).tolist() for w in self.weights],
                "biases": [np.asarray(b, dtype=np.float64).tolist() for b in self.biases],
                "cost": self.cost.__name__}
        atomic_write_text(filename, json.dumps(data))

    def __repr__(self):
        return f"network2.Network({self.sizes}, cost=network2.{self.cost.__name__})"


def load(filename):
    """Read a ``Network`` from a file written by ``Network.save`` (or the book's), or an nndl model file.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    nndl.errors.ModelFileError (a ValueError)
        If the file is not a readable model, or holds a network that is not
        a network2 one: layers other than sigmoid, or a cost other than the
        quadratic and cross-entropy costs.
    """
    from nndl.engine import modelio
    engine = modelio.load(filename)
    names = [layer.name for layer in engine.layers]
    if any(name != "sigmoid" for name in names):
        raise ModelFileError(f"{filename}: network2 has only sigmoid neurons, but this network's layers are "
                             f"{', '.join(names)}; load it with nndl.files.modelio.load instead")
    try:
        engine.cost = _book_cost(engine.cost.name)()
    except ConfigError as e:
        raise ModelFileError(f"{filename}: {e}") from None
    net = Network.__new__(Network)
    net._attach(engine, None, None)
    return net
