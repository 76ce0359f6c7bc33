"""What happened during training, epoch by epoch, saved as JSON."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, NoReturn

from nndl.errors import ConfigError, FileFormatError
from nndl.files.atomic import atomic_write_text
from nndl.files.header import check_header, parse_json
from nndl.files.inputs import open_input
from nndl.training.config import MONITORS, NetworkConfig, TrainingConfig, network_config_from_dict

if TYPE_CHECKING:
    from nndl.deep.config import ConvNetConfig

__all__ = ["History", "HISTORY_FORMAT", "HISTORY_VERSION"]

HISTORY_FORMAT = "nndl-history"
HISTORY_VERSION = 2

#: Every per-epoch list, aligned with ``epochs``.
_PER_EPOCH = ("eta", "epoch_time", "monitor_time") + MONITORS + ("test_accuracy",)
#: How training can end.
STOP_REASONS = ("completed", "early stopping", "learning-rate schedule", "diverged", "saturated", "interrupted")


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
        One of STOP_REASONS: "completed", "early stopping",
        "learning-rate schedule", "diverged", "saturated" (accuracy near
        chance with most neurons saturated) or "interrupted".
    message : str
        A plain-language note about the run, e.g. why it stopped.
    config : TrainingConfig
        The settings of the run.
    network : NetworkConfig, ConvNetConfig or None
        The network trained.
    n_training, n_evaluation : int
        The sizes of the training and evaluation data.
    test_accuracy : list of float
        Chapter 6 runs: the test accuracy after each epoch, beside the
        validation accuracy in ``evaluation_accuracy`` (empty otherwise).
    n_test : int
    """

    epochs: list[int] = field(default_factory=list)
    training_cost: list[float] = field(default_factory=list)
    training_accuracy: list[float] = field(default_factory=list)
    evaluation_cost: list[float] = field(default_factory=list)
    evaluation_accuracy: list[float] = field(default_factory=list)
    eta: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    monitor_time: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_accuracy: float | None = None
    stop_reason: str = "completed"
    message: str = ""
    config: TrainingConfig = field(default_factory=TrainingConfig)
    network: NetworkConfig | ConvNetConfig | None = None
    n_training: int = 0
    n_evaluation: int = 0
    test_accuracy: list[float] = field(default_factory=list)
    n_test: int = 0

    @property
    def best_test_accuracy(self) -> float | None:
        """The test accuracy at the epoch of best validation accuracy (chapter 6's figure of merit), or None."""
        if self.best_epoch is None or not self.test_accuracy or self.best_epoch not in self.epochs:
            return None
        return self.test_accuracy[self.epochs.index(self.best_epoch)]

    @property
    def training_time(self) -> float:
        """Total seconds spent training (excluding monitoring)."""
        return float(sum(self.epoch_time))

    # --- recording ---------------------------------------------------------

    def record(self, epoch: int, eta: float, epoch_time: float, monitor_time: float,
               measured: Mapping[str, float]) -> None:
        """Append one epoch, all lists at once (so a Ctrl-C never leaves them of different lengths)."""
        self.epochs.append(epoch)
        self.eta.append(eta)
        self.epoch_time.append(epoch_time)
        self.monitor_time.append(monitor_time)
        for name, value in measured.items():
            getattr(self, name).append(value)

    def stop(self, reason: str, message: str) -> None:
        """Say why training ended."""
        self.stop_reason, self.message = reason, message

    def watched_accuracy(self) -> float | None:
        """The accuracy that decides the best epoch: evaluation accuracy, else training accuracy, else None."""
        for values in (self.evaluation_accuracy, self.training_accuracy):
            if values:
                return values[-1]
        return None

    def settings(self) -> dict[str, Any]:
        """The network's and the run's settings in one flat dict (for titles and tables)."""
        network = self.network.to_dict() if self.network is not None else {}
        return {**network, **self.config.to_dict(), "n_training": self.n_training,
                "n_evaluation": self.n_evaluation}

    # --- files ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": HISTORY_FORMAT, "version": HISTORY_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
        return data

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the history as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "history") -> History:
        """A History from its dict, checking every field (FileFormatError names what is wrong)."""
        version = check_header(data, HISTORY_FORMAT, HISTORY_VERSION, source)
        data = dict(data)
        del data["format"], data["version"]
        if version == 1:
            data = _from_version_1(data)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FileFormatError(f"{source} has unknown fields: {', '.join(map(str, unknown))}")
        try:
            config = TrainingConfig.from_dict(data.pop("config", {}))
            network = data.pop("network", None)
            network = network_config_from_dict(network) if network is not None else None
        except ConfigError as e:
            raise FileFormatError(f"{source}: {e}") from None
        history = cls(config=config, network=network, **data)
        history._check(source)
        return history

    def _check(self, source: str) -> None:
        def bad(what: str) -> NoReturn:
            raise FileFormatError(f"{source}: {what}")

        if not isinstance(self.epochs, list) or not all(_is_int(e) and e >= 0 for e in self.epochs):
            bad("epochs must be a list of epoch numbers")
        for name in _PER_EPOCH:
            values = getattr(self, name)
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                bad(f"{name} must be a list of numbers")
            if values and len(values) != len(self.epochs):
                bad(f"{name} must have one value per epoch ({len(self.epochs)}), has {len(values)}")
        if self.best_epoch is not None and not _is_int(self.best_epoch):
            bad("best_epoch must be an epoch number or null")
        if self.best_accuracy is not None and not _is_number(self.best_accuracy):
            bad("best_accuracy must be a number or null")
        if self.stop_reason not in STOP_REASONS:
            bad(f"stop_reason must be one of {', '.join(STOP_REASONS)}, got {self.stop_reason!r}")
        if not isinstance(self.message, str):
            bad("message must be text")
        for name in ("n_training", "n_evaluation", "n_test"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                bad(f"{name} must be a whole number")

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "history") -> History:
        """A History from its JSON text (as checkpoints keep it), every way it can be malformed a FileFormatError."""
        return cls.from_dict(parse_json(text, source, kind=HISTORY_FORMAT), source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> History:
        """Read a history written by ``save`` (or by nndl 0.1, format version 1)."""
        with open_input(path, "a training history", _MAX_BYTES) as f:      # a regular file, bounded
            raw = f.read(_MAX_BYTES + 1)
        if len(raw) > _MAX_BYTES:
            raise FileFormatError(f"{path} is larger than {_MAX_BYTES // 2**20} MB: not a training history")
        return cls.from_dict(parse_json(raw, str(path), kind=HISTORY_FORMAT), source=str(path))


#: A history of a million epochs is a few hundred MB; anything bigger is not one.
_MAX_BYTES = 256 * 2**20


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _from_version_1(data: dict[str, Any]) -> dict[str, Any]:
    """nndl 0.1 kept the network's and the run's settings in one flat ``config`` dict."""
    flat = data.get("config")
    if not isinstance(flat, dict):
        return data
    flat = dict(flat)
    network = {key: flat.pop(key) for key in ("sizes", "activations", "cost", "dtype") if key in flat}
    data = dict(data, n_training=flat.pop("n_training", 0), n_evaluation=flat.pop("n_evaluation", 0))
    schedule = flat.get("schedule")
    if schedule == "halve-on-plateau":
        flat["schedule"] = "halve"
    data["config"] = {key: value for key, value in flat.items()
                      if key in {f.name for f in fields(TrainingConfig)}}
    data["network"] = network or None
    return data
