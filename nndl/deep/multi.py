"""Several convolutional networks of one architecture trained at once: the seeds of an experiment, an ensemble.

Chapter 6 trains the same network from several random starts (the seeds of a
result, the five members of its vote). At the book's mini-batch of 10 one
network's step is many small operations, each with a fixed cost of its own
(on a GPU, a kernel launch); K networks trained together go through one set
of operations K times as wide, paying those costs once. The arithmetic is
the same: where it dominates -- the book's larger networks on one CPU thread
-- training them together takes about as long as one at a time
(``benchmarks/bench_chapter6.py`` measures it), and what remains is one
process, one copy of the data and one checkpoint for the K of them.

``train_many`` gives the same numbers as K separate
``nndl.deep.train.train`` runs (up to the rounding of the batched
operations): each member keeps its own initial weights, its own two random
streams seeded exactly as ``TorchEngine`` seeds them (the order of the
examples from the seed, dropout masks from ``rank_seed(seed + 1, 0)``), its
own ``BookSGD`` (velocities and learning rate, so the halving schedule acts
per member), and ``nndl.training.fit`` keeps its own History, best epoch and
early stopping. A member that diverges stops alone; the others go on.

The batched computation, for K members and a mini-batch of m:

- parameters: each layer's weights and biases stacked, (K, ...) tensors --
  the source of truth while training. Member k's ConvNetwork parameters are
  views of its slice, so ``nets[k]`` always holds member k's weights (for
  measuring, for its optimiser, for saving).
- the mini-batch: in stored order (``shuffle=False``) every member takes the
  same one, gathered once, (m, c, h, w); shuffled, each member takes its own
  order, gathered into (m, K*c, h, w) (member k's images in channels
  k*c:(k+1)*c).
- conv-pool layers on maps (m, K*c, h, w): one convolution with
  ``groups=K`` -- or, for a first layer whose input all members share, one
  convolution with K*F filters -- then max-pooling and the activation on the
  (m, K*F, h', w') maps.
- fully connected and softmax layers on rows (K, m, n_in): one batched
  matrix product, ``baddbmm(b, a, W^T)`` -> (K, m, n_out), whose backward
  pass writes the weights' gradient in their own (K, n_out, n_in) layout
  (``_BatchedLinear``: autograd's would be its transpose, which the update
  then reads with a stride, several times slower).
- dropout: member k's masks are drawn from member k's generator, by the
  same calls with the same shapes its own forward pass makes, so they are
  the masks it would have had alone.
- the cost: the sum over the members of each one's mean log-likelihood, so
  that its gradient with respect to member k's parameters is member k's own
  gradient; then each member's ``BookSGD.step()``.

A member that has stopped takes no more part in the computation (its
parameters are not selected), and its random streams stay where they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F

from nndl.deep.device import fast_kernels
from nndl.deep.distributed import rank_seed
from nndl.deep.graphs import GraphedStep, check_cuda_graph
from nndl.deep.layers import ConvPool, Softmax, _AllTiesMaxPool, max_pool
from nndl.deep.optimizer import BookSGD
from nndl.deep.train import (
    BEST_ON_TIE,
    LAST_BATCH,
    _check_supported,
    _copy_state,
    _cpu,
    _finite,
    data_on_device,
    load_optimizer_state,
    measure_network,
)
from nndl.errors import ConfigError, ModelFileError
from nndl.files.lock import sole_writer
from nndl.training.config import TrainingConfig
from nndl.training.fit import PROGRESS_EVERY, Progress, check_weight_decay, fit
from nndl.training.history import History

__all__ = ["train_many", "MultiTorchEngine"]


def train_many(nets: Sequence[Any], training_data: Any, config: TrainingConfig, *, seeds: Sequence[int],
               validation_data: Any = None, test_data: Any = None, progress: bool = False,
               on_epoch: Callable[[History], None] | None = None, checkpoint: str | None = None,
               checkpoint_metadata: dict[str, Any] | None = None, resume: dict[str, Any] | None = None,
               augmentation: Any = None, world: Any = None, cuda_graph: bool = False) -> list[History]:
    """Train K ConvNetworks of one architecture together, each as ``nndl.deep.train.train`` would alone.

    Parameters
    ----------
    nets : sequence of K ConvNetwork
        One architecture, one device; each built with its own initial
        weights (``ConvNetwork(config, seed=seeds[k])`` to match a separate
        run). Trained in place: afterwards ``nets[k]`` holds member k's
        weights (its best epoch's where the config restores the best).
    training_data, validation_data, test_data : (images, labels) or splits
        As for ``train``; moved to the networks' device once, shared by all.
    config : TrainingConfig
        The settings of every member; member k's seed is ``seeds[k]``
        (``config.seed`` is not used).
    seeds : sequence of K distinct whole numbers
        Member k's order of the examples and dropout masks, as ``train``
        draws them from ``config.seed``.
    progress, on_epoch
        As for ``train``; ``on_epoch(history)`` is called for each member
        after each of its epochs (``history.config.seed`` tells which).
    checkpoint : str, optional
        One file for all K members, written atomically after every epoch.
    checkpoint_metadata : dict, optional
    resume : dict, optional
        The training state of ``nndl.deep.checkpoint.load_members_checkpoint``,
        with ``nets`` the networks it returned and the same seeds in the same
        order. A member that had stopped stays stopped.
    augmentation, world
        Not supported with several networks at once yet: refused unless None
        (or an augmentation that changes nothing).
    cuda_graph : bool
        Replay the step of all K members from a CUDA graph (as ``train``'s
        ``cuda_graph``); while some members have stopped, the others train
        eagerly. Needs networks on a CUDA device.

    Returns
    -------
    list of History
        One per member, in the order of ``nets``.
    """
    nets, seeds = list(nets), list(seeds)
    config = config.with_conventions(LAST_BATCH, BEST_ON_TIE)
    _check_supported(config)
    _check_members(nets, seeds, augmentation, world)
    if resume is not None:
        _check_resume(resume, seeds)
    first = nets[0]
    (x, y), validation, test = data_on_device(first, training_data, validation_data, test_data)
    monitor = config.monitors(validation is not None)
    if cuda_graph:
        check_cuda_graph(first.device)
    engine = MultiTorchEngine(nets, (x, y), config, seeds, validation, test, cuda_graph=cuda_graph)
    histories = [History(config=member_config, network=first.config, n_training=x.shape[0],
                         n_evaluation=0 if validation is None else validation[0].shape[0],
                         n_test=0 if test is None else test[0].shape[0]) for member_config in engine.configs]
    try:
        with fast_kernels(first.device, engine.m):
            return fit(engine, config, histories, monitor=monitor, progress=progress, on_epoch=on_epoch,
                       checkpoint=checkpoint, checkpoint_metadata=checkpoint_metadata, resume=resume)
    finally:
        engine.close()


def _check_members(nets: list[Any], seeds: list[Any], augmentation: Any, world: Any) -> None:
    """Refuse, in one line each, what several networks at once cannot do."""
    from nndl.deep.network import ConvNetwork
    if not nets:
        raise ConfigError("training several networks at once needs at least one network, got none")
    if len(seeds) != len(nets):
        raise ConfigError(f"each network needs its own seed: {len(nets)} networks, {len(seeds)} seeds")
    for i, net in enumerate(nets):
        if not isinstance(net, ConvNetwork):
            raise ConfigError(f"network {i} is a {type(net).__name__}, not a ConvNetwork")
        if net.config != nets[0].config:
            raise ConfigError("networks trained together must share one architecture: network "
                              f"{i} is {net.config.describe()}, network 0 {nets[0].config.describe()}")
        if net.device != nets[0].device:
            raise ConfigError(f"networks trained together must be on one device: network {i} is on {net.device}, "
                              f"network 0 on {nets[0].device}")
        same = next((j for j in range(i) if nets[j] is net), None)
        if same is not None:
            raise ConfigError(f"networks {same} and {i} are the same object; each member needs a ConvNetwork of its "
                              "own")
    repeated = next((s for i, s in enumerate(seeds) if s in seeds[:i]), None)
    if repeated is not None:
        raise ConfigError(f"seed {repeated!r} is given twice: members with one seed would be the same run")
    if augmentation is not None and getattr(augmentation, "active", True):
        raise ConfigError("augmentation is not supported with several networks at once yet; train them one at a "
                          "time with nndl.deep.train.train")
    if world is not None:
        raise ConfigError("several networks at once cannot train across processes (world) yet; train them on one "
                          "process, or one at a time with nndl.deep.train.train")


def _check_resume(state: dict[str, Any], seeds: list[int]) -> None:
    """Refuse a checkpoint of another number of networks before anything else is compared."""
    saved = state.get("members") if isinstance(state, dict) else None
    if not isinstance(saved, list):
        raise ConfigError("the checkpoint is of one network trained alone; resume it with nndl.deep.train.train")
    if len(saved) != len(seeds):
        before = state.get("seeds")
        which = f" (seeds {', '.join(map(str, before))})" if isinstance(before, list) else ""
        raise ConfigError(f"the checkpoint holds {len(saved)} networks trained together{which}, but {len(seeds)} "
                          f"are given (seeds {', '.join(map(str, seeds))}); resume with the checkpoint's networks "
                          "and seeds")


class _BatchedLinear(torch.autograd.Function):
    """z = a W^T + b for K members at once: a (K, m, n_in), W (K, n_out, n_in), b (K, n_out) -> z (K, m, n_out).

    ``torch.baddbmm`` with autograd's own backward returns the gradient of W
    as the transpose of a (K, n_in, n_out) tensor; this one computes it as
    (K, n_out, m) @ (K, m, n_in), already in W's layout.
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, w)
        return torch.baddbmm(b.unsqueeze(1), a, w.transpose(1, 2))                      # (K, m, n_out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        a, w = ctx.saved_tensors
        grad_a = torch.bmm(grad, w) if ctx.needs_input_grad[0] else None                 # (K, m, n_in)
        grad_w = torch.bmm(grad.transpose(1, 2).contiguous(), a)                         # (K, n_out, n_in)
        return grad_a, grad_w, grad.sum(dim=1)                                           # ..., (K, n_out)


def _drop(x: torch.Tensor, mask: torch.Tensor, p: float, style: str) -> torch.Tensor:
    """Dropout of the inputs x with mask (broadcast to one shape), as ``_Layer.drop`` computes it in training."""
    return x * mask if style == "book" else x * mask / (1.0 - p)


class MultiTorchEngine:
    """K ConvNetworks of one architecture on one device, trained together: the engine ``fit`` drives.

    Parameters
    ----------
    nets : sequence of K ConvNetwork
        Their parameters become views of the engine's stacked (K, ...)
        tensors until ``close``.
    training : (images (n, c, h, w), labels (n,)) on the networks' device
    config : TrainingConfig
        With the conventions resolved (``with_conventions``).
    seeds : sequence of K distinct ints
    validation, test : (images, labels), optional
    cuda_graph : bool
        Replay the step of all K members from a CUDA graph (``nndl.deep.graphs``).

    Attributes
    ----------
    members : int
        K.
    configs : list of TrainingConfig
        ``config`` with member k's seed.
    """

    divergence = "the cost"

    def __init__(self, nets: Sequence[Any], training: tuple[torch.Tensor, torch.Tensor], config: TrainingConfig,
                 seeds: Sequence[int], validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                 test: tuple[torch.Tensor, torch.Tensor] | None = None, cuda_graph: bool = False) -> None:
        nets, seeds = list(nets), list(seeds)
        _check_members(nets, seeds, None, None)
        _check_supported(config)
        self.configs = [config.replace(seed=seed) for seed in seeds]    # checks each seed
        x, y = training
        n, m = x.shape[0], config.mini_batch_size
        if config.last_batch == "drop" and m > n:
            raise ConfigError(f"the mini-batch size {m} is larger than the {n} training images")
        m = min(m, n)
        divisor = config.lmbda_divisor(n)
        check_weight_decay(config, divisor)
        self.members, self.nets, self.seeds, self.config = len(nets), nets, [int(s) for s in seeds], config
        self.x, self.y, self.validation, self.test, self.n, self.m = x, y, validation, test, n, m
        self.divisor = divisor
        self.num_batches = n // m if config.last_batch == "drop" else -(-n // m)
        self.images_per_epoch = min(n, self.num_batches * m)
        device = nets[0].device
        self.layers = list(nets[0].layers)           # shapes, dropout, activations: the same for every member
        self.shapes = [in_shape for in_shape, _ in nets[0].config.shapes()]
        self.style = nets[0].config.dropout
        # Each member's two streams, seeded as TorchEngine seeds a single network's.
        self.shuffle_rngs = [torch.Generator().manual_seed(seed) for seed in self.seeds]
        self.dropout_rngs = [torch.Generator(device=device).manual_seed(rank_seed(seed + 1, 0)) for seed in self.seeds]
        # The stacked parameters, in the order of net.parameters(): weight (K, ...), bias (K, ...) per layer.
        self.member_params = [list(net.parameters()) for net in nets]
        self.stacked = [torch.stack([params[j].detach() for params in self.member_params]).requires_grad_()
                        for j in range(len(self.member_params[0]))]
        with torch.no_grad():
            for k, params in enumerate(self.member_params):
                for p, stacked in zip(params, self.stacked):
                    p.data = stacked.detach()[k]     # a view: nets[k] sees every update
        self.optimizers = []
        for net in nets:
            weights = net.weights()
            biases = [p for p in net.parameters() if not any(p is w for w in weights)]
            self.optimizers.append(BookSGD([{"params": weights}, {"params": biases, "weight_decay": 0.0}],
                                           lr=config.eta, momentum=config.momentum,
                                           weight_decay=config.lmbda / divisor,
                                           regularization=config.regularization))
        everyone = list(range(self.members))
        self.graphed = GraphedStep(lambda xb, yb: self.step(xb, yb, everyone), device,
                                   self.dropout_rngs) if cuda_graph else None
        self.closed = False

    # --- the epoch -------------------------------------------------------------------------------

    def run_epoch(self, epoch: int, active: Sequence[bool], progress: Progress) -> list[bool]:
        """One pass over the training data for the active members; False for a member whose cost became inf or nan.

        As ``TorchEngine`` does, the cost is looked at every PROGRESS_EVERY
        mini-batches; a member whose cost is not finite there takes no
        further step, and the others finish the epoch.
        """
        ok = [True] * self.members
        idx = [k for k in range(self.members) if active[k]]
        if not idx:
            return ok
        m, x, y = self.m, self.x, self.y
        c, h, w = x.shape[1:]
        orders = None
        if self.config.shuffle:                      # each member's own order, drawn as train() draws it
            orders = torch.stack([torch.randperm(self.n, generator=self.shuffle_rngs[k]).to(x.device)
                                  for k in idx])                                         # (K, n)
        for chunk in range(0, self.num_batches, PROGRESS_EVERY):
            for j in range(chunk, min(chunk + PROGRESS_EVERY, self.num_batches)):
                if orders is None:                   # stored order: one mini-batch for all members
                    xb, yb = x[j * m:(j + 1) * m], y[j * m:(j + 1) * m]                  # (m, c, h, w), (m,)
                else:
                    batch = orders[:, j * m:(j + 1) * m]                                 # (K, m)
                    # Example i of every member side by side: (m*K, c, h, w) is (m, K*c, h, w).
                    xb = x[batch.t().reshape(-1)].view(batch.shape[1], len(idx) * c, h, w)
                    yb = y[batch]                                                        # (K, m)
                if self.graphed is not None and len(idx) == self.members:
                    costs = self.graphed(tuple(o.eta for o in self.optimizers), xb, yb)
                else:
                    costs = self.step(xb, yb, idx)                                       # (K,)
            finite = torch.isfinite(costs).tolist()
            if not all(finite):                      # those members stop here; the others finish the epoch
                for k, good in zip(idx, finite):
                    ok[k] = good
                keep = [j for j, good in enumerate(finite) if good]
                if not keep:
                    return ok
                idx = [idx[j] for j in keep]
                if orders is not None:
                    orders = orders[keep]
            progress(min(min(PROGRESS_EVERY, self.num_batches - chunk) * m, self.images_per_epoch - chunk * m))
        return ok

    def step(self, xb: torch.Tensor, yb: torch.Tensor, idx: Sequence[int]) -> torch.Tensor:
        """One step of gradient descent for the members ``idx`` (K of them); returns each one's cost C0, (K,).

        xb: (m, c, h, w) shared by all, with yb (m,); or (m, K*c, h, w) with
        yb (K, m), member idx[j]'s images in channels j*c:(j+1)*c.
        """
        if len(idx) == self.members:
            params = self.stacked
        else:                                        # the members still training; a differentiable selection
            chosen = torch.tensor(idx, device=self.x.device)
            params = [p.index_select(0, chosen) for p in self.stacked]
        logp = self.forward(xb, params, idx)                                             # (K, m, n_out)
        labels = yb.expand(len(idx), -1) if yb.dim() == 1 else yb                        # (K, m)
        costs = -logp.gather(2, labels.unsqueeze(2)).squeeze(2).mean(dim=1)              # (K,)
        grads = torch.autograd.grad(costs.sum(), params)     # member k's part: the gradient of its own cost
        with torch.no_grad():
            for j, k in enumerate(idx):
                for p, g in zip(self.member_params[k], grads):
                    p.grad = g[j]
                self.optimizers[k].update()              # BookSGD.step without torch's hooks (see there)
        return costs.detach()

    def forward(self, xb: torch.Tensor, params: Sequence[torch.Tensor], idx: Sequence[int]) -> torch.Tensor:
        """Log-probabilities (K, m, n_out) of the members ``idx`` in training mode, drawing their dropout masks.

        ``params``: weight, bias of each layer, stacked for those members.
        The activations take one of three layouts: "shared" (m, c, h, w) or
        (m, n), the same input for all; "maps" (m, K*c, h, w); "rows" (K, m, n).
        """
        K, m = len(idx), xb.shape[0]
        a, layout = xb, "shared" if xb.shape[1] == self.shapes[0][0] else "maps"   # (for K = 1 they are one)
        for layer, in_shape, w, b in zip(self.layers, self.shapes, params[0::2], params[1::2]):
            p = layer.p_dropout
            if isinstance(layer, ConvPool):
                c, h, width = in_shape
                if p:                                # each member's own input from here on
                    masks = torch.stack(self._masks(idx, (m, c, h, width), a, p), dim=1)    # (m, K, c, h, w)
                    a5 = a.unsqueeze(1) if layout == "shared" else a.view(m, K, c, h, width)  # (m, 1 or K, c, h, w)
                    a, layout = _drop(a5, masks, p, self.style).reshape(m, K * c, h, width), "maps"
                filters = w.shape[1]
                z = F.conv2d(a, w.reshape(K * filters, *w.shape[2:]), b.reshape(K * filters),
                             groups=1 if layout == "shared" else K)                    # (m, K*F, h - fh + 1, ...)
                if layer.pool_gradient == "all-ties":
                    a = layer.fn(_AllTiesMaxPool.apply(z, *layer.pool))
                else:
                    a = layer.fn(max_pool(z, layer.pool))                               # (m, K*F, out_h, out_w)
                layout = "maps"
                continue
            n_in, n_out = math.prod(in_shape), w.shape[1]
            if layout == "maps":
                a, layout = a.reshape(m, K, n_in).transpose(0, 1), "rows"               # (K, m, n_in)
            elif layout == "shared":
                a = a.reshape(m, n_in)                                                  # (m, n_in)
            if p:                                    # masks drawn (m, n_in), as the layer alone draws them
                masks = torch.stack(self._masks(idx, (m, n_in), a, p))                  # (K, m, n_in)
                a, layout = _drop(a, masks, p, self.style), "rows"                      # (K, m, n_in)
            if layout == "shared":                   # one product with the K members' weights side by side
                z = F.linear(a, w.reshape(K * n_out, n_in), b.reshape(K * n_out))       # (m, K*n_out)
                z = z.view(m, K, n_out).transpose(0, 1)                                 # (K, m, n_out)
            else:
                z = _BatchedLinear.apply(a, w, b)                                       # (K, m, n_out)
            layout = "rows"
            a = F.log_softmax(z, dim=2) if isinstance(layer, Softmax) else layer.fn(z)
        return a

    def _masks(self, idx: Sequence[int], shape: tuple[int, ...], like: torch.Tensor, p: float) -> list[torch.Tensor]:
        """Member k's dropout mask of ``shape`` for each k in ``idx``: the very call its own forward makes."""
        return [torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p,
                                                                                     generator=self.dropout_rngs[k])
                for k in idx]

    # --- what fit asks between epochs -----------------------------------------------------------

    def finite(self, i: int) -> bool:
        return _finite(self.nets[i])

    def measure(self, i: int, monitor: Sequence[str]) -> dict[str, float]:
        """Member i's monitored costs and accuracies and its test accuracy, measured on ``nets[i]``."""
        return measure_network(self.nets[i], self.config, self.divisor, monitor, (self.x, self.y), self.validation,
                               self.test)

    def copy_params(self, i: int) -> dict[str, torch.Tensor]:
        return _copy_state(self.nets[i])

    def restore_params(self, i: int, params: dict[str, torch.Tensor]) -> None:
        self.nets[i].load_state_dict(params)         # copies into the views: the stacked tensors change too

    def params_from_state(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: t.to(self.nets[0].device) for name, t in params.items()}

    def get_eta(self, i: int) -> float:
        return self.optimizers[i].eta

    def set_eta(self, i: int, eta: float) -> None:
        self.optimizers[i].eta = eta

    def network_config(self) -> Any:
        return self.nets[0].config

    def saturation(self, i: int) -> float | None:
        return None

    def close(self) -> None:
        """Give every network its own parameters again (a copy of its slice): after training they stand alone."""
        if self.closed:
            return
        with torch.no_grad():
            for params in self.member_params:
                for p in params:
                    p.data = p.data.clone()
        self.closed = True

    # --- checkpoints -----------------------------------------------------------------------------

    def write_checkpoint(self, path: str, state: dict[str, Any], metadata: dict[str, Any] | None) -> None:
        """Write fit's state, every member's parameters, optimiser and generators to one members checkpoint."""
        from nndl.deep.checkpoint import save_members_checkpoint
        members = [{"eta": float(opt.eta), "optimizer": _cpu(opt.state_dict()), "shuffle_rng": shuffle.get_state(),
                    "dropout_rng": dropout.get_state().cpu()}
                   for opt, shuffle, dropout in zip(self.optimizers, self.shuffle_rngs, self.dropout_rngs)]
        state = {**state, "seeds": list(self.seeds), "members": members}
        cpu = lambda best: None if best is None else {name: t.cpu() for name, t in best.items()}  # noqa: E731
        if "bests" in state:
            state["bests"] = [cpu(best) for best in state["bests"]]
        if "best" in state:
            state["best"] = cpu(state["best"])
        save_members_checkpoint(path, self.nets, state, metadata)

    def hold_checkpoint(self, path: str) -> AbstractContextManager[None]:
        return sole_writer(path)

    def load_state(self, state: dict[str, Any]) -> None:
        """Every member's optimiser (learning rate, velocities) and random generators from a members checkpoint."""
        saved = state.get("members")
        if not isinstance(saved, list) or len(saved) != self.members or not all(isinstance(s, dict) for s in saved):
            raise ModelFileError("the checkpoint's training state does not hold one entry per network "
                                 f"({self.members})")
        for k, member in enumerate(saved):
            try:
                eta = float(member["eta"])
                self.shuffle_rngs[k].set_state(member["shuffle_rng"])
                self.dropout_rngs[k].set_state(member["dropout_rng"].cpu())
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
                raise ModelFileError(f"the checkpoint's training state of network {k} is incomplete or damaged "
                                     f"({e})") from None
            load_optimizer_state(self.optimizers[k], member, self.member_params[k], self.config.momentum)
            self.optimizers[k].eta = eta
