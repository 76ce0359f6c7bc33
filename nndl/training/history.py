"""What happened during training, epoch by epoch, saved as JSON."""

import json
from dataclasses import dataclass, field, asdict

from nndl.files.atomic import atomic_write_text

__all__ = ["History", "HISTORY_FORMAT", "HISTORY_VERSION"]

HISTORY_FORMAT = "nndl-history"
HISTORY_VERSION = 1

#: The per-epoch measurements that can be monitored.
MONITORS = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")


@dataclass
class History:
    """A record of one training run.

    The per-epoch lists are aligned with ``epochs`` (0-based, as the book
    prints them); a measurement that was not monitored stays an empty list.
    Accuracies are fractions in [0, 1]; costs include the regularisation
    term (see ``FeedforwardNetwork.total_cost``).

    Attributes
    ----------
    epochs : list of int
    training_cost, training_accuracy, evaluation_cost, evaluation_accuracy : list of float
    eta : list of float
        The learning rate used in each epoch.
    epoch_time : list of float
        Seconds of training (forward, backward, update) in each epoch.
    monitor_time : list of float
        Seconds spent measuring costs and accuracies after each epoch.
    best_epoch : int or None
        The epoch of the highest evaluation accuracy (or training accuracy
        when there is no evaluation data).
    best_accuracy : float or None
    stop_reason : str
        "completed", "early stopping", "learning-rate schedule", "diverged",
        "saturated" (accuracy near chance with most neurons saturated) or
        "interrupted".
    message : str
        A plain-language note about the run, e.g. why it stopped or a warning
        that the network saturated.
    config : dict
        The settings of the run.
    """

    epochs: list = field(default_factory=list)
    training_cost: list = field(default_factory=list)
    training_accuracy: list = field(default_factory=list)
    evaluation_cost: list = field(default_factory=list)
    evaluation_accuracy: list = field(default_factory=list)
    eta: list = field(default_factory=list)
    epoch_time: list = field(default_factory=list)
    monitor_time: list = field(default_factory=list)
    best_epoch: int = None
    best_accuracy: float = None
    stop_reason: str = "completed"
    message: str = ""
    config: dict = field(default_factory=dict)

    @property
    def training_time(self):
        """Total seconds spent training (excluding monitoring)."""
        return float(sum(self.epoch_time))

    def to_dict(self):
        return {"format": HISTORY_FORMAT, "version": HISTORY_VERSION, **asdict(self)}

    def save(self, path):
        """Write the history as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data, source="history"):
        if not isinstance(data, dict) or data.get("format") != HISTORY_FORMAT:
            raise ValueError(f"{source} is not an nndl training history (no \"format\": \"{HISTORY_FORMAT}\")")
        version = data.get("version")
        if not isinstance(version, int) or version > HISTORY_VERSION:
            raise ValueError(f"{source} was written in history format version {version}, newer than this nndl "
                             f"understands (version {HISTORY_VERSION}); upgrade nndl to read it")
        names = set(cls.__dataclass_fields__)
        unknown = set(data) - names - {"format", "version"}
        if unknown:
            raise ValueError(f"{source} has unknown fields: {', '.join(sorted(unknown))}")
        history = cls(**{k: v for k, v in data.items() if k in names})
        for name in ("epochs", "eta", *MONITORS):
            values = getattr(history, name)
            if not isinstance(values, list) or (values and len(values) != len(history.epochs)):
                raise ValueError(f"{source}: {name} must be a list with one value per epoch")
        return history

    @classmethod
    def load(cls, path):
        """Read a history written by ``save``."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        return cls.from_dict(data, source=str(path))
