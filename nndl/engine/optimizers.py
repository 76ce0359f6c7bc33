"""Gradient-descent update rules: plain SGD, momentum and Nesterov momentum.

An optimiser turns the deltas of one mini-batch (computed by
``nndl.engine.backprop.Backprop``) into a change of the parameters. With m examples
in the mini-batch, g = (1/m) sum_x dC_x/dw is the mini-batch gradient.

- Plain SGD (chapter 1): w -> w - eta g.
- Momentum (chapter 3, "momentum-based gradient descent"), with the book's
  momentum co-efficient mu in [0, 1):
      v -> v' = mu v - eta g,   w -> w + v'.
- Nesterov's accelerated gradient, in the form of Sutskever et al. (2013)
  that evaluates the gradient at the current parameters:
      v -> v' = mu v - eta g,   w -> w + mu v' - eta g.
  (PyTorch's ``SGD(nesterov=True)`` is the same rule with the velocity
  scaled by 1/eta.)

Regularisation is part of g: for plain SGD it is applied as the book's weight
decay before the gradient step, which is the same update; with momentum its
gradient joins g so it builds up velocity like the rest.
"""

import numpy as np
from scipy.linalg.blas import get_blas_funcs

__all__ = ["SGD"]

_BLAS = {}


def _gemm(dtype):
    """The BLAS matrix-product routine for ``dtype`` (dgemm or sgemm), looked up once."""
    if ("gemm", dtype) not in _BLAS:
        _BLAS["gemm", dtype] = get_blas_funcs("gemm", dtype=dtype)
    return _BLAS["gemm", dtype]


def _axpy(dtype):
    """BLAS y <- a x + y for ``dtype`` (daxpy or saxpy), in place on contiguous y."""
    if ("axpy", dtype) not in _BLAS:
        _BLAS["axpy", dtype] = get_blas_funcs("axpy", dtype=dtype)
    return _BLAS["axpy", dtype]


class SGD:
    """Mini-batch stochastic gradient descent, optionally with momentum.

    Parameters
    ----------
    eta : float
        Learning rate, > 0. The trainer may change it between epochs (a
        learning-rate schedule).
    momentum : float, default 0.0
        The momentum co-efficient mu, in [0, 1). 0 is plain SGD.
    nesterov : bool, default False
        Use Nesterov's variant (needs momentum > 0).
    """

    def __init__(self, eta, momentum=0.0, nesterov=False):
        eta = float(eta)
        if not eta > 0.0 or not np.isfinite(eta):
            raise ValueError(f"the learning rate eta must be a positive number, got {eta}")
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"the momentum co-efficient mu must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise ValueError("Nesterov's momentum needs a momentum co-efficient mu > 0")
        self.eta = eta
        self.momentum = momentum
        self.nesterov = bool(nesterov)
        self.velocities = None
        self._scratch = None

    def reset(self):
        """Forget the velocities (start from rest)."""
        self.velocities = None

    def step(self, net, work, m, n, regularizer=None):
        """Update ``net``'s parameters from the deltas in ``work``.

        Parameters
        ----------
        net : FeedforwardNetwork
        work : Backprop
            After ``forward`` and ``backward`` on a mini-batch of m examples.
        m : int
            Number of examples in the mini-batch.
        n : int
            Size of the training set (for the regularisation term).
        regularizer : Regularizer or None
        """
        if self.momentum == 0.0:
            self._sgd_step(net, work, m, n, regularizer)
        else:
            self._momentum_step(net, work, m, n, regularizer)

    def _sgd_step(self, net, work, m, n, regularizer):
        gemm = _gemm(net.dtype)
        scale = -self.eta / m
        if regularizer is not None and self._scratch is None:
            self._scratch = [np.empty_like(p[:, :-1]) for p in net.params]
            self._bias_scratch = [np.empty_like(p[:, -1]) for p in net.params]
        factor = regularizer.decay_factor(self.eta, n) if regularizer is not None else None
        for l, (p, (a_T, delta_T, p_T)) in enumerate(zip(net.params, work.update_operands)):
            # p += scale * delta.T @ [a | 1], as one in-place BLAS call: the
            # C-ordered p is the Fortran-ordered p.T, so gemm can accumulate
            # into it without copying:  p.T = scale * [a | 1].T @ delta + beta * p.T
            # (positional arguments: alpha, a, b, beta, c, trans_a, trans_b, overwrite_c)
            if factor is None:
                if regularizer is not None:
                    regularizer.decay(p[:, :-1], self.eta, n, scratch=self._scratch[l])
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

    def _momentum_step(self, net, work, m, n, regularizer):
        if self.velocities is None or [v.shape for v in self.velocities] != [p.shape for p in net.params]:
            self.velocities = [np.zeros_like(p) for p in net.params]
        if self._scratch is None:
            self._scratch = [np.empty_like(p[:, :-1]) for p in net.params]
        gemm, axpy = _gemm(net.dtype), _axpy(net.dtype)
        mu, eta = self.momentum, self.eta
        for p, v, tmp, (a_T, delta_T, _) in zip(net.params, self.velocities, self._scratch, work.update_operands):
            if self.nesterov:
                # w -> w + mu v' - eta g = w + (1 + mu) v' - mu v, since -eta g = v' - mu v
                axpy(v.reshape(-1), p.reshape(-1), a=-mu)
            # v -> v' = mu v - eta g, with g = (1/m) delta.T [a | 1] + (regularisation gradient)
            v *= mu
            gemm(-eta / m, a_T, delta_T, 1.0, v.T, 0, 1, 1)
            if regularizer is not None:
                regularizer.gradient(p[:, :-1], n, out=tmp)               # on the weights only
                tmp *= eta
                v[:, :-1] -= tmp
            axpy(v.reshape(-1), p.reshape(-1), a=1.0 + mu if self.nesterov else 1.0)

    def __repr__(self):
        return f"SGD(eta={self.eta}, momentum={self.momentum}, nesterov={self.nesterov})"
