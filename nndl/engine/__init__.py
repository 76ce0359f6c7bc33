"""The NumPy engine of chapters 1-3: activations, costs, initial weights, regularisers,
the feedforward network, backpropagation over mini-batches (BP1-BP4), optimisers and gradient
checking. Each module names the book's equations it computes; ``docs/equations.md`` maps them all.

Nothing here imports torch, matplotlib or any file format: those live in ``nndl.files`` and
``nndl.plot``; training loops in ``nndl.training``.
"""
