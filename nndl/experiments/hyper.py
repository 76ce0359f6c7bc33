"""Chapter 3's advice on choosing hyper-parameters, run: the learning-rate threshold, and a search over eta and lambda.

``hyper-eta-threshold`` follows the book's recipe for eta: find the largest
learning rate at which the training cost falls from the start, during the
first few epochs, and use half of it. ``hyper-search`` is the grid search the
book mentions: every (eta, lambda) of a grid trained independently, judged
on the validation data. Neither has a number in the book to compare with.
"""

import math
from dataclasses import dataclass

from nndl.errors import ConfigError
from nndl.experiments.ch3 import DEFAULT30
from nndl.experiments.common import FULL_TRAINING_SIZE, MnistRun, quick_version, train_mnist
from nndl.experiments.figures import epoch_axis, figure, title
from nndl.experiments.registry import Experiment, register
from nndl.training.config import Settings, TrainingConfig
from nndl.validate import real_number

__all__ = ["EtaThreshold", "falls_from_start", "GridSearch"]


def _increasing(values, what, low_open=True):
    values = tuple(real_number(v, what, low_open=low_open) for v in values) if isinstance(values, (list, tuple)) else ()
    if not values or list(values) != sorted(set(values)):
        raise ConfigError(f"{what} must be a non-empty list of increasing numbers")
    return values


def _finite(values):
    """Costs as JSON-ready numbers: inf and nan (a diverging run) become None."""
    return [v if v == v and abs(v) != float("inf") else None for v in map(float, values)]


# --- the learning-rate threshold ----------------------------------------------------------------

@dataclass(frozen=True)
class EtaThreshold(Settings):
    """The book's way to pick eta: the threshold above which the training cost no longer falls from the start.

    Attributes
    ----------
    mnist : MnistRun
        One short run (a few epochs, a subset of the training data, no
        regularisation: the book sets eta before lambda); its eta is replaced
        by each of ``etas``, and it monitors the training cost.
    etas : tuple of float
        Increasing; a log grid.

    A learning rate passes when the training cost falls in every one of the
    first ``mnist.train.epochs`` epochs, starting from its value before any
    training. The threshold is the largest eta that passes; the recommended
    eta is half of it ("a factor of two below the threshold").
    """

    mnist: MnistRun = MnistRun()
    etas: tuple = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)

    def __post_init__(self):
        object.__setattr__(self, "mnist", MnistRun.coerce(self.mnist))
        object.__setattr__(self, "etas", _increasing(self.etas, "etas"))
        if "training_cost" not in (self.mnist.train.monitor or ()):
            raise ConfigError("the threshold search must monitor the training cost")


def falls_from_start(costs):
    """True when every cost is below the one before it (costs[0]: before training; None: diverged)."""
    return None not in costs and len(costs) > 1 and all(b < a for a, b in zip(costs, costs[1:]))


def run_threshold(config, context):
    """Train briefly at each eta; the value is half the largest eta whose training cost falls from the start."""
    from nndl.engine.regularizers import get_regularizer
    from nndl.training import train

    data = context.mnist()
    size = config.mnist.training_size
    x, labels = data.training.images[:size], data.training.labels[:size]
    t = config.mnist.train
    regularizer = get_regularizer(t.regularization, t.lmbda)          # None when lambda is 0
    curves = []
    for eta in config.etas:
        net = config.mnist.net.build(seed=context.seed)
        start = net.total_cost(x, labels, regularizer, n=t.lmbda_divisor(x.shape[0]))   # before any training
        history = train(net, (x, labels), t.replace(eta=eta, seed=context.seed))
        costs = _finite([start] + history.training_cost)
        curves.append({"eta": eta, "training_cost": costs, "falls": falls_from_start(costs),
                       "stop_reason": history.stop_reason})
    passed = [c["eta"] for c in curves if c["falls"]]
    threshold = max(passed) if passed else None
    recommended = threshold / 2 if threshold is not None else None
    return {
        "value": recommended, "threshold": threshold, "curves": curves,
        "falls": {f"{c['eta']:g}": c["falls"] for c in curves},
        "summary": (f"cost falls from the start up to eta {threshold:g} (next tried: "
                    f"{_next(config.etas, threshold)}); use eta {recommended:g}" if threshold is not None
                    else "the training cost fell from the start at none of the learning rates tried"),
    }


def _next(etas, eta):
    later = [e for e in etas if e > eta]
    return f"{later[0]:g}" if later else "none"


def plot_threshold(result, path):
    """Training cost against epoch (0: before training) for every eta; the threshold's curve drawn thick."""
    from matplotlib import colormaps

    runs = result["runs"]
    config = result["config"]
    run = runs[0]
    colors = colormaps["viridis"]
    n = len(run["curves"])
    ran = MnistRun.from_dict(config["mnist"]).describe(varies=("eta",))
    with figure(path, title=title(result, f"{ran}, seed {run['seed']}"),
                size=(8.0, 5.0), caption=f"{run['summary']}"
                + (f"; other seeds: {', '.join(str(r['threshold']) for r in runs[1:])}" if len(runs) > 1 else "")
                ) as (ax,):
        for k, curve in enumerate(run["curves"]):
            costs = curve["training_cost"]
            points = [(e, c) for e, c in enumerate(costs) if c is not None]
            thick = curve["eta"] == run["threshold"]
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-" if curve["falls"] else "x--",
                    color=colors(k / max(1, n - 1)), linewidth=3 if thick else 1.2, markersize=4,
                    label=f"eta {curve['eta']:g}" + (" (threshold)" if thick else "")
                          + ("" if curve["falls"] else ": does not fall"))
        ax.set_yscale("log")
        epoch_axis(ax, "Epoch (0: before training)")
        ax.set_ylabel("Cost on the training data")
        ax.legend(fontsize=7, ncol=2)


THRESHOLD = EtaThreshold(MnistRun(net=DEFAULT30, train=TrainingConfig(epochs=5, eta=0.5, monitor=("training_cost",)),
                                  training_size=10_000))
register(Experiment(
    id="hyper-eta-threshold", title="The learning-rate threshold: largest eta at which the training cost falls",
    run=run_threshold, config=THRESHOLD,
    quick=THRESHOLD.replace(mnist=quick_version(THRESHOLD.mnist, training_size=1000, epochs=3),
                            etas=(0.01, 0.1, 1.0, 10.0, 100.0)),
    book="estimate the largest eta at which the training cost decreases during the first few epochs; "
         "use about half of it",
    unit="", plot=plot_threshold, needs=("mnist",)))


# --- grid search over eta and lambda ------------------------------------------------------------

@dataclass(frozen=True)
class GridSearch(Settings):
    """Every (eta, lambda) of a grid, each an independent training judged on the validation data.

    Attributes
    ----------
    mnist : MnistRun
        The run; its eta and lambda are replaced by each point of the grid.
    etas, lmbdas : tuple of float
        Increasing; the book suggests orders of magnitude (lambda from 1.0
        up and down by factors of 10).
    """

    mnist: MnistRun = MnistRun()
    etas: tuple = (0.01, 0.1, 1.0, 10.0)
    lmbdas: tuple = (0.1, 1.0, 10.0, 100.0)

    def __post_init__(self):
        object.__setattr__(self, "mnist", MnistRun.coerce(self.mnist))
        object.__setattr__(self, "etas", _increasing(self.etas, "etas"))
        object.__setattr__(self, "lmbdas", _increasing(self.lmbdas, "lmbdas", low_open=False))
        if self.mnist.evaluate_on != "validation":
            raise ConfigError("a hyper-parameter search is judged on the validation data, not the test data")
        train = self.mnist.train
        n = train.lmbda_divisor(self.mnist.training_size or FULL_TRAINING_SIZE)
        if train.regularization == "l2" and self.etas[-1] * self.lmbdas[-1] / n >= 1.0:
            raise ConfigError(f"eta {self.etas[-1]:g} with lambda {self.lmbdas[-1]:g} would flip the weights' signs "
                              f"every step (eta lambda / n >= 1 for n = {n:,}); use a smaller grid")

    def point(self, eta, lmbda):
        """The run at one point of the grid."""
        return self.mnist.replace(train=self.mnist.train.replace(eta=eta, lmbda=lmbda))


def run_search(config, context):
    """Train every point of the grid; the value is the best validation accuracy found."""
    table = []
    for eta in config.etas:
        for lmbda in config.lmbdas:
            _, history = train_mnist(config.point(eta, lmbda), context)
            table.append({"eta": eta, "lmbda": lmbda, "best_accuracy": history.best_accuracy,
                          "best_epoch": history.best_epoch, "stop_reason": history.stop_reason})
    best = max(table, key=lambda row: row["best_accuracy"] if row["best_accuracy"] is not None else -1.0)
    return {
        "value": best["best_accuracy"], "best": best, "table": table,
        "summary": f"best {100 * best['best_accuracy']:.2f}% at eta {best['eta']:g}, lambda {best['lmbda']:g}",
    }


def plot_search(result, path):
    """A heat map of the best validation accuracy (median over seeds) at each eta (rows) and lambda (columns)."""
    import statistics

    config = result["config"]
    etas, lmbdas = config["etas"], config["lmbdas"]
    grid = [[math.nan] * len(lmbdas) for _ in etas]                   # every cell is set below
    for i, eta in enumerate(etas):
        for j, lmbda in enumerate(lmbdas):
            values = [row["best_accuracy"] for run in result["runs"] for row in run["table"]
                      if row["eta"] == eta and row["lmbda"] == lmbda and row["best_accuracy"] is not None]
            grid[i][j] = 100 * statistics.median(values) if values else float("nan")
    best = max(((i, j) for i in range(len(etas)) for j in range(len(lmbdas))),
               key=lambda ij: grid[ij[0]][ij[1]] if grid[ij[0]][ij[1]] == grid[ij[0]][ij[1]] else -1.0)
    seeds = ", ".join(str(run["seed"]) for run in result["runs"])
    ran = MnistRun.from_dict(config["mnist"]).describe(varies=("eta", "lmbda"))
    with figure(path, title=title(result, ran), size=(8.0, 5.5),
                caption=f"median over seeds {seeds}; best: eta {etas[best[0]]:g}, lambda {lmbdas[best[1]]:g}, "
                        f"{grid[best[0]][best[1]]:.2f}%") as (ax,):
        image = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
        finite = [v for row in grid for v in row if v == v]
        middle = (min(finite) + max(finite)) / 2 if finite else 0.0
        for i in range(len(etas)):
            for j in range(len(lmbdas)):
                ax.text(j, i, f"{grid[i][j]:.1f}" + (" (best)" if (i, j) == best else ""), ha="center",
                        va="center", fontsize=9, color="black" if grid[i][j] > middle else "white",
                        fontweight="bold" if (i, j) == best else None)
        ax.set_xticks(range(len(lmbdas)), [f"{v:g}" for v in lmbdas])
        ax.set_yticks(range(len(etas)), [f"{v:g}" for v in etas])
        ax.set_xlabel("lambda (L2)")
        ax.set_ylabel("eta")
        ax.grid(False)
        ax.figure.colorbar(image, ax=ax, label=f"Best accuracy on the {config['mnist']['evaluate_on']} data (%)")


SEARCH = GridSearch(MnistRun(net=DEFAULT30, train=TrainingConfig(epochs=10, eta=0.5), training_size=10_000,
                             evaluate_on="validation"))
register(Experiment(
    id="hyper-search", title="Grid search over eta and lambda on the validation data",
    run=run_search, config=SEARCH,
    quick=SEARCH.replace(mnist=quick_version(SEARCH.mnist, training_size=1000, epochs=2), etas=(0.1, 1.0),
                         lmbdas=(0.1, 1.0)),
    book="search eta and lambda on the validation data (grid search, or smarter); no number given",
    plot=plot_search, needs=("mnist",)))
