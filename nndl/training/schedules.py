"""Learning-rate schedules (chapter 3), consulted once per epoch.

A schedule looks at the learning rate and the monitored validation accuracy
after each epoch and returns the learning rate for the next one, or says
that training should stop.
"""

__all__ = ["ConstantSchedule", "HalveOnPlateau", "get_schedule"]


class ConstantSchedule:
    """Keep eta fixed."""

    name = "constant"

    def reset(self, eta):
        pass

    def update(self, eta, accuracy):
        """Returns (eta for the next epoch, reason to stop or None)."""
        return eta, None

    def __repr__(self):
        return "ConstantSchedule()"


class HalveOnPlateau:
    """The book's schedule: halve eta each time the validation accuracy has
    not improved for ``patience`` epochs (the "no-improvement-in-n" rule),
    and stop once eta has fallen to ``min_ratio`` (1/128) of its start.

    Parameters
    ----------
    patience : int, default 10
        Epochs without a new best accuracy before eta is halved.
    min_ratio : float, default 1/128
    """

    name = "halve-on-plateau"

    def __init__(self, patience=10, min_ratio=1 / 128):
        if int(patience) < 1:
            raise ValueError(f"the schedule's patience must be at least 1 epoch, got {patience}")
        if not 0.0 < float(min_ratio) < 1.0:
            raise ValueError(f"min_ratio must be between 0 and 1, got {min_ratio}")
        self.patience = int(patience)
        self.min_ratio = float(min_ratio)
        self.eta0 = None

    def reset(self, eta):
        self.eta0 = eta
        self.best = None
        self.since_best = 0

    def update(self, eta, accuracy):
        if self.eta0 is None:
            self.reset(eta)
        if accuracy is None:
            raise ValueError("the halve-on-plateau schedule needs validation data to monitor")
        if self.best is None or accuracy > self.best:
            self.best = accuracy
            self.since_best = 0
            return eta, None
        self.since_best += 1
        if self.since_best < self.patience:
            return eta, None
        self.since_best = 0
        eta = eta / 2.0
        if eta <= self.eta0 * self.min_ratio * (1 + 1e-12):
            return eta, (f"learning rate fell to 1/{round(1 / self.min_ratio)} of its start "
                         f"after {self.patience} epochs without improvement")
        return eta, None

    def __repr__(self):
        return f"HalveOnPlateau(patience={self.patience}, min_ratio={self.min_ratio})"


def get_schedule(spec, patience=10):
    """A schedule from a name ("constant", "halve") or an instance."""
    if spec is None:
        return ConstantSchedule()
    if hasattr(spec, "update"):
        return spec
    key = str(spec).strip().lower()
    if key == "constant":
        return ConstantSchedule()
    if key in ("halve", "halve-on-plateau", "plateau"):
        return HalveOnPlateau(patience=patience)
    raise ValueError(f"unknown learning-rate schedule {spec!r}; choose 'constant' or 'halve'")
