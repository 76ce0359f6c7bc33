"""Artificially expanded MNIST training data (book, chapters 3 and 6).

Chapter 6 grows the 50,000 training images to 250,000 by adding, for every
image, four copies displaced by one pixel (up, down, left, right), which
lifts its convolutional network from 99.23% to 99.37%; chapter 3 suggests
small rotations as another way to make more data. The book's
``expand_mnist.py`` shifts with ``np.roll`` and zeroes the wrapped row or
column, in the order down, up, right, left, and shuffles without a seed;
here the order is ``SHIFT_ORDER`` and the shuffle is seeded.

Everything works on uint8 pixels ``0..255`` (MNIST pixels are ``k / 255``,
so ``round(255 x)`` is exact): a shift moves bytes, a rotation rounds to the
nearest level, and 250,000 images take 196 MB instead of 784 MB as float32.
Images are ``(n, 28, 28)``, row 0 at the top; ``(n, 784)`` is accepted.

File format (``"nndl-expanded"``, version 1): a compressed ``.npz`` whose
members need no pickle: ``images`` uint8 ``(m, 784)``, ``labels`` int64
``(m,)`` in 0..9, and ``metadata``, one JSON string ``{"format":
"nndl-expanded", "format_version": 1, "count": m, "nndl_version": ...,
"expansion": {...}}`` where ``expansion`` says how the data was made.
"""

import json
import math
import numbers
import sys
from functools import partial
from pathlib import Path

import numpy as np

from nndl.errors import ConfigError, FileFormatError, InputError
from nndl.files.atomic import atomic_writer
from nndl.files.header import brief, check_header, parse_json
from nndl.files.npz import read_npz

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SHIFT_ORDER", "MAX_IMAGES", "shift_images", "rotate_images",
           "expand_training_data", "save_expanded", "load_expanded", "expand_mnist_file"]

FORMAT_NAME = "nndl-expanded"
FORMAT_VERSION = 1
#: The copies of each image, in order, when shifting.
SHIFT_ORDER = ("original", "up", "down", "left", "right")
#: The most images an expanded set may hold (20 copies of 50,000): load_expanded refuses more.
MAX_IMAGES = 1_000_000
_SIDE, _PIXELS = 28, 784
# direction -> (output slice, input slice): "up" means output row r is input row r + 1.
_SHIFTS = {"up": (np.s_[:, :-1], np.s_[:, 1:]), "down": (np.s_[:, 1:], np.s_[:, :-1]),
           "left": (np.s_[:, :, :-1], np.s_[:, :, 1:]), "right": (np.s_[:, :, 1:], np.s_[:, :, :-1])}


def _as_uint8(images):
    """Images (n, 784) or (n, 28, 28), uint8 or floating in [0, 1], as uint8 (n, 28, 28) round(255 x)."""
    a = np.asarray(images)
    if not (a.ndim == 2 and a.shape[1] == _PIXELS or a.ndim == 3 and a.shape[1:] == (_SIDE, _SIDE)):
        raise InputError(f"images must have shape (n, {_PIXELS}) or (n, {_SIDE}, {_SIDE}); got {a.shape}")
    a = a.reshape(-1, _SIDE, _SIDE)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind != "f":
        raise InputError(f"images must be uint8 or floating point in [0, 1]; got dtype {a.dtype}")
    if a.size and not (a.min() >= 0 and a.max() <= 1):             # written so that NaN fails too
        raise InputError(f"images must have pixels in [0, 1]; got values from {a.min()} to {a.max()}")
    scaled = a * 255                                                  # (n, 28, 28), float
    return np.rint(scaled, out=scaled).astype(np.uint8)


def _check_labels(labels, n):
    """Labels as int64 (n,), checked to be digits 0..9."""
    a = np.asarray(labels)
    if a.dtype.kind not in "iu" or a.shape != (n,):
        raise InputError(f"labels must be integers of shape ({n},), one per image; got {a.dtype} {a.shape}")
    if n and (a.min() < 0 or a.max() > 9):
        raise InputError(f"labels must be digits 0..9; got values from {a.min()} to {a.max()}")
    return a.astype(np.int64)


def _check_angles(angles):
    """Angles in degrees (a sequence, or None for none) as a tuple of finite floats."""
    if angles is None:
        return ()
    values = None
    if not isinstance(angles, (str, bytes, numbers.Number)):
        try:
            values = tuple(float(angle) for angle in angles)
        except (TypeError, ValueError):
            pass
    if values is None or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"rotations must be a sequence of finite angles in degrees, e.g. (-10, 10); "
                          f"got {angles!r}")
    return values


def shift_images(images, direction):
    """Move each picture one pixel ``direction``: "up", "down", "left" or "right".

    The row or column that moves past the border is dropped and the one left
    empty is zero (black), as in the book's ``expand_mnist.py``.

    Parameters
    ----------
    images : array_like, shape (n, 28, 28) or (n, 784), uint8 or floating in [0, 1]

    Returns
    -------
    ndarray of uint8, shape (n, 28, 28)
        For "up", output row ``r`` is input row ``r + 1`` and row 27 is zero.
    """
    if not isinstance(direction, str) or direction not in _SHIFTS:
        raise ConfigError(f"direction must be one of {', '.join(_SHIFTS)}; got {direction!r}")
    x = _as_uint8(images)
    to, source = _SHIFTS[direction]
    out = np.zeros_like(x)                                            # (n, 28, 28)
    out[to] = x[source]
    return out


def rotate_images(images, angle):
    """Rotate each picture by ``angle`` degrees, counter-clockwise as displayed, about its centre.

    ``scipy.ndimage.rotate`` with ``reshape=False``, bilinear interpolation
    (``order=1``) and zeros brought in from outside the image; scipy rounds
    the interpolated values to the nearest uint8.

    Parameters
    ----------
    images : array_like, shape (n, 28, 28) or (n, 784), uint8 or floating in [0, 1]
    angle : float

    Returns
    -------
    ndarray of uint8, shape (n, 28, 28)
    """
    from scipy import ndimage

    if isinstance(angle, bool) or not isinstance(angle, numbers.Real) or not math.isfinite(angle):
        raise ConfigError(f"angle must be a finite number of degrees; got {angle!r}")
    x = _as_uint8(images)
    return ndimage.rotate(x, float(angle), axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0)


def expand_training_data(images, labels, *, shifts=True, rotations=(), seed=0, shuffle=True):
    """Each image, its four 1-pixel shifts (if ``shifts``) and one rotation per angle, shuffled.

    Parameters
    ----------
    images : array_like, shape (n, 28, 28) or (n, 784), uint8 or floating in [0, 1]
    labels : array_like of int, shape (n,), digits 0..9
    shifts : bool
        Add the copies moved up, down, left and right (the book's 5x expansion).
    rotations : sequence of float
        Degrees; one rotated copy of each original per angle.
    seed : int
        Seed of the ``np.random.default_rng`` that shuffles.
    shuffle : bool
        Without shuffling, rows ``c*i .. c*i + c-1`` are the ``c = 1 + 4 shifts
        + len(rotations)`` copies of image ``i``: ``SHIFT_ORDER``, then the rotations.

    Returns
    -------
    images : ndarray of uint8, shape (c n, 28, 28)
    labels : ndarray of int64, shape (c n,)
    """
    if not isinstance(shifts, (bool, np.bool_)):
        raise ConfigError(f"shifts must be True or False; got {shifts!r}")
    angles = _check_angles(rotations)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed!r}")
    x = _as_uint8(images)                                             # (n, 28, 28)
    # One function per copy, in the order of the docstring; each makes that copy of all n images.
    copies = [lambda: x] + [partial(shift_images, x, d) for d in SHIFT_ORDER[1:] if shifts] \
        + [partial(rotate_images, x, a) for a in angles]
    n, c = len(x), len(copies)
    labels = _check_labels(labels, n)
    if n * c > MAX_IMAGES:
        raise ConfigError(f"{n:,} images x {c} copies = {n * c:,} images, more than the {MAX_IMAGES:,} "
                          "an expanded file may hold")
    # Copy k of image i goes to row rows[i, k]. The copies are made one at a
    # time and scattered there: besides the output, only one copy of n images
    # is in memory. The same seed gives the same order as nndl always has.
    order = np.random.default_rng(int(seed)).permutation(n * c) if shuffle else np.arange(n * c)
    rows = order.reshape(n, c)                                        # (n, c)
    out = np.empty((n * c, _SIDE, _SIDE), dtype=np.uint8)             # (c n, 28, 28)
    for k, make in enumerate(copies):
        out[rows[:, k]] = make()                                      # (n, 28, 28) into n scattered rows
    out_labels = np.empty(n * c, dtype=np.int64)
    out_labels[rows] = labels[:, None]
    return out, out_labels


def save_expanded(path, images, labels, metadata):
    """Write an expanded set atomically as an nndl-expanded ``.npz`` file (the name is used as given).

    Parameters
    ----------
    images : array_like, shape (m, 28, 28) or (m, 784), uint8 or floating in [0, 1]
    labels : array_like of int, shape (m,), digits 0..9
    metadata : dict
        JSON-serialisable description of how the set was made; returned by
        :func:`load_expanded` (tuples come back as lists).

    Returns
    -------
    pathlib.Path
    """
    x = _as_uint8(images)
    labels = _check_labels(labels, len(x))
    if not isinstance(metadata, dict):
        raise ConfigError(f"metadata must be a dict; got {type(metadata).__name__}")
    from nndl._version import __version__

    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "count": len(x),
              "nndl_version": __version__, "expansion": metadata}
    try:
        text = json.dumps(header, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"metadata must be JSON-serialisable: {e}") from None
    path = Path(path)
    with atomic_writer(path) as f:
        np.savez_compressed(f, images=x.reshape(-1, _PIXELS), labels=labels, metadata=np.array(text))
    return path


def load_expanded(path):
    """Read a file written by :func:`save_expanded`.

    Returns
    -------
    images : ndarray of float32, shape (m, 784)
        Pixels ``k / 255`` in [0, 1], as ``nndl.data.mnist`` gives them.
    labels : ndarray of int64, shape (m,)
    metadata : dict
        The ``expansion`` description.

    Raises
    ------
    FileFormatError
        If the file is not a readable nndl-expanded file of a version this nndl
        reads; the message names the path.
    FileNotFoundError
        If there is no file at ``path``.
    """
    name = str(path)
    limit = MAX_IMAGES * _PIXELS                     # elements and bytes of any member
    # The header first, to know the shapes to expect; then every member, each
    # checked (dtype kind, shape, size) before its data is read.
    metadata = read_npz(path, {"metadata": "U"}, allow_extra=True, max_elements=limit, max_bytes=limit,
                        label=name)["metadata"]
    if metadata.shape != ():
        raise FileFormatError(f"{name}: member 'metadata' must be one JSON string")
    header = parse_json(metadata.item(), name)
    check_header(header, FORMAT_NAME, FORMAT_VERSION, name, version_key="format_version")
    count, expansion = header.get("count"), header.get("expansion")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_IMAGES:
        raise FileFormatError(f"{name}: malformed image count {brief(count)} (0 to {MAX_IMAGES:,} allowed)")
    if not isinstance(expansion, dict):
        raise FileFormatError(f"{name}: the header has no \"expansion\" object")
    arrays = read_npz(path, {"images": ("u", (count, _PIXELS)), "labels": ("iu", (count,)), "metadata": "U"},
                      max_elements=limit, max_bytes=limit, label=name)
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8:
        raise FileFormatError(f"{name}: images must be uint8; got {images.dtype}")
    if count and (labels.min() < 0 or labels.max() > 9):
        raise FileFormatError(f"{name}: labels must be digits 0..9; got values from {labels.min()} to "
                              f"{labels.max()}")
    return np.divide(images, np.float32(255), dtype=np.float32), labels.astype(np.int64), expansion


def expand_mnist_file(path, *, data=None, shifts=True, rotations=(), seed=0, shuffle=True, progress=False):
    """Expand the MNIST training split (50,000 -> 250,000 with shifts) and save it to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (see :func:`save_expanded`).
    data : str, os.PathLike, MnistData or None
        A loaded ``MnistData`` (anything with ``.training.images`` and
        ``.training.labels``), or where ``nndl.data.mnist.load_mnist`` should look.
    shifts, rotations, seed, shuffle
        As for :func:`expand_training_data`.
    progress : bool
        Say what is happening on standard error.

    Returns
    -------
    pathlib.Path
    """
    angles = _check_angles(rotations)

    def say(message):
        if progress:
            print(message, file=sys.stderr)

    if hasattr(data, "training"):
        mnist, source = data, "MNIST training split (given in memory)"
    else:
        from nndl.data.mnist import load_mnist

        mnist = load_mnist(data, progress=progress)
        source = f"MNIST training split from {mnist.source}"
    say(f"expanding {len(mnist.training.labels):,} images ...")
    images, labels = expand_training_data(mnist.training.images, mnist.training.labels, shifts=shifts,
                                          rotations=angles, seed=seed, shuffle=shuffle)
    metadata = {"source": source, "source_count": len(mnist.training.labels), "count": len(images),
                "shifts": bool(shifts), "shift_distance": 1 if shifts else 0,
                "shift_order": list(SHIFT_ORDER) if shifts else [], "rotations": list(angles),
                "shuffled": bool(shuffle), "seed": int(seed)}
    say(f"writing {len(images):,} images to {path} ...")
    return save_expanded(path, images, labels, metadata)
