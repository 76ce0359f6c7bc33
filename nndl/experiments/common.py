"""The experiment most of the book runs: train a fully connected network on MNIST, report its best accuracy.

:class:`MnistRun` is its configuration (a NetworkConfig, a TrainingConfig,
how much training data, which data to measure); :func:`train_mnist` runs it
for one seed; :func:`mnist_experiment` registers one with the standard
result (best accuracy, every epoch's History) and figure (accuracy against
epoch, one line per seed).
"""

from dataclasses import dataclass

from nndl.errors import ConfigError
from nndl.experiments.figures import figure
from nndl.experiments.registry import Experiment, register
from nndl.training.config import NetworkConfig, Settings, TrainingConfig

__all__ = ["MnistRun", "train_mnist", "mnist_result", "mnist_experiment", "plot_accuracy", "EVALUATE_ON"]

EVALUATE_ON = ("test", "validation")


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
    training_size: int = None
    evaluate_on: str = "test"
    evaluation_size: int = None

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

    def describe(self):
        """A line for a figure's title: sizes, cost, eta, lambda, epochs, data."""
        t = self.train
        parts = [str(list(self.net.sizes)), self.net.cost, f"eta {t.eta:g}"]
        if t.lmbda:
            parts.append(f"lambda {t.lmbda:g}")
        parts.append(f"{t.epochs} epochs")
        if self.training_size:
            parts.append(f"{self.training_size:,} training images")
        return ", ".join(parts)


def train_mnist(config, context, **train_settings):
    """Train ``config`` with ``context.seed``; returns (network, History).

    ``train_settings`` go to :func:`nndl.training.train` (e.g. ``on_epoch``).
    """
    from nndl.training import train

    data = context.mnist()
    x, labels = data.training.images, data.training.labels
    if config.training_size:
        x, labels = x[:config.training_size], labels[:config.training_size]
    evaluation = data.test if config.evaluate_on == "test" else data.validation
    if config.evaluation_size:
        evaluation = (evaluation.images[:config.evaluation_size], evaluation.labels[:config.evaluation_size])
    net = config.net.build(seed=context.seed)
    history = train(net, (x, labels), config.train.replace(seed=context.seed), evaluation_data=evaluation,
                    **train_settings)
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
        ax.set_xlabel("Epoch")
        ax.set_ylabel(f"Accuracy on the {runs[0].get('evaluated_on', 'test')} data (%)" if runs else "Accuracy (%)")


def mnist_experiment(id, title, config, quick, *, book="", target=None, tolerance=None, better="higher",
                     plot=plot_accuracy):
    """Register the standard MNIST experiment: ``config`` (and ``quick``) are MnistRun; the value is the best accuracy."""

    def run(config, context):
        _, history = train_mnist(config, context)
        return mnist_result(history, config.evaluate_on)

    return register(Experiment(id=id, title=title, run=run, config=config, quick=quick, book=book, target=target,
                               tolerance=tolerance, better=better, plot=plot, needs=("mnist",)))
