"""Cost functions C(a, y) and the output error delta^L they give (BP1; chapters 1 and 3).

- quadratic, 1/2 ||a - y||^2 per example: equations (6) and (26)-(27);
- cross-entropy, -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]: (57) and (63);
- log-likelihood, -ln a_y: (80).

``a`` is the output activation and ``y`` the desired output, both of shape
``(m, k)``, one row per example; ``y`` is one-hot for classification (the
network converts integer labels). Each cost has:

``fn(a, y)``
    the cost summed over the rows (divide by n for the book's average).
``derivative(a, y, out)``
    dC/da, shape (m, k).
``delta(z, a, y, activation, tmp, out)``
    delta^L = dC/dz^L, shape (m, k). It uses a simplified formula when the
    output activation allows one and otherwise the general chain rule
    ``activation.vjp(dC/da)``.

Simplified deltas and the output activation each one assumes:

- quadratic, any activation: (a - y) * sigma'(z), equation (30) (no simplification);
- cross-entropy with a **sigmoid** output: a - y, equation (66) (the sigma'(z)
  of the quadratic cost cancels: the "learning slowdown" goes away);
- log-likelihood with a **softmax** output: a - y, equation (84).
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from nndl.arrays import FloatArray
from nndl.engine.activations import Activation, Sigmoid, Softmax, Strategy
from nndl.errors import ConfigError
from nndl.lookup import lookup

__all__ = ["Cost", "QuadraticCost", "CrossEntropyCost", "LogLikelihoodCost", "COSTS", "get_cost"]


def _clip_probabilities(a: FloatArray) -> FloatArray:
    """Keep a inside (eps, 1 - eps) so the logarithms stay finite.

    A saturated sigmoid or softmax can output exactly 0.0 or 1.0 in floating
    point; the true cost there is huge but finite, and this returns a large
    finite value instead of inf or nan (the book's network2 uses
    ``np.nan_to_num`` for the same reason).
    """
    eps = np.finfo(a.dtype).eps if np.issubdtype(a.dtype, np.floating) else 1e-15
    return np.clip(a, eps, 1.0 - eps)


class Cost(Strategy):
    """Base class: the name used in model files and on the command line."""

    kind = "cost"
    name = "cost"

    def fn(self, a: FloatArray, y: FloatArray) -> float:
        raise NotImplementedError

    def derivative(self, a: FloatArray, y: FloatArray, out: FloatArray | None = None) -> FloatArray:
        raise NotImplementedError

    def check_output(self, activation: Activation) -> None:
        """Raise ValueError when this cost cannot be paired with the output activation."""

    def delta(self, z: FloatArray, a: FloatArray, y: FloatArray, activation: Activation, tmp: FloatArray,
              out: FloatArray) -> FloatArray:
        """delta^L into ``out`` (shape (m, k)); ``tmp`` is scratch of the same shape."""
        self.derivative(a, y, out=out)
        return activation.vjp(out, z, a, tmp)


class QuadraticCost(Cost):
    """C = 1/2 ||a - y||^2 per example (equation 6 of chapter 1)."""

    name = "quadratic"

    def fn(self, a: FloatArray, y: FloatArray) -> float:
        d = a - y
        return 0.5 * float(np.einsum("ij,ij->", d, d))

    def derivative(self, a: FloatArray, y: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return np.subtract(a, y, out=out)


class CrossEntropyCost(Cost):
    """C = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] per example (chapter 3).

    Needs outputs in (0, 1): a sigmoid output layer (where delta^L = a - y)
    or a softmax one (general chain rule).
    """

    name = "cross-entropy"

    def fn(self, a: FloatArray, y: FloatArray) -> float:
        a = _clip_probabilities(a)
        return -float(np.sum(xlogy(y, a) + xlogy(1.0 - y, 1.0 - a)))

    def derivative(self, a: FloatArray, y: FloatArray, out: FloatArray | None = None) -> FloatArray:
        a = _clip_probabilities(a)
        # dC/da = (a - y) / (a (1 - a))
        out = np.subtract(a, y, out=out)
        out /= a * (1.0 - a)
        return out

    def check_output(self, activation: Activation) -> None:
        lo, hi = activation.output_range
        if lo < 0.0 or hi > 1.0:
            raise ConfigError(
                f"the cross-entropy cost needs outputs in (0, 1), but a {activation.name} output layer "
                "can leave that range; use a sigmoid or softmax output layer"
            )

    def delta(self, z: FloatArray, a: FloatArray, y: FloatArray, activation: Activation, tmp: FloatArray,
              out: FloatArray) -> FloatArray:
        if isinstance(activation, Sigmoid):
            return np.subtract(a, y, out=out)  # sigma'(z) cancels (chapter 3, equation 66)
        return super().delta(z, a, y, activation, tmp, out)


class LogLikelihoodCost(Cost):
    """C = -ln a_y per example, a_y the output for the correct class (chapter 3).

    Meant for a softmax output layer, where delta^L = a - y. It is also allowed
    on a sigmoid output (general chain rule), where it ignores the other
    outputs entirely.
    """

    name = "log-likelihood"

    def fn(self, a: FloatArray, y: FloatArray) -> float:
        a = _clip_probabilities(a)
        return -float(np.sum(xlogy(y, a)))

    def derivative(self, a: FloatArray, y: FloatArray, out: FloatArray | None = None) -> FloatArray:
        a = _clip_probabilities(a)
        out = np.divide(y, a, out=out)
        return np.negative(out, out=out)

    def check_output(self, activation: Activation) -> None:
        if not isinstance(activation, (Softmax, Sigmoid)):
            raise ConfigError(
                f"the log-likelihood cost needs probability outputs, but the output layer is {activation.name}; "
                "use a softmax output layer"
            )

    def delta(self, z: FloatArray, a: FloatArray, y: FloatArray, activation: Activation, tmp: FloatArray,
              out: FloatArray) -> FloatArray:
        if isinstance(activation, Softmax):
            return np.subtract(a, y, out=out)
        return super().delta(z, a, y, activation, tmp, out)


#: Cost classes by the names used in model files and on the command line.
COSTS = {cls.name: cls for cls in (QuadraticCost, CrossEntropyCost, LogLikelihoodCost)}
_ALIASES = {"mse": "quadratic", "crossentropy": "cross-entropy", "ce": "cross-entropy",
            "loglikelihood": "log-likelihood", "nll": "log-likelihood"}


def get_cost(spec: str | type[Cost] | Cost) -> Cost:
    """A cost instance from a name, a class (such as the book's
    ``network2.CrossEntropyCost``) or an instance."""
    return lookup(spec, COSTS, "cost", base=Cost, aliases=_ALIASES)
