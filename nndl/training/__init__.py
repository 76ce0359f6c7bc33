"""Training: the typed configuration, the SGD loop, its per-epoch History, plateau rules."""

from nndl.training.loop import train

__all__ = ["train"]
