"""Chapter 2's experiments: backpropagation checked, and the matrix-based mini-batch version timed.

* ``ch2-gradcheck`` -- the gradients from backpropagation (``nndl.engine.backprop``)
  against central differences (``nndl.engine.gradcheck``) for small networks
  with each cost;
* ``ch2-matrix-speed`` -- the "fully matrix-based" backpropagation of a whole
  mini-batch (the problem at the end of the chapter, what nndl trains with)
  against the book's ``network.py`` algorithm, one example at a time: the same
  gradient, and how many times faster.
"""

import time
from dataclasses import dataclass

import numpy as np

from nndl.errors import ConfigError
from nndl.experiments.figures import figure
from nndl.experiments.registry import Experiment, register
from nndl.training.config import Settings
from nndl.validate import layer_sizes, real_number, whole_number

__all__ = ["GradcheckConfig", "MatrixSpeedConfig", "gradcheck_cases", "per_example_gradient", "matrix_gradient",
           "GRADCHECK_BOUND", "AGREEMENT"]

#: Our bound on the relative error of the gradient check (the book gives no number): about 25 times
#: the largest error seen with h = 1e-5 over 20 seeds of the default cases (4e-9); a wrong backward
#: rule gives errors of order 1.
GRADCHECK_BOUND = 1e-7
#: The largest absolute difference allowed between the matrix-based and the per-example gradients.
AGREEMENT = 1e-10

#: The output activation each cost is paired with.
OUTPUT_FOR_COST = {"quadratic": "sigmoid", "cross-entropy": "sigmoid", "log-likelihood": "softmax"}


# --- ch2-gradcheck ------------------------------------------------------------------------------

@dataclass(frozen=True)
class GradcheckConfig(Settings):
    """Small networks whose backpropagation is checked against finite differences.

    Every combination of ``networks`` x ``hidden`` x ``costs`` is checked (a
    network without hidden layers once per cost).

    Attributes
    ----------
    networks : tuple of tuple of int
        Layer sizes.
    hidden : tuple of str
        Activations of the hidden layers (smooth ones: at ReLU's kink a
        finite difference straddling it is not a derivative).
    costs : tuple of str
        Each with its output activation: sigmoid, or softmax for log-likelihood.
    m : int
        Examples in the mini-batch (the cost is summed over them).
    h : float
        The step of the central difference (C(w + h) - C(w - h)) / 2h.
    init : str
        "default" (N(0, 1/n_in)) or "large" (N(0, 1)).
    """

    networks: tuple = ((3, 4, 2), (4, 5, 5, 3))
    hidden: tuple = ("sigmoid", "tanh")
    costs: tuple = ("quadratic", "cross-entropy", "log-likelihood")
    m: int = 5
    h: float = 1e-5
    init: str = "default"

    def __post_init__(self):
        from nndl.engine.initializers import INITIALIZERS

        if not isinstance(self.networks, (list, tuple)) or not self.networks:
            raise ConfigError(f"networks must be a list of layer sizes, got {self.networks!r}")
        object.__setattr__(self, "networks", tuple(layer_sizes(s) for s in self.networks))
        for name, allowed in (("hidden", ("sigmoid", "tanh", "linear")), ("costs", tuple(OUTPUT_FOR_COST))):
            values = getattr(self, name)
            if isinstance(values, str):
                values = (values,)
            if not isinstance(values, (list, tuple)) or not values or any(v not in allowed for v in values):
                raise ConfigError(f"{name} must be a list of names from {', '.join(allowed)}, got {values!r}")
            object.__setattr__(self, name, tuple(values))
        object.__setattr__(self, "m", whole_number(self.m, "the number of examples m"))
        object.__setattr__(self, "h", real_number(self.h, "the step h", low_open=True, high=1.0))
        if self.init not in INITIALIZERS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of: {', '.join(INITIALIZERS)}")


def gradcheck_cases(config):
    """The (sizes, activations, cost) checked, in order."""
    cases = []
    for sizes in config.networks:
        for hidden in (config.hidden if len(sizes) > 2 else config.hidden[:1]):
            for cost in config.costs:
                activations = (hidden,) * (len(sizes) - 2) + (OUTPUT_FOR_COST[cost],)
                cases.append((sizes, activations, cost))
    return cases


def _run_gradcheck(config, context):
    from nndl.engine.feedforward import FeedforwardNetwork
    from nndl.engine.gradcheck import check_gradients

    rng = np.random.default_rng(context.seed)
    cases = []
    for sizes, activations, cost in gradcheck_cases(config):
        net = FeedforwardNetwork(sizes, activations=list(activations), cost=cost, init=config.init, seed=rng,
                                 dtype=np.float64)
        x = rng.random((config.m, sizes[0]))                                     # (m, sizes[0])
        labels = rng.integers(0, sizes[-1], size=config.m)                       # (m,)
        check = check_gradients(net, x, labels, h=config.h)
        per_layer = [float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))
                     for a, b in zip(check.backprop, check.numerical)]
        cases.append({"sizes": list(sizes), "activations": list(activations), "cost": cost,
                      "relative_error": per_layer, "max_abs_error": check.max_abs_error})
    worst = max(max(c["relative_error"]) for c in cases)
    return {
        "value": worst, "shown": worst <= GRADCHECK_BOUND,
        "summary": f"largest relative error {worst:.2g} over {len(cases)} networks (bound {GRADCHECK_BOUND:g})",
        "cases": cases, "bound": GRADCHECK_BOUND,
    }


def _plot_gradcheck(result, path):
    from matplotlib import cm

    runs = result["runs"]
    with figure(path, size=(8.5, 4.5), title=f"{result['id']}: backpropagation vs central differences "
                                              f"(h = {result['config']['h']:g})",
                caption="relative error ||g_bp - g_fd|| / (||g_bp|| + ||g_fd||) per layer's [W | b]") as (ax,):
        for k, case in enumerate(runs[0]["cases"]):
            label = f"{case['sizes']} {'/'.join(dict.fromkeys(case['activations']))} {case['cost']}"
            layers = np.arange(1, len(case["relative_error"]) + 1)
            colour = cm.tab20(k % 20)
            for i, run in enumerate(runs):
                ax.semilogy(layers + 0.03 * k, run["cases"][k]["relative_error"], "o-", color=colour,
                            alpha=0.8, markersize=4, label=label if i == 0 else None)
        ax.axhline(runs[0]["bound"], color="k", linestyle=":", label=f"bound {runs[0]['bound']:g}")
        ax.set_xlabel("layer l")
        ax.set_ylabel("relative error")
        ax.set_xticks(range(1, 1 + max(len(c["relative_error"]) for c in runs[0]["cases"])))
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))


# --- ch2-matrix-speed ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MatrixSpeedConfig(Settings):
    """The chapter 1 network's gradient on one mini-batch, both ways.

    Attributes
    ----------
    sizes : tuple of int
    mini_batch_size : int
    repeats : int
        Mini-batches timed in a row for one measurement.
    rounds : int
        Measurements of each method, interleaved; the fastest counts (the one
        least disturbed by the rest of the machine).
    """

    sizes: tuple = (784, 30, 10)
    mini_batch_size: int = 10
    repeats: int = 200
    rounds: int = 5

    def __post_init__(self):
        object.__setattr__(self, "sizes", layer_sizes(self.sizes))
        for name in ("mini_batch_size", "repeats", "rounds"):
            object.__setattr__(self, name, whole_number(getattr(self, name), name))


def per_example_gradient(weights, biases, x, y):
    """The book's network.py algorithm: backpropagate each example alone (column vectors), sum the gradients.

    Sigmoid neurons and the quadratic cost, BP1-BP4 for one example at a time.

    Parameters
    ----------
    weights : list of ndarray, ``weights[l]`` of shape (sizes[l+1], sizes[l])
    biases : list of ndarray, ``biases[l]`` of shape (sizes[l+1], 1)
    x : list of ndarray, each (sizes[0], 1)
    y : list of ndarray, each (sizes[-1], 1)

    Returns
    -------
    nabla_w, nabla_b : lists shaped like ``weights`` and ``biases``, summed over the examples
    """
    from scipy.special import expit

    nabla_w = [np.zeros(w.shape) for w in weights]
    nabla_b = [np.zeros(b.shape) for b in biases]
    for x_i, y_i in zip(x, y):
        activation, activations = x_i, [x_i]
        for w, b in zip(weights, biases):
            activation = expit(w @ activation + b)                          # a^l = sigma(w^l a^{l-1} + b^l)  (n_l, 1)
            activations.append(activation)
        a = activations[-1]
        delta = (a - y_i) * a * (1 - a)                                      # BP1, sigma' = a (1 - a)   (n_L, 1)
        for l in range(len(weights) - 1, -1, -1):
            nabla_b[l] += delta                                              # BP3
            nabla_w[l] += delta @ activations[l].T                           # BP4      (n_l, n_{l-1})
            if l > 0:
                a_l = activations[l]
                delta = (weights[l].T @ delta) * a_l * (1 - a_l)             # BP2      (n_{l-1}, 1)
    return nabla_w, nabla_b


def matrix_gradient(work, x, y):
    """The whole mini-batch at once with nndl's Backprop workspace (as training uses it).

    Parameters
    ----------
    work : nndl.engine.backprop.Backprop
    x : ndarray, shape (m, sizes[0])
    y : ndarray, shape (m, sizes[-1]), one-hot

    Returns
    -------
    list of ndarray, ``[l-1]`` of shape (sizes[l], sizes[l-1] + 1): [dC/dW^l | dC/db^l]
    """
    work.x[...] = x
    work.forward()
    work.backward(y)
    return [work.gradient(l) for l in range(1, len(work.z))]


def _seconds_per_call(fn, repeats):
    """Seconds per call of ``fn``, over ``repeats`` calls in a row."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _run_matrix_speed(config, context):
    from threadpoolctl import threadpool_limits

    from nndl.engine.backprop import Backprop
    from nndl.engine.feedforward import FeedforwardNetwork, one_hot

    rng = np.random.default_rng(context.seed)
    sizes, m = config.sizes, config.mini_batch_size
    net = FeedforwardNetwork(sizes, activations="sigmoid", cost="quadratic", init="large", seed=rng)
    x = rng.random((m, sizes[0]))                                              # (m, sizes[0]), like pixels
    y = one_hot(rng.integers(0, sizes[-1], size=m), sizes[-1])                 # (m, sizes[-1])
    # the book's layout: a list of column vectors per example, weights (n_out, n_in), biases (n_out, 1)
    x_columns = [row.reshape(-1, 1) for row in x]
    y_columns = [row.reshape(-1, 1) for row in y]
    weights = [w.copy() for w in net.weights]
    biases = [b.reshape(-1, 1).copy() for b in net.biases]
    work = Backprop(net, m)

    nabla_w, nabla_b = per_example_gradient(weights, biases, x_columns, y_columns)
    grads = matrix_gradient(work, x, y)
    difference = max(max(float(np.max(np.abs(g[:, :-1] - w))), float(np.max(np.abs(g[:, -1] - b[:, 0]))))
                     for g, w, b in zip(grads, nabla_w, nabla_b))
    scale = max(float(np.max(np.abs(g))) for g in grads)

    with threadpool_limits(limits=1, user_api="blas"):                        # as nndl trains
        loop_times, matrix_times = [], []
        for _ in range(config.rounds):                                         # interleaved against drifting load
            loop_times.append(_seconds_per_call(
                lambda: per_example_gradient(weights, biases, x_columns, y_columns), config.repeats))
            matrix_times.append(_seconds_per_call(lambda: matrix_gradient(work, x, y), config.repeats))
    seconds_per_example, seconds_matrix = min(loop_times), min(matrix_times)
    ratio = seconds_per_example / seconds_matrix
    agree = difference <= AGREEMENT
    return {
        "value": ratio, "shown": bool(agree and ratio > 1),
        "summary": f"{ratio:.1f}x faster, same gradient (max difference {difference:.1e})" if agree
                   else f"gradients differ by {difference:.2e}",
        "max_abs_difference": difference, "largest_gradient": scale,
        "seconds_per_example_loop": seconds_per_example, "seconds_matrix": seconds_matrix,
        "rounds_per_example_loop": loop_times, "rounds_matrix": matrix_times,
        "sizes": list(sizes), "mini_batch_size": m,
    }


def _plot_matrix_speed(result, path):
    runs = result["runs"]
    config = result["config"]
    ratios = ", ".join(f"{r['value']:.1f}x" for r in runs)
    differences = max(r["max_abs_difference"] for r in runs)
    title = f"{result['id']}: gradient of one mini-batch of {config['mini_batch_size']}, {config['sizes']}"
    with figure(path, size=(6.5, 4.5), title=title,
                caption=f"faster by {ratios}; largest gradient difference {differences:.1e}; "
                        "fastest of the rounds, one BLAS thread") as (ax,):
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            offset = (i - (len(runs) - 1) / 2) * width
            ax.bar(np.arange(2) + offset, [1e6 * run["seconds_per_example_loop"], 1e6 * run["seconds_matrix"]],
                   width=width, label=f"seed {run['seed']}" if run.get("seed") is not None else None)
        ax.set_xticks(range(2), ["per example (network.py)", "whole mini-batch (matrix)"])
        ax.set_ylabel("time per mini-batch (microseconds)")


# --- the registry -----------------------------------------------------------------------------------

def _register():
    register(Experiment(
        id="ch2-gradcheck", title="backpropagation's gradient agrees with finite differences",
        run=_run_gradcheck, config=GradcheckConfig(), quick=GradcheckConfig(networks=((3, 4, 2),)),
        book="backpropagation computes the gradient (no number given)", target=GRADCHECK_BOUND, tolerance=0.0,
        better="lower", unit="", plot=_plot_gradcheck))
    register(Experiment(
        id="ch2-matrix-speed", title="fully matrix-based mini-batch backpropagation vs one example at a time",
        run=_run_matrix_speed, config=MatrixSpeedConfig(), quick=MatrixSpeedConfig(repeats=20, rounds=3),
        book="the same gradient, and much faster (no number given)", unit="x", plot=_plot_matrix_speed))


_register()
