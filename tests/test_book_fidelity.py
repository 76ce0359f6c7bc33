"""The book's classes (nndl.network, nndl.network2) against the book's formulas, on tasks that are not MNIST.

The oracle is a small per-example implementation of chapter 2's
backpropagation (BP1-BP4) and of the book's update rules, written here on
column vectors, one example at a time, with no nndl code:

    network   w -> w - (eta/m) sum_x dC_x/dw,                  b -> b - (eta/m) sum_x dC_x/db
    network2  w -> (1 - eta lmbda/n) w - (eta/m) sum_x dC_x/dw, b -> b - (eta/m) sum_x dC_x/db

The tasks have targets that are not one-hot -- XOR with one sigmoid output,
soft targets (0.1 / 0.9), a regression-like curve, two soft outputs -- so
any reduction of y to a label (argmax) and back to one-hot shows up as a
large difference.

Orders: the engine shuffles with its own seeded stream, so the tests never
rely on its order. They compare ``update_mini_batch`` on fixed mini-batches;
full-batch ``SGD`` (one mini-batch per epoch, so the order does not matter);
and one-epoch ``SGD`` calls with several mini-batches, where exactly one of
the possible orders of the examples must reproduce the network's weights.
"""

import copy
import itertools

import numpy as np
import pytest

from nndl import bookcompat, network, network2
from nndl.errors import InputError

TOL = 1e-12


# --- the oracle: the book's equations, one example at a time -------------------------------

def sigma(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigma_prime(z):
    return sigma(z) * (1.0 - sigma(z))


def reference_gradient(weights, biases, x, y, cost):
    """dC_x/db^l and dC_x/dw^l for one example, columns: BP1-BP4.

    C_x = ||a^L - y||^2 / 2 ("quadratic") or -sum [y ln a + (1 - y) ln(1 - a)]
    ("cross-entropy", whose output error with a sigmoid output is a^L - y).
    """
    L = len(weights)
    activations, zs = [x], []
    for w, b in zip(weights, biases):                        # a^l = sigma(w^l a^{l-1} + b^l)
        zs.append(w @ activations[-1] + b)
        activations.append(sigma(zs[-1]))
    delta = [None] * L
    if cost == "quadratic":
        delta[-1] = (activations[-1] - y) * sigma_prime(zs[-1])          # BP1
    else:
        delta[-1] = activations[-1] - y                                  # BP1, cross-entropy + sigmoid
    for l in range(L - 2, -1, -1):
        delta[l] = (weights[l + 1].T @ delta[l + 1]) * sigma_prime(zs[l])  # BP2
    nabla_b = list(delta)                                                # BP3
    nabla_w = [delta[l] @ activations[l].T for l in range(L)]            # BP4
    return nabla_b, nabla_w


def reference_step(weights, biases, mini_batch, eta, cost, lmbda=0.0, n=1):
    """One gradient-descent step on a mini-batch (a list of (x column, y column)): new (weights, biases)."""
    m = len(mini_batch)
    sum_b = [np.zeros_like(b) for b in biases]
    sum_w = [np.zeros_like(w) for w in weights]
    for x, y in mini_batch:
        nabla_b, nabla_w = reference_gradient(weights, biases, x, y, cost)
        sum_b = [s + g for s, g in zip(sum_b, nabla_b)]
        sum_w = [s + g for s, g in zip(sum_w, nabla_w)]
    new_weights = [(1.0 - eta * lmbda / n) * w - (eta / m) * g for w, g in zip(weights, sum_w)]
    new_biases = [b - (eta / m) * g for b, g in zip(biases, sum_b)]
    return new_weights, new_biases


def reference_epoch(weights, biases, ordered, mini_batch_size, eta, cost, lmbda=0.0):
    """One epoch over the examples in the given order, in mini-batches (the last may be smaller)."""
    n = len(ordered)
    for k in range(0, n, mini_batch_size):
        weights, biases = reference_step(weights, biases, ordered[k:k + mini_batch_size], eta, cost, lmbda, n)
    return weights, biases


def distance(net, weights, biases):
    """The largest absolute difference between the network's parameters and the reference's."""
    return max(max(float(np.max(np.abs(a - b))) for a, b in zip(net.weights, weights)),
               max(float(np.max(np.abs(a - b))) for a, b in zip(net.biases, biases)))


def parameters(net):
    return [w.copy() for w in net.weights], [b.copy() for b in net.biases]


# --- the tasks ------------------------------------------------------------------------------

def column(*values):
    return np.array(values, dtype=np.float64).reshape(-1, 1)


XOR = [(column(0, 0), column(0)), (column(0, 1), column(1)), (column(1, 0), column(1)), (column(1, 1), column(0))]
XOR_SOFT = [(x, column(0.1 + 0.8 * y[0, 0])) for x, y in XOR]                  # 0.1 / 0.9
XOR_FIVE = XOR_SOFT + [(column(0.5, 0.5), column(0.3))]                         # 5 examples: batches 2, 2, 1
CURVE = [(column(t), column(0.5 + 0.4 * np.sin(3 * t))) for t in np.linspace(-1, 1, 7)]   # [1, 4, 1]
TWO_SOFT = [(column(*x[:, 0]), column(0.3 + 0.4 * y[0, 0], 0.7 - 0.4 * y[0, 0])) for x, y in XOR]  # [2, 3, 2]

#: (name, maker, data, cost, lmbda, eta): the book's classes on the tasks above.
CASES = [
    ("network xor", lambda: network.Network([2, 3, 1], seed=3), XOR, "quadratic", 0.0, 3.0),
    ("network xor soft", lambda: network.Network([2, 3, 1], seed=4), XOR_SOFT, "quadratic", 0.0, 2.0),
    ("network curve", lambda: network.Network([1, 4, 1], seed=5), CURVE, "quadratic", 0.0, 1.5),
    ("network two soft outputs", lambda: network.Network([2, 3, 2], seed=6), TWO_SOFT, "quadratic", 0.0, 3.0),
    ("network2 cross-entropy xor soft", lambda: network2.Network([2, 3, 1], seed=7), XOR_SOFT,
     "cross-entropy", 0.0, 0.5),
    ("network2 cross-entropy l2 curve", lambda: network2.Network([1, 4, 1], seed=8), CURVE, "cross-entropy", 0.7,
     0.8),
    ("network2 quadratic l2 xor", lambda: network2.Network([2, 3, 1], cost=network2.QuadraticCost, seed=9), XOR,
     "quadratic", 0.3, 2.0),
    ("network2 cross-entropy l2 two soft outputs", lambda: network2.Network([2, 5, 3, 2], seed=10), TWO_SOFT,
     "cross-entropy", 0.2, 0.6),
]
IDS = [case[0] for case in CASES]


def sgd(net, data, epochs, mini_batch_size, eta, lmbda):
    """The book's SGD call for either module."""
    if isinstance(net, network.Network):
        assert lmbda == 0.0
        return net.SGD(data, epochs, mini_batch_size, eta)
    return net.SGD(data, epochs, mini_batch_size, eta, lmbda=lmbda)


def update(net, mini_batch, eta, lmbda, n):
    if isinstance(net, network.Network):
        return net.update_mini_batch(mini_batch, eta)
    return net.update_mini_batch(mini_batch, eta, lmbda, n)


# --- the oracle can fail ---------------------------------------------------------------------

def test_the_oracle_sees_targets_reduced_to_labels():
    """Training on argmax(y) turned back into one-hot gives weights far from the book's: the tests below
    would catch it."""
    net = network2.Network([2, 3, 2], seed=6)
    weights, biases = parameters(net)
    hardened = [(x, np.eye(2)[:, [int(np.argmax(y))]]) for x, y in TWO_SOFT]
    right = reference_step(weights, biases, TWO_SOFT, 0.5, "cross-entropy")
    wrong = reference_step(weights, biases, hardened, 0.5, "cross-entropy")
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(right[0] + right[1], wrong[0] + wrong[1])) > 1e-4


def test_the_oracle_agrees_with_finite_differences():
    net = network.Network([2, 3, 2], seed=11)
    weights, biases = parameters(net)
    x, y = TWO_SOFT[1]

    def cost(ws, bs):
        a = x
        for w, b in zip(ws, bs):
            a = sigma(w @ a + b)
        return 0.5 * float(np.sum((a - y) ** 2))

    nabla_b, nabla_w = reference_gradient(weights, biases, x, y, "quadratic")
    h = 1e-6
    for l in range(2):
        for index in np.ndindex(weights[l].shape):
            plus = [w.copy() for w in weights]
            minus = [w.copy() for w in weights]
            plus[l][index] += h
            minus[l][index] -= h
            assert (cost(plus, biases) - cost(minus, biases)) / (2 * h) == pytest.approx(nabla_w[l][index], abs=1e-8)


# --- backprop and update_mini_batch: no shuffling involved -------------------------------------

@pytest.mark.parametrize("name, make, data, cost, lmbda, eta", CASES, ids=IDS)
def test_backprop_of_one_example_is_the_books(name, make, data, cost, lmbda, eta):
    net = make()
    weights, biases = parameters(net)
    for x, y in data:
        nabla_b, nabla_w = net.backprop(x, y)
        expected_b, expected_w = reference_gradient(weights, biases, x, y, cost)
        for got, expected in zip(nabla_b + nabla_w, expected_b + expected_w):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("name, make, data, cost, lmbda, eta", CASES, ids=IDS)
def test_update_mini_batch_is_the_books_rule(name, make, data, cost, lmbda, eta):
    net = make()
    weights, biases = parameters(net)
    n = 50
    # three steps on fixed mini-batches of different sizes, each from where the last left off
    for batch in (data[:2], data, data[-1:]):
        weights, biases = reference_step(weights, biases, batch, eta, cost, lmbda, n)
        update(net, batch, eta, lmbda, n)
        assert distance(net, weights, biases) < TOL


# --- SGD: full-batch epochs, where the order cannot matter ----------------------------------------
# These need nndl.training.train to use the desired outputs as given (not argmax -> one-hot).

@pytest.mark.parametrize("name, make, data, cost, lmbda, eta", CASES, ids=IDS)
def test_full_batch_sgd_is_the_books(name, make, data, cost, lmbda, eta, capsys):
    net = make()
    weights, biases = parameters(net)
    sgd(net, data, 6, len(data), eta, lmbda)
    for _ in range(6):
        weights, biases = reference_step(weights, biases, data, eta, cost, lmbda, len(data))
    assert distance(net, weights, biases) < TOL
    assert capsys.readouterr().out.count("complete") == 6


def test_a_mini_batch_larger_than_the_data_is_one_full_batch(capsys):
    net = network2.Network([2, 3, 1], seed=12)
    weights, biases = parameters(net)
    net.SGD(XOR_SOFT, 3, 100, 0.5, lmbda=0.1)
    for _ in range(3):
        weights, biases = reference_step(weights, biases, XOR_SOFT, 0.5, "cross-entropy", 0.1, 4)
    assert distance(net, weights, biases) < TOL


# --- SGD with several mini-batches: one of the possible orders reproduces each epoch ---------------

def orderings(data, mini_batch_size):
    """Every distinct way an epoch can cut the shuffled data into mini-batches (order within a batch
    only changes rounding)."""
    seen = {}
    for order in itertools.permutations(range(len(data))):
        key = tuple(frozenset(order[k:k + mini_batch_size]) for k in range(0, len(data), mini_batch_size))
        seen.setdefault(key, order)
    return [[data[i] for i in order] for order in seen.values()]


@pytest.mark.parametrize("module", ["network", "network2"])
def test_each_epoch_of_sgd_is_the_book_epoch_for_one_order(module, capsys):
    if module == "network":
        net, cost, lmbda, eta = network.Network([2, 3, 1], seed=13), "quadratic", 0.0, 3.0
    else:
        net, cost, lmbda, eta = network2.Network([2, 4, 1], seed=14), "cross-entropy", 0.4, 0.9
    candidates = orderings(XOR_FIVE, 2)
    assert len(candidates) == 30                                  # 5! / (2! 2! 1!)
    weights, biases = parameters(net)
    for epoch in range(4):
        sgd(net, XOR_FIVE, 1, 2, eta, lmbda)                      # one epoch: mini-batches of 2, 2 and 1
        outcomes = [reference_epoch(weights, biases, ordered, 2, eta, cost, lmbda) for ordered in candidates]
        distances = sorted((distance(net, *outcome), i) for i, outcome in enumerate(outcomes))
        assert distances[0][0] < TOL, f"epoch {epoch}: no order of the examples gives the network's weights"
        assert distances[1][0] > 1e-6                             # the orders are told apart
        weights, biases = outcomes[distances[0][1]]


def test_sgd_learns_xor_with_one_sigmoid_output(capsys):
    net = network2.Network([2, 4, 1], seed=1)
    net.SGD(XOR, 3000, 4, 2.0)
    outputs = net.feedforward(np.hstack([x for x, _ in XOR]))    # (1, 4): the four inputs as columns
    np.testing.assert_allclose(outputs, [[0, 1, 1, 0]], atol=0.1)


def test_one_output_network_prints_only_the_books_lines(capsys):
    net = network.Network([2, 3, 1], seed=2)
    net.SGD(XOR, 2, 2, 1.0, test_data=XOR)
    assert capsys.readouterr().out == "Epoch 0: 4 / 4\nEpoch 1: 4 / 4\n"   # argmax of one output is always 0
    net = network2.Network([2, 3, 1], seed=2)
    net.SGD(XOR, 1, 2, 1.0, evaluation_data=XOR, monitor_evaluation_accuracy=True)
    assert capsys.readouterr().out == "Epoch 0 training complete\nAccuracy on evaluation data: 4 / 4\n\n"


def test_inputs_need_not_be_pixels(capsys):
    """Small whole-number inputs are not mistaken for unscaled 0-255 pixels."""
    net = network.Network([1, 4, 1], seed=0)
    data = [(np.array([[float(t)]]), np.array([[0.5]])) for t in range(5)]      # inputs 0, 1, 2, 3, 4
    weights, biases = parameters(net)
    net.update_mini_batch(data, 1.0)
    assert distance(net, *reference_step(weights, biases, data, 1.0, "quadratic")) < TOL
    net.SGD(data, 1, 5, 1.0)


def test_sgd_leaves_the_callers_order_alone(capsys):
    data = list(XOR_FIVE)
    network.Network([2, 3, 1], seed=0).SGD(data, 2, 2, 1.0)
    assert all(a is b for a, b in zip(data, XOR_FIVE))


# --- monitoring with soft targets, the book's formulas ----------------------------------------------

def test_network2_monitors_soft_targets_with_the_books_formulas(capsys):
    net = network2.Network([2, 3, 1], seed=15)
    lmbda = 0.5
    result = net.SGD(XOR_SOFT, 2, 4, 0.5, lmbda=lmbda, monitor_training_cost=True)
    a = [sigma(net.weights[1] @ sigma(net.weights[0] @ x + net.biases[0]) + net.biases[1]) for x, _ in XOR_SOFT]
    ce = sum(float(np.sum(-y * np.log(ai) - (1 - y) * np.log(1 - ai))) for ai, (_, y) in zip(a, XOR_SOFT)) / 4
    ce += 0.5 * (lmbda / 4) * sum(float(np.sum(w ** 2)) for w in net.weights)
    assert result[2][-1] == pytest.approx(ce, rel=1e-12)
    assert f"Cost on training data: {result[2][-1]}" in capsys.readouterr().out


# --- from_book_pairs ----------------------------------------------------------------------------------

def test_from_book_pairs_keeps_labels_as_labels_and_vectors_as_given():
    pairs = [(np.arange(3.0).reshape(3, 1), 1), (np.ones((3, 1)), np.int64(0))]
    x, y = bookcompat.from_book_pairs(pairs, 3, 2)
    assert x.shape == (2, 3) and y.dtype == np.int64 and list(y) == [1, 0]
    soft = [(np.zeros((3, 1)), column(0.2, 0.8)), (np.ones(3), np.array([0.6, 0.4]))]
    x, y = bookcompat.from_book_pairs(soft, 3, 2)
    np.testing.assert_array_equal(y, [[0.2, 0.8], [0.6, 0.4]])
    # one output neuron: a number is a desired output, not a label
    x, y = bookcompat.from_book_pairs([(np.zeros(2), 1), (np.ones(2), 0.25), (np.ones(2), column(0.5))], 2, 1)
    assert y.shape == (3, 1) and y.dtype == np.float64 and list(y[:, 0]) == [1.0, 0.25, 0.5]


@pytest.mark.parametrize("pairs, message", [
    ([], "empty"),
    ([(np.zeros((3, 1)), 0), (np.zeros((3, 1)), column(0, 1))], "mixes integer labels"),
    ([(np.zeros((3, 1)), 2)], r"label 2 is not in 0\.\.1"),
    ([(np.zeros((3, 1)), -1)], "not in"),
    ([(np.zeros((3, 1)), column(0, 1, 0))], r"\(2, 1\) column"),
    ([(np.zeros((3, 1)), np.zeros((1, 2)))], r"\(2, 1\) column"),
    ([(np.zeros((3, 1)), 0.5)], "integer label"),
    ([(np.zeros((4, 1)), 0)], "input layer has 3 neurons"),
    ([(np.zeros((3, 1)),)], r"\[0\] must be a pair"),
    ([np.zeros(3)], "must be a pair"),
    ([(np.array(["a", "b", "c"]), 0)], "column of numbers"),
    ([([[1.0], [2.0, 3.0]], 0)], "must be an array of numbers"),
    ([(np.zeros(3), [[1.0], [2.0, 3.0]])], "must be an array of numbers"),
    (5, "list of"),
])
def test_from_book_pairs_rejects_what_does_not_fit(pairs, message):
    with pytest.raises(InputError, match=message):
        bookcompat.from_book_pairs(pairs, 3, 2, "training_data")


def test_the_book_helpers_are_defined_once():
    assert network.sigmoid is network2.sigmoid is bookcompat.sigmoid
    assert network.sigmoid_prime is network2.sigmoid_prime is bookcompat.sigmoid_prime
    from nndl import mnist_loader
    assert mnist_loader.vectorized_result is network2.vectorized_result is bookcompat.vectorized_result


def test_deepcopy_of_the_parameter_lists_is_detached():
    net = network.Network([2, 3, 1], seed=0)
    saved = copy.deepcopy(net.weights)
    assert isinstance(saved, list)
    net.weights[0][:] = 0.0
    assert np.any(saved[0] != 0.0)
