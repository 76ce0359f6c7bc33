"""Reproduce the chapter 3 results of the book (see TARGETS.md) and write them as JSON.

    python experiments/chapter3.py --list
    python experiments/chapter3.py --only ce-30 overfit-1000 --seeds 1 2 3 --histories runs/

Every run trains an nndl network on the book's MNIST split and reports the
best accuracy on its evaluation data (the test set or the validation set, as
the book's run did). With ``--histories DIR`` each run's per-epoch History
is saved too, for ``nndl plot`` (e.g. the overfitting curves of chapter 3).
"""

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


from nndl.data.mnist import load_mnist
from nndl.files.atomic import atomic_write_text
from nndl.training import train
from nndl.training.config import NetworkConfig as Net, TrainingConfig as Train

ALL = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")
CE30 = Net(sizes=(784, 30, 10), cost="cross-entropy", init="large")
CE100 = CE30.replace(sizes=(784, 100, 10))
DEFAULT30 = CE30.replace(init="default")


@dataclass(frozen=True)
class Run:
    """One of the book's chapter 3 runs: what it trains, how, on what, and what the book reports."""
    book: str
    net: Net
    train: Train
    evaluate_on: str = "validation"
    training_size: int = None          # None: all 50,000 training images


RUNS = {
    "ce-30": Run("95.49%", CE30, Train(epochs=30, eta=0.5), "test"),
    "ce-100": Run("96.82%", CE100, Train(epochs=30, eta=0.5), "test"),
    "overfit-1000": Run("test peak 82.27%; training 100% by about epoch 67", CE30,
                        Train(epochs=400, eta=0.5, monitor=ALL), "test", 1000),
    "overfit-1000-l2": Run("test peak 87.10%", CE30, Train(epochs=400, eta=0.5, lmbda=0.1, monitor=ALL), "test", 1000),
    "l2-30": Run("96.49% (lambda 0: 95.33%)", CE30, Train(epochs=30, eta=0.5, lmbda=5.0), "test"),
    "l2-100-60": Run("98.04% (validation)", CE100, Train(epochs=60, eta=0.1, lmbda=5.0)),
    "l2-100-60-default-init": Run("(not in the book: l2-100-60 with N(0, 1/n_in) weights)",
                                  CE100.replace(init="default"), Train(epochs=60, eta=0.1, lmbda=5.0)),
    "init-default": Run("epoch 0 92.70%, best 96.53% (validation)", DEFAULT30, Train(epochs=30, eta=0.1, lmbda=5.0)),
    "init-large": Run("epoch 0 86.43%, best 96.48% (validation)", CE30, Train(epochs=30, eta=0.1, lmbda=5.0)),
    # Techniques the book describes without a listing: each should train to sensible accuracy.
    "momentum": Run("described", DEFAULT30, Train(epochs=30, eta=0.05, momentum=0.9, lmbda=5.0)),
    "nesterov": Run("described", DEFAULT30, Train(epochs=30, eta=0.05, momentum=0.9, nesterov=True, lmbda=5.0)),
    "l1": Run("described", DEFAULT30, Train(epochs=30, eta=0.5, lmbda=1.0, regularization="l1")),
    "dropout": Run("described", DEFAULT30.replace(sizes=(784, 100, 10)), Train(epochs=30, eta=0.5, p_dropout=0.2)),
    "tanh": Run("described", DEFAULT30.replace(activations=("tanh", "sigmoid")), Train(epochs=30, eta=0.1, lmbda=5.0)),
    "relu": Run("described", Net(sizes=(784, 100, 10), activations=("relu", "softmax"), cost="log-likelihood",
                                 init="default"), Train(epochs=30, eta=0.05, lmbda=5.0)),
    "softmax": Run("like sigmoid + cross-entropy", Net(sizes=(784, 30, 10), activations=("sigmoid", "softmax"),
                                                       cost="log-likelihood", init="default"),
                   Train(epochs=30, eta=0.5, lmbda=5.0)),
    "early-stopping": Run("no-improvement-in-10", DEFAULT30, Train(epochs=300, eta=0.5, lmbda=5.0, early_stopping=10)),
    "schedule": Run("halve on plateau until 1/128", DEFAULT30, Train(epochs=300, eta=0.5, lmbda=5.0, schedule="halve")),
}


def run(name, seed, data, dtype="float64"):
    """Train one configuration with one seed; returns (summary dict, History)."""
    spec = RUNS[name]
    net = spec.net.replace(dtype=dtype).build(seed=seed)
    x, labels = data.training.images, data.training.labels
    if spec.training_size:
        x, labels = x[:spec.training_size], labels[:spec.training_size]
    evaluation = data.test if spec.evaluate_on == "test" else data.validation
    history = train(net, (x, labels), spec.train.replace(seed=seed), evaluation_data=evaluation)
    summary = {
        "name": name, "seed": seed, "evaluated_on": spec.evaluate_on, "book": spec.book,
        "best_accuracy": history.best_accuracy, "best_epoch": history.best_epoch,
        "epoch0_accuracy": history.evaluation_accuracy[0], "epochs_run": len(history.epochs),
        "stop_reason": history.stop_reason, "training_seconds": history.training_time,
        "monitor_seconds": float(sum(history.monitor_time)),
    }
    if history.training_accuracy:
        perfect = [e for e, a in zip(history.epochs, history.training_accuracy) if a == 1.0]
        summary["first_epoch_training_100"] = perfect[0] if perfect else None
    if history.evaluation_cost:
        summary["lowest_evaluation_cost_epoch"] = int(np.argmin(history.evaluation_cost))
    return summary, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--data", help="directory with the MNIST files")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--output", default="chapter3-results.json")
    parser.add_argument("--histories", metavar="DIR", help="save each run's History JSON here")
    parser.add_argument("--list", action="store_true", help="list the runs and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in RUNS.items():
            print(f"{name:24s} {spec.net.to_dict()} {spec.train.to_dict()} on {spec.evaluate_on}; book: {spec.book}")
        return 0

    data = load_mnist(args.data)
    results = []
    for name in args.only:
        for seed in args.seeds:
            start = time.perf_counter()
            summary, history = run(name, seed, data, args.dtype)
            results.append(summary)
            if args.histories:
                history.save(Path(args.histories) / f"{name}-seed{seed}.json")
            extra = "".join(f", {k} {summary[k]}" for k in ("first_epoch_training_100", "lowest_evaluation_cost_epoch")
                            if k in summary)
            print(f"{name:16s} seed {seed}: best {summary['best_accuracy']:.2%} (epoch {summary['best_epoch']}) on "
                  f"{summary['evaluated_on']}, epoch 0 {summary['epoch0_accuracy']:.2%}, "
                  f"{summary['epochs_run']} epochs [{summary['stop_reason']}], training {summary['training_seconds']:.1f} s, "
                  f"monitoring {summary['monitor_seconds']:.1f} s{extra} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
            atomic_write_text(args.output, json.dumps(results, indent=1))

    print(f"\n{'run':16s} {'median best':>12s} {'best':>8s}  book")
    for name in args.only:
        best = [r["best_accuracy"] for r in results if r["name"] == name]
        print(f"{name:16s} {statistics.median(best):12.2%} {max(best):8.2%}  {RUNS[name].book}")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
