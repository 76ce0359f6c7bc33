"""The experiment most of the book runs: train a fully connected network on MNIST, report its best accuracy.

:class:`MnistRun` is its configuration (a NetworkConfig, a TrainingConfig,
how much training data, which data to measure); :func:`quick_version` makes
one that takes seconds; :func:`train_mnist` runs it for one seed;
:func:`mnist_experiment` registers one with the standard result (best
accuracy, every epoch's History) and figure (accuracy against epoch, one
line per seed). The chapters' own experiments build on the same pieces.
"""

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from nndl.data.splits import TRAINING_SIZE
from nndl.errors import ConfigError
from nndl.experiments.figures import epoch_axis, figure
from nndl.experiments.registry import Context, Experiment, register
from nndl.training.config import NetworkConfig, Settings, TrainingConfig

__all__ = ["MnistRun", "quick_version", "train_mnist", "evaluation_data", "mnist_result", "mnist_experiment",
           "plot_accuracy", "EVALUATE_ON", "FULL_TRAINING_SIZE"]

EVALUATE_ON = ("test", "validation")

#: The book's MNIST training set: the first 50,000 of the official 60,000 images.
FULL_TRAINING_SIZE = TRAINING_SIZE


@dataclass(frozen=True)
class MnistRun(Settings):
    """One training run of a fully connected network on the book's MNIST split.

    Attributes
    ----------
    net : NetworkConfig
    train : TrainingConfig
        Its ``seed`` is replaced by each run's seed.
    training_size : int, optional
        Train on the first this many of the 50,000 training images (None: all).
    evaluate_on : {"test", "validation"}
        The data measured after every epoch (the book quotes test accuracy
        in chapter 1 and mostly validation accuracy in chapter 3).
    evaluation_size : int, optional
        Measure on the first this many images of it (None: all 10,000).
    """

    net: NetworkConfig = NetworkConfig()
    train: TrainingConfig = TrainingConfig()
    training_size: int | None = None
    evaluate_on: str = "test"
    evaluation_size: int | None = None

    def __post_init__(self):
        if not isinstance(self.net, NetworkConfig) or not isinstance(self.train, TrainingConfig):
            raise ConfigError("an MnistRun needs a NetworkConfig and a TrainingConfig")
        if self.evaluate_on not in EVALUATE_ON:
            raise ConfigError(f"evaluate_on must be one of {', '.join(EVALUATE_ON)}, got {self.evaluate_on!r}")
        for name in ("training_size", "evaluation_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number >= 1 or null, got {value!r}")

    @classmethod
    def from_dict(cls, data, source=None):
        """The MnistRun a dict describes, its ``net`` and ``train`` nested as ``to_dict`` writes them."""
        if isinstance(data, dict):
            data = dict(data)
            for name, kind in (("net", NetworkConfig), ("train", TrainingConfig)):
                if isinstance(data.get(name), dict):
                    data[name] = kind.from_dict(data[name], source)
        return super().from_dict(data, source)

    @classmethod
    def coerce(cls, value: "MnistRun | dict") -> "MnistRun":
        """``value`` itself, or the MnistRun its dict describes.

        For the experiments' configurations that hold an MnistRun: made in
        code they get one, read back from a result's JSON they get its dict.
        """
        if isinstance(value, dict):
            value = cls.from_dict(value)
        if not isinstance(value, cls):
            raise ConfigError(f"expected an MnistRun (or its dict), got {type(value).__name__}")
        return value

    def describe(self, varies: Collection[str] = ()) -> str:
        """A line for a figure's title: sizes, activations, cost, init, eta, lambda, epochs, images.

        ``varies``: settings the experiment changes ("eta", "lmbda"), said as such.
        """
        net, train = self.net, self.train
        parts = [str(list(net.sizes)), "/".join(dict.fromkeys(net.activations)), net.cost, f"{net.init} init",
                 "eta varies" if "eta" in varies else f"eta {train.eta:g}"]
        if "lmbda" in varies:
            parts.append("lambda varies")
        elif train.lmbda:
            parts.append(f"{train.regularization.upper()} lambda {train.lmbda:g}")
        parts.append(f"{train.epochs} epochs")
        parts.append(f"{self.training_size or FULL_TRAINING_SIZE:,} images")
        return ", ".join(parts)


def quick_version(config: MnistRun, *, training_size: int = 1000, epochs: int = 3, evaluation_size: int = 1000,
                  **train_changes) -> MnistRun:
    """A version of an MnistRun that takes seconds: fewer images and epochs, lambda/n kept.

    lambda is scaled by ``training_size`` over the full run's training-set
    size, so that the weight decay per step, eta*lambda/n, is the book's.
    """
    train = config.train
    lmbda = train.lmbda * training_size / (config.training_size or FULL_TRAINING_SIZE)
    return config.replace(training_size=training_size, evaluation_size=evaluation_size,
                          train=train.replace(epochs=epochs, lmbda=lmbda, **train_changes))


def evaluation_data(config: MnistRun, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels an MnistRun measures: its ``evaluate_on`` data, the first ``evaluation_size``."""
    data = context.mnist()
    split = data.test if config.evaluate_on == "test" else data.validation
    n = config.evaluation_size
    return (split.images[:n], split.labels[:n]) if n else (split.images, split.labels)


def train_mnist(config, context, **train_settings):
    """Train ``config`` with ``context.seed``; returns (network, History).

    ``train_settings`` go to :func:`nndl.training.train` (e.g. ``on_epoch``).
    """
    from nndl.training import train

    data = context.mnist()
    x, labels = data.training.images, data.training.labels
    if config.training_size:
        x, labels = x[:config.training_size], labels[:config.training_size]
    net = config.net.build(seed=context.seed)
    history = train(net, (x, labels), config.train.replace(seed=context.seed),
                    evaluation_data=evaluation_data(config, context), **train_settings)
    return net, history


def mnist_result(history, evaluate_on="test"):
    """The standard result of a run: best accuracy (the value), its epoch, and the whole History."""
    accuracy = history.evaluation_accuracy
    return {
        "value": history.best_accuracy,
        "best_epoch": history.best_epoch,
        "first_epoch_accuracy": accuracy[0] if accuracy else None,
        "final_accuracy": accuracy[-1] if accuracy else None,
        "evaluated_on": evaluate_on,
        "summary": f"best {100 * history.best_accuracy:.2f}% at epoch {history.best_epoch}"
                   if history.best_accuracy is not None else "no accuracy measured",
        "history": history.to_dict(),
    }


def plot_accuracy(result, path):
    """Accuracy against epoch, one line per seed, the book's value as a dotted line."""
    runs = result["runs"]
    with figure(path, title=f"{result['id']}: {result['title']}", caption=f"book: {result['book']}") as (ax,):
        for run in runs:
            history = run["history"]
            ax.plot(history["epochs"], [100 * a for a in history["evaluation_accuracy"]],
                    label=f"seed {run['seed']}")
        if result.get("target") is not None:
            ax.axhline(100 * result["target"], color="0.4", linestyle=":", label="book")
        epoch_axis(ax)
        ax.set_ylabel(f"Accuracy on the {runs[0].get('evaluated_on', 'test')} data (%)" if runs else "Accuracy (%)")


def mnist_experiment(id, title, config, quick, *, book="", target=None, tolerance=None, better="higher",
                     plot=plot_accuracy):
    """Register the standard MNIST experiment: ``config`` (and ``quick``) are MnistRun; the value is the best
    accuracy."""

    def run(config, context):
        _, history = train_mnist(config, context)
        return mnist_result(history, config.evaluate_on)

    return register(Experiment(id=id, title=title, run=run, config=config, quick=quick, book=book, target=target,
                               tolerance=tolerance, better=better, plot=plot, needs=("mnist",)))
