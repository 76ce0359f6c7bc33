"""The book's experiments, each registered once under an id such as ``ch3-overfit``.

An :class:`Experiment` is data: what it is (``id``, ``title``), what the book
reports (``book`` as the book says it, ``target`` as a number to compare
with), how close counts (``tolerance``), its configuration (``config``, a
typed :class:`Settings`, with a smaller ``quick`` one for smoke tests), a
``run(config, context) -> dict`` that does one seed's work and returns JSON-ready
results, and a ``plot(result, path)`` that draws the figure from the saved
JSON (so a figure never needs a retraining).

A run's dict holds whatever its figure needs, plus, for the report:

* ``"value"`` -- the number compared with the book's ``target`` (an accuracy
  as a fraction, an error, a ratio), or absent;
* ``"shown"`` -- for an experiment the book gives no number for: True when the
  behaviour the book describes was seen, False when it was not;
* ``"summary"`` -- a few words for the report's "ours" column.

The experiments live in ``ch1.py`` ... ``ch6.py`` and ``hyper.py`` of this
package, and nndl's own attempt past the book's record in ``beyond.py``;
:func:`experiments` imports them the first time it is called (never at
``import nndl``), in the book's order.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nndl.errors import ConfigError
from nndl.training.config import Settings, TrainingConfig

if TYPE_CHECKING:
    from nndl.data.mnist import MnistData

__all__ = ["Experiment", "Context", "Settings", "register", "experiments", "get", "select", "GROUPS",
           "format_value"]

#: The modules that register experiments, in the book's order; each is also a group name ("ch3": all of it).
GROUPS = ("ch1", "ch2", "ch3", "ch4", "ch5", "ch6", "hyper", "beyond")

_REGISTRY: dict[str, Experiment] = {}
_LOADED = False


@dataclass(frozen=True)
class Experiment:
    """One experiment of the book.

    Attributes
    ----------
    id : str
        Lower case, ``chN-...`` (or ``hyper-...``, ``beyond-...``); the command line's name for it.
    title : str
        What it shows, in a line.
    run : callable
        ``run(config, context) -> dict``: one seed's run (see the module docstring).
    config : Settings
        The book's configuration.
    quick : Settings, optional
        A smaller configuration of the same type that runs in seconds (``--quick``);
        default: ``config`` itself (for experiments that are already quick).
    book : str
        What the book reports, in its words ("82.27%", "falls slowly"); "" when nothing.
    target : float, optional
        The book's number, in the units of the runs' ``value`` (a fraction for accuracies).
    tolerance : float, optional
        How far the median value may fall from ``target``.
    better : {"higher", "lower", None}
        A value on this side of the target always counts as reproduced ("within
        0.3 points, or better"); None: within ``tolerance`` either way.
    unit : {"%", ""}
        "%": ``value`` is a fraction shown as a percentage.
    plot : callable, optional
        ``plot(result, path)``: draw the figure from the result (the dict written to ID.json).
    seeded : bool
        False for a deterministic experiment: it runs once, whatever seeds are asked for.
    needs : tuple of str
        What it needs beyond NumPy: "mnist", "torch", "sklearn".
    run_many : callable, optional
        ``run_many(config, contexts) -> list of dict``: several seeds at once, in one process (the
        chapter 6 rungs: their networks trained together), one result per context, in order;
        used by ``nndl reproduce --together``.
    """

    id: str
    title: str
    run: Callable[..., dict[str, Any]]
    config: Settings
    quick: Settings | None = None
    book: str = ""
    target: float | None = None
    tolerance: float | None = None
    better: str | None = "higher"
    unit: str = "%"
    plot: Callable[..., Any] | None = None
    seeded: bool = True
    needs: tuple[str, ...] = ()
    run_many: Callable[..., Any] | None = None

    def __post_init__(self):
        if not self.id.islower() or " " in self.id or not self.id.startswith(GROUPS):
            raise ConfigError(f"an experiment id is lower case, without spaces, and starts with a group "
                              f"({', '.join(GROUPS)}): got {self.id!r}")
        if self.quick is not None and type(self.quick) is not type(self.config):
            raise ConfigError(f"{self.id}: the quick configuration must be a {type(self.config).__name__}")
        if self.better not in ("higher", "lower", None):
            raise ConfigError(f"{self.id}: better must be 'higher', 'lower' or None")
        if (self.target is None) != (self.tolerance is None):
            raise ConfigError(f"{self.id}: a target needs a tolerance, and a tolerance a target")

    def draw(self, result: dict[str, Any], path: Any, source: str = "the result") -> None:
        """Draw the figure from a result read back from ``source`` (an ``ID.json``): ``plot(result, path)``.

        A result that passed :func:`nndl.experiments.runner.check_result` can still lack what this figure
        reads from its runs (a hand-edited or damaged file): that is a FileFormatError naming the file,
        not a traceback.
        """
        from nndl.errors import FileFormatError, NndlError
        if self.plot is None:
            raise ConfigError(f"{self.id} has no figure")
        try:
            self.plot(result, path)
        except NndlError:
            raise
        except (KeyError, TypeError, IndexError, ValueError, AttributeError, ZeroDivisionError) as e:
            raise FileFormatError(f"{source} does not hold what the figure of {self.id} is drawn from "
                                  f"({type(e).__name__}: {str(e)[:200]})") from None

    @property
    def group(self):
        """The module the experiment belongs to: "ch1" ... "ch6", "hyper" or "beyond"."""
        return self.id.split("-", 1)[0]

    def settings(self, quick=False, epochs=None):
        """The configuration to run: the book's, or the quick one; trained for ``epochs`` epochs when given.

        ``epochs`` applies to the experiments that train one network, whose
        configuration has a ``train`` TrainingConfig (a ConfigError for the others).
        """
        config = self.quick if quick and self.quick is not None else self.config
        if epochs is None:
            return config
        train = getattr(config, "train", None)
        if not isinstance(train, TrainingConfig):
            raise ConfigError(f"{self.id} does not train one network for a number of epochs, so --epochs cannot "
                              "change it")
        return config.replace(train=train.replace(epochs=epochs))

    def book_epochs(self, quick=False):
        """The number of epochs its configuration trains for, or None when it has no such number."""
        train = getattr(self.settings(quick), "train", None)
        return train.epochs if isinstance(train, TrainingConfig) else None

    def within(self, median, shown=None):
        """Whether a median value reproduces the book: True, False, or None when there is nothing to compare."""
        if self.target is None or median is None:
            return shown
        if self.better == "higher" and median >= self.target:
            return True
        if self.better == "lower" and median <= self.target:
            return True
        return abs(median - self.target) <= self.tolerance

    def format(self, value):
        """A value as the report shows it."""
        return format_value(value, self.unit)


def format_value(value, unit="%"):
    """``0.9542`` -> "95.42%" for unit "%"; otherwise four significant digits."""
    if value is None:
        return "-"
    if unit == "%":
        return f"{100 * value:.2f}%"
    return f"{value:.4g}{unit}"


@dataclass
class Context:
    """What a run is given besides its configuration.

    Attributes
    ----------
    seed : int or None
        The run's seed (None for a deterministic experiment).
    quick : bool
        The quick configuration is running (for the few choices a configuration does not carry).
    data_dir : str or None
        Where MNIST is; None: nndl's usual search.
    threads : int or None
        CPU threads the run may use (1 when runs go in parallel); None: the libraries' defaults.
    name : str
        The run's name, e.g. "ch6-relu-s1" (for files it keeps).
    work_dir : str or None
        Where a long run may keep checkpoints to resume from if it is stopped; None: keep none.
    device : str or None
        Where the PyTorch runs (chapter 6) train: "cpu", "cuda", "cuda:N" or "auto"; None: the CPU.
    cuda_graph : bool
        Replay the training steps of the PyTorch runs from CUDA graphs (``nndl.deep.graphs``), except
        those that train in bfloat16 (autocast), which train eagerly.
    """

    seed: int | None = None
    quick: bool = False
    data_dir: str | None = None
    threads: int | None = None
    name: str = "run"
    work_dir: str | None = None
    device: str | None = None
    cuda_graph: bool = False

    def checkpoint_path(self, suffix=""):
        """The file for this run's checkpoint (``suffix`` tells several apart), or None when there is no work_dir."""
        if self.work_dir is None:
            return None
        from pathlib import Path
        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        return str(Path(self.work_dir) / f"{self.name}{suffix}.ckpt")

    def mnist(self):
        """The book's MNIST split (loaded once per process)."""
        return _mnist(self.data_dir)


_MNIST_CACHE: dict[str | None, MnistData] = {}


def _mnist(data_dir):
    if data_dir not in _MNIST_CACHE:
        from nndl.data.mnist import load_mnist
        _MNIST_CACHE[data_dir] = load_mnist(data_dir, progress=False)
    return _MNIST_CACHE[data_dir]


def register(experiment):
    """Add an experiment to the registry (its id must be new); returns it."""
    if experiment.id in _REGISTRY:
        raise ConfigError(f"experiment {experiment.id!r} is registered twice")
    _REGISTRY[experiment.id] = experiment
    return experiment


def experiments():
    """Every registered experiment, id -> Experiment, in the book's order."""
    global _LOADED
    if not _LOADED:
        for group in GROUPS:
            importlib.import_module(f"nndl.experiments.{group}")
        _LOADED = True
    order = {g: i for i, g in enumerate(GROUPS)}
    return dict(sorted(_REGISTRY.items(), key=lambda item: order[item[1].group]))


def get(experiment_id):
    """The experiment called ``experiment_id``; an unknown id is a ConfigError naming the near matches."""
    registry = experiments()
    key = experiment_id.strip().lower()
    if key in registry:
        return registry[key]
    near = difflib.get_close_matches(key, registry, n=5, cutoff=0.6)
    if not near:
        near = [i for i in registry if key in i][:5]
    hint = f"; did you mean {', '.join(near)}?" if near else "; see nndl reproduce --list"
    raise ConfigError(f"no experiment called {experiment_id!r}{hint}")


def select(names):
    """The experiments named: ids, group names ("ch3") or "all"; in the book's order, each once."""
    registry = experiments()
    chosen = set()
    for name in names:
        key = name.strip().lower()
        if key == "all":
            chosen.update(registry)
        elif key in GROUPS:
            chosen.update(i for i, e in registry.items() if e.group == key)
        else:
            chosen.add(get(key).id)
    return [e for i, e in registry.items() if i in chosen]


def config_dict(config):
    """A configuration as JSON-ready data (nested configurations included)."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and isinstance(config, Settings):
        return config.to_dict()
    raise ConfigError(f"an experiment's configuration must be a Settings dataclass, got {type(config).__name__}")
