"""The book's chapter 3 interface: nndl.network2.

The expected values are computed here by hand, with the book's formulas on
column vectors, independently of the engine.
"""

import json

import numpy as np
import pytest
from conftest import blobs, real_mnist_dir

from nndl import mnist_loader, network2
from nndl.engine import costs, modelio
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import ConfigError, InputError, ModelFileError

N_IN, K = 10, 3


def book_format(x, labels, one_hot):
    """Pairs (x column (N_IN, 1), y) with y a one-hot (K, 1) column or an int label."""
    pairs = []
    for xi, yi in zip(x, labels):
        y = np.zeros((K, 1))
        y[yi] = 1.0
        pairs.append((xi.astype(np.float64).reshape(-1, 1), y if one_hot else int(yi)))
    return pairs


@pytest.fixture(scope="module")
def data():
    x, labels = blobs(n=400, n_in=N_IN, k=K, seed=3)
    return book_format(x[:300], labels[:300], True), book_format(x[300:], labels[300:], False)


# --- by-hand versions of the book's formulas, on columns -----------------------

def sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward_by_hand(net, x):
    a = x
    for w, b in zip(net.weights, net.biases):
        a = sig(w @ a + b)
    return a


def cross_entropy_by_hand(a, y):
    return float(np.sum(-y * np.log(a) - (1 - y) * np.log(1 - a)))


def quadratic_by_hand(a, y):
    return 0.5 * float(np.linalg.norm(a - y) ** 2)


def backprop_by_hand(net, x, y, cost="cross-entropy"):
    """The book's backprop for one example: lists of column-shaped gradients (nabla_b, nabla_w)."""
    weights = [w.copy() for w in net.weights]
    activations, zs, a = [x], [], x
    for w, b in zip(weights, net.biases):
        z = w @ a + b
        zs.append(z)
        a = sig(z)
        activations.append(a)
    delta = activations[-1] - y
    if cost == "quadratic":
        delta = delta * sig(zs[-1]) * (1 - sig(zs[-1]))
    nabla_b, nabla_w = [None] * len(weights), [None] * len(weights)
    nabla_b[-1], nabla_w[-1] = delta, delta @ activations[-2].T
    for l in range(2, len(net.sizes)):
        sp = sig(zs[-l]) * (1 - sig(zs[-l]))
        delta = (weights[-l + 1].T @ delta) * sp
        nabla_b[-l], nabla_w[-l] = delta, delta @ activations[-l - 1].T
    return nabla_b, nabla_w


# --- SGD -------------------------------------------------------------------------

def test_sgd_returns_the_books_four_lists_and_prints_its_lines(data, capsys):
    training_data, test_data = data
    net = network2.Network([N_IN, 15, K], seed=0)
    before = net.accuracy(training_data, convert=True)
    result = net.SGD(training_data, 4, 10, 0.5, lmbda=2.0, evaluation_data=test_data,
                     monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
                     monitor_training_cost=True, monitor_training_accuracy=True)
    assert isinstance(result, tuple) and len(result) == 4
    evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = result
    for values in result:
        assert isinstance(values, list) and len(values) == 4
    assert all(type(c) is int for c in evaluation_accuracy + training_accuracy)
    assert all(isinstance(c, float) for c in evaluation_cost + training_cost)
    assert all(0 <= c <= 300 for c in training_accuracy) and all(0 <= c <= 100 for c in evaluation_accuracy)

    lines = capsys.readouterr().out.split("\n")
    for j in range(4):
        block = lines[6 * j: 6 * j + 6]
        assert block == [f"Epoch {j} training complete",
                         f"Cost on training data: {training_cost[j]}",
                         f"Accuracy on training data: {training_accuracy[j]} / 300",
                         f"Cost on evaluation data: {evaluation_cost[j]}",
                         f"Accuracy on evaluation data: {evaluation_accuracy[j]} / 100",
                         ""]
    # learning: the training accuracy rises well above where it started
    assert training_accuracy[-1] > max(before, 200)
    assert training_accuracy[-1] >= training_accuracy[0]
    # the last numbers are those of the final network, with the book's conventions:
    # each data set's regularisation term uses its own size
    assert training_accuracy[-1] == net.accuracy(training_data, convert=True)
    assert evaluation_accuracy[-1] == net.accuracy(test_data)
    assert training_cost[-1] == pytest.approx(net.total_cost(training_data, 2.0), rel=1e-12)
    assert evaluation_cost[-1] == pytest.approx(net.total_cost(test_data, 2.0, convert=True), rel=1e-12)
    assert net.history.config.lmbda == 2.0 and len(net.history.epochs) == 4


def test_sgd_without_monitoring_returns_empty_lists(data, capsys):
    net = network2.Network([N_IN, 5, K], seed=1)
    assert net.SGD(data[0], 2, 10, 0.5) == ([], [], [], [])
    assert capsys.readouterr().out == "Epoch 0 training complete\n\nEpoch 1 training complete\n\n"


def test_regularisation_shrinks_the_weights(data, capsys):
    plain = network2.Network([N_IN, 15, K], seed=4)
    regularised = network2.Network([N_IN, 15, K], seed=4)
    plain.SGD(data[0], 3, 10, 0.5)
    regularised.SGD(data[0], 3, 10, 0.5, lmbda=30.0)
    norm = lambda net: sum(float(np.sum(w ** 2)) for w in net.weights)  # noqa: E731
    assert norm(regularised) < 0.7 * norm(plain)


def test_early_stopping_n_stops_when_the_accuracy_stalls(data, capsys):
    net = network2.Network([N_IN, 5, K], seed=2)
    # with a learning rate this small nothing changes, so nothing improves after epoch 0
    result = net.SGD(data[0], 10, 10, 1e-12, evaluation_data=data[1], monitor_evaluation_accuracy=True,
                     early_stopping_n=2)
    assert len(result[1]) == 3
    assert "no improvement" in capsys.readouterr().out


def test_sgd_with_a_fixed_seed_is_repeatable(data, capsys):
    runs = []
    for _ in range(2):
        net = network2.Network([N_IN, 6, K], seed=7)
        runs.append(net.SGD(data[0], 2, 10, 0.5, monitor_training_cost=True))
    assert runs[0] == runs[1]


def test_monitoring_evaluation_data_needs_it(data):
    net = network2.Network([N_IN, 5, K], seed=0)
    with pytest.raises(ConfigError, match="evaluation_data"):
        net.SGD(data[0], 1, 10, 0.5, monitor_evaluation_accuracy=True)
    with pytest.raises(ConfigError, match="evaluation_data"):
        net.SGD(data[0], 1, 10, 0.5, evaluation_data=[], monitor_evaluation_cost=True)
    with pytest.raises(ConfigError, match="evaluation_data"):
        net.SGD(data[0], 1, 10, 0.5, early_stopping_n=2)


def test_empty_evaluation_data_is_no_evaluation_data_as_in_the_book(data, capsys):
    net = network2.Network([N_IN, 5, K], seed=1)
    assert net.SGD(data[0], 2, 10, 0.5, evaluation_data=[], monitor_training_accuracy=True)[:2] == ([], [])
    out = capsys.readouterr().out
    assert "evaluation" not in out and out.count("Accuracy on training data: ") == 2
    assert net.history.evaluation_accuracy == []


def test_sgd_settings_that_cannot_work_are_config_errors(data):
    net = network2.Network([N_IN, 5, K], seed=0)
    with pytest.raises(ConfigError, match="lmbda"):
        net.SGD(data[0], 1, 10, 0.5, lmbda=-1.0)
    with pytest.raises(ConfigError, match="early_stopping_n"):
        net.SGD(data[0], 1, 10, 0.5, evaluation_data=data[1], early_stopping_n=1.5)
    with pytest.raises(ConfigError, match="n, the size"):
        net.update_mini_batch(data[0][:3], 0.5, 1.0, 0)
    with pytest.raises(InputError, match="mini_batch is empty"):
        net.update_mini_batch([], 0.5, 1.0, 10)


# --- accuracy, total_cost --------------------------------------------------------

def test_accuracy_counts_like_the_book(data):
    training_data, test_data = data
    net = network2.Network([N_IN, 8, K], seed=5)
    by_hand_training = sum(int(np.argmax(forward_by_hand(net, x)) == np.argmax(y)) for x, y in training_data)
    by_hand_test = sum(int(np.argmax(forward_by_hand(net, x)) == y) for x, y in test_data)
    assert net.accuracy(training_data, convert=True) == by_hand_training
    assert net.accuracy(test_data) == by_hand_test
    assert type(net.accuracy(test_data)) is int
    # the form of y is recognised whatever convert says
    assert net.accuracy(training_data) == by_hand_training


@pytest.mark.parametrize("cost", ["cross-entropy", "quadratic"])
@pytest.mark.parametrize("lmbda", [0.0, 5.0])
def test_total_cost_is_the_books_formula(data, cost, lmbda):
    training_data, test_data = data
    cls = network2.CrossEntropyCost if cost == "cross-entropy" else network2.QuadraticCost
    fn = cross_entropy_by_hand if cost == "cross-entropy" else quadratic_by_hand
    net = network2.Network([N_IN, 8, K], cost=cls, seed=6)
    squares = sum(np.linalg.norm(w) ** 2 for w in net.weights)

    expected = sum(fn(forward_by_hand(net, x), y) for x, y in training_data) / len(training_data)
    expected += 0.5 * (lmbda / len(training_data)) * squares
    assert net.total_cost(training_data, lmbda) == pytest.approx(expected, rel=1e-10)

    expected = sum(fn(forward_by_hand(net, x), np.eye(K)[y].reshape(-1, 1)) for x, y in test_data) / len(test_data)
    expected += 0.5 * (lmbda / len(test_data)) * squares            # n = len(test_data), as in the book
    assert net.total_cost(test_data, lmbda, convert=True) == pytest.approx(expected, rel=1e-10)


def test_total_cost_uses_the_y_vectors_as_given(data):
    net = network2.Network([N_IN, 8, K], seed=6)
    soft = [(x, 0.8 * y + 0.1) for x, y in data[0][:20]]
    expected = sum(cross_entropy_by_hand(forward_by_hand(net, x), y) for x, y in soft) / 20
    assert net.total_cost(soft, 0.0) == pytest.approx(expected, rel=1e-10)


# --- costs ------------------------------------------------------------------------

def test_cost_classes_work_the_books_static_way():
    a = np.array([[0.2], [0.7], [0.5]])
    y = np.array([[0.0], [1.0], [0.0]])
    z = np.array([[-1.0], [0.5], [2.0]])
    assert network2.CrossEntropyCost.fn(a, y) == pytest.approx(cross_entropy_by_hand(a, y))
    assert network2.QuadraticCost.fn(a, y) == pytest.approx(quadratic_by_hand(a, y))
    np.testing.assert_allclose(network2.CrossEntropyCost.delta(z, a, y), a - y)
    np.testing.assert_allclose(network2.QuadraticCost.delta(z, a, y), (a - y) * sig(z) * (1 - sig(z)))
    assert issubclass(network2.CrossEntropyCost, costs.CrossEntropyCost)
    assert issubclass(network2.QuadraticCost, costs.QuadraticCost)
    # the engine accepts them too
    assert FeedforwardNetwork([3, 2], cost=network2.QuadraticCost, seed=0).cost.name == "quadratic"


def test_network_cost_choices(data):
    assert network2.Network([4, 2], seed=0).cost is network2.CrossEntropyCost
    net = network2.Network([4, 2], cost=network2.QuadraticCost, seed=0)
    assert net.cost is network2.QuadraticCost and net.engine.cost.name == "quadratic"
    assert network2.Network([4, 2], cost=costs.CrossEntropyCost, seed=0).cost is network2.CrossEntropyCost
    assert network2.Network([4, 2], cost="quadratic", seed=0).cost is network2.QuadraticCost
    net.cost = network2.CrossEntropyCost
    assert net.engine.cost.name == "cross-entropy"
    with pytest.raises(ConfigError, match="quadratic and cross-entropy"):
        network2.Network([4, 2], cost=costs.LogLikelihoodCost)
    with pytest.raises(ConfigError, match="unknown cost"):
        network2.Network([4, 2], cost="hinge")


# --- backprop and update_mini_batch --------------------------------------------------

@pytest.mark.parametrize("cost", ["cross-entropy", "quadratic"])
def test_backprop_shapes_and_values(data, cost):
    cls = network2.CrossEntropyCost if cost == "cross-entropy" else network2.QuadraticCost
    net = network2.Network([N_IN, 7, 5, K], cost=cls, seed=8)
    x, y = data[0][0]
    nabla_b, nabla_w = net.backprop(x, y)
    assert [b.shape for b in nabla_b] == [(7, 1), (5, 1), (K, 1)]
    assert [w.shape for w in nabla_w] == [(7, N_IN), (5, 7), (K, 5)]
    hand_b, hand_w = backprop_by_hand(net, x, y, cost)
    for l in range(3):
        np.testing.assert_allclose(nabla_b[l], hand_b[l], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(nabla_w[l], hand_w[l], rtol=1e-10, atol=1e-14)


def test_update_mini_batch_is_the_l2_update(data):
    net = network2.Network([N_IN, 6, K], seed=9)
    batch, eta, lmbda, n = data[0][:7], 0.5, 5.0, 300
    sum_b = [np.zeros_like(b) for b in net.biases]
    sum_w = [np.zeros_like(w) for w in net.weights]
    for x, y in batch:
        nb, nw = backprop_by_hand(net, x, y)
        sum_b = [s + g for s, g in zip(sum_b, nb)]
        sum_w = [s + g for s, g in zip(sum_w, nw)]
    expected_w = [(1 - eta * lmbda / n) * w - (eta / len(batch)) * g for w, g in zip(net.weights, sum_w)]
    expected_b = [b - (eta / len(batch)) * g for b, g in zip(net.biases, sum_b)]
    net.update_mini_batch(batch, eta, lmbda, n)
    for l in range(2):
        np.testing.assert_allclose(net.weights[l], expected_w[l], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(net.biases[l], expected_b[l], rtol=1e-12, atol=1e-15)


# --- parameters and initialisation ---------------------------------------------------

def test_shapes_and_feedforward(data):
    net = network2.Network([N_IN, 6, K], seed=0)
    assert net.num_layers == 3 and net.sizes == [N_IN, 6, K]
    assert "num_layers" in vars(net)                                   # a plain attribute, as in the book
    assert [w.shape for w in net.weights] == [(6, N_IN), (K, 6)]
    assert [b.shape for b in net.biases] == [(6, 1), (K, 1)]
    x = data[0][0][0]
    out = net.feedforward(x)
    assert out.shape == (K, 1)
    np.testing.assert_allclose(out, forward_by_hand(net, x), rtol=1e-12)
    rows = np.hstack([p[0] for p in data[0][:5]]).T
    np.testing.assert_allclose(net.feedforward(rows), np.hstack([forward_by_hand(net, p[0]) for p in data[0][:5]]).T,
                               rtol=1e-12)
    # weights and biases are views: changing them changes the network
    net.biases[1][:] = 0.0
    net.weights[1][:] = 0.0
    np.testing.assert_allclose(net.feedforward(x), np.full((K, 1), 0.5))
    net.biases = [np.zeros((6, 1)), np.ones((K, 1))]
    np.testing.assert_allclose(net.feedforward(x), np.full((K, 1), sig(1.0)))
    # item assignment too, as in the book's code
    net.biases[1] = np.full((K, 1), 2.0)
    np.testing.assert_allclose(net.feedforward(x), np.full((K, 1), sig(2.0)))
    net.weights[0] = np.zeros((6, N_IN))
    assert np.all(net.engine.params[0][:, :-1] == 0.0)
    with pytest.raises(InputError, match=r"weights\[1\] must have shape"):
        net.weights[1] = np.zeros((6, K))
    # a block of columns, as the book's code computes it
    block = np.hstack([p[0] for p in data[0][:5]])                   # (N_IN, 5)
    np.testing.assert_allclose(net.feedforward(block), np.hstack([forward_by_hand(net, p[0]) for p in data[0][:5]]),
                               rtol=1e-12)


def test_default_and_large_initialisers():
    net = network2.Network([400, 300, 10], seed=0)                   # default: N(0, 1/n_in)
    assert np.std(net.weights[0]) == pytest.approx(1 / np.sqrt(400), rel=0.02)
    assert np.std(net.weights[1]) == pytest.approx(1 / np.sqrt(300), rel=0.1)
    assert np.mean(net.weights[0]) == pytest.approx(0.0, abs=0.002)
    assert np.std(net.biases[0]) == pytest.approx(1.0, rel=0.15)
    net.large_weight_initializer()                                    # N(0, 1)
    assert np.std(net.weights[0]) == pytest.approx(1.0, rel=0.02)
    assert np.std(net.weights[1]) == pytest.approx(1.0, rel=0.1)
    assert np.std(net.biases[0]) == pytest.approx(1.0, rel=0.15)
    net.default_weight_initializer()
    assert np.std(net.weights[0]) == pytest.approx(1 / np.sqrt(400), rel=0.02)


def test_initial_weights_are_the_engines_for_the_same_seed():
    engine = FeedforwardNetwork([5, 4, 3], activations="sigmoid", cost="cross-entropy", init="default", seed=21)
    net = network2.Network([5, 4, 3], seed=21)
    for a, b in zip(net.weights, engine.weights):
        np.testing.assert_array_equal(a, b)


def test_global_random_state_makes_networks_repeatable():
    np.random.seed(12)
    a = network2.Network([5, 4, 3])
    a.large_weight_initializer()
    np.random.seed(12)
    b = network2.Network([5, 4, 3])
    b.large_weight_initializer()
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert not np.array_equal(network2.Network([5, 4, 3]).weights[0], a.weights[0])


def test_helpers():
    e = network2.vectorized_result(3)
    assert e.shape == (10, 1) and e[3, 0] == 1.0 and e.sum() == 1.0
    z = np.array([[-2.0], [0.0], [3.0]])
    np.testing.assert_allclose(network2.sigmoid(z), sig(z))
    np.testing.assert_allclose(network2.sigmoid_prime(z), sig(z) * (1 - sig(z)))


# --- saving and loading ---------------------------------------------------------------

@pytest.mark.parametrize("cls", [network2.CrossEntropyCost, network2.QuadraticCost])
def test_save_writes_the_books_layout_and_load_reads_it(data, tmp_path, cls):
    net = network2.Network([N_IN, 6, K], cost=cls, seed=3)
    path = tmp_path / "net.json"
    net.save(path)
    saved = json.loads(path.read_text())
    assert set(saved) == {"sizes", "weights", "biases", "cost"}
    assert saved["sizes"] == [N_IN, 6, K] and saved["cost"] == cls.__name__
    assert [np.array(w).shape for w in saved["weights"]] == [(6, N_IN), (K, 6)]
    assert [np.array(b).shape for b in saved["biases"]] == [(6, 1), (K, 1)]
    assert isinstance(saved["biases"][0][0], list)

    loaded = network2.load(path)
    assert isinstance(loaded, network2.Network) and loaded.cost is cls and loaded.sizes == net.sizes
    x = np.hstack([p[0] for p in data[0][:20]]).T
    np.testing.assert_array_equal(loaded.feedforward(x), net.feedforward(x))
    engine = modelio.load(path)
    np.testing.assert_array_equal(engine.feedforward(x), net.feedforward(x))
    assert engine.cost.name == cls.name
    assert [p.name for p in tmp_path.iterdir()] == ["net.json"]   # atomic write leaves no temporary file


def test_load_reads_nndl_model_files_of_sigmoid_networks_only(tmp_path):
    engine = FeedforwardNetwork([4, 3, 2], cost="quadratic", seed=0)
    modelio.save(engine, tmp_path / "a.json")
    net = network2.load(tmp_path / "a.json")
    assert net.cost is network2.QuadraticCost
    np.testing.assert_array_equal(net.feedforward(np.ones((1, 4))), engine.feedforward(np.ones((1, 4))))
    modelio.save(FeedforwardNetwork([4, 3, 2], activations=["relu", "sigmoid"], seed=0), tmp_path / "b.json")
    with pytest.raises(ModelFileError, match="only sigmoid"):
        network2.load(tmp_path / "b.json")
    modelio.save(FeedforwardNetwork([4, 2], activations="softmax", cost="log-likelihood", seed=0),
                   tmp_path / "c.json")
    with pytest.raises(ModelFileError, match="only sigmoid"):
        network2.load(tmp_path / "c.json")


# --- the book's session on the real MNIST -----------------------------------------------

@pytest.mark.mnist
@pytest.mark.slow
def test_the_books_chapter_3_session_for_one_epoch(mnist_data, capsys):
    training_data, validation_data, test_data = mnist_loader.load_data_wrapper(real_mnist_dir())
    np.random.seed(0)
    net = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost)
    net.large_weight_initializer()
    evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = net.SGD(
        training_data, 1, 10, 0.5, evaluation_data=test_data, monitor_evaluation_accuracy=True)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 0 training complete\nAccuracy on evaluation data: ")
    assert evaluation_cost == training_cost == training_accuracy == []
    assert evaluation_accuracy[0] > 9000
