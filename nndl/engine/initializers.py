"""Weight initialisation (chapters 1 and 3).

- "large": weights and biases N(0, 1), as in chapter 1;
- "default": weights N(0, 1/n_in) and biases N(0, 1), chapter 3's "weight
  initialization", which keeps the sigmoids from starting saturated.

Each initialiser fills a layer's parameters: weights of shape
``(n_out, n_in)`` and biases of shape ``(n_out,)``, drawn from a seeded
``numpy.random.Generator`` so the same seed gives the same network.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import DTypeLike

from nndl.arrays import FloatArray
from nndl.lookup import lookup

__all__ = ["default_weight_initializer", "large_weight_initializer", "INITIALIZERS", "get_initializer",
           "Initializer"]


class Initializer(Protocol):
    """What an initialiser is: ``f(n_in, n_out, rng, dtype) -> (weights (n_out, n_in), biases (n_out,))``."""

    def __call__(self, n_in: int, n_out: int, rng: np.random.Generator,
                 dtype: DTypeLike = ...) -> tuple[FloatArray, FloatArray]: ...


def default_weight_initializer(n_in: int, n_out: int, rng: np.random.Generator,
                               dtype: DTypeLike = np.float64) -> tuple[FloatArray, FloatArray]:
    """Weights from N(0, 1/n_in), biases from N(0, 1) (chapter 3).

    Scaling the weights by 1/sqrt(n_in) keeps z = w.x + b of width about 1
    for inputs of about unit size, so the sigmoids start unsaturated.

    Returns
    -------
    weights : ndarray, shape (n_out, n_in)
    biases : ndarray, shape (n_out,)
    """
    weights = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
    biases = rng.standard_normal(n_out)
    return weights.astype(dtype, copy=False), biases.astype(dtype, copy=False)


def large_weight_initializer(n_in: int, n_out: int, rng: np.random.Generator,
                             dtype: DTypeLike = np.float64) -> tuple[FloatArray, FloatArray]:
    """Weights and biases from N(0, 1): the initialisation of chapter 1.

    Returns
    -------
    weights : ndarray, shape (n_out, n_in)
    biases : ndarray, shape (n_out,)
    """
    weights = rng.standard_normal((n_out, n_in))
    biases = rng.standard_normal(n_out)
    return weights.astype(dtype, copy=False), biases.astype(dtype, copy=False)


INITIALIZERS: dict[str, Initializer] = {"default": default_weight_initializer, "large": large_weight_initializer}


def get_initializer(spec: str | Initializer) -> Initializer:
    """An initialiser from a name ("default" or "large") or a callable
    ``f(n_in, n_out, rng, dtype) -> (weights, biases)``."""
    if callable(spec):
        return spec
    return lookup(spec, INITIALIZERS, "weight initialiser", make=False)
