"""A convolutional network of chapter 6: layers in order, the cost, accuracy and predictions.

The cost is the book's: the mean log-likelihood of the right labels plus an
L2 term on every layer's weights (never the biases),

    C = -(1/m) sum_x ln a^L_y(x) + (lambda / 2d) sum_w w^2,

where d is what ``TrainingConfig.lmbda_scale`` names: the number of
mini-batches per epoch for network3 (its ``num_training_batches``), or the
training-set size n as in network2.
"""

import math

from nndl.deep._torch import F, nn, torch
from nndl.deep.config import ConvNetConfig
from nndl.deep.data import as_tensors
from nndl.deep.device import resolve_device
from nndl.deep.layers import make_layer
from nndl.errors import ConfigError

__all__ = ["ConvNetwork"]

#: Images per forward pass when measuring: on the CPU 100 to 200 were fastest (10,000 test images of the
#: two-conv-pool network in 2.1 s at 100, 3.2 s at 1,000, 5.4 s at 10,000, on one thread).
EVAL_BATCH = 200


class ConvNetwork(nn.Module):
    """Conv-pool layers, fully connected layers and a softmax output, as a ConvNetConfig describes.

    Parameters
    ----------
    config : ConvNetConfig
    device : str or torch.device
        "auto", "cpu", "cuda", ... (see ``nndl.deep.device``).
    seed : int, optional
        Seeds the initial weights (drawn on the CPU, so the same on every device).

    Attributes
    ----------
    config : ConvNetConfig
    layers : nn.ModuleList of layers.ConvPool, layers.FullyConnected, layers.Softmax
    device : torch.device

    Calling the network on images (n, c, h, w) -- or (n, c*h*w) -- gives
    log-probabilities (n, n_classes).
    """

    def __init__(self, config, *, device="cpu", seed=None):
        super().__init__()
        if not isinstance(config, ConvNetConfig):
            raise ConfigError(f"config must be a ConvNetConfig, got {type(config).__name__}")
        self.config = config
        device = resolve_device(device)
        dtype = getattr(torch, config.dtype)
        self.layers = nn.ModuleList(
            make_layer(spec, in_shape, init=config.init, dropout=config.dropout, pool_gradient=config.pool_gradient,
                       device=device, dtype=dtype)
            for spec, (in_shape, _) in zip(config.layers, config.shapes()))
        self.reset_parameters(seed)

    def reset_parameters(self, seed=None):
        """Draw every layer's weights and biases afresh (seeded)."""
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        for layer in self.layers:
            layer.reset_parameters(generator)  # type: ignore[operator]  # (ModuleList items are typed as Module)

    @property
    def device(self):
        return self.layers[0].weight.device

    @property
    def dtype(self):
        return self.layers[0].weight.dtype

    def forward(self, x, generator=None):
        """Log-probabilities (n, n_classes) of images x (n, c, h, w) or (n, c*h*w).

        ``generator`` draws the dropout masks in training mode.
        """
        a = x.reshape(x.shape[0], *self.config.input_shape)
        for layer in self.layers:
            a = layer(a, generator)
        return a

    # --- the cost ---------------------------------------------------------

    def weights(self):
        """The weight tensors of every layer (what the L2 term covers), in order."""
        return [layer.weight for layer in self.layers]

    def biases(self):
        return [layer.bias for layer in self.layers]

    def l2(self):
        """sum of w^2 over every layer's weights (a 0-d tensor)."""
        return sum((w * w).sum() for w in self.weights())

    def cost(self, x, y, lmbda=0.0, divisor=1, generator=None):
        """The book's cost on one mini-batch: mean log-likelihood + 0.5 lambda/divisor sum w^2.

        x: images (m, c, h, w); y: labels (m,). Returns a 0-d tensor (with a graph, in training mode).
        """
        cost = F.nll_loss(self(x, generator), y)
        if lmbda:
            cost = cost + 0.5 * lmbda / divisor * self.l2()
        return cost

    # --- measuring --------------------------------------------------------

    def _batches(self, images, batch_size):
        self.eval()
        with torch.no_grad():
            for k in range(0, images.shape[0], batch_size):
                yield k, self(images[k:k + batch_size])

    def log_probabilities(self, images, batch_size=EVAL_BATCH):
        """Log-probabilities (n, n_classes) at inference (no dropout), in batches; images as for forward."""
        images = self._as_images(images)
        out = torch.empty(images.shape[0], self.config.n_outputs, device=self.device, dtype=self.dtype)
        for k, logp in self._batches(images, batch_size):
            out[k:k + logp.shape[0]] = logp
        return out

    def predict(self, images, batch_size=EVAL_BATCH):
        """The most probable class of each image: int64 tensor (n,)."""
        return self.log_probabilities(images, batch_size).argmax(dim=1)

    def measure(self, images, labels, batch_size=EVAL_BATCH):
        """(accuracy, mean log-likelihood cost without the L2 term) on labelled images, in one pass."""
        images, labels = as_tensors((images, labels), self.config.input_shape, self.config.n_outputs, self.device,
                                    self.dtype, "data")
        correct, total_cost = 0, 0.0
        for k, logp in self._batches(images, batch_size):
            y = labels[k:k + logp.shape[0]]
            correct += int((logp.argmax(dim=1) == y).sum())
            total_cost += float(F.nll_loss(logp, y, reduction="sum"))
        n = max(1, images.shape[0])
        return correct / n, total_cost / n

    def accuracy(self, images, labels, batch_size=EVAL_BATCH):
        """The fraction of images classified correctly."""
        return self.measure(images, labels, batch_size)[0]

    def _as_images(self, images):
        if isinstance(images, torch.Tensor) and tuple(images.shape[1:]) == self.config.input_shape:
            return images.to(device=self.device, dtype=self.dtype)
        labels = torch.zeros(len(images), dtype=torch.int64)
        return as_tensors((images, labels), self.config.input_shape, self.config.n_outputs, self.device,
                          self.dtype, "images")[0]

    def n_parameters(self):
        return sum(math.prod(p.shape) for p in self.parameters())

    def extra_repr(self):
        return self.config.describe()
