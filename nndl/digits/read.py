"""Reading a whole number written in one image, such as "504192".

Chapter 1 of the book sets this problem aside: split the image into digits,
then classify each. Its suggested way is to try many segmentations and keep
the one the classifier likes best. Two methods:

``components`` (the baseline)
    Each connected mark of ink (8-connected, specks left out; see
    :func:`nndl.digits.prepare.ink_components`) is a digit, except that marks
    whose columns overlap by at least ``MERGE_OVERLAP`` of the narrower one
    are one digit (a 5 whose top stroke came loose, a 4 drawn in two
    strokes), and a lone dot (both sides under ``DOT_SIZE`` of the digit
    height) is ignored. Touching digits are read as one (wrongly), and so
    are digits that overlap in x.

``scored`` (the default)
    The marks, with every wide mark (wider than ``WIDE`` digit heights:
    perhaps digits that touch) cut into slices. A cut starts at a candidate
    column -- the least-inked column near each multiple of the typical
    digit width, the minima of the mark's column-ink profile, and columns
    every ``GRID`` digit heights -- and runs from top to bottom through the
    least ink within ``BAND`` digit heights of its start (a seam found by
    dynamic programming), so it can follow the gap between slanted digits
    that no vertical line separates. The pieces, left to right by their
    centres, are then grouped into digits: any run of up to ``MAX_PIECES``
    neighbouring pieces may be one digit (the union of its pixels, so digits
    that overlap in x but do not touch stay apart), and a small dot may be
    left out as noise. A dynamic programme over the pieces picks the
    grouping with the largest total score. The score of a digit is the
    classifier's log-probability of its most probable class, plus a shape
    prior (a digit much shorter or wider than a digit height is a loose
    stroke or two digits), minus ``CUT_COST`` for each stroke the cut on its
    left goes through::

        best[0] = 0
        best[j] = max( best[i] + score(pieces i..j-1)  for j - MAX_PIECES <= i < j,
                       best[j - 1] - DOT_PENALTY      if piece j-1 is a dot )

    Every candidate group goes through the network in one batch. On 1,000
    numbers of 3-8 MNIST test digits with touching and overlapping pairs
    (``benchmarks/bench_digits.py``) a [784, 100, 10] network reads 58% of
    them exactly this way against 16% by ``components`` (digits: 87% against
    55%); digits whose strokes cross remain the hardest case.

The digit height ``H`` is the median height of the marks at least half as
tall as the tallest; widths and heights are compared with it, so the same
rules hold at any resolution. Boxes are ``(x0, y0, x1, y1)`` in the image,
x1 and y1 exclusive.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nndl.digits.prepare import (
    ink_components,
    open_image,
    prepare_array,
    shrink_factor,
    source_name,
    to_grey,
    to_image_box,
    to_ink,
    upright_size,
)
from nndl.errors import ConfigError, InputError

if TYPE_CHECKING:
    from nndl.digits.predict import Prediction

__all__ = ["Reading", "read_number", "show_reading", "METHODS", "MAX_MARKS", "MAX_SEGMENTS"]

#: The ways of segmenting: see the module docstring.
METHODS = ("scored", "components")

#: The most separate marks (specks left out) an image may have; more is not a number but a busy picture.
MAX_MARKS = 200

#: scored: the most pieces (marks and the slices of cut marks) an image may be split into. Every run of up
#: to MAX_PIECES of them is prepared and classified, so this bounds the work of one image (500 pieces: about
#: 3,000 candidate digits, a few seconds); a line of 60 touching digits needs far fewer.
MAX_SEGMENTS = 500

#: components: marks whose column ranges overlap by this fraction of the narrower one are one digit.
MERGE_OVERLAP = 0.5

#: A mark whose width and height are both below this many digit heights is a dot.
DOT_SIZE = 0.3

#: scored: a mark wider than this many digit heights gets candidate cuts.
WIDE = 0.7

#: scored: a cut may wander this many digit heights left or right of where it starts, and a sideways step
#: costs STEP_COST (so that through blank paper it goes straight down).
BAND, STEP_COST = 0.25, 0.01

#: scored: no slice narrower than this many digit heights is cut off.
MIN_SLICE = 0.15

#: scored: at most this many cut positions per wide mark.
MAX_CUTS = 20

#: scored: besides the minima of the column profile, cuts start every GRID digit heights.
GRID = 0.2

#: scored: the most pieces one digit may be made of.
MAX_PIECES = 6

#: scored: the shape prior, in units of log-probability: a digit costs SHAPE_WEIGHT for each digit height
#: by which it is shorter than SHORT or wider than BROAD digit heights. (MNIST's digits were scaled to fit
#: 20x20, so none is wider than it is tall: BROAD = 1.)
SHORT, BROAD, SHAPE_WEIGHT = 0.6, 1.0, 10.0

#: scored: the cost, in log-probability, of each stroke a cut goes through (a cut between two touching
#: digits crosses one, a cut through a 0 two).
CUT_COST = 0.5

#: scored: the cost, in log-probability, of leaving a dot out as noise.
DOT_PENALTY = 2.0

#: show_reading draws the 28x28 images of at most this many digits.
_MAX_SHOWN = 40


@dataclass
class Reading:
    """A number read from an image.

    Attributes
    ----------
    text : str
        The digits read, left to right ("" when there are none).
    digits : list of Prediction
        One per digit, left to right.
    boxes : list of (x0, y0, x1, y1)
        Each digit's ink in the image (x1, y1 exclusive).
    score : float
        The sum of the natural logarithms of the probabilities of the digits
        read: the classifier's confidence in the whole reading (0 is
        certain). The shape prior and cut costs of the scored method are
        not included.
    method : str
        "scored" or "components".
    message : str or None
        Why nothing was read (a blank image), or which digits are unclear.
    """

    text: str
    digits: list[Prediction]
    boxes: list[tuple[int, ...]]
    score: float
    method: str
    message: str | None = None

    def to_dict(self):
        """A JSON-ready dict: text, digits (each ``Prediction.to_dict()``), boxes ([[x0, y0, x1, y1], ...]),
        score, method, message."""
        return {"text": self.text, "digits": [d.to_dict() for d in self.digits],
                "boxes": [[int(v) for v in box] for box in self.boxes], "score": float(self.score),
                "method": self.method, "message": self.message}


@dataclass
class _Piece:
    """Ink that goes to one digit whole: a mark, or a slice of a wide mark.

    ``box`` is (x0, y0, x1, y1) in the image; ``mask`` (y1 - y0, x1 - x0)
    marks its pixels within the box.
    """

    box: tuple
    mask: np.ndarray = field(repr=False)
    cut_cost: float = 0.0          # the cost of the cut on its left, when it is a slice cut from a wider mark

    @property
    def width(self):
        return self.box[2] - self.box[0]

    @property
    def height(self):
        return self.box[3] - self.box[1]

    @property
    def centre(self):
        return (self.box[0] + self.box[2]) / 2


def read_number(model, image, method="scored", *, time_limit=None):
    """Read the number written in ``image``.

    Parameters
    ----------
    model : Classifier, a model file (str or path), or None (the network shipped with nndl)
    image : path, bytes, binary file, PIL.Image.Image or ndarray
        As for :func:`nndl.digits.prepare.prepare`: dark ink on light paper or
        light on dark; the digits side by side on one line.
    method : {"scored", "components"}
        See the module docstring.
    time_limit : float, optional
        Seconds the segmentation and scoring may take (checked between
        candidates); None for no limit. A server sets one.

    Returns
    -------
    Reading

    Raises
    ------
    InputError
        For an image that cannot be read, one with more than ``MAX_MARKS``
        separate marks or (scored) more than ``MAX_SEGMENTS`` pieces, or
        one whose reading takes more than ``time_limit`` seconds.
    ConfigError
        For an unknown method.
    """
    from nndl.digits.predict import Classifier
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    classifier = Classifier.of(model)
    source = image if isinstance(image, np.ndarray) else open_image(image)
    ink, _, blank = to_ink(to_grey(source, source_name(image)))    # (h, w), shrunk if very large (see to_grey)
    if blank:
        return Reading("", [], [], 0.0, method, "the image is blank: nothing in it differs from its background")
    marks = _marks(ink)
    if not marks:
        return Reading("", [], [], 0.0, method, "the image is blank: no ink found")
    height = _digit_height(marks)
    clock = _Clock(time_limit)
    if method == "components":
        predictions, boxes = _classify(classifier, ink, _component_groups(marks, height), clock)
    else:
        pieces = sorted(_cut_wide_marks(ink, marks, height, clock), key=lambda piece: piece.centre)
        if len(pieces) > MAX_SEGMENTS:
            raise InputError(f"the image splits into {len(pieces)} pieces, more than the {MAX_SEGMENTS} a written "
                             "number may have: it is not a line of digits (or write fewer, or use the method "
                             "components)")
        predictions, boxes = _best_grouping(classifier, ink, pieces, height, clock)
    size = upright_size(source)
    factor = shrink_factor(*size)
    return _reading(predictions, [to_image_box(box, factor, size) for box in boxes], method)


# ---------------------------------------------------------------------------
# Marks
# ---------------------------------------------------------------------------


def _marks(ink):
    """The connected marks of ``ink`` (specks left out) as pieces, or InputError when there are too many."""
    from scipy import ndimage
    labels, kept = ink_components(ink)
    if len(kept) > MAX_MARKS:
        raise InputError(f"the image has {len(kept)} separate marks, more than the {MAX_MARKS} a written number "
                         "could have (is it a photograph with a busy background?)")
    slices = ndimage.find_objects(labels)
    marks = []
    for label in kept:
        rows, cols = slices[label - 1]
        marks.append(_Piece((cols.start, rows.start, cols.stop, rows.stop), labels[rows, cols] == label))
    return marks


def _digit_height(marks):
    """H: the median height of the marks at least half as tall as the tallest (pixels)."""
    tallest = max(m.height for m in marks)
    return float(np.median([m.height for m in marks if m.height >= tallest / 2]))


def _is_dot(piece, height):
    return piece.width < DOT_SIZE * height and piece.height < DOT_SIZE * height


def _component_groups(marks, height):
    """components: marks merged where their columns overlap heavily, lone dots dropped; list of lists."""
    groups: list[list[Any]] = []                  # each [x0, x1, [marks]], left to right
    for mark in sorted(marks, key=lambda m: m.box[0]):
        x0, x1 = mark.box[0], mark.box[2]
        for group in groups:
            overlap = min(x1, group[1]) - max(x0, group[0])
            if overlap >= MERGE_OVERLAP * min(x1 - x0, group[1] - group[0]):
                group[0], group[1] = min(group[0], x0), max(group[1], x1)
                group[2].append(mark)
                break
        else:
            groups.append([x0, x1, [mark]])
    kept = [g[2] for g in groups if not (len(g[2]) == 1 and _is_dot(g[2][0], height))]
    return kept or [g[2] for g in groups]


# ---------------------------------------------------------------------------
# Cutting wide marks
# ---------------------------------------------------------------------------


class _Clock:
    """The time limit of one reading: ``check()`` raises InputError once ``limit`` seconds have passed."""

    def __init__(self, limit):
        self.limit = limit
        self.deadline = None if limit is None else time.monotonic() + limit

    def check(self):
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise InputError(f"reading the image took more than the {self.limit:g} s allowed: it has too many "
                             "marks or strokes to be a line of digits")


def _cut_wide_marks(ink, marks, height, clock):
    """The marks, each wide one cut into slices along its candidate cut paths (see ``_cut_path``)."""
    usual = [m.width for m in marks if 0.3 * height <= m.width <= BROAD * height]
    width = float(np.median(usual)) if usual else 0.7 * height            # a typical digit's width
    pieces = []
    for mark in marks:
        if mark.width <= WIDE * height:
            pieces.append(mark)
            continue
        clock.check()
        x0, y0, x1, y1 = mark.box
        mark_ink = np.where(mark.mask, ink[y0:y1, x0:x1], 0)                # (h, w), this mark's ink only
        band = max(1, round(BAND * height))
        unique = {tuple(_cut_path(mark_ink, c, band)) for c in _cut_columns(mark_ink.sum(axis=0), height, width)}
        paths = [np.array(p) for p in sorted(unique, key=sum)]
        for k in range(1, len(paths)):
            paths[k] = np.maximum(paths[k], paths[k - 1])                     # slices must not cross
        h, w = mark.mask.shape
        columns = np.arange(w)[None, :]                                       # (1, w)
        bounds = [np.zeros(h, dtype=int), *paths, np.full(h, w)]
        for k, (left, right) in enumerate(zip(bounds[:-1], bounds[1:])):
            part = mark.mask & (columns >= left[:, None]) & (columns < right[:, None])      # (h, w)
            if not part.any():
                continue
            rows, cols = np.nonzero(part.any(axis=1))[0], np.nonzero(part.any(axis=0))[0]
            top, bottom, a, b = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            cost = CUT_COST * _strokes(mark_ink[np.arange(h), np.minimum(left, w - 1)]) if k > 0 else 0.0
            pieces.append(_Piece((x0 + a, y0 + top, x0 + b, y0 + bottom), part[top:bottom, a:b], cost))
    return pieces


def _cut_path(ink, column, band):
    """The cut from top to bottom through the least ink, near ``column``.

    Parameters
    ----------
    ink : ndarray, shape (h, w)
        One mark's ink.
    column : int
        Where the cut is centred.
    band : int
        How far (columns) the cut may wander from ``column``.

    Returns
    -------
    ndarray, shape (h,), int
        ``path[r]``: in row r, columns ``< path[r]`` go left of the cut and
        the rest right. Found by dynamic programming: going down a row, the
        cut moves at most one column (a sideways step costs ``STEP_COST``),
        and the path minimises the ink it passes through, so it can follow
        the gap between slanted digits that no vertical line separates.
    """
    h, w = ink.shape
    lo, hi = max(1, column - band), min(w - 1, column + band)
    cost = ink[:, lo:hi + 1].astype(np.float64)                               # (h, n)
    n = cost.shape[1]
    total = cost[0].copy()                                                    # (n,) least ink down to row r
    step = np.zeros((h, n), dtype=np.int64)                                   # -1, 0, +1: where row r came from
    inf = np.full(1, np.inf)
    for r in range(1, h):
        options = np.stack([total,                                            # straight down (preferred on ties)
                            np.concatenate([inf, total[:-1]]) + STEP_COST,    # from the left
                            np.concatenate([total[1:], inf]) + STEP_COST])    # from the right
        choice = options.argmin(axis=0)                                       # (n,)
        total = options[choice, np.arange(n)] + cost[r]
        step[r] = np.array([0, -1, 1])[choice]
    path = np.empty(h, dtype=np.int64)
    x = int(np.argmin(total + STEP_COST * np.abs(np.arange(n) - (column - lo))))     # ties: nearest the start
    for r in range(h - 1, -1, -1):
        path[r] = x
        x += int(step[r, x])
    return lo + path


def _strokes(values):
    """How many strokes a cut crosses: the runs of ink in ``values`` (h,), the ink along the cut."""
    inked = (np.asarray(values) > 0).astype(np.int8)
    return int(inked[0]) + int(np.count_nonzero(np.diff(inked) == 1))


def _cut_columns(profile, height, width):
    """Candidate cut columns of one wide mark, sorted: each cut starts a new slice.

    Parameters
    ----------
    profile : ndarray, shape (w,)
        The mark's ink in each column.
    height, width : float
        The digit height H and a typical digit's width, in pixels.

    Returns
    -------
    list of int
        Columns in [MIN_SLICE H, w - MIN_SLICE H], at least MIN_SLICE H
        apart: the local minima of the (lightly smoothed) profile, least ink
        first, and the least-inked column within a quarter digit width of
        each multiple of ``w / n`` where n = round(w / width).
    """
    from scipy import ndimage
    w = profile.shape[0]
    smooth = ndimage.uniform_filter1d(profile.astype(np.float64), size=max(1, round(height / 10)), mode="nearest")
    gap = max(1, math.ceil(MIN_SLICE * height))
    low, high = gap, w - gap
    if high < low:
        return []
    radius = max(1, gap // 2)
    window_min = ndimage.minimum_filter1d(smooth, size=2 * radius + 1, mode="nearest")
    minima = [x for x in range(low, high + 1) if smooth[x] == window_min[x]]
    n = round(w / width)
    expected = []
    for k in range(1, n):
        centre = k * w / n
        a, b = max(low, int(centre - width / 4)), min(high, int(centre + width / 4))
        if a <= b:
            expected.append(a + int(np.argmin(smooth[a:b + 1])))
    grid = list(range(low, high + 1, max(1, round(GRID * height)))) if GRID else []
    chosen: list[int] = []
    for x in expected + sorted(minima, key=lambda x: smooth[x]) + grid:
        if all(abs(x - c) >= gap for c in chosen):
            chosen.append(x)
        if len(chosen) == MAX_CUTS:
            break
    return sorted(chosen)


# ---------------------------------------------------------------------------
# Scoring groupings
# ---------------------------------------------------------------------------


def _group_ink(ink, group):
    """(crop, (x0, y0)): the ink of a group of pieces alone, in their union box."""
    x0, y0 = min(p.box[0] for p in group), min(p.box[1] for p in group)
    x1, y1 = max(p.box[2] for p in group), max(p.box[3] for p in group)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for p in group:
        px0, py0, px1, py1 = p.box
        mask[py0 - y0:py1 - y0, px0 - x0:px1 - x0] |= p.mask
    return np.where(mask, ink[y0:y1, x0:x1], 0), (x0, y0)


def _prepare_groups(ink, groups, clock):
    """(prepared, boxes) of each group: MNIST-prepared 28x28 and the box of its ink in the image."""
    prepared, boxes = [], []
    for group in groups:
        clock.check()
        crop, (x0, y0) = _group_ink(ink, group)
        p = prepare_array(crop)
        bx0, by0, bx1, by1 = p.box
        prepared.append(p)
        boxes.append((x0 + bx0, y0 + by0, x0 + bx1, y0 + by1))
    return prepared, boxes


def _classify(classifier, ink, groups, clock):
    """(predictions, boxes) of each group of pieces, in one batch through the network."""
    from nndl.digits.predict import predict
    prepared, boxes = _prepare_groups(ink, groups, clock)
    return predict(classifier, prepared), boxes


def _prior(box, height):
    """The shape prior of a digit written in ``box``, in log-probability units (0 or negative)."""
    w, h = (box[2] - box[0]) / height, (box[3] - box[1]) / height
    return -SHAPE_WEIGHT * (max(0.0, SHORT - h) + max(0.0, w - BROAD))


def _best_grouping(classifier, ink, pieces, height, clock):
    """The grouping of ``pieces`` (left to right) with the largest total score (see the module docstring).

    Returns
    -------
    predictions : list of Prediction
        One per digit chosen, left to right.
    boxes : list of (x0, y0, x1, y1)
        Their boxes in ``ink``.
    """
    n = len(pieces)
    spans = [(i, j) for j in range(1, n + 1) for i in range(max(0, j - MAX_PIECES), j)]
    predictions, boxes = _classify(classifier, ink, [pieces[i:j] for i, j in spans], clock)
    score = {}
    for (i, j), prediction, box in zip(spans, predictions, boxes):
        if prediction.digit is None:
            score[i, j] = (-math.inf, prediction, box)
            continue
        log_p = math.log(max(prediction.top3[0][1], 1e-300))
        score[i, j] = (log_p + _prior(box, height) - pieces[i].cut_cost, prediction, box)
    best = [0.0] + [-math.inf] * n                # best[j]: the best total for pieces[:j]
    back: list[tuple[int, tuple[int, int] | None] | None] = [None] * (n + 1)   # back[j]: (i, span) of the last
                                                                               # step into j
    for j in range(1, n + 1):
        if _is_dot(pieces[j - 1], height) and best[j - 1] - DOT_PENALTY > best[j]:
            best[j], back[j] = best[j - 1] - DOT_PENALTY, (j - 1, None)
        for i in range(max(0, j - MAX_PIECES), j):
            total = best[i] + score[i, j][0]
            if total > best[j]:
                best[j], back[j] = total, (i, (i, j))
    chosen, j = [], n
    while j > 0:
        step = back[j]
        assert step is not None, "every piece is reached by some step"
        i, span = step
        if span is not None:
            chosen.append(span)
        j = i
    chosen.reverse()
    return [score[s][1] for s in chosen], [score[s][2] for s in chosen]


def _reading(predictions, boxes, method):
    """The Reading of digits ``predictions`` in ``boxes``, left to right."""
    order = sorted(range(len(boxes)), key=lambda k: (boxes[k][0] + boxes[k][2]) / 2)
    predictions = [predictions[k] for k in order]
    boxes = [tuple(int(v) for v in boxes[k]) for k in order]
    text = "".join(str(p.digit) for p in predictions)
    score = sum(math.log(max(p.top3[0][1], 1e-300)) for p in predictions)
    unclear = [k + 1 for k, p in enumerate(predictions) if not p.confident]
    message = None
    if unclear:
        which = ", ".join(map(str, unclear))
        message = f"unclear digit{'s' if len(unclear) > 1 else ''} at position{'s' if len(unclear) > 1 else ''} " \
                  f"{which} of {len(predictions)}"
    return Reading(text, predictions, boxes, score, method, message)


# ---------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------


def show_reading(reading, image, path):
    """Write a PNG of the image with the chosen boxes and the digits read, and below it the 28x28
    image of each digit the network saw (the first ``_MAX_SHOWN``).

    Parameters
    ----------
    reading : Reading
    image : path, bytes, PIL.Image.Image or ndarray
        The image that was read.
    path : str or Path
        The PNG to write (atomically).

    Returns
    -------
    Path
    """
    from matplotlib.patches import Rectangle

    from nndl.figures import new_figure, write_png
    source = image if isinstance(image, np.ndarray) else open_image(image)
    grey = to_grey(source)                                    # (h, w), shrunk by ``factor`` if very large
    factor = shrink_factor(*upright_size(source))
    h, w = grey.shape
    shown = reading.digits[:_MAX_SHOWN]
    n = max(1, len(shown))
    width = max(min(14.0, max(4.0, 8.0 * w / h)), 0.9 * n)                  # inches
    height = min(10.0, width * h / w)
    fig = new_figure((width, height + 1.8))
    grid = fig.add_gridspec(2, n, height_ratios=[height, 1.2])
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for box, prediction in zip(reading.boxes, reading.digits):
        x0, y0, x1, y1 = (v / factor for v in box)
        colour = "tab:green" if prediction.confident else "tab:orange"
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5))
        ax.text((x0 + x1) / 2, y0 - 1, str(prediction.digit), color=colour, ha="center", va="bottom",
                fontsize=12, fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"read: {reading.text or '(nothing)'}   [{reading.method}, score {reading.score:.2f}]"
                 + (f"\n{reading.message}" if reading.message else ""), fontsize=10)
    for k, prediction in enumerate(shown):
        sub = fig.add_subplot(grid[1, k])
        sub.imshow(np.asarray(prediction.pixels).reshape(28, 28), cmap="gray", vmin=0, vmax=1,
                   interpolation="nearest")
        sub.set_xticks([])
        sub.set_yticks([])
        sub.set_title(f"{prediction.digit} {prediction.top3[0][1]:.0%}", fontsize=8)
    return write_png(fig, path)
