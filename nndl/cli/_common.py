"""What the ``nndl`` commands share: argument types, the data options, checked outputs, one-line errors.

Private to :mod:`nndl.cli`. The command modules import from here and from
the library, never from ``nndl.cli`` itself, so the imports of the command
line point one way: ``nndl.cli`` -> the command modules -> this module.
Like them it imports nothing heavy; the library is imported by the
functions that use it.
"""

import argparse
import sys
import traceback

from nndl.errors import ConfigError, NndlError

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


def load_data(args: argparse.Namespace):
    """The data set the options of :func:`add_data_options` name (an ``nndl.data.mnist`` data set)."""
    from nndl.data.mnist import load_idx_dataset, load_mnist
    if args.dataset == "idx":
        if not args.data:
            raise ConfigError("--dataset idx needs --data DIR")
        return load_idx_dataset(args.data, validation_size=args.validation_size)
    return load_mnist(args.data, progress=sys.stderr.isatty())


def split(data, name: str, option: str):
    """One split of the data, refusing an empty one with a message naming the options that made it so."""
    part = getattr(data, name)
    if len(part) == 0:
        raise ConfigError(f"{option} {name}: the {name} split is empty (--validation-size "
                          f"{len(data.validation)} of {len(data.training) + len(data.validation)} training images)")
    return part


# ---------------------------------------------------------------------------
# Outputs and errors
# ---------------------------------------------------------------------------


def write_or_rescue(write, path: str, what: str) -> int:
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
