"""MNIST as tensors on the training device.

The whole of MNIST is 70,000 x 784 float32 values, 220 MB: it fits on any
GPU, so the images move to the device once and every mini-batch is a slice
there, with no copying per step.
"""

import numpy as np

from nndl.deep._torch import torch
from nndl.engine.feedforward import as_labels
from nndl.errors import InputError

__all__ = ["as_tensors", "load_mnist_tensors", "split_tensors"]


def _unpack(data, name):
    if hasattr(data, "images") and hasattr(data, "labels"):
        return data.images, data.labels
    try:
        x, y = data
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair (images, labels) or a data split with .images and .labels") \
            from None
    return x, y


def as_tensors(data, input_shape, n_classes, device, dtype=torch.float32, name="training data"):
    """Images and labels as tensors on ``device``, checked against the network's input.

    Parameters
    ----------
    data : (images, labels) or a split with ``.images`` and ``.labels``
        images: NumPy array or tensor of shape (n, c*h*w), (n, h, w) when
        c = 1, or (n, c, h, w), finite. labels: integers (n,) in
        0..n_classes-1, or one-hot rows (n, n_classes).
    input_shape : (c, h, w)
    n_classes : int

    Returns
    -------
    images : tensor (n, c, h, w) of ``dtype`` on ``device``
    labels : tensor (n,) int64 on ``device``
    """
    x, y = _unpack(data, name)
    c, h, w = input_shape
    shapes = {(c * h * w,), (c, h, w)} | ({(h, w)} if c == 1 else set())
    if not hasattr(x, "shape") or x.ndim < 2 or tuple(x.shape[1:]) not in shapes:
        got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise InputError(f"{name}: images must have shape (n, {c * h * w}) or (n, {c}, {h}, {w}) for this network, "
                         f"got {got}")
    if isinstance(y, torch.Tensor):
        y = y.cpu().numpy()
    labels = torch.from_numpy(np.ascontiguousarray(as_labels(y, n_classes, f"{name} labels")))
    if labels.shape[0] != x.shape[0]:
        raise InputError(f"{name}: {x.shape[0]} images but {labels.shape[0]} labels")
    if isinstance(x, torch.Tensor):
        images = x.detach().to(device=device, dtype=dtype)
    else:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise InputError(f"{name}: images must be numbers, got {x.dtype}")
        images = torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)
    images = images.reshape(x.shape[0], c, h, w)
    if not bool(torch.isfinite(images).all()):
        raise InputError(f"{name}: images contain inf or nan")
    return images, labels.to(device)


def load_mnist_tensors(path=None, *, device="cpu", dtype=torch.float32, expanded=None, progress=None):
    """MNIST's training, validation and test splits as (images, labels) tensor pairs on ``device``.

    Parameters
    ----------
    path : str, optional
        The MNIST directory (default: found as ``nndl.data.mnist.load_mnist`` finds it).
    expanded : str or "shifts", optional
        Training data to use instead of the 50,000 images: a file written by
        ``nndl expand``, or "shifts" to make the book's 250,000 (each image
        and its four 1-pixel shifts, shuffled) in memory.

    Returns
    -------
    training, validation, test : (tensor (n, 1, 28, 28), tensor (n,))
    """
    from nndl.data.mnist import load_mnist
    return split_tensors(load_mnist(path, progress=progress), device=device, dtype=dtype, expanded=expanded)


def split_tensors(data, *, device="cpu", dtype=torch.float32, expanded=None):
    """The three splits of an ``MnistData`` (MNIST or any idx data set of 28x28 images) as tensor pairs.

    ``expanded`` as for ``load_mnist_tensors``.
    """
    shape, device = (1, 28, 28), torch.device(device)
    training = (data.training.images, data.training.labels)
    if expanded == "shifts":
        from nndl.data.expand import expand_training_data
        images, labels = expand_training_data(data.training.images, data.training.labels, shifts=True, seed=0)
        training = (images.reshape(len(images), -1).astype(np.float32) / np.float32(255), labels)
    elif expanded is not None:
        from nndl.data.expand import load_expanded
        images, labels, _ = load_expanded(expanded)
        training = (images, labels)
    return (as_tensors(training, shape, 10, device, dtype, "training data"),
            as_tensors(data.validation, shape, 10, device, dtype, "validation data"),
            as_tensors(data.test, shape, 10, device, dtype, "test data"))
