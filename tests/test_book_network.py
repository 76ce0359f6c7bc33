"""The book's chapter 1 interface: nndl.network and nndl.mnist_loader."""

import numpy as np
import pytest

from conftest import blobs, real_mnist_dir
from nndl import mnist_loader, network


def book_format(x, labels, k, one_hot):
    pairs = []
    for xi, yi in zip(x, labels):
        y = np.zeros((k, 1))
        y[yi] = 1.0
        pairs.append((xi.reshape(-1, 1), y if one_hot else int(yi)))
    return pairs


@pytest.fixture(scope="module")
def book_data():
    x, labels = blobs(n=500, n_in=12, k=4, seed=2)
    return book_format(x[:400], labels[:400], 4, True), book_format(x[400:], labels[400:], 4, False)


def test_sgd_prints_the_books_lines_and_learns(book_data, capsys):
    training_data, test_data = book_data
    net = network.Network([12, 20, 4], seed=0)
    net.SGD(training_data, 5, 10, 3.0, test_data=test_data)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    for j, line in enumerate(lines):
        assert line.startswith(f"Epoch {j}: ") and line.endswith(" / 100")
    assert int(lines[-1].split()[2]) > 85
    assert net.evaluate(test_data) == int(lines[-1].split()[2])


def test_sgd_without_test_data_says_complete(book_data, capsys):
    net = network.Network([12, 5, 4], seed=0)
    net.SGD(book_data[0], 2, 10, 3.0)
    assert capsys.readouterr().out.split("\n")[:2] == ["Epoch 0 complete", "Epoch 1 complete"]


def test_shapes_and_initialisation_as_in_the_book():
    net = network.Network([784, 30, 10], seed=0)
    assert net.num_layers == 3 and net.sizes == [784, 30, 10]
    assert [b.shape for b in net.biases] == [(30, 1), (10, 1)]
    assert [w.shape for w in net.weights] == [(30, 784), (10, 30)]
    assert np.std(net.weights[0]) == pytest.approx(1.0, abs=0.02)    # N(0, 1), chapter 1
    out = net.feedforward(np.zeros((784, 1)))
    assert out.shape == (10, 1) and np.all((out > 0) & (out < 1))


def test_global_seed_makes_runs_repeatable():
    np.random.seed(12)
    a = network.Network([5, 4, 3]).weights[0].copy()
    np.random.seed(12)
    b = network.Network([5, 4, 3]).weights[0].copy()
    np.testing.assert_array_equal(a, b)


def test_backprop_update_and_cost_derivative(book_data):
    net = network.Network([12, 6, 4], seed=1)
    x, y = book_data[0][0]
    nabla_b, nabla_w = net.backprop(x, y)
    assert [b.shape for b in nabla_b] == [(6, 1), (4, 1)]
    assert [w.shape for w in nabla_w] == [(6, 12), (4, 6)]
    # the book's update: w -> w - (eta/m) sum of per-example gradients
    batch = book_data[0][:5]
    expected_w = [w.copy() for w in net.weights]
    expected_b = [b.copy() for b in net.biases]
    for xi, yi in batch:
        nb, nw = net.backprop(xi, yi)
        for l in range(2):
            expected_w[l] -= (3.0 / 5) * nw[l]
            expected_b[l] -= (3.0 / 5) * nb[l]
    net.update_mini_batch(batch, 3.0)
    for l in range(2):
        np.testing.assert_allclose(net.weights[l], expected_w[l], rtol=1e-12)
        np.testing.assert_allclose(net.biases[l], expected_b[l], rtol=1e-12)
    a = np.array([[0.2], [0.9]])
    np.testing.assert_allclose(net.cost_derivative(a, np.array([[0.0], [1.0]])), [[0.2], [-0.1]])


def test_setting_weights_and_biases(book_data):
    net = network.Network([12, 6, 4], seed=1)
    net.biases = [np.zeros((6, 1)), np.ones((4, 1))]
    net.weights = [np.zeros((6, 12)), np.zeros((4, 6))]
    np.testing.assert_allclose(net.feedforward(book_data[0][0][0]), np.full((4, 1), 1 / (1 + np.exp(-1))))
    with pytest.raises(ValueError, match=r"expected weights \(6, 12\)"):
        net.weights = [np.zeros((6, 11)), np.zeros((4, 6))]


def test_data_that_does_not_fit_gives_a_clear_error(book_data):
    net = network.Network([700, 30, 4], seed=0)
    with pytest.raises(ValueError, match="700 neurons"):
        net.SGD(book_data[0], 1, 10, 3.0)


@pytest.mark.mnist
def test_load_data_wrapper_formats(mnist_data):
    training_data, validation_data, test_data = mnist_loader.load_data_wrapper(real_mnist_dir())
    assert (len(training_data), len(validation_data), len(test_data)) == (50000, 10000, 10000)
    x, y = training_data[0]
    assert x.shape == (784, 1) and y.shape == (10, 1) and y[5, 0] == 1.0 and y.sum() == 1.0
    x, label = test_data[0]
    assert x.shape == (784, 1) and label == 7 and isinstance(label, int)
    tr, va, te = mnist_loader.load_data(real_mnist_dir())
    assert tr[0].shape == (50000, 784) and tr[1].shape == (50000,) and va[0].shape == (10000, 784)
