"""Names for the NumPy arrays nndl computes with, used in its type hints.

``FloatArray``
    floating-point values (float64 or float32): inputs, activations, weighted
    inputs, weights and biases, gradients, desired outputs.
``IntArray``
    integer values: class labels, indices.
``NumberArray``
    numbers of any kind (bool, integer or floating-point): inputs as given,
    before they are converted to a network's precision.
``FloatDType``
    the dtype of a ``FloatArray`` (a network's precision).

Shapes are not part of the type; the docstrings give them.

Some values reach the type checker as ``Any``: whatever scipy returns (it
has no type hints), and NumPy methods its stubs declare as returning
``typing.Self`` (``copy``, ``T``) or ``Any`` (``argmax(axis=...)``, ``max``)
when checked for Python 3.10, which has no ``typing.Self``. Where such a
value is returned it is first bound to a local variable with its type, e.g.
``labels: IntArray = y.argmax(axis=1)``.
"""

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__ = ["FloatArray", "IntArray", "NumberArray", "FloatDType"]

FloatArray: TypeAlias = NDArray[np.floating[Any]]
IntArray: TypeAlias = NDArray[np.integer[Any]]
NumberArray: TypeAlias = NDArray[np.bool_ | np.number[Any]]
FloatDType: TypeAlias = np.dtype[np.floating[Any]]
