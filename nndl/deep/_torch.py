"""PyTorch for the modules of ``nndl.deep``: they import it from here, so a missing PyTorch says how to install it.

    from nndl.deep._torch import F, nn, torch
"""

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:                        # pragma: no cover - exercised in a subprocess test
    from nndl.errors import MissingDependencyError
    raise MissingDependencyError(
        "the convolutional networks of chapter 6 need PyTorch, which is not installed: "
        "pip install 'nndl[deep]' (or pip install torch)") from e

__all__ = ["torch", "F", "nn"]
