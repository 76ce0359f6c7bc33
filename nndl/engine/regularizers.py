"""L2 and L1 regularisation (chapter 3), with the book's lambda/n scaling.

Both add a penalty on the weights (never the biases) to the cost::

    L2:  C = C0 + lambda/(2n) sum_w w^2        equations (85)-(87)
    L1:  C = C0 + lambda/n    sum_w |w|        equation (95)

where **n is the size of the whole training set**, as in the book's
``network2.py``. (The book's ``network3.py`` scales differently: it adds
lambda/(2 * number of mini-batches) sum w^2 to the cost of each
mini-batch, so the same lambda means a different strength there.)

During training the gradient step becomes, for L2, the book's "weight decay"

    w -> (1 - eta lambda / n) w - (eta / m) sum_x dC_x/dw           (93)

and for L1

    w -> w - (eta lambda / n) sgn(w) - (eta / m) sum_x dC_x/dw      (97)

with sgn(0) = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nndl import validate
from nndl.arrays import FloatArray
from nndl.errors import ConfigError

__all__ = ["Regularizer", "L2", "L1", "get_regularizer"]


class Regularizer:
    """A penalty on the weights. ``lmbda`` is the book's lambda (>= 0)."""

    name = "none"

    def __init__(self, lmbda: float) -> None:
        self.lmbda = validate.lmbda(lmbda)

    def cost(self, weights: Sequence[FloatArray], n: int) -> float:
        """The term added to the cost, for weight matrices ``weights`` and training-set size n."""
        raise NotImplementedError

    def gradient(self, w: FloatArray, n: int, out: FloatArray | None = None) -> FloatArray:
        """d(term)/dw, same shape as ``w``."""
        raise NotImplementedError

    def decay_factor(self, eta: float, n: int) -> float | None:
        """The factor the step multiplies every weight by, when the decay is just that (L2); else None."""
        return None

    def decay(self, w: FloatArray, eta: float, n: int, scratch: FloatArray | None = None) -> None:
        """Apply the regularisation part of one gradient step to ``w`` in place.

        ``scratch``, an array shaped like ``w``, saves an allocation where one is needed.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lmbda={self.lmbda})"


class L2(Regularizer):
    """L2 regularisation, lambda/(2n) sum w^2: weight decay."""

    name = "l2"

    def cost(self, weights: Sequence[FloatArray], n: int) -> float:
        return 0.5 * (self.lmbda / n) * sum(float(np.vdot(w, w)) for w in weights)

    def gradient(self, w: FloatArray, n: int, out: FloatArray | None = None) -> FloatArray:
        return np.multiply(w, self.lmbda / n, out=out)

    def decay_factor(self, eta: float, n: int) -> float:
        return 1.0 - eta * self.lmbda / n

    def decay(self, w: FloatArray, eta: float, n: int, scratch: FloatArray | None = None) -> None:
        w *= self.decay_factor(eta, n)


class L1(Regularizer):
    """L1 regularisation, ``lambda/n sum |w|``: shrinks weights by a constant amount."""

    name = "l1"

    def cost(self, weights: Sequence[FloatArray], n: int) -> float:
        return (self.lmbda / n) * sum(float(np.abs(w).sum()) for w in weights)

    def gradient(self, w: FloatArray, n: int, out: FloatArray | None = None) -> FloatArray:
        out = np.sign(w, out=out)
        out *= self.lmbda / n
        return out

    def decay(self, w: FloatArray, eta: float, n: int, scratch: FloatArray | None = None) -> None:
        step = np.sign(w, out=scratch)
        step *= eta * self.lmbda / n
        w -= step


REGULARIZERS: dict[str, type[Regularizer]] = {"l2": L2, "l1": L1}


def get_regularizer(kind: str | Regularizer, lmbda: float) -> Regularizer | None:
    """A regulariser from a name ("l2", "l1") and lambda; None when lambda is 0."""
    if isinstance(kind, Regularizer):
        return kind
    key = str(kind).strip().lower()
    if key not in REGULARIZERS:
        raise ConfigError(f"unknown regularisation {kind!r}; choose one of: {', '.join(REGULARIZERS)}")
    reg = REGULARIZERS[key](lmbda)
    return reg if reg.lmbda > 0.0 else None
