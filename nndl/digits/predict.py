"""Which digit is in an image: any nndl model, any image, the ten probabilities.

    >>> from nndl.digits.predict import predict                       # doctest: +SKIP
    >>> [p] = predict("net.npz", ["my-seven.png"])
    >>> p.digit, p.top3
    (7, [(7, 0.96), (9, 0.02), (1, 0.01)])

Each image is prepared as MNIST's digits were (:func:`nndl.digits.prepare.prepare`:
greyscale, dark-on-light inverted, cropped to the ink, scaled to fit 20x20,
centred by its centre of mass in 28x28) and given to a :class:`Classifier`.
Written to PNG at 3x size, dark on white and off-centre, the 10,000 MNIST
test digits get the prediction a [784, 100, 10] network makes on the
original 28x28 image for 99.8% of them when enlarged by repeating pixels
and 98.9% when enlarged smoothly (bilinear); the convolutional network
conv1, 99.8% and 99.4% (``benchmarks/bench_digits.py``).

Probabilities. A network with a softmax output layer (the log-likelihood
networks of chapter 3, every convolutional network of chapter 6) gives a
probability distribution over the ten digits directly. The sigmoid output
layer of the book's other networks does not: its ten outputs are separate
numbers in (0, 1) that need not sum to 1. They are **normalised** to sum to 1
(a_j / sum_k a_k): the ranking is the network's, the numbers are a reading of
its relative activations rather than calibrated probabilities. Outputs of any
other activation (tanh, ReLU, linear) are taken as scores and turned into
probabilities by a softmax.

A prediction is **confident** when its top probability is at least
``MIN_CONFIDENCE`` (0.7); otherwise it says "no clear digit" in its
``message`` (its ``digit`` is still the best guess). On the MNIST test
images the threshold flags 3.8% of the predictions of a [784, 100, 10]
sigmoid network (97.4% accurate), of which 37% are wrong, against 1.2% of
the others; and 0.8% of those of the convolutional network conv1 (98.6%),
of which 53% are wrong, against 0.9% of the others: a flagged digit is
close to a coin toss. A blank image gets no digit at all. (No threshold
catches everything: networks trained only on digits can be confident about
scribbles that are no digit.)
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nndl.digits.prepare import SIDE, Prepared, prepare
from nndl.errors import InputError, ModelFileError

__all__ = ["Classifier", "Prediction", "predict", "prepared_pixels", "show_predictions", "MIN_CONFIDENCE",
           "N_DIGITS"]

#: A top probability below this is "no clear digit": the prediction is not confident and says so.
MIN_CONFIDENCE = 0.7

#: The classes: the digits 0-9.
N_DIGITS = 10

_N_INPUTS = SIDE * SIDE

#: show_predictions draws at most this many images.
_MAX_SHOWN = 60


def prepared_pixels(pixels) -> np.ndarray:
    """Prepared images checked and flattened: (n, 784) float32 in [0, 1].

    The one check of the arrays the network is given (``Classifier.probabilities``, and ``predict`` for a
    batch). Accepted: one image of shape (784,) or (28, 28), or a batch (n, 784) or (n, 28, 28), of finite
    numbers in [0, 1], as ``nndl.digits.prepare.prepare`` gives them (an image of any other size is an
    image to prepare first).

    Raises
    ------
    InputError
        For any other shape, a non-numeric array, NaN or infinite values, or pixels outside [0, 1] (0..255
        pixels: divide them by 255), saying which.
    """
    array = np.asarray(pixels)
    shape = array.shape
    if array.dtype.kind not in "biuf":
        raise InputError(f"prepared images must hold numbers, got an array of {array.dtype}")
    if shape in ((_N_INPUTS,), (SIDE, SIDE)):
        array = array.reshape(1, _N_INPUTS)
    elif array.ndim == 2 and shape[1] == _N_INPUTS:
        pass
    elif array.ndim == 3 and shape[1:] == (SIDE, SIDE):
        array = array.reshape(shape[0], _N_INPUTS)
    else:
        raise InputError(f"prepared images must have shape (784,) or (28, 28) for one image, (n, 784) or "
                         f"(n, 28, 28) for n of them, got {shape} (an image of another size goes through "
                         f"nndl.digits.prepare.prepare first)")
    array = array.astype(np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(np.argwhere(~finite)[0][0])
        raise InputError(f"prepared images must hold finite numbers: image {bad} has NaN or infinite values")
    if array.size and (array.min() < 0 or array.max() > 1):
        hint = " (pixels 0..255: divide them by 255)" if array.max() > 1 and array.min() >= 0 else ""
        raise InputError(f"prepared images must hold pixels in [0, 1], got values from {array.min():g} to "
                         f"{array.max():g}{hint}")
    return array


class Classifier:
    """An nndl model that takes a 28x28 image and gives the probability of each digit.

    Parameters
    ----------
    network : FeedforwardNetwork or nndl.deep.ConvNetwork
        With 784 inputs (or input shape (1, 28, 28)) and 10 outputs.
    source : str, optional
        Where it came from, for the description.

    Attributes
    ----------
    network
    output : str
        How the outputs become probabilities: "softmax", "normalised
        sigmoid" or "softmax of the outputs" (see the module docstring).
    description : str
        One line, e.g. "network [784, 100, 10] (sigmoid/sigmoid), normalised
        sigmoid outputs, from net.npz".

    Raises
    ------
    InputError
        For a network that does not take 28x28 images or does not have ten
        outputs.
    """

    def __init__(self, network, source=None):
        self.network = network
        self.source = None if source is None else str(source)
        self.convolutional = hasattr(network, "config")             # nndl.deep.ConvNetwork or NumpyConvNetwork
        self.numpy = not hasattr(network, "parameters")             # runs in NumPy: not a torch module
        if self.convolutional:
            shape, n_out = tuple(network.config.input_shape), network.config.n_outputs
            n_in = int(np.prod(shape))
            if shape != (1, SIDE, SIDE):
                raise InputError(f"this model takes images of shape {shape}; nndl predict needs a model of "
                                 f"28x28 greyscale images")
            self.output = "softmax"
            layers = network.config.describe()
        else:
            n_in, n_out = network.sizes[0], network.sizes[-1]
            if n_in != _N_INPUTS:
                raise InputError(f"this model takes {n_in} inputs; nndl predict needs a 28x28 (784-input) model")
            last = network.layers[-1].name
            self.output = {"softmax": "softmax", "sigmoid": "normalised sigmoid"}.get(last, "softmax of the outputs")
            layers = f"{list(network.sizes)} ({'/'.join(layer.name for layer in network.layers)})"
        if n_out != N_DIGITS:
            raise InputError(f"this model has {n_out} outputs; nndl predict needs one per digit (10)")
        kind = "convolutional network" if self.convolutional else "network"
        origin = f", from {self.source}" if self.source else ""
        self.description = f"{kind} {layers}, {self.output} outputs{origin}"

    @classmethod
    def of(cls, model):
        """The classifier of ``model``: a Classifier (itself), a model file (:meth:`load`) or None (:meth:`default`)."""
        if isinstance(model, cls):
            return model
        return cls.default() if model is None else cls.load(model)

    @classmethod
    def default(cls):
        """The classifier of the convolutional network shipped with nndl (no PyTorch needed).

        Its training command and accuracy are in ``.network.metadata``; see
        :mod:`nndl.digits.convnet`.

        Raises
        ------
        ModelFileError
            When this installation of nndl lacks the file (or it is damaged), saying how to pass a model.
        """
        from nndl.digits.convnet import default_model_path
        path = default_model_path()
        if not path.is_file():
            raise ModelFileError(f"this installation of nndl has no default model ({path.name} is missing): give "
                                 "a model file, e.g. one written by nndl train --save or nndl conv --save")
        classifier = cls.load(path)
        accuracy = classifier.network.metadata.get("test_accuracy")
        classifier.description += " (nndl's default model" + (
            f", {100 * accuracy:.2f}% on the MNIST test images)" if isinstance(accuracy, float) else ")")
        return classifier

    @classmethod
    def load(cls, path):
        """The classifier of a model file: NumPy networks (.json, .npz) or convolutional ones (.pt, or .npz as
        :mod:`nndl.digits.convnet` writes them).

        A ``.pt`` model needs PyTorch, which is imported only then.

        Raises
        ------
        ModelFileError
            For a missing file or one that is not an nndl model (saying why).
        InputError
            For a model that does not take 28x28 images or has not ten outputs.
        MissingDependencyError
            For a convolutional model when PyTorch is not installed.
        """
        from nndl.digits.convnet import is_numpy_conv_model, read_conv_model
        from nndl.engine.modelio import is_conv_model, load
        source = str(path)
        path = Path(path)
        if not path.exists():
            raise ModelFileError(f"{source}: no such model file")
        if not (path.is_file() or path.is_dir()):                  # a FIFO or device would block the reading
            raise ModelFileError(f"{source} is not a regular file, not a model file")
        try:
            if is_conv_model(path):
                from nndl.deep.checkpoint import load_model
                network = load_model(path, "cpu")
            elif path.is_file() and is_numpy_conv_model(path):
                network = read_conv_model(path)
            else:
                network = load(path)
        except FileNotFoundError:               # removed meanwhile
            raise ModelFileError(f"{source}: no such model file") from None
        return cls(network, source)

    def probabilities(self, pixels):
        """The probability of each digit for each image.

        Parameters
        ----------
        pixels : ndarray, shape (n, 784) or (n, 28, 28); one image (784,) or (28, 28)
            Prepared images (``nndl.digits.prepare.prepare``), in [0, 1].

        Returns
        -------
        ndarray, shape (n, 10), float64
            Rows summing to 1 (see the module docstring for how the outputs
            become probabilities).

        Raises
        ------
        InputError
            For another shape, values that are not finite (NaN, inf) or pixels
            outside [0, 1] (such as 0..255: divide by 255 first); see
            :func:`prepared_pixels`.
        """
        pixels = prepared_pixels(pixels)
        if pixels.shape[0] == 0:
            return np.zeros((0, N_DIGITS))
        if self.convolutional and self.numpy:
            p = np.exp(self.network.log_probabilities(pixels).astype(np.float64))
        elif self.convolutional:
            import torch
            with torch.no_grad():
                log_p = self.network.log_probabilities(pixels)          # (n, 10)
            p = np.exp(log_p.to("cpu", torch.float64).numpy())
        else:
            a = self.network.feedforward(pixels).astype(np.float64)    # (n, 10)
            if self.output == "softmax":
                p = a
            elif self.output == "normalised sigmoid":
                p = a
                empty = p.sum(axis=1) <= 0                            # every output underflowed to 0
                p[empty] = 1.0
            else:
                p = np.exp(a - a.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def __repr__(self):
        return f"Classifier({self.description})"


@dataclass
class Prediction:
    """What the classifier made of one image.

    Attributes
    ----------
    digit : int or None
        The most probable digit; None when the image is blank.
    probabilities : list of float
        The probability of each digit, 0 first (ten numbers summing to 1;
        all zeros when blank).
    top3 : list of (int, float)
        The three most probable digits with their probabilities, most
        probable first (empty when blank).
    pixels : ndarray, shape (784,), float32
        The 28x28 image the network saw, row by row, white ink on black in [0, 1].
    message : str or None
        Why there is no digit ("the image is blank ...") or why it is
        uncertain ("no clear digit ..."); None for a confident prediction.
    confident : bool
        The top probability is at least ``MIN_CONFIDENCE``.
    """

    digit: int | None
    probabilities: list[float]
    top3: list[tuple[int, float]]
    pixels: np.ndarray = field(repr=False)
    message: str | None = None
    confident: bool = False

    @classmethod
    def from_probabilities(cls, p, pixels):
        """The prediction for probabilities ``p`` (10,) of the image ``pixels`` (784,)."""
        order = np.argsort(-p, kind="stable")
        digit, top = int(order[0]), float(p[order[0]])
        confident = top >= MIN_CONFIDENCE
        message = None if confident else (f"no clear digit: the best guess, {digit}, has probability "
                                          f"{top:.0%} (below {MIN_CONFIDENCE:.0%})")
        return cls(digit=digit, probabilities=[float(v) for v in p], top3=[(int(d), float(p[d])) for d in order[:3]],
                   pixels=pixels, message=message, confident=confident)

    @classmethod
    def blank(cls, prepared):
        """The prediction for a blank image: no digit, and why."""
        return cls(digit=None, probabilities=[0.0] * N_DIGITS, top3=[], pixels=prepared.pixels,
                   message=prepared.message, confident=False)

    def to_dict(self):
        """A JSON-ready dict: digit, probabilities, top3 ([[digit, p], ...]), message, confident, and
        "image", the 28x28 input as 28 rows of 28 ints 0..255."""
        image = np.round(np.asarray(self.pixels, dtype=np.float64).reshape(SIDE, SIDE) * 255).astype(int)
        return {"digit": self.digit, "probabilities": list(self.probabilities),
                "top3": [[d, p] for d, p in self.top3], "message": self.message, "confident": self.confident,
                "image": image.tolist()}


def predict(model, images):
    """The digit in each image.

    Parameters
    ----------
    model : Classifier, a model file (str or path), or None
        None: the convolutional network shipped with nndl (:meth:`Classifier.default`).
    images : list, or ndarray
        A list: each a path, bytes, a binary file, a Pillow image, an array
        (see ``nndl.digits.prepare.to_grey``) or an already ``Prepared`` image.
        A single image not in a list is taken as a list of one. An array of
        shape (n, 784) or (n, 28, 28) is a batch of n prepared images in
        [0, 1] (as MNIST's), given to the network as they are (an all-zero
        one is blank); any other array is one image, prepared (see
        :func:`prepared_pixels` and ``to_grey`` for what is accepted).

    Returns
    -------
    list of Prediction
        One per image, in order; all images go through the network in one batch.

    Raises
    ------
    InputError
        For the first image that cannot be read (see ``nndl.digits.prepare.open_image``), or an array
        that is neither an image nor a batch of prepared images.
    """
    classifier = Classifier.of(model)
    if _is_batch(images):
        pixels = prepared_pixels(images)
        images = [Prepared(pixels=row, blank=False) if row.any() else
                  Prepared(pixels=row, blank=True, message="the image is blank: all its pixels are 0")
                  for row in pixels]
    elif not isinstance(images, (list, tuple)):
        images = [images]
    prepared = [image if isinstance(image, Prepared) else prepare(image) for image in images]
    inked = [k for k, p in enumerate(prepared) if not p.blank]
    predictions = [Prediction.blank(item) for item in prepared]
    if inked:
        p = classifier.probabilities(np.stack([prepared[k].pixels for k in inked]))       # (m, 10)
        for row, k in enumerate(inked):
            predictions[k] = Prediction.from_probabilities(p[row], prepared[k].pixels)
    return predictions


def _is_batch(images):
    """Whether ``images`` is an array of prepared images, (n, 784) or (n, 28, 28), rather than one image."""
    if not isinstance(images, np.ndarray):
        return False
    return (images.ndim == 2 and images.shape[1] == _N_INPUTS) or \
        (images.ndim == 3 and images.shape[1:] == (SIDE, SIDE))


def show_predictions(predictions, path, names=None):
    """Write a PNG of the 28x28 images the network saw (the first ``_MAX_SHOWN``), each titled with its digit
    and probability.

    Parameters
    ----------
    predictions : list of Prediction
    path : str or Path
        The PNG to write (atomically).
    names : list of str, optional
        A label for each image (e.g. its file name).

    Returns
    -------
    Path
    """
    from nndl.figures import new_figure, write_png
    total = len(predictions)
    predictions = predictions[:_MAX_SHOWN]
    n = len(predictions)
    columns = min(n, 6) or 1
    rows = max(1, -(-n // columns))
    fig = new_figure((1.9 * columns, 2.1 * rows))
    for k, prediction in enumerate(predictions):
        ax = fig.add_subplot(rows, columns, k + 1)
        ax.imshow(np.asarray(prediction.pixels).reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if prediction.digit is None:
            title = "blank"
        else:
            title = f"{prediction.digit}  ({prediction.top3[0][1]:.0%})" + ("" if prediction.confident else "?")
        if names:
            name = Path(str(names[k])).name
            title = f"{name if len(name) <= 18 else name[:15] + '...'}\n{title}"
        ax.set_title(title, fontsize=9)
    more = f", the first {n} of {total}" if total > n else ""
    fig.suptitle(f"What the network saw (28x28, prepared as MNIST{more})", fontsize=10)
    fig.tight_layout()
    return write_png(fig, path)
