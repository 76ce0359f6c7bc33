"""The book's network3 interface: its sessions run as printed, with the book's semantics and clear errors."""

import pytest
import torch
from conftest import real_mnist_dir

from nndl import network3
from nndl.errors import ConfigError, InputError
from nndl.network3 import ConvPoolLayer, FullyConnectedLayer, Network, ReLU, SoftmaxLayer, linear, sigmoid, tanh


def _synthetic(n, seed):
    """Images (n, 784) with a bright band whose row gives the class (10 classes), labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.rand(n, 28, 28, generator=g) * 0.2
    for i, label in enumerate(labels.tolist()):
        images[i, 2 + 2 * label: 4 + 2 * label, 4:24] = 1.0
    return images.reshape(n, 784), labels


def _two_conv(mini_batch_size=10, activation=ReLU, n_out=100):
    return [
        ConvPoolLayer(image_shape=(mini_batch_size, 1, 28, 28), filter_shape=(20, 1, 5, 5), poolsize=(2, 2),
                      activation_fn=activation),
        ConvPoolLayer(image_shape=(mini_batch_size, 20, 12, 12), filter_shape=(40, 20, 5, 5), poolsize=(2, 2),
                      activation_fn=activation),
        FullyConnectedLayer(n_in=40 * 4 * 4, n_out=n_out, activation_fn=activation),
        SoftmaxLayer(n_in=n_out, n_out=10)]


def test_the_relu_session_runs_as_printed_and_prints_the_books_lines(capsys):
    training_data, validation_data, test_data = _synthetic(300, 0), _synthetic(100, 1), _synthetic(100, 2)
    mini_batch_size = 10
    net = Network(_two_conv(mini_batch_size), mini_batch_size, device="cpu", seed=1)
    assert net.SGD(training_data, 3, mini_batch_size, 0.03, validation_data, test_data, lmbda=0.1) is None
    out = capsys.readouterr().out
    assert "Epoch 0: validation accuracy" in out and "Epoch 2: validation accuracy" in out
    assert "This is the best validation accuracy to date." in out
    assert "The corresponding test accuracy is" in out
    assert "Finished training network." in out
    best = net.history.best_epoch
    assert f"obtained at iteration {30 * best + 29}" in out
    assert f"Corresponding test accuracy of {net.history.best_test_accuracy:.2%}" in out
    assert net.history.best_accuracy > 0.5                          # it learned the bands
    # The book's choices, recorded: stored order, lambda over the number of mini-batches, no restoring.
    config = net.history.config
    assert (config.shuffle, config.lmbda_scale, config.restore_best) == (False, "batches", False)
    assert net.net.config.init == "book" and net.net.config.dropout == "book"


def test_layers_expose_their_parameters_and_start_as_the_book_draws_them():
    net = Network(_two_conv(), 10, device="cpu", seed=3)
    conv, _, fc, softmax = net.layers
    assert conv.w.shape == (20, 1, 5, 5) and conv.b.shape == (20,)
    assert fc.w.shape == (100, 640)                                  # PyTorch's layout: (n_out, n_in)
    assert torch.count_nonzero(softmax.w) == 0 and torch.count_nonzero(softmax.b) == 0
    assert len(net.params) == 8 and net.params[0] is conv.w
    assert abs(float(conv.w.detach().std()) - (4 / (20 * 25)) ** 0.5) < 0.02   # N(0, 1/n_out), n_out = 20*25/4
    same = Network(_two_conv(), 10, device="cpu", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(net.params, same.params))


def test_an_accuracy_equal_to_the_best_counts_as_a_new_best(capsys):
    training_data, validation_data, test_data = _synthetic(100, 0), _synthetic(50, 1), _synthetic(50, 2)
    net = Network([FullyConnectedLayer(n_in=784, n_out=30), SoftmaxLayer(n_in=30, n_out=10)], 10, device="cpu",
                  seed=0)
    # With a vanishing learning rate nothing changes: every epoch equals the best, and the last one is it.
    net.SGD(training_data, 3, 10, 1e-12, validation_data, test_data)
    out = capsys.readouterr().out
    assert out.count("This is the best validation accuracy to date.") == 3
    assert net.history.best_epoch == 2


@pytest.mark.parametrize("fn, name", [(ReLU, "relu"), (sigmoid, "sigmoid"), (tanh, "tanh"), (linear, "linear")])
def test_the_books_activation_functions(fn, name):
    layer = FullyConnectedLayer(n_in=4, n_out=3, activation_fn=fn)
    assert layer.activation == name
    z = torch.tensor([-1.0, 0.0, 2.0])
    expected = {"relu": torch.tensor([0.0, 0.0, 2.0]), "sigmoid": torch.sigmoid(z), "tanh": torch.tanh(z),
                "linear": z}[name]
    assert torch.allclose(fn(z), expected)


def test_layers_that_do_not_chain_say_what_they_should_be():
    layers = _two_conv()
    layers[2] = FullyConnectedLayer(n_in=20 * 12 * 12, n_out=100, activation_fn=ReLU)
    with pytest.raises(ConfigError,
                       match=r"layer 3 \(FullyConnectedLayer\): n_in=2880, .* 40x4x4 = 640 .*use n_in=640"):
        Network(layers, 10)
    layers = _two_conv()
    layers[1] = ConvPoolLayer(image_shape=(10, 20, 24, 24), filter_shape=(40, 20, 5, 5))
    with pytest.raises(ConfigError, match=r"image_shape \(10, 20, 24, 24\) does not match .*use image_shape="
                                          r"\(10, 20, 12, 12\)"):
        Network(layers, 10)


def test_a_mini_batch_size_that_does_not_match_image_shape_is_refused():
    with pytest.raises(ConfigError, match="is for mini-batches of 10, but the network's mini_batch_size is 20"):
        Network(_two_conv(10), 20)
    net = Network(_two_conv(10), 10, device="cpu")
    with pytest.raises(ConfigError, match="SGD's mini_batch_size 5 differs"):
        net.SGD(_synthetic(20, 0), 1, 5, 0.1, _synthetic(10, 1), _synthetic(10, 2))


@pytest.mark.parametrize("make, message", [
    (lambda: ConvPoolLayer(filter_shape=(20, 3, 5, 5), image_shape=(10, 1, 28, 28)), "takes 3 input feature maps"),
    (lambda: FullyConnectedLayer(n_in=784, n_out=10, activation_fn=abs), "activation_fn must be one of"),
    (lambda: Network([FullyConnectedLayer(n_in=784, n_out=10)], 10), "the last layer must be a SoftmaxLayer"),
    (lambda: Network([], 10), "at least its SoftmaxLayer"),
    (lambda: Network([FullyConnectedLayer(n_in=784, n_out=30, p_dropout=1.0), SoftmaxLayer(n_in=30, n_out=10)], 10),
     r"dropout probability .* must be in \[0, 1\)"),
    (lambda: Network([SoftmaxLayer(n_in=784, n_out=10)], 10, device="tpu"), "unknown device"),
])
def test_bad_networks_are_refused_with_a_clear_message(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_data_that_is_not_a_pair_is_refused():
    net = Network([SoftmaxLayer(n_in=784, n_out=10)], 10, device="cpu")
    with pytest.raises(InputError, match="training_data must be a pair"):
        net.SGD([1, 2, 3], 1, 10, 0.1, _synthetic(10, 1), _synthetic(10, 2))
    with pytest.raises(InputError, match=r"shape \(n, 784\)"):
        net.SGD((torch.rand(20, 10), torch.zeros(20, dtype=torch.long)), 1, 10, 0.1, _synthetic(10, 1),
                _synthetic(10, 2))


@pytest.mark.skipif(real_mnist_dir() is None, reason="the real MNIST files were not found (set NNDL_DATA)")
def test_load_data_shared_finds_mnist_with_or_without_the_books_file_name(monkeypatch):
    monkeypatch.setenv("NNDL_DATA", str(real_mnist_dir()))
    for args in ((), ("mnist.pkl.gz",), ("../data/mnist.pkl.gz",)):
        training, validation, test = network3.load_data_shared(*args)
        assert training[0].shape == (50000, 784) and validation[0].shape == (10000, 784)
        assert test[1].shape == (10000,) and test[1].dtype == torch.int64


@pytest.mark.skipif(real_mnist_dir() is None, reason="the real MNIST files were not found (set NNDL_DATA)")
def test_the_books_expanded_file_name_gives_the_250000_images(monkeypatch):
    monkeypatch.setenv("NNDL_DATA", str(real_mnist_dir()))
    expanded, _, _ = network3.load_data_shared("../data/mnist_expanded.pkl.gz")
    assert expanded[0].shape == (250000, 784)
    assert torch.bincount(expanded[1]).sum() == 250000


@pytest.mark.skipif(real_mnist_dir() is None, reason="the real MNIST files were not found (set NNDL_DATA)")
def test_the_first_session_runs_end_to_end_on_a_subset_of_mnist(monkeypatch, capsys):
    monkeypatch.setenv("NNDL_DATA", str(real_mnist_dir()))
    training_data, validation_data, test_data = network3.load_data_shared()
    subset = lambda data, n: (data[0][:n], data[1][:n])                 # noqa: E731
    mini_batch_size = 10
    net = Network([
        FullyConnectedLayer(n_in=784, n_out=100),
        SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size, seed=1)
    net.SGD(subset(training_data, 2000), 2, mini_batch_size, 0.1, subset(validation_data, 1000),
            subset(test_data, 1000))
    out = capsys.readouterr().out
    assert "Corresponding test accuracy of" in out
    assert net.history.best_test_accuracy > 0.6


@pytest.mark.parametrize("make, needles", [
    (lambda: network3.ConvPoolLayer(filter_shape=(2, 1, 5, 5), image_shape=(10, 1, 28, 28), poolsize=(0, 0)),
     ["poolsize", "(0, 0)"]),
    (lambda: network3.ConvPoolLayer(filter_shape=(2, 1, 5, 5), image_shape=(10, 1, -3, 28)),
     ["image_shape", "-3"]),
    (lambda: network3.ConvPoolLayer(filter_shape=(0, 1, 5, 5), image_shape=(10, 1, 28, 28)), ["filter_shape"]),
    (lambda: network3.SoftmaxLayer(n_in=-5, n_out=10), ["n_in", "-5"]),
    (lambda: network3.FullyConnectedLayer(n_in=784, n_out=0), ["n_out", "0"]),
    (lambda: network3.Network([network3.ConvPoolLayer(filter_shape=(2, 1, 5, 5), image_shape=(10, 1, 3, 28)),
                               network3.SoftmaxLayer(n_in=10, n_out=10)], 10), ["5x5 filter does not fit", "3x28"]),
    (lambda: network3.Network([network3.ConvPoolLayer(filter_shape=(2, 1, 5, 5), image_shape=(10, 1, 5, 28)),
                               network3.SoftmaxLayer(n_in=10, n_out=10)], 10), ["2x2 pooling does not fit"]),
])
def test_shapes_that_cannot_work_are_config_errors_without_negative_advice(make, needles):
    with pytest.raises(ConfigError) as info:
        make()
    for needle in needles:
        assert needle in str(info.value)
    assert "use n_in=-" not in str(info.value)
