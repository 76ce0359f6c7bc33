"""Backpropagation over a whole mini-batch at once: the forward pass (25) and BP1-BP4 (chapter 2).

This is the "fully matrix-based" backpropagation of the book's chapter 2
problem: the m examples of a mini-batch are the rows of one matrix, so each
layer is one matrix product instead of m matrix-vector products. With rows
as examples (the book uses columns), the four equations read:

    BP1  delta^L = dC/da^L * sigma'(z^L)                      shape (m, n_L)
    BP2  delta^l = (delta^{l+1} W^{l+1}) * sigma'(z^l)         shape (m, n_l)
    BP3  dC/db^l = sum over rows of delta^l                    shape (n_l,)
    BP4  dC/dW^l = delta^l.T a^{l-1}                           shape (n_l, n_{l-1})

Each layer keeps its weights and biases side by side in one parameter
matrix ``P = [W | b]`` of shape (n_l, n_{l-1} + 1), and each activation
buffer carries a trailing column of ones: ``[a | 1] P.T = a W.T + b``. So the
forward pass is one matrix product per layer, and BP3 and BP4 are the single
product ``delta.T [a | 1]``, the gradient of ``P``.

``Backprop`` owns preallocated buffers for one mini-batch size. Training
calls it thousands of times an epoch, and at the book's small sizes the time
goes to allocating temporaries and to per-call overhead, not to arithmetic;
reusing the buffers removes the allocations.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from nndl.arrays import FloatArray, FloatDType
from nndl.engine.activations import Activation
from nndl.engine.costs import Cost

__all__ = ["Backprop", "Network"]


class Network(Protocol):
    """What backpropagation needs of a network (``nndl.engine.feedforward.FeedforwardNetwork`` has it)."""

    sizes: list[int]
    dtype: FloatDType
    #: ``params[l-1] = [W | b]`` of layer l, shape (sizes[l], sizes[l-1] + 1).
    params: list[FloatArray]
    layers: list[Activation]
    cost: Cost


class Backprop:
    """Forward and backward passes for mini-batches of ``m`` examples.

    Parameters
    ----------
    net : FeedforwardNetwork
    m : int
        Number of examples in a mini-batch.

    Attributes
    ----------
    inputs : list of ndarray
        ``inputs[l]`` has shape (m, sizes[l] + 1): the activations a^l of
        layer l with a column of ones appended. ``inputs[0][:, :-1]`` is where
        the caller writes the mini-batch x, shape (m, sizes[0]).
    z : list of ndarray
        ``z[l]`` has shape (m, sizes[l]), the weighted inputs (``z[0]`` is None).
    delta : list of ndarray
        ``delta[l]`` has shape (m, sizes[l]), the errors dC/dz^l (``delta[0]`` is None).
    masks : list of ndarray or None
        Dropout masks for the hidden layers when dropout is in use, set by
        the trainer: ``masks[l]`` has shape (m, sizes[l]) with entries 0 (the
        neuron is dropped) or 1/(1-p) (inverted dropout), None for layers
        without dropout.
    """

    def __init__(self, net: Network, m: int) -> None:
        self.net = net
        self.m = m
        dtype = net.dtype
        self.inputs: list[FloatArray] = [np.ones((m, n + 1), dtype=dtype) for n in net.sizes]
        self.activations: list[FloatArray] = [a[:, :-1] for a in self.inputs]  # views without the ones column
        # The buffers of layers 1..L, at index l - 1 in these private lists; the attributes below put None
        # before them, for the input layer, so that they are indexed by l.
        self._z = [np.empty((m, n), dtype=dtype) for n in net.sizes[1:]]
        self._delta = [np.empty((m, n), dtype=dtype) for n in net.sizes[1:]]
        self._scratch = [np.empty((m, n), dtype=dtype) for n in net.sizes[1:]]
        self._unmasked = [np.empty((m, n), dtype=dtype) for n in net.sizes[1:]]
        self.z: list[FloatArray | None] = [None, *self._z]
        self.delta: list[FloatArray | None] = [None, *self._delta]
        self.scratch: list[FloatArray | None] = [None, *self._scratch]
        self.masks: list[FloatArray | None] | None = None
        self.unmasked: list[FloatArray | None] = [None, *self._unmasked]

        # The operands of each layer, gathered once, so that the passes below
        # are plain loops over tuples: they run thousands of times an epoch,
        # and at these sizes Python's overhead costs as much as the arithmetic.
        # They hold views of the network's parameter arrays, which training
        # updates in place and never replaces.
        L = len(net.sizes) - 1
        self._forward_steps = [(self.inputs[l - 1], net.params[l - 1].T, self._z[l - 1], self.activations[l],
                                net.layers[l - 1]) for l in range(1, L + 1)]
        self._backward_steps = [(self._delta[l], net.params[l][:, :-1], self._delta[l - 1], self._z[l - 1],
                                 self.activations[l], self._scratch[l - 1], net.layers[l - 1])
                                for l in range(L - 1, 0, -1)]
        #: Per layer, ([a | 1].T, delta.T, P.T): Fortran-ordered views for BLAS updates of P
        #: (see nndl.engine.optimizers).
        self.update_operands: list[tuple[FloatArray, FloatArray, FloatArray]] = [
            (self.inputs[l - 1].T, self._delta[l - 1].T, net.params[l - 1].T) for l in range(1, L + 1)]

    @property
    def x(self) -> FloatArray:
        """Where the mini-batch goes: a view of shape (m, sizes[0])."""
        return self.activations[0]

    @property
    def output(self) -> FloatArray:
        """The output activations a^L of the last forward pass, shape (m, sizes[-1])."""
        return self.activations[-1]

    def forward(self) -> FloatArray:
        """Feed ``self.x`` forward through the network, filling z and a."""
        if self.masks is None:
            for a_in, p_T, z, a_out, layer in self._forward_steps:
                np.matmul(a_in, p_T, out=z)        # z^l = [a^{l-1} | 1] P.T = a^{l-1} W.T + b   (m, n_l)
                layer.fn(z, out=a_out)             # a^l = sigma(z^l)                             (m, n_l)
            return self.activations[-1]
        return self._forward_with_dropout()

    def _forward_with_dropout(self) -> FloatArray:
        params, layers = self.net.params, self.net.layers
        inputs, act, masks = self.inputs, self.activations, self.masks
        for l in range(1, len(inputs)):
            z, unmasked = self._z[l - 1], self._unmasked[l - 1]       # z^l, sigma(z^l)
            np.matmul(inputs[l - 1], params[l - 1].T, out=z)         # z^l = a^{l-1} W.T + b   (m, n_l)
            mask = masks[l] if masks is not None else None
            if mask is not None:
                # dropout: keep sigma(z^l) for the backward pass, pass on sigma(z^l) * mask
                layers[l - 1].fn(z, out=unmasked)
                np.multiply(unmasked, mask, out=act[l])
            else:
                layers[l - 1].fn(z, out=act[l])                      # a^l = sigma(z^l)         (m, n_l)
        return act[-1]

    def backward(self, y: FloatArray) -> list[FloatArray | None]:
        """Compute delta^l for every layer from the desired outputs ``y``, shape (m, sizes[-1]).

        Uses the weights as they were in the forward pass: call it before
        changing any parameter.
        """
        params, layers = self.net.params, self.net.layers
        # Indexed l - 1 for layer l:
        z, delta, tmp, unmasked = self._z, self._delta, self._scratch, self._unmasked
        act, masks = self.activations, self.masks                                  # indexed l
        L = len(z)
        self.net.cost.delta(z[L - 1], act[L], y, layers[L - 1], tmp[L - 1], out=delta[L - 1])  # BP1  (m, n_L)
        if masks is None:
            for delta_next, w_next, d, z_l, a_l, tmp_l, layer in self._backward_steps:
                np.matmul(delta_next, w_next, out=d)                              # BP2      (m, n_l)
                layer.vjp(d, z_l, a_l, tmp_l)
            return self.delta
        for l in range(L - 1, 0, -1):
            d = delta[l - 1]
            np.matmul(delta[l], params[l][:, :-1], out=d)                         # BP2      (m, n_l)
            mask = masks[l]
            if mask is not None:
                d *= mask                                                         # dropped neurons pass no error
                layers[l - 1].vjp(d, z[l - 1], unmasked[l - 1], tmp[l - 1])
            else:
                layers[l - 1].vjp(d, z[l - 1], act[l], tmp[l - 1])
        return self.delta

    def gradient(self, l: int, out: FloatArray | None = None) -> FloatArray:
        """dC/dP for layer ``l`` (1-based), summed over the mini-batch (BP3 and BP4).

        Returns
        -------
        ndarray, shape (sizes[l], sizes[l-1] + 1)
            ``[:, :-1]`` is dC/dW^l and ``[:, -1]`` is dC/db^l.
        """
        delta = self.delta[l]
        if delta is None:
            raise ValueError("the input layer has no parameters: l counts from 1")
        return np.matmul(delta.T, self.inputs[l - 1], out=out)
