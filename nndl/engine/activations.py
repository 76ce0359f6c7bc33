"""Activation functions sigma(z), each with the backward rule it needs (chapters 1 and 3).

- sigmoid, 1 / (1 + e^-z): equation (3), the neuron of chapter 1;
- tanh and ReLU, max(0, z): chapter 3's other models of neuron;
- softmax, e^{z_j} / sum_k e^{z_k}: equation (78), for the output layer only;
- linear, the identity.

Every activation works on a mini-batch at once: ``z`` has shape ``(m, n)``,
one row per example. Two methods are used by backpropagation:

``fn(z, out)``
    writes sigma(z) into ``out`` (same shape) and returns it.
``vjp(grad, z, a, tmp)``
    turns dC/da into dC/dz *in place* in ``grad`` (the book's delta). For the
    element-wise activations this is ``grad * sigma'(z)`` (the Hadamard
    product of equations BP1 and BP2); softmax couples the outputs of a row,
    so it uses its Jacobian instead. ``a`` is sigma(z), already computed in the
    forward pass, and ``tmp`` is scratch space of the same shape.

Derivatives are computed from ``a`` where the book's formulas allow it
(sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2): that saves recomputing
exponentials in the backward pass.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from nndl.arrays import FloatArray
from nndl.lookup import lookup

__all__ = ["Activation", "Sigmoid", "Tanh", "ReLU", "Linear", "Softmax", "ACTIVATIONS", "get_activation"]


class Strategy:
    """A small stateless strategy object (an activation, a cost), identified by its kind and name.

    Two strategies are equal when they are of the same kind with the same
    name, so a subclass (such as the book-compatible
    ``network2.CrossEntropyCost``) equals the class it refines.
    """

    kind = "strategy"
    name = "strategy"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Strategy) and (self.kind, self.name) == (other.kind, other.name)

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


class Activation(Strategy):
    """Base class: the name used in model files and on the command line."""

    kind = "activation"
    name = "activation"
    #: True when sigma acts on each neuron separately (all but softmax).
    elementwise = True
    #: The open or closed range of the outputs, for checking cost pairings.
    output_range: tuple[float, float] = (-np.inf, np.inf)

    def fn(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        raise NotImplementedError

    def prime(self, z: FloatArray, a: FloatArray, out: FloatArray | None = None) -> FloatArray:
        """sigma'(z), shape (m, n); ``a`` must be sigma(z)."""
        raise NotImplementedError

    def vjp(self, grad: FloatArray, z: FloatArray, a: FloatArray, tmp: FloatArray) -> FloatArray:
        """dC/dz = dC/da * sigma'(z), written into ``grad``."""
        np.multiply(grad, self.prime(z, a, out=tmp), out=grad)
        return grad


class Sigmoid(Activation):
    """The logistic function 1 / (1 + e^-z) of chapter 1; outputs in (0, 1)."""

    name = "sigmoid"
    output_range = (0.0, 1.0)

    def fn(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        # scipy's expit is exact and never overflows (1 / (1 + exp(-z))
        # warns for z < -709).
        a: FloatArray = expit(z, out=out)             # (see nndl.arrays on typed locals)
        return a

    def prime(self, z: FloatArray, a: FloatArray, out: FloatArray | None = None) -> FloatArray:
        # sigma'(z) = sigma(z) (1 - sigma(z))
        out = np.subtract(1.0, a, out=out)
        return np.multiply(out, a, out=out)


class Tanh(Activation):
    """The hyperbolic tangent, a rescaled sigmoid with outputs in (-1, 1)."""

    name = "tanh"
    output_range = (-1.0, 1.0)

    def fn(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return np.tanh(z, out=out)

    def prime(self, z: FloatArray, a: FloatArray, out: FloatArray | None = None) -> FloatArray:
        # tanh'(z) = 1 - tanh(z)^2
        out = np.multiply(a, a, out=out)
        return np.subtract(1.0, out, out=out)


class ReLU(Activation):
    """The rectified linear unit max(0, z); its derivative at 0 is taken as 0."""

    name = "relu"
    output_range = (0.0, np.inf)

    def fn(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        return np.maximum(z, 0.0, out=out)

    def prime(self, z: FloatArray, a: FloatArray, out: FloatArray | None = None) -> FloatArray:
        if out is None:
            out = np.empty_like(z)
        return np.greater(z, 0.0, out=out)

    def vjp(self, grad: FloatArray, z: FloatArray, a: FloatArray, tmp: FloatArray) -> FloatArray:
        # Cheaper than multiplying by a 0/1 mask: zero the entries where z <= 0.
        np.multiply(grad, np.greater(z, 0.0, out=tmp), out=grad)
        return grad


class Linear(Activation):
    """The identity sigma(z) = z, for regression outputs or linear layers."""

    name = "linear"

    def fn(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        if out is None:
            a: FloatArray = z.copy()                  # (see nndl.arrays on typed locals)
            return a
        np.copyto(out, z)
        return out

    def prime(self, z: FloatArray, a: FloatArray, out: FloatArray | None = None) -> FloatArray:
        if out is None:
            return np.ones_like(z)
        out.fill(1.0)
        return out

    def vjp(self, grad: FloatArray, z: FloatArray, a: FloatArray, tmp: FloatArray) -> FloatArray:
        return grad


class Softmax(Activation):
    """softmax(z)_j = e^{z_j} / sum_k e^{z_k}, over each row; output layer only.

    The outputs of a row are positive and sum to 1, a probability
    distribution over the classes. Shifting z by its row maximum first leaves
    the result unchanged and keeps the exponentials from overflowing.
    """

    name = "softmax"
    elementwise = False
    output_range = (0.0, 1.0)

    def fn(self, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
        out = np.subtract(z, z.max(axis=1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def prime(self, z: FloatArray, a: FloatArray, out: FloatArray | None = None) -> FloatArray:
        raise TypeError("softmax has a full Jacobian, not an element-wise derivative; use vjp")

    def vjp(self, grad: FloatArray, z: FloatArray, a: FloatArray, tmp: FloatArray) -> FloatArray:
        # dC/dz_j = sum_i dC/da_i * da_i/dz_j = a_j (g_j - sum_i g_i a_i)
        np.multiply(grad, a, out=tmp)
        s = tmp.sum(axis=1, keepdims=True)
        np.subtract(grad, s, out=grad)
        np.multiply(grad, a, out=grad)
        return grad


#: Activation classes by the names used in model files and on the command line.
ACTIVATIONS = {cls.name: cls for cls in (Sigmoid, Tanh, ReLU, Linear, Softmax)}


def get_activation(spec: str | type[Activation] | Activation) -> Activation:
    """An activation instance from a name ("sigmoid", "tanh", "relu", "linear",
    "softmax"), a class, or an instance."""
    return lookup(spec, ACTIVATIONS, "activation", base=Activation, aliases={"identity": "linear"})
