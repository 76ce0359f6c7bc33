"""The layers of chapter 6's networks, as torch.nn modules that own their parameters.

Three kinds, as in the book's network3:

``ConvPool``
    a convolutional layer and a max-pooling layer taken together: valid
    convolution (the filter stays inside the image, stride 1) of the input
    maps with ``filters`` shared-weight filters, max-pooling over
    non-overlapping ``pool`` regions (a partial region at the edge is
    dropped), then the shared bias and the activation:
    ``a = sigma(maxpool(w * x) + b)``.
``FullyConnected``
    ``a = sigma(x W^T + b)`` on the flattened input.
``Softmax``
    the output layer, ``log softmax(x W^T + b)``: the network works with
    log-probabilities, and the cost is their mean negative at the right
    labels (the log-likelihood cost).

Each layer can drop its *inputs* during training with probability
``p_dropout`` (the book applies dropout to the fully connected and softmax
layers). Two styles, the same in expectation:

* "book" (network3): inputs are multiplied by a 0/1 mask while training; at
  inference every input is kept and the weights are scaled by (1 - p).
* "inverted": kept inputs are divided by (1 - p) while training; inference
  uses the weights as they are (the usual modern choice).

Initial weights are drawn in float64 on the CPU from a seeded
``torch.Generator`` and then moved, so a seed gives the same network on every
device. Two schemes:

* "book" (network3): weights N(0, 1/n_out), where n_out is the number of
  outputs each input feeds -- for a conv-pool layer filters x filter area /
  pool area; biases N(0, 1); the softmax layer starts at zero.
* "fan-in": weights N(0, g/n_in) with n_in the inputs of one neuron (g = 2
  for ReLU, after He et al. 2015, else 1); biases zero.
"""

import math
from typing import Any

from nndl.deep._torch import F, nn, torch
from nndl.errors import ConfigError, InputError

__all__ = ["ConvPool", "FullyConnected", "Softmax", "ACTIVATIONS", "make_layer", "max_pool"]


def _linear(z):
    return z


#: Activation functions by name (network3's sigmoid, tanh, ReLU and linear).
ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu, "linear": _linear}


class _Layer(nn.Module):
    """What every layer shares: shapes, dropout of the inputs, initialisation."""

    def __init__(self, in_shape, out_shape, p_dropout, init, dropout):
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        if not 0.0 <= p_dropout < 1.0:
            raise ConfigError(f"the dropout probability must be in [0, 1), got {p_dropout!r}")
        if init not in ("book", "fan-in"):
            raise ConfigError(f"unknown weight initialisation {init!r}; choose book or fan-in")
        if dropout not in ("book", "inverted"):
            raise ConfigError(f"unknown dropout style {dropout!r}; choose book or inverted")
        self.p_dropout, self.init, self.dropout = float(p_dropout), init, dropout

    def drop(self, x, generator=None):
        """The inputs as this layer sees them: masked in training, scaled at inference ("book" style).

        x : tensor (n, ...) -> tensor of the same shape.
        """
        p = self.p_dropout
        if not p:
            return x
        if self.training:
            mask = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator)
            return x * mask if self.dropout == "book" else x * mask / (1.0 - p)
        # Scaling the inputs by 1 - p is scaling the weights by 1 - p.
        return x * (1.0 - p) if self.dropout == "book" else x

    def reset_parameters(self, generator=None):
        """Draw fresh weights and biases (see the module docstring), from ``generator`` if given."""
        w_std, b_std = self._init_std()
        with torch.no_grad():
            params: tuple[tuple[Any, float], ...] = ((self.weight, w_std), (self.bias, b_std))
            for param, std in params:
                values = torch.randn(param.shape, generator=generator, dtype=torch.float64) * std \
                    if std else torch.zeros(param.shape, dtype=torch.float64)
                param.copy_(values.to(param.dtype))

    def _init_std(self):
        raise NotImplementedError

    def _fan_in_std(self, n_in, activation):
        return math.sqrt((2.0 if activation == "relu" else 1.0) / n_in)


def max_pool(z, pool):
    """Max-pooling of z (n, c, h, w) over non-overlapping pool = (ph, pw) regions: (n, c, h // ph, w // pw).

    On the CPU the maps are pooled in channels-last layout, where PyTorch's
    kernel is several times faster at the book's sizes (a (10, 20, 24, 24)
    input: 0.16 ms instead of 1.0 ms, one thread), and the result is put back
    in the usual layout. The same numbers either way; the gradient goes to one
    maximum of each region.
    """
    if z.device.type == "cpu":
        return F.max_pool2d(z.contiguous(memory_format=torch.channels_last), pool).contiguous()
    return F.max_pool2d(z, pool)


class _AllTiesMaxPool(torch.autograd.Function):
    """Max-pooling whose gradient goes to every input equal to its region's maximum (Theano's rule)."""

    @staticmethod
    def forward(ctx, z, ph, pw):
        pooled = max_pool(z, (ph, pw))
        ctx.save_for_backward(z, pooled)
        ctx.pool = (ph, pw)
        return pooled

    @staticmethod
    def backward(ctx, grad):
        z, pooled = ctx.saved_tensors
        ph, pw = ctx.pool
        h, w = pooled.shape[2] * ph, pooled.shape[3] * pw
        spread = lambda t: t.repeat_interleave(ph, dim=2).repeat_interleave(pw, dim=3)   # noqa: E731
        grad_z = torch.zeros_like(z)
        grad_z[:, :, :h, :w] = (z[:, :, :h, :w] == spread(pooled)) * spread(grad)
        return grad_z, None, None


def _activation(name):
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class ConvPool(_Layer):
    """Convolution, max-pooling, shared bias and activation (network3's ConvPoolLayer).

    Parameters
    ----------
    in_shape : (channels, height, width)
    filters : int
        Number of feature maps.
    filter : (fh, fw)
        The local receptive field.
    pool : (ph, pw)
        The max-pooling region.
    activation : {"sigmoid", "tanh", "relu", "linear"}
    pool_gradient : {"one", "all-ties"}
        See ``ConvNetConfig``: "all-ties" sends the gradient to every input
        equal to its region's maximum, as Theano did for the book.

    Attributes
    ----------
    weight : Parameter, shape (filters, channels, fh, fw)
    bias : Parameter, shape (filters,)

    Input (n, channels, height, width); output (n, filters, (height - fh + 1)
    // ph, (width - fw + 1) // pw). The bias is added after pooling as in the
    book; since max(z + b) = max(z) + b it is passed to the convolution,
    which is the same arithmetic with one operation fewer.
    """

    def __init__(self, in_shape, filters, filter=(5, 5), pool=(2, 2), activation="sigmoid", p_dropout=0.0, *,
                 init="book", dropout="book", pool_gradient="one", device=None, dtype=torch.float32):
        c, h, w = in_shape
        (fh, fw), (ph, pw) = filter, pool
        super().__init__(in_shape, (filters, (h - fh + 1) // ph, (w - fw + 1) // pw), p_dropout, init, dropout)
        self.filter, self.pool, self.activation = (fh, fw), (ph, pw), activation
        if pool_gradient not in ("one", "all-ties"):
            raise ConfigError(f"unknown pool gradient {pool_gradient!r}; choose one or all-ties")
        self.pool_gradient = pool_gradient
        self.fn = _activation(activation)
        self.weight = nn.Parameter(torch.empty(filters, c, fh, fw, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(filters, device=device, dtype=dtype))

    def _init_std(self):
        filters, c, fh, fw = self.weight.shape
        if self.init == "book":
            return math.sqrt(self.pool[0] * self.pool[1] / (filters * fh * fw)), 1.0
        return self._fan_in_std(c * fh * fw, self.activation), 0.0

    def forward(self, x, generator=None):
        z = F.conv2d(self.drop(x, generator), self.weight, self.bias)       # (n, filters, h - fh + 1, w - fw + 1)
        if self.pool_gradient == "all-ties":
            return self.fn(_AllTiesMaxPool.apply(z, *self.pool))
        return self.fn(max_pool(z, self.pool))                              # (n, filters, out_h, out_w)

    def spec(self):
        return {"type": "conv-pool", "filters": self.weight.shape[0], "filter": list(self.filter),
                "pool": list(self.pool), "activation": self.activation, "p_dropout": self.p_dropout}


class FullyConnected(_Layer):
    """A fully connected layer (network3's FullyConnectedLayer): a = sigma(x W^T + b).

    Attributes
    ----------
    weight : Parameter, shape (n_out, n_in)
        PyTorch's layout (the book stores the transpose, (n_in, n_out)).
    bias : Parameter, shape (n_out,)

    Input (n, n_in) or any (n, ...) with n_in values per example; output (n, n_out).
    """

    def __init__(self, n_in, n_out, activation="sigmoid", p_dropout=0.0, *, init="book", dropout="book", device=None,
                 dtype=torch.float32):
        super().__init__((n_in,), (n_out,), p_dropout, init, dropout)
        self.activation = activation
        self.fn = _activation(activation)
        self.weight = nn.Parameter(torch.empty(n_out, n_in, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(n_out, device=device, dtype=dtype))

    def _init_std(self):
        n_out, n_in = self.weight.shape
        if self.init == "book":
            return math.sqrt(1.0 / n_out), 1.0
        return self._fan_in_std(n_in, self.activation), 0.0

    def forward(self, x, generator=None):
        x = x.reshape(x.shape[0], -1)                                       # (n, n_in)
        return self.fn(F.linear(self.drop(x, generator), self.weight, self.bias))

    def spec(self):
        return {"type": "fully-connected", "n_out": self.weight.shape[0], "activation": self.activation,
                "p_dropout": self.p_dropout}


class Softmax(_Layer):
    """The softmax output layer (network3's SoftmaxLayer), returning log-probabilities.

    Output (n, n_out): log softmax(x W^T + b), so ``.exp()`` gives
    probabilities that sum to 1 and the log-likelihood cost is
    ``-output[range(n), y].mean()``.
    """

    def __init__(self, n_in, n_out=10, p_dropout=0.0, *, init="book", dropout="book", device=None,
                 dtype=torch.float32):
        super().__init__((n_in,), (n_out,), p_dropout, init, dropout)
        self.weight = nn.Parameter(torch.empty(n_out, n_in, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(n_out, device=device, dtype=dtype))

    def _init_std(self):
        n_out, n_in = self.weight.shape
        if self.init == "book":
            return 0.0, 0.0                                                  # network3 starts it at zero
        return math.sqrt(1.0 / n_in), 0.0

    def forward(self, x, generator=None):
        x = x.reshape(x.shape[0], -1)
        return F.log_softmax(F.linear(self.drop(x, generator), self.weight, self.bias), dim=1)

    def spec(self):
        return {"type": "softmax", "n_out": self.weight.shape[0], "p_dropout": self.p_dropout}


def make_layer(spec, in_shape, *, init="book", dropout="book", pool_gradient="one", device=None,
               dtype=torch.float32):
    """The layer a ConvNetConfig layer dict describes, taking inputs of ``in_shape``."""
    kind = spec["type"]
    common = dict(init=init, dropout=dropout, device=device, dtype=dtype)
    if kind == "conv-pool":
        if len(in_shape) != 3:
            raise InputError(f"a conv-pool layer needs image-shaped input (channels, height, width), got {in_shape}")
        return ConvPool(in_shape, spec["filters"], tuple(spec["filter"]), tuple(spec["pool"]), spec["activation"],
                        spec["p_dropout"], pool_gradient=pool_gradient, **common)
    n_in = math.prod(in_shape)
    if kind == "fully-connected":
        return FullyConnected(n_in, spec["n_out"], spec["activation"], spec["p_dropout"], **common)
    return Softmax(n_in, spec["n_out"], spec["p_dropout"], **common)
