"""The chapter 6 configuration: a convolutional network described layer by layer, without PyTorch.

``ConvNetConfig`` is pure data -- validated on construction, written to and
read from JSON -- so the presets can be listed, files described and runs
compared where PyTorch is not installed; building the network it describes
needs PyTorch (``nndl.deep.network.ConvNetwork``).
"""

from dataclasses import dataclass
from typing import Any

from nndl.errors import ConfigError
from nndl.settings import Settings, choice
from nndl.validate import MAX_PARAMETERS, real_number, whole_number

__all__ = ["ConvNetConfig", "CONV_LAYERS", "CONV_ACTIVATIONS", "CONV_INITS", "DROPOUT_STYLES", "POOL_GRADIENTS"]


#: The kinds of layer a convolutional network is made of, and the settings each takes.
CONV_LAYERS = {
    "conv-pool": ("filters", "filter", "pool", "activation", "p_dropout"),
    "fully-connected": ("n_out", "activation", "p_dropout"),
    "softmax": ("n_out", "p_dropout"),
}
#: Activations of convolutional and fully connected layers (network3's sigmoid, tanh, ReLU, linear).
CONV_ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")
#: How to draw the first weights: the book's network3, or scaled by fan-in (see nndl.deep.layers).
CONV_INITS = ("book", "fan-in")
#: Dropout as network3 does it (mask, then scale the weights by 1 - p at inference) or inverted.
DROPOUT_STYLES = ("book", "inverted")
#: Where the gradient of a max-pooling region goes: one maximum, or every input equal to it (Theano's rule).
POOL_GRADIENTS = ("one", "all-ties")


def _pair(value, what):
    """(h, w) from 5 or (5, 5)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"{what} must be one size or a pair (height, width), got {list(value)}")
        return tuple(whole_number(v, what) for v in value)
    n = whole_number(value, what)
    return (n, n)


def _conv_layer(spec, index):
    """One layer's settings, normalised, with its defaults filled in."""
    where = f"layer {index + 1}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where} must be a dict with a 'type' ({', '.join(CONV_LAYERS)}), got {spec!r}")
    kind = choice(spec["type"], CONV_LAYERS, f"layer type in {where}")
    allowed = CONV_LAYERS[kind]
    unknown = sorted(set(spec) - set(allowed) - {"type"})
    if unknown:
        raise ConfigError(f"{where} ({kind}) has unknown setting(s) {', '.join(unknown)}; it takes "
                          f"{', '.join(allowed)}")
    layer: dict[str, Any] = {"type": kind}
    if kind == "conv-pool":
        layer["filters"] = whole_number(spec.get("filters"), f"the number of filters in {where}")
        layer["filter"] = _pair(spec.get("filter", 5), f"the filter size in {where}")
        layer["pool"] = _pair(spec.get("pool", 2), f"the pool size in {where}")
    else:
        layer["n_out"] = whole_number(spec.get("n_out"), f"n_out of {where}")
    if kind != "softmax":
        layer["activation"] = choice(spec.get("activation", "sigmoid"), CONV_ACTIVATIONS, f"activation in {where}")
    layer["p_dropout"] = real_number(spec.get("p_dropout", 0.0), f"the dropout probability of {where}", high=1.0)
    return layer


@dataclass(frozen=True)
class ConvNetConfig(Settings):
    """A network of chapter 6: conv-pool layers, fully connected layers, a softmax output.

    Pure data (no PyTorch needed): ``nndl.deep.ConvNetwork.from_config``
    builds it. The shapes are checked here, so a network whose layers do not
    fit together is refused before anything is built.

    Attributes
    ----------
    input_shape : (channels, height, width)
        (1, 28, 28) for MNIST.
    layers : tuple of dict
        In order, each one of
        ``{"type": "conv-pool", "filters": 20, "filter": (5, 5), "pool": (2, 2), "activation": "relu"}``,
        ``{"type": "fully-connected", "n_out": 100, "activation": "relu", "p_dropout": 0.5}``,
        ``{"type": "softmax", "n_out": 10, "p_dropout": 0.5}``. The last
        layer is the softmax; conv-pool layers come before fully connected
        ones. ``p_dropout`` drops the layer's *inputs* during training.
    init : {"book", "fan-in"}
        "book": network3's weights, N(0, 1/n_out) with n_out the layer's
        outputs per input (filters x filter area / pool area for a conv-pool
        layer), biases N(0, 1), the softmax layer all zeros. "fan-in":
        weights N(0, g/n_in) (g = 2 for ReLU, else 1), biases zero.
    dropout : {"book", "inverted"}
        "book": inputs masked without rescaling, weights times (1 - p) at
        inference. "inverted": kept inputs scaled by 1/(1 - p) during
        training, nothing changed at inference. The same in expectation.
    dtype : {"float32", "float64"}
    pool_gradient : {"one", "all-ties"}
        "one": the gradient of each max-pooling region goes to one input
        equal to its maximum (PyTorch's rule; the true gradient wherever it
        exists). "all-ties": to every input equal to the maximum, as Theano's
        max_pool_2d did under the book's network3 -- which counts the
        gradient of a flat region (MNIST's blank background) up to ph x pw
        times. Kept to study that difference, not as a recommendation.
    """

    input_shape: tuple = (1, 28, 28)
    layers: tuple = ()
    init: str = "book"
    dropout: str = "book"
    dtype: str = "float32"
    pool_gradient: str = "one"

    def __post_init__(self):
        shape = self.input_shape
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            raise ConfigError(f"input_shape must be (channels, height, width), got {shape!r}")
        object.__setattr__(self, "input_shape", tuple(whole_number(v, "every input dimension") for v in shape))
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise ConfigError("a convolutional network needs at least its softmax output layer")
        layers = tuple(_conv_layer(spec, i) for i, spec in enumerate(self.layers))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "init", choice(self.init, CONV_INITS, "weight initialisation"))
        object.__setattr__(self, "dropout", choice(self.dropout, DROPOUT_STYLES, "dropout style"))
        object.__setattr__(self, "dtype", choice(self.dtype, ("float32", "float64"), "dtype"))
        object.__setattr__(self, "pool_gradient", choice(self.pool_gradient, POOL_GRADIENTS, "pool gradient"))
        kinds = [layer["type"] for layer in layers]
        if kinds[-1] != "softmax" or "softmax" in kinds[:-1]:
            raise ConfigError(f"the softmax layer must be the last layer and only the last, got {kinds}")
        first_dense = next(i for i, kind in enumerate(kinds) if kind != "conv-pool")
        if "conv-pool" in kinds[first_dense:]:
            raise ConfigError(f"conv-pool layers must come before the fully connected ones, got {kinds}")
        n_params = 0
        for (n_in, _n_out), layer in zip(self.shapes(), layers):
            if layer["type"] == "conv-pool":
                n_params += layer["filters"] * (n_in[0] * layer["filter"][0] * layer["filter"][1] + 1)
            else:
                n_params += (_size(n_in) + 1) * layer["n_out"]
        if n_params > MAX_PARAMETERS:
            raise ConfigError(f"this network has {n_params:,} weights and biases, more than the {MAX_PARAMETERS:,} "
                              "nndl allows")

    def shapes(self):
        """The input and output shape of each layer: a list of (in_shape, out_shape) tuples."""
        shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        shape: tuple[int, ...] = self.input_shape
        for i, layer in enumerate(self.layers):
            if layer["type"] == "conv-pool":
                (fh, fw), (ph, pw) = layer["filter"], layer["pool"]
                c, h, w = shape
                if fh > h or fw > w:
                    raise ConfigError(f"layer {i + 1}: a {fh}x{fw} filter does not fit its {h}x{w} input")
                if (h - fh + 1) < ph or (w - fw + 1) < pw:
                    raise ConfigError(f"layer {i + 1}: {ph}x{pw} pooling does not fit the {h - fh + 1}x{w - fw + 1} "
                                      "output of its convolution")
                out: tuple[int, ...] = (layer["filters"], (h - fh + 1) // ph, (w - fw + 1) // pw)
            else:
                out = (layer["n_out"],)
            shapes.append((shape, out))
            shape = out
        return shapes

    @property
    def n_outputs(self):
        return self.layers[-1]["n_out"]

    def describe(self):
        """One line, e.g. "conv-pool 20 5x5/2x2 relu -> fully-connected 100 relu -> softmax 10"."""
        parts = []
        for layer in self.layers:
            if layer["type"] == "conv-pool":
                (fh, fw), (ph, pw) = layer["filter"], layer["pool"]
                text = f"conv-pool {layer['filters']} {fh}x{fw}/{ph}x{pw} {layer['activation']}"
            elif layer["type"] == "fully-connected":
                text = f"fully-connected {layer['n_out']} {layer['activation']}"
            else:
                text = f"softmax {layer['n_out']}"
            if layer["p_dropout"]:
                text += f" (dropout {layer['p_dropout']:g})"
            parts.append(text)
        return " -> ".join(parts)

    def to_dict(self):
        data = super().to_dict()
        data["layers"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in layer.items()}
                          for layer in self.layers]
        return data


def _size(shape):
    n = 1
    for v in shape:
        n *= v
    return n
