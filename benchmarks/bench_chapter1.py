"""Time the chapter 1 network with nndl and with other implementations.

The network is the one of chapter 1 of "Neural Networks and Deep Learning":
layer sizes [784, 30, 10], sigmoid neurons, the quadratic cost, weights and
biases drawn from N(0, 1), mini-batch SGD with mini-batches of 10 examples
and learning rate eta = 3.0, trained on the book's MNIST training split
(the first 50,000 official training images). What is compared:

nndl
    ``nndl.training.train`` on a ``FeedforwardNetwork``, in float64 (the
    default) and float32. The time is the median of ``History.epoch_time``
    (pure training time per epoch, without evaluation). nndl runs its first
    epoch cold, so it is timed over several epochs (3 by default) and the
    median is reported.
book per-example (network.py)
    A re-implementation, inside this script, of the algorithm of the book's
    chapter 1 program: the data is a list of (x, y) column-vector pairs,
    each epoch shuffles the list with ``random.shuffle``, and each example
    of a mini-batch goes through its own ``backprop`` (matrix-vector
    products); the gradients are summed and applied once per mini-batch.
    Like the book's code, the parameters are float64 and the images keep
    the float32 they were loaded as. It is slow, so it is timed over one
    epoch (or, with ``--quick``, over a fifth of an epoch, scaled up by 5).
scikit-learn
    ``MLPClassifier`` with one hidden layer of 30 logistic neurons, plain SGD
    (no momentum, no L2 penalty), mini-batches of 10, one ``partial_fit`` per
    epoch. It is only an approximate equivalent: scikit-learn always uses a
    softmax output layer with the log-loss (cross-entropy) cost, and its own
    (Glorot uniform) initial weights, so its learning rate is chosen
    separately (``--sklearn-eta``, default 0.5). Trained in float64.
PyTorch (when ``import torch`` works)
    An eager loop: two ``nn.Linear`` layers with N(0, 1) weights and biases,
    sigmoid, the quadratic cost 0.5 * sum((a - y)**2) / m,
    ``torch.optim.SGD(lr=3.0)``, shuffled mini-batches of 10 taken by index
    from float32 tensors. ``torch.set_num_threads`` is 1 by default
    (``--torch-threads``): at this size extra threads only add
    synchronisation.

nndl limits BLAS to one thread while it trains; the book re-implementation
and scikit-learn run under the same limit (``--blas-threads``), so all
numpy-based rows use the same BLAS setting.

How to read the output: ``s/epoch`` is seconds per pass over the 50,000
training images (median over the epochs timed). ``vs nndl(f64)`` and
``vs nndl(f32)`` divide that time by nndl's, so 16x means sixteen times
slower than nndl and 0.5x twice as fast. ``test acc`` is the accuracy on the
10,000 test images after the timed epochs: only a check that each
implementation really trains (the rows train for different numbers of
epochs, and scikit-learn with a different cost; and with N(0, 1) weights
the chapter 1 network sometimes sits near 80-85% after one epoch, depending
on the seed, before it picks up the digits it has missed). Everything is measured in
one run on whatever else the machine is doing, so compare rows of the same
run, never numbers across runs; the script prints ratios and asserts
nothing about time.

Usage::

    NNDL_DATA=/work/shared/data/mnist python benchmarks/bench_chapter1.py
    python benchmarks/bench_chapter1.py --only nndl,torch --dtype float32 --json out.json
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing

from machine import base_context, cpu_line  # noqa: E402  (benchmarks/machine.py, beside this script)

from nndl.data.mnist import load_mnist  # noqa: E402
from nndl.engine.feedforward import FeedforwardNetwork  # noqa: E402
from nndl.training import train  # noqa: E402

SIZES = [784, 30, 10]
MINI_BATCH = 10
ETA = 3.0
IMPLEMENTATIONS = ("nndl", "book", "sklearn", "torch")
QUICK_FRACTION = 0.2          # share of an epoch the book code trains with --quick


# ---------------------------------------------------------------------------
# nndl
# ---------------------------------------------------------------------------

def bench_nndl(data, epochs, dtype, seed):
    net = FeedforwardNetwork(SIZES, activations="sigmoid", cost="quadratic", init="large",
                             seed=seed, dtype=dtype)
    history = train(net, (data.training.images, data.training.labels), epochs=epochs, mini_batch_size=MINI_BATCH,
                    eta=ETA, seed=seed)
    return dict(seconds=statistics.median(history.epoch_time), epoch_times=list(history.epoch_time),
                epochs=epochs, accuracy=net.accuracy(data.test.images, data.test.labels))


# ---------------------------------------------------------------------------
# The book's per-example algorithm (chapter 1), for comparison only
# ---------------------------------------------------------------------------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class BookNetwork:
    """The chapter 1 algorithm as the book runs it: one example at a time, column vectors."""

    def __init__(self, sizes, seed):
        rng = np.random.default_rng(seed)
        self.biases = [rng.standard_normal((n, 1)) for n in sizes[1:]]
        self.weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.random = random.Random(seed)

    def output(self, a):
        for w, b in zip(self.weights, self.biases):
            a = _sigmoid(w @ a + b)
        return a

    def train(self, examples, epochs, m, eta, limit=None):
        """SGD over the list of (x, y) pairs; ``limit`` stops each epoch after that many examples."""
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            self.random.shuffle(examples)
            stop = len(examples) if limit is None else limit
            for k in range(0, stop, m):
                self.update(examples[k:k + m], eta)
            times.append(time.perf_counter() - start)
        return times

    def update(self, batch, eta):
        sum_b = [np.zeros(b.shape) for b in self.biases]
        sum_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in batch:
            grad_b, grad_w = self.backprop(x, y)
            sum_b = [s + g for s, g in zip(sum_b, grad_b)]
            sum_w = [s + g for s, g in zip(sum_w, grad_w)]
        step = eta / len(batch)
        self.weights = [w - step * g for w, g in zip(self.weights, sum_w)]
        self.biases = [b - step * g for b, g in zip(self.biases, sum_b)]

    def backprop(self, x, y):
        """Gradients of the quadratic cost for one example: lists like ``biases`` and ``weights``."""
        activations = [x]
        zs = []
        for w, b in zip(self.weights, self.biases):
            z = w @ activations[-1] + b
            zs.append(z)
            activations.append(_sigmoid(z))
        grad_b = [None] * len(self.biases)
        grad_w = [None] * len(self.weights)
        s = _sigmoid(zs[-1])
        delta = (activations[-1] - y) * s * (1 - s)
        grad_b[-1] = delta
        grad_w[-1] = delta @ activations[-2].T
        for layer in range(len(self.weights) - 2, -1, -1):
            s = _sigmoid(zs[layer])
            delta = (self.weights[layer + 1].T @ delta) * s * (1 - s)
            grad_b[layer] = delta
            grad_w[layer] = delta @ activations[layer].T
        return grad_b, grad_w

    def accuracy(self, images, labels):
        hits = sum(int(np.argmax(self.output(x.reshape(-1, 1))) == t) for x, t in zip(images, labels))
        return hits / len(labels)


def bench_book(data, epochs, seed, quick):
    images, labels = data.training.images, data.training.labels
    examples = []
    for x, t in zip(images, labels):
        y = np.zeros((10, 1))
        y[t] = 1.0
        examples.append((x.reshape(-1, 1), y))
    net = BookNetwork(SIZES, seed)
    fraction = QUICK_FRACTION if quick else 1.0
    limit = int(len(examples) * fraction) if quick else None
    times = net.train(examples, epochs, MINI_BATCH, ETA, limit=limit)
    return dict(seconds=statistics.median(times) / fraction, epoch_times=[t / fraction for t in times],
                epochs=epochs * fraction, accuracy=net.accuracy(data.test.images, data.test.labels))


# ---------------------------------------------------------------------------
# scikit-learn
# ---------------------------------------------------------------------------

def bench_sklearn(data, epochs, seed, eta):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x = data.training.images.astype(np.float64)
    labels = data.training.labels
    clf = MLPClassifier(hidden_layer_sizes=(30,), activation="logistic", solver="sgd", batch_size=MINI_BATCH,
                        learning_rate="constant", learning_rate_init=eta, momentum=0.0,
                        nesterovs_momentum=False, alpha=0.0, max_iter=1, shuffle=True, random_state=seed)
    classes = np.arange(10)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            start = time.perf_counter()
            clf.partial_fit(x, labels, classes=classes)
            times.append(time.perf_counter() - start)
    accuracy = clf.score(data.test.images.astype(np.float64), data.test.labels)
    return dict(seconds=statistics.median(times), epoch_times=times, epochs=epochs, accuracy=accuracy)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

def bench_torch(data, epochs, seed, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 30), nn.Sigmoid(), nn.Linear(30, 10), nn.Sigmoid())
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=ETA)
    x = torch.from_numpy(data.training.images).float()
    y = torch.zeros(len(x), 10)
    y[torch.arange(len(x)), torch.from_numpy(data.training.labels)] = 1.0
    generator = torch.Generator().manual_seed(seed)
    n = len(x)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        for k in range(0, n, MINI_BATCH):
            batch = order[k:k + MINI_BATCH]
            out = model(x[batch])
            loss = 0.5 * ((out - y[batch]) ** 2).sum() / len(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.test.images).float()).argmax(dim=1).numpy()
    accuracy = float(np.mean(predicted == data.test.labels))
    return dict(seconds=statistics.median(times), epoch_times=times, epochs=epochs, accuracy=accuracy,
                threads=threads)


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def _short_path(path):
    """'numpy.libs/libscipy_openblas64_-....so': the folder says which package brought the library."""
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def machine_context():
    context = base_context()
    context["blas"] = [dict(api=lib.get("internal_api"), version=lib.get("version"),
                            threads=lib.get("num_threads"), architecture=lib.get("architecture"),
                            library=_short_path(lib.get("filepath", "")))
                       for lib in threadpool_info() if lib.get("user_api") == "blas"]
    for module in ("sklearn", "torch"):
        try:
            context[module] = __import__(module).__version__
        except ImportError:
            context[module] = None
    return context


def print_context(context):
    print(f"python {context['python']} on {context['platform']}")
    print(f"numpy {context['numpy']}, scikit-learn {context['sklearn'] or '-'}, torch {context['torch'] or '-'}")
    print(cpu_line(context))
    for lib in context["blas"]:
        print(f"BLAS: {lib['api']} {lib['version']} ({lib['library']}, {lib['architecture']}, "
              f"{lib['threads']} threads by default)")
    print(flush=True)


def ratio(seconds, reference):
    return f"{seconds / reference:.2f}x" if reference else "n/a"


def print_table(rows):
    reference64 = next((r["seconds"] for r in rows if r["name"] == "nndl" and r["dtype"] == "float64"), None)
    reference32 = next((r["seconds"] for r in rows if r["name"] == "nndl" and r["dtype"] == "float32"), None)
    header = (f"{'implementation':<31}{'dtype':<9}{'s/epoch':>9}{'vs nndl(f64)':>14}{'vs nndl(f32)':>14}"
              f"{'epochs':>8}{'test acc':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        epochs = f"{r['epochs']:g}"
        print(f"{r['label']:<31}{r['dtype']:<9}{r['seconds']:>9.3f}{ratio(r['seconds'], reference64):>14}"
              f"{ratio(r['seconds'], reference32):>14}{epochs:>8}{100 * r['accuracy']:>9.1f}%")
    print()
    print("s/epoch: median seconds per pass over 50,000 images; vs nndl: time / nndl's time (above 1 = slower);")
    print("epochs: epochs timed (test acc is measured after them); each row trains a fresh network.")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of nndl to time (default 3; median reported)")
    parser.add_argument("--other-epochs", type=int, default=1,
                        help="epochs of the book code, scikit-learn and PyTorch (default 1)")
    parser.add_argument("--data", default=None, help="directory of the MNIST files (default: nndl's search)")
    parser.add_argument("--only", default=",".join(IMPLEMENTATIONS),
                        help="comma-separated subset of " + ",".join(IMPLEMENTATIONS))
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both",
                        help="precision(s) of nndl to time (default both)")
    parser.add_argument("--quick", action="store_true",
                        help=f"time the book code on {QUICK_FRACTION:g} of an epoch and scale up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sklearn-eta", type=float, default=0.5,
                        help="scikit-learn learning rate (it uses a different cost; default 0.5)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads for the book code and scikit-learn (default 1, as nndl uses)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(IMPLEMENTATIONS))
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; choose from {', '.join(IMPLEMENTATIONS)}")
    if min(args.epochs, args.other_epochs, args.torch_threads, args.blas_threads) < 1:
        parser.error("--epochs, --other-epochs, --torch-threads and --blas-threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    context = machine_context()
    print_context(context)

    data = load_mnist(args.data)
    rows, notes = [], []

    def record(name, label, dtype, result):
        rows.append(dict(name=name, label=label, dtype=dtype, **result))
        print(f"  {label} {dtype}: {result['seconds']:.3f} s/epoch, test accuracy {100 * result['accuracy']:.1f}%",
              file=sys.stderr, flush=True)

    if "nndl" in args.only:
        dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
        for dtype in dtypes:
            record("nndl", "nndl", dtype, bench_nndl(data, args.epochs, np.dtype(dtype), args.seed))
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        if "book" in args.only:
            record("book", "book per-example (network.py)", "float64",
                   bench_book(data, args.other_epochs, args.seed, args.quick))
            if args.quick:
                notes.append(f"book: timed on {QUICK_FRACTION:g} of each epoch and scaled up (--quick).")
        if "sklearn" in args.only:
            record("sklearn", "scikit-learn MLPClassifier", "float64",
                   bench_sklearn(data, args.other_epochs, args.seed, args.sklearn_eta))
            notes.append(f"scikit-learn: softmax output with log-loss (cross-entropy), not the quadratic cost, "
                         f"Glorot initial weights and eta {args.sklearn_eta:g}: an approximate equivalent.")
    if "torch" in args.only:
        try:
            import torch  # noqa: F401
        except ImportError as error:
            notes.append(f"PyTorch skipped: cannot import torch ({error}).")
        else:
            record("torch", "PyTorch eager", "float32",
                   bench_torch(data, args.other_epochs, args.seed, args.torch_threads))
            notes.append(f"PyTorch: torch.set_num_threads({args.torch_threads}).")
    if {"book", "sklearn"} & set(args.only):
        notes.append(f"book and scikit-learn ran with {args.blas_threads} BLAS thread(s); nndl uses 1.")

    print(file=sys.stderr, flush=True)
    print_table(rows)
    for note in notes:
        print("note:", note)

    if args.json:
        result = dict(context=context, config=dict(sizes=SIZES, mini_batch_size=MINI_BATCH, eta=ETA,
                                                   sklearn_eta=args.sklearn_eta, seed=args.seed,
                                                   quick=args.quick, torch_threads=args.torch_threads,
                                                   blas_threads=args.blas_threads),
                      results=rows, notes=notes)
        reference = {r["dtype"]: r["seconds"] for r in rows if r["name"] == "nndl"}
        for r in rows:
            r["vs_nndl_float64"] = r["seconds"] / reference["float64"] if "float64" in reference else None
            r["vs_nndl_float32"] = r["seconds"] / reference["float32"] if "float32" in reference else None
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
