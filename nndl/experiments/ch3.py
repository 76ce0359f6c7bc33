"""Chapter 3, improving the way networks learn: the learning slowdown, cross-entropy, overfitting and L2,
weight initialisation, the learning rate, more training data, and the techniques the book describes.

Every experiment here is registered at import (cheap: nothing is loaded or
trained until one runs). The MNIST runs measure the data the book measured:
the test data for the runs of sections 3.1 and 3.2 (as the book's listings
pass ``evaluation_data=test_data``), the validation data from the weight
initialisation on. A quick configuration (``quick_version``) trains on the
first 1,000 or so training images for a few epochs, measures 1,000 images,
and scales lambda with the number of images so that lambda/n is the book's.
"""

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from nndl.errors import ConfigError
from nndl.experiments.common import (
    FULL_TRAINING_SIZE,
    MnistRun,
    evaluation_data,
    mnist_experiment,
    mnist_result,
    quick_version,
    train_mnist,
)
from nndl.experiments.figures import epoch_axis, figure, title
from nndl.experiments.registry import Experiment, register
from nndl.training.config import MONITORS, NetworkConfig, Settings, TrainingConfig
from nndl.validate import real_number, whole_number

__all__ = ["Neuron", "train_neuron", "learning_speed", "InitComparison", "LearningRates", "judge_learning_rates",
           "MoreData", "SoftmaxComparison", "Technique"]

# The networks of the chapter: cross-entropy with chapter 1's N(0, 1) weights (the book's
# net.large_weight_initializer()), or with the chapter's default N(0, 1/n_in) weights.
CE30 = NetworkConfig(sizes=(784, 30, 10), cost="cross-entropy", init="large")
CE100 = CE30.replace(sizes=(784, 100, 10))
DEFAULT30 = CE30.replace(init="default")
DEFAULT100 = CE100.replace(init="default")


# --- helpers of this chapter's experiments ------------------------------------------------------

def _fraction(value, what, low_open=False):
    return real_number(value, what, low_open=low_open, high=1.0, high_open=False)


def _percent(x):
    return "-" if x is None else f"{100 * x:.2f}%"


# --- 3.1: the learning slowdown of a single neuron ----------------------------------------------

COSTS = ("quadratic", "cross-entropy")


@dataclass(frozen=True)
class Neuron(Settings):
    """The toy problem of section 3.1: one sigmoid neuron learning to turn the input x into the output y.

    Gradient descent on that one example, from each starting (w, b), with
    the quadratic cost and with the cross-entropy.

    Attributes
    ----------
    x, y : float
        The input (1) and the desired output (0), y in [0, 1].
    starts : tuple of (w, b)
        The book's two starting points: (0.6, 0.9), "a little wrong"
        (output 0.82), and (2.0, 2.0), "badly wrong" (output 0.98).
    eta_quadratic : float
        The book's 0.15.
    eta_cross_entropy : float
        0.005: the book says it used this, not 0.15, for its cross-entropy
        figures (a learning rate means something different for each cost).
    epochs : int
        Steps of gradient descent (300, as in the book's figures).
    window : int
        The speed of learning is the fall in cost over this many epochs.
    slow_ratio, fast_ratio : float
        The criterion: from the badly wrong start, the quadratic cost's fall
        over the first ``window`` epochs is below ``slow_ratio`` of its
        fastest fall over any window later (the slowdown), while the
        cross-entropy's is at least ``fast_ratio`` of its fastest (it learns
        fastest when most wrong). Ratios of a run to itself do not depend on
        the learning rates, which the book calls arbitrary.
    """

    x: float = 1.0
    y: float = 0.0
    starts: tuple = ((0.6, 0.9), (2.0, 2.0))
    eta_quadratic: float = 0.15
    eta_cross_entropy: float = 0.005
    epochs: int = 300
    window: int = 50
    slow_ratio: float = 0.25
    fast_ratio: float = 0.75

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("x", real_number(self.x, "the input x", low=-math.inf))
        put("y", _fraction(self.y, "the desired output y"))
        if not isinstance(self.starts, (list, tuple)) or not self.starts:
            raise ConfigError(f"starts must be a list of (w, b) pairs, got {self.starts!r}")
        starts = []
        for start in self.starts:
            if not isinstance(start, (list, tuple)) or len(start) != 2:
                raise ConfigError(f"each start must be a pair (w, b), got {start!r}")
            starts.append(tuple(real_number(v, "a starting weight or bias", low=-math.inf) for v in start))
        put("starts", tuple(starts))
        put("eta_quadratic", real_number(self.eta_quadratic, "eta_quadratic", low_open=True))
        put("eta_cross_entropy", real_number(self.eta_cross_entropy, "eta_cross_entropy", low_open=True))
        put("epochs", whole_number(self.epochs, "the number of epochs"))
        put("window", whole_number(self.window, "the window"))
        if self.window > self.epochs:
            raise ConfigError(f"the window ({self.window} epochs) must not be longer than the run ({self.epochs})")
        put("slow_ratio", _fraction(self.slow_ratio, "slow_ratio", low_open=True))
        put("fast_ratio", _fraction(self.fast_ratio, "fast_ratio", low_open=True))

    def eta(self, cost):
        return self.eta_quadratic if cost == "quadratic" else self.eta_cross_entropy


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def train_neuron(w, b, x, y, eta, cost, epochs):
    """Gradient descent for one sigmoid neuron on the single example (x, y).

    Parameters
    ----------
    w, b : float
        The starting weight and bias.
    cost : {"quadratic", "cross-entropy"}
        C = (y - a)^2 / 2, or C = -[y ln a + (1 - y) ln(1 - a)].

    Returns
    -------
    dict of lists, each of length epochs + 1 (index 0 is the start):
        "cost", "output" (a = sigma(w x + b)), "w", "b".
    """
    if cost not in COSTS:
        raise ConfigError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    curve: dict[str, list[float]] = {"cost": [], "output": [], "w": [], "b": []}
    for _epoch in range(epochs + 1):
        z = w * x + b
        a = _sigmoid(z)
        if cost == "quadratic":
            c = 0.5 * (y - a) ** 2
            delta = (a - y) * a * (1.0 - a)        # dC/dz = (a - y) sigma'(z): tiny when a saturates (3.2, 3.3)
        else:
            c = -(y * math.log(a) + (1.0 - y) * math.log1p(-a)) if 0.0 < a < 1.0 else math.inf
            delta = a - y                          # dC/dz = a - y: sigma'(z) has cancelled (3.7, 3.8)
        for name, value in (("cost", c), ("output", a), ("w", w), ("b", b)):
            curve[name].append(value)
        w -= eta * delta * x                       # dC/dw = x dC/dz
        b -= eta * delta                           # dC/db = dC/dz
    return curve


def learning_speed(cost, window):
    """How fast a cost curve falls at the start, relative to its fastest.

    Returns (first, fastest, ratio): the fall over the first ``window``
    epochs, the largest fall over any ``window`` consecutive epochs, and
    first / fastest (0 when the cost never falls).
    """
    falls = [cost[t] - cost[t + window] for t in range(len(cost) - window)]
    first, fastest = falls[0], max(falls)
    return first, fastest, (first / fastest if fastest > 0 else 0.0)


def run_slowdown(config, context):
    """Train the neuron from each start with each cost; say whether the book's slowdown was seen."""
    curves = []
    for cost in COSTS:
        for w, b in config.starts:
            curve = train_neuron(w, b, config.x, config.y, config.eta(cost), cost, config.epochs)
            first, fastest, ratio = learning_speed(curve["cost"], config.window)
            curves.append({"cost_function": cost, "w": w, "b": b, "eta": config.eta(cost),
                           "start_output": curve["output"][0], "final_output": curve["output"][-1],
                           "first_fall": first, "fastest_fall": fastest, "start_ratio": ratio,
                           "cost_left_after_window": curve["cost"][config.window] / curve["cost"][0],
                           "curve": curve})
    # The badly wrong start: the one whose first output is furthest from y.
    bad = max(config.starts, key=lambda s: abs(_sigmoid(s[0] * config.x + s[1]) - config.y))
    of = {(c["cost_function"], (c["w"], c["b"])): c for c in curves}
    quadratic, cross_entropy = of[("quadratic", bad)], of[("cross-entropy", bad)]
    shown = quadratic["start_ratio"] < config.slow_ratio and cross_entropy["start_ratio"] >= config.fast_ratio
    return {
        "shown": shown,
        "bad_start": list(bad),
        "quadratic_start_ratio": quadratic["start_ratio"],
        "cross_entropy_start_ratio": cross_entropy["start_ratio"],
        "quadratic_cost_left": quadratic["cost_left_after_window"],
        "cross_entropy_cost_left": cross_entropy["cost_left_after_window"],
        "curves": curves,
        "summary": (f"from w={bad[0]:g}, b={bad[1]:g} the first {config.window} epochs learn at "
                    f"{100 * quadratic['start_ratio']:.0f}% of the quadratic cost's fastest speed, "
                    f"{100 * cross_entropy['start_ratio']:.0f}% of the cross-entropy's"),
    }


def plot_slowdown(result, path):
    """The book's four panels: cost against epoch for each start (rows) and each cost (columns)."""
    run = result["runs"][0]
    config = result["config"]
    starts = [tuple(s) for s in config["starts"]]
    with figure(path, nrows=len(starts), ncols=len(COSTS), size=(4.5, 3.2), title=title(result),
                caption=f"book: {result['book']}") as axes:
        for i, start in enumerate(starts):
            for j, cost in enumerate(COSTS):
                ax = axes[i * len(COSTS) + j]
                c = next(c for c in run["curves"] if c["cost_function"] == cost and (c["w"], c["b"]) == start)
                ax.plot(range(len(c["curve"]["cost"])), c["curve"]["cost"], color="#2A6EA6",
                        label=f"output {c['start_output']:.2f} -> {c['final_output']:.2f}")
                ax.axvline(config["window"], color="0.5", linestyle=":",
                           label=f"first {config['window']} epochs: {100 * c['start_ratio']:.0f}% of top speed")
                ax.set_title(f"{cost}, w={start[0]:g}, b={start[1]:g}, eta {c['eta']:g}", fontsize=9)
                epoch_axis(ax)
                ax.set_ylabel("Cost")
                ax.set_ylim(bottom=0)


register(Experiment(
    id="ch3-slowdown",
    title="Learning slowdown of one sigmoid neuron: quadratic cost vs cross-entropy",
    run=run_slowdown, config=Neuron(), plot=plot_slowdown, seeded=False,
    book="quadratic cost from w=b=2 (output 0.98): hardly learns for about 150 epochs; "
         "cross-entropy learns fastest when most wrong"))


# --- 3.1: cross-entropy on MNIST ----------------------------------------------------------------

CE_30 = MnistRun(net=CE30, train=TrainingConfig(epochs=30, eta=0.5), evaluate_on="test")
CE_100 = CE_30.replace(net=CE100)

mnist_experiment("ch3-ce-30", "Cross-entropy, [784, 30, 10], N(0, 1) weights, eta 0.5, 30 epochs (test)",
                 CE_30, quick_version(CE_30), book="95.49%", target=0.9549, tolerance=0.003)
mnist_experiment("ch3-ce-100", "Cross-entropy, [784, 100, 10], N(0, 1) weights, eta 0.5, 30 epochs (test)",
                 CE_100, quick_version(CE_100), book="96.82%", target=0.9682, tolerance=0.003)


# --- 3.2: overfitting and L2 regularisation -----------------------------------------------------

OVERFIT = MnistRun(net=CE30, train=TrainingConfig(epochs=400, eta=0.5, monitor=MONITORS), training_size=1000,
                   evaluate_on="test")
OVERFIT_QUICK = OVERFIT.replace(training_size=300, evaluation_size=1000, train=OVERFIT.train.replace(epochs=30))


def run_overfit(config, context):
    """The standard result, plus when the training accuracy first reaches 100% and when the test cost is lowest."""
    _, history = train_mnist(config, context)
    result = mnist_result(history, config.evaluate_on)
    perfect = [e for e, a in zip(history.epochs, history.training_accuracy) if a == 1.0]
    costs = history.evaluation_cost
    lowest = history.epochs[min(range(len(costs)), key=costs.__getitem__)] if costs else None
    result["first_epoch_training_100"] = perfect[0] if perfect else None
    result["lowest_evaluation_cost_epoch"] = lowest
    result["final_evaluation_cost_rise"] = costs[-1] - min(costs) if costs else None
    result["summary"] += (f"; training accuracy 100% from epoch {perfect[0] if perfect else '-'}, "
                          f"{config.evaluate_on} cost lowest at epoch {lowest}")
    return result


def plot_overfit(result, path):
    """The book's four overfitting curves: training cost, test accuracy, test cost, training accuracy."""
    panels = (("training_cost", "Cost on the training data"),
              ("evaluation_accuracy", "Accuracy on the {data} data (%)"),
              ("evaluation_cost", "Cost on the {data} data"),
              ("training_accuracy", "Accuracy on the training data (%)"))
    runs = result["runs"]
    data = runs[0].get("evaluated_on", "test") if runs else "test"
    ran = MnistRun.from_dict(result["config"]).describe()
    with figure(path, nrows=2, ncols=2, title=title(result, ran),
                caption=f"book: {result['book']}") as axes:
        for ax, (name, label) in zip(axes, panels):
            for run in runs:
                history = run["history"]
                values = history[name]
                if name.endswith("accuracy"):
                    values = [100 * v for v in values]
                line, = ax.plot(history["epochs"][:len(values)], values, label=f"seed {run['seed']}")
                if name == "evaluation_cost" and run.get("lowest_evaluation_cost_epoch") is not None:
                    ax.axvline(run["lowest_evaluation_cost_epoch"], color=line.get_color(), linestyle=":")
                if name == "training_accuracy" and run.get("first_epoch_training_100") is not None:
                    ax.axvline(run["first_epoch_training_100"], color=line.get_color(), linestyle=":")
            if name == "evaluation_accuracy" and result.get("target") is not None:
                ax.axhline(100 * result["target"], color="0.4", linestyle="--", label="book's peak")
            epoch_axis(ax)
            ax.set_ylabel(label.format(data=data))


def overfit_experiment(id, title, config, quick, **book):
    return register(Experiment(id=id, title=title, run=run_overfit, config=config, quick=quick, plot=plot_overfit,
                               needs=("mnist",), **book))


overfit_experiment("ch3-overfit", "Overfitting: 1,000 training images, [784, 30, 10], eta 0.5, 400 epochs",
                   OVERFIT, OVERFIT_QUICK, target=0.8227, tolerance=0.003,
                   book="test accuracy peaks at 82.27%; training accuracy 100% by about epoch 67; "
                        "test cost lowest about epoch 15, then rises")
overfit_experiment("ch3-overfit-l2", "The overfitting run with L2 regularisation, lambda 0.1",
                   OVERFIT.replace(train=OVERFIT.train.replace(lmbda=0.1)),
                   OVERFIT_QUICK.replace(train=OVERFIT_QUICK.train.replace(lmbda=0.1)),
                   target=0.8710, tolerance=0.003, book="test accuracy peaks at 87.10%")

L2_30 = CE_30.replace(train=CE_30.train.replace(lmbda=5.0))
L2_100_60 = MnistRun(net=CE100, train=TrainingConfig(epochs=60, eta=0.1, lmbda=5.0), evaluate_on="validation")

# ch3-unregularised-30 is ch3-ce-30 again: the book quotes two numbers (95.49% and 95.33%) for that one setting.
mnist_experiment("ch3-unregularised-30", "All 50,000 images, [784, 30, 10], eta 0.5, lambda 0, 30 epochs (test)",
                 CE_30, quick_version(CE_30), book="95.33%", target=0.9533, tolerance=0.003)
mnist_experiment("ch3-l2-30", "All 50,000 images, [784, 30, 10], eta 0.5, L2 lambda 5, 30 epochs (test)",
                 L2_30, quick_version(L2_30), book="96.49%", target=0.9649, tolerance=0.003)
mnist_experiment("ch3-l2-100-60", "[784, 100, 10], eta 0.1, L2 lambda 5, 60 epochs (validation)",
                 L2_100_60, quick_version(L2_100_60), book="98.04% (validation)", target=0.9804, tolerance=0.003)


# --- 3.3: weight initialisation -----------------------------------------------------------------

@dataclass(frozen=True)
class InitComparison(Settings):
    """The same run with two weight initialisations, from the same seed.

    Attributes
    ----------
    mnist : MnistRun
        The run; its ``net.init`` is replaced by each of ``inits``.
    inits : tuple of str
        The first is the one whose best accuracy is the result's value:
        ("default", "large") -- N(0, 1/n_in) against N(0, 1).
    """

    mnist: MnistRun = MnistRun()
    inits: tuple = ("default", "large")

    def __post_init__(self):
        object.__setattr__(self, "mnist", MnistRun.coerce(self.mnist))
        inits = tuple(self.inits) if isinstance(self.inits, (list, tuple)) else ()
        if len(inits) != 2 or len(set(inits)) != 2:
            raise ConfigError(f"inits must be two different initialisations, got {self.inits!r}")
        object.__setattr__(self, "inits", tuple(NetworkConfig(init=i).init for i in inits))


def run_inits(config, context):
    """Train with each initialisation; the value is the first's best accuracy."""
    result: dict[str, Any] = {"inits": {}}
    for init in config.inits:
        _, history = train_mnist(config.mnist.replace(net=config.mnist.net.replace(init=init)), context)
        result["inits"][init] = mnist_result(history, config.mnist.evaluate_on)
    first, second = (result["inits"][i] for i in config.inits)
    result.update(
        value=first["value"], evaluated_on=config.mnist.evaluate_on,
        epoch0={i: r["first_epoch_accuracy"] for i, r in result["inits"].items()},
        best={i: r["value"] for i, r in result["inits"].items()},
        summary=f"{config.inits[0]}: epoch 0 {_percent(first['first_epoch_accuracy'])}, best "
                f"{_percent(first['value'])}; {config.inits[1]}: epoch 0 {_percent(second['first_epoch_accuracy'])}, "
                f"best {_percent(second['value'])}")
    return result


def plot_inits(result, path):
    """Accuracy against epoch for each initialisation (the book's figure), one line style per seed."""
    styles = ("-", "--", ":", "-.")
    config = result["config"]
    ran = MnistRun.from_dict(config["mnist"]).describe()
    with figure(path, title=title(result, ran), size=(8.0, 5.0), caption=f"book: {result['book']}") as (ax,):
        for k, run in enumerate(result["runs"]):
            for color, init in zip(("#FFA933", "#2A6EA6"), config["inits"]):
                history = run["inits"][init]["history"]
                ax.plot(history["epochs"], [100 * a for a in history["evaluation_accuracy"]], color=color,
                        linestyle=styles[k % len(styles)], label=f"{init} init, seed {run['seed']}")
        epoch_axis(ax)
        ax.set_ylabel(f"Accuracy on the {config['mnist']['evaluate_on']} data (%)")


INIT_30 = InitComparison(MnistRun(net=DEFAULT30, train=TrainingConfig(epochs=30, eta=0.1, lmbda=5.0),
                                  evaluate_on="validation"))
INIT_100 = InitComparison(INIT_30.mnist.replace(net=DEFAULT100))

for _id, _config, _book, _target in (
        ("ch3-init-30", INIT_30, "best 96.53% with N(0, 1/n_in) vs 96.48% with N(0, 1); epoch 0: 92.70% vs 86.43%",
         0.9653),
        ("ch3-init-100", INIT_100, "best 97.81% vs 97.55%; epoch 0: 92.95% vs 89.94%", 0.9781)):
    register(Experiment(
        id=_id, title=f"Weight initialisation N(0, 1/n_in) vs N(0, 1), {list(_config.mnist.net.sizes)}, eta 0.1, "
                      "lambda 5 (validation)",
        run=run_inits, config=_config, quick=_config.replace(mnist=quick_version(_config.mnist)), book=_book,
        target=_target, tolerance=0.003, plot=plot_inits, needs=("mnist",)))


# --- 3.5: the learning rate ---------------------------------------------------------------------

@dataclass(frozen=True)
class LearningRates(Settings):
    """Training cost against epoch for a small, a middling and a large learning rate.

    Attributes
    ----------
    mnist : MnistRun
        The run; its eta is replaced by each of ``etas``, and it monitors
        the training cost.
    etas : (float, float, float)
        Increasing: the book's 0.025, 0.25 and 2.5.
    min_rises : int
        The criterion. Shown when (1) the middle eta reaches the lowest
        cost of the three, (2) the smallest eta's cost falls (ends below
        where it began) but ends above the middle one's, and (3) the
        largest eta's cost goes up from one epoch to the next at least
        ``min_rises`` times (it oscillates) and never gets as low as the
        middle one's.
    """

    mnist: MnistRun = MnistRun()
    etas: tuple = (0.025, 0.25, 2.5)
    min_rises: int = 3

    def __post_init__(self):
        object.__setattr__(self, "mnist", MnistRun.coerce(self.mnist))
        etas = tuple(real_number(e, "each eta", low_open=True) for e in self.etas) \
            if isinstance(self.etas, (list, tuple)) else ()
        if len(etas) != 3 or not etas[0] < etas[1] < etas[2]:
            raise ConfigError(f"etas must be three increasing learning rates, got {self.etas!r}")
        object.__setattr__(self, "etas", etas)
        if "training_cost" not in (self.mnist.train.monitor or ()):
            raise ConfigError("the learning-rate run must monitor the training cost")
        object.__setattr__(self, "min_rises", whole_number(self.min_rises, "min_rises", minimum=0))


def _rises(values):
    return sum(b > a for a, b in zip(values, values[1:]))


def judge_learning_rates(small, middle, large, min_rises):
    """The book's three behaviours, from the training-cost curves of the small, middle and large eta.

    Returns a dict of check -> bool (see ``LearningRates``).
    """
    return {
        "middle eta lowest": min(middle) < min(min(small), min(large)),
        "small eta falls slowly": small[-1] < small[0] and small[-1] > middle[-1],
        "large eta oscillates": _rises(large) >= min_rises and min(large) > min(middle),
    }


def run_learning_rates(config, context):
    """Train once per eta; the value is the lowest training cost of the middle eta (the book: about 0.32)."""
    curves = []
    for eta in config.etas:
        _, history = train_mnist(config.mnist.replace(train=config.mnist.train.replace(eta=eta)), context)
        cost = history.training_cost
        curves.append({"eta": eta, "epochs": history.epochs, "training_cost": cost, "lowest": min(cost),
                       "final": cost[-1], "rises": _rises(cost), "stop_reason": history.stop_reason})
    small, middle, large = (c["training_cost"] for c in curves)              # the three etas, in order
    checks = judge_learning_rates(small, middle, large, min_rises=config.min_rises)
    return {
        "value": curves[1]["lowest"], "shown": all(checks.values()), "checks": checks, "curves": curves,
        "summary": "; ".join(f"eta {c['eta']:g}: lowest {c['lowest']:.3f}, final {c['final']:.3f}, "
                             f"{c['rises']} rises" for c in curves),
    }


def plot_learning_rates(result, path):
    """The book's figure: training cost against epoch for the three learning rates."""
    colors = ("#2A6EA6", "#FFCD33", "#FF7033")
    ran = MnistRun.from_dict(result["config"]["mnist"]).describe(varies=("eta",))
    with figure(path, title=title(result, ran), size=(8.0, 5.0), caption=f"book: {result['book']}") as (ax,):
        for k, run in enumerate(result["runs"]):
            for color, curve in zip(colors, run["curves"]):
                ax.plot(curve["epochs"], curve["training_cost"], "o-", markersize=3, color=color,
                        alpha=1.0 if k == 0 else 0.5,
                        label=f"eta = {curve['eta']:g}" + (f", seed {run['seed']}" if len(result["runs"]) > 1 else ""))
        epoch_axis(ax)
        ax.set_ylabel("Cost on the training data")


LEARNING_RATES = LearningRates(MnistRun(net=DEFAULT30, train=TrainingConfig(epochs=30, eta=0.25, lmbda=5.0,
                                                                             monitor=("training_cost",))))
register(Experiment(
    id="ch3-learning-rates", title="Training cost for eta 0.025, 0.25 and 2.5, [784, 30, 10], lambda 5, 30 epochs",
    run=run_learning_rates, config=LEARNING_RATES,
    quick=LEARNING_RATES.replace(mnist=quick_version(LEARNING_RATES.mnist, training_size=2000, epochs=6), min_rises=1),
    book="0.025 falls slowly; 0.25 falls fastest (lowest about 0.32); 2.5 oscillates", unit="",
    plot=plot_learning_rates, needs=("mnist",)))


# --- 3.2: more training data, and the SVM beside it ---------------------------------------------

#: The book's figure (its more_data script): validation accuracy (%) by training-set size.
BOOK_MORE_DATA = {100: 69.09, 1000: 88.85, 10000: 94.89, 50000: 95.97}
BOOK_MORE_DATA_SVM = {100: 25.07, 1000: 83.87, 10000: 92.45, 50000: 94.48}


@dataclass(frozen=True)
class MoreData(Settings):
    """Validation accuracy against the size of the training set, as the book's "more data" figure measured it.

    For each size the network trains on the first ``size`` images for
    ``images_seen // size`` epochs (so every size sees the same number of
    examples: the book's 1,500,000 / size epochs), with lambda =
    ``size * lmbda_per_image`` (the same lambda/n at every size: lambda 5 at
    50,000), and is measured once, after its last epoch.

    Attributes
    ----------
    net : NetworkConfig
    eta : float
    mini_batch_size : int
    training_sizes : tuple of int
        Increasing, at most 50,000.
    images_seen : int
    lmbda_per_image : float
    evaluation_size : int or None
        Measure the first this many validation images (None: all 10,000).
    svm : bool
        Also train scikit-learn's SVC with the defaults of the book's day
        (RBF kernel, C = 1, gamma = 1/784) on each size, when scikit-learn is
        installed.
    """

    net: NetworkConfig = CE30
    eta: float = 0.5
    mini_batch_size: int = 10
    training_sizes: tuple = (100, 1000, 10000, 50000)
    images_seen: int = 1_500_000
    lmbda_per_image: float = 0.0001
    evaluation_size: int | None = None
    svm: bool = True

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        if isinstance(self.net, dict):
            put("net", NetworkConfig.from_dict(self.net))
        if not isinstance(self.net, NetworkConfig):
            raise ConfigError("net must be a NetworkConfig")
        put("eta", real_number(self.eta, "eta", low_open=True))
        put("mini_batch_size", whole_number(self.mini_batch_size, "the mini-batch size"))
        sizes = tuple(whole_number(s, "each training size") for s in self.training_sizes) \
            if isinstance(self.training_sizes, (list, tuple)) else ()
        if not sizes or list(sizes) != sorted(set(sizes)) or sizes[-1] > FULL_TRAINING_SIZE:
            raise ConfigError(f"training_sizes must be increasing sizes up to {FULL_TRAINING_SIZE:,}, "
                              f"got {self.training_sizes!r}")
        put("training_sizes", sizes)
        put("images_seen", whole_number(self.images_seen, "images_seen"))
        if self.images_seen < sizes[-1]:
            raise ConfigError(f"images_seen ({self.images_seen:,}) must be at least the largest training size")
        put("lmbda_per_image", real_number(self.lmbda_per_image, "lmbda_per_image"))
        if self.evaluation_size is not None:
            put("evaluation_size", whole_number(self.evaluation_size, "evaluation_size"))
        if not isinstance(self.svm, bool):
            raise ConfigError(f"svm must be true or false, got {self.svm!r}")

    def training(self, size, seed):
        """The TrainingConfig for one size: epochs and lambda scaled by the size, nothing monitored."""
        return TrainingConfig(epochs=max(1, self.images_seen // size), mini_batch_size=self.mini_batch_size,
                              eta=self.eta, lmbda=size * self.lmbda_per_image, seed=seed, monitor=())


_SVM_CACHE: dict[Hashable, float] = {}


def svm_accuracy(images, labels, evaluation, key):
    """Accuracy of scikit-learn's SVC(gamma="auto") trained on (images, labels); None without scikit-learn.

    The SVM is deterministic, so its accuracy is kept for the process under
    ``key`` (the seeds of one experiment do not train it again).
    """
    if key not in _SVM_CACHE:
        try:
            from sklearn.svm import SVC
        except ImportError:
            return None
        classifier = SVC(gamma="auto")          # the book's svm.SVC(): gamma 'auto' was the default then
        classifier.fit(images, labels)
        _SVM_CACHE[key] = float((classifier.predict(evaluation[0]) == evaluation[1]).mean())
    return _SVM_CACHE[key]


def run_more_data(config, context):
    """Train and measure the network (and the SVM) at each size; the value is the network's accuracy at the largest."""
    import time

    from nndl.training import train

    data = context.mnist()
    x, labels = data.training.images, data.training.labels
    n = config.evaluation_size
    evaluation = (data.validation.images[:n], data.validation.labels[:n]) if n else \
        (data.validation.images, data.validation.labels)
    network, svm, seconds = [], [], []
    for size in config.training_sizes:
        start = time.perf_counter()
        net = config.net.build(seed=context.seed)
        train(net, (x[:size], labels[:size]), config.training(size, context.seed))
        network.append(net.accuracy(*evaluation))
        seconds.append(time.perf_counter() - start)
        svm.append(svm_accuracy(x[:size], labels[:size], evaluation, (context.data_dir, size, n))
                   if config.svm else None)
    missing = config.svm and any(a is None for a in svm)
    return {
        "value": network[-1], "training_sizes": list(config.training_sizes), "accuracy": network,
        "svm_accuracy": svm, "svm_missing": "scikit-learn is not installed" if missing else None,
        "seconds_per_size": seconds,
        "summary": ", ".join(f"{s:,}: {_percent(a)}" + (f" (SVM {_percent(v)})" if v is not None else "")
                             for s, a, v in zip(config.training_sizes, network, svm)),
    }


def plot_more_data(result, path):
    """Accuracy against training-set size, log scale: the network, the SVM, and the book's points."""
    config = result["config"]
    sizes = config["training_sizes"]
    with figure(path, title=title(result, f"{list(config['net']['sizes'])} {config['net']['cost']}, eta "
                                           f"{config['eta']:g}, lambda = {config['lmbda_per_image']:g} n, "
                                           f"{config['images_seen']:,} images seen per size"),
                size=(8.0, 5.0), caption="crosses: the book's figure") as (ax,):
        for k, run in enumerate(result["runs"]):
            tag = f", seed {run['seed']}" if len(result["runs"]) > 1 else ""
            ax.plot(sizes, [100 * a for a in run["accuracy"]], "o-", color="#2A6EA6", alpha=1.0 if k == 0 else 0.5,
                    label=f"neural network{tag}" if k == 0 or tag else None)
            if any(a is not None for a in run["svm_accuracy"]) and k == 0:
                ax.plot(sizes, [None if a is None else 100 * a for a in run["svm_accuracy"]], "o-",
                        color="#FFA933", label="SVM")
        ax.plot(list(BOOK_MORE_DATA), list(BOOK_MORE_DATA.values()), "x", color="#2A6EA6", markersize=9,
                label="book: network")
        ax.plot(list(BOOK_MORE_DATA_SVM), list(BOOK_MORE_DATA_SVM.values()), "x", color="#FFA933", markersize=9,
                label="book: SVM")
        ax.set_xscale("log")
        ax.set_xlabel("Training set size")
        ax.set_ylabel("Accuracy on the validation data (%)")
        ax.legend(loc="lower right", fontsize=8)


register(Experiment(
    id="ch3-more-data", title="Validation accuracy against training-set size, [784, 30, 10] and an SVM",
    run=run_more_data, config=MoreData(),
    quick=MoreData(training_sizes=(100, 500), images_seen=10_000, evaluation_size=1000),
    book="69.09 / 88.85 / 94.89 / 95.97% at 100 / 1,000 / 10,000 / 50,000 images "
         "(SVM 25.07 / 83.87 / 92.45 / 94.48%)",
    target=0.9597, tolerance=0.003, plot=plot_more_data, needs=("mnist",)))


# --- 3.4-3.6: softmax and the techniques the book describes without a listing --------------------

@dataclass(frozen=True)
class SoftmaxComparison(Settings):
    """A softmax output layer with the log-likelihood cost, beside the same network with sigmoid + cross-entropy.

    Attributes
    ----------
    mnist : MnistRun
        The softmax run; the comparison replaces its output layer by
        sigmoid and its cost by cross-entropy, same seed.
    min_accuracy : float
        Shown needs the softmax network's best accuracy at least this,
    max_gap : float
        its best within this of the sigmoid network's ("behaves like"),
    max_sum_error : float
        and every output row on the evaluation data summing to 1 within this.
    """

    mnist: MnistRun = MnistRun()
    min_accuracy: float = 0.9
    max_gap: float = 0.01
    max_sum_error: float = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "mnist", MnistRun.coerce(self.mnist))
        if self.mnist.net.activations[-1] != "softmax":
            raise ConfigError("the softmax comparison needs a network with a softmax output layer")
        object.__setattr__(self, "min_accuracy", _fraction(self.min_accuracy, "min_accuracy"))
        object.__setattr__(self, "max_gap", _fraction(self.max_gap, "max_gap"))
        object.__setattr__(self, "max_sum_error", real_number(self.max_sum_error, "max_sum_error", low_open=True))

    def sigmoid_twin(self):
        """The same run with a sigmoid output layer and the cross-entropy."""
        net = self.mnist.net
        return self.mnist.replace(net=net.replace(activations=net.activations[:-1] + ("sigmoid",),
                                                  cost="cross-entropy"))


def run_softmax(config, context):
    """Train both; check the outputs are probabilities and the two learn alike."""
    import numpy as np

    net, history = train_mnist(config.mnist, context)
    outputs = net.feedforward(evaluation_data(config.mnist, context)[0])       # (n, 10)
    sum_error = float(np.max(np.abs(outputs.sum(axis=1) - 1.0)))
    softmax = mnist_result(history, config.mnist.evaluate_on)
    _, twin = train_mnist(config.sigmoid_twin(), context)
    sigmoid = mnist_result(twin, config.mnist.evaluate_on)
    gap = abs(softmax["value"] - sigmoid["value"])
    checks = {"learns": softmax["value"] >= config.min_accuracy, "like sigmoid + cross-entropy": gap <= config.max_gap,
              "outputs sum to 1": sum_error <= config.max_sum_error}
    return {
        **softmax, "shown": all(checks.values()), "checks": checks, "max_sum_error": sum_error,
        "sigmoid_cross_entropy": sigmoid, "gap": gap,
        "summary": f"softmax best {_percent(softmax['value'])}, sigmoid + cross-entropy {_percent(sigmoid['value'])}; "
                   f"outputs sum to 1 within {sum_error:.1e}",
    }


def plot_softmax(result, path):
    """Accuracy against epoch: softmax + log-likelihood and sigmoid + cross-entropy, per seed."""
    config = result["config"]
    ran = MnistRun.from_dict(config["mnist"]).describe()
    with figure(path, title=title(result, ran), size=(8.0, 5.0), caption=f"book: {result['book']}") as (ax,):
        for k, run in enumerate(result["runs"]):
            for history, color, label in ((run["history"], "#2A6EA6", "softmax + log-likelihood"),
                                          (run["sigmoid_cross_entropy"]["history"], "#FFA933",
                                           "sigmoid + cross-entropy")):
                ax.plot(history["epochs"], [100 * a for a in history["evaluation_accuracy"]], color=color,
                        linestyle=("-", "--", ":", "-.")[k % 4], label=f"{label}, seed {run['seed']}")
        epoch_axis(ax)
        ax.set_ylabel(f"Accuracy on the {config['mnist']['evaluate_on']} data (%)")


SOFTMAX = SoftmaxComparison(MnistRun(net=DEFAULT30.replace(activations=("sigmoid", "softmax"), cost="log-likelihood"),
                                     train=TrainingConfig(epochs=30, eta=0.5, lmbda=5.0), evaluate_on="validation"))
register(Experiment(
    id="ch3-softmax", title="Softmax output + log-likelihood vs sigmoid + cross-entropy, [784, 30, 10] (validation)",
    run=run_softmax, config=SOFTMAX,
    quick=SOFTMAX.replace(mnist=quick_version(SOFTMAX.mnist), min_accuracy=0.5, max_gap=0.05),
    book="behaves like sigmoid + cross-entropy; the outputs are probabilities (sum to 1)",
    plot=plot_softmax, needs=("mnist",)))


@dataclass(frozen=True)
class Technique(Settings):
    """One run of a technique the book describes without a listing: it should train, and do what it says.

    Attributes
    ----------
    mnist : MnistRun
    min_accuracy : float
        Shown needs the best accuracy to reach this,
    stop_reason : str or None
        and, when given, training to end this way ("early stopping", "learning-rate schedule").
    """

    mnist: MnistRun = MnistRun()
    min_accuracy: float = 0.9
    stop_reason: str | None = None

    def __post_init__(self):
        from nndl.training.history import STOP_REASONS
        object.__setattr__(self, "mnist", MnistRun.coerce(self.mnist))
        object.__setattr__(self, "min_accuracy", _fraction(self.min_accuracy, "min_accuracy"))
        if self.stop_reason is not None and self.stop_reason not in STOP_REASONS:
            raise ConfigError(f"stop_reason must be one of {', '.join(STOP_REASONS)} or null, got {self.stop_reason!r}")


def run_technique(config, context):
    """The standard result; shown when it learns (and stops the way it should)."""
    _, history = train_mnist(config.mnist, context)
    result = mnist_result(history, config.mnist.evaluate_on)
    learns = result["value"] is not None and result["value"] >= config.min_accuracy
    stops = config.stop_reason is None or history.stop_reason == config.stop_reason
    result.update(shown=learns and stops, epochs_run=len(history.epochs), stop_reason=history.stop_reason,
                  final_eta=history.eta[-1] if history.eta else None)
    result["summary"] += f", {len(history.epochs)} epochs ({history.stop_reason})"
    return result


def plot_technique(result, path):
    """Accuracy against epoch (best epoch marked); with a learning-rate schedule, eta against epoch beside it."""
    runs = result["runs"]
    schedule = any(len(set(run["history"]["eta"])) > 1 for run in runs)
    config = result["config"]
    ran = MnistRun.from_dict(config["mnist"]).describe()
    with figure(path, ncols=2 if schedule else 1, title=title(result, ran),
                size=(7.0, 4.5), caption=f"book: {result['book']}") as axes:
        ax = axes[0]
        for run in runs:
            history = run["history"]
            line, = ax.plot(history["epochs"], [100 * a for a in history["evaluation_accuracy"]],
                            label=f"seed {run['seed']}: {run['stop_reason']}")
            if run.get("best_epoch") is not None:
                ax.plot([run["best_epoch"]], [100 * run["value"]], "o", color=line.get_color())
            if schedule:
                axes[1].plot(history["epochs"], history["eta"], color=line.get_color(), label=f"seed {run['seed']}")
        ax.axhline(100 * config["min_accuracy"], color="0.4", linestyle=":", label="needed to count as learning")
        epoch_axis(ax)
        ax.set_ylabel(f"Accuracy on the {config['mnist']['evaluate_on']} data (%)")
        if schedule:
            axes[1].set_yscale("log", base=2)
            epoch_axis(axes[1])
            axes[1].set_ylabel("Learning rate eta")


def _technique(id, title, mnist, book, quick_epochs=3, stop_reason=None, **quick_changes):
    config = Technique(mnist, min_accuracy=0.9, stop_reason=stop_reason)
    quick = Technique(quick_version(mnist, epochs=quick_epochs, **quick_changes), min_accuracy=0.5,
                      stop_reason=stop_reason)
    register(Experiment(id=id, title=title, run=run_technique, config=config, quick=quick, book=book,
                        plot=plot_technique, needs=("mnist",)))


_L2 = TrainingConfig(epochs=30, eta=0.5, lmbda=5.0)
_technique("ch3-l1", "L1 regularisation, lambda 1, [784, 30, 10] (validation)",
           MnistRun(net=DEFAULT30, train=TrainingConfig(epochs=30, eta=0.5, lmbda=1.0, regularization="l1"),
                    evaluate_on="validation"),
           book="described: weights shrink by a constant amount, eta lambda/n sgn(w)")
_technique("ch3-dropout", "Dropout of hidden neurons, p 0.2, [784, 100, 10] (validation)",
           MnistRun(net=DEFAULT100, train=TrainingConfig(epochs=30, eta=0.5, p_dropout=0.2), evaluate_on="validation"),
           book="described: drop hidden neurons at random while training")
_technique("ch3-momentum", "Momentum, mu 0.9, eta 0.05, lambda 5, [784, 30, 10] (validation)",
           MnistRun(net=DEFAULT30, train=TrainingConfig(epochs=30, eta=0.05, lmbda=5.0, momentum=0.9),
                    evaluate_on="validation"),
           book="described: v -> mu v - eta grad C, w -> w + v")
_technique("ch3-nesterov", "Nesterov's momentum, mu 0.9, eta 0.05, lambda 5, [784, 30, 10] (validation)",
           MnistRun(net=DEFAULT30, train=TrainingConfig(epochs=30, eta=0.05, lmbda=5.0, momentum=0.9, nesterov=True),
                    evaluate_on="validation"),
           book="described: Nesterov's accelerated gradient improves on momentum")
_technique("ch3-tanh", "tanh hidden layer, sigmoid output, [784, 30, 10], eta 0.1, lambda 5 (validation)",
           MnistRun(net=DEFAULT30.replace(activations=("tanh", "sigmoid")),
                    train=TrainingConfig(epochs=30, eta=0.1, lmbda=5.0), evaluate_on="validation"),
           book="described: tanh neurons, outputs in (-1, 1)")
_technique("ch3-relu", "ReLU hidden layer, softmax output, [784, 100, 10], eta 0.05, lambda 5 (validation)",
           MnistRun(net=NetworkConfig(sizes=(784, 100, 10), activations=("relu", "softmax"), cost="log-likelihood",
                                      init="default"),
                    train=TrainingConfig(epochs=30, eta=0.05, lmbda=5.0), evaluate_on="validation"),
           book="described: rectified linear units max(0, z)")
_technique("ch3-early-stopping", "Early stopping: no improvement in 10 epochs, at most 300 (validation)",
           MnistRun(net=DEFAULT30, train=_L2.replace(epochs=300, early_stopping=10), evaluate_on="validation"),
           book="described: stop after no improvement in validation accuracy for n epochs (no-improvement-in-10)",
           stop_reason="early stopping", quick_epochs=40, early_stopping=2)
_technique("ch3-schedule", "Learning-rate schedule: halve eta after 10 epochs without improvement, stop at 1/128",
           MnistRun(net=DEFAULT30, train=_L2.replace(epochs=300, schedule="halve", patience=10),
                    evaluate_on="validation"),
           book="described: hold eta until the validation accuracy stops improving, then halve it; stop when it "
                "is 1/128 of the start",
           stop_reason="learning-rate schedule", quick_epochs=60, patience=2, min_eta_ratio=1 / 8)
