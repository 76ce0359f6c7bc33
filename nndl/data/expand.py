"""Artificially expanded MNIST training data (book, chapters 3 and 6).

The book grows the 50,000 MNIST training images to 250,000 by adding, for
every image, four copies displaced by one pixel (up, down, left and right),
and mentions small rotations as another way to make more training data.
This module builds such expanded sets, and saves and loads them as a
reusable ``.npz`` file.

Conventions
-----------
* Images are rows of pixels: ``(n, 784)`` (flattened 28x28, row-major) or
  ``(n, 28, 28)``; functions return the layout they were given.
* Row 0 of an image is its top row and column 0 its left column, as when
  the image is displayed.
* Pixel values are in ``[0, 1]``; labels are integers, returned as int64.

Order of the copies
-------------------
Without shuffling, the copies of input image ``i`` are contiguous, in this
order: the original, then (if shifting) up, down, left, right, then (if
rotating) one copy per angle, in the order the angles were given.  So with
shifts only, output rows ``5*i .. 5*i+4`` are image ``i``: original, up,
down, left, right.

File format ("nndl-expanded", version 1)
----------------------------------------
A ``.npz`` archive (``np.savez_compressed``) with three members, none of
which needs pickle to read:

``images``
    uint8, shape (n, 784): ``round(pixel * 255)``.  Exact for MNIST pixels
    and their shifts (which are all ``k / 255``); rotated pixels are rounded
    to the nearest ``k / 255``.
``labels``
    int64, shape (n,), values 0..9.
``metadata``
    0-d unicode array holding a JSON object: ``{"format": "nndl-expanded",
    "format_version": 1, "count": n, "nndl_version": ..., "expansion":
    {...}}`` where ``expansion`` is the caller's description of how the data
    was made (shifts, rotations, seed, source, ...).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nndl.files.atomic import atomic_writer

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SHIFT_ORDER",
    "shift_images",
    "rotate_images",
    "expand_training_data",
    "save_expanded",
    "load_expanded",
    "expand_mnist_file",
]

#: Format name written into (and required in) every expanded-data file.
FORMAT_NAME = "nndl-expanded"
#: Newest file format version this module writes and reads.
FORMAT_VERSION = 1
#: Order of the copies made for each image by :func:`shift_images`.
SHIFT_ORDER = ("original", "up", "down", "left", "right")

_SIDE = 28
_PIXELS = _SIDE * _SIDE
_NUM_CLASSES = 10
# Images processed per block: bounds the temporary memory of rotations and
# of shuffled expansion (a block of 2048 images x 5 copies is 32 MB float32).
_BLOCK = 2048


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------

def _as_stack(images):
    """Check an image array and view it as a stack of 28x28 images.

    Parameters
    ----------
    images : array_like, shape (n, 784) or (n, 28, 28)
        Real-valued pixels.

    Returns
    -------
    stack : ndarray, shape (n, 28, 28)
        The same pixels (a view where possible).
    flat : bool
        True when ``images`` had the (n, 784) layout.
    """
    array = np.asarray(images)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(
            f"images must hold real numbers (integer or floating dtype); "
            f"got dtype {array.dtype}"
        )
    if array.ndim == 2 and array.shape[1] == _PIXELS:
        return array.reshape(array.shape[0], _SIDE, _SIDE), True
    if array.ndim == 3 and array.shape[1:] == (_SIDE, _SIDE):
        return array, False
    raise ValueError(
        f"images must have shape (n, {_PIXELS}) or (n, {_SIDE}, {_SIDE}); "
        f"got shape {array.shape}"
    )


def _check_labels(labels, n):
    """Check labels and return them as int64.

    Parameters
    ----------
    labels : array_like, shape (n,)
        Integer class labels.
    n : int
        Number of images the labels belong to.

    Returns
    -------
    labels : ndarray of int64, shape (n,)
    """
    array = np.asarray(labels)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must have an integer dtype; got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"labels must have shape (n,); got shape {array.shape}")
    if array.shape[0] != n:
        raise ValueError(
            f"labels must have one entry per image: {n} images but "
            f"{array.shape[0]} labels"
        )
    return array.astype(np.int64, copy=False)


def _check_label_range(labels):
    """Raise ValueError unless every label is in 0..9."""
    if labels.size and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        raise ValueError(
            f"labels must be in 0..{_NUM_CLASSES - 1}; got values from "
            f"{int(labels.min())} to {int(labels.max())}"
        )


def _check_unit_range(stack, what):
    """Raise ValueError unless ``stack`` is floating with values in [0, 1]."""
    if not np.issubdtype(stack.dtype, np.floating):
        raise ValueError(
            f"{what} needs floating-point images with pixels in [0, 1]; "
            f"got dtype {stack.dtype}"
        )
    if stack.size:
        low, high = stack.min(), stack.max()
        # Written so that NaN fails the test as well.
        if not (low >= 0.0 and high <= 1.0):
            raise ValueError(
                f"{what} needs pixels in [0, 1]; got values from {low} to {high}"
            )


def _check_distance(distance):
    """Return ``distance`` as an int, or raise ValueError."""
    if isinstance(distance, bool) or not isinstance(distance, numbers.Integral):
        raise ValueError(f"distance must be an integer number of pixels; got {distance!r}")
    if not 1 <= distance < _SIDE:
        raise ValueError(f"distance must be between 1 and {_SIDE - 1} pixels; got {distance}")
    return int(distance)


def _check_angles(angles, name):
    """Return ``angles`` as a tuple of finite floats (degrees), or raise ValueError."""
    if angles is None:
        return ()
    if isinstance(angles, (str, bytes)) or isinstance(angles, numbers.Number):
        raise ValueError(
            f"{name} must be a sequence of angles in degrees, e.g. (-10.0, 10.0); "
            f"got {angles!r}"
        )
    try:
        values = tuple(float(angle) for angle in angles)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a sequence of angles in degrees, e.g. (-10.0, 10.0); "
            f"got {angles!r}"
        ) from None
    for angle in values:
        if not math.isfinite(angle):
            raise ValueError(f"{name} must be finite numbers of degrees; got {angle!r}")
    return values


def _check_seed(seed):
    """Return ``seed`` as an int, or raise ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


# ---------------------------------------------------------------------------
# Expansion
# ---------------------------------------------------------------------------

def _rotation_operator(angle):
    """The linear map that rotates one flattened 28x28 image by ``angle``.

    Rotation by ``scipy.ndimage.rotate`` with bilinear interpolation
    (order 1, no prefilter) and zero fill is linear in the pixels, so it is
    fully described by where it sends each of the 784 one-pixel images.
    Rotating those once gives a sparse (784, 784) matrix (at most four
    non-zeros a row) that rotates any batch with one sparse product: the
    same numbers as calling ``ndimage.rotate`` on the batch, about ten times
    faster (``ndimage.rotate`` loops over the images of a stack in Python).

    Parameters
    ----------
    angle : float
        Degrees, counter-clockwise as displayed (row 0 at the top).

    Returns
    -------
    operator : scipy.sparse.csr_array, shape (784, 784), float64
        ``operator @ image`` is the rotated image, for an image of shape (784,).
    """
    from scipy import ndimage, sparse

    basis = np.eye(_PIXELS, dtype=np.float64).reshape(_PIXELS, _SIDE, _SIDE)
    rotated_basis = ndimage.rotate(
        basis,
        angle,
        axes=(1, 2),
        reshape=False,
        order=1,
        mode="constant",
        cval=0.0,
        prefilter=False,
    )
    # Row j of rotated_basis is the image of pixel j, i.e. column j of the map.
    return sparse.csr_array(rotated_basis.reshape(_PIXELS, _PIXELS).T)


def _fill_copies(source, copies, *, shift_distance, rotations):
    """Write the copies of a block of images.

    Parameters
    ----------
    source : ndarray, shape (b, 28, 28)
        The block of input images.
    copies : ndarray, shape (b, c, 28, 28)
        Output, overwritten entirely: ``copies[:, 0]`` is the original, then
        (if ``shift_distance``) up, down, left, right, then one rotated copy
        per rotation operator.
    shift_distance : int or None
        Pixels to shift by, or None for no shifted copies.
    rotations : list of scipy.sparse.csr_array, each shape (784, 784)
        Rotation operators from :func:`_rotation_operator`.
    """
    copies[:, 0] = source
    k = 1
    if shift_distance is not None:
        d = shift_distance
        up, down, left, right = (copies[:, k + j] for j in range(4))
        # Up: row r takes row r + d; the bottom d rows are vacated.
        up[:, :-d, :] = source[:, d:, :]
        up[:, -d:, :] = 0
        # Down: row r + d takes row r; the top d rows are vacated.
        down[:, d:, :] = source[:, :-d, :]
        down[:, :d, :] = 0
        # Left: column c takes column c + d; the right d columns are vacated.
        left[:, :, :-d] = source[:, :, d:]
        left[:, :, -d:] = 0
        # Right: column c + d takes column c; the left d columns are vacated.
        right[:, :, d:] = source[:, :, :-d]
        right[:, :, :d] = 0
        k += 4
    if rotations:
        b = source.shape[0]
        columns = source.reshape(b, _PIXELS).T  # (784, b)
        for operator in rotations:
            rotated = (operator @ columns).T  # (b, 784), float64
            np.clip(rotated.reshape(b, _SIDE, _SIDE), 0.0, 1.0, out=copies[:, k])
            k += 1


def _expand(stack, labels, *, shift_distance, angles, rng, progress=False):
    """Build the expanded set, allocating the output once.

    Parameters
    ----------
    stack : ndarray, shape (n, 28, 28)
        Input images.
    labels : ndarray of int64, shape (n,)
        Their labels.
    shift_distance : int or None
        Pixels to shift by, or None for no shifted copies.
    angles : tuple of float
        Rotation angles in degrees.
    rng : numpy.random.Generator or None
        When given, the output rows are put in a random order drawn from it.
    progress : bool
        Show a progress bar on standard error.

    Returns
    -------
    images : ndarray, shape (n * c, 28, 28)
        Same dtype as ``stack``; ``c = 1 + 4 * shifting + len(angles)``.
    labels : ndarray of int64, shape (n * c,)
    """
    n = stack.shape[0]
    per_image = 1 + (4 if shift_distance is not None else 0) + len(angles)
    rotations = [_rotation_operator(angle) for angle in angles]
    total = n * per_image
    out = np.empty((total, _SIDE, _SIDE), dtype=stack.dtype)
    repeated = np.repeat(labels, per_image)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="expanding", unit="img", file=sys.stderr)
    try:
        if rng is None:
            # Copies of image i go straight to rows i*c .. i*c + c - 1.
            out_by_image = out.reshape(n, per_image, _SIDE, _SIDE)
            for start in range(0, n, _BLOCK):
                stop = min(start + _BLOCK, n)
                _fill_copies(
                    stack[start:stop],
                    out_by_image[start:stop],
                    shift_distance=shift_distance,
                    rotations=rotations,
                )
                if bar is not None:
                    bar.update(stop - start)
            out_labels = repeated
        else:
            # Shuffle without a second full-size array: build each block of
            # copies in a small buffer and scatter it to random rows.
            destination = rng.permutation(total)
            out_labels = np.empty(total, dtype=np.int64)
            out_labels[destination] = repeated
            buffer = np.empty((min(_BLOCK, n), per_image, _SIDE, _SIDE), dtype=stack.dtype)
            for start in range(0, n, _BLOCK):
                stop = min(start + _BLOCK, n)
                block = buffer[: stop - start]
                _fill_copies(
                    stack[start:stop], block, shift_distance=shift_distance, rotations=rotations
                )
                rows = destination[start * per_image : stop * per_image]
                out[rows] = block.reshape(-1, _SIDE, _SIDE)
                if bar is not None:
                    bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    return out, out_labels


def _restore_layout(images, flat):
    """Return ``images`` (m, 28, 28) as (m, 784) when ``flat``."""
    return images.reshape(images.shape[0], _PIXELS) if flat else images


def shift_images(images, labels, *, distance=1):
    """Add four copies of each image shifted up, down, left and right.

    The vacated rows or columns are filled with zeros; pixels shifted past
    the border are dropped.

    Parameters
    ----------
    images : array_like, shape (n, 784) or (n, 28, 28)
        Images, any real dtype (the dtype is kept).
    labels : array_like of int, shape (n,)
        Their labels.
    distance : int, optional
        Pixels to shift by, 1 to 27.  The book uses 1.

    Returns
    -------
    images : ndarray, shape (5 * n, 784) or (5 * n, 28, 28)
        Same layout and dtype as given.  Rows ``5*i .. 5*i+4`` are image
        ``i``: the original, then shifted up, down, left, right (see
        ``SHIFT_ORDER``).  "Up" means the picture moves up: output row ``r``
        is input row ``r + distance``.
    labels : ndarray of int64, shape (5 * n,)
        Each label repeated 5 times, so labels follow their images.

    Raises
    ------
    ValueError
        If the shapes, dtypes or ``distance`` are invalid.
    """
    stack, flat = _as_stack(images)
    labels = _check_labels(labels, stack.shape[0])
    distance = _check_distance(distance)
    out, out_labels = _expand(stack, labels, shift_distance=distance, angles=(), rng=None)
    return _restore_layout(out, flat), out_labels


def rotate_images(images, labels, *, angles=(-10.0, 10.0)):
    """Add rotated copies of each image, one per angle.

    Each copy is what ``scipy.ndimage.rotate(image, angle, reshape=False,
    order=1, mode="constant", cval=0)`` gives: rotation about the image
    centre, bilinear, with zeros brought in from outside the image; the
    result is clipped to [0, 1].  (It is computed as one sparse product per
    angle, which gives the same numbers much faster.)  Fixed angles make
    the result deterministic (no random numbers).

    Parameters
    ----------
    images : array_like, shape (n, 784) or (n, 28, 28)
        Floating-point images with pixels in [0, 1] (the dtype is kept).
    labels : array_like of int, shape (n,)
        Their labels.
    angles : sequence of float, optional
        Angles in degrees; positive turns the picture counter-clockwise as
        displayed (row 0 at the top).  Must not be empty.

    Returns
    -------
    images : ndarray, shape ((1 + k) * n, 784) or ((1 + k) * n, 28, 28)
        ``k = len(angles)``.  Same layout and dtype as given.  Rows
        ``(1+k)*i .. (1+k)*i + k`` are image ``i``: the original, then one
        copy per angle in the order given.
    labels : ndarray of int64, shape ((1 + k) * n,)
        Each label repeated ``1 + k`` times.

    Raises
    ------
    ValueError
        If the shapes, dtypes, pixel range or angles are invalid.
    """
    stack, flat = _as_stack(images)
    labels = _check_labels(labels, stack.shape[0])
    angles = _check_angles(angles, "angles")
    if not angles:
        raise ValueError("angles must contain at least one angle in degrees")
    _check_unit_range(stack, "rotate_images")
    out, out_labels = _expand(stack, labels, shift_distance=None, angles=angles, rng=None)
    return _restore_layout(out, flat), out_labels


def expand_training_data(
    images, labels, *, shifts=True, rotations=(), seed=0, shuffle=True, progress=False
):
    """Expand a training set with shifted and/or rotated copies.

    Parameters
    ----------
    images : array_like, shape (n, 784) or (n, 28, 28)
        Training images.  Any real dtype for shifts only; floating with
        pixels in [0, 1] when rotating.  The dtype is kept.
    labels : array_like of int, shape (n,)
        Their labels.
    shifts : bool, optional
        Add the four one-pixel shifts of each image (the book's expansion).
    rotations : sequence of float or None, optional
        Angles in degrees; each adds one rotated copy of each original image
        (see :func:`rotate_images`).  Empty or None for no rotations.
    seed : int, optional
        Seed of the ``np.random.default_rng`` used to shuffle.
    shuffle : bool, optional
        Put the rows in random order (as the book does).  Without shuffling
        the copies of image ``i`` are contiguous: original, up, down, left,
        right, then the rotations.
    progress : bool, optional
        Show a progress bar on standard error.

    Returns
    -------
    images : ndarray, shape (c * n, 784) or (c * n, 28, 28)
        ``c = 1 + 4 * shifts + len(rotations)``; same layout and dtype as
        given.  The output array is allocated once (shuffling does not make
        a second full-size copy).
    labels : ndarray of int64, shape (c * n,)
        The label of each output image.

    Raises
    ------
    ValueError
        If the inputs or options are invalid.

    Notes
    -----
    The result depends only on the inputs and options: the same ``seed``
    gives the same order, another seed a different one.
    """
    stack, flat = _as_stack(images)
    labels = _check_labels(labels, stack.shape[0])
    if not isinstance(shifts, (bool, np.bool_)):
        raise ValueError(f"shifts must be True or False; got {shifts!r}")
    angles = _check_angles(rotations, "rotations")
    seed = _check_seed(seed)
    if angles:
        _check_unit_range(stack, "rotations")
    rng = np.random.default_rng(seed) if shuffle else None
    out, out_labels = _expand(
        stack,
        labels,
        shift_distance=1 if shifts else None,
        angles=angles,
        rng=rng,
        progress=progress,
    )
    return _restore_layout(out, flat), out_labels


# ---------------------------------------------------------------------------
# File format
# ---------------------------------------------------------------------------

def _to_uint8(stack):
    """Encode [0, 1] pixels as uint8 ``round(x * 255)``, block by block.

    Parameters
    ----------
    stack : ndarray, shape (n, 28, 28)

    Returns
    -------
    encoded : ndarray of uint8, shape (n, 784)
    """
    n = stack.shape[0]
    flat = stack.reshape(n, _PIXELS)
    encoded = np.empty((n, _PIXELS), dtype=np.uint8)
    step = 16 * _BLOCK
    for start in range(0, n, step):
        stop = min(start + step, n)
        scaled = np.rint(flat[start:stop] * 255.0)
        encoded[start:stop] = scaled
    return encoded


def save_expanded(path, images, labels, *, metadata):
    """Save an expanded training set as a reusable ``.npz`` file.

    The file is written atomically: a temporary file in the same directory
    is filled and then renamed over ``path``, so readers never see a
    partial file.  Parent directories are created if needed.  The name is
    used exactly as given (no ``.npz`` suffix is added).

    Parameters
    ----------
    path : str or os.PathLike
        Output file, conventionally ending in ``.npz``.
    images : array_like, shape (n, 784) or (n, 28, 28)
        Floating-point pixels in [0, 1]; stored as uint8 ``round(x * 255)``,
        which is exact for pixels of the form ``k / 255``.
    labels : array_like of int, shape (n,)
        Labels in 0..9.
    metadata : dict
        JSON-serialisable description of how the data was made (for
        example shifts, rotations, seed, source).  Returned by
        :func:`load_expanded`; tuples come back as lists.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the images, labels or metadata are invalid.
    """
    stack, _ = _as_stack(images)
    labels = _check_labels(labels, stack.shape[0])
    _check_label_range(labels)
    _check_unit_range(stack, "save_expanded")
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict; got {type(metadata).__name__}")
    from nndl import __version__

    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "count": int(stack.shape[0]),
        "nndl_version": __version__,
        "expansion": metadata,
    }
    try:
        text = json.dumps(header, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata must be JSON-serialisable: {error}") from None
    encoded = _to_uint8(stack)

    path = Path(path)
    with atomic_writer(path) as handle:
        np.savez_compressed(handle, images=encoded, labels=labels, metadata=np.array(text))
    return path


def load_expanded(path):
    """Load a file written by :func:`save_expanded`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.

    Returns
    -------
    images : ndarray of float32, shape (n, 784)
        Pixels ``k / 255`` in [0, 1].
    labels : ndarray of int64, shape (n,)
        Labels in 0..9.
    metadata : dict
        The ``metadata`` given to :func:`save_expanded`.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is corrupt, is not an nndl-expanded file, comes from a
        newer format version, or holds arrays of the wrong shape, dtype or
        label range.  The message names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no expanded-data file at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"images", "labels", "metadata"} - set(archive.files)
            if missing:
                raise ValueError(f"missing member(s) {sorted(missing)}")
            raw_metadata = archive["metadata"]
            header = _parse_header(raw_metadata, path)
            encoded = archive["images"]
            labels = archive["labels"]
    except _ExpandedFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, AttributeError, TypeError,
            zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path} is not a readable nndl-expanded file: {error}") from None

    n = header["count"]
    if encoded.dtype != np.uint8 or encoded.shape != (n, _PIXELS):
        raise ValueError(
            f"{path}: images must be uint8 with shape ({n}, {_PIXELS}); "
            f"got {encoded.dtype} with shape {encoded.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (n,):
        raise ValueError(
            f"{path}: labels must be integers with shape ({n},); "
            f"got {labels.dtype} with shape {labels.shape}"
        )
    labels = labels.astype(np.int64, copy=False)
    try:
        _check_label_range(labels)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    images = np.empty((n, _PIXELS), dtype=np.float32)
    np.divide(encoded, np.float32(255.0), out=images, dtype=np.float32)
    return images, labels, header["expansion"]


class _ExpandedFileError(ValueError):
    """A readable archive whose header is not a valid nndl-expanded header."""


def _parse_header(raw, path):
    """Decode and check the JSON header of an expanded-data file.

    Parameters
    ----------
    raw : ndarray
        The ``metadata`` member: a 0-d unicode array.
    path : pathlib.Path
        The file, for error messages.

    Returns
    -------
    header : dict
        With keys "format", "format_version", "count" and "expansion".
    """
    if raw.ndim != 0 or raw.dtype.kind != "U":
        raise _ExpandedFileError(f"{path}: metadata member is not a JSON string")
    try:
        header = json.loads(raw.item())
    except json.JSONDecodeError as error:
        raise _ExpandedFileError(f"{path}: metadata is not valid JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else None
        raise _ExpandedFileError(
            f"{path} is not an {FORMAT_NAME} file (format {found!r})"
        )
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _ExpandedFileError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _ExpandedFileError(
            f"{path} uses {FORMAT_NAME} format version {version}, which is newer "
            f"than the version this nndl reads ({FORMAT_VERSION}); "
            f"upgrade nndl to read it"
        )
    count = header.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise _ExpandedFileError(f"{path}: invalid count {count!r}")
    if not isinstance(header.get("expansion"), dict):
        raise _ExpandedFileError(f"{path}: metadata has no 'expansion' object")
    return header


# ---------------------------------------------------------------------------
# The job behind ``nndl expand``
# ---------------------------------------------------------------------------

def expand_mnist_file(
    output, *, data=None, shifts=True, rotations=(), seed=0, shuffle=True, progress=True
):
    """Expand the MNIST training split and save it to ``output``.

    Parameters
    ----------
    output : str or os.PathLike
        File to write (see :func:`save_expanded`).
    data : str, os.PathLike, MnistData or None, optional
        Directory holding the MNIST files, passed to
        ``nndl.data.mnist.load_mnist`` (None: its search of the usual places,
        downloading the files if they are not found); or an already loaded
        ``MnistData`` (anything with ``.training.images`` and
        ``.training.labels``).
    shifts : bool, optional
        Add the four one-pixel shifts (50,000 -> 250,000 images).
    rotations : sequence of float or None, optional
        Angles in degrees, one rotated copy of each original per angle.
    seed : int, optional
        Seed for shuffling.
    shuffle : bool, optional
        Shuffle the expanded set.
    progress : bool, optional
        Report progress on standard error.

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    angles = _check_angles(rotations, "rotations")
    seed = _check_seed(seed)
    if data is not None and hasattr(data, "training"):
        mnist = data
        source = "MNIST training split (given in memory)"
    else:
        from nndl.data.mnist import load_mnist

        if progress:
            print("loading MNIST ...", file=sys.stderr)
        mnist = load_mnist(data, progress=progress)
        source = f"MNIST training split from {os.fspath(mnist.source)}"
    images = mnist.training.images
    labels = mnist.training.labels

    expanded, expanded_labels = expand_training_data(
        images,
        labels,
        shifts=shifts,
        rotations=angles,
        seed=seed,
        shuffle=shuffle,
        progress=progress,
    )
    metadata = {
        "source": source,
        "source_count": int(np.shape(images)[0]),
        "count": int(expanded.shape[0]),
        "shifts": bool(shifts),
        "shift_distance": 1 if shifts else 0,
        "shift_order": list(SHIFT_ORDER) if shifts else [],
        "rotations": list(angles),
        "shuffled": bool(shuffle),
        "seed": seed,
    }
    if progress:
        print(f"writing {expanded.shape[0]} images to {output} ...", file=sys.stderr)
    path = save_expanded(output, expanded, expanded_labels, metadata=metadata)
    if progress:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return path
