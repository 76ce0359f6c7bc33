"""The book's stochastic gradient descent for PyTorch: weight decay, then the step; or momentum.

``BookSGD`` is a ``torch.optim.Optimizer``, so its whole state (the learning
rate, the velocities) is its ``state_dict`` and a checkpoint saves that. For
a parameter p with gradient g = dC0/dp of the mini-batch's mean cost:

- plain SGD with L2 (chapter 3, eq. 93; network3's ``lmbda_scale``):
  ``w -> (1 - eta d) w - eta g`` on weights, ``b -> b - eta g`` on biases,
  with d = lambda / n (or / the number of mini-batches, as network3);
- with L1: ``w -> w - eta d sgn(w) - eta g``;
- with momentum mu > 0 (chapter 3): the penalty's gradient joins g,
  ``v -> mu v - eta (g + d w)``, ``p -> p + v``.

PyTorch's own ``SGD`` folds weight decay into the gradient and scales its
momentum buffer differently (``v -> mu v + g``, ``p -> p - eta v``); the
results differ in rounding and, once eta changes, in value: this class
keeps the book's form. Biases belong to a group with ``weight_decay`` 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nndl.deep._torch import torch

__all__ = ["BookSGD"]


class BookSGD(torch.optim.Optimizer):
    """Mini-batch SGD as the book writes it, with optional momentum and L2 or L1 weight decay.

    Parameters
    ----------
    params : iterable of tensors or of dicts (parameter groups)
        Give the weights and the biases as two groups, the biases with
        ``weight_decay=0``: ``[{"params": weights}, {"params": biases, "weight_decay": 0.0}]``.
    lr : float
        The learning rate eta.
    momentum : float
        The momentum co-efficient mu in [0, 1); 0 is plain SGD.
    weight_decay : float
        d = lambda / n (or lambda / number of mini-batches): the step multiplies
        weights by 1 - eta d (L2) or moves them eta d towards 0 (L1).
    regularization : {"l2", "l1"}

    Examples
    --------
    >>> opt = BookSGD([{"params": net.weights()}, {"params": net.biases(), "weight_decay": 0.0}],
    ...               lr=0.03, weight_decay=0.1 / 5000)                        # doctest: +SKIP
    >>> loss.backward(); opt.step(); opt.zero_grad()                            # doctest: +SKIP
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 regularization: str = "l2") -> None:
        if not lr > 0.0:
            raise ValueError(f"the learning rate must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"the momentum co-efficient must be in [0, 1), got {momentum}")
        if regularization not in ("l2", "l1"):
            raise ValueError(f"regularization must be 'l2' or 'l1', got {regularization!r}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "regularization": regularization}
        super().__init__(params, defaults)
        if momentum:
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update from the gradients in each parameter's ``.grad`` (with torch's optimizer hooks)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self.update()
        return loss

    def update(self) -> None:
        """The update itself: what ``step`` does, without torch's optimizer hooks and profiler labels.

        The engines call it every mini-batch, inside ``torch.no_grad()``: at
        the book's mini-batch of 10 a small network's step takes some 50 us,
        and the hooks' bookkeeping would add half as much again.
        """
        steps: list[tuple[float, list[torch.Tensor], list[torch.Tensor]]] = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            eta, mu, decay = group["lr"], group["momentum"], group["weight_decay"]
            l2 = group["regularization"] == "l2"
            if not mu:
                if decay and l2:
                    torch._foreach_mul_(params, 1.0 - eta * decay)                  # w -> (1 - eta d) w
                elif decay:
                    torch._foreach_add_(params, torch._foreach_sign(params), alpha=-eta * decay)
                steps.append((eta, params, grads))                                   # p -> p - eta g, below
                continue
            if decay:                                                                 # the penalty joins g
                grads = [g + decay * (p if l2 else p.sign()) for p, g in zip(params, grads)]
            velocities = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(velocities, mu)                                      # v -> mu v - eta g
            torch._foreach_add_(velocities, grads, alpha=-eta)
            torch._foreach_add_(params, velocities)                                  # p -> p + v
        if len({eta for eta, _, _ in steps}) == 1:                                   # one call for all groups
            torch._foreach_add_([p for _, ps, _ in steps for p in ps], [g for _, _, gs in steps for g in gs],
                                alpha=-steps[0][0])
        else:
            for eta, params, grads in steps:
                torch._foreach_add_(params, grads, alpha=-eta)

    @property
    def eta(self) -> float:
        """The learning rate of the first group (all groups share it)."""
        return float(self.param_groups[0]["lr"])

    @eta.setter
    def eta(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = value
