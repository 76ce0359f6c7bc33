"""The chapter 6 commands: ``nndl conv`` trains a convolutional network, ``nndl ensemble`` lets several vote.

They need PyTorch, which is imported only when one of them runs (``nndl
--help`` works without it).

``torchrun --nproc_per_node=N -m nndl conv ...`` trains one network on N
processes (``nndl.deep.distributed``): the same options, the same run, with
rank 0 alone printing and writing files.
"""

import argparse
import sys
import time

from nndl.cli._common import (
    add_data_options,
    epoch_line,
    load_data,
    non_negative_float,
    positive_float,
    positive_int,
    print_summary,
    training_header,
    write_or_rescue,
)
from nndl.errors import ConfigError

__all__ = ["add_commands", "cmd_conv", "cmd_ensemble"]


def add_commands(commands) -> None:
    """Add ``conv`` and ``ensemble`` to the sub-command parsers ``commands``."""
    c = commands.add_parser(
        "conv", help="train a convolutional network (chapter 6)",
        description="Train a network of conv-pool, fully connected and softmax layers (the book's network3) on "
                    "MNIST with PyTorch. --preset NAME runs a rung of the book's ladder exactly as the book did "
                    "(see --list-presets); any option given as well changes that rung. Without a preset: two "
                    "conv-pool layers (20 and 40 maps of 5x5, 2x2 max-pooling), 100 fully connected ReLU, "
                    "softmax; eta 0.03, lambda 0.1, 60 epochs; mini-batches shuffled every epoch.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--preset", metavar="NAME", help="a rung of the book's ladder: fc100, conv1, conv2, relu, "
                   "expanded, fc300, fc1000, 2fc100, 2fc300, 2fc1000, dropout, ensemble")
    c.add_argument("--list-presets", action="store_true", help="list the presets with the book's results and exit")
    g = c.add_argument_group("network (each replaces the preset's)")
    g.add_argument("--conv", nargs="*", metavar="F:S:P", help="conv-pool layers: F filters of SxS, PxP max-pooling, "
                   "e.g. --conv 20:5:2 40:5:2 (--conv alone: none)")
    g.add_argument("--fc", nargs="*", type=positive_int, metavar="N",
                   help="fully connected layers, e.g. --fc 1000 1000 (--fc alone: none)")
    g.add_argument("--activation", choices=["sigmoid", "tanh", "relu", "linear"],
                   help="activation of the conv-pool and fully connected layers")
    g.add_argument("--dropout", type=float, metavar="P",
                   help="dropout probability of the inputs of the fully connected and softmax layers, in [0, 1)")
    g.add_argument("--init", choices=["book", "fan-in"],
                   help="initial weights: book = network3's N(0, 1/n_out), biases N(0, 1); fan-in = N(0, g/n_in), "
                        "biases 0")
    g.add_argument("--style", choices=["book", "nndl"],
                   help="book: mini-batches in stored order and network3's dropout (weights scaled at inference); "
                        "nndl: shuffled every epoch, inverted dropout. Default: book with --preset, else nndl")
    g.add_argument("--dtype", choices=["float32", "float64"])
    g.add_argument("--pool-gradient", choices=["one", "all-ties"],
                   help="max-pooling's gradient: to one maximum of each region (default), or to every input "
                        "equal to it, as Theano did for the book's network3")
    g = c.add_argument_group("training (each replaces the preset's)")
    g.add_argument("--epochs", type=positive_int)
    g.add_argument("--mini-batch-size", "-m", type=positive_int)
    g.add_argument("--eta", type=positive_float, help="learning rate")
    g.add_argument("--lmbda", "--lambda", dest="lmbda", type=non_negative_float,
                   help="L2 parameter lambda, divided by the number of mini-batches per epoch as in network3")
    g.add_argument("--momentum", type=float, metavar="MU", help="momentum co-efficient in [0, 1)")
    g.add_argument("--schedule", choices=["constant", "halve"], help="halve eta after --patience epochs without a "
                   "better validation accuracy, stopping at 1/128 of the start")
    g.add_argument("--patience", type=positive_int)
    g.add_argument("--early-stopping", type=positive_int, metavar="N")
    g.add_argument("--seed", type=int, help="seed of the weights, the order of the examples, dropout and "
                   "augmentation")
    g.add_argument("--seeds", type=int, nargs="+", metavar="S",
                   help="train one network per seed, all at once (the seeds of a rung, the members of an "
                        "ensemble): each is the network --seed S would train alone; --save, --history and "
                        "--predictions write one file per seed (NAME-sS.pt), --checkpoint one file for all")
    g.add_argument("--vote", action="store_true",
                   help="with --seeds: the members' majority vote on the test images (the book's ensemble)")
    g = c.add_argument_group("data")
    add_data_options(g)
    g.add_argument("--expanded", metavar="FILE", help="train on a set written by nndl expand")
    g.add_argument("--expand", action="store_true", default=None,
                   help="train on the book's 250,000 images (1-pixel shifts), made in memory")
    g.add_argument("--no-expand", dest="expand", action="store_false", help="train on the 50,000 images")
    g.add_argument("--training-size", type=positive_int, metavar="N", help="only the first N training images")
    g.add_argument("--shift", type=float, default=0.0, metavar="PX",
                   help="augment: random shifts up to PX pixels, drawn afresh every epoch")
    g.add_argument("--rotate", type=float, default=0.0, metavar="DEG", help="augment: random rotations up to DEG")
    g.add_argument("--elastic", type=float, nargs=2, metavar=("ALPHA", "SIGMA"),
                   help="augment: elastic distortions (Simard et al. 2003), e.g. --elastic 34 4")
    g.add_argument("--show-augmentation", metavar="PNG", help="write a figure of augmented examples and exit")
    g = c.add_argument_group("device and output")
    g.add_argument("--device", default="auto", help="auto (a CUDA GPU if there is one), cpu, cuda or cuda:N")
    g.add_argument("--threads", type=positive_int,
                   help="CPU threads (default: $OMP_NUM_THREADS when set, else one per core)")
    g.add_argument("--cuda-graph", action="store_true",
                   help="on a CUDA GPU, capture the training step once and replay it for every mini-batch: the "
                        "same arithmetic, many times faster at small mini-batches (not with torchrun)")
    g.add_argument("--save", metavar="PATH", help="save the network (best validation epoch) to PATH (.pt)")
    g.add_argument("--keep-last", action="store_true", help="save the last epoch's network instead of the best")
    g.add_argument("--history", metavar="PATH", help="save the per-epoch history as JSON")
    g.add_argument("--checkpoint", metavar="PATH", help="write a checkpoint after every epoch (resume with --resume)")
    g.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a run from its checkpoint (its network and settings; --epochs may extend it)")
    g.add_argument("--predictions", metavar="PATH",
                   help="write the saved network's log-probabilities on the validation and test images to PATH "
                        "(.pt): nndl ensemble votes from such files without the networks or the data")
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="show a progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    g = c.add_argument_group(
        "several processes (launched by torchrun)",
        "torchrun --nproc_per_node=N -m nndl conv ... trains one network on N processes\n"
        "(gloo on CPUs, nccl on GPUs, one GPU each): every mini-batch of -m images is\n"
        "shared out between them and their gradients added up, so the run takes the same\n"
        "steps as one process with the same -m. Rank 0 alone prints and writes; every\n"
        "rank resumes from --resume. --threads defaults to the cores divided by the\n"
        "processes. See docs/scaling.md for when it pays.")
    g.add_argument("--distributed", action="store_true",
                   help="insist on a torchrun launch (without one, stop and say how to start it); under torchrun "
                        "with more than one process, training is distributed anyway")
    g.add_argument("--dist-timeout", type=positive_float, metavar="SECONDS",
                   help="how long a process waits for the others -- to join, to load the data, at every step -- "
                        "before the run stops with an error (default 300)")
    c.set_defaults(run=cmd_conv)

    e = commands.add_parser("ensemble", help="let several saved convolutional networks vote",
                            description="Accuracy of each network and of the ensemble: the book's majority vote "
                                        "(ties go to the class of highest mean probability) and the average of "
                                        "the probabilities.")
    e.add_argument("models", metavar="FILE", nargs="+",
                   help="models written by nndl conv --save, or predictions written by nndl conv --predictions "
                        "(from predictions alone, no data is loaded)")
    e.add_argument("--split", choices=["test", "validation"], default="test")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", metavar="FILE", help="also write the accuracies as JSON")
    add_data_options(e)
    e.set_defaults(run=cmd_ensemble)


# ---------------------------------------------------------------------------
# Building the run from the options
# ---------------------------------------------------------------------------


def _conv_layers(specs, activation):
    layers = []
    for spec in specs:
        parts = spec.split(":")
        try:
            filters, size, pool = (int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--conv takes FILTERS:SIZE:POOL such as 20:5:2, got {spec!r}") from None
        layers.append({"type": "conv-pool", "filters": filters, "filter": size, "pool": pool,
                       "activation": activation})
    return layers


def _settings(args):
    """(ConvNetConfig, TrainingConfig, expanded, members) from a preset and the options that change it."""
    from nndl.deep.config import ConvNetConfig
    from nndl.deep.presets import BOOK_STYLE, get_preset
    from nndl.training.config import TrainingConfig
    preset = get_preset(args.preset) if args.preset else None
    style = args.style or ("book" if preset else "nndl")
    if preset is None:
        network = ConvNetConfig(layers=(
            {"type": "conv-pool", "filters": 20, "activation": "relu"},
            {"type": "conv-pool", "filters": 40, "activation": "relu"},
            {"type": "fully-connected", "n_out": 100, "activation": "relu"}, {"type": "softmax", "n_out": 10}))
        training = TrainingConfig(epochs=60, mini_batch_size=10, eta=0.03, lmbda=0.1, lmbda_scale="batches")
    else:
        network, training = preset.network, preset.training
    layers = list(network.layers)
    convs = [dict(layer) for layer in layers if layer["type"] == "conv-pool"]
    fcs = [dict(layer) for layer in layers if layer["type"] == "fully-connected"]
    softmax = dict(layers[-1])
    old_activation = (fcs or convs or [{"activation": "relu"}])[0]["activation"]
    activation = args.activation or old_activation
    if args.conv is not None:
        convs = _conv_layers(args.conv, activation)
    if args.fc is not None:
        p = fcs[0]["p_dropout"] if fcs else 0.0
        fcs = [{"type": "fully-connected", "n_out": n, "activation": activation, "p_dropout": p} for n in args.fc]
    for layer in convs + fcs:
        layer["activation"] = activation
    if args.dropout is not None:
        for layer in fcs + [softmax]:
            layer["p_dropout"] = args.dropout
    network = network.replace(layers=tuple(convs + fcs + [softmax]),
                              init=args.init or network.init,
                              dropout="book" if style == "book" else "inverted",
                              dtype=args.dtype or network.dtype,
                              pool_gradient=args.pool_gradient or network.pool_gradient)
    changes = {name: getattr(args, name) for name in ("epochs", "mini_batch_size", "eta", "lmbda", "momentum",
                                                      "schedule", "patience", "early_stopping", "seed")
               if getattr(args, name) is not None}
    changes["shuffle"] = style != "book"
    changes["lmbda_scale"] = BOOK_STYLE["lmbda_scale"]
    changes["restore_best"] = not args.keep_last
    training = training.replace(**changes)
    expanded = args.expand if args.expand is not None else bool(preset and preset.expanded)
    return network, training, expanded, (preset.members if preset else 1)


def _augmentation(args):
    from nndl.deep.augment import Augmentation
    alpha, sigma = args.elastic if args.elastic else (0.0, 4.0)
    return Augmentation(shift=args.shift, rotate=args.rotate, elastic_alpha=alpha, elastic_sigma=sigma)


def _list_presets():
    from nndl.deep.presets import PRESETS
    print(f"{'preset':10} {'book':>7}  what")
    for p in PRESETS.values():
        print(f"{p.name:10} {p.book:7.2%}  {p.title}: {p.network.describe()}; {p.training.epochs} epochs, "
              f"eta {p.training.eta:g}{f', lambda {p.training.lmbda:g}' if p.training.lmbda else ''}"
              f"{', 250,000 images' if p.expanded else ''}{f', {p.members} networks voting' if p.members > 1 else ''}")
    print("\nRun one with: nndl conv --preset NAME [--seed S] [--save NET.pt] [--checkpoint RUN.ckpt]")
    return 0


def _resumed(args, device, say=print):
    """(net, training state, TrainingConfig, run) from --resume's checkpoint; run: the data the run used."""

    from nndl.deep.augment import Augmentation
    from nndl.deep.checkpoint import load_checkpoint
    from nndl.errors import ModelFileError
    from nndl.training.history import History
    net, state, metadata = load_checkpoint(args.resume, device)
    training = History.from_json(state["history"], source=args.resume).config
    if args.epochs is not None:
        training = training.replace(epochs=args.epochs)
    run = metadata.get("run", {})
    source, size = run.get("expanded"), run.get("training_size")
    if not (source is None or isinstance(source, str)) or not (size is None or (isinstance(size, int) and size > 0)):
        raise ModelFileError(f"{args.resume}: the description of the run's data is damaged")
    try:
        augmentation = Augmentation.from_dict(run.get("augmentation", {}))
    except ConfigError as e:
        raise ModelFileError(f"{args.resume}: {e}") from None
    say(f"Resuming {args.resume} after epoch {state['epoch']} of {training.epochs}", flush=True)
    return net, state, training, {"expanded": source, "augmentation": augmentation, "training_size": size}


def _quiet(*args, **kwargs):
    """print, on every rank but 0 of a distributed run."""


def _threads_per_process(world):
    """CPU threads for each of the processes on this machine: the usable cores shared out, at least 1."""
    import os
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores // world.local_world_size))


def _join_world(args):
    """The World of a torchrun launch (None for one process), refusing distributed options without one."""
    from nndl.deep.distributed import DEFAULT_TIMEOUT, how_to_launch, init_from_environment, launched_by_torchrun
    if args.dist_timeout is not None and not launched_by_torchrun():
        raise ConfigError(f"--dist-timeout applies to a run of several processes; {how_to_launch()}")
    return init_from_environment(args.device, args.dist_timeout or DEFAULT_TIMEOUT, required=args.distributed)


def _load_in_turn(args, world):
    """The data set, read by rank 0 first (it downloads MNIST if needed), then by the others."""
    if world is not None and not world.is_main:
        world.barrier("waiting for process 0 to load (or download) the data")
    data = load_data(args)
    if world is not None and world.is_main:
        world.barrier("waiting for the other processes to start")
    return data


def _describe_world(world, m, n, n_parameters, element_size):
    from nndl.deep.distributed import shard_sizes
    sizes = shard_sizes(m, world.world_size)
    share = (f"{sizes[0]} per process" if len(set(sizes)) == 1 else
             f"{', '.join(map(str, sizes))} images per process, each gradient weighted by its share")
    line = (f"Data-parallel over {world.describe()}: each mini-batch of {m} is shared out ({share}); the gradients "
            f"({n_parameters * element_size:,} bytes) are added up across processes every step; timeout "
            f"{world.timeout:g} s.")
    if n % m:
        line += (f" The last {n % m} of the {n:,} images in each epoch's order are left out (n mod m, "
                 "as in one process).")
    return line


#: Seeds go to torch.Generator.manual_seed, which takes 64-bit numbers; a rank's seed is seed + 1.
MAX_SEED = 2**63 - 2


def _check_options(args):
    """Refuse options that cannot mean anything for a convolutional run, before anything is read."""
    for option, seeds in (("--seed", [args.seed]), ("--seeds", args.seeds or [])):
        for seed in seeds:
            if seed is not None and not 0 <= seed <= MAX_SEED:
                raise ConfigError(f"{option} {seed}: a seed is a whole number from 0 to {MAX_SEED} (2**63 - 2)")
    if args.validation_size == 0 and not args.show_augmentation:
        raise ConfigError("--validation-size 0 leaves no validation images, but nndl conv chooses its best epoch "
                          "(--save, the schedule, early stopping) by validation accuracy; keep some")
    if args.resume:
        _check_resume_options(args)


#: nndl conv options that a resumed run takes from its checkpoint, with their parser defaults.
_RESUME_KEEPS = {"preset": None, "conv": None, "fc": None, "activation": None, "dropout": None, "init": None,
                 "style": None, "dtype": None, "pool_gradient": None, "mini_batch_size": None, "eta": None,
                 "lmbda": None, "momentum": None, "schedule": None, "patience": None, "early_stopping": None,
                 "seed": None, "keep_last": False, "expand": None, "expanded": None, "training_size": None,
                 "shift": 0.0, "rotate": 0.0, "elastic": None}


def _check_resume_options(args):
    """--resume continues the checkpoint's network, training settings and data: refuse options that change them."""
    given = [name for name, default in _RESUME_KEEPS.items() if getattr(args, name, default) != default]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"--resume takes the network, the training settings and the data from the checkpoint "
                          f"(only --epochs, --checkpoint and the outputs may be given); leave out {options}")


def _memory_needed(network, mini_batch_size):
    """A rough lower bound on the bytes a run of ``network`` needs: its parameters four times over (weights,
    gradients, velocities, the best epoch's) and every layer's outputs, twice (forward and backward), for the
    larger of a mini-batch and an evaluation batch."""
    from nndl.deep.network import EVAL_BATCH
    item = 8 if network.dtype == "float64" else 4
    parameters = activations = 0
    for layer, (in_shape, out_shape) in zip(network.layers, network.shapes()):
        if layer["type"] == "conv-pool":
            fh, fw = layer["filter"]
            parameters += layer["filters"] * (in_shape[0] * fh * fw + 1)
            activations += layer["filters"] * (in_shape[1] - fh + 1) * (in_shape[2] - fw + 1)   # before pooling
        else:
            n_in = 1
            for v in in_shape:
                n_in *= v
            parameters += (n_in + 1) * layer["n_out"]
        n_out = 1
        for v in out_shape:
            n_out *= v
        activations += n_out
    return item * (4 * parameters + 2 * activations * max(mini_batch_size, EVAL_BATCH))


def _memory_available(device):
    """Bytes the run may use on ``device``: free GPU memory, or the machine's available memory; None if unknown."""
    try:
        if device.type == "cuda":
            from nndl.deep._torch import torch
            return int(torch.cuda.mem_get_info(device)[0])
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, RuntimeError, IndexError):
        pass
    return None


def _check_memory(network, training, device):
    """Refuse, in one line, a network that cannot fit in the memory the device has."""
    needed, available = _memory_needed(network, training.mini_batch_size), _memory_available(device)
    if available is not None and needed > available:
        raise ConfigError(f"this network needs at least {needed / 2**30:.1f} GB on {device} ({network.describe()}), "
                          f"but only {available / 2**30:.1f} GB is available: use fewer or smaller layers")


def _is_out_of_memory(error):
    text = str(error)
    return ("can't allocate memory" in text or "out of memory" in text.lower()
            or type(error).__name__ == "OutOfMemoryError")


def cmd_conv(args: argparse.Namespace) -> int:
    if args.list_presets:
        return _list_presets()
    _check_options(args)
    from nndl.files.outputs import check_outputs
    check_outputs({"--save": args.save, "--history": args.history, "--checkpoint": args.checkpoint,
                   "--show-augmentation": args.show_augmentation, "--predictions": args.predictions},
                  inputs=[args.expanded] + ([args.resume] if args.resume != args.checkpoint else []))
    augmentation = _augmentation(args)
    world = _join_world(args)
    try:
        return _conv(args, augmentation, world)
    except (RuntimeError, MemoryError) as e:
        if not isinstance(e, MemoryError) and not _is_out_of_memory(e):
            raise
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"out of memory ({first[:200]}): the network, the mini-batch or the data do not fit on "
                          "this device; use fewer or smaller layers, or a smaller --mini-batch-size") from None
    finally:
        if world is not None:
            world.close()


def _check_cuda_graph(args, device, world):
    """Refuse --cuda-graph, in one line, before the data is loaded, where it cannot run."""
    if not args.cuda_graph:
        return
    if world is not None:
        raise ConfigError("--cuda-graph is not available with torchrun (several processes); leave it out")
    from nndl.deep.graphs import check_cuda_graph
    check_cuda_graph(device)


def _check_seeds(args, world):
    """Refuse, in one line, what --seeds cannot mean."""
    if args.vote and not args.seeds and not (args.resume and _is_members_checkpoint(args.resume)):
        raise ConfigError("--vote needs several networks: give --seeds S1 S2 ...")
    if not args.seeds:
        return
    if args.seed is not None:
        raise ConfigError("give either --seed (one network) or --seeds (several at once), not both")
    repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"--seeds must differ from each other; repeated: {', '.join(map(str, repeated))}")
    if world is not None:
        raise ConfigError("--seeds trains several networks in one process; it cannot be combined with torchrun")
    if args.resume:
        raise ConfigError("--resume takes the seeds from the checkpoint; leave out --seeds")


def _is_members_checkpoint(path):
    """Whether ``path`` is a checkpoint of several networks trained at once (read only its header)."""
    from nndl.deep.checkpoint import MEMBERS_FORMAT, load_tensors
    return load_tensors(path).get("format") == MEMBERS_FORMAT


def _per_seed(path, seed):
    """PATH with "-sSEED" before its suffix: run.pt -> run-s3.pt."""
    from pathlib import Path
    path = Path(path)
    return str(path.with_name(f"{path.stem}-s{seed}{path.suffix}"))


def _conv(args, augmentation, world):
    _check_seeds(args, world)
    if args.seeds or (args.resume and _is_members_checkpoint(args.resume)):
        return _conv_many(args, augmentation)
    from nndl.deep.data import split_tensors
    from nndl.deep.device import resolve_device, set_threads
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train

    main = world is None or world.is_main
    say = print if main else _quiet
    device = resolve_device(args.device) if world is None else world.device
    _check_cuda_graph(args, device, world)
    if device.type == "cpu":
        threads = set_threads(args.threads if args.threads or world is None else _threads_per_process(world))
    else:
        threads = None
    if args.resume:
        net, resume, training, run = _resumed(args, device, say)
        source, augmentation, training_size = run["expanded"], run["augmentation"], run["training_size"]
        checkpoint = args.checkpoint or args.resume
    else:
        network, training, expanded, members = _settings(args)
        if members > 1 and main:
            print(f"The book's ensemble is {members} of these networks voting: train each with its own --seed and "
                  "--save (or --predictions), then run nndl ensemble on the saved files.", file=sys.stderr)
        _check_memory(network, training, device)
        net = ConvNetwork(network, device=device, seed=training.seed)
        resume, checkpoint, training_size = None, args.checkpoint, args.training_size
        source = args.expanded or ("shifts" if expanded else None)
    network = net.config
    train_set, validation, test = split_tensors(_load_in_turn(args, world), device=device, dtype=net.dtype,
                                                expanded=source)
    if training_size:
        train_set = (train_set[0][:training_size], train_set[1][:training_size])
    if args.show_augmentation:
        if main:
            from nndl.deep.augment import plot_examples
            path = plot_examples(train_set[0][:64].cpu(), augmentation, args.show_augmentation,
                                 seed=training.seed or 0)
            print(f"Wrote {path}")
        return 0

    where = f"{device}" + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "") \
        + (", CUDA graphs" if args.cuda_graph else "")
    if world is not None:
        where += " per process"
    details = [f"{net.n_parameters():,} parameters", f"init {network.init}", network.dtype]
    extra = [f"augmented: {augmentation.describe()}"] if augmentation.active else []
    say(training_header(network.describe(), details, train_set[0].shape[0], training, where=where, extra=extra),
        flush=True)
    if world is not None:
        say(_describe_world(world, training.mini_batch_size, train_set[0].shape[0], net.n_parameters(),
                            net.layers[0].weight.element_size()), flush=True)
    run = {"expanded": source, "augmentation": augmentation.to_dict(), "training_size": training_size}
    if world is not None:
        run["processes"] = world.world_size
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    history = train(net, train_set, training, validation_data=validation, test_data=test,
                    augmentation=augmentation, progress=main and progress,
                    on_epoch=(lambda h: print(epoch_line(h, "validation"), flush=True)) if main else None,
                    checkpoint=checkpoint, checkpoint_metadata={"run": run}, resume=resume, world=world,
                    cuda_graph=args.cuda_graph)
    status = _report_and_save(args, history, net, training, run, checkpoint, validation, test) if main else 0
    if history.stop_reason == "interrupted":
        return 130
    if history.stop_reason == "diverged":
        return 1
    return status


def _conv_many(args, augmentation):
    """nndl conv --seeds S1 S2 ...: the networks of several seeds trained at once (nndl.deep.multi.train_many)."""

    from nndl.deep.checkpoint import load_members_checkpoint
    from nndl.deep.data import split_tensors
    from nndl.deep.device import resolve_device, set_threads
    from nndl.deep.multi import train_many
    from nndl.deep.network import ConvNetwork
    from nndl.errors import ModelFileError
    from nndl.training.history import History

    device = resolve_device(args.device)
    _check_cuda_graph(args, device, None)
    threads = set_threads(args.threads) if device.type == "cpu" else None
    if args.resume:
        nets, resume, metadata = load_members_checkpoint(args.resume, device)
        seeds = list(resume["seeds"])
        training = History.from_json(resume["histories"][0], source=args.resume).config
        if args.epochs is not None:
            training = training.replace(epochs=args.epochs)
        run = metadata.get("run", {})
        source, size = run.get("expanded"), run.get("training_size")
        if not (source is None or isinstance(source, str)) or not (size is None or (isinstance(size, int)
                                                                                    and size > 0)):
            raise ModelFileError(f"{args.resume}: the description of the run's data is damaged")
        print(f"Resuming {args.resume} after epoch {resume['epoch']} of {training.epochs} "
              f"(seeds {' '.join(map(str, seeds))})", flush=True)
        checkpoint, training_size = args.checkpoint or args.resume, size
    else:
        network, training, expanded, _ = _settings(args)
        seeds = list(args.seeds)
        nets = [ConvNetwork(network, device=device, seed=seed) for seed in seeds]
        resume, checkpoint, training_size = None, args.checkpoint, args.training_size
        source = args.expanded or ("shifts" if expanded else None)
    network = nets[0].config
    train_set, validation, test = split_tensors(load_data(args), device=device, dtype=nets[0].dtype,
                                                expanded=source)
    if training_size:
        train_set = (train_set[0][:training_size], train_set[1][:training_size])
    where = f"{device}" + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "") \
        + (", CUDA graphs" if args.cuda_graph else "")
    details = [f"{nets[0].n_parameters():,} parameters each", f"init {network.init}", network.dtype]
    extra = [f"{len(seeds)} networks at once, seeds {' '.join(map(str, seeds))}"]
    print(training_header(network.describe(), details, train_set[0].shape[0], training, where=where, extra=extra),
          flush=True)
    run = {"expanded": source, "augmentation": augmentation.to_dict(), "training_size": training_size}
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    histories = train_many(nets, train_set, training, seeds=seeds, validation_data=validation, test_data=test,
                           augmentation=augmentation, progress=progress,
                           on_epoch=lambda h: print(f"seed {h.config.seed}: {epoch_line(h, 'validation')}",
                                                    flush=True),
                           checkpoint=checkpoint, checkpoint_metadata={"run": run}, resume=resume,
                           cuda_graph=args.cuda_graph)
    status = 0
    for seed, net, history in zip(seeds, nets, histories):
        print(f"seed {seed}:")
        status |= _report_and_save(args, history, net, history.config, run, checkpoint, validation, test,
                                   suffix=lambda path, seed=seed: _per_seed(path, seed))
    if args.vote:
        from nndl.deep.ensemble import evaluate_ensemble
        scores = evaluate_ensemble(nets, *test)
        members = ", ".join(f"{100 * a:.2f}%" for a in scores["members"])
        print(f"Vote of the {len(nets)} networks on the {scores['n']:,} test images: {100 * scores['vote']:.2f}% "
              f"(members {members}; averaged probabilities {100 * scores['average']:.2f}%)")
    if any(h.stop_reason == "interrupted" for h in histories):
        return 130
    if all(h.stop_reason == "diverged" for h in histories):
        return 1
    return status


def _report_and_save(args, history, net, training, run, checkpoint, validation, test, suffix=None):
    """Print the result and write --save, --history and --predictions; returns 2 if a write failed, else 0.

    ``suffix(path)`` names one member's file among several (``_per_seed``).
    """
    from nndl.deep.checkpoint import save_model
    name = suffix or (lambda path: path)
    print_summary(history, "validation")
    status = 0
    kept = "the last network" if args.keep_last else f"the best network (epoch {history.best_epoch})"
    metadata = {"run": run, "trained": training.to_dict(), "best_epoch": history.best_epoch,
                "best_validation_accuracy": history.best_accuracy,
                "test_accuracy": history.best_test_accuracy, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.save:
        status |= write_or_rescue(lambda path: save_model(net, path, metadata), name(args.save), kept)
    if args.history:
        status |= write_or_rescue(history.save, name(args.history), "the history")
    if args.predictions:
        from nndl.deep.ensemble import save_predictions
        status |= write_or_rescue(
            lambda path: save_predictions(path, net, {"validation": validation, "test": test}, metadata),
            name(args.predictions), f"the predictions of {kept}")
    if history.stop_reason == "interrupted" and not (args.save or checkpoint or args.predictions):
        print("Interrupted; nothing was saved (use --save or --checkpoint).", file=sys.stderr)
    return 2 if status else 0


def _members(paths, device):
    """Each file as a ConvNetwork (a model or checkpoint) or a Predictions (written by --predictions)."""
    from nndl.deep.checkpoint import load_model, load_tensors
    from nndl.deep.ensemble import PREDICTIONS_FORMAT, read_predictions
    members = []
    for path in paths:
        content = load_tensors(path, "an nndl convolutional model or predictions file")
        if content.get("format") == PREDICTIONS_FORMAT:
            members.append(read_predictions(path, content))
        else:
            members.append(load_model(path, device, content))
    return members


def _ensemble_outputs(args, members):
    """(log-probabilities of each member, labels) on --split; loads the data only when a member is a network."""
    from nndl.deep.ensemble import Predictions, fingerprint
    from nndl.errors import InputError
    labels = expected = reference = None
    if not all(isinstance(m, Predictions) for m in members):
        split = getattr(load_data(args), args.split)
        labels, reference = split.labels, f"the {args.split} images of the data given"
        if any(isinstance(m, Predictions) for m in members):
            expected = fingerprint(split.images, split.labels)
    outputs = []
    for path, member in zip(args.models, members):
        if not isinstance(member, Predictions):
            outputs.append(member.log_probabilities(split.images).cpu())
            continue
        log_probabilities, member_labels = member.split(args.split)
        if reference is None:
            expected, labels, reference = member.fingerprints[args.split], member_labels, path
        elif member.fingerprints[args.split] != expected:
            raise InputError(f"{path} holds predictions on other {args.split} images than {reference}: the "
                             "members of an ensemble must be evaluated on the same images")
        outputs.append(log_probabilities)
    return outputs, labels


def cmd_ensemble(args: argparse.Namespace) -> int:
    from nndl.files.outputs import check_outputs
    check_outputs({"--json": args.json}, inputs=args.models)
    from nndl.deep.device import resolve_device
    from nndl.deep.ensemble import Predictions, score
    device = resolve_device(args.device)
    members = _members(args.models, device)
    outputs, labels = _ensemble_outputs(args, members)
    result = score(outputs, labels, names=args.models)
    for path, member, accuracy in zip(args.models, members, result["members"]):
        print(f"{path}: {args.split} accuracy {accuracy:.2%}"
              + (" (saved predictions)" if isinstance(member, Predictions) else ""))
    print(f"majority vote of {len(members)}: {result['vote']:.2%}")
    print(f"average of the probabilities: {result['average']:.2%}")
    if args.json:
        import json

        from nndl.files.atomic import atomic_write_text
        atomic_write_text(args.json, json.dumps({"models": [str(p) for p in args.models], "split": args.split,
                                                 **result}, indent=1))
        print(f"Wrote {args.json}")
    return 0
