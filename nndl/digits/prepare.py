"""Any image of a handwritten digit as MNIST would have it: 28x28, white ink on black, centred.

The networks learned from MNIST, whose digits were prepared in a particular
way; a digit from anywhere else must be prepared the same way before the
network can read it. ``prepare`` does, in this order:

1. **Open** the image with Pillow (PNG, JPEG, GIF, BMP, TIFF, WebP, ...;
   the first frame of an animation), refusing one of more than
   ``MAX_PIXELS`` pixels from its header, before any pixel is decoded (a
   decompression bomb: a few kilobytes that decode to gigabytes).
2. **Greyscale** in [0, 1]: turned upright as its EXIF orientation says;
   an image with transparency is first composited on white (a transparent
   PNG with black strokes is black on white), or on black when that is the
   only way its strokes show (white strokes on transparency); colour goes
   to luminance (ITU-R 601-2, Pillow's ``convert("L")``); 16-bit greys keep
   their full range. An image of more than ``WORK_PIXELS`` pixels is shrunk
   first by a whole factor, averaging blocks of pixels (boxes are still
   given in its own pixels).
3. **Ink**: MNIST is white ink on black. The background is the median of the
   image's outermost pixels; a light background (above 0.5) means dark ink
   on light paper, and the image is inverted. Contrast is then stretched so
   the background is 0 and the strongest ink 1 (grey paper, a faint pen),
   and what is left below ``NOISE_FLOOR`` (paper texture, JPEG ringing) is
   set to 0. An image whose ink differs from its background by less than
   ``MIN_CONTRAST`` is **blank**, and says so.
4. **Crop** to the bounding box of the ink, leaving out specks: connected
   marks holding less than ``SPECK_FRACTION`` of the ink of the largest.
5. **Scale** the crop so its longer side is 20 pixels, keeping the aspect
   ratio, anti-aliased: Pillow's ``resize`` with a Lanczos filter
   (``RESAMPLE``), which it widens when shrinking so every source pixel
   counts, in floating point.
6. **Centre**: place it in a 28x28 field and shift it by whole pixels so its
   centre of mass (``scipy.ndimage.center_of_mass``) falls on pixel
   (14, 14), as in MNIST (whose digits' centres of mass average
   (13.99, 14.00) with the spread of rounding to whole pixels).

Steps 4-6 are MNIST's own normalisation (LeCun et al.); ``prepare_array``
does only those, for ink that is already white on black (the segments of a
whole number, in ``nndl.digits.read``).

Coordinates: arrays are indexed (row, column) = (y, x); boxes are
``(x0, y0, x1, y1)`` with x1 and y1 exclusive, as in Pillow's ``crop``.
"""

import errno
import io
import math
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from nndl.errors import InputError

__all__ = ["MAX_PIXELS", "Prepared", "open_image", "source_name", "to_grey", "to_ink", "ink_components", "prepare",
           "prepare_array", "compose_number", "gap_for_distance", "MIN_CONTRAST", "NOISE_FLOOR", "SPECK_FRACTION",
           "SIDE", "BOX", "CENTRE", "WORK_PIXELS", "shrink_factor", "to_image_box", "upright_size"]

#: The most pixels (width x height) an image may have; larger ones are refused before decoding.
MAX_PIXELS = 40_000_000

#: Images of more pixels are shrunk (averaging blocks of pixels) before they are worked on: plenty for a
#: digit or a line of digits, and it bounds the time and memory one image takes.
WORK_PIXELS = 2_000_000

#: The side of an MNIST image, of the box its digits are scaled to fit, and the centre of mass (row, column).
SIDE, BOX, CENTRE = 28, 20, (14.0, 14.0)

#: Ink must differ from the background by at least this much (of the full 0..1 range), or the image is blank.
MIN_CONTRAST = 0.1

#: After the contrast stretch, ink below this is background (paper texture, compression noise).
NOISE_FLOOR = 0.1

#: A connected mark holding less than this fraction of the ink of the largest mark is a speck, not writing.
SPECK_FRACTION = 0.02

#: The resampling filter used to scale the digit to 20 pixels; Pillow's filters are anti-aliased when shrinking.
RESAMPLE = "lanczos"

#: What Pillow may raise while identifying or decoding bytes that are not a well-formed image.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, zlib.error)


@dataclass
class Prepared:
    """A digit ready for the network, and what was found on the way.

    Attributes
    ----------
    pixels : ndarray, shape (784,), float32
        The 28x28 image, row by row, in [0, 1], white ink on black as in
        MNIST; all zeros when ``blank``.
    blank : bool
        No ink was found.
    inverted : bool
        The input was dark ink on a light background, and was inverted.
    box : tuple of int or None
        ``(x0, y0, x1, y1)`` of the ink in the input (x1, y1 exclusive);
        None when blank.
    message : str or None
        Why there is no digit (``"the image is blank: ..."``), else None.
    """

    pixels: np.ndarray
    blank: bool
    inverted: bool = False
    box: tuple[int, int, int, int] | None = None
    message: str | None = None


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------


def open_image(source):
    """An image, decoded, from a path, bytes, a binary file object, or a Pillow image.

    The size in the header is checked against ``MAX_PIXELS`` before the
    pixels are decoded. A path's file is closed on return.

    Returns
    -------
    PIL.Image.Image
        Loaded (its pixels decoded); the first frame of an animation.

    Raises
    ------
    InputError
        For an empty input, bytes Pillow does not recognise as an image, a
        damaged or truncated image, or one of more than ``MAX_PIXELS`` pixels.
        Also for a path that is not a regular file (a FIFO, a device: refused
        before it is opened, so never waited on), a symbolic link loop or a
        name too long.
    FileNotFoundError, IsADirectoryError, PermissionError
        For a path that cannot be opened.
    """
    from PIL import Image
    if isinstance(source, Image.Image):
        _check_size(source.size, "the image")
        return source
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        with _open_path(source) as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise InputError(f"{name} is empty (0 bytes), not an image")
            return _decode(f, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "the image"
    elif hasattr(source, "read"):
        data, name = source.read(), str(getattr(source, "name", "the image"))
        if not isinstance(data, bytes):
            raise InputError(f"{name} must be opened in binary mode ('rb')")
    else:
        raise InputError(f"cannot read an image from a {type(source).__name__}: give a path, bytes, a binary "
                         "file or a Pillow image")
    if not data:
        raise InputError(f"{name} is empty (0 bytes), not an image")
    return _decode(io.BytesIO(data), name)


def source_name(source) -> str:
    """What to call an image in a message: a path as given, a file object's name, else "the image"."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    name = getattr(source, "name", None) if hasattr(source, "read") else None
    return str(name) if isinstance(name, (str, os.PathLike)) else "the image"


def _open_path(source):
    """A binary file object of the regular file at ``source``, checked before and after opening.

    Never blocks on a FIFO, device or socket: those are refused from ``os.stat`` before opening, and the
    file is opened non-blocking and checked again (in case it was swapped meanwhile).
    """
    name = str(source)
    try:
        info = os.stat(source)
    except OSError as e:
        _refuse_path(e, name)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", name)
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{name} is not a regular file (a {_kind(info.st_mode)}), not an image")
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        _refuse_path(e, name)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InputError(f"{name} is not a regular file (a {_kind(info.st_mode)}), not an image")
    return os.fdopen(fd, "rb")


def _kind(mode):
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return kind
    return "special file"


def _refuse_path(error: OSError, name: str) -> NoReturn:
    """Re-raise an OSError of opening ``name``: missing, unreadable and directories as they are, the rest
    (a symbolic link loop, a name too long, ...) as one InputError."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        raise error from None
    shown = name if len(name) <= 120 else name[:80] + "..." + name[-20:]
    reasons = {errno.ELOOP: "too many levels of symbolic links (a symbolic link loop?)",
               errno.ENAMETOOLONG: "the file name is too long"}
    reason = reasons.get(error.errno or 0, (error.strerror or str(error)).lower())
    raise InputError(f"{shown}: cannot open the image: {reason}") from None


def _decode(stream, name):
    """Open ``stream`` with Pillow, check its size, then decode its pixels."""
    from PIL import Image, UnidentifiedImageError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)     # our own, lower limit applies
        try:
            image = Image.open(stream)
        except UnidentifiedImageError:
            raise InputError(f"{name} is not an image that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)") \
                from None
        except Image.DecompressionBombError:
            raise InputError(f"{name} is too large: more than {MAX_PIXELS:,} pixels (refused as a possible "
                             "decompression bomb)") from None
        except _DECODE_ERRORS as e:
            raise InputError(f"{name} is a damaged image ({_reason(e)})") from None
        _check_size(image.size, name)
        try:
            image.load()
        except Image.DecompressionBombError:
            raise InputError(f"{name} is too large: more than {MAX_PIXELS:,} pixels (refused as a possible "
                             "decompression bomb)") from None
        except _DECODE_ERRORS as e:
            raise InputError(f"{name} is a damaged or truncated image ({_reason(e)})") from None
    return image


def _check_size(size, name):
    width, height = size
    if width * height > MAX_PIXELS:
        raise InputError(f"{name} is too large: {width} x {height} = {width * height:,} pixels, more than the "
                         f"{MAX_PIXELS:,} nndl accepts (refused as a possible decompression bomb)")
    if width == 0 or height == 0:
        raise InputError(f"{name} has no pixels ({width} x {height})")


def _reason(error):
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


# ---------------------------------------------------------------------------
# Greyscale and ink
# ---------------------------------------------------------------------------


def to_grey(image, name="the image"):
    """The image as greys in [0, 1]: upright, transparency composited, colour to luminance, not too large.

    Parameters
    ----------
    image : PIL.Image.Image, or ndarray
        An array is an image too: shape (h, w) of greys, (h, w, 3) RGB or
        (h, w, 4) RGBA, either uint8 (0..255) or floats in [0, 1]; a flat
        (784,) array is a 28x28 image.

    Returns
    -------
    ndarray, shape (h / f, w / f) rounded up, float32 in [0, 1]
        0 is black and 1 white, as in the image (not yet inverted). An image
        of more than ``WORK_PIXELS`` pixels is shrunk by the whole factor
        f = ``shrink_factor(w, h)``, each grey the mean of an f x f block;
        otherwise f = 1.

    Raises
    ------
    InputError
        For an array of another shape or range, or an image of floats (a
        float TIFF) holding NaN or infinite values, naming ``name``.
    """
    from PIL import Image, ImageOps
    image = _array_image(image) if isinstance(image, np.ndarray) else ImageOps.exif_transpose(image)
    factor = shrink_factor(*image.size)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all():
            raise InputError(f"{name} holds pixels that are not numbers (NaN or infinite values)")
        full = 1.0 if values.max(initial=0) <= 1 else \
            255.0 if values.max() <= 255 and not image.mode.startswith("I;16") else 65535.0
        scaled = Image.fromarray(np.clip(values / full, 0, 1).astype(np.float32))
        return np.asarray(scaled.reduce(factor) if factor > 1 else scaled, dtype=np.float32)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if factor > 1:                                     # averaged with premultiplied alpha, as it should be
            rgba = rgba.convert("RGBa").reduce(factor).convert("RGBA")
        on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        grey = np.asarray(on_white.convert("L"), dtype=np.float32) / 255
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255
        if np.ptp(grey) < MIN_CONTRAST <= np.ptp(alpha):      # light strokes on transparency: use black
            on_black = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
            grey = np.asarray(on_black.convert("L"), dtype=np.float32) / 255
        return grey
    grey = image.convert("L")
    return np.asarray(grey.reduce(factor) if factor > 1 else grey, dtype=np.float32) / 255


def shrink_factor(width, height):
    """The whole factor ``to_grey`` shrinks a width x height image by: 1 up to ``WORK_PIXELS`` pixels."""
    return max(1, math.ceil(math.sqrt(width * height / WORK_PIXELS)))


def upright_size(image):
    """(width, height) of an image (PIL or array, as ``to_grey`` takes it) once turned upright."""
    if isinstance(image, np.ndarray):
        return (SIDE, SIDE) if image.ndim == 1 else (image.shape[1], image.shape[0])
    width, height = image.size
    turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)          # EXIF orientations rotated by 90 degrees
    return (height, width) if turned else (width, height)


def to_image_box(box, factor, size):
    """A box ``(x0, y0, x1, y1)`` in a grey image shrunk by ``factor`` as a box in the image of ``size`` (w, h)."""
    x0, y0, x1, y1 = box
    return (x0 * factor, y0 * factor, min(size[0], x1 * factor), min(size[1], y1 * factor))


def _array_image(array):
    """A Pillow image of an array given as an image (see ``to_grey``)."""
    from PIL import Image
    if array.ndim == 1 and array.shape[0] == SIDE * SIDE:
        array = array.reshape(SIDE, SIDE)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise InputError(f"an image array must have shape (h, w), (h, w, 3) or (h, w, 4), got {array.shape}")
    if array.ndim == 2 and array.shape[1] == SIDE * SIDE:
        raise InputError(f"an array of shape {array.shape} is {array.shape[0]} prepared image(s) of 784 pixels, "
                         "not one image: give it to nndl.predict or Classifier.probabilities as it is")
    _check_size((array.shape[1], array.shape[0]), "the image")
    if array.dtype == np.uint8:
        return Image.fromarray(array)
    if array.dtype.kind not in "biuf":
        raise InputError(f"an image array must hold numbers, got {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InputError("the image array holds NaN or infinite values")
    if array.min() < 0 or array.max() > 1:
        raise InputError(f"an image array that is not uint8 must hold values in [0, 1], got values from "
                         f"{array.min():g} to {array.max():g}")
    if array.ndim == 2:
        return Image.fromarray(array)
    return Image.fromarray(np.round(array * 255).astype(np.uint8))


def to_ink(grey):
    """White ink on black in [0, 1] from greys: inverted if dark-on-light, contrast stretched, noise removed.

    Parameters
    ----------
    grey : ndarray, shape (h, w), floats in [0, 1]

    Returns
    -------
    ink : ndarray, shape (h, w), float32 in [0, 1]
        0 background, 1 the strongest ink; all zeros when blank.
    inverted : bool
        The background was light (the median of the outermost pixels above
        0.5), so the image was inverted.
    blank : bool
        Nothing differs from the background by ``MIN_CONTRAST`` or more.
    """
    grey = np.asarray(grey, dtype=np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    background = float(np.median(border))
    inverted = background > 0.5
    if inverted:
        grey, background = 1 - grey, 1 - background
    contrast = float(grey.max()) - background
    if contrast < MIN_CONTRAST:
        return np.zeros_like(grey), inverted, True
    ink = np.clip((grey - background) / contrast, 0, 1)          # background 0, strongest ink 1
    ink[ink < NOISE_FLOOR] = 0
    return ink, inverted, False


def ink_components(ink):
    """The connected marks of the ink, specks left out.

    Parameters
    ----------
    ink : ndarray, shape (h, w), white on black

    Returns
    -------
    labels : ndarray, shape (h, w), int
        ``scipy.ndimage.label`` of the inked pixels, 8-connected; 0 for
        background and for specks.
    kept : list of int
        The labels of the marks kept (each with at least ``SPECK_FRACTION``
        of the ink of the largest mark), in label order.
    """
    from scipy import ndimage
    labels, n = ndimage.label(ink > 0, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return labels, []
    mass = ndimage.sum_labels(ink, labels, index=np.arange(1, n + 1))         # (n,)
    kept = [int(k) + 1 for k in np.nonzero(mass >= SPECK_FRACTION * mass.max())[0]]
    if len(kept) < n:
        labels = np.where(np.isin(labels, kept), labels, 0)
    return labels, kept


# ---------------------------------------------------------------------------
# MNIST's normalisation
# ---------------------------------------------------------------------------


def prepare(image_or_source):
    """A digit image prepared as MNIST's were (see the module docstring for every step).

    Parameters
    ----------
    image_or_source : path, bytes, binary file, PIL.Image.Image, or ndarray
        Anything ``open_image`` opens, or an array as ``to_grey`` takes it.

    Returns
    -------
    Prepared
        ``pixels`` of shape (784,); ``blank`` with a message when there is
        no ink.

    Raises
    ------
    InputError
        For input that is not a readable image (see ``open_image``).
    """
    source = image_or_source
    name = source_name(source)
    if not isinstance(source, np.ndarray):
        source = open_image(source)
    grey = to_grey(source, name)
    ink, inverted, blank = to_ink(grey)
    if blank:
        return _blank("the image is blank: nothing in it differs from its background", inverted)
    prepared = prepare_array(ink)
    prepared.inverted = inverted
    size = upright_size(source)
    prepared.box = to_image_box(prepared.box, shrink_factor(*size), size)
    return prepared


def prepare_array(grey):
    """Steps 4-6 of MNIST's normalisation, for ink that is already white on black.

    Parameters
    ----------
    grey : ndarray, shape (h, w), floats in [0, 1]
        White (1) ink on black (0), e.g. the output of ``to_ink`` or a piece
        of it.

    Returns
    -------
    Prepared
        The ink cropped to its bounding box (specks left out), scaled so its
        longer side is 20 pixels, and shifted by whole pixels so its centre
        of mass is at (14, 14) of a 28x28 field; ``box`` in ``grey``'s
        coordinates.
    """
    from scipy import ndimage
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or 0 in grey.shape:
        raise InputError(f"the ink must be a 2-d array of shape (h, w), got shape {grey.shape}")
    if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 1:
        raise InputError("the ink must hold values in [0, 1]")
    labels, kept = ink_components(grey)
    if not kept:
        return _blank("the image is blank: no ink found")
    rows = np.nonzero((labels > 0).any(axis=1))[0]
    cols = np.nonzero((labels > 0).any(axis=0))[0]
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = np.where(labels[y0:y1, x0:x1] > 0, grey[y0:y1, x0:x1], 0)      # (h, w), specks removed
    digit = _fit_box(crop)                                                    # (h', w'), longer side 20
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    h, w = digit.shape
    top, left = (SIDE - h) // 2, (SIDE - w) // 2
    field[top:top + h, left:left + w] = digit
    cy, cx = ndimage.center_of_mass(field)
    shift = (round(CENTRE[0] - cy), round(CENTRE[1] - cx))                    # whole pixels, as MNIST
    field = ndimage.shift(field, shift, order=0, mode="constant", cval=0.0)
    return Prepared(pixels=field.reshape(SIDE * SIDE), blank=False, box=(x0, y0, x1, y1))


def _fit_box(crop):
    """``crop`` (h, w) scaled so its longer side is ``BOX``, aspect kept, anti-aliased; floats in [0, 1]."""
    from PIL import Image
    h, w = crop.shape
    factor = BOX / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))            # Pillow sizes are (width, height)
    filter_ = getattr(Image.Resampling, RESAMPLE.upper())
    scaled = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize(size, filter_)
    return np.clip(np.asarray(scaled, dtype=np.float32), 0, 1)


def _blank(message, inverted=False):
    return Prepared(pixels=np.zeros(SIDE * SIDE, dtype=np.float32), blank=True, inverted=inverted, box=None,
                    message=message)


# ---------------------------------------------------------------------------
# Numbers made of MNIST digits (for tests and benchmarks)
# ---------------------------------------------------------------------------


def compose_number(digits, gaps, offsets=None, margin=8):
    """Write MNIST digits side by side as one number, white ink on black.

    Each digit is cropped to the columns holding its ink and keeps its 28
    rows (so MNIST's vertical centring stays). Where digits overlap, the
    brighter ink wins.

    Parameters
    ----------
    digits : ndarray, shape (k, 784) or (k, 28, 28), floats in [0, 1]
    gaps : sequence of int, length k - 1
        Columns between the ink of neighbouring digits: positive apart, 0
        abutting, negative overlapping by that many columns (touching when
        their strokes meet).
    offsets : sequence of int, length k, optional
        Vertical shift of each digit in pixels (down positive).
    margin : int
        Blank columns and rows around the number.

    Returns
    -------
    image : ndarray, shape (28 + 2 margin + span of offsets, w), float32
    boxes : list of (x0, y0, x1, y1)
        Each digit's ink in ``image``.
    """
    digits = np.asarray(digits, dtype=np.float32).reshape(-1, SIDE, SIDE)
    k = digits.shape[0]
    if len(gaps) != k - 1:
        raise InputError(f"{k} digits need {k - 1} gaps, got {len(gaps)}")
    offsets = [0] * k if offsets is None else [int(o) for o in offsets]
    low, high = min(offsets + [0]), max(offsets + [0])
    pieces, x = [], margin
    for d, digit in enumerate(digits):
        cols = np.nonzero(digit.any(axis=0))[0]
        piece = digit[:, cols[0]:cols[-1] + 1] if cols.size else digit[:, :1]
        if d > 0:
            x += int(gaps[d - 1])
        pieces.append((piece, x, margin - low + offsets[d]))
        x += piece.shape[1]
    left = min(px for _, px, _ in pieces)
    shift = max(0, margin - left)
    width = max(px + p.shape[1] for p, px, _ in pieces) + shift + margin
    image = np.zeros((SIDE + 2 * margin + high - low, width), dtype=np.float32)
    boxes = []
    for piece, px, py in pieces:
        px += shift
        region = image[py:py + SIDE, px:px + piece.shape[1]]
        np.maximum(region, piece, out=region)
        rows = np.nonzero(piece.any(axis=1))[0]
        boxes.append((px, py + int(rows[0]), px + piece.shape[1], py + int(rows[-1]) + 1) if rows.size
                     else (px, py, px + 1, py + 1))
    return image, boxes


def gap_for_distance(left, right, distance, dy=0):
    """The gap for ``compose_number`` that brings the ink of two digits ``distance`` columns apart.

    Row by row, the distance is the column of the right digit's leftmost ink
    minus that of the left digit's rightmost ink; the gap returned makes the
    smallest such distance equal ``distance``: 1 puts the strokes side by
    side, touching; 0 or less makes them overlap; 2 or more leaves them
    apart on every row (though they may still meet diagonally).

    Parameters
    ----------
    left, right : ndarray, shape (784,) or (28, 28)
    distance : int
    dy : int
        The right digit's vertical offset minus the left one's.

    Returns
    -------
    int
    """
    left, right = (np.asarray(d).reshape(SIDE, SIDE) > 0 for d in (left, right))
    cols_left = np.nonzero(left.any(axis=0))[0]
    cols_right = np.nonzero(right.any(axis=0))[0]
    if cols_left.size == 0 or cols_right.size == 0:
        return int(distance) - 1
    width_left = int(cols_left[-1] - cols_left[0] + 1)
    closest = None
    for row in range(SIDE):
        other = row - dy                                      # the right digit's row level with this one
        if 0 <= other < SIDE and left[row].any() and right[other].any():
            last = int(np.nonzero(left[row])[0][-1] - cols_left[0])        # within the left crop
            first = int(np.nonzero(right[other])[0][0] - cols_right[0])    # within the right crop
            d = width_left + first - last                                  # with gap 0
            closest = d if closest is None else min(closest, d)
    if closest is None:
        return int(distance) - 1
    return int(distance) - closest
