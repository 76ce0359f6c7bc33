"""The feedforward network of chapters 1-3: layers of neurons, their parameters, and what they compute.

Each layer computes a' = sigma(w a + b), equation (22), and layer after layer
that is (25); backpropagation (BP1-BP4) is in ``nndl.engine.backprop``.

Rows are examples throughout: inputs have shape (n, sizes[0]), outputs
(n, sizes[-1]). Layer l has weights W of shape (sizes[l], sizes[l-1]) -- as
in the book and in PyTorch's ``Linear`` -- and biases b of shape
(sizes[l],), so that z = a W.T + b.

Training lives in ``nndl.training``; this module holds the network itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from nndl.arrays import FloatArray, FloatDType, IntArray, NumberArray
from nndl.engine.activations import Activation, Softmax, get_activation
from nndl.engine.backprop import Backprop
from nndl.engine.costs import Cost, get_cost
from nndl.engine.initializers import Initializer, get_initializer
from nndl.engine.regularizers import Regularizer
from nndl.errors import ConfigError, InputError
from nndl.validate import float_dtype, layer_sizes, whole_number

__all__ = ["FeedforwardNetwork", "one_hot", "as_labels", "check_inputs"]

#: Rows fed through the network at a time by ``feedforward`` (bounds memory).
EVAL_BATCH = 2000

#: An activation by name ("relu"), class or instance.
ActivationSpec: TypeAlias = "str | type[Activation] | Activation"


def one_hot(labels: ArrayLike, k: int, dtype: DTypeLike = np.float64) -> FloatArray:
    """Integer class labels as one-hot rows.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
        Each in 0..k-1 (checked by ``as_labels``).
    k : int
        Number of classes.

    Returns
    -------
    ndarray, shape (n, k)
    """
    labels = np.asarray(labels)
    y = np.zeros((labels.shape[0], k), dtype=dtype)
    y[np.arange(labels.shape[0]), labels] = 1.0
    return y


def check_inputs(x: ArrayLike, n_in: int, name: str = "inputs", *, check_pixels: bool = True) -> NumberArray:
    """The inputs as a finite 2-d float array of shape (n, n_in), or a clear InputError.

    A single example of n_in values is taken as one row. Inputs that look
    like 0-255 pixel values (uint8 above 1, or whole numbers reaching past
    100) are refused with the advice to scale them: a sigmoid network fed
    them saturates and learns nothing. Other real-valued inputs are accepted.
    ``check_pixels=False`` turns that heuristic off, for arbitrary real
    features (the scikit-learn estimator, ``nndl.sklearn``).
    """
    try:
        x = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be an array of numbers ({e})") from None
    if x.ndim == 1 and x.shape[0] == n_in:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise InputError(f"{name} must have shape (n, {n_in}), got shape {x.shape}")
    if x.shape[1] != n_in:
        raise InputError(f"the network's input layer has {n_in} neurons but the {name} have {x.shape[1]} "
                         f"values per example; use sizes starting with {x.shape[1]}")
    if x.shape[0] == 0:
        raise InputError(f"{name} are empty")
    if x.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numbers, got an array of {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise InputError(f"{name} contain {bad:,} values that are nan or infinite")
    if check_pixels and _looks_like_0_255_pixels(x):
        raise InputError(f"{name} look like 0-255 pixel values (largest {x.max():g}); the networks expect pixels "
                         "in [0, 1]: scale them by 1/255")
    return x


def _looks_like_0_255_pixels(x: NumberArray) -> bool:
    """uint8 values above 1, or whole numbers from 0 up to somewhere in (100, 255]: an image that was not scaled.

    Small whole-number inputs (0, 1, 2, ... of a toy problem) are not pixels.
    """
    high = x.max()
    if x.dtype == np.uint8:
        return bool(high > 1)
    return bool(100 < high <= 255 and x.min() >= 0 and (x.dtype.kind in "iu" or np.array_equal(x, np.round(x))))


def as_labels(y: ArrayLike, k: int, name: str = "labels") -> IntArray:
    """Integer class labels in 0..k-1, from labels (n,) or exactly one-hot rows (n, k).

    Raises
    ------
    InputError
        For labels out of range, non-integer labels, or 2-d rows that are
        not one-hot (their argmax would silently pick a class).
    """
    try:
        y = np.asarray(y)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be an array of numbers ({e})") from None
    if y.ndim == 2 and y.shape[1] == k and y.dtype.kind in "biuf":
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise InputError(f"{name}: rows of shape (n, {k}) must be one-hot (a single 1 in each row); "
                             "give integer labels instead")
        labels: IntArray = y.argmax(axis=1)
        return labels
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise InputError(f"{name} must be integer labels of shape (n,) or one-hot rows (n, {k}), "
                         f"got shape {y.shape} of {y.dtype}")
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
            raise InputError(f"{name} must be whole numbers (class labels), got values such as "
                             f"{y[~(np.isfinite(y) & (y == np.round(y)))][0]:g}")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise InputError(f"{name} must lie in 0..{k - 1} for a network with {k} outputs, found values from "
                         f"{int(y.min())} to {int(y.max())}")
    return y.astype(np.int64, copy=False)


class FeedforwardNetwork:
    """A fully connected feedforward network.

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, input layer first: ``[784, 30, 10]``.
    activations : str or sequence, default "sigmoid"
        One activation for every layer, or one per layer after the input
        (``len(sizes) - 1`` of them): "sigmoid", "tanh", "relu", "linear",
        and "softmax" (output layer only).
    cost : str or Cost, default "cross-entropy"
        "quadratic", "cross-entropy" or "log-likelihood".
    init : str or callable, default "default"
        "default": weights N(0, 1/n_in), biases N(0, 1) (chapter 3);
        "large": weights and biases N(0, 1) (chapter 1).
    seed : int or numpy.random.Generator or None
        Seeds the initial weights; the same seed gives the same network.
    dtype : {numpy.float64, numpy.float32}
        Precision of the parameters and of all arithmetic.

    Attributes
    ----------
    params : list of ndarray
        ``params[l-1]`` has shape (sizes[l], sizes[l-1] + 1): the weights of
        layer l with its biases as the last column. ``weights`` and
        ``biases`` are views into these arrays.
    """

    #: Notes from the file the network was loaded from (set by ``modelio.load`` and ``load_checkpoint``).
    metadata: dict[str, Any]

    def __init__(self, sizes: Sequence[int], activations: ActivationSpec | Sequence[ActivationSpec] = "sigmoid",
                 cost: str | type[Cost] | Cost = "cross-entropy", init: str | Initializer = "default",
                 seed: int | np.random.Generator | None = None, dtype: DTypeLike = np.float64) -> None:
        self.sizes = sizes = list(layer_sizes(sizes))
        self.dtype: FloatDType = float_dtype(dtype)
        specs: object = activations                    # checked here, whatever it is
        if isinstance(specs, (str, type)) or hasattr(specs, "fn"):
            specs = [specs] * (len(sizes) - 1)
        if not isinstance(specs, (list, tuple)):
            raise ConfigError(f"activations must be a name or a list of names, got {specs!r}")
        self.layers: list[Activation] = [get_activation(a) for a in specs]
        if len(self.layers) != len(sizes) - 1:
            raise ConfigError(f"{len(sizes) - 1} layers after the input need {len(sizes) - 1} activations, "
                             f"got {len(self.layers)}")
        for i, layer in enumerate(self.layers[:-1]):
            if isinstance(layer, Softmax):
                raise ConfigError(f"softmax can only be the output layer, but layer {i + 1} of "
                                 f"{len(self.layers)} is softmax")
        self.cost: Cost = get_cost(cost)
        self.cost.check_output(self.layers[-1])
        self.init: str | None = init if isinstance(init, str) else None
        initializer = get_initializer(init)
        if not (seed is None or isinstance(seed, np.random.Generator)):
            seed = whole_number(seed, "the seed", minimum=0)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.params: list[FloatArray] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            w, b = initializer(n_in, n_out, rng, dtype=self.dtype)
            p = np.empty((n_out, n_in + 1), dtype=self.dtype)
            p[:, :-1] = w
            p[:, -1] = b
            self.params.append(p)

    # --- parameters -------------------------------------------------------

    @property
    def weights(self) -> list[FloatArray]:
        """Views of the weight matrices, ``weights[l]`` of shape (sizes[l+1], sizes[l])."""
        return [p[:, :-1] for p in self.params]

    @property
    def biases(self) -> list[FloatArray]:
        """Views of the bias vectors, ``biases[l]`` of shape (sizes[l+1],)."""
        return [p[:, -1] for p in self.params]

    @property
    def num_layers(self) -> int:
        return len(self.sizes)

    def set_parameters(self, weights: Sequence[ArrayLike], biases: Sequence[ArrayLike]) -> None:
        """Copy weights and biases in, checking them all before anything changes."""
        if not (isinstance(weights, (list, tuple)) and isinstance(biases, (list, tuple))
                and len(weights) == len(self.params) == len(biases)):
            raise InputError(f"expected lists of {len(self.params)} weight matrices and bias vectors, "
                             f"got {type(weights).__name__} and {type(biases).__name__}")
        checked = []
        for l, (p, w, b) in enumerate(zip(self.params, weights, biases), start=1):
            try:
                w = np.asarray(w, dtype=self.dtype)
                b = np.asarray(b, dtype=self.dtype).reshape(-1)
            except (TypeError, ValueError) as e:
                raise InputError(f"layer {l}: weights and biases must be arrays of numbers ({e})") from None
            if w.shape != (p.shape[0], p.shape[1] - 1) or b.shape != (p.shape[0],):
                raise InputError(f"layer {l}: expected weights {(p.shape[0], p.shape[1] - 1)} and biases "
                                 f"({p.shape[0]},), got {w.shape} and {b.shape}")
            checked.append((w, b))
        for p, (w, b) in zip(self.params, checked):
            p[:, :-1] = w
            p[:, -1] = b

    def copy_params(self) -> list[FloatArray]:
        """A copy of all parameters, for restoring later with ``restore_params``."""
        return [p.copy() for p in self.params]

    def restore_params(self, saved: Sequence[ArrayLike]) -> None:
        for p, s in zip(self.params, saved):
            np.copyto(p, s)

    def parameters_finite(self) -> bool:
        """True when no weight or bias is inf or nan."""
        return all(np.isfinite(p).all() for p in self.params)

    # --- computing --------------------------------------------------------

    def check_inputs(self, x: ArrayLike, name: str = "inputs") -> NumberArray:
        """The inputs as a 2-d array (n, sizes[0]), or an InputError saying why they do not fit."""
        return check_inputs(x, self.sizes[0], name)

    def feedforward(self, x: ArrayLike) -> FloatArray:
        """The network's outputs a^L for inputs x.

        Parameters
        ----------
        x : array_like, shape (n, sizes[0])

        Returns
        -------
        ndarray, shape (n, sizes[-1])
        """
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise InputError(f"inputs must be an array of numbers ({e})") from None
        if x.ndim == 1 and x.shape[0] == self.sizes[0]:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.sizes[0] or x.dtype.kind not in "biuf":
            self.check_inputs(x)                                     # says what is wrong
        out = np.empty((x.shape[0], self.sizes[-1]), dtype=self.dtype)
        for start in range(0, x.shape[0], EVAL_BATCH):
            a = x[start:start + EVAL_BATCH].astype(self.dtype, copy=False)
            for p, layer in zip(self.params, self.layers):
                z = a @ p[:, :-1].T                                  # (m, n_l)
                z += p[:, -1]
                a = layer.fn(z, out=z)
            out[start:start + EVAL_BATCH] = a
        return out

    def predict(self, x: ArrayLike) -> IntArray:
        """The predicted class of each example: the index of the most active output, shape (n,)."""
        classes: IntArray = self.feedforward(x).argmax(axis=1)
        return classes

    def evaluate(self, x: ArrayLike, labels: ArrayLike) -> int:
        """How many examples the network classifies correctly (an int).

        Labels are integers (n,) in 0..sizes[-1]-1 or one-hot rows; anything
        else (a label of 200, rows that are not one-hot) is an InputError.
        """
        x = self.check_inputs(x)
        labels = as_labels(labels, self.sizes[-1])
        if labels.shape[0] != x.shape[0]:
            raise InputError(f"{x.shape[0]} inputs but {labels.shape[0]} labels")
        return int(np.count_nonzero(self.predict(x) == labels))

    def accuracy(self, x: ArrayLike, labels: NDArray[Any] | Sequence[Any]) -> float:
        """The fraction of examples classified correctly, in [0, 1]."""
        return self.evaluate(x, labels) / len(labels)

    def total_cost(self, x: ArrayLike, y: ArrayLike, regularizer: Regularizer | None = None,
                   n: int | None = None) -> float:
        """The average cost over the data, plus the regularisation term.

        Parameters
        ----------
        x : array_like, shape (n, sizes[0])
        y : array_like, shape (n,) of int or (n, sizes[-1])
        regularizer : Regularizer or None
            Adds its term, e.g. lambda/(2n) sum w^2 for L2.
        n : int, optional
            The n of the regularisation term; the book's network2 uses the
            size of the data being measured, the default here too.
        """
        x = self.check_inputs(x)
        y = self.targets(y)
        total = 0.0
        for start in range(0, x.shape[0], EVAL_BATCH):
            total += self.cost.fn(self.feedforward(x[start:start + EVAL_BATCH]), y[start:start + EVAL_BATCH])
        n_data: int = x.shape[0]
        cost = total / n_data
        if regularizer is not None:
            cost += regularizer.cost(self.weights, n if n is not None else n_data)
        return cost

    def targets(self, y: ArrayLike, name: str = "desired outputs") -> FloatArray:
        """Desired outputs as rows (n, sizes[-1]): one-hot from integer labels (n,), or rows used as given."""
        y = np.asarray(y)
        if y.ndim == 1:
            return one_hot(as_labels(y, self.sizes[-1], name), self.sizes[-1], dtype=self.dtype)
        if y.ndim == 2 and y.shape[1] == self.sizes[-1] and y.dtype.kind in "biuf":
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                raise InputError(f"{name} contain nan or infinite values")
            return y.astype(self.dtype, copy=False)
        raise InputError(f"{name} must be integer labels (n,) or rows (n, {self.sizes[-1]}), got shape {y.shape}")

    def backprop(self, x: ArrayLike, y: ArrayLike) -> tuple[list[FloatArray], list[FloatArray]]:
        """Gradients of the cost, summed over the examples (chapter 2).

        Parameters
        ----------
        x : array_like, shape (m, sizes[0])
        y : array_like, shape (m,) of int or (m, sizes[-1])

        Returns
        -------
        nabla_w : list of ndarray, ``nabla_w[l]`` of shape (sizes[l+1], sizes[l])
        nabla_b : list of ndarray, ``nabla_b[l]`` of shape (sizes[l+1],)
        """
        x = self.check_inputs(x)
        y = self.targets(y)
        work = Backprop(self, x.shape[0])
        work.x[...] = x
        work.forward()
        work.backward(y)
        grads = [work.gradient(l) for l in range(1, self.num_layers)]
        return [g[:, :-1] for g in grads], [g[:, -1] for g in grads]

    def __repr__(self) -> str:
        acts = ", ".join(layer.name for layer in self.layers)
        return (f"FeedforwardNetwork(sizes={self.sizes}, activations=[{acts}], cost={self.cost.name!r}, "
                f"dtype={self.dtype.name})")
