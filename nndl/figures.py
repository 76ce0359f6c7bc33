"""The one way nndl draws a PNG: a matplotlib Figure on its own Agg canvas, written atomically.

    fig = new_figure((10.0, 4.0))
    ax = fig.add_subplot()
    ...
    write_png(fig, "curves.png")

Why not pyplot: its figures live in global state (a figure manager, a
current figure, a backend chosen at first use), which leaks between the
figures drawn in one process, needs closing, and may try to open a window.
A ``Figure`` with an explicit ``FigureCanvasAgg`` is a plain object that
draws off-screen and is garbage-collected like any other, so drawing is
safe in worker processes and in a web server.

matplotlib is imported inside these functions, when a figure is drawn, so
that importing a module that *can* draw costs nothing. The PNG goes through
:func:`nndl.files.atomic.atomic_writer`: a reader sees the old file or the
whole new one, never half a picture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DPI", "new_figure", "write_png"]

#: Resolution of every PNG nndl writes, in dots per inch: a figure of (w, h) inches is (100 w, 100 h) pixels.
DPI = 100


def new_figure(size: tuple[float, float], *, dpi: int = DPI) -> Figure:
    """A matplotlib Figure of ``size`` = (width, height) inches, on a non-interactive Agg canvas (no pyplot).

    The canvas is attached so that ``tight_layout`` and text measurement work
    before the figure is written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def write_png(fig: Figure, path: str | os.PathLike, *, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` as a PNG of ``dpi`` dots per inch, replacing the file atomically; return the path.

    Nothing is left at ``path`` (and an old file there is kept) if drawing fails.
    """
    from nndl.files.atomic import atomic_writer

    path = Path(path)
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path
