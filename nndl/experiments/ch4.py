"""Chapter 4: a visual proof that neural nets can compute any function.

The book approximates f(x) = 0.2 + 0.4 x^2 + 0.3 x sin(15x) + 0.05 cos(50x)
on [0, 1] with one hidden layer of sigmoid neurons whose weights are set by
hand:

* a hidden neuron with a large weight w and bias b is a *step* at s = -b/w;
* two steps at s and s' with output weights +h and -h make a *bump* of
  height h on [s, s'];
* N/2 bumps on equal sub-intervals of [0, 1] make a staircase. The book's
  output neuron is a sigmoid, so the bumps' heights are sigma^-1(f(x)) at
  each sub-interval's centre: the output sigma(staircase) follows f.

In two dimensions a pair of x-steps and a pair of y-steps, added with a
large weight H and a threshold bias -3H/2 in a second hidden neuron, make a
*tower* over one cell of a grid; a grid of towers approximates f(x, y).

Experiments:

* ``ch4-bumps``   the maximum error ``|f - network|`` falls as hidden neurons are added;
* ``ch4-towers``  the same with towers in two dimensions;
* ``ch4-trained`` a network of the same shape trained by SGD, for comparison.

The constructions are plain NumPy (``bump_parameters``, ``bump_feedforward``,
``tower_approximation``); the trained network is nndl's own engine.
"""

from dataclasses import dataclass

import numpy as np

from nndl.errors import ConfigError
from nndl.experiments.figures import epoch_axis, figure
from nndl.experiments.registry import Experiment, register
from nndl.training.config import Settings, TrainingConfig
from nndl.validate import real_number, whole_number

__all__ = ["f", "f2", "sigmoid", "sigmoid_inverse", "bump_edges", "bump_parameters", "bump_feedforward",
           "bump_max_error", "tower_approximation", "falls", "Bumps", "Towers", "Trained"]

#: Step positions outside [0, 1] are this many step widths 1/w beyond the ends (sigma(10) = 0.99995).
OUTER_MARGIN = 10.0


def f(x):
    """The book's function of chapter 4 on [0, 1]; its values lie in (0.09, 0.86)."""
    return 0.2 + 0.4 * x ** 2 + 0.3 * x * np.sin(15 * x) + 0.05 * np.cos(50 * x)


def f2(x, y):
    """The two-dimensional function the towers approximate on [0, 1]^2 (ours; values in (0.25, 0.9))."""
    return 0.5 + 0.25 * np.sin(2 * np.pi * x) * np.cos(np.pi * y) + 0.15 * x * y


def sigmoid(z):
    """sigma(z) = 1 / (1 + e^-z), without overflow warnings for large ``|z|``."""
    from scipy.special import expit
    return expit(z)


def sigmoid_inverse(a):
    """sigma^-1(a) = ln(a / (1 - a)) for a in (0, 1)."""
    from scipy.special import logit
    return logit(a)


def falls(errors, slack=0.1, factor=3.0):
    """True when the errors never grow by more than ``slack`` (a fraction) and the last is ``factor`` times smaller."""
    errors = [float(e) for e in errors]
    steady = all(b <= a * (1.0 + slack) for a, b in zip(errors, errors[1:]))
    return bool(len(errors) >= 2 and steady and errors[-1] * factor <= errors[0])


# --- one dimension: bumps -------------------------------------------------

def bump_edges(k, w, shift=0.0):
    """The k + 1 step positions of the bumps of one staircase on [0, 1].

    The inner edges are at j/k + ``shift`` (those inside (0, 1)); the two
    outer ones are moved ``OUTER_MARGIN / w`` beyond 0 and 1, so the first
    and last bumps are fully on at the ends of the interval (with a step
    exactly at 0 the network would output sigma(h/2) there, not sigma(h)).

    Returns
    -------
    ndarray, shape (number of bumps + 1,)
        Increasing; k + 1 of them when shift is 0.
    """
    inner = np.arange(-1, k + 1) / k + shift
    inner = inner[(inner > 1e-12) & (inner < 1.0 - 1e-12)]
    margin = OUTER_MARGIN / w
    return np.concatenate([[-margin], inner, [1.0 + margin]])


def bump_parameters(n_hidden, w=1000.0, target=f):
    """The hand-set weights of the book's network approximating ``target`` on [0, 1].

    Hidden neurons 2i and 2i+1 are the steps at the left and right edge of
    bump i (weight w, bias -w s); the output neuron gives them weights +h_i
    and -h_i with h_i = sigma^-1(target(centre of bump i)), and bias 0.

    Parameters
    ----------
    n_hidden : int
        Even: n_hidden / 2 bumps on equal sub-intervals.
    w : float
        The steps' weight; each step rises over about 4/w.

    Returns
    -------
    weights : [ndarray (n_hidden, 1), ndarray (1, n_hidden)]
    biases : [ndarray (n_hidden,), ndarray (1,)]
    """
    n_hidden = whole_number(n_hidden, "the number of hidden neurons", minimum=2)
    if n_hidden % 2:
        raise ConfigError(f"bumps need the hidden neurons in pairs, got {n_hidden}")
    s = bump_edges(n_hidden // 2, w)
    left, right = s[:-1], s[1:]                                       # (k,) each
    centre = (np.clip(left, 0, 1) + np.clip(right, 0, 1)) / 2
    h = sigmoid_inverse(target(centre))                               # (k,)
    steps = np.stack([left, right], axis=1).reshape(-1)               # (2k,): left_0, right_0, left_1, ...
    w_hidden = np.full((n_hidden, 1), float(w))
    b_hidden = -w * steps
    w_out = np.stack([h, -h], axis=1).reshape(1, -1)                  # (1, 2k): +h_0, -h_0, +h_1, ...
    return [w_hidden, w_out], [b_hidden, np.zeros(1)]


def bump_feedforward(weights, biases, x, batch=2000):
    """The bump network's output a = sigma(w_out sigma(w x + b) + b_out) for inputs x, shape (n,) -> (n,)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], batch):
        a = sigmoid(x[start:start + batch] @ weights[0].T + biases[0])      # (m, n_hidden)
        out[start:start + batch] = sigmoid(a @ weights[1].T + biases[1])[:, 0]
    return out


def bump_max_error(n_hidden, w, grid):
    """max ``|f - network|`` over ``grid`` equally spaced points of [0, 1] (both ends included)."""
    x = np.linspace(0.0, 1.0, grid)
    weights, biases = bump_parameters(n_hidden, w)
    return float(np.max(np.abs(bump_feedforward(weights, biases, x) - f(x))))


def _increasing_whole_numbers(values, what, minimum=1, even=False):
    if isinstance(values, (int, float)):
        values = (values,)
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{what} must be a list of whole numbers, got {values!r}")
    values = tuple(whole_number(v, what, minimum=minimum) for v in values)
    if even and any(v % 2 for v in values):
        raise ConfigError(f"{what} must be even (a bump is two neurons), got {list(values)}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"{what} must increase, got {list(values)}")
    return values


@dataclass(frozen=True)
class Bumps(Settings):
    """The one-dimensional construction at several sizes.

    Attributes
    ----------
    hidden : tuple of int
        Hidden neurons of each network (even, increasing): hidden/2 bumps.
    w : float
        The steps' weight (the book uses 1000).
    grid : int
        The error is the maximum over this many equally spaced points of [0, 1].
    plot_points : int
        Points of each approximation kept for the figure.
    """

    hidden: tuple = (10, 20, 50, 100, 200, 500, 1000)
    w: float = 1000.0
    grid: int = 10001
    plot_points: int = 1001

    def __post_init__(self):
        object.__setattr__(self, "hidden", _increasing_whole_numbers(self.hidden, "hidden", 2, even=True))
        object.__setattr__(self, "w", real_number(self.w, "the step weight w", low_open=True))
        object.__setattr__(self, "grid", whole_number(self.grid, "grid", minimum=2))
        object.__setattr__(self, "plot_points", whole_number(self.plot_points, "plot_points", minimum=2))


def run_bumps(config, context):
    x_plot = np.linspace(0.0, 1.0, config.plot_points)
    errors, curves = [], []
    for n in config.hidden:
        errors.append(bump_max_error(n, config.w, config.grid))
        weights, biases = bump_parameters(n, config.w)
        curves.append(_rounded(bump_feedforward(weights, biases, x_plot)))
    shown = falls(errors)
    return {
        "value": errors[-1],
        "shown": shown,
        "hidden": list(config.hidden),
        "max_error": errors,
        "w": config.w,
        "step_width": 4.0 / config.w,
        "x": _rounded(x_plot),
        "f": _rounded(f(x_plot)),
        "approximations": curves,
        "summary": (f"max error {errors[0]:.3g} with {config.hidden[0]} hidden neurons, {errors[-1]:.3g} with "
                    f"{config.hidden[-1]} (w = {config.w:g})"),
    }


def _rounded(values, decimals=5):
    """An array as nested lists of floats rounded for the figure (keeps the JSON small)."""
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def _pick(n, k=3):
    """Up to k indices spread over range(n), always the first and last."""
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist()))


def plot_bumps(result, path):
    run = result["runs"][0]
    with figure(path, nrows=2, size=(6.0, 3.6), title=f"{result['id']}: {result['title']}",
                caption=f"step weight w = {run['w']:g}; error = max over [0, 1]") as (top, bottom):
        top.plot(run["x"], run["f"], color="black", linewidth=2, label="f(x)")
        for i in _pick(len(run["hidden"])):
            top.plot(run["x"], run["approximations"][i], linewidth=1, label=f"{run['hidden'][i]} hidden neurons")
        top.set_xlabel("x")
        top.set_ylabel("output")
        bottom.loglog(run["hidden"], run["max_error"], marker="o", label="max |f - network|")
        bottom.set_xlabel("Hidden neurons")
        bottom.set_ylabel("Maximum error")


# --- two dimensions: towers -----------------------------------------------

def tower_approximation(points, cells, copies=1, w=1000.0, tower_weight=1000.0, target=f2, batch=None):
    """The tower network's output at ``points``: sigma of the weighted towers' sum.

    Each of ``copies`` grids of towers is shifted along the diagonal by
    1/(cells * copies) and carries heights sigma^-1(target(cell centre)) /
    copies; their sum goes through the sigmoid output. With one copy the
    network fails near the cells' corners (there the four neighbouring
    towers are each half on, below their threshold); the shifted copies
    are the book's remedy for such failure windows, taken to two
    dimensions: at any point at most two copies fail, each weighing only
    1/copies.

    The network: inputs (x, y); first hidden layer, the steps sigma(w (x - s))
    and sigma(w (y - s)) at every cell edge s; second hidden layer, one
    neuron per tower, sigma(H (bump_x + bump_y) - 3H/2) with bump_x the
    difference of the two x-steps at the cell's edges (likewise y); output
    sigma(sum of h * tower). The steps are shared by the towers of a row or
    column (the book gives every tower its own four; the output is the same).

    Parameters
    ----------
    points : ndarray, shape (n, 2)
    cells : int
        Towers per side of the unit square in one copy.

    Returns
    -------
    ndarray, shape (n,)
    """
    points = np.asarray(points, dtype=np.float64)
    z = np.zeros(points.shape[0])                                      # the output neuron's weighted input
    for c in range(copies):
        s = bump_edges(cells, w, shift=c / (cells * copies))          # (e,) edges of this copy
        left, right = s[:-1], s[1:]
        centre = (np.clip(left, 0, 1) + np.clip(right, 0, 1)) / 2     # (k,)
        h = sigmoid_inverse(target(centre[:, None], centre[None, :])) / copies   # (k, k): h[i, j] over cell (x_i, y_j)
        k = centre.shape[0]
        step = batch or max(1, 4_000_000 // (k * k))
        for start in range(0, points.shape[0], step):
            p = points[start:start + step]                              # (m, 2)
            bump_x = sigmoid(w * (p[:, :1] - left)) - sigmoid(w * (p[:, :1] - right))   # (m, k)
            bump_y = sigmoid(w * (p[:, 1:] - left)) - sigmoid(w * (p[:, 1:] - right))   # (m, k)
            towers = sigmoid(tower_weight * (bump_x[:, :, None] + bump_y[:, None, :]) - 1.5 * tower_weight)
            z[start:start + step] += np.einsum("mij,ij->m", towers, h)  # (m,)
    return sigmoid(z)


def tower_count(cells, copies, w=1000.0):
    """The towers of the network (each copy has one more row and column of towers when shifted)."""
    return sum((len(bump_edges(cells, w, shift=c / (cells * copies))) - 1) ** 2 for c in range(copies))


@dataclass(frozen=True)
class Towers(Settings):
    """The two-dimensional construction at several grid sizes.

    Attributes
    ----------
    cells : tuple of int
        Towers per side of the unit square (per copy), increasing.
    copies : tuple of int
        Shifted copies of the grid at each size (same length as ``cells``);
        1 is the book's plain construction.
    w : float
        The steps' weight.
    tower_weight : float
        H: a tower neuron computes sigma(H (bump_x + bump_y) - 3H/2).
    grid : int
        The error is the maximum over grid x grid points of the unit square
        (with grid - 1 a power of two, the cell corners of the first copy
        are among them: the worst places).
    """

    cells: tuple = (2, 4, 8, 16, 32)
    copies: tuple = (1, 2, 4, 8, 16)
    w: float = 1000.0
    tower_weight: float = 1000.0
    grid: int = 129

    def __post_init__(self):
        object.__setattr__(self, "cells", _increasing_whole_numbers(self.cells, "cells"))
        copies = self.copies if isinstance(self.copies, (list, tuple)) else (self.copies,)
        copies = tuple(whole_number(c, "copies") for c in copies)
        if len(copies) != len(self.cells):
            raise ConfigError(f"copies needs one number per entry of cells ({len(self.cells)}), got {list(copies)}")
        object.__setattr__(self, "copies", copies)
        object.__setattr__(self, "w", real_number(self.w, "the step weight w", low_open=True))
        object.__setattr__(self, "tower_weight", real_number(self.tower_weight, "tower_weight", low_open=True))
        object.__setattr__(self, "grid", whole_number(self.grid, "grid", minimum=2))


def run_towers(config, context):
    g = np.linspace(0.0, 1.0, config.grid)
    X, Y = np.meshgrid(g, g, indexing="ij")                                # (grid, grid)
    points = np.stack([X.ravel(), Y.ravel()], axis=1)                      # (grid^2, 2)
    target = f2(points[:, 0], points[:, 1])
    errors, mean_errors, towers, last = [], [], [], None
    for cells, copies in zip(config.cells, config.copies):
        a = tower_approximation(points, cells, copies, config.w, config.tower_weight)
        err = np.abs(a - target)
        errors.append(float(err.max()))
        mean_errors.append(float(err.mean()))
        towers.append(tower_count(cells, copies, config.w))
        last = a
    assert last is not None, "Towers has at least one entry in cells"
    plain = tower_approximation(points, config.cells[-1], 1, config.w, config.tower_weight)
    return {
        "value": errors[-1],
        "shown": falls(errors),
        "function": "f(x, y) = 0.5 + 0.25 sin(2 pi x) cos(pi y) + 0.15 x y",
        "cells": list(config.cells),
        "copies": list(config.copies),
        "towers": towers,
        "max_error": errors,
        "mean_error": mean_errors,
        "max_error_one_copy_finest": float(np.abs(plain - target).max()),
        "grid": config.grid,
        "target": _rounded(target.reshape(config.grid, config.grid)),
        "approximation": _rounded(last.reshape(config.grid, config.grid)),
        "summary": (f"max error {errors[0]:.3g} with {towers[0]} towers, {errors[-1]:.3g} with {towers[-1]} "
                    f"({config.cells[-1]}x{config.cells[-1]} cells, {config.copies[-1]} shifted copies)"),
    }


def plot_towers(result, path):
    run = result["runs"][0]
    target, approx = np.asarray(run["target"]), np.asarray(run["approximation"])
    with figure(path, ncols=3, size=(4.2, 3.8), title=f"{result['id']}: {result['title']}",
                caption=f"{run['function']}; heights through sigma^-1, sigmoid output") as (a, b, c):
        finest = f"{run['cells'][-1]}x{run['cells'][-1]} cells x {run['copies'][-1]} copies"
        for ax, data, name in ((a, target, "f(x, y)"), (b, approx, finest)):
            image = ax.imshow(data.T, origin="lower", extent=(0, 1, 0, 1), vmin=0, vmax=1, cmap="viridis")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        image.figure.colorbar(image, ax=b, fraction=0.046)
        c.loglog(run["towers"], run["max_error"], marker="o", label="max error")
        c.loglog(run["towers"], run["mean_error"], marker=".", linestyle="--", label="mean error")
        c.set_xlabel("Towers")
        c.set_ylabel("|f - network|")


# --- a trained network, for comparison -------------------------------------

@dataclass(frozen=True)
class Trained(Settings):
    """A [1, hidden, 1] network (sigmoid hidden layer, linear output, quadratic cost) trained on samples of f.

    Attributes
    ----------
    hidden : int
        Hidden neurons, also of the bump network it is compared with.
    samples : int
        Training inputs, equally spaced on [0, 1], with desired outputs f(x).
    train : TrainingConfig
        Settings of each stage of SGD (its ``epochs`` per stage; ``seed`` is the run's).
    stages : int
        Training runs in stages, eta multiplied by ``eta_factor`` after each.
    eta_factor : float
    init_slope : float
        The hidden neurons start as sigmoids sigma(w (x - s)) with w drawn from
        N(0, init_slope^2) and s uniform on [0, 1]; the output weights from
        N(0, 1/hidden), bias 0. (The default N(0, 1) weights leave every hidden
        neuron almost linear on [0, 1], and SGD then fits f poorly: a maximum
        error of about 0.16 after 1,000 epochs with 50 hidden neurons.)
    w : float
        Step weight of the bump network compared with.
    grid : int
        Points of [0, 1] where the maximum error is measured.
    plot_points : int
    """

    hidden: int = 50
    samples: int = 1000
    train: TrainingConfig = TrainingConfig(epochs=200, mini_batch_size=10, eta=0.05, momentum=0.9,
                                           monitor=("training_cost",))
    stages: int = 3
    eta_factor: float = 0.25
    init_slope: float = 30.0
    w: float = 1000.0
    grid: int = 10001
    plot_points: int = 1001

    def __post_init__(self):
        hidden = whole_number(self.hidden, "hidden", minimum=2)
        if hidden % 2:
            raise ConfigError(f"hidden must be even (the bump network it is compared with has pairs), got {hidden}")
        object.__setattr__(self, "hidden", hidden)
        if not isinstance(self.train, TrainingConfig):
            raise ConfigError("train must be a TrainingConfig")
        for name in ("samples", "stages", "grid", "plot_points"):
            object.__setattr__(self, name, whole_number(getattr(self, name), name))
        object.__setattr__(self, "eta_factor", real_number(self.eta_factor, "eta_factor", low_open=True,
                                                            high=1.0, high_open=False))
        object.__setattr__(self, "init_slope", real_number(self.init_slope, "init_slope", low_open=True))
        object.__setattr__(self, "w", real_number(self.w, "the step weight w", low_open=True))


def _initializer(init_slope):
    """An nndl initialiser: hidden sigmoids with centres uniform on [0, 1], output weights N(0, 1/n_in)."""

    def init(n_in, n_out, rng, dtype=np.float64):
        if n_in == 1:                                       # the hidden layer: w (n_out, 1), b = -w s
            weights = init_slope * rng.standard_normal((n_out, 1))
            biases = -weights[:, 0] * rng.random(n_out)
        else:                                               # the output layer
            weights = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
            biases = np.zeros(n_out)
        return weights.astype(dtype), biases.astype(dtype)

    return init


def run_trained(config, context):
    from nndl.engine.feedforward import FeedforwardNetwork
    from nndl.training import train

    x = np.linspace(0.0, 1.0, config.samples).reshape(-1, 1)          # (samples, 1)
    y = f(x)                                                           # (samples, 1): desired outputs
    net = FeedforwardNetwork([1, config.hidden, 1], activations=["sigmoid", "linear"], cost="quadratic",
                             init=_initializer(config.init_slope), seed=context.seed)
    cost, eta = [], config.train.eta
    for stage in range(config.stages):
        seed = None if context.seed is None else context.seed * 1000 + stage
        history = train(net, (x, y), config.train.replace(eta=eta, seed=seed))
        cost.extend(history.training_cost)
        eta *= config.eta_factor
    grid = np.linspace(0.0, 1.0, config.grid)
    trained_error = float(np.max(np.abs(net.feedforward(grid.reshape(-1, 1))[:, 0] - f(grid))))
    bump_error = bump_max_error(config.hidden, config.w, config.grid)
    x_plot = np.linspace(0.0, 1.0, config.plot_points)
    weights, biases = bump_parameters(config.hidden, config.w)
    return {
        "value": trained_error,
        "trained_max_error": trained_error,
        "bumps_max_error": bump_error,
        "hidden": config.hidden,
        "training_cost": cost,
        "x": _rounded(x_plot),
        "f": _rounded(f(x_plot)),
        "trained": _rounded(net.feedforward(x_plot.reshape(-1, 1))[:, 0]),
        "bumps": _rounded(bump_feedforward(weights, biases, x_plot)),
        "summary": (f"trained {config.hidden} hidden: max error {trained_error:.3g}; "
                    f"bumps with {config.hidden}: {bump_error:.3g}"),
    }


def plot_trained(result, path):
    runs = result["runs"]
    first = runs[0]
    with figure(path, ncols=2, size=(5.2, 4.0), title=f"{result['id']}: {result['title']}",
                caption=f"{first['hidden']} hidden neurons; max error: trained "
                        + ", ".join(f"{r['trained_max_error']:.3g}" for r in runs)
                        + f", bumps {first['bumps_max_error']:.3g}") as (left, right):
        left.plot(first["x"], first["f"], color="black", linewidth=2, label="f(x)")
        left.plot(first["x"], first["bumps"], linewidth=1, label=f"bumps ({first['hidden']} hidden)")
        for run in runs:
            left.plot(first["x"], run["trained"], linewidth=1, label=f"trained, seed {run['seed']}")
        left.set_xlabel("x")
        left.set_ylabel("output")
        for run in runs:
            right.semilogy(range(1, len(run["training_cost"]) + 1), run["training_cost"],
                           label=f"seed {run['seed']}")
        epoch_axis(right)
        right.set_ylabel("Training cost (quadratic)")


register(Experiment(
    id="ch4-bumps", title="bumps approximate f: max error vs hidden neurons",
    run=run_bumps, plot=plot_bumps, config=Bumps(),
    quick=Bumps(hidden=(10, 20, 50, 100, 200), grid=2001, plot_points=401),
    book="the maximum error falls as hidden neurons are added", better="lower", unit="", seeded=False))

register(Experiment(
    id="ch4-towers", title="towers approximate f(x, y): max error vs towers",
    run=run_towers, plot=plot_towers, config=Towers(),
    quick=Towers(cells=(2, 4, 8), copies=(1, 2, 4), grid=65),
    book="the same construction in two dimensions: towers", better="lower", unit="", seeded=False))

register(Experiment(
    id="ch4-trained", title="a trained network fitting f, beside the bumps",
    run=run_trained, plot=plot_trained, config=Trained(),
    quick=Trained(samples=200, train=Trained().train.replace(epochs=10), grid=2001, plot_points=401),
    book="(no number: a comparison)", better="lower", unit=""))
