"""nndl: the networks of Michael Nielsen's *Neural Networks and Deep Learning*, as real software."""

__version__ = "0.1.0"
