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
"""

import argparse
import sys
import time
import traceback
from pathlib import Path

from nndl.errors import ConfigError, NndlError

__all__ = ["main", "build_parser"]

#: Besides NndlError: problems with files the user named, shown as one line too.
FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _positive_int(text):
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


def _positive_float(text):
    return _finite_float(text, allow_zero=False)


def _non_negative_float(text):
    return _finite_float(text, allow_zero=True)


def _sizes(values):
    """Layer sizes from "784 30 10" or "784,30,10"."""
    sizes = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                n = int(part)
            except ValueError:
                raise ConfigError(f"--sizes takes whole numbers, got {part!r}") from None
            if n < 1:
                raise ConfigError(f"every layer needs at least one neuron, got {n} in --sizes")
            sizes.append(n)
    if len(sizes) < 2:
        raise ConfigError(f"--sizes needs at least an input and an output layer, got {sizes}")
    return sizes


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (with a pointer to --help), not the whole usage."""

    def error(self, message):
        self.exit(2, f"nndl: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    parser = _Parser(
        prog="nndl",
        description="Neural networks that learn to read handwritten digits (MNIST), "
                    "after Michael Nielsen's 'Neural Networks and Deep Learning'.")
    from nndl import __version__
    parser.add_argument("--version", action="version", version=f"nndl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback and its causes when a command fails")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    t = commands.add_parser(
        "train", help="train a network on MNIST",
        description="Train a feedforward network by mini-batch stochastic gradient descent. The defaults "
                    "are the book's chapter 1 run: sizes 784 30 10, sigmoid neurons, quadratic cost, "
                    "weights N(0,1), 30 epochs, mini-batches of 10, eta 3.0, accuracy on the test set after "
                    "each epoch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = t.add_argument_group("network")
    g.add_argument("--sizes", nargs="+", default=["784", "30", "10"], metavar="N",
                   help="neurons per layer, input first (784 30 10 or 784,30,10)")
    g.add_argument("--activation", nargs="+", default=["sigmoid"], metavar="NAME",
                   help="one activation for all layers, or one per layer after the input: "
                        "sigmoid, tanh, relu, linear, softmax (output only)")
    g.add_argument("--cost", default="quadratic", help="quadratic, cross-entropy or log-likelihood")
    g.add_argument("--init", default="large", choices=["large", "default"],
                   help="initial weights: large = N(0,1) (chapter 1), default = N(0,1/n_in) (chapter 3)")
    g.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="precision of the weights and arithmetic (float32 trains faster)")
    g.add_argument("--load", metavar="MODEL", help="continue training a saved network (its sizes, "
                   "activations and cost are used)")
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=_positive_int, default=30, help="number of epochs")
    g.add_argument("--mini-batch-size", "-m", type=_positive_int, default=10, help="examples per mini-batch")
    g.add_argument("--eta", type=_positive_float, default=3.0, help="learning rate")
    g.add_argument("--lmbda", "--lambda", dest="lmbda", type=_non_negative_float, default=0.0,
                   help="regularisation parameter lambda, scaled by the training-set size n as in the book's "
                        "network2")
    g.add_argument("--regularization", choices=["l2", "l1"], default="l2", help="kind of regularisation")
    g.add_argument("--dropout", type=float, default=0.0, metavar="P",
                   help="probability of dropping each hidden neuron during training, in [0, 1)")
    g.add_argument("--momentum", type=float, default=0.0, metavar="MU", help="momentum co-efficient mu in [0, 1)")
    g.add_argument("--nesterov", action="store_true", help="use Nesterov's momentum")
    g.add_argument("--schedule", choices=["constant", "halve"], default="constant",
                   help="learning-rate schedule: halve = halve eta after --patience epochs without improvement "
                        "in evaluation accuracy, stop at 1/128 of the start")
    g.add_argument("--patience", type=_positive_int, default=10,
                   help="epochs without improvement before the schedule halves eta")
    g.add_argument("--early-stopping", type=_positive_int, metavar="N",
                   help="stop after N epochs without improvement in evaluation accuracy, keeping the best weights")
    g.add_argument("--seed", type=int, default=None, help="seed for weights, shuffling and dropout")
    g.add_argument("--keep-last", action="store_true",
                   help="keep the weights of the last epoch (default: those of the best epoch)")
    g = t.add_argument_group("data and output")
    _add_data_options(g)
    g.add_argument("--training-size", type=_positive_int, metavar="N",
                   help="train on only the first N training images (e.g. 1000 for the overfitting run)")
    g.add_argument("--expanded", metavar="FILE", help="train on an expanded training set written by nndl expand")
    g.add_argument("--evaluate-on", choices=["test", "validation", "none"], default="test",
                   help="data measured after each epoch")
    g.add_argument("--monitor", nargs="+", metavar="WHAT",
                   choices=["training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy"],
                   help="what to measure after each epoch (default: evaluation_accuracy)")
    g.add_argument("--save", metavar="PATH", help="save the network (.json human-readable, .npz compact)")
    g.add_argument("--history", metavar="PATH", help="save the per-epoch history as JSON (for nndl plot)")
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(run=cmd_train)

    e = commands.add_parser("evaluate", help="accuracy of a saved network",
                            description="Print the accuracy of a saved network on MNIST.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("model", metavar="MODEL", help="a model file written by nndl train --save (or network2.save)")
    e.add_argument("--split", choices=["test", "validation", "training"], default="test", help="which data")
    _add_data_options(e)
    e.set_defaults(run=cmd_evaluate)

    x = commands.add_parser("expand", help="write an expanded training set",
                            description="Expand the 50,000 MNIST training images by 1-pixel shifts "
                                        "(to 250,000, as in the book) and optionally small rotations, shuffle "
                                        "them, and save them (compressed, about 41 MB) for nndl train --expanded.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    x.add_argument("output", metavar="OUTPUT", help="file to write (.npz)")
    x.add_argument("--no-shifts", dest="shifts", action="store_false", help="leave out the 1-pixel shifts")
    x.add_argument("--rotations", type=float, nargs="+", default=[], metavar="DEGREES",
                   help="add one rotated copy of each image per angle, e.g. --rotations -10 10")
    x.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep each image's copies together")
    x.add_argument("--seed", type=int, default=0, help="seed for the shuffle")
    _add_data_options(x)
    x.set_defaults(run=cmd_expand)

    from nndl.cli_conv import add_commands
    add_commands(commands, sys.modules[__name__])
    from nndl import cli_reproduce
    cli_reproduce.add_commands(commands, sys.modules[__name__])
    from nndl import cli_digits, cli_serve
    cli_digits.add_commands(commands, sys.modules[__name__])
    cli_serve.add_commands(commands, sys.modules[__name__])

    p = commands.add_parser("plot", help="draw the curves of a training history, or an experiment's figure",
                            description="Draw cost and accuracy against epoch, training and evaluation data, "
                                        "from a history written by nndl train --history; or draw an "
                                        "experiment's figure again from the ID.json nndl reproduce wrote.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("history", metavar="HISTORY", nargs="+",
                   help="history JSON file(s), several overlaid; or one experiment result (ID.json)")
    p.add_argument("--output", "-o", metavar="PNG", help="image to write (default: HISTORY with .png)")
    p.add_argument("--title", help="figure title")
    p.set_defaults(run=cmd_plot)
    return parser


def _add_data_options(group):
    group.add_argument("--data", metavar="DIR",
                       help="directory with the four MNIST idx files (default: $NNDL_DATA, ./data/mnist, "
                            "the user cache, else download)")
    group.add_argument("--dataset", choices=["mnist", "idx"], default="mnist",
                       help="mnist: the official files, checksum-verified; idx: any data set in the same "
                            "four-file layout (e.g. Fashion-MNIST), structure-checked only (needs --data)")
    group.add_argument("--validation-size", type=int, default=10000, metavar="N",
                       help="with --dataset idx: how many of the last training images form the validation split")


def _load_data(args):
    from nndl.data.mnist import load_mnist, load_idx_dataset
    if args.dataset == "idx":
        if not args.data:
            raise ConfigError("--dataset idx needs --data DIR")
        return load_idx_dataset(args.data, validation_size=args.validation_size)
    return load_mnist(args.data, progress=sys.stderr.isatty())


def _network_config(args):
    from nndl.training.config import NetworkConfig
    return NetworkConfig(sizes=_sizes(args.sizes), activations=tuple(args.activation), cost=args.cost,
                         init=args.init, dtype=args.dtype)


def _training_config(args):
    from nndl.training.config import TrainingConfig
    return TrainingConfig(epochs=args.epochs, mini_batch_size=args.mini_batch_size, eta=args.eta, lmbda=args.lmbda,
                          regularization=args.regularization, momentum=args.momentum, nesterov=args.nesterov,
                          p_dropout=args.dropout, schedule=args.schedule, patience=args.patience,
                          early_stopping=args.early_stopping, monitor=tuple(args.monitor) if args.monitor else None,
                          restore_best=not args.keep_last, seed=args.seed)


def _describe(net, config, n):
    settings = [f"{config.epochs} epochs", f"mini-batch {config.mini_batch_size}", f"eta {config.eta:g}"]
    if config.lmbda:
        settings.append(f"lambda {config.lmbda:g} ({config.regularization})")
    if config.p_dropout:
        settings.append(f"dropout {config.p_dropout:g}")
    if config.momentum:
        settings.append(f"momentum {config.momentum:g}{' (Nesterov)' if config.nesterov else ''}")
    return (f"Training {net.sizes} ({'/'.join(l.name for l in net.layers)}, {net.cost.name} cost, "
            f"{net.dtype.name}) on {n:,} images: {', '.join(settings)}")


def _epoch_line(history, evaluation_name, n_eval):
    j = history.epochs[-1]
    parts = []
    if history.evaluation_accuracy:
        acc = history.evaluation_accuracy[-1]
        parts.append(f"{evaluation_name} accuracy {acc:.2%} ({round(acc * n_eval)} / {n_eval})")
    for name in ("training_accuracy", "training_cost", "evaluation_cost"):
        values = getattr(history, name)
        if values:
            label = name.replace("_", " ").replace("evaluation", evaluation_name)
            parts.append(f"{label} {values[-1]:.2%}" if name.endswith("accuracy") else f"{label} {values[-1]:.4f}")
    if len(history.eta) > 1 and history.eta[-1] != history.eta[-2]:
        parts.append(f"eta {history.eta[-1]:g}")
    parts.append(f"[{history.epoch_time[-1]:.2f} s]")
    return f"Epoch {j}: " + "  ".join(parts)


def _split(data, name, option):
    """One split of the data, refusing an empty one with a message naming the options that made it so."""
    split = getattr(data, name)
    if len(split) == 0:
        raise ConfigError(f"{option} {name}: the {name} split is empty (--validation-size "
                          f"{len(data.validation)} of {len(data.training) + len(data.validation)} training images)")
    return split


def cmd_train(args):
    from nndl.engine.modelio import load
    from nndl.files.outputs import check_outputs
    from nndl.training import train

    config = _training_config(args)
    check_outputs({"--save": args.save, "--history": args.history}, inputs=[args.load, args.expanded])
    if args.load:
        net = load(args.load)
        if args.dtype != net.dtype.name:
            net = _with_dtype(net, args.dtype)
        print(f"Loaded {args.load}: sizes {net.sizes}, {'/'.join(l.name for l in net.layers)}, "
              f"{net.cost.name} cost")
    else:
        net = _network_config(args).build(seed=args.seed)

    data = _load_data(args)
    training = (data.training.images, data.training.labels)
    if args.expanded:
        from nndl.data.expand import load_expanded
        images, labels, _ = load_expanded(args.expanded)
        training = (images, labels)
    if args.training_size:
        training = (training[0][:args.training_size], training[1][:args.training_size])
    evaluation = None if args.evaluate_on == "none" else _split(data, args.evaluate_on, "--evaluate-on")
    del data
    if evaluation is None and config.monitor and any(m.startswith("evaluation") for m in config.monitor):
        raise ConfigError("--monitor evaluation_* needs --evaluate-on test or validation")
    print(_describe(net, config, training[0].shape[0]), flush=True)

    n_eval = len(evaluation) if evaluation is not None else 0
    history = train(net, training, config, evaluation_data=evaluation,
                    progress=sys.stderr.isatty() if args.progress is None else args.progress,
                    on_epoch=lambda h: print(_epoch_line(h, args.evaluate_on, n_eval), flush=True))

    n_epochs = len(history.epochs)
    summary = f"Finished ({history.stop_reason}) after {n_epochs} epoch{'s' if n_epochs != 1 else ''}"
    if n_epochs:
        summary += f" in {history.training_time:.1f} s of training ({history.training_time / n_epochs:.2f} s/epoch)"
    print(summary + ".")
    if history.best_epoch is not None:
        which = args.evaluate_on if history.evaluation_accuracy else "training"
        print(f"Best: epoch {history.best_epoch}, {which} accuracy {history.best_accuracy:.2%}.")
    if history.message:
        print(f"Note: {history.message}.", file=sys.stderr if history.stop_reason in ("diverged", "saturated")
              else sys.stdout)
    status = 0
    if args.save:
        from nndl.engine.modelio import save
        kept = "last" if args.keep_last or history.best_epoch is None else f"best (epoch {history.best_epoch})"
        metadata = {"network": history.network.to_dict(), "trained": config.to_dict(),
                    "best_epoch": history.best_epoch, "best_accuracy": history.best_accuracy,
                    "evaluated_on": args.evaluate_on, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        status |= _write_or_rescue(lambda path: save(net, path, metadata=metadata), args.save,
                                   f"the {kept} network")
    if args.history:
        status |= _write_or_rescue(history.save, args.history, "the history")
    if history.stop_reason == "interrupted":
        if not args.save:
            print("Interrupted; nothing was saved (use --save to keep the network).", file=sys.stderr)
        return 130
    return 2 if status else 0


def _write_or_rescue(write, path, what):
    """Write an output after training; if that fails (disk full, directory gone), write it to a
    rescue file in the temporary directory instead and say where. Returns 0, or 1 on failure."""
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


def _with_dtype(net, dtype):
    import numpy as np
    from nndl.engine.feedforward import FeedforwardNetwork
    other = FeedforwardNetwork(net.sizes, activations=net.layers, cost=net.cost, dtype=np.dtype(dtype), seed=0)
    other.set_parameters(net.weights, net.biases)
    return other


def cmd_evaluate(args):
    from nndl.engine.modelio import is_conv_model, load
    if is_conv_model(args.model):
        from nndl.deep.checkpoint import load_model
        net = load_model(args.model, "cpu")
        evaluate = net.accuracy
    else:
        net = load(args.model)
        evaluate = lambda images, labels: net.evaluate(images, labels) / len(labels)    # noqa: E731
    data = _load_data(args)
    split = _split(data, args.split, "--split")
    correct = round(evaluate(split.images, split.labels) * len(split))
    print(f"{args.split} accuracy: {correct / len(split):.2%} ({correct} / {len(split)})")
    return 0


def cmd_expand(args):
    from nndl.data.expand import expand_mnist_file
    from nndl.files.outputs import check_outputs
    if not args.shifts and not args.rotations:
        raise ConfigError("nothing to do: --no-shifts and no --rotations")
    check_outputs({"OUTPUT": args.output})
    path = expand_mnist_file(args.output, data=_load_data(args), shifts=args.shifts, rotations=tuple(args.rotations),
                             seed=args.seed, shuffle=args.shuffle, progress=sys.stderr.isatty())
    print(f"Wrote {path}")
    return 0


def cmd_plot(args):
    from nndl.plot import plot_histories
    from nndl.files.outputs import check_outputs
    output = args.output if args.output is not None else str(Path(args.history[0]).with_suffix(".png"))
    check_outputs({"--output": output}, inputs=args.history)
    if len(args.history) == 1 and _is_experiment_result(args.history[0]):
        from nndl.cli_reproduce import plot_result
        path = plot_result(args.history[0], output)
    else:
        path = plot_histories(args.history, output, title=args.title)
    print(f"Wrote {path}")
    return 0


def _is_experiment_result(path):
    """True when ``path`` is a JSON result written by nndl reproduce (not a History)."""
    import json
    try:
        with open(path) as f:
            return json.load(f).get("format") == "nndl-experiment"
    except (OSError, ValueError, AttributeError, RecursionError):      # the history reader reports these
        return False


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:    # --help, --version, or a usage mistake already reported
        return e.code
    from nndl.training import interrupt
    restore_signals = interrupt.install()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("nndl: interrupted", file=sys.stderr)
        return 130
    except (NndlError, *FILE_ERRORS) as e:
        return _report(e, args.debug)
    except MemoryError as e:
        return _report(e, args.debug, "not enough memory for this command (try smaller sizes or less data)")
    finally:
        restore_signals()


def _report(error, debug, message=None):
    """One line for the user; with --debug the traceback and every cause before it."""
    if debug:
        traceback.print_exception(error)
    if message is None:
        if isinstance(error, OSError) and not isinstance(error, NndlError) and error.filename and error.strerror:
            message = f"{error.filename}: {error.strerror.lower()}"
        else:
            message = str(error) or type(error).__name__
    print(f"nndl: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
