"""The book's ``network3``: convolutional networks, with the book's interface, on PyTorch.

The chapter 6 sessions run as printed with only their imports changed::

    from nndl import network3
    from nndl.network3 import Network, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer, ReLU

    training_data, validation_data, test_data = network3.load_data_shared()
    mini_batch_size = 10
    net = Network([
        ConvPoolLayer(image_shape=(mini_batch_size, 1, 28, 28), filter_shape=(20, 1, 5, 5),
                      poolsize=(2, 2), activation_fn=ReLU),
        FullyConnectedLayer(n_in=20*12*12, n_out=100, activation_fn=ReLU),
        SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size)
    net.SGD(training_data, 60, mini_batch_size, 0.03, validation_data, test_data, lmbda=0.1)

What is kept from the book's network3, exactly:

* ``ConvPoolLayer(filter_shape, image_shape, poolsize, activation_fn)``:
  valid convolution, max-pooling, then the bias and the activation.
* Weights N(0, 1/n_out) -- for a conv-pool layer n_out = filters x filter
  area / pool area -- and biases N(0, 1); the softmax layer starts at zero.
* Dropout on a layer's *input* during training, without rescaling; at
  inference the layer's weights are scaled by (1 - p).
* The cost: mean log-likelihood of the mini-batch plus the L2 term
  ``0.5 lambda sum w^2 / num_training_batches`` over every layer's weights,
  never the biases. Note the divisor: the number of mini-batches per epoch,
  where network2 divides lambda by n, the number of training images -- the
  same lambda is m times stronger here.
* Mini-batches in stored order, the same every epoch (never reshuffled);
  ``n // mini_batch_size`` of them per epoch.
* After each epoch the validation accuracy; one equal to the best so far
  counts as a new best, and the test accuracy is reported at the best epoch.

What differs: the book's ``GPU = True`` switch is a device choice,
``Network(..., device="auto" | "cpu" | "cuda")`` (default ``DEVICE``); each
run's dropout masks come from their own seeded generator (Theano re-seeded
every mask stream identically); ``Network(..., seed=S)`` makes a run
repeatable; the book's "Training mini-batch number N" lines are not printed;
``SGD`` keeps the run's ``History`` as ``net.history``. Fully connected
weights are stored in PyTorch's layout, (n_out, n_in), the transpose of the
book's. nndl's own engine (``nndl conv``, ``nndl.deep``) can shuffle, use
inverted dropout and fan-in initialisation instead.
"""

import math
import numbers
import os

import torch
import torch.nn.functional as F

from nndl.deep.config import ConvNetConfig
from nndl.errors import ConfigError, InputError
from nndl.training.config import TrainingConfig

__all__ = ["Network", "ConvPoolLayer", "FullyConnectedLayer", "SoftmaxLayer", "load_data_shared",
           "ReLU", "sigmoid", "tanh", "linear", "DEVICE"]

#: Where networks train unless told: "auto" (a CUDA GPU when there is one), "cpu" or "cuda".
DEVICE = "auto"


# The book's activation functions, usable on tensors.
def linear(z):
    return z


def ReLU(z):                                                        # noqa: N802 - the book's name
    return F.relu(z)


sigmoid = torch.sigmoid
tanh = torch.tanh

_NAMES = {linear: "linear", ReLU: "relu", sigmoid: "sigmoid", tanh: "tanh", F.relu: "relu"}


def _activation_name(fn):
    name = _NAMES.get(fn)
    if name is None:
        raise ConfigError(f"activation_fn must be one of network3's sigmoid, tanh, ReLU or linear, got {fn!r}")
    return name


def load_data_shared(filename=None, path=None):
    """MNIST as ``[training_data, validation_data, test_data]``, each a pair (images, labels) of tensors.

    Parameters
    ----------
    filename : str, optional
        The book's argument. Its ``mnist.pkl.gz`` is not needed: MNIST is
        found as everywhere in nndl (``NNDL_DATA``, ./data/mnist, the cache,
        else downloaded). A name containing "expanded" (the book's
        ``mnist_expanded.pkl.gz``) gives the expanded training set: the file
        itself if it is one written by ``nndl expand``, otherwise the book's
        250,000 images (each image and its four 1-pixel shifts) made in memory.
    path : str, optional
        The MNIST directory.

    Returns
    -------
    list of three (tensor (n, 784) float32, tensor (n,) int64), on the CPU.
    """
    from nndl.deep.data import load_mnist_tensors
    expanded = None
    if filename is not None and "expanded" in os.path.basename(str(filename)):
        expanded = str(filename) if os.path.isfile(filename) and str(filename).endswith(".npz") else "shifts"
    splits = load_mnist_tensors(path, device="cpu", expanded=expanded)
    return [(images.reshape(images.shape[0], -1), labels) for images, labels in splits]


class _LayerSpec:
    """What the book's layer constructors record; the network builds the PyTorch modules."""

    module = None                                  # the nndl.deep.layers module, once the Network is built

    @property
    def w(self):
        """The layer's weights (a torch Parameter), once it belongs to a Network."""
        return None if self.module is None else self.module.weight

    @property
    def b(self):
        return None if self.module is None else self.module.bias

    @property
    def params(self):
        return [self.w, self.b]


class ConvPoolLayer(_LayerSpec):
    """A convolutional layer and a max-pooling layer together (see the module docstring).

    Parameters
    ----------
    filter_shape : (filters, input feature maps, filter height, filter width)
    image_shape : (mini-batch size, input feature maps, image height, image width)
    poolsize : (ph, pw)
    activation_fn : sigmoid, tanh, ReLU or linear
    """

    def __init__(self, filter_shape, image_shape, poolsize=(2, 2), activation_fn=sigmoid):
        if len(filter_shape) != 4 or len(image_shape) != 4 or len(poolsize) != 2:
            raise ConfigError("ConvPoolLayer needs filter_shape (filters, maps, height, width), image_shape "
                              f"(mini_batch_size, maps, height, width) and poolsize (h, w); got {filter_shape}, "
                              f"{image_shape}, {poolsize}")
        for name, values in (("filter_shape", filter_shape), ("image_shape", image_shape), ("poolsize", poolsize)):
            if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1 for v in values):
                raise ConfigError(f"ConvPoolLayer's {name} must be whole numbers of at least 1, got {tuple(values)}")
        self.filter_shape, self.image_shape, self.poolsize = tuple(filter_shape), tuple(image_shape), tuple(poolsize)
        if self.filter_shape[1] != self.image_shape[1]:
            raise ConfigError(f"filter_shape {self.filter_shape} takes {self.filter_shape[1]} input feature maps but "
                              f"image_shape {self.image_shape} has {self.image_shape[1]}")
        self.activation = _activation_name(activation_fn)

    def spec(self):
        return {"type": "conv-pool", "filters": self.filter_shape[0], "filter": self.filter_shape[2:],
                "pool": self.poolsize, "activation": self.activation}


class FullyConnectedLayer(_LayerSpec):
    """A fully connected layer: n_in inputs, n_out neurons, dropout p_dropout on its inputs."""

    def __init__(self, n_in, n_out, activation_fn=sigmoid, p_dropout=0.0):
        _check_sizes("FullyConnectedLayer", n_in, n_out)
        self.n_in, self.n_out, self.p_dropout = n_in, n_out, p_dropout
        self.activation = _activation_name(activation_fn)

    def spec(self):
        return {"type": "fully-connected", "n_out": self.n_out, "activation": self.activation,
                "p_dropout": self.p_dropout}


class SoftmaxLayer(_LayerSpec):
    """The softmax output layer (log-likelihood cost), dropout p_dropout on its inputs."""

    def __init__(self, n_in, n_out, p_dropout=0.0):
        _check_sizes("SoftmaxLayer", n_in, n_out)
        self.n_in, self.n_out, self.p_dropout = n_in, n_out, p_dropout

    def spec(self):
        return {"type": "softmax", "n_out": self.n_out, "p_dropout": self.p_dropout}


def _check_sizes(layer, n_in, n_out):
    for name, value in (("n_in", n_in), ("n_out", n_out)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{layer}'s {name} must be a whole number of at least 1, got {value!r}")


def _check_chain(layers, mini_batch_size):
    """The book's layers must fit together; say what a mismatched one should have been."""
    first = layers[0]
    if isinstance(first, ConvPoolLayer):
        input_shape = first.image_shape[1:]
    elif isinstance(first, (FullyConnectedLayer, SoftmaxLayer)):
        input_shape = (1, 1, first.n_in) if first.n_in != 784 else (1, 28, 28)
    else:
        raise ConfigError(f"layer 1 must be a ConvPoolLayer, FullyConnectedLayer or SoftmaxLayer, got {first!r}")
    shape = input_shape
    for i, layer in enumerate(layers, 1):
        if isinstance(layer, ConvPoolLayer):
            if layer.image_shape[0] != mini_batch_size:
                raise ConfigError(f"layer {i} (ConvPoolLayer): image_shape {layer.image_shape} is for mini-batches of "
                                  f"{layer.image_shape[0]}, but the network's mini_batch_size is {mini_batch_size}")
            if tuple(layer.image_shape[1:]) != tuple(shape):
                raise ConfigError(f"layer {i} (ConvPoolLayer): image_shape {layer.image_shape} does not match the "
                                  f"{tuple(shape)} output of the layer before; use image_shape="
                                  f"{(mini_batch_size, *shape)}")
            (f, _, fh, fw), (ph, pw) = layer.filter_shape, layer.poolsize
            if fh > shape[1] or fw > shape[2]:
                raise ConfigError(f"layer {i} (ConvPoolLayer): a {fh}x{fw} filter does not fit its "
                                  f"{shape[1]}x{shape[2]} images")
            if ph > shape[1] - fh + 1 or pw > shape[2] - fw + 1:
                raise ConfigError(f"layer {i} (ConvPoolLayer): {ph}x{pw} pooling does not fit the "
                                  f"{shape[1] - fh + 1}x{shape[2] - fw + 1} output of its convolution")
            shape = (f, (shape[1] - fh + 1) // ph, (shape[2] - fw + 1) // pw)
        elif isinstance(layer, (FullyConnectedLayer, SoftmaxLayer)):
            size = math.prod(shape)
            if layer.n_in != size:
                what = "x".join(map(str, shape))
                raise ConfigError(f"layer {i} ({type(layer).__name__}): n_in={layer.n_in}, but the layer before gives "
                                  f"{what} = {size} values; use n_in={size}")
            shape = (layer.n_out,)
        else:
            raise ConfigError(f"layer {i} must be a ConvPoolLayer, FullyConnectedLayer or SoftmaxLayer, "
                              f"got {layer!r}")
    return input_shape


class Network:
    """The book's Network: a list of layers and the mini-batch size.

    Parameters
    ----------
    layers : list of ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
        The last is the SoftmaxLayer.
    mini_batch_size : int
    device : str, optional
        "auto", "cpu", "cuda" or "cuda:N" (default ``network3.DEVICE``).
    seed : int, optional
        Seeds the initial weights and the dropout masks.

    Attributes
    ----------
    layers : list
        The layers given, each with ``.w`` and ``.b`` (torch Parameters).
    params : list of Parameter
        Every layer's weights and biases.
    net : nndl.deep.network.ConvNetwork
        The PyTorch network underneath.
    history : History or None
        After SGD: the run, epoch by epoch.
    """

    def __init__(self, layers, mini_batch_size, *, device=None, seed=None):
        from nndl.deep.network import ConvNetwork
        layers = list(layers)
        if not layers:
            raise ConfigError("a Network needs at least its SoftmaxLayer")
        if not isinstance(layers[-1], SoftmaxLayer):
            raise ConfigError(f"the last layer must be a SoftmaxLayer, got {type(layers[-1]).__name__}")
        self.mini_batch_size = mini_batch_size
        input_shape = _check_chain(layers, mini_batch_size)
        config = ConvNetConfig(input_shape=input_shape, layers=tuple(layer.spec() for layer in layers), init="book",
                               dropout="book", dtype="float32")
        self.layers, self.seed = layers, seed
        self.net = ConvNetwork(config, device=DEVICE if device is None else device, seed=seed)
        for layer, module in zip(layers, self.net.layers):
            layer.module = module
        self.params = [p for layer in layers for p in (layer.w, layer.b)]
        self.history = None

    def SGD(self, training_data, epochs, mini_batch_size, eta, validation_data, test_data, lmbda=0.0):  # noqa: N802
        """Train by mini-batch SGD as the book's network3 does, printing its progress lines.

        ``training_data`` etc. are pairs (images (n, 784), labels (n,)) as
        ``load_data_shared`` gives them. Returns None, as in the book; the
        run is kept in ``self.history``.
        """
        from nndl.deep.train import train
        if mini_batch_size != self.mini_batch_size:
            raise ConfigError(f"SGD's mini_batch_size {mini_batch_size} differs from the network's "
                              f"{self.mini_batch_size} (its image_shape was built for that)")
        for name, data in (("training_data", training_data), ("validation_data", validation_data),
                           ("test_data", test_data)):
            if data is None or len(data) != 2:
                raise InputError(f"{name} must be a pair (images, labels), as load_data_shared gives")
        n = len(training_data[1])
        config = TrainingConfig(epochs=epochs, mini_batch_size=mini_batch_size, eta=eta, lmbda=lmbda,
                                lmbda_scale="batches", shuffle=False, seed=self.seed, restore_best=False)
        batches = n // mini_batch_size
        self.history = train(self.net, training_data, config, validation_data=validation_data, test_data=test_data,
                             on_epoch=lambda h: _print_epoch(h))
        history = self.history
        print("Finished training network.")
        if history.best_epoch is not None:
            iteration = batches * history.best_epoch + batches - 1
            print(f"Best validation accuracy of {history.best_accuracy:.2%} obtained at iteration {iteration}")
            print(f"Corresponding test accuracy of {history.best_test_accuracy:.2%}")
        if history.stop_reason not in ("completed",):
            print(f"Note: {history.message}.")

    def feedforward(self, images):
        """Probabilities (n, 10) of images (n, 784) at inference."""
        return self.net.log_probabilities(images).exp()

    def accuracy(self, data):
        """The fraction of a pair (images, labels) classified correctly."""
        return self.net.accuracy(*data)


def _print_epoch(history):
    epoch = history.epochs[-1]
    print(f"Epoch {epoch}: validation accuracy {history.evaluation_accuracy[-1]:.2%}", flush=True)
    if history.best_epoch == epoch:
        print("This is the best validation accuracy to date.")
        if history.test_accuracy:
            print(f"The corresponding test accuracy is {history.test_accuracy[-1]:.2%}")
