"""The NumPy engine of chapters 1-3: activations, costs, initial weights, regularisers,
the feedforward network, backpropagation over mini-batches (BP1-BP4), optimisers and gradient
checking. Each module names the book's equations it computes; ``docs/equations.md`` maps them all.

Nothing here imports torch or matplotlib. File formats live in ``nndl.files``; ``modelio`` only
turns a network into a model file's plain data and back. Figures are ``nndl.plot``; training
loops ``nndl.training``.
"""
