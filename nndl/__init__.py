"""nndl: the networks of Michael Nielsen's *Neural Networks and Deep Learning*, as real software."""

from nndl._version import __version__

__all__ = ["__version__", "predict"]


def predict(model, images):
    """Which digit is in each image: a list of ``nndl.digits.predict.Prediction``.

    ``model``: a model file written by nndl (``nndl train --save``, ``nndl conv
    --save``), a loaded ``Classifier``, or None for the network nndl ships; ``images``: paths, bytes, PIL images
    or arrays, each prepared the way MNIST's digits were (see
    ``nndl.digits.prepare.prepare``). Imports what it needs when called, so that
    ``import nndl`` stays light.
    """
    from nndl.digits.predict import predict as _predict
    return _predict(model, images)
