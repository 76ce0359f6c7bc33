"""The book's experiments as a registry: ``nndl reproduce ID`` runs one, with its figure and the book's value
beside ours.

    from nndl.experiments import experiments, get, reproduce
    get("ch3-overfit").config          # the book's configuration, typed
    reproduce(["ch3-overfit"], seeds=[1], quick=True, out="out")   # run it: out/ch3-overfit.json and .png
    nndl reproduce --list              # the same from the command line

Importing this package registers nothing; :func:`experiments` loads the
chapter modules on first use.
"""

from nndl.experiments.registry import Context, Experiment, experiments, get, register, select
from nndl.experiments.runner import load_result, reproduce

__all__ = ["Context", "Experiment", "experiments", "get", "register", "select", "reproduce", "load_result"]
