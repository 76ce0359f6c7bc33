"""The book's "no-improvement-in-n" rule, counted once for early stopping and the schedule.

Chapter 3 uses one idea twice: stop training when the validation accuracy
has not improved for n epochs (early stopping), and halve the learning rate
each time it has not improved for n epochs, stopping once eta has fallen to
1/128 of its start (the learning-rate schedule). Both read the same counter,
``Plateau.since_best``: epochs since the best accuracy so far. An accuracy
equal to the best is not an improvement -- unless ``ties`` is set, as the
book's network3 counts it (its best epoch is the last of equal ones).
"""

from __future__ import annotations

__all__ = ["Plateau"]


class Plateau:
    """Tracks the best accuracy so far and how many epochs ago it was reached.

    Attributes
    ----------
    best : float or None
        The best accuracy seen (None before the first epoch).
    best_epoch : int or None
    since_best : int
        Epochs since ``best`` was reached (0 on the epoch that reached it).
    ties : bool
        An accuracy equal to the best counts as a new best.
    """

    def __init__(self, ties: bool = False) -> None:
        self.ties = ties
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.since_best = 0

    def update(self, epoch: int, accuracy: float) -> bool:
        """Record one epoch's accuracy; returns True when it is a new best."""
        if self.best is None or accuracy > self.best or (self.ties and accuracy == self.best):
            self.best, self.best_epoch, self.since_best = accuracy, epoch, 0
            return True
        self.since_best += 1
        return False

    def stalled_for(self, n: int) -> bool:
        """True when the last n epochs (or a multiple of n) brought no improvement: the moment to act."""
        return self.since_best > 0 and self.since_best % n == 0

    def __repr__(self) -> str:
        return f"Plateau(best={self.best}, best_epoch={self.best_epoch}, since_best={self.since_best})"
