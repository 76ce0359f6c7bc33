"""Checks of single settings: every configuration error message of the engine is written here, once.

The typed configurations (``nndl.training.config``) check a whole run with
these; the engine's public constructors (``FeedforwardNetwork``, ``SGD``,
the regularisers) and the book's facades call the same functions, so a
setting that is wrong anywhere gets the same words. Each returns the value
as a plain Python number (NumPy scalars included) or raises ``ConfigError``
with a message that names the setting.
"""

import math
import numbers

from nndl.errors import ConfigError

__all__ = ["whole_number", "real_number", "layer_sizes", "float_dtype", "learning_rate", "momentum", "lmbda",
           "nesterov", "MAX_PARAMETERS"]

#: More weights and biases than this is a typo, not a network (about 8 GB of float64).
MAX_PARAMETERS = 1_000_000_000


def whole_number(value, what, minimum=1):
    """``value`` as an int >= minimum (1.0 is accepted, 1.5, True and "1" are not)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != int(value) or value < minimum):
        raise ConfigError(f"{what} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def real_number(value, what, low=0.0, high=math.inf, low_open=False, high_open=True):
    """``value`` as a finite float in the interval [low, high) (ends open or closed as asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        hi = "infinity" if high == math.inf else f"{high:g}"
        raise ConfigError(f"{what} must be in {left}{low:g}, {hi}{right}, got {value!r}")
    return float(value)


def layer_sizes(sizes):
    """The neurons per layer as a tuple of ints, at least two layers, within MAX_PARAMETERS."""
    if hasattr(sizes, "tolist"):                     # a NumPy array of sizes
        sizes = sizes.tolist()
    if not isinstance(sizes, (list, tuple)):
        raise ConfigError(f"sizes must be a list of layer sizes such as [784, 30, 10], got {sizes!r}")
    sizes = tuple(whole_number(n, "every layer size") for n in sizes)
    if len(sizes) < 2:
        raise ConfigError(f"a network needs at least an input and an output layer, got sizes {list(sizes)}")
    n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_params > MAX_PARAMETERS:
        raise ConfigError(f"sizes {list(sizes)} make {n_params:,} weights and biases, more than the "
                          f"{MAX_PARAMETERS:,} nndl allows")
    return sizes


def float_dtype(value):
    """float64 or float32 as a NumPy dtype (from a dtype, a type or a name)."""
    import numpy as np
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ConfigError(f"dtype must be float64 or float32, got {value!r}")
    return dtype


def learning_rate(value):
    """The learning rate eta: a finite number > 0."""
    return real_number(value, "the learning rate eta", low_open=True)


def momentum(value):
    """The momentum co-efficient mu, in [0, 1)."""
    return real_number(value, "the momentum co-efficient mu", high=1.0)


def lmbda(value):
    """The regularisation parameter lambda >= 0."""
    return real_number(value, "the regularisation parameter lambda")


def nesterov(value, mu):
    """Whether to use Nesterov's momentum: a bool, and only with mu > 0."""
    if not isinstance(value, bool):
        raise ConfigError(f"nesterov must be true or false, got {value!r}")
    if value and mu == 0.0:
        raise ConfigError("Nesterov's momentum needs a momentum co-efficient mu > 0")
    return value
