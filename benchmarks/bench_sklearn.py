"""A grid search with ``nndl.sklearn.NetworkClassifier`` beside the same search with scikit-learn's ``MLPClassifier``.

Both search eta in {0.1, 0.5, 1.0} x lambda in {0, 1} by 3-fold
cross-validation on scikit-learn's 8x8 digits (1,797 images, features
scaled to [0, 1]), training a [64, 30, 10] network with sigmoid hidden
neurons for 30 epochs of mini-batches of 10, one process (``n_jobs=1``).

The settings are made comparable, not identical:

- nndl: sigmoid outputs with the cross-entropy cost (the book's network2);
  MLPClassifier: a softmax output with the log-loss. Both give the output
  error a - y, so the same learning rate means the same step size.
- MLPClassifier: plain SGD (``momentum=0``), constant learning rate, no
  early stopping, ``learning_rate_init`` = eta.
- L2: nndl's step has eta * lambda / n * w with n the training examples;
  MLPClassifier's has learning_rate * alpha / batch_size * w, so
  alpha = lambda * batch_size / n, with n the size of a training fold.

Run from the repository root::

    python benchmarks/bench_sklearn.py
    python benchmarks/bench_sklearn.py --epochs 10 --seed 1

It prints the best parameters, the best mean CV accuracy and the seconds of
each search, all from one run. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier

from nndl.sklearn import NetworkClassifier

ETAS = (0.1, 0.5, 1.0)
LMBDAS = (0.0, 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=30)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = load_digits(return_X_y=True)
    x = x / 16.0                                          # 0..16 -> [0, 1]
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    n_fold = len(y) - len(y) // args.folds                # training examples per fold (about)
    batch = 10

    searches = {
        "nndl NetworkClassifier": GridSearchCV(
            NetworkClassifier(hidden_layer_sizes=(args.hidden,), epochs=args.epochs, mini_batch_size=batch,
                              random_state=args.seed),
            {"eta": list(ETAS), "lmbda": list(LMBDAS)}, cv=cv, n_jobs=1),
        "sklearn MLPClassifier": GridSearchCV(
            MLPClassifier(solver="sgd", hidden_layer_sizes=(args.hidden,), activation="logistic",
                          batch_size=batch, max_iter=args.epochs, momentum=0.0, nesterovs_momentum=False,
                          learning_rate="constant", early_stopping=False, n_iter_no_change=args.epochs + 1,
                          tol=0.0, random_state=args.seed),
            {"learning_rate_init": list(ETAS), "alpha": [lmbda * batch / n_fold for lmbda in LMBDAS]},
            cv=cv, n_jobs=1),
    }
    print(f"load_digits: {x.shape[0]} x {x.shape[1]}, {args.folds}-fold CV, hidden {args.hidden}, "
          f"{args.epochs} epochs, mini-batch {batch}, numpy {np.__version__}")
    print(f"grid: eta {list(ETAS)} x lambda {list(LMBDAS)} (MLP alpha = lambda * {batch} / {n_fold})")
    print(f"{'estimator':<24} {'best params':<44} {'CV accuracy':>11} {'seconds':>8}")
    for name, search in searches.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)   # MLP: max_iter reached, as intended
            search.fit(x, y)
        seconds = time.perf_counter() - start
        best = ", ".join(f"{k}={v:.4g}" for k, v in sorted(search.best_params_.items()))
        print(f"{name:<24} {best:<44} {search.best_score_:>11.4f} {seconds:>8.1f}")
        scores = search.cv_results_["mean_test_score"]
        params = search.cv_results_["params"]
        print("    " + "; ".join(", ".join(f"{v:.4g}" for v in p.values()) + f": {s:.4f}"
                                for p, s in zip(params, scores)))


if __name__ == "__main__":
    main()
