"""``nndl reproduce``: run the book's experiments from the registry (``nndl.experiments``) and report them."""

import argparse
import sys
import textwrap
from pathlib import Path

from nndl.cli._common import DefaultsHelpFormatter, positive_int

__all__ = ["add_commands", "cmd_reproduce"]


def add_commands(commands) -> None:
    """Add ``reproduce`` to the sub-command parsers ``commands``."""
    r = commands.add_parser(
        "reproduce", help="run the book's experiments and compare with the book",
        description="Run experiments of the book by id (see --list), a chapter (ch1 ... ch6, hyper), beyond "
                    "(nndl's recipe past the book's record) or all. "
                    "Each writes OUT/ID.json (every seed, the median, the book's value, whether it reproduces "
                    "it), OUT/ID.png (its figure) and updates OUT/REPORT.md. Runs already in OUT are not run "
                    "again unless --force; an interrupted command, run again, goes on where it stopped.",
        formatter_class=DefaultsHelpFormatter)
    r.add_argument("ids", metavar="ID", nargs="*", help="experiment ids, chapters (ch3) or all")
    r.add_argument("--list", action="store_true", help="list the experiments and exit")
    r.add_argument("--status", action="store_true",
                   help="say where the runs checkpointed in OUT stand (epochs done, best validation accuracy so "
                        "far, time left, the process training it now) and exit; reads the checkpoints, trains "
                        "nothing")
    r.add_argument("--seeds", type=_seed, nargs="+", metavar="S",
                   help="seeds of each experiment; a deterministic experiment runs once (default: 1 2 3, or 1 with "
                        "--quick)")
    r.add_argument("--quick", action="store_true",
                   help="a small, seconds-long version of each (a smoke test, not comparable with the book)")
    r.add_argument("--out", metavar="DIR", help="output directory (default: reproduced, or reproduced-quick with "
                   "--quick)")
    r.add_argument("--jobs", "-j", type=positive_int, default=1, metavar="N",
                   help="independent runs in N parallel processes, one CPU thread each")
    r.add_argument("--force", action="store_true", help="run again what is already in OUT")
    r.add_argument("--data", metavar="DIR", help="directory with the MNIST files (default: nndl's usual search)")
    r.add_argument("--epochs", type=positive_int, metavar="N",
                   help="train for N epochs instead of the book's (experiments that train one network, e.g. the "
                        "chapter 6 rungs on a CPU): kept apart as OUT/ID-eN.json, not compared with the book; a "
                        "later run of more epochs goes on from its checkpoints")
    r.add_argument("--together", action="store_true",
                   help="train the seeds of each chapter 6 rung at once, in one process (fast on a GPU; on a "
                        "CPU, --jobs with one seed per process is usually faster)")
    r.add_argument("--device", default="cpu",
                   help="where the chapter 6 networks train: cpu, cuda, cuda:N or auto (a CUDA GPU if there is one)")
    r.add_argument("--cuda-graph", action="store_true",
                   help="on a CUDA GPU, replay each chapter 6 training step from a CUDA graph: the same arithmetic, "
                        "many times faster at the book's mini-batch of 10 (runs in bfloat16 train without it)")
    r.set_defaults(run=cmd_reproduce)


def _seed(text: str) -> int:
    """A seed on the command line: a whole number 0 ... 2**32 - 1."""
    from nndl.experiments.runner import MAX_SEED
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, got {value}")
    return value


def cmd_reproduce(args: argparse.Namespace) -> int:
    from nndl.errors import ConfigError
    from nndl.experiments.registry import experiments, select
    if args.status:
        from nndl.experiments.status import format_status, run_status
        out = args.out or ("reproduced-quick" if args.quick else "reproduced")
        if not Path(out).is_dir():
            raise ConfigError(f"no folder {out}: --out names the folder the reproduce runs write to")
        for line in format_status(run_status(out), out):
            print(line)
        return 0
    if args.list or not args.ids:
        if not args.list:
            raise ConfigError("name the experiments to run (ids, a chapter such as ch3, or all); "
                              "nndl reproduce --list shows them")
        chosen = select(args.ids) if args.ids else list(experiments().values())
        for e in chosen:
            book = f" [book: {e.book}]" if e.book else ""
            needs = f" (needs {', '.join(n for n in e.needs if n != 'mnist')})" \
                if set(e.needs) - {"mnist"} else ""
            print(textwrap.shorten(f"{e.id:24s} {e.title}{book}{needs}", 160))
        print(f"{len(chosen)} experiments; nndl reproduce ID [ID...] runs them")
        return 0
    from nndl.experiments.runner import check_seeds, reproduce
    out = args.out or ("reproduced-quick" if args.quick else "reproduced")
    seeds = args.seeds or ([1] if args.quick else [1, 2, 3])
    try:
        check_seeds(seeds)
    except ConfigError as e:
        raise ConfigError(f"--seeds: {e}") from None
    if args.device != "cpu":                         # an unknown or absent device: one line, before any run
        from nndl.deep.device import resolve_device
        resolve_device(args.device)
    outcome = reproduce(args.ids, seeds=seeds, quick=args.quick, out=out, jobs=args.jobs, force=args.force,
                        data_dir=args.data, epochs=args.epochs, together=args.together,
                        echo=lambda line: print(line, flush=True), device=args.device, cuda_graph=args.cuda_graph)
    print(f"Report: {out}/REPORT.md ({len(outcome.finished)} finished, {len(outcome.skipped)} already done, "
          f"{len(outcome.failed)} failed)")
    if outcome.failed:
        print(f"nndl: error: failed: {', '.join(outcome.failed)}", file=sys.stderr)
        return 1
    return 0

