"""What the book-compatible modules (``nndl.network``, ``nndl.network2``) share.

The book's data comes as lists of (column vector, target) pairs; these are
converted to arrays once, at the edge. Its networks expose ``weights`` and
``biases`` lists (biases as (n, 1) columns); here they are views into the
parameters of an ``nndl.engine.feedforward.FeedforwardNetwork``, the ``engine``.
"""

import numpy as np

__all__ = ["from_book_pairs", "BookParameters"]


class BookParameters:
    """The book's ``weights`` and ``biases`` attributes, as views of ``self.engine``'s parameters.

    Subclasses set ``self.engine`` to a ``FeedforwardNetwork``. Reading gives
    views (changing them in place changes the network); assigning a list
    copies the values in after checking their shapes.
    """

    engine = None

    @property
    def weights(self):
        """Views of the weights, ``weights[l]`` of shape (sizes[l+1], sizes[l])."""
        return self.engine.weights

    @weights.setter
    def weights(self, values):
        self.engine.set_parameters(list(values), self.engine.biases)

    @property
    def biases(self):
        """Views of the biases, ``biases[l]`` of shape (sizes[l+1], 1)."""
        return [p[:, -1:] for p in self.engine.params]

    @biases.setter
    def biases(self, values):
        self.engine.set_parameters(self.engine.weights, [np.asarray(b).reshape(-1) for b in values])


def from_book_pairs(data, n_in, n_out, what="data"):
    """Arrays from the book's data format.

    Parameters
    ----------
    data : iterable of (x, y)
        x a column vector (n_in, 1) (or anything of n_in values); y either a
        one-hot column (n_out, 1) or an integer label.
    n_in, n_out : int
        The network's input and output sizes.

    Returns
    -------
    x : ndarray, shape (n, n_in)
    labels : ndarray of int64, shape (n,)
    """
    pairs = list(data)
    if not pairs:
        raise ValueError(f"{what} is empty")
    try:
        x = np.stack([np.asarray(p[0]).reshape(-1) for p in pairs])
    except (ValueError, IndexError, TypeError):
        raise ValueError(f"{what} must be a list of (x, y) pairs with x of {n_in} values") from None
    if x.shape[1] != n_in:
        raise ValueError(f"the network's input layer has {n_in} neurons but each x in {what} has {x.shape[1]} "
                         "values")
    labels = np.empty(len(pairs), dtype=np.int64)
    for i, (_, y) in enumerate(pairs):
        y = np.asarray(y)
        if y.size == 1 and y.ndim <= 1 and n_out != 1:
            labels[i] = int(y.reshape(-1)[0])
        elif y.size == n_out:
            labels[i] = int(np.argmax(y))
        else:
            raise ValueError(f"{what}: each y must be a label or a ({n_out}, 1) one-hot column, got shape {y.shape}")
    return x, labels
