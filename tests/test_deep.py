"""Chapter 6's convolutional networks on PyTorch (``nndl.deep``), checked against independent computations.

Everything here is tiny (8x8 or smaller images, a few filters, float64 where
exactness matters) and runs on the CPU in a few seconds:

* each layer against SciPy / NumPy, its initial weights' statistics, both dropout styles;
* the cost's L2 term by hand, its gradient by finite differences (gradcheck);
* one and two steps of ``train`` against a hand-written book update, stored order, learning;
* the best epoch (ties), files (round trip and every kind of bad file), resuming, divergence;
* bad input, the ensemble, the CPU device path, and that ``import nndl`` never needs torch.
"""

import copy
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import correlate2d

from nndl.deep.checkpoint import load_checkpoint, load_model, save_model
from nndl.deep.config import ConvNetConfig
from nndl.deep.device import fast_kernels, resolve_device
from nndl.deep.ensemble import average_probabilities, evaluate_ensemble, majority_vote
from nndl.deep.layers import ConvPool, FullyConnected, Softmax
from nndl.deep.network import ConvNetwork
from nndl.deep.train import train
from nndl.errors import ConfigError, InputError, ModelFileError
from nndl.training.config import TrainingConfig
from nndl.training.plateau import Plateau

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F64 = torch.float64


# --- shared helpers ------------------------------------------------------------




def tiny_config(*, size=8, filters=3, filter=3, pool=2, conv_activation="sigmoid", hidden=6,
                hidden_activation="sigmoid", n_out=2, p_conv=0.0, p_hidden=0.0, p_softmax=0.0, init="book",
                dropout="book", dtype="float64", channels=1):
    """A conv-pool -> fully-connected -> softmax network on (channels, size, size) images."""
    return ConvNetConfig(
        input_shape=(channels, size, size),
        layers=({"type": "conv-pool", "filters": filters, "filter": filter, "pool": pool,
                 "activation": conv_activation, "p_dropout": p_conv},
                {"type": "fully-connected", "n_out": hidden, "activation": hidden_activation, "p_dropout": p_hidden},
                {"type": "softmax", "n_out": n_out, "p_dropout": p_softmax}),
        init=init, dropout=dropout, dtype=dtype)


def blob_data(n, seed, size=8, dtype=torch.float32):
    """Two classes of size x size images: a bright 3x3 blob top-left (0) or bottom-right (1), on noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.rand(n, 1, size, size, generator=g, dtype=dtype) * 0.3
    for i, label in enumerate(labels.tolist()):
        if label == 0:
            images[i, 0, 1:4, 1:4] += 0.7
        else:
            images[i, 0, size - 4:size - 1, size - 4:size - 1] += 0.7
    return images, labels


def random_data(n, seed, shape=(1, 8, 8), k=2, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g, dtype=dtype), torch.randint(0, k, (n,), generator=g)


def params_of(net):
    return {name: p.detach().clone() for name, p in net.named_parameters()}


def max_abs_diff(a, b):
    return max(float((a[name].double() - b[name].double()).abs().max()) for name in a)


def randomise(net, seed, std=0.5):
    """Every parameter N(0, std^2) (the book's softmax starts at zero, which hides the earlier layers' gradients)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64).to(p.dtype) * std)
    return net


def np_activation(name, z):
    return {"sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)), "tanh": np.tanh,
            "relu": lambda v: np.maximum(v, 0.0), "linear": lambda v: v}[name](z)


def book_step(net, xb, yb, eta, lmbda, divisor):
    """The book's update on one mini-batch, by hand: C = mean NLL + lmbda/(2 d) sum w^2; p <- p - eta dC/dp."""
    logp = net(xb)
    nll = -logp[torch.arange(xb.shape[0]), yb].mean()
    l2 = sum((layer.weight ** 2).sum() for layer in net.layers)
    cost = nll + 0.5 * lmbda / divisor * l2
    params = list(net.parameters())
    grads = torch.autograd.grad(cost, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(eta * g)


# --- 1. each layer against an independent computation -------------------------------


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "linear"])
def test_conv_pool_is_valid_correlation_then_max_pool_then_bias_and_activation(activation):
    g = torch.Generator().manual_seed(0)
    # Non-square filter and pool, and a convolution output (5x8) that the pool (2x3) does not divide: floor.
    layer = ConvPool((2, 7, 9), filters=3, filter=(3, 2), pool=(2, 3), activation=activation, dtype=F64)
    layer.reset_parameters(g)
    x = torch.randn(4, 2, 7, 9, generator=g, dtype=F64)
    out = layer(x).detach().numpy()
    assert out.shape == (4, 3, 2, 2) and layer.out_shape == (3, 2, 2)

    xn, w, b = x.numpy(), layer.weight.detach().numpy(), layer.bias.detach().numpy()
    expected = np.empty((4, 3, 2, 2))
    for n in range(4):
        for f in range(3):
            z = sum(correlate2d(xn[n, c], w[f, c], mode="valid") for c in range(2))   # (5, 8)
            assert z.shape == (5, 8)
            pooled = z[:4, :6].reshape(2, 2, 2, 3).max(axis=(1, 3))                   # floor: drop a row, 2 columns
            expected[n, f] = np_activation(activation, pooled + b[f])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "linear"])
def test_fully_connected_is_sigma_of_x_w_transpose_plus_b(activation):
    g = torch.Generator().manual_seed(1)
    layer = FullyConnected(6, 4, activation, dtype=F64)
    layer.reset_parameters(g)
    x = torch.randn(5, 2, 3, generator=g, dtype=F64)         # flattened to (5, 6)
    out = layer(x).detach().numpy()
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    assert w.shape == (4, 6)
    expected = np_activation(activation, x.numpy().reshape(5, 6) @ w.T + b)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_softmax_returns_log_probabilities_that_sum_to_one():
    g = torch.Generator().manual_seed(2)
    layer = Softmax(6, 5, init="fan-in", dtype=F64)
    layer.reset_parameters(g)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(5, generator=g, dtype=F64))
    x = torch.randn(7, 6, generator=g, dtype=F64)
    out = layer(x).detach().numpy()
    z = x.numpy() @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
    expected = z - z.max(axis=1, keepdims=True)
    expected = expected - np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0, atol=1e-12)


def test_network_chains_the_layers_and_accepts_flat_images():
    config = tiny_config(size=9, filters=2, filter=(3, 2), pool=(2, 3), hidden=5, n_out=3)
    assert config.shapes() == [((1, 9, 9), (2, 3, 2)), ((2, 3, 2), (5,)), ((5,), (3,))]
    net = randomise(ConvNetwork(config, seed=0), 1)
    x = torch.rand(4, 1, 9, 9, dtype=F64)
    a = x
    for layer in net.layers:
        a = layer(a)
    assert torch.equal(net(x), a)
    assert torch.equal(net(x.reshape(4, 81)), a)
    assert config.describe() == ("conv-pool 2 3x2/2x3 sigmoid -> fully-connected 5 sigmoid -> softmax 3")
    assert ConvNetConfig.from_dict(config.to_dict()) == config


# --- 2. initial weights ---------------------------------------------------------------


def _check_normal(t, std, rel=0.1):
    t = t.detach().double().flatten()
    assert abs(float(t.mean())) < 5 * std / math.sqrt(t.numel())
    assert float(t.std()) == pytest.approx(std, rel=rel)


def test_book_init_of_a_conv_pool_layer_is_normal_with_variance_one_over_its_fan_out():
    # 20 filters 5x5, pool 2x2: each input feeds 20*25/4 = 125 outputs, std sqrt(4/500). The 10 input
    # channels do not count (they only give more samples to measure).
    layer = ConvPool((10, 12, 12), 20, (5, 5), (2, 2), "relu", init="book", dtype=F64)
    layer.reset_parameters(torch.Generator().manual_seed(0))
    _check_normal(layer.weight, math.sqrt(4 / 500))


def test_book_init_of_fully_connected_and_softmax_layers():
    g = torch.Generator().manual_seed(1)
    fc = FullyConnected(40, 2000, "sigmoid", init="book", dtype=F64)
    fc.reset_parameters(g)
    _check_normal(fc.weight, math.sqrt(1 / 2000))
    _check_normal(fc.bias, 1.0)                                  # biases N(0, 1)
    soft = Softmax(40, 10, init="book", dtype=F64)
    soft.reset_parameters(g)
    assert not soft.weight.any() and not soft.bias.any()        # network3 starts the softmax at zero
    conv = ConvPool((1, 40, 40), 3000, (1, 1), (1, 1), "tanh", init="book", dtype=F64)
    conv.reset_parameters(g)
    _check_normal(conv.bias, 1.0)


@pytest.mark.parametrize("activation, gain", [("relu", 2.0), ("sigmoid", 1.0), ("tanh", 1.0)])
def test_fan_in_init(activation, gain):
    g = torch.Generator().manual_seed(2)
    conv = ConvPool((8, 12, 12), 50, (5, 5), (2, 2), activation, init="fan-in", dtype=F64)
    conv.reset_parameters(g)
    _check_normal(conv.weight, math.sqrt(gain / (8 * 25)))
    assert not conv.bias.any()
    fc = FullyConnected(300, 40, activation, init="fan-in", dtype=F64)
    fc.reset_parameters(g)
    _check_normal(fc.weight, math.sqrt(gain / 300))
    assert not fc.bias.any()
    soft = Softmax(300, 40, init="fan-in", dtype=F64)
    soft.reset_parameters(g)
    _check_normal(soft.weight, math.sqrt(1 / 300))
    assert not soft.bias.any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_seed_decides_the_initial_network(dtype):
    config = tiny_config(dtype=dtype)
    a, b, c = ConvNetwork(config, seed=5), ConvNetwork(config, seed=5), ConvNetwork(config, seed=6)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert p.dtype == getattr(torch, dtype)
        assert torch.equal(p, q), name
        if "layers.2" not in name:                               # the softmax starts at zero either way
            assert not torch.equal(p, r), name
    # Drawn in float64 then cast: the float32 network is the float64 one rounded.
    n32, n64 = ConvNetwork(tiny_config(dtype="float32"), seed=5), ConvNetwork(tiny_config(), seed=5)
    for p, q in zip(n32.parameters(), n64.parameters()):
        assert torch.equal(p, q.float())


# --- 3. dropout --------------------------------------------------------------------


def _fc_pair(p, style, seed=0, n_in=30, n_out=4, activation="sigmoid"):
    """A layer with dropout p and the same layer without dropout (same weights)."""
    layer = FullyConnected(n_in, n_out, activation, p, dropout=style, dtype=F64)
    layer.reset_parameters(torch.Generator().manual_seed(seed))
    plain = FullyConnected(n_in, n_out, activation, 0.0, dropout=style, dtype=F64)
    plain.load_state_dict(layer.state_dict())
    return layer, plain


def test_book_dropout_in_training_masks_the_inputs_with_zeros_and_ones():
    p = 0.3
    layer, plain = _fc_pair(p, "book")
    layer.train()
    x = torch.rand(10, 30, dtype=F64) + 0.5                      # no zeros, so the mask can be read off
    dropped = layer.drop(x, torch.Generator().manual_seed(7))
    mask = dropped / x
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    out = layer(x, torch.Generator().manual_seed(7))
    assert torch.equal(out, plain(dropped))                      # the layer is its forward of the masked input

    big = torch.ones(200_000, dtype=F64).reshape(1000, 200)
    fraction = float((layer.drop(big, torch.Generator().manual_seed(8)) == 0).double().mean())
    assert fraction == pytest.approx(p, abs=0.01)


def _scaled_twin(layer, p):
    twin = copy.deepcopy(layer)
    twin.p_dropout = 0.0
    with torch.no_grad():
        twin.weight.mul_(1 - p)
    return twin


def test_book_dropout_at_inference_is_the_weights_scaled_by_one_minus_p():
    p = 0.4
    g = torch.Generator().manual_seed(3)
    layers = [FullyConnected(12, 5, "tanh", p, dtype=F64), Softmax(12, 3, p, init="fan-in", dtype=F64),
              ConvPool((2, 6, 6), 3, (3, 3), (2, 2), "relu", p, dtype=F64)]
    inputs = [torch.randn(4, 12, dtype=F64), torch.randn(4, 12, dtype=F64), torch.randn(4, 2, 6, 6, dtype=F64)]
    for layer, x in zip(layers, inputs):
        layer.reset_parameters(g)
        layer.eval()
        twin = _scaled_twin(layer, p).eval()
        torch.testing.assert_close(layer(x), twin(x), rtol=1e-12, atol=1e-12)
        assert not torch.allclose(layer(x), _scaled_twin(layer, 0.0)(x))


def test_inverted_dropout_scales_kept_inputs_in_training_and_nothing_at_inference():
    p = 0.25
    layer, plain = _fc_pair(p, "inverted")
    x = torch.rand(20, 30, dtype=F64) + 0.5
    layer.train()
    dropped = layer.drop(x, torch.Generator().manual_seed(1))
    kept = dropped != 0
    assert 0 < int(kept.sum()) < x.numel()
    torch.testing.assert_close(dropped[kept], x[kept] / (1 - p), rtol=1e-15, atol=0)
    layer.eval()
    plain.eval()
    assert torch.equal(layer(x), plain(x))


@pytest.mark.parametrize("style", ["book", "inverted"])
def test_training_output_equals_the_inference_output_in_expectation(style):
    """Mean over many masks of the training pre-activation = the inference pre-activation, in both styles."""
    p = 0.5
    layer, _ = _fc_pair(p, style, n_in=20, n_out=3, activation="linear")
    x = torch.rand(1, 20, dtype=F64).expand(20_000, 20)          # one example under 20,000 masks
    layer.train()
    mean = layer(x, torch.Generator().manual_seed(2)).mean(dim=0)
    layer.eval()
    expected = layer(x[:1])[0]
    torch.testing.assert_close(mean, expected, rtol=0, atol=0.03)
    # And the two styles agree at inference when the book's weights are the inverted ones over (1 - p).
    book, _ = _fc_pair(p, "book", n_in=20, n_out=3, activation="linear")
    inverted, _ = _fc_pair(p, "inverted", n_in=20, n_out=3, activation="linear")
    with torch.no_grad():
        book.weight.copy_(inverted.weight / (1 - p))
    book.eval()
    inverted.eval()
    torch.testing.assert_close(book(x[:1]), inverted(x[:1]), rtol=1e-12, atol=1e-12)


def test_the_generator_makes_dropout_masks_reproducible():
    net = ConvNetwork(tiny_config(p_conv=0.2, p_hidden=0.5, p_softmax=0.3, init="fan-in"), seed=0)
    net.train()
    x = torch.rand(6, 1, 8, 8, dtype=F64)
    a = net(x, torch.Generator().manual_seed(11))
    b = net(x, torch.Generator().manual_seed(11))
    c = net(x, torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    net.eval()                                                    # no masks at inference
    assert torch.equal(net(x, torch.Generator().manual_seed(11)), net(x, torch.Generator().manual_seed(12)))


# --- 4. the L2 term --------------------------------------------------------------------


def test_the_cost_adds_half_lambda_over_d_times_the_squares_of_the_weights_only():
    net = randomise(ConvNetwork(tiny_config(), seed=0), 3)
    x, y = random_data(5, 0)
    lmbda, divisor = 0.7, 3
    by_hand = sum(float((p.detach() ** 2).sum()) for name, p in net.named_parameters() if name.endswith("weight"))
    assert by_hand > 0
    with torch.no_grad():
        difference = float(net.cost(x, y, lmbda, divisor) - net.cost(x, y))
        assert difference == pytest.approx(0.5 * lmbda / divisor * by_hand, rel=1e-12)
        assert float(net.l2()) == pytest.approx(by_hand, rel=1e-12)
        for layer in net.layers:                                  # the biases are not penalised
            layer.bias.add_(10.0)
        assert float(net.cost(x, y, lmbda, divisor) - net.cost(x, y)) == pytest.approx(difference, rel=1e-12)
        # and the cost without the term is the mean log-likelihood
        assert float(net.cost(x, y)) == pytest.approx(float(-net(x)[torch.arange(5), y].mean()), rel=1e-14)


# --- 5. gradients by finite differences ----------------------------------------------------


class _CostOf(torch.nn.Module):
    def __init__(self, net, lmbda, divisor):
        super().__init__()
        self.net, self.lmbda, self.divisor = net, lmbda, divisor

    def forward(self, x, y):
        return self.net.cost(x, y, self.lmbda, self.divisor)


def _kink_margin(net, x):
    """The smallest distance of any ReLU input from 0 and of any pooled maximum from its runner-up."""
    with torch.no_grad():
        return _margins(net, x)


def _margins(net, x):
    margins = []
    a = x
    for layer in net.layers:
        if isinstance(layer, ConvPool):
            z = F.conv2d(a, layer.weight, layer.bias)
            oh, ow = layer.out_shape[1:]
            (ph, pw) = layer.pool
            windows = z[:, :, :oh * ph, :ow * pw].reshape(*z.shape[:2], oh, ph, ow, pw)
            windows = windows.permute(0, 1, 2, 4, 3, 5).reshape(*z.shape[:2], oh, ow, ph * pw)
            top2 = windows.topk(2, dim=-1).values
            margins.append(float((top2[..., 0] - top2[..., 1]).min()))
            pre = top2[..., 0]
        elif isinstance(layer, FullyConnected):
            pre = F.linear(a.reshape(a.shape[0], -1), layer.weight, layer.bias)
        else:
            break
        if layer.activation == "relu":
            margins.append(float(pre.abs().min()))
        a = layer(a)
    return min(margins)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_gradient_of_the_cost_passes_gradcheck(activation):
    config = tiny_config(size=6, filters=2, filter=3, pool=2, conv_activation=activation, hidden=4,
                         hidden_activation=activation, n_out=3)
    net = randomise(ConvNetwork(config, seed=0), 4)
    x, y = random_data(3, 1, shape=(1, 6, 6), k=3)
    # Away from the kinks of max and ReLU: finite differences (eps 1e-6) never cross one.
    assert _kink_margin(net, x) > 1e-3
    wrapper = _CostOf(net, lmbda=0.3, divisor=2)
    names = [f"net.{name}" for name, _ in net.named_parameters()]
    start = tuple(p.detach().clone().requires_grad_(True) for p in net.parameters())

    def cost(*params):
        return torch.func.functional_call(wrapper, dict(zip(names, params)), (x, y))

    assert torch.autograd.gradcheck(cost, start, eps=1e-6, atol=1e-6, rtol=1e-5)


# --- 6 and 7. train against the book's update, in stored order ----------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_training_step_is_the_books_update(dtype):
    m, eta, lmbda = 6, 0.5, 0.8
    net = randomise(ConvNetwork(tiny_config(dtype=dtype), seed=0), 5)
    reference = copy.deepcopy(net)
    x, y = random_data(m, 2, dtype=getattr(torch, dtype))
    history = train(net, (x, y), epochs=1, mini_batch_size=m, eta=eta, lmbda=lmbda, lmbda_scale="batches",
                    shuffle=False, seed=0)
    assert history.epochs == [0] and history.stop_reason == "completed"
    book_step(reference, x, y, eta, lmbda, divisor=1)             # one mini-batch: lambda / 1
    assert max_abs_diff(params_of(net), params_of(reference)) <= 1e-6
    before = params_of(randomise(ConvNetwork(tiny_config(dtype=dtype), seed=0), 5))
    assert max_abs_diff(params_of(net), before) > 1e-3             # the step moved the parameters


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_steps_divide_lambda_by_the_number_of_mini_batches(dtype):
    m, eta, lmbda = 5, 0.3, 1.5
    net = randomise(ConvNetwork(tiny_config(dtype=dtype), seed=1), 6)
    reference, other_divisor = copy.deepcopy(net), copy.deepcopy(net)
    x, y = random_data(2 * m + 1, 3, dtype=getattr(torch, dtype))  # the odd example is never used: n // m = 2
    train(net, (x, y), epochs=1, mini_batch_size=m, eta=eta, lmbda=lmbda, lmbda_scale="batches", shuffle=False,
          seed=0)
    for j in range(2):
        book_step(reference, x[j * m:(j + 1) * m], y[j * m:(j + 1) * m], eta, lmbda, divisor=2)
        book_step(other_divisor, x[j * m:(j + 1) * m], y[j * m:(j + 1) * m], eta, lmbda, divisor=2 * m + 1)
    assert max_abs_diff(params_of(net), params_of(reference)) <= 1e-6
    assert max_abs_diff(params_of(net), params_of(other_divisor)) > 1e-4   # lambda / n would differ


def test_lmbda_scale_n_divides_lambda_by_the_training_set_size():
    m, eta, lmbda = 4, 0.3, 2.0
    net = randomise(ConvNetwork(tiny_config(), seed=1), 7)
    reference = copy.deepcopy(net)
    x, y = random_data(2 * m, 4)
    train(net, (x, y), epochs=1, mini_batch_size=m, eta=eta, lmbda=lmbda, lmbda_scale="n", shuffle=False, seed=0)
    for j in range(2):
        book_step(reference, x[j * m:(j + 1) * m], y[j * m:(j + 1) * m], eta, lmbda, divisor=2 * m)
    assert max_abs_diff(params_of(net), params_of(reference)) <= 1e-6


def test_stored_order_takes_consecutive_slices_and_shuffling_changes_the_result():
    m, eta, lmbda = 4, 0.4, 0.5
    start = randomise(ConvNetwork(tiny_config(), seed=2), 8)
    x, y = random_data(3 * m, 5)
    stored = copy.deepcopy(start)
    train(stored, (x, y), epochs=2, mini_batch_size=m, eta=eta, lmbda=lmbda, lmbda_scale="batches",
          shuffle=False, seed=0)
    in_order, reversed_order = copy.deepcopy(start), copy.deepcopy(start)
    for _ in range(2):                                            # the same order every epoch
        for j in range(3):
            book_step(in_order, x[j * m:(j + 1) * m], y[j * m:(j + 1) * m], eta, lmbda, divisor=3)
        for j in reversed(range(3)):
            book_step(reversed_order, x[j * m:(j + 1) * m], y[j * m:(j + 1) * m], eta, lmbda, divisor=3)
    assert max_abs_diff(params_of(stored), params_of(in_order)) <= 1e-6
    assert max_abs_diff(params_of(stored), params_of(reversed_order)) > 1e-6

    shuffled = copy.deepcopy(start)
    train(shuffled, (x, y), epochs=2, mini_batch_size=m, eta=eta, lmbda=lmbda, lmbda_scale="batches",
          shuffle=True, seed=0)
    assert max_abs_diff(params_of(stored), params_of(shuffled)) > 1e-6
    again = copy.deepcopy(start)                                  # the seed decides the shuffle
    train(again, (x, y), epochs=2, mini_batch_size=m, eta=eta, lmbda=lmbda, lmbda_scale="batches",
          shuffle=True, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(shuffled.parameters(), again.parameters()))


def test_momentum_step_adds_the_penalty_to_the_velocity():
    m, eta, lmbda, mu = 3, 0.2, 0.6, 0.7
    net = randomise(ConvNetwork(tiny_config(), seed=3), 9)
    reference = copy.deepcopy(net)
    x, y = random_data(2 * m, 6)
    train(net, (x, y), epochs=1, mini_batch_size=m, eta=eta, lmbda=lmbda, lmbda_scale="batches", momentum=mu,
          shuffle=False, seed=0)
    params = list(reference.parameters())
    velocities = [torch.zeros_like(p) for p in params]
    for j in range(2):
        xb, yb = x[j * m:(j + 1) * m], y[j * m:(j + 1) * m]
        cost = -reference(xb)[torch.arange(m), yb].mean() + 0.5 * lmbda / 2 * sum(
            (layer.weight ** 2).sum() for layer in reference.layers)
        grads = torch.autograd.grad(cost, params)
        with torch.no_grad():
            for p, v, g in zip(params, velocities, grads):
                v.mul_(mu).sub_(eta * g)
                p.add_(v)
    assert max_abs_diff(params_of(net), params_of(reference)) <= 1e-6


# --- 8. learning ------------------------------------------------------------------------


def learner_config():
    return ConvNetConfig(input_shape=(1, 8, 8), dtype="float32", layers=(
        {"type": "conv-pool", "filters": 4, "filter": 3, "pool": 2, "activation": "relu"},
        {"type": "fully-connected", "n_out": 16, "activation": "relu"},
        {"type": "softmax", "n_out": 2}))


def test_a_tiny_network_learns_blobs():
    training, validation, test = blob_data(200, 0), blob_data(100, 1), blob_data(100, 2)
    net = ConvNetwork(learner_config(), seed=1)
    assert net.accuracy(*validation) < 0.8                        # the zero softmax: one class for everything
    seen = []
    history = train(net, training, epochs=4, mini_batch_size=10, eta=0.1, validation_data=validation,
                    test_data=test, seed=0, on_epoch=lambda h: seen.append(len(h.epochs)))
    assert seen == [1, 2, 3, 4]
    assert history.stop_reason == "completed"
    assert history.epochs == [0, 1, 2, 3]
    assert len(history.evaluation_accuracy) == len(history.test_accuracy) == len(history.eta) == 4
    assert history.n_training == 200 and history.n_evaluation == 100 and history.n_test == 100
    assert history.evaluation_accuracy[-1] >= 0.95
    assert net.accuracy(*training) >= 0.95
    assert history.evaluation_accuracy[-1] == pytest.approx(net.accuracy(*validation))
    assert history.test_accuracy[-1] == pytest.approx(net.accuracy(*test))
    best = max(history.evaluation_accuracy)
    last_of_best = max(i for i, a in enumerate(history.evaluation_accuracy) if a == best)
    assert history.best_epoch == history.epochs[last_of_best]
    assert history.best_accuracy == best
    assert history.best_test_accuracy == history.test_accuracy[last_of_best]
    predictions = net.predict(validation[0])
    assert predictions.dtype == torch.int64 and predictions.shape == (100,)
    accuracy, cost = net.measure(*validation)
    assert accuracy == pytest.approx(float((predictions == validation[1]).double().mean()))
    assert cost == pytest.approx(float(F.nll_loss(net.log_probabilities(validation[0]), validation[1])), rel=1e-5)


# --- 9. ties count as a new best ----------------------------------------------------------


def test_plateau_with_ties_makes_the_last_of_equal_accuracies_the_best():
    with_ties, without = Plateau(ties=True), Plateau()
    for epoch, accuracy in enumerate([0.5, 0.7, 0.7, 0.6]):
        with_ties.update(epoch, accuracy)
        without.update(epoch, accuracy)
    assert (with_ties.best_epoch, with_ties.best, with_ties.since_best) == (2, 0.7, 1)
    assert (without.best_epoch, without.best, without.since_best) == (1, 0.7, 2)


def test_train_counts_an_equal_validation_accuracy_as_the_new_best():
    training, validation, test = blob_data(40, 3), blob_data(30, 4), blob_data(30, 5)
    net = ConvNetwork(learner_config().replace(init="fan-in"), seed=2)
    history = train(net, training, epochs=4, mini_batch_size=10, eta=1e-10, validation_data=validation,
                    test_data=test, seed=0)
    assert len(set(history.evaluation_accuracy)) == 1             # eta tiny: nothing changes
    assert history.best_epoch == 3
    assert history.best_test_accuracy == history.test_accuracy[3]


# --- 10. files -------------------------------------------------------------------------------


class NotATensor:
    def __init__(self):
        self.value = 42


class RunsCode:
    """Unpickling this would call open(marker, "w"), creating the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def saved_model(tmp_path):
    net = randomise(ConvNetwork(tiny_config(dtype="float32", p_hidden=0.5), seed=0), 1)
    path = tmp_path / "net.pt"
    save_model(net, path, {"epochs": 3, "note": "ünïcode", "nested": {"a": [1, 2.5]}})
    return net, path


def test_save_then_load_gives_the_same_network_and_metadata(saved_model):
    net, path = saved_model
    loaded = load_model(path)
    assert loaded.config == net.config
    assert loaded.metadata == {"epochs": 3, "note": "ünïcode", "nested": {"a": [1, 2.5]}}
    x = torch.rand(7, 1, 8, 8)
    assert torch.equal(loaded.log_probabilities(x), net.log_probabilities(x))
    for (name, p), q in zip(net.named_parameters(), loaded.parameters()):
        assert torch.equal(p, q) and p.dtype == q.dtype, name


def _content(path):
    return torch.load(path, weights_only=True)


def _rewrite(path, target, change):
    content = _content(path)
    change(content)
    torch.save(content, target)
    return target


def _bad_files(path, tmp_path):
    import json
    rng = np.random.default_rng(0)
    files = {}
    files["random bytes"] = tmp_path / "random.pt"
    files["random bytes"].write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    raw = path.read_bytes()
    files["truncated"] = tmp_path / "truncated.pt"
    files["truncated"].write_bytes(raw[:len(raw) // 2])
    files["empty"] = tmp_path / "empty.pt"
    files["empty"].write_bytes(b"")
    files["pickled object"] = tmp_path / "object.pt"
    torch.save({"format": "nndl-conv", "x": NotATensor()}, files["pickled object"])
    files["not a dict"] = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], files["not a dict"])

    def set_key(key, value):
        return lambda c: c.__setitem__(key, value)

    def set_param(name, value):
        return lambda c: c["parameters"].__setitem__(name, value)

    def header(change):
        def apply(c):
            h = json.loads(c["header"])
            change(h)
            c["header"] = json.dumps(h)
        return apply

    nan_weight = _content(path)["parameters"]["layers.1.weight"].clone()
    nan_weight[0, 0] = float("nan")
    changes = {
        "wrong format name": set_key("format", "nndl-model"),
        "newer version": set_key("version", 2),
        "parameter of the wrong shape": set_param("layers.0.weight", torch.zeros(3, 1, 4, 4)),
        "nan parameter": set_param("layers.1.weight", nan_weight),
        "integer parameter": set_param("layers.1.bias", torch.zeros(6, dtype=torch.int64)),
        "missing parameter": lambda c: c["parameters"].pop("layers.2.bias"),
        "extra parameter": set_param("layers.3.weight", torch.zeros(2)),
        "header not JSON": set_key("header", "{not json"),
        "invalid architecture": header(lambda h: h["network"]["layers"].reverse()),   # softmax first
        "unknown layer setting": header(lambda h: h["network"]["layers"][0].__setitem__("stride", 2)),
    }
    for what, change in changes.items():
        files[what] = _rewrite(path, tmp_path / (what.replace(" ", "-") + ".pt"), change)
    return files


def test_every_kind_of_bad_file_is_a_model_file_error_naming_the_file(saved_model, tmp_path):
    _, path = saved_model
    for what, bad in _bad_files(path, tmp_path).items():
        with pytest.raises(ModelFileError) as info:
            load_model(bad)
        assert str(bad) in str(info.value), what
    with pytest.raises(ModelFileError, match="newer"):
        load_model(tmp_path / "newer-version.pt")
    with pytest.raises(ModelFileError, match=r"\(3, 1, 4, 4\)"):
        load_model(tmp_path / "parameter-of-the-wrong-shape.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pt")
    with pytest.raises(ModelFileError, match="directory"):
        load_model(tmp_path)


def test_loading_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"format": "nndl-conv", "version": 1, "x": RunsCode(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="evil.pt"):
        load_model(path)
    with pytest.raises(ModelFileError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_model_file_is_not_a_checkpoint(saved_model):
    _, path = saved_model
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        load_checkpoint(path)


# --- 11. resuming ------------------------------------------------------------------------------


def resume_config():
    return tiny_config(dtype="float32", conv_activation="relu", hidden=8, hidden_activation="relu", p_hidden=0.3,
                       p_softmax=0.2, init="fan-in")


RESUME_SETTINGS = dict(mini_batch_size=5, eta=0.05, momentum=0.5, lmbda=0.1, shuffle=True, seed=7)


def test_resuming_from_a_checkpoint_gives_exactly_the_uninterrupted_run(tmp_path):
    training, validation, test = blob_data(30, 10), blob_data(20, 11), blob_data(20, 12)
    whole = ConvNetwork(resume_config(), seed=3)
    full = train(whole, training, epochs=3, validation_data=validation, test_data=test, **RESUME_SETTINGS)

    path = tmp_path / "run.ckpt"
    first = ConvNetwork(resume_config(), seed=3)
    train(first, training, epochs=1, validation_data=validation, test_data=test, checkpoint=path,
          checkpoint_metadata={"run": "a"}, **RESUME_SETTINGS)
    del first
    net, state, metadata = load_checkpoint(path)
    assert metadata == {"run": "a"} and state["epoch"] == 0
    resumed = train(net, training, epochs=3, validation_data=validation, test_data=test, resume=state,
                    **RESUME_SETTINGS)
    for (name, p), q in zip(whole.named_parameters(), net.parameters()):
        assert torch.equal(p, q), name
    assert resumed.epochs == full.epochs == [0, 1, 2]
    assert resumed.evaluation_accuracy == full.evaluation_accuracy
    assert resumed.test_accuracy == full.test_accuracy
    assert resumed.best_epoch == full.best_epoch
    assert resumed.config.epochs == 3


def test_a_run_with_augmentation_autocast_and_the_halving_schedule_resumes_at_any_epoch_exactly(tmp_path):
    """beyond-single's way of training (fresh distortions each epoch, bfloat16, halve-on-plateau, best kept)."""
    from nndl.deep.augment import Augmentation
    training, test = blob_data(30, 20), blob_data(20, 22)
    images, labels = blob_data(20, 21)
    validation = (images, labels[torch.randperm(20, generator=torch.Generator().manual_seed(0))])  # hard to better
    config = tiny_config(dtype="float32", conv_activation="relu", hidden=8, hidden_activation="relu",
                         p_softmax=0.5, init="fan-in", dropout="inverted")
    settings = dict(RESUME_SETTINGS, epochs=4, schedule="halve", patience=1, min_eta_ratio=1 / 64, best_on_tie=False,
                    restore_best=True, augmentation=Augmentation(shift=1.0, rotate=10.0, elastic_alpha=2.0,
                                                                 elastic_sigma=1.0),
                    autocast="bfloat16", validation_data=validation, test_data=test)
    whole = ConvNetwork(config, seed=3)
    full = train(whole, training, **settings)
    assert len(set(full.eta)) > 1                       # the schedule halved eta on the way
    for stop in (1, 2, 3):
        path = tmp_path / f"run-{stop}.ckpt"
        first = ConvNetwork(config, seed=3)
        train(first, training, **dict(settings, epochs=stop), checkpoint=path)
        net, state, _ = load_checkpoint(path)
        resumed = train(net, training, **settings, resume=state)
        for (name, p), q in zip(whole.named_parameters(), net.parameters()):
            assert torch.equal(p, q), (stop, name)
        assert resumed.evaluation_accuracy == full.evaluation_accuracy and resumed.eta == full.eta
        assert resumed.best_epoch == full.best_epoch


def test_resuming_needs_the_same_network_and_settings(tmp_path):
    training, validation = blob_data(20, 13), blob_data(10, 14)
    path = tmp_path / "run.ckpt"
    train(ConvNetwork(resume_config(), seed=3), training, epochs=1, validation_data=validation, checkpoint=path,
          **RESUME_SETTINGS)
    _, state, _ = load_checkpoint(path)
    other = ConvNetwork(resume_config().replace(layers=(
        {"type": "conv-pool", "filters": 2, "filter": 3, "pool": 2, "activation": "relu"},
        {"type": "softmax", "n_out": 2})), seed=0)
    with pytest.raises(ConfigError, match="different network"):
        train(other, training, epochs=3, validation_data=validation, resume=state, **RESUME_SETTINGS)
    net, state, _ = load_checkpoint(path)
    with pytest.raises(ConfigError, match="eta"):
        train(net, training, epochs=3, validation_data=validation, resume=state, **{**RESUME_SETTINGS, "eta": 0.1})
    with pytest.raises(ConfigError, match="seed"):
        train(net, training, epochs=3, validation_data=validation, resume=state, **{**RESUME_SETTINGS, "seed": 8})


# --- 12. bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("layers, match", [
    (({"type": "conv-pool", "filters": 2, "filter": 5, "pool": 5}, {"type": "softmax", "n_out": 2}), "pooling"),
    (({"type": "conv-pool", "filters": 2, "filter": 9, "pool": 1}, {"type": "softmax", "n_out": 2}), "filter"),
    (({"type": "fully-connected", "n_out": 4}, {"type": "conv-pool", "filters": 2, "filter": 3},
      {"type": "softmax", "n_out": 2}), "before"),
    (({"type": "softmax", "n_out": 4}, {"type": "fully-connected", "n_out": 2}), "softmax"),
    (({"type": "softmax", "n_out": 4}, {"type": "softmax", "n_out": 2}), "softmax"),
    ((), "softmax"),
    (({"type": "fully-connected", "n_out": 4, "p_dropout": 1.0}, {"type": "softmax", "n_out": 2}), "dropout"),
    (({"type": "fully-connected", "n_out": 4}, {"type": "softmax", "n_out": 2, "p_dropout": -0.1}), "dropout"),
    (({"type": "fully-connected", "n_out": 4, "activation": "softmax"}, {"type": "softmax", "n_out": 2}),
     "activation"),
    (({"type": "conv-pool", "filters": 2, "filter": 3, "stride": 2}, {"type": "softmax", "n_out": 2}), "stride"),
])
def test_configs_whose_layers_do_not_fit_are_refused(layers, match):
    with pytest.raises(ConfigError, match=match):
        ConvNetConfig(input_shape=(1, 8, 8), layers=layers)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_layers_refuse_a_dropout_probability_outside_0_1(p):
    with pytest.raises(ConfigError):
        FullyConnected(4, 2, "sigmoid", p)
    with pytest.raises(ConfigError):
        tiny_config(p_hidden=p)


def test_images_of_the_wrong_shape_are_an_input_error_naming_the_expected_shape():
    net = ConvNetwork(tiny_config(dtype="float32"), seed=0)
    labels = torch.zeros(4, dtype=torch.int64)
    for images in (torch.rand(4, 1, 9, 9), torch.rand(4, 81), np.zeros((4, 2, 8, 8), np.float32)):
        with pytest.raises(InputError, match=r"\(n, 64\) or \(n, 1, 8, 8\)"):
            train(net, (images, labels), epochs=1, mini_batch_size=2, eta=0.1)
        with pytest.raises(InputError, match=r"\(n, 64\) or \(n, 1, 8, 8\)"):
            net.measure(images, labels)
    good = torch.rand(4, 1, 8, 8)
    with pytest.raises(InputError, match="validation data"):
        train(net, (good, labels), epochs=1, mini_batch_size=2, eta=0.1, validation_data=(torch.rand(4, 7), labels))


def test_predict_checks_the_shape_of_4d_images():
    net = ConvNetwork(tiny_config(dtype="float32"), seed=0)
    with pytest.raises(InputError):
        net.predict(torch.rand(3, 1, 4, 16))                     # 64 values per image, but not 8x8


def test_labels_out_of_range_are_an_input_error():
    net = ConvNetwork(tiny_config(dtype="float32"), seed=0)
    images = torch.rand(4, 1, 8, 8)
    for labels in (torch.tensor([0, 1, 2, 0]), torch.tensor([0, -1, 1, 0])):
        with pytest.raises(InputError, match=r"0\.\.1"):
            train(net, (images, labels), epochs=1, mini_batch_size=2, eta=0.1)
        with pytest.raises(InputError, match=r"0\.\.1"):
            net.measure(images, labels)
    with pytest.raises(InputError, match="4 images but 3 labels"):
        net.measure(images, torch.tensor([0, 1, 0]))
    with pytest.raises(InputError, match="inf or nan"):
        net.measure(torch.full((4, 1, 8, 8), float("nan")), torch.zeros(4, dtype=torch.int64))


def test_training_settings_that_cannot_work_are_config_errors():
    net = ConvNetwork(tiny_config(dtype="float32"), seed=0)
    data = (torch.rand(6, 1, 8, 8), torch.zeros(6, dtype=torch.int64))
    with pytest.raises(ConfigError, match="larger than the 6"):
        train(net, data, epochs=1, mini_batch_size=7, eta=0.1)
    with pytest.raises(ConfigError, match="per layer"):
        train(net, data, epochs=1, mini_batch_size=2, eta=0.1, p_dropout=0.5)
    with pytest.raises(ConfigError, match="Nesterov"):
        train(net, data, epochs=1, mini_batch_size=2, eta=0.1, momentum=0.5, nesterov=True)
    with pytest.raises(ConfigError, match="unknown training setting"):
        train(net, data, epochs=1, mini_batch_size=2, eta=0.1, learning_rate=0.1)
    with pytest.raises(ConfigError, match="too large"):                     # weight decay that flips signs
        train(net, data, epochs=1, mini_batch_size=2, eta=1.0, lmbda=3.0, lmbda_scale="batches")
    with pytest.raises(ConfigError, match="evaluation"):
        train(net, data, epochs=1, mini_batch_size=2, eta=0.1, early_stopping=2)
    with pytest.raises(ConfigError, match="TrainingConfig"):
        train(net, data, {"epochs": 1})
    with pytest.raises(ConfigError, match="ConvNetConfig"):
        ConvNetwork({"input_shape": (1, 8, 8)})
    # a TrainingConfig plus keyword settings that change it
    history = train(net, data, TrainingConfig(epochs=5, mini_batch_size=3, eta=0.1), epochs=1)
    assert history.epochs == [0] and history.config.mini_batch_size == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_cuda_without_a_gpu_says_to_use_the_cpu():
    for spec in ("cuda", "cuda:0", "CUDA"):
        with pytest.raises(ConfigError, match="--device cpu"):
            resolve_device(spec)
    with pytest.raises(ConfigError, match="--device cpu"):
        ConvNetwork(tiny_config(), device="cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_device_names():
    assert resolve_device("cpu") == resolve_device(" CPU ") == resolve_device(torch.device("cpu"))
    for spec in ("tpu", "gpu", "", "cpu:x"):
        with pytest.raises(ConfigError):
            resolve_device(spec)
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("meta")


# --- 13. divergence ------------------------------------------------------------------------------


def diverging_config():
    return ConvNetConfig(input_shape=(1, 8, 8), dtype="float32", layers=(
        {"type": "conv-pool", "filters": 3, "filter": 3, "pool": 2, "activation": "relu"},
        {"type": "fully-connected", "n_out": 8, "activation": "relu"},
        {"type": "softmax", "n_out": 2}))


def test_a_run_that_diverges_in_its_first_epoch_keeps_the_initial_weights(tmp_path):
    data = random_data(20, 20, dtype=torch.float32)
    net = ConvNetwork(diverging_config(), seed=1)
    initial = params_of(net)
    path = tmp_path / "run.ckpt"
    history = train(net, data, epochs=3, mini_batch_size=5, eta=1e20, validation_data=data, seed=0,
                    checkpoint=path)
    assert history.stop_reason == "diverged"
    assert "diverged in epoch 0" in history.message
    assert history.epochs == []
    assert all(torch.equal(p, initial[name]) for name, p in net.named_parameters())
    assert not path.exists()


def test_a_run_that_diverges_later_keeps_the_last_good_epoch_and_its_checkpoint(tmp_path):
    training, validation = blob_data(20, 21), blob_data(10, 22)
    net = ConvNetwork(diverging_config(), seed=1)
    path = tmp_path / "run.ckpt"
    good = {}

    def sabotage(history):
        # After epoch 1: remember the weights, then make the next epoch's cost nan.
        if history.epochs[-1] == 1:
            good.update(params_of(net))
            with torch.no_grad():
                net.layers[1].weight[0, 0] = float("nan")

    history = train(net, training, epochs=5, mini_batch_size=5, eta=0.05, validation_data=validation, seed=0,
                    checkpoint=path, on_epoch=sabotage)
    assert history.stop_reason == "diverged" and "epoch 2" in history.message
    assert history.epochs == [0, 1]
    assert all(torch.equal(p, good[name]) for name, p in net.named_parameters())
    saved, state, _ = load_checkpoint(path)
    assert state["epoch"] == 1
    assert all(torch.equal(p, good[name]) for name, p in saved.named_parameters())


def test_divergence_in_the_last_update_of_an_epoch_is_caught(tmp_path):
    data = random_data(20, 20, dtype=torch.float32)
    net = ConvNetwork(diverging_config(), seed=1)
    initial = params_of(net)
    path = tmp_path / "run.ckpt"
    # One mini-batch per epoch: the huge step is the epoch's last, and the cost before it is finite.
    history = train(net, data, epochs=3, mini_batch_size=20, eta=1e20, validation_data=data, seed=0,
                    checkpoint=path)
    assert history.stop_reason == "diverged"
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())
    if not history.epochs:                                  # the first epoch diverged: back to the start
        assert all(torch.equal(p, initial[name]) for name, p in net.named_parameters())
        assert not path.exists()
    else:                                                   # the weights and checkpoint of the last good epoch
        saved, state, _ = load_checkpoint(path)
        assert state["epoch"] == history.epochs[-1]
        assert all(torch.equal(p, q) for p, q in zip(net.parameters(), saved.parameters()))


# --- 14. ensembles ---------------------------------------------------------------------------


def _log(rows):
    return torch.tensor(rows, dtype=torch.float64).clamp_min(1e-9).log()


def test_majority_vote_and_average_of_probabilities():
    # Example 0: two members say class 1 weakly, one says class 2 strongly: the vote says 1, the average 2.
    # Example 1: three members, three different classes: the tie goes to the highest mean probability (1).
    members = [_log([[0.3, 0.4, 0.3], [0.5, 0.3, 0.2]]),
               _log([[0.3, 0.4, 0.3], [0.1, 0.5, 0.4]]),
               _log([[0.01, 0.01, 0.98], [0.3, 0.3, 0.4]])]
    assert majority_vote(members).tolist() == [1, 1]
    assert average_probabilities(members).tolist() == [2, 1]
    assert majority_vote(members).dtype == torch.int64


def test_a_tie_is_broken_among_the_tied_classes_only():
    # Votes 2 for class 0, 2 for class 1, none for class 2 -- which has the highest mean probability.
    members = [_log([[0.53, 0.0, 0.47]]), _log([[0.53, 0.0, 0.47]]),
               _log([[0.0, 0.52, 0.48]]), _log([[0.0, 0.52, 0.48]])]
    assert majority_vote(members).tolist() == [0]
    assert average_probabilities(members).tolist() == [2]
    assert majority_vote(members[2:] + members[:1]).tolist() == [1]       # 2 votes to 1


def test_evaluate_ensemble_reports_members_vote_and_average():
    images, labels = blob_data(25, 30)
    nets = [randomise(ConvNetwork(learner_config(), seed=s), s, std=0.7) for s in range(3)]
    result = evaluate_ensemble(nets, images, labels)
    assert set(result) == {"members", "vote", "average", "n"} and result["n"] == 25
    assert result["members"] == pytest.approx([net.accuracy(images, labels) for net in nets])
    outputs = [net.log_probabilities(images) for net in nets]
    assert result["vote"] == pytest.approx(float((majority_vote(outputs) == labels).double().mean()))
    assert result["average"] == pytest.approx(float((average_probabilities(outputs) == labels).double().mean()))
    flat = evaluate_ensemble(nets, images.reshape(25, 64).numpy(), labels.numpy())
    assert flat == result


# --- 15. the CPU device path ---------------------------------------------------------------------


@pytest.mark.parametrize("before", [True, False])
def test_fast_kernels_restores_the_mkldnn_setting(before):
    original = torch.backends.mkldnn.enabled
    try:
        torch.backends.mkldnn.enabled = before
        with fast_kernels(torch.device("cpu")):
            assert torch.backends.mkldnn.enabled is False
        assert torch.backends.mkldnn.enabled is before
        with pytest.raises(RuntimeError, match="inside"):
            with fast_kernels(torch.device("cpu")):
                raise RuntimeError("inside")
        assert torch.backends.mkldnn.enabled is before
    finally:
        torch.backends.mkldnn.enabled = original


def test_training_leaves_the_mkldnn_setting_as_it_was():
    original = torch.backends.mkldnn.enabled
    train(ConvNetwork(tiny_config(dtype="float32"), seed=0), random_data(4, 0, dtype=torch.float32), epochs=1,
          mini_batch_size=2, eta=0.1)
    assert torch.backends.mkldnn.enabled == original


# --- 16. PyTorch stays optional ----------------------------------------------------------------


def _python(code):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_import_nndl_does_not_import_torch():
    result = _python("import nndl, sys; import nndl.training.config, nndl.cli; "
                     "assert 'torch' not in sys.modules, 'torch was imported'")
    assert result.returncode == 0, result.stderr


def test_without_torch_nndl_deep_says_how_to_install_it():
    result = _python(
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from nndl.errors import MissingDependencyError\n"
        "try:\n"
        "    import nndl.deep.network\n"
        "except MissingDependencyError as e:\n"
        "    assert isinstance(e, ImportError)\n"
        "    print('MESSAGE', e)\n"
        "else:\n"
        "    raise SystemExit('no error')\n")
    assert result.returncode == 0, result.stderr
    assert "MESSAGE" in result.stdout and "pip install" in result.stdout


# --- the gradient of max-pooling at ties --------------------------------------------------------


def test_all_ties_pool_gradient_reaches_every_maximum_and_one_reaches_one():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)          # a blank image: every region is a tie
    grads = {}
    for rule in ("one", "all-ties"):
        layer = ConvPool((1, 5, 5), 1, (2, 2), (2, 2), "linear", pool_gradient=rule, dtype=torch.float64)
        layer.reset_parameters(torch.Generator().manual_seed(0))
        inputs = x.clone().requires_grad_()
        layer(inputs).sum().backward()
        grads[rule] = (inputs.grad, layer.bias.grad.item())
    # 2x2 pooling of the 4x4 convolution output: 4 regions of 4 tied values each.
    assert grads["one"][1] == 4.0 and grads["all-ties"][1] == 16.0
    assert torch.count_nonzero(grads["all-ties"][0]) > torch.count_nonzero(grads["one"][0])
    config = ConvNetConfig(input_shape=(1, 8, 8), layers=[{"type": "conv-pool", "filters": 2, "filter": 3},
                                                         {"type": "softmax", "n_out": 2}], pool_gradient="all-ties")
    assert ConvNetConfig.from_dict(config.to_dict()).pool_gradient == "all-ties"
    with pytest.raises(ConfigError, match="unknown pool gradient"):
        config.replace(pool_gradient="some")


def test_the_progress_bar_counts_every_training_image(monkeypatch):
    import tqdm
    counted = []

    class Counting(tqdm.tqdm):
        def close(self):
            if not self.disable:                   # tqdm closes once more when collected
                counted.append(self.n)
            super().close()

    monkeypatch.setattr(tqdm, "tqdm", Counting)
    net = ConvNetwork(learner_config(), seed=1)
    train(net, blob_data(200, 0), epochs=2, mini_batch_size=10, eta=0.1, seed=0, progress=True)
    assert counted == [200, 200]


# --- bfloat16 autocast ----------------------------------------------------------------------------------------

def test_bfloat16_autocast_learns_blobs_close_to_float32_and_keeps_float32_parameters():
    training, validation = blob_data(200, 0), blob_data(100, 1)
    runs = {}
    for autocast in (None, "bfloat16"):
        net = ConvNetwork(learner_config().replace(dtype="float32"), seed=1)
        history = train(net, training, epochs=4, mini_batch_size=10, eta=0.1, validation_data=validation, seed=0,
                        autocast=autocast)
        assert all(p.dtype == torch.float32 for p in net.parameters())
        runs[autocast] = (history, [p.detach().clone() for p in net.parameters()])
    (h32, p32), (h16, p16) = runs[None], runs["bfloat16"]
    assert h16.evaluation_accuracy[-1] >= 0.95 and h32.evaluation_accuracy[-1] >= 0.95
    assert all(not torch.equal(a, b) for a, b in zip(p32, p16))           # it did compute in another precision
    assert max(float((a - b).abs().max()) for a, b in zip(p32, p16)) < 0.1  # but trained the same network, closely


def test_autocast_is_refused_for_float64_networks_and_unknown_precisions():
    training = blob_data(20, 0, dtype=torch.float64)
    with pytest.raises(ConfigError, match="float32 network"):
        train(ConvNetwork(learner_config().replace(dtype="float64"), seed=1), training, epochs=1, autocast="bfloat16")
    with pytest.raises(ConfigError, match="autocast must be one of"):
        train(ConvNetwork(learner_config().replace(dtype="float32"), seed=1), blob_data(20, 0), epochs=1,
              autocast="float16")


@pytest.mark.parametrize("env, expected", [("1", 1), ("2", 2), (" 3 ", 3), ("0", None), ("two", None), ("", None)])
def test_set_threads_takes_omp_num_threads_from_the_environment(monkeypatch, env, expected):
    import os

    from nndl.deep.device import set_threads
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    try:
        cores = min(8, len(os.sched_getaffinity(0)))
        assert set_threads() == torch.get_num_threads() == (expected or cores)
        assert set_threads(1) == 1                       # a number given wins
    finally:
        torch.set_num_threads(before)
