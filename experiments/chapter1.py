"""Reproduce the chapter 1 results of the book (see TARGETS.md) and write them as JSON.

    python experiments/chapter1.py                       # every run, 3 seeds each
    python experiments/chapter1.py --only 30-hidden --seeds 1 2 3 --output ch1.json

Each run is the book's chapter 1 network (sigmoid neurons, quadratic cost,
weights and biases N(0, 1), mini-batches of 10), trained on the 50,000
training images and measured on the 10,000 test images after every epoch.
The table reports, per configuration, the best test accuracy of each seed
(the book quotes its best epoch), their median and best, and the accuracy
after the first epoch.
"""

import argparse
import json
import statistics
import sys
import time

from nndl.data.mnist import load_mnist
from nndl.files.atomic import atomic_write_text
from nndl.training import train
from nndl.training.config import NetworkConfig, TrainingConfig

#: name -> (sizes, epochs, eta, the book's figure)
RUNS = {
    "30-hidden": ([784, 30, 10], 30, 3.0, "peak 95.42%, epoch 0 about 91%"),
    "100-hidden": ([784, 100, 10], 30, 3.0, "96.59%"),
    "eta-0.001": ([784, 100, 10], 30, 0.001, "about 21% after 30 epochs"),
    "eta-100": ([784, 30, 10], 30, 100.0, "stuck near 10%"),
    "no-hidden": ([784, 10], 30, 3.0, "no number given"),
}


def run(name, seed, data, dtype):
    """Train one configuration with one seed; returns a dict of results."""
    sizes, epochs, eta, _ = RUNS[name]
    # the book's chapter 1 network: sigmoid neurons, quadratic cost, N(0, 1) weights (NetworkConfig's defaults)
    net = NetworkConfig(sizes=sizes, dtype=dtype).build(seed=seed)
    config = TrainingConfig(epochs=epochs, mini_batch_size=10, eta=eta, seed=seed)
    history = train(net, data.training, config, evaluation_data=data.test)
    return {
        "name": name, "seed": seed, "sizes": sizes, "epochs": epochs, "eta": eta,
        "test_accuracy": history.evaluation_accuracy,
        "best_accuracy": history.best_accuracy, "best_epoch": history.best_epoch,
        "final_accuracy": history.evaluation_accuracy[-1] if history.evaluation_accuracy else None,
        "stop_reason": history.stop_reason, "message": history.message,
        "seconds_per_epoch": history.training_time / max(len(history.epochs), 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--data", help="directory with the MNIST files")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--output", default="chapter1-results.json")
    args = parser.parse_args(argv)

    data = load_mnist(args.data)
    results = []
    for name in args.only:
        for seed in args.seeds:
            start = time.perf_counter()
            r = run(name, seed, data, args.dtype)
            results.append(r)
            print(f"{name:11s} seed {seed}: best {r['best_accuracy']:.2%} (epoch {r['best_epoch']}), "
                  f"final {r['final_accuracy']:.2%}, epoch 0 {r['test_accuracy'][0]:.2%}, "
                  f"{r['seconds_per_epoch']:.2f} s/epoch, {time.perf_counter() - start:.0f} s "
                  f"[{r['stop_reason']}]", flush=True)
            atomic_write_text(args.output, json.dumps(results, indent=1))

    print(f"\n{'run':11s} {'median best':>12s} {'best of seeds':>14s} {'median final':>13s}   book")
    for name in args.only:
        rs = [r for r in results if r["name"] == name]
        best = [r["best_accuracy"] for r in rs]
        final = [r["final_accuracy"] for r in rs]
        print(f"{name:11s} {statistics.median(best):12.2%} {max(best):14.2%} {statistics.median(final):13.2%}   "
              f"{RUNS[name][3]}")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
