"""Where the long runs of ``nndl reproduce`` stand, read from their checkpoints (``nndl reproduce --status``).

A chapter 6 rung at the book's settings trains for hours on a CPU and
checkpoints after every epoch in ``OUT/runs/checkpoints/``. This module reads
those files (never writing them) and says, for each: the run, its epochs done
of those planned, its best validation accuracy so far with the test accuracy
at that epoch, the median time of an epoch and the time left at that pace::

    ch6-dropout-s4  7 of 40 epochs   best validation 99.44% (epoch 5; test 99.46%)  5 min an epoch, about 3.0 h left

A run that a process is training now (the one holding its lock,
``nndl.files.lock``) ends with ``; training now (process PID)``; a run in
its first epoch, with no checkpoint yet, is listed as training its first epoch.

The time left is the epochs still planned times the median of the epochs so
far (training and measuring); a run the schedule stops early takes less.
Reading a checkpoint needs PyTorch, as writing it did.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from nndl.errors import NndlError
from nndl.files.lock import holder

__all__ = ["RunStatus", "run_status", "format_status"]


@dataclass
class RunStatus:
    """One network's (or one member's) training as its checkpoint holds it."""

    name: str
    epochs_done: int = 0
    epochs_planned: int | None = None
    best_epoch: int | None = None
    best_validation: float | None = None
    best_test: float | None = None
    seconds_per_epoch: float | None = None
    stopped: str | None = None          # why it ended before its planned epochs, if it did
    result_written: bool = False        # its OUT/runs/NAME.json exists: reproduce has recorded it
    error: str | None = None            # the checkpoint could not be read
    training_pid: int | None = None     # the process training it now, if one is

    @property
    def finished(self) -> bool:
        return self.stopped is not None or (self.epochs_planned is not None and self.epochs_done >= self.epochs_planned)

    @property
    def seconds_left(self) -> float | None:
        if self.finished or self.seconds_per_epoch is None or self.epochs_planned is None:
            return None
        return (self.epochs_planned - self.epochs_done) * self.seconds_per_epoch


def run_status(out: str | Path) -> list[RunStatus]:
    """The status of every checkpoint in ``OUT/runs/checkpoints`` (sorted by name); [] when there are none.

    A file that cannot be read is listed with its ``error`` rather than
    stopping the others. A run in its first epoch, locked but with no
    checkpoint yet, is listed with no epochs.
    """
    folder = Path(out) / "runs" / "checkpoints"
    paths = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    rows: list[RunStatus] = []
    for path in paths:
        try:
            found = _read(path, Path(out) / "runs")
        except (NndlError, OSError, ValueError) as e:
            rows.append(RunStatus(name=path.stem, error=str(e)))
            continue
        pid = holder(path)
        for row in found:
            row.training_pid = pid
        rows.extend(found)
    for lock in sorted(folder.glob("*.ckpt.lock")) if folder.is_dir() else []:
        path = lock.with_suffix("")                      # a run still in its first epoch: no checkpoint yet
        pid = holder(path)
        if pid is not None and not path.exists():
            rows.append(RunStatus(name=path.stem, training_pid=pid))
    return sorted(rows, key=lambda r: r.name.split(" member ")[0])      # (stable: members stay in order)


def _read(path: Path, runs: Path) -> list[RunStatus]:
    from nndl.deep.checkpoint import load_checkpoint, load_members_checkpoint
    from nndl.errors import ModelFileError
    from nndl.training.history import History
    try:
        _, state, metadata = load_checkpoint(path)
        histories = [state.get("history")]
    except ModelFileError as one:
        try:                                             # several networks trained together?
            _, state, metadata = load_members_checkpoint(path)
        except ModelFileError:
            raise one from None
        histories = list(state.get("histories") or [])
    name = str(metadata.get("experiment") or path.stem)
    rows = []
    for i, text in enumerate(histories):
        history = History.from_json(text, f"{path.name}'s history")      # stored as JSON text
        member = name if len(histories) == 1 else f"{name} member {i + 1}"
        times = [a + b for a, b in zip(history.epoch_time, history.monitor_time)] or history.epoch_time
        rows.append(RunStatus(
            name=member, epochs_done=len(history.epochs), epochs_planned=history.config.epochs,
            best_epoch=history.best_epoch, best_validation=history.best_accuracy,
            best_test=history.best_test_accuracy,
            seconds_per_epoch=statistics.median(times) if times else None,
            stopped=history.stop_reason if history.stop_reason not in ("completed", "interrupted") else None,
            result_written=any((runs / f"{name}{tail}.json").exists()    # (fewer epochs than the book's: -eN)
                               for tail in ("", f"-e{history.config.epochs}"))))
    return rows


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_status(rows: list[RunStatus], out: str | Path) -> list[str]:
    """The lines ``nndl reproduce --status`` prints: one per run, then a total of the time left."""
    if not rows:
        return [f"no checkpoints in {Path(out) / 'runs' / 'checkpoints'}: nothing is training there"]
    width = max(len(r.name) for r in rows)
    lines = []
    for r in rows:
        if r.error:
            lines.append(f"{r.name:<{width}}  unreadable: {r.error}")
            continue
        planned = f" of {r.epochs_planned}" if r.epochs_planned is not None else ""
        text = f"{r.name:<{width}}  {f'{r.epochs_done}{planned} epochs':<15}"
        if r.best_validation is not None:
            text += f"  best validation {100 * r.best_validation:.2f}% (epoch {r.best_epoch}"
            text += f"; test {100 * r.best_test:.2f}%)" if r.best_test is not None else ")"
        if r.finished:
            text += f"  finished{f' ({r.stopped})' if r.stopped else ''}"
            text += "" if r.result_written else "; run the same reproduce command to record its result"
        elif r.seconds_per_epoch is not None:
            text += f"  {_duration(r.seconds_per_epoch)} an epoch, about {_duration(r.seconds_left or 0)} left"
        if r.training_pid is not None:
            text += (f"; training now (process {r.training_pid})" if r.epochs_done else
                     f"  training its first epoch (process {r.training_pid})")
        lines.append(text)
    left = [r.seconds_left for r in rows if r.seconds_left]
    if left:
        lines.append(f"{len(left)} of {len(rows)} run(s) not finished: {_duration(sum(left))} of training left in "
                     "all, one after another at the pace so far")
    return lines
