"""Run the rungs of chapter 6's ladder, several at a time, resumable, and summarise them.

    python experiments/chapter6.py run --presets fc100 conv1 conv2 relu --seeds 1 2 3 --jobs 2
    python experiments/chapter6.py ensemble --preset dropout --seeds 1 2 3 4 5
    python experiments/chapter6.py summary

Each run is ``nndl conv --preset P --seed S`` on one CPU thread, with a
checkpoint after every epoch in ``runs/ch6/`` (not committed) and its
History in ``experiments/results/ch6/P-sS.json`` (committed). Running the
same command again resumes unfinished runs from their checkpoints and skips
finished ones, so a long ladder survives being stopped. ``ensemble`` lets the
saved networks of one preset's seeds vote (``nndl ensemble``) and writes
``results/ch6/ensemble-P.json``. ``summary`` prints the table of test
accuracies at the best validation epoch, median over seeds, against the book
(with the number of epochs run where it is fewer than the book's).
"""

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results" / "ch6"
RUNS = ROOT / "runs" / "ch6"


def _finished(history_path):
    if not history_path.exists():
        return False
    data = json.loads(history_path.read_text())
    return data.get("stop_reason") != "interrupted"


def run_one(preset, seed, extra):
    """Train (or resume) one preset with one seed; returns its exit status."""
    name = f"{preset}-s{seed}"
    history, checkpoint, model = RESULTS / f"{name}.json", RUNS / f"{name}.ckpt", RUNS / f"{name}.pt"
    if _finished(history):
        print(f"{name}: done", flush=True)
        return 0
    RUNS.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if checkpoint.exists():
        command = ["--resume", str(checkpoint)]
    else:
        command = ["--preset", preset, "--seed", str(seed), "--checkpoint", str(checkpoint)]
    command = [sys.executable, "-m", "nndl", "conv", *command, "--threads", "1", "--device", "cpu",
               "--history", str(history), "--save", str(model), "--no-progress", *extra]
    print(f"{name}: {' '.join(command[3:])}", flush=True)
    with open(RUNS / f"{name}.log", "a") as log:
        status = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    print(f"{name}: exit {status}", flush=True)
    return status


def ensemble(preset, seeds):
    """Let the saved networks of ``preset``'s seeds vote on the test set; writes results/ch6/ensemble-P.json."""
    models = [str(RUNS / f"{preset}-s{seed}.pt") for seed in seeds]
    missing = [m for m in models if not Path(m).exists()]
    if missing:
        print(f"not trained yet: {', '.join(missing)}", file=sys.stderr)
        return 1
    return subprocess.call([sys.executable, "-m", "nndl", "ensemble", *models, "--device", "cpu",
                            "--json", str(RESULTS / f"ensemble-{preset}.json")], cwd=ROOT)


def summary():
    from nndl.training.presets import PRESETS
    print("| rung | book | ours: median test accuracy at best validation epoch | seeds | epochs | median s/epoch |")
    print("| --- | --- | --- | --- | --- | --- |")
    for preset in PRESETS.values():
        results = []
        for path in sorted(RESULTS.glob(f"{preset.name}-s*.json")):
            data = json.loads(path.read_text())
            epochs, best = data["epochs"], data["best_epoch"]
            if best is None or not data.get("test_accuracy"):
                continue
            test = data["test_accuracy"][epochs.index(best)]
            results.append((path.stem.split("-s")[-1], test, len(epochs), data["config"]["epochs"],
                            statistics.median(data["epoch_time"]), data["stop_reason"]))
        if not results:
            continue
        median = statistics.median(r[1] for r in results)
        seeds = ", ".join(f"{s}: {t:.2%}" + ("" if n == total else f" ({n}/{total} epochs)")
                          for s, t, n, total, _, _ in results)
        ran = max(r[2] for r in results)
        epochs = f"{ran}" if ran == preset.training.epochs else f"{ran} (book: {preset.training.epochs})"
        print(f"| {preset.name} | {preset.book:.2%} | {median:.2%} | {seeds} | "
              f"{epochs} | {statistics.median(r[4] for r in results):.1f} |")
        vote = RESULTS / f"ensemble-{preset.name}.json"
        if vote.exists() and "ensemble" in PRESETS:
            data = json.loads(vote.read_text())
            print(f"| ensemble | {PRESETS['ensemble'].book:.2%} | {data['vote']:.2%} (vote; average "
                  f"{data['average']:.2%}) | {len(data['members'])} {preset.name} networks | {epochs} | - |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("run")
    r.add_argument("--presets", nargs="+", required=True)
    r.add_argument("--seeds", nargs="+", type=int, default=[1])
    r.add_argument("--jobs", type=int, default=2, help="runs at a time, one CPU thread each")
    r.add_argument("extra", nargs=argparse.REMAINDER, help="more nndl conv options, after --")
    e = commands.add_parser("ensemble")
    e.add_argument("--preset", default="dropout")
    e.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    commands.add_parser("summary")
    args = parser.parse_args(argv)
    if args.command == "summary":
        summary()
        return 0
    if args.command == "ensemble":
        return ensemble(args.preset, args.seeds)
    extra = [a for a in args.extra if a != "--"]
    jobs = [(p, s) for s in args.seeds for p in args.presets]
    with ThreadPoolExecutor(args.jobs) as pool:
        statuses = list(pool.map(lambda job: run_one(*job, extra), jobs))
    return max(statuses, default=0)


if __name__ == "__main__":
    sys.exit(main())
