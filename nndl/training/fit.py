"""The one epoch loop: every engine (NumPy, PyTorch, several networks at once) is trained by ``fit``.

An *engine* owns the networks and the mini-batch loop of one epoch; ``fit``
owns everything between epochs, written once:

- the progress bar and the check for a lost Ctrl-C (through the engine, every
  ``PROGRESS_EVERY`` mini-batches);
- divergence: a member whose weights or cost became inf or nan gets the
  weights of its last good epoch back and stops, the others go on;
- measuring, and recording each member's ``History``;
- the plateau rules of chapter 3 (early stopping, the halve-on-plateau
  schedule) from one counter per member, and keeping each member's best
  parameters;
- Ctrl-C / SIGTERM: the finished epochs are kept, ``stop_reason`` says so;
- checkpoints after every epoch, and resuming from one to exactly the result
  of an uninterrupted run.

An engine trains ``members`` networks of one architecture (1 for the NumPy
and the single PyTorch engine). The book's conventions that differ between
its chapters are settings of the ``TrainingConfig`` (``last_batch``,
``best_on_tie``, ``lmbda_scale``), resolved by the engine to its chapter's
default when left unset and recorded in the History.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from nndl.errors import ConfigError, ModelFileError
from nndl.training import interrupt
from nndl.training.config import TrainingConfig
from nndl.training.history import History
from nndl.training.plateau import Plateau

__all__ = ["Engine", "Progress", "fit", "PROGRESS_EVERY", "check_weight_decay"]

#: Mini-batches between two updates of the progress bar (and two checks for a lost Ctrl-C).
PROGRESS_EVERY = 250

#: Called by an engine with the number of images trained since the last call.
Progress = Callable[[int], None]


class Engine(Protocol):
    """What ``fit`` needs of an engine. Member ``i`` is one of ``members`` networks trained together.

    Parameters are opaque to ``fit``: it only copies and restores what the
    engine hands it.
    """

    members: int
    #: What became inf or nan when training diverges ("weights", "the cost"), for the message.
    divergence: str
    #: Images trained per epoch by each member (the progress bar's total).
    images_per_epoch: int

    def run_epoch(self, epoch: int, active: Sequence[bool], progress: Progress) -> list[bool]:
        """One epoch of updates for the active members; False for a member whose cost became inf or nan."""
        ...

    def finite(self, i: int) -> bool:
        """Whether member i's parameters are all finite."""
        ...

    def measure(self, i: int, monitor: Sequence[str]) -> dict[str, float]:
        """Member i's monitored costs and accuracies (and ``test_accuracy`` where the engine has test data)."""
        ...

    def copy_params(self, i: int) -> Any:
        """A copy of member i's parameters."""
        ...

    def restore_params(self, i: int, params: Any) -> None:
        """Put back parameters from ``copy_params``."""
        ...

    def get_eta(self, i: int) -> float:
        """Member i's current learning rate."""
        ...

    def set_eta(self, i: int, eta: float) -> None:
        """Change member i's learning rate (the halving schedule)."""
        ...

    def network_config(self) -> Any:
        """The architecture, as recorded in the History (NetworkConfig or ConvNetConfig)."""
        ...

    def saturation(self, i: int) -> float | None:
        """The fraction of member i's saturated neurons, or None when the engine cannot tell."""
        ...

    def write_checkpoint(self, path: str, state: dict[str, Any], metadata: dict[str, Any] | None) -> None:
        """Write ``state`` (fit's part) with the engine's own state (optimiser, random generators) to ``path``."""
        ...

    def hold_checkpoint(self, path: str) -> AbstractContextManager[None]:
        """The lock of the checkpoint ``path`` for the whole run (``nndl.files.lock.sole_writer``).

        Taken by the process that writes the file; refused (OutputError) on
        every process of the run when another run holds it.
        """
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the engine's own state from a checkpoint's training state."""
        ...

    def params_from_state(self, params: Any) -> Any:
        """Parameters as saved in a checkpoint, in the form ``restore_params`` takes."""
        ...

    def close(self) -> None:
        """Release what the epochs used (progress bars, thread limits)."""
        ...


@dataclass
class _Member:
    """What ``fit`` keeps for one network: its History, plateau counter, best and last good parameters."""

    history: History
    plateau: Plateau
    best: Any = None
    good: Any = None
    active: bool = True


def check_weight_decay(config: TrainingConfig, divisor: int) -> None:
    """Refuse an L2 lambda so large that weight decay flips the weights' signs every step.

    ``divisor`` is what lambda is divided by (``config.lmbda_divisor``).
    """
    if config.regularization == "l2" and config.lmbda and config.eta * config.lmbda / divisor >= 1.0:
        what = "training examples" if config.lmbda_scale == "n" else "mini-batches per epoch"
        raise ConfigError(
            f"lambda = {config.lmbda:g} is too large for eta = {config.eta:g} and n = {divisor:,} {what}: "
            f"each step would multiply the weights by 1 - eta*lambda/n = "
            f"{1 - config.eta * config.lmbda / divisor:.3g}; choose lambda < n/eta = {divisor / config.eta:g}")


def fit(engine: Engine, config: TrainingConfig, histories: Sequence[History], *, monitor: Sequence[str],
        progress: bool = False, on_epoch: Callable[[History], None] | None = None,
        checkpoint: str | None = None, checkpoint_metadata: dict[str, Any] | None = None,
        resume: dict[str, Any] | None = None) -> list[History]:
    """Train the engine's members for ``config.epochs`` epochs; returns their Histories.

    Parameters
    ----------
    engine : Engine
    config : TrainingConfig
        Checked, with the engine's conventions resolved (``last_batch``, ``best_on_tie``).
    histories : sequence of History
        One fresh History per member (their config, network and data sizes
        filled in). Members' configs are ``config`` but for their seeds.
    monitor : sequence of str
        What to measure after each epoch (``TrainingConfig.monitors``).
    progress : bool
        A progress bar per epoch on stderr.
    on_epoch : callable, optional
        ``on_epoch(history)`` after each epoch of each member is recorded.
    checkpoint : str, optional
        Write the complete training state here after every epoch (atomically).
        Its lock is held from the first epoch to the end
        (``Engine.hold_checkpoint``): a second process training into the
        same file is refused before it trains anything.
    resume : dict, optional
        A training state read from such a checkpoint: go on from its last
        epoch. The config may differ from the checkpoint's only in ``epochs``.
        A member that had stopped (early stopping, the schedule, divergence)
        stays stopped with its History; the others go on.
    """
    if len(histories) != engine.members:
        raise ValueError(f"fit needs one History per member: {engine.members}, got {len(histories)}")
    try:
        with engine.hold_checkpoint(checkpoint) if checkpoint is not None else nullcontext():
            return _fit(engine, config, histories, monitor, progress, on_epoch, checkpoint, checkpoint_metadata,
                        resume)
    finally:
        engine.close()                  # also when the lock is refused (engines may be closed twice)


def _fit(engine: Engine, config: TrainingConfig, histories: Sequence[History], monitor: Sequence[str],
         progress: bool, on_epoch: Callable[[History], None] | None, checkpoint: str | None,
         checkpoint_metadata: dict[str, Any] | None, resume: dict[str, Any] | None) -> list[History]:
    """``fit``, with the checkpoint's lock held."""
    ties = bool(config.best_on_tie)
    members = [_Member(history=h, plateau=Plateau(ties=ties)) for h in histories]
    if resume is not None:
        _resume(engine, config, members, resume)
    restore_best = config.restore_best if config.restore_best is not None else config.early_stopping is not None
    for i, member in enumerate(members):
        member.good = engine.copy_params(i)
    bar = _ProgressBar(progress, engine.images_per_epoch)
    first = min((len(m.history.epochs) for m in members if m.active), default=config.epochs)
    try:
        for epoch in range(first, config.epochs):
            if not any(m.active for m in members):
                break
            active = [m.active and len(m.history.epochs) <= epoch for m in members]
            bar.start(epoch)
            start = time.perf_counter()
            ok = engine.run_epoch(epoch, active, bar.update)
            epoch_time = time.perf_counter() - start
            bar.close()
            interrupt.check()
            recorded = [active[i] and _after_epoch(engine, config, i, member, epoch, epoch_time, ok[i], monitor,
                                                    restore_best)
                        for i, member in enumerate(members)]
            if checkpoint is not None and any(recorded):
                _write_checkpoint(engine, members, checkpoint, checkpoint_metadata)
            for member in members:
                if member.active and member.history.stop_reason != "completed":
                    member.active = False
            if on_epoch is not None:
                for member, done in zip(members, recorded):
                    if done:
                        on_epoch(member.history)
    except KeyboardInterrupt:
        for i, member in enumerate(members):
            if member.active:
                member.history.stop("interrupted", "interrupted by the user after "
                                                    f"{len(member.history.epochs)} complete epochs")
            if not engine.finite(i):
                engine.restore_params(i, member.good)
    finally:
        bar.close()
        engine.close()
    for i, member in enumerate(members):
        if restore_best and member.best is not None and member.history.best_epoch is not None:
            engine.restore_params(i, member.best)
        _diagnose(engine, i, member.history)
    return [m.history for m in members]


def _after_epoch(engine: Engine, config: TrainingConfig, i: int, member: _Member, epoch: int, epoch_time: float,
                 ok: bool, monitor: Sequence[str], restore_best: bool) -> bool:
    """Member i after an epoch: divergence, measurements, best epoch, plateau rules; True if it was recorded."""
    history = member.history
    if not ok or not engine.finite(i):
        engine.restore_params(i, member.good)
        history.stop("diverged", f"training diverged in epoch {epoch}: {engine.divergence} became inf or nan "
                                 f"(eta = {engine.get_eta(i):g} is probably too large); the weights from the end "
                                 "of the previous epoch were kept")
        return False
    member.good = engine.copy_params(i)
    start = time.perf_counter()
    measured = engine.measure(i, monitor)
    history.record(epoch, engine.get_eta(i), epoch_time, time.perf_counter() - start, measured)
    accuracy = history.watched_accuracy()
    if accuracy is not None and member.plateau.update(epoch, accuracy):
        history.best_epoch, history.best_accuracy = epoch, accuracy
        if restore_best:
            member.best = engine.copy_params(i)
    reason = _plateau_rules(config, member.plateau, engine, i)
    if reason:
        history.stop(*reason)
    return True


def _plateau_rules(config: TrainingConfig, plateau: Plateau, engine: Engine, i: int) -> tuple[str, str] | None:
    """Early stopping and the halve-on-plateau schedule, from the one counter.

    Returns (stop_reason, message) when member i should stop, else None;
    may halve its learning rate.
    """
    if not config.watches_plateau:
        return None
    if config.early_stopping is not None and plateau.since_best >= config.early_stopping:
        return "early stopping", f"no improvement in validation accuracy for {config.early_stopping} epochs"
    if config.schedule == "halve" and plateau.stalled_for(config.patience):
        eta = engine.get_eta(i) / 2.0
        engine.set_eta(i, eta)
        if eta <= config.eta * config.min_eta_ratio * (1 + 1e-12):
            return "learning-rate schedule", (f"learning rate fell to 1/{round(1 / config.min_eta_ratio)} of its "
                                              f"start after {config.patience} epochs without improvement")
    return None


# --- checkpoints ------------------------------------------------------------------------------------


def _write_checkpoint(engine: Engine, members: list[_Member], path: str, metadata: dict[str, Any] | None) -> None:
    """fit's part of the training state (Histories, best parameters), handed to the engine to write."""
    epochs = [m.history.epochs[-1] if m.history.epochs else -1 for m in members]
    state: dict[str, Any] = {"epoch": max(epochs)}
    if len(members) == 1:
        state["history"] = json.dumps(members[0].history.to_dict())
        if members[0].best is not None:
            state["best"] = members[0].best
    else:
        state["histories"] = [json.dumps(m.history.to_dict()) for m in members]
        state["bests"] = [m.best for m in members]
    engine.write_checkpoint(path, state, metadata)


def _saved_histories(state: dict[str, Any], members: int) -> list[History]:
    try:
        texts = [state["history"]] if members == 1 and "history" in state else state["histories"]
        if not isinstance(texts, list) or len(texts) != members:
            raise ConfigError(f"the checkpoint holds {len(texts) if isinstance(texts, list) else 'no'} runs, "
                              f"this training {members}")
        if not all(isinstance(text, str) for text in texts):
            raise ConfigError("its histories are not JSON text")
        return [History.from_json(text, source="the checkpoint's history") for text in texts]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"the checkpoint's training state is incomplete or damaged ({e})") from None


def _resume(engine: Engine, config: TrainingConfig, members: list[_Member], state: dict[str, Any]) -> None:
    """Continue from a checkpoint: each member's History, plateau counter and best parameters, then the engine's
    state."""
    saved = _saved_histories(state, len(members))
    network = engine.network_config()
    for history, member in zip(saved, members):
        if history.network != network:
            raise ConfigError(f"the checkpoint is of a different network ({_describe(history.network)}) than the "
                              f"one given ({_describe(network)})")
        wanted = member.history.config                   # config, with this member's seed
        before = _resolved_like(history.config, wanted)
        if before.replace(epochs=wanted.epochs) != wanted:
            changed = [f"{k}: {v!r} -> {getattr(wanted, k)!r}" for k, v in before.to_dict().items()
                       if k != "epochs" and v != wanted.to_dict()[k]]
            raise ConfigError("resuming needs the training settings of the checkpoint (only the number of epochs may "
                              f"change); changed: {', '.join(changed)}")
    ended = [h.stop_reason not in ("completed", "interrupted") for h in saved]
    if all(ended):
        history = saved[0]
        raise ConfigError(f"the checkpoint's run has already ended ({history.stop_reason}: {history.message})"
                          if len(saved) == 1 else "every run in the checkpoint has already ended ("
                          + "; ".join(f"{i}: {h.stop_reason}" for i, h in enumerate(saved)) + ")")
    bests = [state.get("best")] if len(members) == 1 else state.get("bests", [None] * len(members))
    engine.load_state(state)
    for member, history, best, done in zip(members, saved, bests, ended):
        for epoch, accuracy in zip(history.epochs, history.evaluation_accuracy or history.training_accuracy):
            member.plateau.update(epoch, accuracy)
        history.config = member.history.config
        if done:                                         # stopped before the checkpoint: it stays stopped
            member.active = False
        else:
            history.stop("completed", "")
        member.history = history
        if best is not None:
            member.best = engine.params_from_state(best)


def _resolved_like(saved: TrainingConfig, config: TrainingConfig) -> TrainingConfig:
    """A checkpoint's settings, with conventions it left unset (files of nndl 0.1) taken as the engine resolves them."""
    changes = {name: getattr(config, name) for name in ("last_batch", "best_on_tie") if getattr(saved, name) is None}
    return saved.replace(**changes) if changes else saved


def _describe(network: Any) -> str:
    return network.describe() if hasattr(network, "describe") else str(network)


# --- reporting ------------------------------------------------------------------------------------


class _ProgressBar:
    """One tqdm bar per epoch on stderr, cleared before the epoch's line is printed; nothing when off."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self.bar: Any = None

    def start(self, epoch: int) -> None:
        if self.enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=self.total, desc=f"epoch {epoch}", unit="img", unit_scale=True, leave=False,
                            dynamic_ncols=True, mininterval=0.2)

    def update(self, images: int) -> None:
        interrupt.check()
        if self.bar is not None:
            self.bar.update(images)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _diagnose(engine: Engine, i: int, history: History) -> None:
    """Say plainly when a network ended no better than guessing, and why if the engine can tell."""
    network: object = history.network             # NetworkConfig (sizes) or ConvNetConfig (n_outputs)
    n_outputs = getattr(network, "n_outputs", None)
    if n_outputs is None and hasattr(network, "sizes"):
        n_outputs = network.sizes[-1]
    if history.best_accuracy is None or history.stop_reason == "diverged" or not n_outputs or n_outputs < 2:
        return                                       # (one output neuron: "accuracy" has no chance level)
    chance = 1.0 / n_outputs
    if history.best_accuracy > 1.5 * chance:
        return
    note = (f"the network never did much better than guessing (best accuracy {history.best_accuracy:.2%}, "
            f"chance is {chance:.0%})")
    fraction = engine.saturation(i)
    if fraction is not None and fraction > 0.5:
        note += (f": it has saturated -- {fraction:.0%} of its neurons have |z| > 5, where they barely learn. "
                 "Large initial weights saturate neurons from the start (init 'default' scales them by "
                 "1/sqrt(n_in)); a network that saturated while learning needs a smaller learning rate "
                 f"(eta = {history.config.eta:g} now)")
        if history.stop_reason == "completed":
            history.stop_reason = "saturated"
    history.message = f"{history.message}; {note}" if history.message else note
