"""The figures of nndl reproduce: long titles and captions are broken into lines that fit the figure."""

import pytest

pytest.importorskip("matplotlib")

from nndl.experiments.figures import epoch_axis, figure  # noqa: E402

LONG = ("ch1-30-hidden: network.py, [784, 30, 10], eta 3.0: best test accuracy over thirty epochs "
        "of mini-batch stochastic gradient descent, as the book's first chapter trains it")


@pytest.mark.parametrize("ncols", [1, 3])
def test_a_long_title_and_caption_stay_inside_the_figure(tmp_path, ncols):
    with figure(tmp_path / "f.png", ncols=ncols, title=LONG, caption="book: " + LONG + "\nsecond line") as axes:
        axes[0].plot([0, 1, 2], [1, 2, 3])
        epoch_axis(axes[0])
    fig = axes[0].figure
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    caption = next(t for t in fig.texts if t is not fig._suptitle)
    for text in (fig._suptitle, caption):
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width, text.get_text()
    assert caption.get_text().endswith("\nsecond line")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")


def test_epoch_ticks_are_whole_numbers(tmp_path):
    with figure(tmp_path / "f.png") as (ax,):
        ax.plot([0, 1], [0, 1])
        epoch_axis(ax)
    assert all(float(t).is_integer() for t in ax.get_xticks())
