"""What the ``nndl`` commands share: argument types, the data options, checked outputs, one-line errors,
and the lines a training run prints.

Private to :mod:`nndl.cli`. The command modules import from here and from
the library, never from ``nndl.cli`` itself, so the imports of the command
line point one way: ``nndl.cli`` -> the command modules -> this module.
Like them it imports nothing heavy; the library is imported by the
functions that use it.
"""

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from nndl.errors import ConfigError, NndlError

if TYPE_CHECKING:                               # for the annotations only: these import NumPy
    from nndl.data.mnist import MnistData, Split
    from nndl.training.config import TrainingConfig
    from nndl.training.history import History

#: Besides NndlError: problems with files the user named, shown as one line too.
FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


# ---------------------------------------------------------------------------
# Argument types: a bad value is a usage mistake, reported by argparse in one line
# ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """A whole number of at least 1 (epochs, sizes, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _finite_float(text, allow_zero):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be {'zero or ' if allow_zero else ''}a positive number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (a learning rate, a timeout); nan and inf are refused."""
    return _finite_float(text, allow_zero=False)


def non_negative_float(text: str) -> float:
    """A finite number of at least 0 (lambda); nan and inf are refused."""
    return _finite_float(text, allow_zero=True)


# ---------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's formatter that shows each option's default, except where there is nothing to show.

    Nothing is added for a default of None or False (an option that is off
    unless given), nor to a help text that already says its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_data_options(group) -> None:
    """--data, --dataset and --validation-size, the same for every command that reads MNIST."""
    group.add_argument("--data", metavar="DIR",
                       help="directory with the four MNIST idx files (default: $NNDL_DATA, ./data/mnist, "
                            "the user cache, else download)")
    group.add_argument("--dataset", choices=["mnist", "idx"], default="mnist",
                       help="mnist: the official files, checksum-verified; idx: any data set in the same "
                            "four-file layout (e.g. Fashion-MNIST), structure-checked only (needs --data)")
    group.add_argument("--validation-size", type=int, default=10000, metavar="N",
                       help="with --dataset idx: how many of the last training images form the validation split")


def load_data(args: argparse.Namespace) -> "MnistData":
    """The data set the options of :func:`add_data_options` name."""
    from nndl.data.mnist import load_idx_dataset, load_mnist
    if args.dataset == "idx":
        if not args.data:
            raise ConfigError("--dataset idx needs --data DIR")
        return load_idx_dataset(args.data, validation_size=args.validation_size)
    if getattr(args, "validation_size", 10000) != 10000:
        raise ConfigError(f"--validation-size {args.validation_size}: MNIST's validation split is its fixed "
                          "10,000 images (the last of its 60,000 training images); --validation-size applies to "
                          "--dataset idx")
    return load_mnist(args.data, progress=sys.stderr.isatty())


def split(data: "MnistData", name: str, option: str) -> "Split":
    """One split of the data, refusing an empty one with a message naming the options that made it so."""
    part = getattr(data, name)
    if len(part) == 0:
        raise ConfigError(f"{option} {name}: the {name} split is empty (--validation-size "
                          f"{len(data.validation)} of {len(data.training) + len(data.validation)} training images)")
    return part


# ---------------------------------------------------------------------------
# Outputs and errors
# ---------------------------------------------------------------------------


def write_or_rescue(write: Callable[[str], object], path: str, what: str) -> int:
    """Write an output after training; if that fails (disk full, directory gone), write it to a
    rescue file in the temporary directory instead and say where: hours of training are not lost
    to a full disk. Returns 0, or 1 on failure."""
    from nndl.files.outputs import rescue_path
    try:
        write(path)
        print(f"Saved {what} to {path}")
        return 0
    except OSError as e:
        reason = e.strerror or str(e)
    rescue = rescue_path(path)
    try:
        write(rescue)
    except OSError as e:
        print(f"nndl: error: could not write {what} to {path} ({reason}), nor to {rescue} "
              f"({e.strerror or e}); it is lost", file=sys.stderr)
        return 1
    print(f"nndl: error: could not write {what} to {path} ({reason}); saved it to {rescue} instead",
          file=sys.stderr)
    return 1


def error_message(error: BaseException) -> str:
    """What the one line says about an error: a file error as "PATH: reason", else its own message."""
    if isinstance(error, OSError) and not isinstance(error, NndlError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    return str(error) or type(error).__name__


def report_error(error: BaseException, debug: bool, message: str | None = None) -> int:
    """One line ``nndl: error: ...`` on stderr; with --debug the traceback and every cause before it.
    Returns 2, the exit status of a mistake in the input."""
    if debug:
        traceback.print_exception(error)
    print(f"nndl: error: {message if message is not None else error_message(error)}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------
# The lines of a training run: the same words for nndl train and nndl conv
# ---------------------------------------------------------------------------


def training_header(network: str, details: Sequence[str], n_images: int, config: "TrainingConfig", *,
                    where: str | None = None, extra: Sequence[str] = ()) -> str:
    """The line before the first epoch: what is trained, on how many images, where, and how.

    ``network`` names the network ("[784, 30, 10]", or its layers); ``details``
    say what else makes it ("sigmoid/sigmoid", "quadratic cost", "float64");
    ``where`` is the device of a command that has a choice; ``extra`` are
    settings of the command's own (augmentation). Of ``config``, a
    TrainingConfig, the line names what shapes the run and leaves out what
    is off (no lambda, no dropout, no momentum, shuffled mini-batches), so
    that two runs that differ show it.
    """
    settings = [f"{config.epochs} epochs", f"mini-batch {config.mini_batch_size}", f"eta {config.eta:g}"]
    if config.lmbda:
        settings.append(f"lambda {config.lmbda:g} ({config.regularization})")
    if config.p_dropout:
        settings.append(f"dropout {config.p_dropout:g}")
    if config.momentum:
        settings.append(f"momentum {config.momentum:g}{' (Nesterov)' if config.nesterov else ''}")
    if not config.shuffle:
        settings.append("stored order")
    settings.extend(extra)
    on = f" on {where}" if where else ""
    return f"Training {network} ({', '.join(details)}) on {n_images:,} images{on}: {', '.join(settings)}"


def _accuracy(label, fraction, n):
    """An accuracy as "test accuracy 95.12% (9512 / 10000)", the count only when the data's size is known."""
    return f"{label} {fraction:.2%}" + (f" ({round(fraction * n)} / {n})" if n else "")


def epoch_line(history: "History", evaluation_name: str) -> str:
    """The line after each epoch of a History: what was measured, whether the epoch is the best so far,
    a changed eta, and the epoch's seconds of training.

    ``evaluation_name`` is what the evaluation data is ("test" or
    "validation"); a chapter 6 run measures the test accuracy beside the
    validation accuracy, and it follows.
    """
    j = history.epochs[-1]
    parts = []
    if history.evaluation_accuracy:
        parts.append(_accuracy(f"{evaluation_name} accuracy", history.evaluation_accuracy[-1], history.n_evaluation))
    if history.test_accuracy:
        parts.append(_accuracy("test accuracy", history.test_accuracy[-1], history.n_test))
    if history.training_accuracy:
        parts.append(f"training accuracy {history.training_accuracy[-1]:.2%}")
    if history.training_cost:
        parts.append(f"training cost {history.training_cost[-1]:.4f}")
    if history.evaluation_cost:
        parts.append(f"{evaluation_name} cost {history.evaluation_cost[-1]:.4f}")
    if history.best_epoch == j:
        parts.append("(best to date)")
    if len(history.eta) > 1 and history.eta[-1] != history.eta[-2]:
        parts.append(f"eta {history.eta[-1]:g}")
    parts.append(f"[{history.epoch_time[-1]:.2f} s]")
    return f"Epoch {j}: " + "  ".join(parts)


def summary_lines(history: "History", evaluation_name: str) -> list[str]:
    """The lines after training: why it stopped and how long it took; the best epoch and its accuracy
    (and, for a chapter 6 run, the test accuracy of that epoch, the number the book reports)."""
    n = len(history.epochs)
    finished = f"Finished ({history.stop_reason}) after {n} epoch{'s' if n != 1 else ''}"
    if n:
        finished += f" in {history.training_time:.1f} s of training ({history.training_time / n:.2f} s/epoch)"
    lines = [finished + "."]
    if history.best_epoch is not None:
        which = evaluation_name if history.evaluation_accuracy else "training"
        best = f"Best: epoch {history.best_epoch}, {which} accuracy {history.best_accuracy:.2%}"
        if history.best_test_accuracy is not None:
            best += f"; the corresponding test accuracy is {history.best_test_accuracy:.2%}"
        lines.append(best + ".")
    return lines


def print_summary(history: "History", evaluation_name: str) -> None:
    """Print :func:`summary_lines` and the run's note: on stderr when training went wrong (diverged,
    saturated), where a script that keeps only the errors still sees it; else on stdout."""
    for line in summary_lines(history, evaluation_name):
        print(line)
    if history.message:
        went_wrong = history.stop_reason in ("diverged", "saturated")
        print(f"Note: {history.message}.", file=sys.stderr if went_wrong else sys.stdout)
