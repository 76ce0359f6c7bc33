"""The book's ``mnist_loader``, for running chapter 1 as printed.

    >>> from nndl import mnist_loader
    >>> training_data, validation_data, test_data = mnist_loader.load_data_wrapper()

The data comes from ``nndl.data.mnist.load_mnist`` (found and checksum-verified
the same way; see there), in the book's formats:

- ``load_data()``: three pairs ``(images, labels)``, images float32 of shape
  (n, 784) and labels int64 of shape (n,).
- ``load_data_wrapper()``: three lists. Training examples are pairs
  ``(x, y)`` with x a (784, 1) column vector and y a (10, 1) one-hot column;
  validation and test examples are pairs ``(x, label)`` with an integer label.
  The book returns these lists under Python 2; here they are lists too, so
  they can be iterated more than once.

The column vectors are views into one array, but each of the 70,000 small
array objects still costs about 100 bytes, and the 50,000 one-hot targets are
separate arrays: about 30 MB more than the arrays of ``nndl.data.mnist``.
"""

from nndl.bookcompat import vectorized_result
from nndl.data.mnist import load_mnist

__all__ = ["load_data", "load_data_wrapper", "vectorized_result"]


def load_data(path=None):
    """The three splits as ``(images, labels)`` pairs: (n, 784) float32 and (n,) int64."""
    data = load_mnist(path)
    return tuple((split.images, split.labels) for split in data)


def load_data_wrapper(path=None):
    """The three splits as lists of (column vector, target) pairs, as the book's network.py expects."""
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = load_data(path)
    training_data = [(x.reshape(784, 1), vectorized_result(y)) for x, y in zip(tr_x, tr_y)]
    validation_data = [(x.reshape(784, 1), int(y)) for x, y in zip(va_x, va_y)]
    test_data = [(x.reshape(784, 1), int(y)) for x, y in zip(te_x, te_y)]
    return training_data, validation_data, test_data
