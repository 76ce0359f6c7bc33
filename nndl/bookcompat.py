"""What the book-compatible modules (``nndl.network``, ``nndl.network2``) share.

The book's networks keep their parameters in two lists of arrays,
``weights[l]`` of shape (sizes[l+1], sizes[l]) and ``biases[l]`` of shape
(sizes[l+1], 1), and take data as lists of (column vector, desired output)
pairs. Here the parameters live in an ``nndl.engine.feedforward.FeedforwardNetwork``
(``net.engine``), whose ``params[l]`` is the matrix [W | b], and the data is
converted once, at the edge, into arrays of rows.

Everything both modules need is defined once, here:

- the book's helpers ``sigmoid``, ``sigmoid_prime`` and ``vectorized_result``;
- ``BookNetwork``, the base of both ``Network`` classes: the ``weights`` and
  ``biases`` lists (as ``ParameterList``), ``feedforward``, ``backprop`` for
  one example, and the book's gradient-descent step;
- ``from_book_pairs``, the conversion of the book's data;
- the checks of sizes and settings, and the draw of a seed from NumPy's
  global random state (the book seeds nothing and uses global generators).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from nndl.engine.optimizers import SGD
from nndl.engine.regularizers import get_regularizer
from nndl.errors import ConfigError, InputError
from nndl.validate import float_dtype, layer_sizes

if TYPE_CHECKING:
    from nndl.engine.feedforward import FeedforwardNetwork

__all__ = ["sigmoid", "sigmoid_prime", "vectorized_result", "draw_seed", "private_rng", "check_sizes", "check_dtype",
           "plain", "check_number", "from_book_pairs", "labels_of", "targets_of", "ParameterList", "BookNetwork"]


# --- the book's helpers -------------------------------------------------------

def sigmoid(z):
    """The sigmoid function 1 / (1 + e^-z), element-wise (without overflow warnings for large -z)."""
    return expit(z)


def sigmoid_prime(z):
    """The derivative of the sigmoid function, sigma(z) (1 - sigma(z)), element-wise."""
    s = expit(z)
    return s * (1 - s)


def vectorized_result(j, n=10):
    """A (n, 1) column with 1.0 in position j and zeros elsewhere (n = 10 digits by default)."""
    e = np.zeros((n, 1))
    e[j] = 1.0
    return e


# --- randomness and settings ------------------------------------------------------

def draw_seed(rng=None):
    """A seed for the engine: from ``rng`` (a network's private stream) or NumPy's global random state.

    Drawing from the global state when there is no private stream makes
    ``np.random.seed(...)`` repeat a run, as it would with the book's code.
    """
    if rng is not None:
        return int(rng.integers(0, 2**31 - 1))
    return int(np.random.randint(0, 2**31 - 1))


def private_rng(seed):
    """The random stream for ``SGD``'s shuffling of a network made with ``seed``; None without a seed.

    The stream is spawned from ``seed`` (``numpy.random.SeedSequence``), so
    it is independent of the initial weights, which the engine draws from
    ``seed`` itself.
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"the seed must be a whole number >= 0 or None, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(1)[0])


def check_sizes(sizes):
    """``sizes`` (any iterable of layer sizes) as a list of ints, or ConfigError: see ``nndl.validate.layer_sizes``."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        return list(layer_sizes(sizes))                      # refused there, in its words
    return list(layer_sizes(list(sizes)))


def check_dtype(dtype):
    """float64 or float32 as a NumPy dtype, or ConfigError."""
    return float_dtype(dtype)


def plain(value):
    """A NumPy scalar as the Python number it holds (``np.int64(30)`` -> 30); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


#: The real numbers ``check_number`` takes: Python's and NumPy's (the ones ``np.isfinite`` accepts).
_REAL_TYPES = (int, float, np.integer, np.floating)


def check_number(value, what, minimum=None, positive=False, whole=False):
    """``value`` as a float (an int when ``whole``), or ConfigError when it is not a finite number in range."""
    if isinstance(value, bool) or not isinstance(value, _REAL_TYPES) or not np.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    if whole and value != int(value):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{what} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, got {value!r}")
    return int(value) if whole else float(value)


# --- data ---------------------------------------------------------------------------

def _is_label(y):
    """True for an integer class label: a Python or NumPy integer (not a bool), or a 0-d integer array."""
    if isinstance(y, np.ndarray):                        # first: the book's training y are arrays
        return y.ndim == 0 and y.dtype.kind in "iu"
    return isinstance(y, numbers.Integral) and not isinstance(y, (bool, np.bool_))


def _array(value, what):
    """``value`` as an array, or InputError (for ragged nested lists, say)."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} must be an array of numbers ({e})") from None


def from_book_pairs(data, n_in, n_out, what="data"):
    """Arrays of rows from the book's data: a list of (x, y) pairs.

    Parameters
    ----------
    data : iterable of (x, y)
        x a column (n_in, 1) (or any array of n_in numbers). y, for every
        pair alike, either an integer label in 0..n_out-1 (the book's
        validation and test data) or the desired output as a column
        (n_out, 1) or a vector (n_out,) -- one-hot (the book's training
        data) or not (soft targets, a single sigmoid output, regression
        targets). With one output neuron (n_out == 1) a plain number y is a
        desired output, not a label.
    n_in, n_out : int
        The network's input and output sizes.
    what : str
        The argument's name, for messages.

    Returns
    -------
    x : ndarray, shape (n, n_in)
        The inputs, in the dtype they came in.
    y : ndarray
        int64 labels of shape (n,) when every y is a label; otherwise the
        desired outputs as given, float64 of shape (n, n_out).

    Raises
    ------
    InputError
        For empty data, items that are not pairs, x or y of the wrong size,
        labels out of range, or a mixture of labels and vectors.
    """
    try:
        pairs = data if isinstance(data, list) else list(data)
    except TypeError:
        raise InputError(f"{what} must be a list of (x, y) pairs, got {type(data).__name__}") from None
    if not pairs:
        raise InputError(f"{what} is empty")
    xs, ys = [], []
    for i, pair in enumerate(pairs):
        try:
            x, y = pair
        except (TypeError, ValueError):
            raise InputError(f"{what}[{i}] must be a pair (x, y), got {type(pair).__name__}") from None
        x = _array(x, f"x in {what}[{i}]")
        if x.size != n_in or x.dtype.kind not in "biuf":
            raise InputError(f"the network's input layer has {n_in} neurons, but x in {what}[{i}] has shape "
                             f"{x.shape} (dtype {x.dtype}); each x must be a ({n_in}, 1) column of numbers")
        xs.append(x.reshape(-1))
        ys.append(y)

    is_label = [n_out != 1 and _is_label(y) for y in ys]
    if all(is_label):
        labels = np.fromiter((int(y) for y in ys), dtype=np.int64, count=len(ys))
        bad = np.flatnonzero((labels < 0) | (labels >= n_out))
        if bad.size:
            raise InputError(f"{what}[{bad[0]}]: label {labels[bad[0]]} is not in 0..{n_out - 1} "
                             f"(the network has {n_out} output neurons)")
        return np.concatenate(xs).reshape(-1, n_in), labels
    if any(is_label):
        raise InputError(f"{what} mixes integer labels ({what}[{is_label.index(True)}]) and desired-output "
                         f"vectors ({what}[{is_label.index(False)}]); use one kind for all pairs")
    shapes = {(n_out, 1), (n_out,)} | ({(), (1,), (1, 1)} if n_out == 1 else set())
    ys = [_array(y, f"y in {what}[{i}]") for i, y in enumerate(ys)]
    for i, y in enumerate(ys):
        if y.shape not in shapes or y.dtype.kind not in "biuf":
            kind = "a number, or " if n_out == 1 else f"an integer label in 0..{n_out - 1}, or "
            raise InputError(f"{what}[{i}]: y must be {kind}a ({n_out}, 1) column of desired outputs; "
                             f"got shape {y.shape} (dtype {y.dtype})")
    targets = np.concatenate([y.reshape(-1) for y in ys]).astype(np.float64, copy=False).reshape(-1, n_out)
    return np.concatenate(xs).reshape(-1, n_in), targets


def labels_of(y):
    """Class labels (n,) from labels (n,) or desired outputs (n, k): the index of the largest output."""
    return y if y.ndim == 1 else y.argmax(axis=1)


def targets_of(y, n_out):
    """Desired outputs (n, n_out) from labels (n,) (as one-hot rows, the book's ``vectorized_result``)
    or from desired outputs (n, n_out), returned as they are."""
    if y.ndim == 2:
        return y
    out = np.zeros((y.shape[0], n_out))
    out[np.arange(y.shape[0]), y] = 1.0
    return out


# --- parameters ------------------------------------------------------------------------

class ParameterList:
    """The book's ``weights`` or ``biases`` list, backed by the engine's parameter matrices.

    ``net.weights[l]`` is a view of the weights of layer l+1, shape
    (sizes[l+1], sizes[l]); ``net.biases[l]`` a view of its biases, shape
    (sizes[l+1], 1). Changing a view in place changes the network, and so
    does item assignment: ``net.weights[0] = W`` copies W in after checking
    its shape. The length is fixed (one entry per layer after the input).
    ``copy.deepcopy`` gives a plain list of copies, ``list(...)`` a plain
    list of views.
    """

    def __init__(self, net, kind):
        self._net = net
        self._kind = kind                    # "weights" or "biases"

    def _view(self, p):
        return p[:, :-1] if self._kind == "weights" else p[:, -1:]

    def _params(self):
        return self._net.engine.params

    def __len__(self):
        return len(self._params())

    def __getitem__(self, index):
        params = self._params()
        if isinstance(index, slice):
            return [self._view(p) for p in params[index]]
        return self._view(params[index])

    def __iter__(self):
        return (self._view(p) for p in self._params())

    def __setitem__(self, index, value):
        params = self._params()
        if isinstance(index, slice):
            positions = range(len(params))[index]
            values = list(value)
            if len(values) != len(positions):
                raise InputError(f"cannot assign {len(values)} {self._kind} arrays to {len(positions)} layers; "
                                 "a network's number of layers is fixed")
            checked = [self._checked(i, v) for i, v in zip(positions, values)]
            for i, v in zip(positions, checked):
                np.copyto(self._view(params[i]), v)
            return
        position = range(len(params))[index]            # an IndexError, like a list's, when out of range
        np.copyto(self._view(params[position]), self._checked(position, value))

    def assign(self, values):
        """Copy a whole list of arrays in (``net.weights = [...]``), after checking every shape."""
        try:
            values = list(values)
        except TypeError:
            raise InputError(f"{self._kind} must be a list of arrays, got {type(values).__name__}") from None
        self[:] = values

    def _checked(self, position, value):
        """``value`` as an array of layer ``position``'s shape, or InputError."""
        p = self._params()[position]
        try:
            value = np.array(value, dtype=p.dtype)       # a copy: safe when value overlaps another layer
        except (TypeError, ValueError):
            raise InputError(f"{self._kind}[{position}] must be an array of numbers") from None
        if self._kind == "weights":
            shape = (p.shape[0], p.shape[1] - 1)
            if value.shape != shape:
                raise InputError(f"{self._kind}[{position}] must have shape {shape}, got {value.shape}")
            return value
        if value.shape not in ((p.shape[0], 1), (p.shape[0],)):
            raise InputError(f"{self._kind}[{position}] must have shape ({p.shape[0]}, 1), got {value.shape}")
        return value.reshape(-1, 1)

    def _fixed(self, *args, **kwargs):
        raise InputError(f"a network's number of layers is fixed: {self._kind} cannot grow or shrink; "
                         "make a new Network(sizes) instead")

    __delitem__ = append = extend = insert = pop = remove = clear = _fixed

    def __copy__(self):
        return list(self)

    def __deepcopy__(self, memo):
        return [v.copy() for v in self]

    def __repr__(self):
        return repr(list(self))


class BookNetwork:
    """The base of the book-compatible ``Network`` classes: parameters, feedforward, one gradient step.

    Subclasses set ``self.engine`` (a sigmoid ``FeedforwardNetwork``),
    ``self.sizes`` and ``self.num_layers``.
    """

    engine: FeedforwardNetwork
    sizes: list[int]
    num_layers: int

    @property
    def weights(self):
        """The weights, ``weights[l]`` of shape (sizes[l+1], sizes[l]): views into the network (``ParameterList``)."""
        return ParameterList(self, "weights")

    @weights.setter
    def weights(self, values):
        ParameterList(self, "weights").assign(values)

    @property
    def biases(self):
        """The biases, ``biases[l]`` of shape (sizes[l+1], 1): views into the network (``ParameterList``)."""
        return ParameterList(self, "biases")

    @biases.setter
    def biases(self, values):
        ParameterList(self, "biases").assign(values)

    def feedforward(self, a):
        """The network's output for input ``a``.

        - a column (sizes[0], 1) gives a column (sizes[-1], 1), as in the book;
        - a block of k columns (sizes[0], k) gives (sizes[-1], k), as the
          book's code does for a matrix of column vectors;
        - nndl's layout, rows (n, sizes[0]), gives rows (n, sizes[-1]);
        - a flat vector (sizes[0],) gives a flat vector (sizes[-1],).

        A 2-d array whose first dimension is sizes[0] is always read as
        columns, the book's layout: so a square (sizes[0], sizes[0]) array
        is sizes[0] columns, and its result is (sizes[-1], sizes[0]).
        """
        a = np.asarray(a)
        n_in = self.sizes[0]
        if a.dtype.kind not in "biuf":
            raise InputError(f"the input must be an array of numbers, got dtype {a.dtype}")
        if a.ndim == 2 and a.shape[0] == n_in:                       # columns: the book's layout
            return self.engine.feedforward(a.T).T                    # (sizes[-1], k)
        if a.ndim == 2 and a.shape[1] == n_in:                       # rows: nndl's layout
            return self.engine.feedforward(a)                        # (n, sizes[-1])
        if a.ndim == 1 and a.shape[0] == n_in:
            return self.engine.feedforward(a.reshape(1, -1)).reshape(-1)
        raise InputError(f"the network's input layer has {n_in} neurons; give a ({n_in}, 1) column, "
                         f"a block of columns ({n_in}, k) or rows (n, {n_in}), not shape {a.shape}")

    def _data(self, data, what):
        """The book's pairs as arrays: x (n, sizes[0]) and labels (n,) or desired outputs (n, sizes[-1])."""
        return from_book_pairs(data, self.sizes[0], self.sizes[-1], what)

    def _correct(self, x, y):
        """How many examples the network classifies correctly: its largest output is the label
        (the largest desired output, when y are vectors)."""
        return int(np.count_nonzero(self.engine.feedforward(x).argmax(axis=1) == labels_of(y)))

    def _count_correct(self, data, what):
        """``_correct`` on the book's pairs; 0 for no pairs at all, as the book's sum over an empty list."""
        pairs = data if isinstance(data, list) else list(data)
        return self._correct(*self._data(pairs, what)) if pairs else 0

    def _backprop(self, x, y):
        """The gradient of C_x for one example, as the book's (nabla_b, nabla_w) lists."""
        x, y = self._data([(x, y)], "example")
        nabla_w, nabla_b = self.engine.backprop(x, y)
        return [np.reshape(b, (-1, 1)) for b in nabla_b], list(nabla_w)

    def _gradient_step(self, mini_batch, eta, lmbda=0.0, n=1):
        """The book's update for one mini-batch of m examples, with L2 weight decay when lmbda > 0:

            w -> (1 - eta lmbda / n) w - (eta / m) sum_x dC_x/dw
            b -> b - (eta / m) sum_x dC_x/db

        The m examples go through the engine's backpropagation as one
        matrix; its gradients are the sums over the examples, which the
        engine's optimiser (``nndl.engine.optimizers.SGD``) applies.
        """
        eta = check_number(eta, "the learning rate eta")
        x, y = self._data(mini_batch, "mini_batch")
        nabla_w, nabla_b = self.engine.backprop(x, y)                # sums over the m examples
        grads = [np.hstack([nw, np.reshape(nb, (-1, 1))]) for nw, nb in zip(nabla_w, nabla_b)]   # [dW | db]
        SGD(self.engine.params, eta, weight_decay=get_regularizer("l2", lmbda), n=n).step(grads, m=x.shape[0])
