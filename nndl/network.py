"""The book's chapter 1 ``network`` module, running on nndl's fast engine.

The book's session runs as printed, with only the import changed::

    >>> from nndl import mnist_loader, network
    >>> training_data, validation_data, test_data = mnist_loader.load_data_wrapper()
    >>> net = network.Network([784, 30, 10])
    >>> net.SGD(training_data, 30, 10, 3.0, test_data=test_data)
    Epoch 0: 9129 / 10000
    ...

``Network`` keeps the book's interface -- sigmoid neurons, the quadratic
cost, weights and biases drawn from N(0, 1), ``weights[l]`` of shape
(n_out, n_in) and ``biases[l]`` of shape (n_out, 1), and the methods
``feedforward``, ``SGD``, ``update_mini_batch``, ``backprop``,
``evaluate`` and ``cost_derivative`` -- while the work is done by
``nndl.engine.feedforward.FeedforwardNetwork`` and ``nndl.training.train``, which
process a whole mini-batch as one matrix instead of looping over examples.

Randomness: without a ``seed``, the initial weights and the shuffling are
drawn from NumPy's global random state, so ``np.random.seed(...)`` makes a
run repeatable, as it would with the book's code.
"""

import numpy as np

from nndl.engine.backprop import Backprop
from nndl.bookcompat import BookParameters, from_book_pairs
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.engine.optimizers import SGD
from nndl.training import train

__all__ = ["Network", "sigmoid", "sigmoid_prime"]


def _seed_from_global(seed):
    return int(np.random.randint(0, 2**31 - 1)) if seed is None else seed


class Network(BookParameters):
    """The chapter 1 network: sigmoid neurons, quadratic cost, N(0, 1) initial weights.

    Parameters
    ----------
    sizes : list of int
        Neurons per layer, e.g. [784, 30, 10].
    seed : int, optional
        Seeds the initial weights and the shuffling in ``SGD``.
    dtype : numpy float dtype, default float64
    """

    def __init__(self, sizes, seed=None, dtype=np.float64):
        self.engine = FeedforwardNetwork(sizes, activations="sigmoid", cost="quadratic", init="large",
                                         seed=_seed_from_global(seed), dtype=dtype)
        self.num_layers = len(sizes)
        self.sizes = list(sizes)
        self.seed = seed



    def feedforward(self, a):
        """The output for input ``a``: a column (sizes[0], 1) gives a column (sizes[-1], 1)."""
        a = np.asarray(a)
        if a.ndim == 2 and a.shape[1] == 1 and a.shape[0] == self.sizes[0]:
            return self.engine.feedforward(a.T).T
        return self.engine.feedforward(a)

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None):
        """Train by mini-batch stochastic gradient descent, as in the book.

        ``training_data`` is a list of (x, y) pairs (x a column of inputs, y
        the one-hot desired output). With ``test_data`` (pairs of x and an
        integer label), the network is evaluated after each epoch and
        "Epoch j: correct / total" printed; otherwise "Epoch j complete".
        Returns the ``nndl.training.history.History`` of the run.
        """
        x, labels = from_book_pairs(training_data, self.sizes[0], self.sizes[-1], "training_data")
        evaluation = None
        if test_data is not None:
            evaluation = from_book_pairs(test_data, self.sizes[0], self.sizes[-1], "test_data")

        def report(history):
            j = history.epochs[-1]
            if evaluation is not None:
                n_test = evaluation[1].shape[0]
                print(f"Epoch {j}: {round(history.evaluation_accuracy[-1] * n_test)} / {n_test}", flush=True)
            else:
                print(f"Epoch {j} complete", flush=True)

        history = train(self.engine, (x, labels), epochs, mini_batch_size, eta, evaluation_data=evaluation,
                        seed=_seed_from_global(self.seed), on_epoch=report)
        if history.message:
            print(history.message)
        return history

    def update_mini_batch(self, mini_batch, eta):
        """One gradient-descent step on a list of (x, y) pairs, all examples at once."""
        x, labels = from_book_pairs(mini_batch, self.sizes[0], self.sizes[-1], "mini_batch")
        work = Backprop(self.engine, x.shape[0])
        work.x[...] = x
        work.forward()
        work.backward(self.engine.targets(labels))
        SGD(eta).step(self.engine, work, x.shape[0], x.shape[0])

    def backprop(self, x, y):
        """The gradient of the cost C_x for one example, as ``(nabla_b, nabla_w)``.

        ``nabla_b[l]`` has shape (sizes[l+1], 1) and ``nabla_w[l]`` (sizes[l+1], sizes[l]),
        like ``biases`` and ``weights``.
        """
        x = np.asarray(x, dtype=self.engine.dtype).reshape(1, -1)
        y = np.asarray(y, dtype=self.engine.dtype).reshape(1, -1)
        nabla_w, nabla_b = self.engine.backprop(x, y)
        return [b.reshape(-1, 1) for b in nabla_b], nabla_w

    def evaluate(self, test_data):
        """How many of the (x, label) pairs the network classifies correctly."""
        x, labels = from_book_pairs(test_data, self.sizes[0], self.sizes[-1], "test_data")
        return self.engine.evaluate(x, labels)

    def cost_derivative(self, output_activations, y):
        """dC_x/da for the quadratic cost: a - y."""
        return output_activations - y


def sigmoid(z):
    """The sigmoid function 1 / (1 + e^-z), element-wise."""
    from scipy.special import expit
    return expit(z)


def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    s = sigmoid(z)
    return s * (1 - s)
