"""The NumPy engine of chapters 1-3: activations, costs, initial weights, regularisers,
the feedforward network, backpropagation over mini-batches, optimisers and gradient checking.

Nothing here imports torch, matplotlib or any file format: those live in ``nndl.files`` and
``nndl.plot``; training loops in ``nndl.training``.
"""
