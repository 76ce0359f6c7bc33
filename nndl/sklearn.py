"""A scikit-learn classifier over nndl's NumPy engine (the networks of chapters 1-3).

``NetworkClassifier`` wraps ``nndl.training.train`` on a
``nndl.engine.feedforward.FeedforwardNetwork`` in scikit-learn's estimator
interface, so the book's networks work in pipelines, grid searches and
cross-validation::

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from nndl.sklearn import NetworkClassifier
    >>> model = make_pipeline(MinMaxScaler(), NetworkClassifier(hidden_layer_sizes=(30,), eta=0.5))

Only ``import nndl.sklearn`` loads scikit-learn; ``import nndl`` does not.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.training.config import TrainingConfig
from nndl.training.history import History
from nndl.training.numpy_engine import train

__all__ = ["NetworkClassifier"]

_HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")
_COSTS = ("quadratic", "cross-entropy", "log-likelihood")


class NetworkClassifier(ClassifierMixin, BaseEstimator):
    """A fully connected network trained by mini-batch SGD (the book's network2), as a scikit-learn classifier.

    The output layer has one neuron per class: sigmoid neurons for the
    quadratic and cross-entropy costs, softmax for the log-likelihood cost.
    Inputs may be any finite real features (nndl's check for unscaled 0-255
    pixels is off here); like the book's networks, they learn best from
    features scaled to about [0, 1] (``MinMaxScaler``).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (30,)
        Neurons in each hidden layer; () for none.
    activation : {"sigmoid", "tanh", "relu", "linear"}, default "sigmoid"
        The hidden layers' activation.
    cost : {"quadratic", "cross-entropy", "log-likelihood"}, default "cross-entropy"
    init : {"default", "large"}, default "default"
        "default": weights N(0, 1/n_in), biases N(0, 1) (chapter 3);
        "large": all N(0, 1) (chapter 1).
    eta : float, default 0.5
        The learning rate.
    lmbda : float, default 0.0
        The regularisation parameter lambda (divided by the number of
        training examples, as in network2).
    regularization : {"l2", "l1"}, default "l2"
    dropout : float, default 0.0
        Probability of dropping each hidden neuron, in [0, 1).
    momentum : float, default 0.0
        The momentum co-efficient mu in [0, 1).
    nesterov : bool, default False
    epochs : int, default 30
    mini_batch_size : int, default 10
    schedule : {"constant", "halve"}, default "constant"
        "halve": halve eta after ``patience`` epochs without a better
        validation accuracy, stop at 1/128 of the starting eta.
    patience : int, default 10
    early_stopping : int or None, default None
        Stop after this many epochs without a better validation accuracy
        and keep the best epoch's weights.
    validation_fraction : float, default 0.1
        The fraction of the training data held out as validation data when
        early stopping or the "halve" schedule needs it.
    random_state : int, RandomState or None, default None
        An int seeds nndl (initial weights, shuffling, dropout, the
        validation split); a RandomState (or None: NumPy's global one)
        draws such an int.
    warm_start : bool, default False
        ``fit`` goes on training the fitted network instead of a new one.
    dtype : {"float64", "float32"}, default "float64"
        Precision of the network.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The class labels (any type, strings too).
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape ``(n_features_in_,)``
        Only when ``X`` had feature names (a pandas DataFrame).
    network_ : FeedforwardNetwork
        The trained network, sizes ``(n_features_in_, *hidden_layer_sizes, n_classes)``.
    history_ : History
        nndl's record of the last ``fit`` or ``partial_fit`` call.
    training_cost_ : list of float
        The training cost (with the regularisation term) after each epoch,
        over all calls since the network was made.
    evaluation_accuracy_ : list of float
        The validation accuracy after each epoch, where validation data was
        held out (else empty).
    n_iter_ : int
        Epochs trained since the network was made.
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_HIDDEN_ACTIVATIONS))],
        "cost": [StrOptions(set(_COSTS))],
        "init": [StrOptions({"default", "large"})],
        "eta": [Interval(Real, 0, None, closed="neither")],
        "lmbda": [Interval(Real, 0, None, closed="left")],
        "regularization": [StrOptions({"l2", "l1"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterov": ["boolean"],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "mini_batch_size": [Interval(Integral, 1, None, closed="left")],
        "schedule": [StrOptions({"constant", "halve"})],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": [Interval(Integral, 1, None, closed="left"), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "dtype": [StrOptions({"float64", "float32"})],
    }

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (30,), activation: str = "sigmoid",
                 cost: str = "cross-entropy", init: str = "default", eta: float = 0.5, lmbda: float = 0.0,
                 regularization: str = "l2", dropout: float = 0.0, momentum: float = 0.0, nesterov: bool = False,
                 epochs: int = 30, mini_batch_size: int = 10, schedule: str = "constant", patience: int = 10,
                 early_stopping: int | None = None, validation_fraction: float = 0.1,
                 random_state: int | np.random.RandomState | None = None, warm_start: bool = False,
                 dtype: str = "float64") -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.cost = cost
        self.init = init
        self.eta = eta
        self.lmbda = lmbda
        self.regularization = regularization
        self.dropout = dropout
        self.momentum = momentum
        self.nesterov = nesterov
        self.epochs = epochs
        self.mini_batch_size = mini_batch_size
        self.schedule = schedule
        self.patience = patience
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.warm_start = warm_start
        self.dtype = dtype

    # --- training -------------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike) -> NetworkClassifier:
        """Train a network (or, with ``warm_start``, the fitted one) for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Finite real features; sparse matrices are refused.
        y : array-like, shape (n_samples,)
            Class labels of any type.

        Returns
        -------
        self
        """
        warm = self.warm_start and hasattr(self, "network_")
        x, y_ = validate_data(self, X, y, accept_sparse=False, dtype=(np.float64, np.float32), reset=not warm)
        check_classification_targets(y_)
        if warm:
            labels = self._encode(y_)
        else:
            self.classes_ = np.unique(y_)
            labels = np.searchsorted(self.classes_, y_)
            self._new_network()
        self._train(x, labels, self.epochs)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None) -> NetworkClassifier:
        """Train one epoch on (X, y), making the network on the first call.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
        classes : array-like, shape (n_classes,), optional
            Every class there will be; required on the first call, and must
            not change afterwards.

        Returns
        -------
        self

        Notes
        -----
        Each call is a fresh run of nndl's SGD on the network: momentum's
        velocities and the halving schedule do not carry over between calls.
        """
        first = not hasattr(self, "network_")
        if first and classes is None:
            raise ValueError("classes must be given on the first call to partial_fit")
        x, y_ = validate_data(self, X, y, accept_sparse=False, dtype=(np.float64, np.float32), reset=first)
        check_classification_targets(y_)
        if first:
            self.classes_ = np.unique(np.asarray(classes))
            self._new_network()
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes {np.unique(np.asarray(classes))!r} differ from the classes of the first "
                             f"call to partial_fit, {self.classes_!r}")
        self._train(x, self._encode(y_), 1)
        return self

    def _encode(self, y: NDArray[Any]) -> NDArray[np.int64]:
        """Labels as indices into ``classes_``; a label not among them is a ValueError."""
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not among the classes the network was made for: {unseen!r} "
                             f"(classes are {self.classes_!r}); fit again without warm_start to add classes")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _seeds(self) -> tuple[int, int]:
        """Two seeds, for the initial weights and for the training runs, from ``random_state``."""
        if isinstance(self.random_state, Integral) and not isinstance(self.random_state, bool):
            seed = int(self.random_state)
        else:
            seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        net_seed, train_seed = np.random.SeedSequence(seed).generate_state(2)
        return int(net_seed), int(train_seed)

    def _new_network(self) -> None:
        """A freshly drawn network for ``n_features_in_`` inputs and ``classes_``."""
        sizes = self._sizes()
        output = "softmax" if self.cost == "log-likelihood" else "sigmoid"
        net_seed, train_seed = self._seeds()
        self.network_ = FeedforwardNetwork(sizes, activations=[self.activation] * (len(sizes) - 2) + [output],
                                           cost=self.cost, init=self.init, seed=net_seed, dtype=self.dtype)
        self._seed_stream = np.random.default_rng(train_seed)
        self.training_cost_: list[float] = []
        self.evaluation_accuracy_: list[float] = []
        self.n_iter_ = 0

    def _sizes(self) -> list[int]:
        given: Any = self.hidden_layer_sizes
        hidden = [given] if isinstance(given, Integral) else list(given)
        for h in hidden:
            if isinstance(h, bool) or not isinstance(h, Integral) or h < 1:
                raise ValueError(f"hidden_layer_sizes must be whole numbers >= 1, got {self.hidden_layer_sizes!r}")
        return [self.n_features_in_, *(int(h) for h in hidden), len(self.classes_)]

    def _train(self, X: NDArray[np.floating[Any]], labels: NDArray[np.int64], epochs: int) -> None:
        """``epochs`` epochs of nndl's SGD on the fitted network, holding out validation data when needed."""
        seed = int(self._seed_stream.integers(0, 2**31 - 1))
        config = TrainingConfig(epochs=epochs, mini_batch_size=self.mini_batch_size, eta=self.eta,
                                lmbda=self.lmbda, regularization=self.regularization, momentum=self.momentum,
                                nesterov=self.nesterov, p_dropout=self.dropout, schedule=self.schedule,
                                patience=self.patience, early_stopping=self.early_stopping, seed=seed,
                                monitor=("training_cost",))
        evaluation = None
        if config.watches_plateau:
            n = X.shape[0]
            n_val = math.ceil(self.validation_fraction * n)
            if n_val < 1 or n - n_val < 1:
                raise ValueError(f"validation_fraction={self.validation_fraction} of {n} samples leaves no "
                                 "validation or no training data for early stopping / the halve schedule")
            order = np.random.default_rng(seed).permutation(n)
            evaluation = (X[order[:n_val]], labels[order[:n_val]])
            X, labels = X[order[n_val:]], labels[order[n_val:]]
        history = train(self.network_, (X, labels), config, evaluation_data=evaluation, check_pixels=False)
        self.history_: History = history
        self.training_cost_ = self.training_cost_ + list(history.training_cost)
        self.evaluation_accuracy_ = self.evaluation_accuracy_ + list(history.evaluation_accuracy)
        self.n_iter_ += len(history.epochs)
        if history.stop_reason in ("diverged", "saturated", "interrupted"):
            warnings.warn(f"NetworkClassifier: {history.message}", ConvergenceWarning, stacklevel=3)

    # --- predicting -----------------------------------------------------------------------------

    def _outputs(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        check_is_fitted(self)
        x = validate_data(self, X, accept_sparse=False, dtype=(np.float64, np.float32), reset=False)
        outputs: NDArray[np.floating[Any]] = self.network_.feedforward(x)
        return outputs

    def predict_proba(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        """Class probabilities: the output activations, normalised to sum to 1 in each row.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        a = self._outputs(X).astype(np.float64)
        total = a.sum(axis=1, keepdims=True)
        uniform = np.full_like(a, 1.0 / a.shape[1])
        proba: NDArray[np.floating[Any]] = np.divide(a, total, out=uniform, where=total > 0)
        return proba

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The class of each example: the most active output neuron.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples,)
            Labels from ``classes_``.
        """
        winners = self._outputs(X).argmax(axis=1)
        result: NDArray[Any] = self.classes_[winners]
        return result
