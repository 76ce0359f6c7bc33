"""The book's split of MNIST, and the checks that four idx arrays make one data set.

The splits follow the book:

* training: the first 50,000 of the 60,000 official training images;
* validation: the last 10,000 official training images;
* test: the 10,000 official test images.

Images are float32 in [0, 1], one flattened 28x28 image per row, shape
(n, 784); labels are int64 digits 0..9, shape (n,). The arrays are checked
here, once, where they enter, so that everything downstream can trust a
``Split``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nndl.data.locate import FILES
from nndl.errors import ConfigError, DataError, InputError

__all__ = ["TRAINING_SIZE", "VALIDATION_SIZE", "TEST_SIZE", "Split", "MnistData", "check_validation_size",
           "check_layout", "check_mnist", "make_splits"]

TRAINING_SIZE = 50_000
VALIDATION_SIZE = 10_000
TEST_SIZE = 10_000
_IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True, eq=False)
class Split:
    """One part of a data set: images and their labels.

    Parameters
    ----------
    images : numpy.ndarray
        float32, shape (n, 784) for MNIST: one flattened image per row,
        pixel values in [0, 1].
    labels : numpy.ndarray
        int64, shape (n,): the class of each image.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if self.images.ndim != 2 or self.labels.ndim != 1:
            raise InputError(
                f"Split needs images of shape (n, d) and labels of shape (n,), "
                f"got {self.images.shape} and {self.labels.shape}"
            )
        if len(self.images) != len(self.labels):
            raise InputError(f"Split has {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class MnistData:
    """The three splits of a data set, and the directory they were loaded from.

    Iterating gives ``training, validation, test`` in that order, so
    ``training, validation, test = load_mnist()`` works.

    Notes
    -----
    ``training.images`` and ``validation.images`` are views on one float32
    array holding all official training images; they do not overlap, but
    they share memory, so changing one in place changes that array.
    """

    training: Split
    validation: Split
    test: Split
    source: Path

    def __iter__(self) -> Iterator[Split]:
        return iter((self.training, self.validation, self.test))


def check_layout(arrays: dict[str, np.ndarray], directory: Path, validation_size: int) -> None:
    """Structural checks shared by every idx data set."""
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{part} images in {directory} should be a 3-d uint8 array (n, rows, columns), "
                f"got {images.ndim}-d {images.dtype} of shape {images.shape}"
            )
        if labels.ndim != 1:
            raise DataError(
                f"{part} labels in {directory} should be 1-d, got shape {labels.shape}"
            )
        if labels.dtype.kind not in "iu":
            raise DataError(f"{part} labels in {directory} should be integers, got {labels.dtype}")
        if len(images) != len(labels):
            raise DataError(
                f"{directory} has {len(images)} {part} images but {len(labels)} {part} labels"
            )
        if len(labels) and labels.min() < 0:
            raise DataError(f"{part} labels in {directory} include negative values ({labels.min()})")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(
            f"training images in {directory} are {arrays['train_images'].shape[1:]} but test "
            f"images are {arrays['test_images'].shape[1:]}"
        )
    if 0 in arrays["train_images"].shape[1:]:
        raise DataError(f"images in {directory} have no pixels (shape {arrays['train_images'].shape[1:]})")
    n_train, n_test = len(arrays["train_labels"]), len(arrays["test_labels"])
    if n_train == 0 or n_test == 0:
        raise DataError(f"{directory} has {n_train} training and {n_test} test images; both splits need some")
    if validation_size > n_train:
        raise ConfigError(
            f"validation_size={validation_size} is more than the {n_train} training images in {directory}"
        )
    if validation_size == n_train:
        raise DataError(
            f"validation_size={validation_size} would leave the training split empty: {directory} has "
            f"only {n_train} training images; use a smaller validation_size"
        )


def check_validation_size(validation_size) -> None:
    """Refuse a validation size that no data set could satisfy (before any file is read)."""
    if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)):
        raise ConfigError(f"validation_size must be a whole number, got {validation_size!r}")
    if validation_size < 0:
        raise ConfigError(f"validation_size must be at least 0, got {validation_size}")


def check_mnist(arrays: dict[str, np.ndarray], directory: Path) -> None:
    """Checks specific to MNIST: 60,000 + 10,000 images of 28x28, labels 0..9."""
    expected = {
        "train_images": (TRAINING_SIZE + VALIDATION_SIZE, *_IMAGE_SHAPE),
        "train_labels": (TRAINING_SIZE + VALIDATION_SIZE,),
        "test_images": (TEST_SIZE, *_IMAGE_SHAPE),
        "test_labels": (TEST_SIZE,),
    }
    for role, shape in expected.items():
        if arrays[role].shape != shape:
            raise DataError(
                f"MNIST {FILES[role]} in {directory} has shape {arrays[role].shape}, expected {shape}"
            )
    for role in ("train_labels", "test_labels"):
        if arrays[role].size and arrays[role].max() > 9:
            raise DataError(f"MNIST {FILES[role]} in {directory} has labels above 9")


def make_splits(arrays: dict[str, np.ndarray], directory: Path, validation_size: int) -> MnistData:
    """Convert uint8 images to float32 in [0, 1] (once) and cut the splits."""

    def images(array: np.ndarray) -> np.ndarray:
        flat = array.reshape(len(array), -1)
        return np.divide(flat, np.float32(255), dtype=np.float32)

    train_images = images(arrays["train_images"])  # one array; the two splits are views on it
    train_labels = arrays["train_labels"].astype(np.int64)
    cut = len(train_labels) - validation_size
    return MnistData(
        training=Split(train_images[:cut], train_labels[:cut]),
        validation=Split(train_images[cut:], train_labels[cut:]),
        test=Split(images(arrays["test_images"]), arrays["test_labels"].astype(np.int64)),
        source=directory,
    )
