"""Drawing an experiment's figure: one matplotlib Figure, written atomically as a PNG.

    with figure(path, ncols=2, title=title(result, "[784, 30, 10], eta 0.5")) as axes:
        axes[0].plot(epochs, cost, label="training cost")
        epoch_axis(axes[0])
        ...

matplotlib is imported when a figure is drawn, and only through
:mod:`nndl.figures` (no pyplot, no global state, safe in worker
processes). The figure gets the book's look: labelled axes, a light grid,
a legend wherever something is labelled.
"""

import textwrap
from contextlib import contextmanager

from nndl.figures import DPI, new_figure, write_png

__all__ = ["figure", "title", "epoch_axis", "DPI"]


def title(result: dict, extra: str | None = None, width: int = 90) -> str:
    """A figure's title: the experiment (quick or not) and, on the next line, what ran; wrapped at ``width``."""
    lines = [f"{result['id']}: {result['title']}" + (" (quick)" if result.get("quick") else "")]
    if extra:
        lines.append(extra)
    return "\n".join(textwrap.fill(line, width) for line in lines)


def epoch_axis(ax, label: str = "Epoch") -> None:
    """Label an axis of epochs, with whole-number ticks (never "epoch 2.5")."""
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


@contextmanager
def figure(path, *, nrows=1, ncols=1, title=None, size=(5.0, 4.0), caption=None):
    """Yield a flat list of ``nrows * ncols`` Axes; on leaving the block, write the PNG to ``path``.

    Parameters
    ----------
    path : str or path-like
        The PNG, replaced atomically (nothing is written if the block raises).
    nrows, ncols : int
    title : str, optional
        The figure's title (e.g. what was run, with its settings).
    size : (float, float)
        Inches per panel (width, height).
    caption : str, optional
        Small grey text under the panels (e.g. the book's values); may have several lines.
    """
    from matplotlib.collections import QuadMesh

    width = size[0] * ncols
    title = _wrap(title, width, TITLE_CHARS_PER_INCH) if title else title
    caption = _wrap(caption, width, CAPTION_CHARS_PER_INCH) if caption else caption
    caption_height = 0.05 + 0.17 * (caption.count("\n") + 1) if caption else 0.0
    fig = new_figure((width, size[1] * nrows + caption_height))
    axes = list(fig.subplots(nrows, ncols, squeeze=False).flat)
    yield axes
    for ax in axes:
        if not ax.images and not any(isinstance(c, QuadMesh) for c in ax.collections):  # not over pictures
            ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[1] and ax.get_legend() is None:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    bottom = 0.0
    if caption:
        fig.text(0.01, 0.01, caption, fontsize=8, color="0.35", ha="left", va="bottom")
        bottom = caption_height / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, 1))
    write_png(fig, path)


#: About how many characters of the title (11 pt) and the caption (8 pt) fit in an inch of the figure.
TITLE_CHARS_PER_INCH, CAPTION_CHARS_PER_INCH = 12, 16


def _wrap(text, width_inches, chars_per_inch):
    """``text`` with each of its lines broken at spaces so that it fits a figure ``width_inches`` wide."""
    columns = max(20, int(width_inches * chars_per_inch))
    return "\n".join(textwrap.fill(line, columns) if line else line for line in text.split("\n"))
