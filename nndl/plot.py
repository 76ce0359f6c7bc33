"""Figures of training runs: cost and accuracy against epoch, as in chapter 3.

A history written by ``nndl train --history`` (see :mod:`nndl.training.history`) is
drawn as one PNG with up to two panels side by side:

* **Cost** -- the cost on the training data and on the evaluation data;
* **Accuracy** -- the accuracy on the training data and on the evaluation
  data, in percent. Overlaying the two shows overfitting: the training
  accuracy keeps rising while the evaluation accuracy levels off.

Only the monitored quantities are drawn, and a panel with nothing in it is
left out. Several histories can be overlaid on the same axes to compare runs
(e.g. different learning rates): each run gets its own colour, and the data
set is told apart by the line style (training dashed, evaluation solid).

matplotlib is imported only when a figure is drawn, and always through its
non-interactive Agg canvas (:mod:`nndl.figures`), so nothing here touches pyplot's global state.
"""

import os
import textwrap
from pathlib import Path
from typing import Literal

from nndl.errors import ConfigError, InputError
from nndl.figures import DPI, new_figure, write_png  # noqa: F401  (DPI: the resolution PANEL_WIDTH is drawn at)
from nndl.training.history import History

__all__ = ["plot_history", "plot_histories"]

#: Size in inches of one panel (the figure is this wide per panel).
PANEL_WIDTH = 5.0
PANEL_HEIGHT = 4.0
#: Extra figure height, in inches, per line of the caption under the panels.
CAPTION_LINE_HEIGHT = 0.22
#: Histories with at most this many epochs get a marker on every point.
MARKERS_UP_TO = 15

#: The panels, in order: (title, y-axis label, training field, evaluation field, scale).
_PANELS = (
    ("Cost", "Cost", "training_cost", "evaluation_cost", 1.0),
    ("Accuracy", "Accuracy (%)", "training_accuracy", "evaluation_accuracy", 100.0),
)
#: Line styles of the two data sets.
_STYLES: dict[str, Literal["--", "-"]] = {"training": "--", "evaluation": "-"}
#: Colours of the two data sets when a single history is drawn.
_SINGLE_COLOURS = {"training": "tab:blue", "evaluation": "tab:orange"}


def plot_history(history, path, *, title=None):
    """Draw the cost and accuracy curves of one training run as a PNG.

    Parameters
    ----------
    history : History or str or path-like
        The run, or the path of its JSON file (written by ``History.save``).
    path : str or path-like
        The PNG to write; it is replaced atomically.
    title : str, optional
        Figure title. By default a short summary of the run's settings,
        e.g. "[784, 30, 10], cross-entropy, eta 0.5, lambda 5".

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the history file cannot be read, or the run has no epochs or
        monitored nothing.
    """
    return plot_histories([history], path, title=title)


def plot_histories(histories, path, *, title=None, labels=None):
    """Draw several training runs overlaid on the same axes, as one PNG.

    Parameters
    ----------
    histories : sequence of History or str or path-like
        The runs, or the paths of their JSON files. A single History or path
        is accepted too.
    path : str or path-like
        The PNG to write; it is replaced atomically.
    title : str, optional
        Figure title. By default the settings the runs have in common.
    labels : sequence of str, optional
        One legend label per run. By default the file names (without
        ``.json``) when they tell the runs apart, else the settings in which
        the runs differ, e.g. "eta 0.5, lambda 5".

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If a history file cannot be read, a run has no epochs or monitored
        nothing, or ``labels`` does not have one label per run.
    """
    return write_png(_make_figure(histories, title=title, labels=labels), path)


# ----------------------------------------------------------------------------
# Loading and labelling


def _load_runs(histories):
    """Return a list of (History, source path or None) from the caller's input."""
    if isinstance(histories, (History, str, os.PathLike)):
        histories = [histories]
    runs: list[tuple[History, Path | None]] = []
    for item in histories:
        if isinstance(item, History):
            runs.append((item, None))
        else:
            runs.append((History.load(item), Path(item)))
    if not runs:
        raise ConfigError("no training histories to plot")
    return runs


def _fmt(value):
    """A number in its shortest plain form: 0.5, 5, 1e-05."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


def _setting(key, value):
    """One setting of a run's config as short text, or None to leave it out."""
    if value is None:
        return None
    if key == "sizes":
        return "[" + ", ".join(str(n) for n in value) + "]"
    if key == "cost":
        return str(value)
    if key == "eta":
        return f"eta {_fmt(value)}"
    if key == "lmbda":
        return f"lambda {_fmt(value)}"
    if key == "regularization":
        return f"{str(value).upper()} regularization" if value != "none" else "no regularization"
    if key == "mini_batch_size":
        return f"batch {_fmt(value)}"
    if key == "momentum":
        return f"momentum {_fmt(value)}"
    if key == "p_dropout":
        return f"dropout {_fmt(value)}"
    if key == "schedule":
        return f"{value} schedule"
    if key == "n_training":
        return f"{value:,} training images" if isinstance(value, int) else f"{value} training images"
    return None


#: Config keys shown in titles and labels, in this order.
_SUMMARY_KEYS = ("sizes", "cost", "eta", "lmbda", "regularization", "mini_batch_size", "momentum",
                 "p_dropout", "schedule", "n_training")
#: Settings left out of a title when they have these (uninteresting) values.
_DEFAULTS = {"lmbda": 0, "regularization": "l2", "momentum": 0, "p_dropout": 0, "schedule": "constant",
             "mini_batch_size": 10}


def _summary(config, keys):
    """The given config keys as text, e.g. "eta 0.5, lambda 5"."""
    parts = [_setting(key, config.get(key)) for key in keys]
    return ", ".join(part for part in parts if part)


def _title_keys(configs):
    """Keys whose value all runs share and that are worth a title."""
    keys = []
    for key in _SUMMARY_KEYS:
        values = [config.get(key) for config in configs]
        if values[0] is None or any(v != values[0] for v in values):
            continue
        if key in _DEFAULTS and values[0] == _DEFAULTS[key]:
            continue
        if key == "regularization" and not configs[0].get("lmbda"):
            continue  # the kind of regularisation does not matter without lambda
        keys.append(key)
    return keys


def _default_labels(runs):
    """Labels telling the runs apart: file names, else differing settings, else numbers."""
    stems = [source.stem if source is not None else None for _, source in runs]
    if None not in stems and len(set(stems)) == len(stems):
        return stems
    configs = [history.settings() for history, _ in runs]
    differing = [key for key in _SUMMARY_KEYS if any(c.get(key) != configs[0].get(key) for c in configs)]
    summaries = [_summary(config, differing) for config in configs]
    if all(summaries) and len(set(summaries)) == len(summaries):
        return summaries
    fallback = [stem or f"run {k + 1}" for k, stem in enumerate(stems)]
    if len(set(fallback)) == len(fallback):
        return fallback
    return [f"run {k + 1}" for k in range(len(runs))]


def _check(history, name):
    """Raise ValueError if the run has nothing to draw."""
    if not history.epochs:
        reason = f" ({history.stop_reason}: {history.message})" if history.message else ""
        raise InputError(f"{name} has no completed epochs{reason}; nothing to plot")
    if not any(getattr(history, field) for panel in _PANELS for field in panel[2:4]):
        raise InputError(f"{name} monitored nothing; train with --monitor evaluation_accuracy "
                         "(or training_cost, training_accuracy, evaluation_cost) to record curves")


# ----------------------------------------------------------------------------
# Drawing


def _make_figure(histories, *, title=None, labels=None):
    """Build the matplotlib Figure for ``plot_histories`` (without saving it).

    Parameters and errors as for :func:`plot_histories`. The figure has one
    Axes per drawn panel, with titles "Cost" and/or "Accuracy".

    Returns
    -------
    matplotlib.figure.Figure
    """
    runs = _load_runs(histories)
    if labels is None:
        labels = _default_labels(runs)
    else:
        labels = [str(label) for label in labels]
        if len(labels) != len(runs):
            raise ConfigError(f"got {len(labels)} labels for {len(runs)} histories")
    for (history, source), label in zip(runs, labels):
        if source is not None:
            name = str(source)
        else:
            name = "the history" if len(runs) == 1 else f"history {label!r}"
        _check(history, name)

    panels = [panel for panel in _PANELS
              if any(getattr(history, field) for history, _ in runs for field in panel[2:4])]
    if title is None:
        title = _summary(runs[0][0].settings(), _title_keys([history.settings() for history, _ in runs]))
    caption = _caption(runs, labels)
    caption_lines = caption.count("\n") + 1 if caption else 0

    width = PANEL_WIDTH * len(panels)
    height = PANEL_HEIGHT + CAPTION_LINE_HEIGHT * caption_lines
    fig = new_figure((width, height))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]

    single = len(runs) == 1
    for k, (ax, panel) in enumerate(zip(axes, panels)):
        # The new learning rates are written in the first panel only, where the
        # curves leave room: at the top of a (falling) cost panel, else at the
        # bottom of a (rising) accuracy panel.
        eta_text = None if not single or k > 0 else ("top" if panel[0] == "Cost" else "bottom")
        _draw_panel(ax, panel, runs, labels, eta_text)

    if title:
        fig.suptitle(title, fontsize=11)
    bottom = 0.0
    if caption:
        fig.text(0.01, 0.01, caption, fontsize=8, color="0.35", ha="left", va="bottom")
        bottom = (CAPTION_LINE_HEIGHT * caption_lines + 0.02) / height
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def _series(history, field, scale):
    """(epochs, values) of one monitored quantity, or None if not monitored."""
    values = getattr(history, field)
    if not values:
        return None
    n = min(len(values), len(history.epochs))
    return list(history.epochs[:n]), [float(v) * scale if v is not None else float("nan") for v in values[:n]]


def _draw_panel(ax, panel, runs, labels, eta_text):
    """Draw one panel (cost or accuracy) of every run on ``ax``.

    ``eta_text`` is "top" or "bottom" to write the new learning rate by each
    change of eta at the top or bottom of the panel, or None not to.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    name, ylabel, training_field, evaluation_field, scale = panel
    is_accuracy = name == "Accuracy"
    single = len(runs) == 1
    sets_drawn = []
    run_names = list(labels)
    best_handle = None
    for k, ((history, _), label) in enumerate(zip(runs, labels)):
        colour = None if single else f"C{k % 10}"
        marker = "o" if len(history.epochs) <= MARKERS_UP_TO else None
        for data_set, field in (("training", training_field), ("evaluation", evaluation_field)):
            series = _series(history, field, scale)
            if series is None:
                continue
            if data_set not in sets_drawn:
                sets_drawn.append(data_set)
            ax.plot(*series, linestyle=_STYLES[data_set], color=colour or _SINGLE_COLOURS[data_set],
                    marker=marker, markersize=3, linewidth=1.6, label=f"{data_set} data" if single else None)
        if is_accuracy:
            best = _mark_best(ax, history, scale, colour)
            if best is not None:
                best_handle, best_epoch, best_value = best
                run_names[k] = f"{label} (best {best_value:.2f}%)"
        _mark_eta_changes(ax, history, colour or "0.5", eta_text)

    ax.set_title(name, fontsize=11)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    first = min(history.epochs[0] for history, _ in runs)
    last = max(history.epochs[-1] for history, _ in runs)
    if last - first < 2:   # too short for whole-number ticks: widen the axis a little
        ax.set_xlim(first - 1, last + 1)
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)

    if single:
        handles, names = ax.get_legend_handles_labels()
        if best_handle is not None:
            handles.append(best_handle)
            names.append(f"best: {best_value:.2f}% at epoch {best_epoch}")
        ax.legend(handles, names, fontsize=8, frameon=False, loc="best")
    else:
        handles = [Line2D([], [], color=f"C{k % 10}", linewidth=1.6) for k in range(len(runs))]
        names = run_names
        for data_set in sets_drawn:
            handles.append(Line2D([], [], color="0.3", linestyle=_STYLES[data_set], linewidth=1.2))
            names.append(f"{data_set} data")
        ax.legend(handles, names, fontsize=8, frameon=False, loc="best")


def _mark_best(ax, history, scale, colour=None):
    """Circle the best epoch on the accuracy curve, in ``colour`` (default: that data set's).

    The best epoch is that of the highest evaluation accuracy, or of the
    highest training accuracy when there was no evaluation data (as recorded
    by training). Returns (the circle's Line2D, epoch, accuracy in percent),
    or None when the history records no best epoch on a drawn curve.
    """
    data_set = "evaluation" if history.evaluation_accuracy else "training"
    colour = colour or _SINGLE_COLOURS[data_set]
    series = _series(history, f"{data_set}_accuracy", scale)
    if series is None or history.best_epoch is None or history.best_epoch not in series[0]:
        return None
    epochs, values = series
    i = epochs.index(history.best_epoch)
    (circle,) = ax.plot([epochs[i]], [values[i]], marker="o", markersize=9, markerfacecolor="none",
                        markeredgecolor=colour, markeredgewidth=1.6, linestyle="none", zorder=5,
                        clip_on=False)
    return circle, epochs[i], values[i]


def _mark_eta_changes(ax, history, colour, text_at):
    """Faint vertical lines where the learning rate changed (a schedule).

    With ``text_at`` "top" or "bottom" the new rate is written by each line.
    """
    n = min(len(history.eta), len(history.epochs))
    for i in range(1, n):
        if history.eta[i] == history.eta[i - 1]:
            continue
        x = history.epochs[i] - 0.5   # between the last epoch at the old rate and the first at the new
        ax.axvline(x, color=colour, alpha=0.35, linewidth=0.9, linestyle=":", zorder=0)
        if text_at is not None:
            top = text_at == "top"
            ax.annotate(f"eta {_fmt(history.eta[i])}", (x, 1.0 if top else 0.0),
                        xycoords=("data", "axes fraction"), xytext=(2, -2 if top else 2),
                        textcoords="offset points", rotation=90, ha="left", va="top" if top else "bottom",
                        fontsize=7, color="0.45")


def _caption(runs, labels, width=150, max_lines=3):
    """Why each unfinished run stopped, as text under the panels ("" if all completed)."""
    notes = []
    for (history, _), label in zip(runs, labels):
        if history.stop_reason == "completed":
            continue
        note = f"Stopped: {history.stop_reason}"
        if history.message:
            note += f" -- {history.message}"
        notes.append(note if len(runs) == 1 else f"{label}: {note}")
    lines = []
    for note in notes:
        lines.extend(textwrap.wrap(note, width=width) or [""])
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:width - 3].rstrip() + "..."
    return "\n".join(lines)
