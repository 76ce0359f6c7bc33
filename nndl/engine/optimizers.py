"""Update rules of chapters 1 and 3: plain SGD (20)-(21), momentum (107)-(108) and Nesterov momentum.

An optimiser turns the deltas of one mini-batch (computed by
``nndl.engine.backprop.Backprop``) into a change of the parameters. With m examples
in the mini-batch, g = (1/m) sum_x dC_x/dw is the mini-batch gradient.

- Plain SGD (chapter 1): w -> w - eta g.
- Momentum (chapter 3, "momentum-based gradient descent"), with the book's
  momentum co-efficient mu in [0, 1)::

      v -> v' = mu v - eta g,   w -> w + v'.

- Nesterov's accelerated gradient, in the form of Sutskever et al. (2013)
  that evaluates the gradient at the current parameters::

      v -> v' = mu v - eta g,   w -> w + mu v' - eta g.

  (PyTorch's ``SGD(nesterov=True)`` is the same rule with the velocity
  scaled by 1/eta.)

Regularisation is part of g: for plain SGD it is applied as the book's weight
decay before the gradient step, which is the same update; with momentum its
gradient joins g so it builds up velocity like the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg.blas import get_blas_funcs

from nndl import validate
from nndl.arrays import FloatArray
from nndl.engine.backprop import Backprop
from nndl.engine.regularizers import Regularizer
from nndl.errors import ConfigError

__all__ = ["SGD"]

#: A BLAS routine from scipy (a wrapped Fortran function), by name and dtype.
_BLAS: dict[tuple[str, np.dtype[Any]], Callable[..., Any]] = {}


def _gemm(dtype: np.dtype[Any]) -> Callable[..., Any]:
    """The BLAS matrix-product routine for ``dtype`` (dgemm or sgemm), looked up once."""
    if ("gemm", dtype) not in _BLAS:
        _BLAS["gemm", dtype] = get_blas_funcs("gemm", dtype=dtype)
    return _BLAS["gemm", dtype]


def _axpy(dtype: np.dtype[Any]) -> Callable[..., Any]:
    """BLAS y <- a x + y for ``dtype`` (daxpy or saxpy), in place on contiguous y."""
    if ("axpy", dtype) not in _BLAS:
        _BLAS["axpy", dtype] = get_blas_funcs("axpy", dtype=dtype)
    return _BLAS["axpy", dtype]


class SGD:
    """Mini-batch stochastic gradient descent, optionally with momentum, bound to parameters.

    Like PyTorch's ``torch.optim.SGD``: made once for the parameters it
    updates, then ``step`` applies one update from a mini-batch's gradient::

        opt = SGD(net.params, eta=0.5, weight_decay=L2(5.0), n=50_000)
        opt.step(grads)      # grads[l]: the mean gradient dC/dP of P = [W | b], shaped like params[l]

    Parameters
    ----------
    params : list of ndarray
        The parameter matrices ``P = [W | b]`` of shape (n_out, n_in + 1)
        (``FeedforwardNetwork.params``), updated in place. The last column
        holds the biases, which are never regularised.
    eta : float
        Learning rate, > 0. The trainer may change ``eta`` between epochs (a
        learning-rate schedule).
    momentum : float, default 0.0
        The momentum co-efficient mu, in [0, 1). 0 is plain SGD.
    nesterov : bool, default False
        Use Nesterov's variant (needs momentum > 0).
    weight_decay : Regularizer or None
        L2 (the book's weight decay) or L1, with its lambda.
    n : int, optional
        The size of the training set: the n of the book's lambda/n. Needed
        with ``weight_decay``.
    """

    def __init__(self, params: Iterable[FloatArray], eta: float, *, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: Regularizer | None = None, n: int | None = None) -> None:
        eta = validate.learning_rate(eta)
        momentum = validate.momentum(momentum)
        validate.nesterov(bool(nesterov), momentum)
        if weight_decay is not None and (n is None or int(n) < 1):
            raise ConfigError("weight decay needs n, the size of the training set (lambda is divided by n)")
        self.params = list(params)
        self.eta = eta
        self.momentum = momentum
        self.nesterov = bool(nesterov)
        self.weight_decay = weight_decay
        self.n = int(n) if n is not None else None
        self.velocities: list[FloatArray] | None = [np.zeros_like(p) for p in self.params] if momentum else None
        self._weight_scratch = [np.empty_like(p[:, :-1]) for p in self.params]
        self._bias_scratch = [np.empty_like(p[:, -1]) for p in self.params]

    def reset(self) -> None:
        """Forget the velocities (start from rest)."""
        if self.velocities is not None:
            for v in self.velocities:
                v.fill(0.0)

    # --- the plain rule -----------------------------------------------------

    def step(self, grads: Sequence[ArrayLike], m: int = 1) -> None:
        """One update from the gradients of a mini-batch of m examples.

        Parameters
        ----------
        grads : list of ndarray
            ``grads[l]`` shaped like ``params[l]``: sum_x dC_x/dP over the
            mini-batch, or its mean (1/m) sum_x dC_x/dP with ``m=1``.
        m : int
            The number of examples the gradients are summed over: the step
            is (eta / m) times them, in the book's order of operations.
        """
        if len(grads) != len(self.params):
            raise ConfigError(f"expected {len(self.params)} gradients, one per parameter matrix, got {len(grads)}")
        regularizer, n = self._regularization()
        for l, (p, given) in enumerate(zip(self.params, grads)):
            g = np.array(given, dtype=p.dtype)                              # a copy we may add to
            if g.shape != p.shape:
                raise ConfigError(f"gradient {l} has shape {g.shape}, its parameters {p.shape}")
            if regularizer is not None and self.velocities is not None:
                g[:, :-1] += regularizer.gradient(p[:, :-1], n)              # joins the velocity
            elif regularizer is not None:
                regularizer.decay(p[:, :-1], self.eta, n)                    # the book's w -> (1 - eta lambda/n) w
            eta = self.eta / m if m != 1 else self.eta
            if self.velocities is None:
                p -= eta * g                                                 # w -> w - eta g
                continue
            v = self.velocities[l]
            v *= self.momentum
            v -= eta * g                                                     # v -> v' = mu v - eta g
            if self.nesterov:
                p += self.momentum * v - eta * g                             # w -> w + mu v' - eta g
            else:
                p += v                                                       # w -> w + v'

    # --- the fast path used in training ---------------------------------------

    def _step_from_backprop(self, work: Backprop, m: int) -> None:
        """The same update as ``step``, straight from a ``Backprop``'s deltas, fused into BLAS calls.

        ``work`` has run ``forward`` and ``backward`` on a mini-batch of m
        examples of the network that owns ``params``. The gradient
        (1/m) delta.T [a | 1] is never formed: each layer's update is one
        in-place gemm (tested against ``step``).
        """
        if self.velocities is None:
            self._sgd_step(work, m)
        else:
            self._momentum_step(work, m, self.velocities)

    def _regularization(self) -> tuple[Regularizer | None, int]:
        """The regulariser and the n its lambda is divided by (0, unused, without one)."""
        if self.weight_decay is None:
            return None, 0
        if self.n is None:
            raise ConfigError("weight decay needs n, the size of the training set (lambda is divided by n)")
        return self.weight_decay, self.n

    def _sgd_step(self, work: Backprop, m: int) -> None:
        gemm = _gemm(self.params[0].dtype)
        scale = -self.eta / m
        regularizer, n = self._regularization()
        factor = regularizer.decay_factor(self.eta, n) if regularizer is not None else None
        for l, (p, (a_T, delta_T, p_T)) in enumerate(zip(self.params, work.update_operands)):
            # p += scale * delta.T @ [a | 1], as one in-place BLAS call: the
            # C-ordered p is the Fortran-ordered p.T, so gemm can accumulate
            # into it without copying:  p.T = scale * [a | 1].T @ delta + beta * p.T
            # (positional arguments: alpha, a, b, beta, c, trans_a, trans_b, overwrite_c)
            if factor is None:
                if regularizer is not None:
                    regularizer.decay(p[:, :-1], self.eta, n, scratch=self._weight_scratch[l])
                gemm(scale, a_T, delta_T, 1.0, p_T, 0, 1, 1)
            else:
                # L2 weight decay w -> (1 - eta lambda/n) w rides along as gemm's
                # beta, saving a pass over the weights. The biases are not
                # decayed, so the part beta took from them is put back.
                b, b_old = p[:, -1], self._bias_scratch[l]
                np.copyto(b_old, b)
                gemm(scale, a_T, delta_T, factor, p_T, 0, 1, 1)
                b_old *= 1.0 - factor
                b += b_old

    def _momentum_step(self, work: Backprop, m: int, velocities: list[FloatArray]) -> None:
        dtype = self.params[0].dtype
        gemm, axpy = _gemm(dtype), _axpy(dtype)
        mu, eta = self.momentum, self.eta
        regularizer, n = self._regularization()
        for p, v, tmp, (a_T, delta_T, _) in zip(self.params, velocities, self._weight_scratch,
                                                work.update_operands):
            if self.nesterov:
                # w -> w + mu v' - eta g = w + (1 + mu) v' - mu v, since -eta g = v' - mu v
                axpy(v.reshape(-1), p.reshape(-1), a=-mu)
            # v -> v' = mu v - eta g, with g = (1/m) delta.T [a | 1] + (regularisation gradient)
            v *= mu
            gemm(-eta / m, a_T, delta_T, 1.0, v.T, 0, 1, 1)
            if regularizer is not None:
                regularizer.gradient(p[:, :-1], n, out=tmp)                    # on the weights only
                tmp *= eta
                v[:, :-1] -= tmp
            axpy(v.reshape(-1), p.reshape(-1), a=1.0 + mu if self.nesterov else 1.0)

    def __repr__(self) -> str:
        return (f"SGD(eta={self.eta}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay!r})")
