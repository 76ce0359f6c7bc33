"""Training: the typed configuration, the SGD loop, its per-epoch History, plateau rules."""

from nndl.training.numpy_engine import train

__all__ = ["train"]
