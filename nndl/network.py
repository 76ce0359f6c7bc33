"""The book's chapter 1 ``network`` module, running on nndl's fast engine.

The book's session runs as printed, with only the import changed::

    >>> from nndl import mnist_loader, network
    >>> training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    >>> net = network.Network([784, 30, 10])
    >>> net.SGD(training_data, 30, 10, 3.0, test_data=test_data)
    Epoch 0: 9129 / 10000
    ...

``Network`` keeps the book's interface -- sigmoid neurons, the quadratic
cost, weights and biases drawn from N(0, 1), ``num_layers`` and ``sizes``,
``weights[l]`` of shape (n_out, n_in) and ``biases[l]`` of shape (n_out, 1),
and the methods ``feedforward``, ``SGD``, ``update_mini_batch``,
``backprop``, ``evaluate`` and ``cost_derivative`` -- while the work is done
by ``nndl.engine.feedforward.FeedforwardNetwork`` (``net.engine``) and
``nndl.training.train``, which process a whole mini-batch as one matrix
instead of looping over examples. The desired outputs y are used as given:
one-hot columns, soft targets, or the single output of a [2, 3, 1] network.

Where nndl differs from the book
--------------------------------
- Randomness: without a ``seed``, the initial weights and the shuffling are
  drawn from NumPy's global random state, so ``np.random.seed(...)`` makes a
  run repeatable, as it would with the book's code (whose shuffle uses
  Python's ``random`` module, so the orders themselves differ). ``SGD``
  leaves the order of the caller's ``training_data`` alone; the book
  shuffles the caller's list in place.
- ``SGD`` returns None, as the book's does, and keeps the record of the run
  (``nndl.training.history.History``) in ``net.history``. When training
  ends unusually (the weights diverged, the network saturated), it prints
  one more line saying so.
- ``weights`` and ``biases`` are views of the engine's parameters
  (``nndl.bookcompat.ParameterList``): item assignment and in-place changes
  reach the network, and shapes are checked.
- ``feedforward`` also takes rows (n, sizes[0]), nndl's layout; see there.
- Mistakes raise ``nndl.errors`` classes: ``InputError`` for data of the
  wrong shape or kind, ``ConfigError`` for settings that cannot work.
"""

import numpy as np

from nndl.bookcompat import (
    BookNetwork,
    check_dtype,
    check_sizes,
    draw_seed,
    labels_of,
    plain,
    private_rng,
    sigmoid,
    sigmoid_prime,
)
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.training import train

__all__ = ["Network", "sigmoid", "sigmoid_prime"]


class Network(BookNetwork):
    """The chapter 1 network: sigmoid neurons, quadratic cost, N(0, 1) initial weights and biases.

    Parameters
    ----------
    sizes : list of int
        Neurons per layer, e.g. [784, 30, 10] or [2, 3, 1].
    seed : int, optional
        Seeds the initial weights (the same as ``FeedforwardNetwork``'s with
        that seed) and, with a separate stream, the shuffling in ``SGD``.
        Without it NumPy's global random state is used.
    dtype : numpy float dtype, default float64

    Attributes
    ----------
    num_layers : int
    sizes : list of int
    weights, biases : ParameterList
        ``weights[l]`` (sizes[l+1], sizes[l]) and ``biases[l]`` (sizes[l+1], 1).
    engine : FeedforwardNetwork
        The network itself.
    history : History or None
        The record of the last ``SGD`` run.
    """

    def __init__(self, sizes, seed=None, dtype=np.float64):
        sizes = check_sizes(sizes)
        self._rng = private_rng(seed)
        self.engine = FeedforwardNetwork(sizes, activations="sigmoid", cost="quadratic", init="large",
                                         seed=seed if seed is not None else draw_seed(), dtype=check_dtype(dtype))
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.seed = seed
        self.history = None

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None):
        """Train by mini-batch stochastic gradient descent, as in the book.

        Parameters
        ----------
        training_data : list of (x, y)
            x a (sizes[0], 1) column of inputs, y the desired output as a
            (sizes[-1], 1) column, used as given (one-hot or not). Integer
            labels are also accepted (as their one-hot columns).
        epochs, mini_batch_size : int
        eta : float
            The learning rate.
        test_data : list of (x, label), optional
            When given and not empty (the book tests ``if test_data``), the
            network is evaluated after each epoch and "Epoch j: correct /
            total" printed; otherwise "Epoch j complete". A pair whose y is
            a column counts as correct when the largest output is where y
            is largest.

        Returns
        -------
        None
            As the book's. The record of the run is in ``net.history``.
        """
        x, y = self._data(training_data, "training_data")
        test_pairs = list(test_data) if test_data is not None else []
        evaluation = None
        if test_pairs:
            test_x, test_y = self._data(test_pairs, "test_data")
            evaluation = (test_x, labels_of(test_y))
        n_test = len(test_pairs)

        def report(history):
            j = history.epochs[-1]
            if evaluation is not None:
                correct = int(round(history.evaluation_accuracy[-1] * n_test))
                print(f"Epoch {j}: {correct} / {n_test}", flush=True)
            else:
                print(f"Epoch {j} complete", flush=True)

        self.history = train(self.engine, (x, y), epochs=plain(epochs), mini_batch_size=plain(mini_batch_size),
                             eta=plain(eta), evaluation_data=evaluation,
                             monitor=("evaluation_accuracy",) if evaluation is not None else (),
                             seed=draw_seed(self._rng), on_epoch=report)
        if self.history.stop_reason != "completed":           # diverged, saturated, stopped early
            print(self.history.message, flush=True)

    def update_mini_batch(self, mini_batch, eta):
        """One step of gradient descent on a list of (x, y) pairs: w -> w - (eta/m) sum_x dC_x/dw,
        b -> b - (eta/m) sum_x dC_x/db, m = len(mini_batch). All m examples go through the
        network as one matrix."""
        self._gradient_step(mini_batch, eta)

    def backprop(self, x, y):
        """The gradient of the cost C_x for one example, as ``(nabla_b, nabla_w)``.

        ``x`` is a (sizes[0], 1) column and ``y`` the desired (sizes[-1], 1)
        output. ``nabla_b[l]`` has shape (sizes[l+1], 1) and ``nabla_w[l]``
        (sizes[l+1], sizes[l]), like ``biases`` and ``weights``.
        """
        return self._backprop(x, y)

    def evaluate(self, test_data):
        """How many of the (x, label) pairs the network classifies correctly (0 for no pairs).

        The network's answer is the index of its most active output neuron.
        A pair whose y is a column counts as correct when that index is where
        y is largest.
        """
        return self._count_correct(test_data, "test_data")

    def cost_derivative(self, output_activations, y):
        """dC_x/da for the quadratic cost: a - y."""
        return output_activations - y

    def __repr__(self):
        return f"network.Network({self.sizes})"
