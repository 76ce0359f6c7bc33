"""Backpropagation against its oracles: finite differences, per-example sums, a worked example, PyTorch."""

import itertools

import numpy as np
import pytest

from nndl.engine.backprop import Backprop
from nndl.engine.feedforward import FeedforwardNetwork, one_hot
from nndl.engine.gradcheck import check_gradients, numerical_gradient
from nndl.engine.regularizers import L1, L2

# (output activation, cost) pairs that are allowed
OUTPUT_COSTS = [
    ("sigmoid", "quadratic"), ("sigmoid", "cross-entropy"), ("sigmoid", "log-likelihood"),
    ("softmax", "log-likelihood"), ("softmax", "cross-entropy"), ("softmax", "quadratic"),
    ("tanh", "quadratic"), ("relu", "quadratic"), ("linear", "quadratic"),
]
HIDDEN = ["sigmoid", "tanh", "relu", "linear"]
REGULARIZERS = [None, L2(0.7), L1(0.3)]


def small_problem(seed=0, m=5, sizes=(4, 6, 5, 3)):
    rng = np.random.default_rng(seed)
    x = rng.random((m, sizes[0]))
    labels = rng.integers(0, sizes[-1], size=m)
    return x, labels


@pytest.mark.parametrize("hidden,output_cost,regularizer",
                         list(itertools.product(HIDDEN, OUTPUT_COSTS, REGULARIZERS)))
def test_backprop_matches_finite_differences(hidden, output_cost, regularizer):
    output, cost = output_cost
    sizes = (4, 6, 5, 3)
    net = FeedforwardNetwork(sizes, activations=[hidden, hidden, output], cost=cost, seed=3)
    x, labels = small_problem(seed=1, sizes=sizes)
    if hidden == "relu":
        # keep z away from the kink at 0, where the derivative jumps
        for p in net.params:
            p[:, -1] += 0.3
    result = check_gradients(net, x, labels, regularizer=regularizer, n=20)
    assert result.max_relative_error < 1e-6, (hidden, output, cost, regularizer, result.max_relative_error)


def test_backprop_with_fixed_dropout_mask_matches_finite_differences():
    sizes = (4, 7, 6, 3)
    net = FeedforwardNetwork(sizes, activations=["sigmoid", "tanh", "softmax"], cost="log-likelihood", seed=0)
    x, labels = small_problem(seed=2, sizes=sizes)
    rng = np.random.default_rng(5)
    p = 0.4
    masks = [None] + [(rng.random((5, n)) >= p) / (1 - p) for n in sizes[1:-1]] + [None]
    assert any((mk == 0).any() for mk in masks[1:-1])
    result = check_gradients(net, x, labels, regularizer=L2(0.5), n=50, masks=masks)
    assert result.max_relative_error < 1e-6


def test_dropped_neurons_get_no_gradient():
    sizes = (4, 5, 3)
    net = FeedforwardNetwork(sizes, seed=0)
    x, labels = small_problem(seed=0, sizes=sizes)
    work = Backprop(net, 5)
    masks = [None, np.ones((5, 5)), None]
    masks[1][:, 2] = 0.0  # neuron 2 of the hidden layer dropped for every example
    work.masks = masks
    work.x[...] = x
    work.forward()
    work.backward(net.targets(labels))
    g1, g2 = work.gradient(1), work.gradient(2)
    assert np.all(g1[2] == 0.0)        # its incoming weights and bias
    assert np.all(g2[:, 2] == 0.0)     # its outgoing weights


def test_matrix_backprop_equals_sum_of_per_example_gradients():
    sizes = (6, 8, 4)
    net = FeedforwardNetwork(sizes, activations="sigmoid", cost="quadratic", init="large", seed=4)
    x, labels = small_problem(seed=4, m=9, sizes=sizes)
    nabla_w, nabla_b = net.backprop(x, labels)
    sum_w = [np.zeros_like(w) for w in net.weights]
    sum_b = [np.zeros_like(b) for b in net.biases]
    for i in range(x.shape[0]):
        w_i, b_i = net.backprop(x[i:i + 1], labels[i:i + 1])
        for l in range(len(sum_w)):
            sum_w[l] += w_i[l]
            sum_b[l] += b_i[l]
    for a, b in zip(nabla_w + nabla_b, sum_w + sum_b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_worked_example_one_sigmoid_neuron():
    """One sigmoid neuron, quadratic cost, one step of gradient descent, by hand.

    w = (0.5, -0.5), b = 0, x = (1, 1), y = 1:
      z = 0.5*1 - 0.5*1 + 0 = 0;  a = sigma(0) = 0.5
      C = (a - y)^2 / 2 = 0.125
      delta = (a - y) * sigma'(z) = (-0.5) * (0.5 * 0.5) = -0.125        (BP1)
      dC/dw = delta * x = (-0.125, -0.125);  dC/db = delta = -0.125     (BP4, BP3)
    With eta = 2 and m = 1:
      w' = w - 2 * dC/dw = (0.75, -0.25);  b' = 0 - 2 * (-0.125) = 0.25
      z' = 0.75 - 0.25 + 0.25 = 0.75, so the output moves towards y.
    """
    from nndl.training import train
    net = FeedforwardNetwork([2, 1], activations="sigmoid", cost="quadratic")
    net.set_parameters([np.array([[0.5, -0.5]])], [np.array([0.0])])
    x, y = np.array([[1.0, 1.0]]), np.array([[1.0]])
    assert net.cost.fn(net.feedforward(x), y) == pytest.approx(0.125)
    nabla_w, nabla_b = net.backprop(x, y)
    np.testing.assert_allclose(nabla_w[0], [[-0.125, -0.125]])
    np.testing.assert_allclose(nabla_b[0], [-0.125])
    # train() with one example and one epoch is exactly one step
    train(net, (x, y), epochs=1, mini_batch_size=1, eta=2.0, seed=0)
    np.testing.assert_allclose(net.weights[0], [[0.75, -0.25]])
    np.testing.assert_allclose(net.biases[0], [0.25])
    assert net.feedforward(x)[0, 0] == pytest.approx(1 / (1 + np.exp(-0.75)))


def test_numerical_gradient_of_a_known_function():
    p = [np.array([1.0, -2.0, 3.0])]
    g = numerical_gradient(lambda: float(np.sum(p[0] ** 3)), p)
    np.testing.assert_allclose(g[0], 3 * p[0] ** 2, rtol=1e-8)
    np.testing.assert_array_equal(p[0], [1.0, -2.0, 3.0])  # restored


def test_gradient_check_detects_a_wrong_backward_pass(monkeypatch):
    """The checker must be able to fail: break sigma' and it notices."""
    from nndl.engine import activations
    net = FeedforwardNetwork((4, 5, 3), cost="quadratic", seed=0)
    x, labels = small_problem(sizes=(4, 5, 3))
    monkeypatch.setattr(activations.Sigmoid, "prime", lambda self, z, a, out=None: np.multiply(a, 1.0, out=out))
    assert check_gradients(net, x, labels).max_relative_error > 1e-3


# --- PyTorch as a reference -------------------------------------------------

TORCH_ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "linear": None, "softmax": "softmax"}


@pytest.mark.parametrize("hidden,output,cost", [
    ("sigmoid", "sigmoid", "quadratic"), ("tanh", "sigmoid", "cross-entropy"),
    ("relu", "softmax", "log-likelihood"), ("linear", "softmax", "cross-entropy"),
])
def test_forward_and_gradients_match_pytorch(hidden, output, cost):
    import torch  # in the test extra: this reference always runs under the README's test command
    sizes = (5, 7, 4)
    net = FeedforwardNetwork(sizes, activations=[hidden, output], cost=cost, seed=11)
    x, labels = small_problem(seed=3, m=6, sizes=sizes)
    y = one_hot(labels, 4)

    params = [torch.tensor(p, requires_grad=True) for p in net.params]
    a = torch.tensor(x)
    for p, name in zip(params, [hidden, output]):
        z = a @ p[:, :-1].T + p[:, -1]
        fn = TORCH_ACTIVATIONS[name]
        a = z if fn is None else (torch.softmax(z, dim=1) if fn == "softmax" else getattr(torch, fn)(z))
    yt = torch.tensor(y)
    if cost == "quadratic":
        c = 0.5 * ((a - yt) ** 2).sum()
    elif cost == "cross-entropy":
        c = -(yt * torch.log(a) + (1 - yt) * torch.log(1 - a)).sum()
    else:
        c = -(yt * torch.log(a)).sum()
    c.backward()

    np.testing.assert_allclose(net.feedforward(x), a.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert net.cost.fn(net.feedforward(x), y) == pytest.approx(c.item(), rel=1e-10)
    nabla_w, nabla_b = net.backprop(x, labels)
    for l, p in enumerate(params):
        np.testing.assert_allclose(nabla_w[l], p.grad[:, :-1].numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(nabla_b[l], p.grad[:, -1].numpy(), rtol=1e-9, atol=1e-12)
