"""Early stopping by the book's "no-improvement-in-n" rule (chapter 3)."""

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop when the validation accuracy has not improved for ``patience`` epochs.

    ``nndl.training.train`` then restores the weights of the best epoch
    (unless it is called with ``restore_best=False``).

    Parameters
    ----------
    patience : int
        The n of "no-improvement-in-n" (the book suggests 10 to start).
    """

    def __init__(self, patience=10):
        if int(patience) < 1:
            raise ValueError(f"early stopping's patience must be at least 1 epoch, got {patience}")
        self.patience = int(patience)
        self.reset()

    def reset(self):
        self.best = None
        self.since_best = 0

    def update(self, accuracy):
        """Record one epoch's accuracy; returns a reason to stop, or None."""
        if accuracy is None:
            raise ValueError("early stopping needs validation data to monitor")
        if self.best is None or accuracy > self.best:
            self.best = accuracy
            self.since_best = 0
            return None
        self.since_best += 1
        if self.since_best >= self.patience:
            return f"no improvement in validation accuracy for {self.patience} epochs"
        return None

    def __repr__(self):
        return f"EarlyStopping(patience={self.patience})"
