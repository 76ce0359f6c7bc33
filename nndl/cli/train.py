"""The chapter 1-3 commands: ``nndl train``, ``evaluate``, ``expand`` and ``plot``.

NumPy, the engine and matplotlib are imported when a command runs, not when
the parser is built.
"""

import argparse
import sys
import time
from pathlib import Path

from nndl.cli._common import (
    DefaultsHelpFormatter,
    add_data_options,
    epoch_line,
    load_data,
    non_negative_float,
    positive_float,
    positive_int,
    print_summary,
    split,
    training_header,
    write_or_rescue,
)
from nndl.errors import ConfigError

__all__ = ["add_commands", "cmd_train", "cmd_evaluate", "cmd_expand", "cmd_plot"]


def add_commands(commands) -> None:
    """Add ``train``, ``evaluate``, ``expand`` and ``plot`` to the sub-command parsers ``commands``."""
    t = commands.add_parser(
        "train", help="train a network on MNIST",
        description="Train a feedforward network by mini-batch stochastic gradient descent. The defaults "
                    "are the book's chapter 1 run: sizes 784 30 10, sigmoid neurons, quadratic cost, "
                    "weights N(0,1), 30 epochs, mini-batches of 10, eta 3.0, accuracy on the test set after "
                    "each epoch.",
        formatter_class=DefaultsHelpFormatter)
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
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="number of epochs; with --resume, the checkpoint's unless given (default: 30)")
    g.add_argument("--mini-batch-size", "-m", type=positive_int, default=10, help="examples per mini-batch")
    g.add_argument("--eta", type=positive_float, default=3.0, help="learning rate")
    g.add_argument("--lmbda", "--lambda", dest="lmbda", type=non_negative_float, default=0.0,
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
    g.add_argument("--patience", type=positive_int, default=10,
                   help="epochs without improvement before the schedule halves eta")
    g.add_argument("--early-stopping", type=positive_int, metavar="N",
                   help="stop after N epochs without improvement in evaluation accuracy, keeping the best weights")
    g.add_argument("--seed", type=int, default=None, help="seed for weights, shuffling and dropout")
    g.add_argument("--keep-last", action="store_true",
                   help="keep the weights of the last epoch (default: those of the best epoch)")
    g = t.add_argument_group("data and output")
    add_data_options(g)
    g.add_argument("--training-size", type=positive_int, metavar="N",
                   help="train on only the first N training images (e.g. 1000 for the overfitting run)")
    g.add_argument("--expanded", metavar="FILE", help="train on an expanded training set written by nndl expand")
    g.add_argument("--evaluate-on", choices=["test", "validation", "none"], default="test",
                   help="data measured after each epoch")
    g.add_argument("--monitor", nargs="+", metavar="WHAT",
                   choices=["training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy"],
                   help="what to measure after each epoch (default: evaluation_accuracy)")
    g.add_argument("--save", metavar="PATH", help="save the network (.json human-readable, .npz compact)")
    g.add_argument("--history", metavar="PATH", help="save the per-epoch history as JSON (for nndl plot)")
    g.add_argument("--checkpoint", metavar="PATH",
                   help="write the complete training state to PATH (.npz) after every epoch (resume with --resume)")
    g.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a run from its checkpoint, to exactly the result of an uninterrupted run: the "
                        "network, settings and data options are the checkpoint's; --epochs may extend it")
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    t.set_defaults(run=cmd_train)
    _TRAIN_DEFAULTS.update({a.dest: a.default for a in t._actions if a.dest != "help"})

    e = commands.add_parser("evaluate", help="accuracy of a saved network",
                            description="Print the accuracy of a saved network on MNIST.",
                            formatter_class=DefaultsHelpFormatter)
    e.add_argument("model", metavar="MODEL", nargs="?",
                   help="a model file written by nndl train --save (or network2.save) or nndl conv --save; "
                        "without one, the convolutional network shipped with nndl")
    e.add_argument("--split", choices=["test", "validation", "training"], default="test", help="which data")
    add_data_options(e)
    e.set_defaults(run=cmd_evaluate)

    x = commands.add_parser("expand", help="write an expanded training set",
                            description="Expand the 50,000 MNIST training images by 1-pixel shifts "
                                        "(to 250,000, as in the book) and optionally small rotations, shuffle "
                                        "them, and save them (compressed, about 41 MB) for nndl train --expanded.",
                            formatter_class=DefaultsHelpFormatter)
    x.add_argument("output", metavar="OUTPUT", help="file to write (.npz)")
    x.add_argument("--no-shifts", dest="shifts", action="store_false", help="leave out the 1-pixel shifts")
    x.add_argument("--rotations", type=float, nargs="+", default=[], metavar="DEGREES",
                   help="add one rotated copy of each image per angle, e.g. --rotations -10 10")
    x.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep each image's copies together")
    x.add_argument("--seed", type=int, default=0, help="seed for the shuffle")
    add_data_options(x)
    x.set_defaults(run=cmd_expand)

    p = commands.add_parser("plot", help="draw the curves of a training history, or an experiment's figure",
                            description="Draw cost and accuracy against epoch, training and evaluation data, "
                                        "from a history written by nndl train --history; or draw an "
                                        "experiment's figure again from the ID.json nndl reproduce wrote.",
                            formatter_class=DefaultsHelpFormatter)
    p.add_argument("history", metavar="HISTORY", nargs="+",
                   help="history JSON file(s), several overlaid; or one experiment result (ID.json)")
    p.add_argument("--output", "-o", metavar="PNG", help="image to write (default: HISTORY with .png)")
    p.add_argument("--title", help="figure title")
    p.set_defaults(run=cmd_plot)


# ---------------------------------------------------------------------------
# nndl train
# ---------------------------------------------------------------------------


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


def _network_config(args):
    from nndl.training.config import NetworkConfig
    return NetworkConfig(sizes=_sizes(args.sizes), activations=tuple(args.activation), cost=args.cost,
                         init=args.init, dtype=args.dtype)


def _training_config(args):
    from nndl.training.config import TrainingConfig
    return TrainingConfig(epochs=30 if args.epochs is None else args.epochs, mini_batch_size=args.mini_batch_size,
                          eta=args.eta, lmbda=args.lmbda,
                          regularization=args.regularization, momentum=args.momentum, nesterov=args.nesterov,
                          p_dropout=args.dropout, schedule=args.schedule, patience=args.patience,
                          early_stopping=args.early_stopping, monitor=tuple(args.monitor) if args.monitor else None,
                          restore_best=not args.keep_last, seed=args.seed)


#: Training options -> the TrainingConfig field each sets.
_TRAINING_FIELDS = {"mini_batch_size": "mini_batch_size", "eta": "eta", "lmbda": "lmbda",
                    "regularization": "regularization", "dropout": "p_dropout", "momentum": "momentum",
                    "nesterov": "nesterov", "schedule": "schedule", "patience": "patience",
                    "early_stopping": "early_stopping", "seed": "seed", "monitor": "monitor",
                    "keep_last": "restore_best"}
#: Network options -> the NetworkConfig field each sets.
_NETWORK_FIELDS = {"sizes": "sizes", "activation": "activations", "cost": "cost", "init": "init", "dtype": "dtype"}
#: Every option's default, filled in when the parser is built (to tell which options were given).
_TRAIN_DEFAULTS: dict = {}


def _run_description(args):
    """The data options of a run, kept in its checkpoint so that --resume trains on the same data."""
    return {name: getattr(args, name) for name in ("dataset", "validation_size", "training_size", "expanded",
                                                   "evaluate_on")}


def _resumed(args):
    """(net, training state, TrainingConfig) from --resume's checkpoint; args takes the run's data options.

    The network, the training settings and the data options are the
    checkpoint's: an option given with another value than the checkpoint's
    is refused (only --epochs may change), one given with the same value is
    fine.
    """

    from nndl.errors import ModelFileError
    from nndl.training.checkpoint import load_checkpoint
    from nndl.training.config import NetworkConfig
    from nndl.training.history import History
    if args.load:
        raise ConfigError("--resume continues the checkpoint's network; --load cannot be given with it")
    given = {name for name in (*_TRAINING_FIELDS, *_NETWORK_FIELDS, *_run_description(args))
             if getattr(args, name) != _TRAIN_DEFAULTS.get(name)}
    net, state, metadata = load_checkpoint(args.resume)
    config = History.from_json(state["history"], source=args.resume).config
    run = metadata.get("run")
    if not isinstance(run, dict) or set(run) != set(_run_description(args)):
        raise ModelFileError(f"{args.resume}: the description of the run's data is missing or damaged (was it "
                             "written by nndl train --checkpoint?)")
    differs = [name for name in given & set(run) if getattr(args, name) != run[name]]
    if given & set(_TRAINING_FIELDS):
        wanted = _training_config(args)
        differs += [name for name in given & set(_TRAINING_FIELDS)
                    if getattr(wanted, _TRAINING_FIELDS[name]) != getattr(config, _TRAINING_FIELDS[name])]
    if given & set(_NETWORK_FIELDS):
        wanted, saved = _network_config(args), NetworkConfig.of(net)
        differs += [name for name in given & set(_NETWORK_FIELDS)
                    if getattr(wanted, _NETWORK_FIELDS[name]) != getattr(saved, _NETWORK_FIELDS[name])]
    if differs:
        options = ", ".join("--" + name.replace("_", "-") for name in sorted(differs))
        raise ConfigError(f"--resume takes the network, the training settings and the data options from the "
                          f"checkpoint (only --epochs may change); {options} "
                          f"{'differs' if len(differs) == 1 else 'differ'} from the checkpoint's")
    for name, value in run.items():
        setattr(args, name, value)
    if args.epochs is not None:
        config = config.replace(epochs=args.epochs)
    print(f"Resuming {args.resume} after epoch {state['epoch']} of {config.epochs}", flush=True)
    return net, state, config


def _network(args):
    """A new network from the options, or the one --load names (in --dtype)."""
    from nndl.engine.modelio import load
    if args.load:
        net = load(args.load)
        if args.dtype != net.dtype.name:
            net = _with_dtype(net, args.dtype)
        print(f"Loaded {args.load}: sizes {net.sizes}, {'/'.join(l.name for l in net.layers)}, "
              f"{net.cost.name} cost")
    else:
        net = _network_config(args).build(seed=args.seed)
    return net


def cmd_train(args: argparse.Namespace) -> int:
    from nndl.files.outputs import check_outputs
    from nndl.training import train

    check_outputs({"--save": args.save, "--history": args.history, "--checkpoint": args.checkpoint},
                  inputs=[args.load, args.expanded] + ([args.resume] if args.resume != args.checkpoint else []))
    resume = None
    if args.resume:
        net, resume, config = _resumed(args)
    else:
        config = _training_config(args)
        net = _network(args)

    data = load_data(args)
    training = (data.training.images, data.training.labels)
    if args.expanded:
        from nndl.data.expand import load_expanded
        images, labels, _ = load_expanded(args.expanded)
        training = (images, labels)
    if args.training_size:
        training = (training[0][:args.training_size], training[1][:args.training_size])
    evaluation = None if args.evaluate_on == "none" else split(data, args.evaluate_on, "--evaluate-on")
    del data
    if evaluation is None and config.monitor and any(m.startswith("evaluation") for m in config.monitor):
        raise ConfigError("--monitor evaluation_* needs --evaluate-on test or validation")
    details = ['/'.join(l.name for l in net.layers), f"{net.cost.name} cost", net.dtype.name]
    print(training_header(str(net.sizes), details, training[0].shape[0], config), flush=True)

    checkpoint = args.checkpoint or args.resume
    history = train(net, training, config, evaluation_data=evaluation,
                    progress=sys.stderr.isatty() if args.progress is None else args.progress,
                    on_epoch=lambda h: print(epoch_line(h, args.evaluate_on), flush=True),
                    checkpoint=checkpoint, checkpoint_metadata={"run": _run_description(args)}, resume=resume)
    print_summary(history, args.evaluate_on)
    status = 0
    if args.save:
        from nndl.engine.modelio import save
        kept = "last" if args.keep_last or history.best_epoch is None else f"best (epoch {history.best_epoch})"
        network = history.network                    # (train records it)
        metadata = {"network": network.to_dict() if network is not None else None, "trained": config.to_dict(),
                    "best_epoch": history.best_epoch, "best_accuracy": history.best_accuracy,
                    "evaluated_on": args.evaluate_on, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        status |= write_or_rescue(lambda path: save(net, path, metadata=metadata), args.save,
                                  f"the {kept} network")
    if args.history:
        status |= write_or_rescue(history.save, args.history, "the history")
    if history.stop_reason == "interrupted":
        if checkpoint:
            print(f"Interrupted; the checkpoint {checkpoint} holds every finished epoch: the same command with "
                  f"--resume {checkpoint} goes on.", file=sys.stderr)
        elif not args.save:
            print("Interrupted; nothing was saved (use --save to keep the network).", file=sys.stderr)
        return 130
    return 2 if status else 0


def _with_dtype(net, dtype):
    import numpy as np

    from nndl.engine.feedforward import FeedforwardNetwork
    other = FeedforwardNetwork(net.sizes, activations=net.layers, cost=net.cost, dtype=np.dtype(dtype), seed=0)
    other.set_parameters(net.weights, net.biases)
    return other


# ---------------------------------------------------------------------------
# nndl evaluate, nndl expand, nndl plot
# ---------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from nndl.digits.convnet import default_model_path, is_numpy_conv_model, read_conv_model
    from nndl.engine.modelio import is_conv_model, load
    from nndl.errors import ModelFileError
    if args.model is None:
        args.model = default_model_path()
        if not args.model.is_file():
            raise ModelFileError(f"this installation of nndl has no default model ({args.model.name} is missing): "
                                 "give a model file")
        print(f"nndl's default model: {args.model}", flush=True)
    if is_conv_model(args.model):
        from nndl.deep.checkpoint import load_model
        net = load_model(args.model, "cpu")
        evaluate = net.accuracy
    elif is_numpy_conv_model(args.model):
        conv = read_conv_model(args.model)
        evaluate = lambda images, labels: float(np.mean(conv.predict(images) == labels))   # noqa: E731
    else:
        net = load(args.model)
        evaluate = lambda images, labels: net.evaluate(images, labels) / len(labels)    # noqa: E731
    data = load_data(args)
    part = split(data, args.split, "--split")
    correct = round(evaluate(part.images, part.labels) * len(part))
    print(f"{args.split} accuracy: {correct / len(part):.2%} ({correct} / {len(part)})")
    return 0


def cmd_expand(args: argparse.Namespace) -> int:
    from nndl.data.expand import expand_mnist_file
    from nndl.files.outputs import check_outputs
    if not args.shifts and not args.rotations:
        raise ConfigError("nothing to do: --no-shifts and no --rotations")
    check_outputs({"OUTPUT": args.output})
    path = expand_mnist_file(args.output, data=load_data(args), shifts=args.shifts, rotations=tuple(args.rotations),
                             seed=args.seed, shuffle=args.shuffle, progress=sys.stderr.isatty())
    print(f"Wrote {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from nndl.files.outputs import check_outputs
    from nndl.plot import plot_histories
    output = args.output if args.output is not None else str(Path(args.history[0]).with_suffix(".png"))
    check_outputs({"--output": output}, inputs=args.history)
    if len(args.history) == 1 and _is_experiment_result(args.history[0]):
        path = _plot_result(args.history[0], output)
    else:
        path = plot_histories(args.history, output, title=args.title)
    print(f"Wrote {path}")
    return 0


def _is_experiment_result(path):
    """True when ``path`` is a JSON result written by nndl reproduce (not a History).

    Anything that is not a readable JSON object (a named pipe, a damaged
    file, ...) is left to the history reader, which says what is wrong.
    """
    from nndl.errors import NndlError
    from nndl.files.header import parse_json
    from nndl.files.inputs import open_input
    try:
        with open_input(path, "a training history or experiment result", 256 * 2**20) as f:
            data = parse_json(f.read(), str(path))
    except (OSError, NndlError):
        return False
    return isinstance(data, dict) and data.get("format") == "nndl-experiment"


def _plot_result(path, output):
    """Draw an experiment's figure again from its ID.json; returns the PNG's path."""
    from nndl.experiments.registry import get
    from nndl.experiments.runner import load_result
    result = load_result(path)
    experiment = get(result["id"])
    experiment.draw(result, output, str(path))
    return output
