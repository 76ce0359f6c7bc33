"""The book's chapter 1 interface: nndl.network and nndl.mnist_loader."""

import copy

import numpy as np
import pytest
from conftest import blobs, real_mnist_dir

from nndl import mnist_loader, network
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import ConfigError, InputError


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


def test_sgd_prints_the_books_lines_learns_and_returns_none(book_data, capsys):
    training_data, test_data = book_data
    net = network.Network([12, 20, 4], seed=0)
    assert net.history is None
    assert net.SGD(training_data, 5, 10, 3.0, test_data=test_data) is None     # as the book's
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    for j, line in enumerate(lines):
        assert line.startswith(f"Epoch {j}: ") and line.endswith(" / 100")
    assert int(lines[-1].split()[2]) > 85
    assert net.evaluate(test_data) == int(lines[-1].split()[2])
    # the record of the run stays reachable
    assert net.history.epochs == [0, 1, 2, 3, 4]
    assert round(net.history.evaluation_accuracy[-1] * 100) == int(lines[-1].split()[2])


def test_sgd_without_test_data_says_complete(book_data, capsys):
    net = network.Network([12, 5, 4], seed=0)
    net.SGD(book_data[0], 2, 10, 3.0)
    assert capsys.readouterr().out == "Epoch 0 complete\nEpoch 1 complete\n"


def test_empty_test_data_is_no_test_data_as_in_the_book(book_data, capsys):
    net = network.Network([12, 5, 4], seed=0)
    net.SGD(book_data[0], 2, 10, 3.0, test_data=[])               # the book: `if test_data:` is false
    assert capsys.readouterr().out == "Epoch 0 complete\nEpoch 1 complete\n"
    assert net.history.evaluation_accuracy == []


def test_numpy_numbers_and_empty_test_data_work_as_in_the_book(book_data, capsys):
    net = network.Network([12, 5, 4], seed=0)
    net.SGD(book_data[0], np.int64(1), np.int64(10), np.float64(3.0))
    assert capsys.readouterr().out == "Epoch 0 complete\n"
    assert net.evaluate([]) == 0


def test_seeded_runs_repeat_and_initial_weights_are_the_engines(book_data, capsys):
    runs = []
    for _ in range(2):
        net = network.Network([12, 5, 4], seed=3)
        net.SGD(book_data[0], 2, 10, 3.0)
        runs.append(np.concatenate([w.ravel() for w in net.weights]))
    np.testing.assert_array_equal(runs[0], runs[1])
    engine = FeedforwardNetwork([12, 5, 4], activations="sigmoid", cost="quadratic", init="large", seed=3)
    np.testing.assert_array_equal(network.Network([12, 5, 4], seed=3).weights[0], engine.weights[0])


def test_shapes_and_initialisation_as_in_the_book():
    net = network.Network([784, 30, 10], seed=0)
    assert net.num_layers == 3 and net.sizes == [784, 30, 10]
    assert "num_layers" in vars(net)                                   # a plain attribute, as in the book
    assert [b.shape for b in net.biases] == [(30, 1), (10, 1)]
    assert [w.shape for w in net.weights] == [(30, 784), (10, 30)]
    assert len(net.weights) == len(net.biases) == 2
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


# --- weights and biases ------------------------------------------------------------

def test_setting_weights_and_biases(book_data):
    net = network.Network([12, 6, 4], seed=1)
    net.biases = [np.zeros((6, 1)), np.ones((4, 1))]
    net.weights = [np.zeros((6, 12)), np.zeros((4, 6))]
    np.testing.assert_allclose(net.feedforward(book_data[0][0][0]), np.full((4, 1), 1 / (1 + np.exp(-1))))
    with pytest.raises(InputError, match=r"weights\[0\] must have shape \(6, 12\), got \(6, 11\)"):
        net.weights = [np.zeros((6, 11)), np.zeros((4, 6))]
    with pytest.raises(InputError, match="number of layers is fixed"):
        net.weights = [np.zeros((6, 12))]
    assert np.all(net.weights[0] == 0.0)                               # a rejected list changes nothing


def test_item_assignment_reaches_the_network():
    net = network.Network([3, 2, 2], seed=1)
    x = np.array([[0.5], [-1.0], [2.0]])
    w0, b0 = np.arange(6.0).reshape(2, 3) / 10, np.array([[0.1], [-0.2]])
    net.weights[0] = w0                                                # the book: self.weights[0] = ...
    net.biases[0] = b0
    net.biases[1] = np.array([0.3, 0.4])                               # a flat vector is accepted too
    np.testing.assert_array_equal(net.weights[0], w0)
    np.testing.assert_array_equal(net.biases[0], b0)
    np.testing.assert_array_equal(net.engine.params[0][:, :-1], w0)
    hidden = 1 / (1 + np.exp(-(w0 @ x + b0)))
    expected = 1 / (1 + np.exp(-(net.weights[1] @ hidden + np.array([[0.3], [0.4]]))))
    np.testing.assert_allclose(net.feedforward(x), expected, rtol=1e-12)
    # in-place changes of the views, and augmented assignment, keep working
    net.weights[1][0, 0] = 7.0
    net.biases[1] += 1.0
    assert net.engine.params[1][0, 0] == 7.0
    np.testing.assert_allclose(net.engine.params[1][:, -1], [1.3, 1.4])
    # slices
    net.weights[:] = [np.ones((2, 3)), np.ones((2, 2))]
    assert np.all(net.engine.params[0][:, :-1] == 1.0)
    with pytest.raises(InputError, match=r"must have shape \(2, 3\)"):
        net.weights[0] = np.ones((3, 2))
    with pytest.raises(InputError, match=r"biases\[1\] must have shape \(2, 1\)"):
        net.biases[1] = np.ones((1, 2))
    with pytest.raises(InputError, match="array of numbers"):
        net.weights[0] = "abc"
    with pytest.raises(InputError, match="fixed"):
        del net.weights[0]
    with pytest.raises(InputError, match="fixed"):
        net.biases.append(np.ones((2, 1)))
    with pytest.raises(IndexError):                                    # as for the book's list
        net.weights[2] = np.ones((2, 2))


def test_parameter_lists_behave_like_the_books_lists():
    net = network.Network([3, 2, 2], seed=1)
    assert [w.shape for w in net.weights] == [(2, 3), (2, 2)]
    assert [b.shape for b in net.biases[-1:]] == [(2, 1)]
    pairs = list(zip(net.biases, net.weights))
    assert len(pairs) == 2
    saved = copy.deepcopy(net.biases)
    net.biases[0][:] = 5.0
    assert np.all(saved[0] != 5.0) and isinstance(saved, list)
    assert repr(net.weights).startswith("[array(")


# --- feedforward ------------------------------------------------------------------------

def test_feedforward_takes_the_books_columns_and_blocks_of_them():
    net = network.Network([4, 3, 2], seed=2)
    block = np.random.default_rng(0).random((4, 5))                  # five inputs as columns
    out = net.feedforward(block)
    assert out.shape == (2, 5)
    for k in range(5):
        np.testing.assert_allclose(out[:, [k]], net.feedforward(block[:, [k]]), rtol=1e-12)
    np.testing.assert_allclose(net.feedforward(block.T), out.T, rtol=1e-12)   # rows: nndl's layout
    assert net.feedforward(block[:, 0]).shape == (2,)
    # square: a (4, 4) block is read as four columns, the book's layout
    square = block[:, :4]
    np.testing.assert_allclose(net.feedforward(square), out[:, :4], rtol=1e-12)
    with pytest.raises(InputError, match="input layer has 4 neurons"):
        net.feedforward(np.zeros((3, 5)))
    with pytest.raises(InputError):
        net.feedforward(np.zeros((4, 1, 1)))


# --- mistakes ------------------------------------------------------------------------------

def test_data_that_does_not_fit_gives_a_clear_error(book_data):
    net = network.Network([700, 30, 4], seed=0)
    with pytest.raises(InputError, match="700 neurons"):
        net.SGD(book_data[0], 1, 10, 3.0)
    net = network.Network([12, 5, 3], seed=0)
    with pytest.raises(InputError, match=r"\(3, 1\) column"):
        net.SGD(book_data[0], 1, 10, 3.0)                              # one-hot columns of 4 for 3 outputs
    with pytest.raises(InputError, match="label 3 is not in"):
        net.evaluate(book_data[1])
    with pytest.raises(InputError, match="mixes"):
        net.update_mini_batch([(np.zeros(12), 0), (np.zeros(12), np.zeros((3, 1)))], 1.0)
    with pytest.raises(InputError, match="empty"):
        net.SGD([], 1, 10, 3.0)


@pytest.mark.parametrize("sizes", [[784], [784, 0, 10], [784, 30.5, 10], "784 30 10", 10, [784, True, 10]])
def test_sizes_that_cannot_work_are_a_config_error(sizes):
    with pytest.raises(ConfigError):
        network.Network(sizes)


def test_settings_that_cannot_work_are_a_config_error(book_data):
    net = network.Network([12, 5, 4], seed=0)
    with pytest.raises(ConfigError):
        net.update_mini_batch(book_data[0][:3], "fast")
    with pytest.raises(ConfigError):
        network.Network([12, 5, 4], seed=-1)
    with pytest.raises(ConfigError):
        network.Network([12, 5, 4], dtype=np.int32)
    for epochs, mini_batch_size, eta in ((0, 10, 3.0), (1, 0, 3.0), (1, 10, -1.0), (1, 10, "3")):
        with pytest.raises(ConfigError):                              # checked by nndl.training
            net.SGD(book_data[0], epochs, mini_batch_size, eta)


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
