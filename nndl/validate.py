"""Checks of single settings: every configuration error message of the engine is written here, once.

The typed configurations (``nndl.training.config``) check a whole run with
these; the engine's public constructors (``FeedforwardNetwork``, ``SGD``,
the regularisers) and the book's facades call the same functions, so a
setting that is wrong anywhere gets the same words. Each returns the value
as a plain Python number (NumPy scalars included) or raises ``ConfigError``
with a message that names the setting.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, SupportsInt, cast

from nndl.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from nndl.arrays import FloatDType

__all__ = ["whole_number", "real_number", "layer_sizes", "float_dtype", "learning_rate", "momentum", "lmbda",
           "nesterov", "MAX_PARAMETERS"]

#: More weights and biases than this is a typo, not a network (about 8 GB of float64).
MAX_PARAMETERS = 1_000_000_000


def whole_number(value: object, what: str, minimum: int = 1) -> int:
    """``value`` as an int >= minimum (1.0 is accepted, 1.5, True and "1" are not)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != _int(value) or value < minimum):
        raise ConfigError(f"{what} must be a whole number of at least {minimum}, got {value!r}")
    return _int(value)


def _int(value: numbers.Real) -> int:
    """``int(value)``: ``numbers.Real`` does not declare ``__int__``, but the real numbers met here
    (int, float, NumPy's scalars) all have it."""
    return int(cast(SupportsInt, value))


def real_number(value: object, what: str, low: float = 0.0, high: float = math.inf, low_open: bool = False,
                high_open: bool = True) -> float:
    """``value`` as a finite float in the interval [low, high) (ends open or closed as asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    if value < low or (low_open and value == low) or not value <= high or (high_open and value == high):
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        hi = "infinity" if high == math.inf else f"{high:g}"
        raise ConfigError(f"{what} must be in {left}{low:g}, {hi}{right}, got {value!r}")
    return float(value)


def layer_sizes(sizes: object) -> tuple[int, ...]:
    """The neurons per layer as a tuple of ints, at least two layers, within MAX_PARAMETERS."""
    if hasattr(sizes, "tolist"):                     # a NumPy array of sizes
        sizes = sizes.tolist()
    if not isinstance(sizes, (list, tuple)):
        raise ConfigError(f"sizes must be a list of layer sizes such as [784, 30, 10], got {sizes!r}")
    checked = tuple(whole_number(n, "every layer size") for n in sizes)
    if len(checked) < 2:
        raise ConfigError(f"a network needs at least an input and an output layer, got sizes {list(checked)}")
    n_params = sum((a + 1) * b for a, b in zip(checked[:-1], checked[1:]))
    if n_params > MAX_PARAMETERS:
        raise ConfigError(f"sizes {list(checked)} make {n_params:,} weights and biases, more than the "
                          f"{MAX_PARAMETERS:,} nndl allows")
    return checked


def float_dtype(value: DTypeLike) -> FloatDType:
    """float64 or float32 as a NumPy dtype (from a dtype, a type or a name)."""
    import numpy as np
    dtype: np.dtype[Any] | None
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    for allowed in (np.dtype(np.float64), np.dtype(np.float32)):
        if dtype is not None and dtype == allowed:          # (NumPy's dtype == None is float64's)
            return allowed
    raise ConfigError(f"dtype must be float64 or float32, got {value!r}")


def learning_rate(value: object) -> float:
    """The learning rate eta: a finite number > 0."""
    return real_number(value, "the learning rate eta", low_open=True)


def momentum(value: object) -> float:
    """The momentum co-efficient mu, in [0, 1)."""
    return real_number(value, "the momentum co-efficient mu", high=1.0)


def lmbda(value: object) -> float:
    """The regularisation parameter lambda >= 0."""
    return real_number(value, "the regularisation parameter lambda")


def nesterov(value: object, mu: float) -> bool:
    """Whether to use Nesterov's momentum: a bool, and only with mu > 0."""
    if not isinstance(value, bool):
        raise ConfigError(f"nesterov must be true or false, got {value!r}")
    if value and mu == 0.0:
        raise ConfigError("Nesterov's momentum needs a momentum co-efficient mu > 0")
    return value
