"""Tests for nndl.plot (drawing made-up histories; no training)."""

import json

import numpy as np
import pytest

from nndl.plot import DPI, PANEL_HEIGHT, PANEL_WIDTH, _make_figure, plot_histories, plot_history
from nndl.training.config import NetworkConfig, TrainingConfig
from nndl.training.history import HISTORY_VERSION, History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def made_up_history(epochs=5, eta=0.5, lmbda=0.0, monitor=("training_cost", "training_accuracy",
                                                              "evaluation_cost", "evaluation_accuracy"),
                    eta_schedule=None, stop_reason="completed", message=""):
    """A plausible-looking History of ``epochs`` epochs with the given quantities monitored."""
    h = History(config=TrainingConfig(eta=eta, lmbda=lmbda, epochs=max(epochs, 1)),
                network=NetworkConfig(sizes=(784, 30, 10), cost="cross-entropy"), n_training=1000, n_evaluation=10000)
    values = {
        "training_cost": [2.0 / (e + 1) + 0.1 for e in range(epochs)],
        "evaluation_cost": [1.5 / (e + 1) + 0.6 for e in range(epochs)],
        "training_accuracy": [min(1.0, 0.80 + 0.05 * e) for e in range(epochs)],
        "evaluation_accuracy": [0.78 + 0.02 * e - 0.001 * e * e for e in range(epochs)],
    }
    h.epochs = list(range(epochs))
    h.eta = list(eta_schedule) if eta_schedule is not None else [eta] * epochs
    h.epoch_time = [0.1] * epochs
    for name in monitor:
        setattr(h, name, values[name])
    accuracy = h.evaluation_accuracy or h.training_accuracy
    if accuracy:
        h.best_epoch = int(np.argmax(accuracy))
        h.best_accuracy = accuracy[h.best_epoch]
    h.stop_reason = stop_reason
    h.message = message
    return h


def read_png(path):
    """(bytes, pixel array of shape (height, width, channels)) of a PNG file."""
    import matplotlib.image

    data = path.read_bytes()
    return data, matplotlib.image.imread(path)


def assert_good_png(path, width, height):
    data, pixels = read_png(path)
    assert data.startswith(PNG_SIGNATURE)
    assert pixels.shape[:2] == (height, width)
    assert pixels.var() > 0, "the image is blank"


def panel_titles(fig):
    return [ax.get_title() for ax in fig.axes]


@pytest.fixture(scope="module")
def book_figure():
    """(history, figure) of a completed run that monitored everything (built once: drawing is slow)."""
    h = made_up_history(eta=0.5, lmbda=5.0)
    return h, _make_figure([h])


def test_plot_history_writes_a_two_panel_png_atomically(tmp_path):
    target = tmp_path / "run.png"
    target.write_bytes(b"old")
    out = plot_history(made_up_history(), target)
    assert out == target
    assert_good_png(out, width=round(2 * PANEL_WIDTH * DPI), height=round(PANEL_HEIGHT * DPI))
    assert [p.name for p in tmp_path.iterdir()] == ["run.png"]  # no temporary file left behind


def test_figure_has_cost_and_accuracy_panels_with_book_labels(book_figure):
    _, fig = book_figure
    assert panel_titles(fig) == ["Cost", "Accuracy"]
    cost, accuracy = fig.axes
    assert cost.get_xlabel() == "Epoch" and cost.get_ylabel() == "Cost"
    assert accuracy.get_xlabel() == "Epoch" and accuracy.get_ylabel() == "Accuracy (%)"
    # Training and evaluation curves in each panel; accuracies drawn in percent.
    assert len([line for line in cost.get_lines() if len(line.get_xdata()) == 5]) == 2
    ydata = [line.get_ydata() for line in accuracy.get_lines() if len(line.get_xdata()) == 5]
    assert len(ydata) == 2
    assert max(max(y) for y in ydata) == pytest.approx(100.0)


def test_default_title_summarises_the_config(book_figure):
    _, fig = book_figure
    title = fig._suptitle.get_text()
    assert "eta 0.5" in title and "lambda 5" in title and "[784, 30, 10]" in title


def test_best_epoch_is_marked_in_the_legend(book_figure):
    h, fig = book_figure
    legend_texts = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any(f"epoch {h.best_epoch}" in text for text in legend_texts)


def test_completed_run_has_no_caption(book_figure):
    _, fig = book_figure
    assert [t for t in fig.texts if t is not fig._suptitle] == []


def test_drawing_never_imports_pyplot(tmp_path):
    """In a fresh interpreter, importing nndl imports no matplotlib, and drawing a figure no pyplot."""
    import subprocess
    import sys
    code = (
        "import sys, nndl, nndl.plot, nndl.training, nndl.cli\n"
        "assert 'matplotlib' not in sys.modules, 'import nndl imported matplotlib'\n"
        "from nndl.training.history import History\n"
        "h = History(epochs=[0, 1], eta=[0.5, 0.5], epoch_time=[0.1, 0.1], evaluation_accuracy=[0.5, 0.6])\n"
        f"nndl.plot.plot_history(h, {str(tmp_path / 'h.png')!r})\n"
        "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_only_evaluation_accuracy_gives_one_narrower_panel(tmp_path):
    h = made_up_history(monitor=("evaluation_accuracy",))
    fig = _make_figure([h])
    assert panel_titles(fig) == ["Accuracy"]
    out = plot_history(h, tmp_path / "one.png")
    assert_good_png(out, width=round(PANEL_WIDTH * DPI), height=round(PANEL_HEIGHT * DPI))


def test_only_costs_gives_the_cost_panel():
    fig = _make_figure([made_up_history(monitor=("training_cost", "evaluation_cost"))])
    assert panel_titles(fig) == ["Cost"]


def test_history_from_a_json_path(tmp_path):
    source = tmp_path / "eta-0.5.json"
    made_up_history().save(source)
    out = plot_history(str(source), tmp_path / "from-file.png")
    assert_good_png(out, width=round(2 * PANEL_WIDTH * DPI), height=round(PANEL_HEIGHT * DPI))


def test_overlay_of_two_histories(tmp_path):
    a, b = tmp_path / "eta-0.025.json", tmp_path / "eta-0.25.json"
    made_up_history(eta=0.025).save(a)
    made_up_history(eta=0.25).save(b)
    out = plot_histories([a, str(b)], tmp_path / "both.png")
    assert_good_png(out, width=round(2 * PANEL_WIDTH * DPI), height=round(PANEL_HEIGHT * DPI))

    fig = _make_figure([a, b], title="Two learning rates")
    assert fig._suptitle.get_text() == "Two learning rates"
    legend_texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "eta-0.025" in legend_texts and "eta-0.25" in legend_texts  # labelled by file stem
    # Two runs x two data sets = four curves per panel.
    assert len([line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == 5]) == 4


def test_overlay_labels_by_config_or_given_labels():
    runs = [made_up_history(eta=0.5, lmbda=0.0), made_up_history(eta=0.5, lmbda=5.0)]
    fig = _make_figure(runs)
    legend_texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "lambda 0" in legend_texts and "lambda 5" in legend_texts
    with pytest.raises(ValueError, match="2 histories"):
        _make_figure(runs, labels=["only one"])
    fig = _make_figure(runs[:1] * 2, labels=["plain", "again"])
    legend_texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "plain" in legend_texts and "again" in legend_texts


def test_stop_reason_caption_and_eta_changes():
    h = made_up_history(epochs=6, eta_schedule=[0.5, 0.5, 0.5, 0.25, 0.25, 0.125],
                        stop_reason="learning-rate schedule", message="eta fell to 1/128 of its start")
    fig = _make_figure([h])
    texts = [t.get_text() for t in fig.texts]
    assert any("learning-rate schedule" in text and "1/128" in text for text in texts)
    # The schedule's two changes are marked between epochs in both panels.
    for ax in fig.axes:
        vertical = [line for line in ax.get_lines()
                    if len(set(line.get_xdata())) == 1 and list(line.get_xdata())[0] in (2.5, 4.5)]
        assert len(vertical) == 2
    width, height = fig.get_size_inches()
    assert width == 2 * PANEL_WIDTH and height > PANEL_HEIGHT  # room for the caption


def test_monitored_nothing_is_a_clear_error(tmp_path):
    target = tmp_path / "run.png"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="monitored nothing.*--monitor"):
        plot_history(made_up_history(monitor=()), target)
    assert target.read_bytes() == b"old"  # the old figure is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["run.png"]


def test_no_epochs_is_a_clear_error(tmp_path):
    h = made_up_history(epochs=0, stop_reason="diverged", message="training diverged in epoch 0")
    with pytest.raises(ValueError, match="no completed epochs.*diverged"):
        plot_history(h, tmp_path / "empty.png")


def test_no_histories_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no training histories"):
        plot_histories([], tmp_path / "none.png")


def test_bad_json_surfaces_the_load_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        plot_history(bad, tmp_path / "bad.png")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not an nndl-history file"):
        plot_history(other, tmp_path / "other.png")
    assert not (tmp_path / "bad.png").exists() and not (tmp_path / "other.png").exists()


def test_newer_version_surfaces_the_load_error(tmp_path):
    newer = tmp_path / "newer.json"
    data = made_up_history().to_dict()
    data["version"] = HISTORY_VERSION + 1
    newer.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="newer than this nndl"):
        plot_history(newer, tmp_path / "newer.png")
