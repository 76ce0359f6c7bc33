"""The ``nndl`` command line.

    nndl train                 train the chapter 1 network on MNIST
    nndl evaluate MODEL        accuracy of a saved network
    nndl expand OUTPUT         expanded training data (1-pixel shifts, rotations)
    nndl plot HISTORY.json     cost and accuracy curves of a training run
    nndl conv                  train a convolutional network (chapter 6; needs PyTorch)
    nndl ensemble MODEL...     several convolutional networks voting
    nndl reproduce ID...       the book's experiments, with their figures and the book's numbers
    nndl predict MODEL IMAGE   which digit is in each image (your own handwriting)
    nndl read MODEL IMAGE      a whole number written in one image
    nndl serve MODEL           a web page to draw digits on, and its JSON API

Mistakes in the input (missing data, a corrupt file, a bad option, an
output that cannot be written) end with a one-line ``nndl: error: ...``
message and exit status 2, not a traceback: exactly the ``nndl.errors``
exceptions, missing files and permission errors. ``--debug`` shows their
traceback and cause chain; anything else is a bug and shows its traceback.

Each group of commands is a module with ``add_commands(subparsers)``:
``train`` (train, evaluate, expand, plot), ``conv`` (conv, ensemble),
``reproduce``, ``digits`` (predict, read) and ``serve``. What they share is
in ``_common``. Imports point one way: this module imports the command
modules, they import ``_common`` and the library, and nothing imports this
module but the entry points (``nndl`` and ``python -m nndl``). No module
of the command line imports PyTorch, matplotlib or the web framework until
a command needs it, so ``nndl --help`` works without them.
"""

import argparse
import sys

from nndl.cli import conv, digits, reproduce, serve, train
from nndl.cli._common import FILE_ERRORS, report_error
from nndl.errors import NndlError

__all__ = ["main", "build_parser"]

#: The command modules, in the order their commands are listed by ``nndl --help``.
_COMMAND_GROUPS = (train, conv, reproduce, digits, serve)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (with a pointer to --help), not the whole usage."""

    def error(self, message):
        self.exit(2, f"nndl: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``nndl`` and all its sub-commands; each sub-command's ``run`` is its function."""
    parser = _Parser(
        prog="nndl",
        description="Neural networks that learn to read handwritten digits (MNIST), "
                    "after Michael Nielsen's 'Neural Networks and Deep Learning'.")
    from nndl._version import __version__
    parser.add_argument("--version", action="version", version=f"nndl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback and its causes when a command fails")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for group in _COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:    # --help, --version (status 0), or a usage mistake already reported (2)
        return int(e.code or 0)
    from nndl.training import interrupt
    restore_signals = interrupt.install()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("nndl: interrupted", file=sys.stderr)
        return 130
    except (NndlError, *FILE_ERRORS) as e:
        return report_error(e, args.debug)
    except MemoryError as e:
        return report_error(e, args.debug, "not enough memory for this command (try smaller sizes or less data)")
    finally:
        restore_signals()
