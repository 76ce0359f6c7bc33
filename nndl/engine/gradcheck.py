"""Checking backpropagation (BP1-BP4) against finite differences (chapter 2).

Backpropagation computes dC/dw for every weight in one backward pass. The
slow, obvious alternative perturbs one parameter at a time:

    dC/dw ~= (C(w + h) - C(w - h)) / (2h)        (central difference)

with an error of order h^2. Agreement between the two on a small network is
strong evidence that the backward pass is right. Do it in float64: in float32
the rounding error of C swamps the difference quotient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from nndl.arrays import FloatArray

if TYPE_CHECKING:
    from nndl.engine.feedforward import FeedforwardNetwork
    from nndl.engine.regularizers import Regularizer

__all__ = ["numerical_gradient", "check_gradients", "GradientCheck"]


@dataclass
class GradientCheck:
    """The result of ``check_gradients``.

    Attributes
    ----------
    max_relative_error : float
        The largest, over layers, of ||g_bp - g_fd|| / (||g_bp|| + ||g_fd||)
        (Euclidean norms over the layer's weights and biases). Element-wise
        ratios are meaningless for entries near zero, where the
        finite-difference noise (about eps * C / h) dominates.
    max_abs_error : float
    backprop : list of ndarray
        dC/dP per layer from backpropagation, each (sizes[l], sizes[l-1] + 1).
    numerical : list of ndarray
        The same from finite differences.
    """

    max_relative_error: float
    max_abs_error: float
    backprop: list[FloatArray]
    numerical: list[FloatArray]

    def ok(self, tol: float = 1e-6) -> bool:
        return self.max_relative_error <= tol


def numerical_gradient(f: Callable[[], float], params: Sequence[FloatArray], h: float = 1e-6) -> list[FloatArray]:
    """Central-difference gradient of the scalar ``f()`` with respect to each
    entry of each array in ``params``, perturbed in place and restored.

    Parameters
    ----------
    f : callable
        Takes no arguments and returns the cost (a float).
    params : list of ndarray
    h : float

    Returns
    -------
    list of ndarray, each shaped like its parameter array
    """
    grads: list[FloatArray] = []
    for p in params:
        g = np.zeros_like(p, dtype=np.float64)
        it = np.nditer(p, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = p[i]
            p[i] = old + h
            plus = f()
            p[i] = old - h
            minus = f()
            p[i] = old
            g[i] = (plus - minus) / (2 * h)
        grads.append(g)
    return grads


def check_gradients(net: FeedforwardNetwork, x: ArrayLike, y: ArrayLike, regularizer: Regularizer | None = None,
                    n: int | None = None, masks: list[FloatArray | None] | None = None,
                    h: float = 1e-6) -> GradientCheck:
    """Compare backpropagation's gradient with central differences.

    The cost is the *sum* over the examples (as ``Backprop`` computes it)
    plus, with a regulariser, m/n times its term, so that its gradient is
    the per-step gradient the optimiser uses, scaled by m.

    Parameters
    ----------
    net : FeedforwardNetwork
        Should be float64.
    x : ndarray, shape (m, sizes[0])
    y : ndarray, shape (m,) of int or (m, sizes[-1])
    regularizer : Regularizer, optional
    n : int, optional
        Training-set size for the regularisation term (default m).
    masks : list, optional
        Fixed dropout masks (see ``Backprop.masks``), so that the cost is a
        deterministic function of the parameters.
    h : float

    Returns
    -------
    GradientCheck
    """
    from nndl.engine.backprop import Backprop

    x = net.check_inputs(x)
    y = net.targets(y)
    m = x.shape[0]
    n = m if n is None else n
    work = Backprop(net, m)
    work.masks = masks
    work.x[...] = x

    def cost() -> float:
        work.forward()
        c = net.cost.fn(work.output, y)
        if regularizer is not None:
            c += m * regularizer.cost(net.weights, n)
        return c

    work.forward()
    work.backward(y)
    analytic = []
    for l in range(1, net.num_layers):
        g = work.gradient(l)
        if regularizer is not None:
            g[:, :-1] += m * regularizer.gradient(net.params[l - 1][:, :-1], n)
        analytic.append(g)
    numeric = numerical_gradient(cost, net.params, h=h)
    abs_err = max(float(np.max(np.abs(a - b))) for a, b in zip(analytic, numeric))
    rel_err = max(float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))
                  for a, b in zip(analytic, numeric))
    return GradientCheck(rel_err, abs_err, analytic, numeric)
