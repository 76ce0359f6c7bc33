"""The PyTorch engine: a ConvNetwork trained by mini-batch SGD, as network3 does or better.

Each epoch takes ``n // m`` mini-batches of m images (the book's
``num_training_batches``; the last n mod m images are left out of that
epoch) -- in stored order, as network3 does, or shuffled afresh each epoch
(``TrainingConfig.shuffle``, nndl's default). Each mini-batch is one step of
the book's update, on every weight w and bias b:

    w -> (1 - eta lambda / d) w - eta dC0/dw,     b -> b - eta dC0/db,

the gradient of C = C0 + (lambda / 2d) sum w^2 with C0 the mean
log-likelihood of the mini-batch and d the number of mini-batches per epoch
(network3's scaling, ``lmbda_scale="batches"``) or n (network2's). With
momentum mu > 0: v -> mu v - eta dC/dp, p -> p + v, as in chapter 3. The
update is ``nndl.deep.optimizer.BookSGD``; the epochs, measurements, best
epoch, schedule and checkpoints are the one loop ``nndl.training.fit``.

After each epoch the validation accuracy decides the best epoch -- an
accuracy equal to the best so far counts as a new best, as in network3
(``best_on_tie``), and the last n mod m images are left out of each epoch
(``last_batch="drop"``), unless the TrainingConfig says otherwise --
and the test accuracy at that epoch is the result chapter 6 reports. The run
is recorded in a ``History`` (``evaluation_accuracy`` is the validation
accuracy, ``test_accuracy`` the test accuracy); the halve-on-plateau schedule
and early stopping work as in chapter 3. With ``checkpoint`` the complete
state -- weights, velocities, random generators, History -- is written
atomically after every epoch, and ``resume`` continues from such a state to
exactly the result of an uninterrupted run.

With ``world`` (a ``nndl.deep.distributed.World``, from a torchrun launch)
the same loop runs on every process: each takes its share of every
mini-batch, the gradients are added up across processes before the update,
and rank 0 alone writes the checkpoint. The module ``nndl.deep.distributed``
says why that is the same run as one process with the same mini-batch.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from nndl.deep._torch import F, torch
from nndl.deep.data import as_tensors
from nndl.deep.device import fast_kernels
from nndl.deep.distributed import rank_seed, shard_sizes
from nndl.deep.graphs import GraphedStep, check_cuda_graph
from nndl.deep.optimizer import BookSGD
from nndl.errors import ConfigError, ModelFileError, OutputError
from nndl.files.lock import sole_writer
from nndl.training.config import TrainingConfig, resolve_training_config
from nndl.training.fit import PROGRESS_EVERY, Progress, check_weight_decay, fit
from nndl.training.history import History

__all__ = ["train", "TorchEngine", "PROGRESS_EVERY"]

#: network3's conventions: the last partial mini-batch is left out, and a tie is a new best epoch.
LAST_BATCH, BEST_ON_TIE = "drop", True


def train(net: Any, training_data: Any, config: TrainingConfig | None = None, *, validation_data: Any = None,
          test_data: Any = None, augmentation: Any = None, progress: bool = False, on_epoch: Any = None,
          checkpoint: str | None = None, checkpoint_metadata: dict[str, Any] | None = None,
          resume: dict[str, Any] | None = None, world: Any = None, autocast: str | None = None,
          cuda_graph: bool = False, **settings: Any) -> History:
    """Train ``net`` (a ConvNetwork) on its device.

    Parameters
    ----------
    net : ConvNetwork
    training_data, validation_data, test_data : (images, labels) or splits
        Images (n, 784) or (n, 1, 28, 28), NumPy or torch; labels (n,).
        They are moved to the network's device once.
    config : TrainingConfig, optional
        Keyword ``settings`` build one or change it. ``p_dropout`` must be 0
        (dropout is a setting of each layer here) and ``nesterov`` off.
    augmentation : nndl.deep.augment.Augmentation, optional
        Applied afresh to the whole training set at the start of every epoch.
    progress : bool
        A progress bar per epoch on stderr.
    on_epoch : callable, optional
        ``on_epoch(history)`` after each epoch is recorded.
    checkpoint : str, optional
        Write the complete training state here after every epoch (atomically).
    resume : dict, optional
        A training state from ``nndl.deep.checkpoint.load_checkpoint``: go on
        from its last epoch. The config may differ only in ``epochs``.
    world : nndl.deep.distributed.World, optional
        Train data-parallel as one of ``world.world_size`` processes (every
        one calls ``train`` with the same arguments): ``mini_batch_size``
        is the global mini-batch, shared out between the processes; rank
        0's parameters are given to all at the start; only rank 0 writes
        ``checkpoint`` (``progress`` and ``on_epoch`` are the caller's to
        give to rank 0 alone). Validation and test accuracy are measured on
        a share per process and added up.
    autocast : {None, "bfloat16"}
        "bfloat16": each training step's forward pass runs under
        ``torch.autocast`` in bfloat16 (convolutions and matrix products in
        bfloat16, the parameters, their gradients and the update in the
        network's float32; the cost in float32). Measuring after each epoch
        stays in float32. Where the hardware has fast bfloat16 arithmetic it
        trains faster; ``benchmarks/bench_precision.py`` measures whether it
        does, and whether it learns as well.
    cuda_graph : bool
        Capture the training step once in a CUDA graph and replay it for
        every mini-batch (``nndl.deep.graphs``): the same arithmetic, many
        times faster at small mini-batches, where launching the GPU's
        kernels costs more than running them. Needs a network on a CUDA
        device; not with ``world`` or ``autocast``.

    Returns
    -------
    History
        ``stop_reason``: "completed", "early stopping", "learning-rate
        schedule", "diverged" (the weights of the last good epoch are kept)
        or "interrupted" (Ctrl-C, between two mini-batches).
    """
    config = resolve_training_config(config, settings).with_conventions(LAST_BATCH, BEST_ON_TIE)
    _check_supported(config)
    (x, y), validation, test = data_on_device(net, training_data, validation_data, test_data)
    monitor = config.monitors(validation is not None)
    if cuda_graph:
        check_cuda_graph(net.device)
    engine = TorchEngine(net, (x, y), config, validation, test, augmentation=augmentation, world=world,
                         autocast=autocast, cuda_graph=cuda_graph)
    history = History(config=config, network=net.config, n_training=x.shape[0],
                      n_evaluation=0 if validation is None else validation[0].shape[0],
                      n_test=0 if test is None else test[0].shape[0])
    with fast_kernels(net.device, engine.m_local):
        [history] = fit(engine, config, [history], monitor=monitor, progress=progress, on_epoch=on_epoch,
                        checkpoint=checkpoint, checkpoint_metadata=checkpoint_metadata, resume=resume)
    return history


Pair = tuple[torch.Tensor, torch.Tensor]

#: The choices of ``train``'s ``autocast``: none, or the forward passes of training in bfloat16.
AUTOCAST = (None, "bfloat16")


def data_on_device(net: Any, training_data: Any, validation_data: Any = None,
                   test_data: Any = None) -> tuple[Pair, Pair | None, Pair | None]:
    """The training, validation and test data checked once, as (images, labels) tensors on ``net``'s device.

    Images (n, c, h, w) in ``net``'s dtype, labels (n,) int64; None stays None.
    """
    shape, k, device, dtype = net.config.input_shape, net.config.n_outputs, net.device, net.dtype
    training = as_tensors(training_data, shape, k, device, dtype, "training data")
    validation = None if validation_data is None else as_tensors(validation_data, shape, k, device, dtype,
                                                                  "validation data")
    test = None if test_data is None else as_tensors(test_data, shape, k, device, dtype, "test data")
    return training, validation, test


def _check_supported(config: TrainingConfig) -> None:
    if config.p_dropout:
        raise ConfigError("dropout is set per layer in a convolutional network (p_dropout of a layer), not in the "
                          "training settings")
    if config.nesterov:
        raise ConfigError("Nesterov's momentum is not available for convolutional networks; use momentum")


def _copy_state(net: Any) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in net.state_dict().items()}


def _finite(net: Any) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in net.parameters())


def _measure_split(net: Any, data: tuple[torch.Tensor, torch.Tensor], world: Any) -> tuple[float, float]:
    """(accuracy, mean cost) of ``net`` on (images, labels); with ``world``, each rank measures a share."""
    if world is None:
        return net.measure(*data)
    images, labels = data
    n = images.shape[0]
    lo, hi = n * world.rank // world.world_size, n * (world.rank + 1) // world.world_size
    accuracy, cost = net.measure(images[lo:hi], labels[lo:hi]) if hi > lo else (0.0, 0.0)
    correct, total, count = world.all_reduce_sum([round(accuracy * (hi - lo)), cost * (hi - lo), hi - lo],
                                                 "adding up the accuracy measured by each process").tolist()
    return correct / max(1, count), total / max(1, count)


def measure_network(net: Any, config: TrainingConfig, divisor: float, monitor: Sequence[str],
                    training: tuple[torch.Tensor, torch.Tensor],
                    validation: tuple[torch.Tensor, torch.Tensor] | None,
                    test: tuple[torch.Tensor, torch.Tensor] | None, world: Any = None) -> dict[str, float]:
    """``net``'s monitored costs (with the L2 or L1 term, lambda / ``divisor``) and accuracies, and its test accuracy.

    What ``fit`` records after an epoch, by name; the engine of one network
    and the engine of several networks at once both measure with it.
    """
    measured: dict[str, float] = {}
    penalty = 0.0
    if any(name.endswith("cost") for name in monitor) and config.lmbda:
        with torch.no_grad():
            weights = net.weights()
            if config.regularization == "l2":
                penalty = 0.5 * config.lmbda / divisor * float(sum((w * w).sum() for w in weights))
            else:
                penalty = config.lmbda / divisor * float(sum(w.abs().sum() for w in weights))
    for prefix, data in (("training", training), ("evaluation", validation)):
        if f"{prefix}_accuracy" in monitor or f"{prefix}_cost" in monitor:
            assert data is not None
            accuracy, cost = _measure_split(net, data, world)
            if f"{prefix}_accuracy" in monitor:
                measured[f"{prefix}_accuracy"] = accuracy
            if f"{prefix}_cost" in monitor:
                measured[f"{prefix}_cost"] = cost + penalty
    if test is not None:
        measured["test_accuracy"] = _measure_split(net, test, world)[0]
    return measured


def load_optimizer_state(optimizer: BookSGD, state: dict[str, Any], params: Sequence[torch.Tensor],
                         momentum: float) -> None:
    """Put a checkpoint's optimiser state into ``optimizer`` (its learning rate is set apart), refusing a misfit.

    ``state`` holds BookSGD's ``state_dict`` under "optimizer", or, in a
    checkpoint of nndl 0.1, the velocities saved by hand under "velocities".
    """
    if "optimizer" in state:
        saved = state["optimizer"]
        if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) \
                or not isinstance(saved.get("param_groups"), list):
            raise ModelFileError("the checkpoint's optimiser state is damaged (not a state_dict with \"state\" and "
                                 "\"param_groups\")")
        by_index: dict[Any, torch.Tensor] = {}           # the state_dict's parameter numbers -> this run's tensors
        for saved_group, group in zip(saved["param_groups"], optimizer.param_groups):
            indices = saved_group.get("params") if isinstance(saved_group, dict) else None
            if isinstance(indices, list):
                by_index.update(zip(indices, group["params"]))
        for index, entry in saved["state"].items():
            buffer = entry.get("momentum_buffer") if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or (buffer is not None and not isinstance(buffer, torch.Tensor)):
                raise ModelFileError(f"the checkpoint's optimiser state for parameter {index} is damaged")
            param = by_index.get(index)
            if param is not None and buffer is not None:
                if tuple(buffer.shape) != tuple(param.shape):
                    raise ModelFileError(f"the checkpoint's velocity of parameter {index} has shape "
                                         f"{tuple(buffer.shape)}, but the network needs {tuple(param.shape)}")
                if not buffer.is_floating_point():        # (inf or nan is legal: a member that diverged keeps them)
                    raise ModelFileError(f"the checkpoint's velocity of parameter {index} does not hold "
                                         "floating-point numbers: its training state is damaged")
        try:
            optimizer.load_state_dict(saved)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            raise ModelFileError(f"the checkpoint's optimiser state does not fit this run ({e})") from None
        for group in optimizer.param_groups:
            for p in group["params"]:
                buffer = optimizer.state.get(p, {}).get("momentum_buffer")
                if momentum and (buffer is None or buffer.shape != p.shape):
                    raise ModelFileError("the checkpoint has no velocities for this momentum run")
    elif momentum:                                       # a checkpoint of nndl 0.1: velocities saved by hand
        velocities = state.get("velocities")
        if not isinstance(velocities, list) or len(velocities) != len(params) or any(
                not isinstance(v, torch.Tensor) or v.shape != p.shape for v, p in zip(velocities, params)):
            raise ModelFileError("the checkpoint has no velocities for this momentum run")
        for v, p in zip(velocities, params):
            optimizer.state[p]["momentum_buffer"] = v.to(p.device, p.dtype)


class TorchEngine:
    """One ConvNetwork on its device: the engine ``fit`` drives for chapter 6.

    Holds the optimiser (``BookSGD``), the two random streams (the order of
    the examples, on the CPU; dropout masks and augmentation, on the device)
    and the data. Under ``world``, this rank's part of each global
    mini-batch of m is the images ``lo:hi`` of it (``m_local`` = hi - lo of
    them), and its gradient counts with the weight ``share`` = m_local / m.
    With ``cuda_graph`` each step is replayed from a CUDA graph
    (``nndl.deep.graphs``); on a CPU the same path runs uncaptured.
    """

    members = 1
    divergence = "the cost"

    def __init__(self, net: Any, training: tuple[torch.Tensor, torch.Tensor], config: TrainingConfig,
                 validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                 test: tuple[torch.Tensor, torch.Tensor] | None = None, *, augmentation: Any = None,
                 world: Any = None, autocast: str | None = None, cuda_graph: bool = False) -> None:
        x, y = training
        if autocast not in AUTOCAST:
            raise ConfigError(f"autocast must be one of {', '.join(map(str, AUTOCAST))}, got {autocast!r}")
        if cuda_graph and world is not None:
            raise ConfigError("CUDA graphs are not available across processes (torchrun): train without them")
        if cuda_graph and autocast is not None:
            raise ConfigError("CUDA graphs and autocast do not go together yet: choose one of them")
        if autocast is not None and net.dtype != torch.float32:
            raise ConfigError(f"autocast to {autocast} needs a float32 network, not {net.config.dtype}")
        self.autocast = autocast
        n, m = x.shape[0], config.mini_batch_size
        if config.last_batch == "drop" and m > n:
            raise ConfigError(f"the mini-batch size {m} is larger than the {n} training images")
        if config.last_batch == "train" and world is not None and n % m:
            raise ConfigError("training the last partial mini-batch (last_batch 'train') is not available across "
                              f"processes: {n} images are not a whole number of mini-batches of {m}")
        m = min(m, n)                  # (with last_batch "train": a mini-batch larger than the data is all of it)
        divisor = config.lmbda_divisor(n)
        check_weight_decay(config, divisor)
        if world is not None:
            shard_sizes(m, world.world_size)                 # refuses m < N before any message is sent
            world.broadcast_parameters(net)
        self.net, self.config, self.n, self.world = net, config, n, world
        self.x, self.y, self.validation, self.test = x, y, validation, test
        self.divisor = divisor
        self.augmentation = augmentation if augmentation is not None and augmentation.active else None
        self.m = m
        self.num_batches = n // m if config.last_batch == "drop" else -(-n // m)
        self.images_per_epoch = min(n, self.num_batches * m)
        rank, sizes = (0, [m]) if world is None else (world.rank, shard_sizes(m, world.world_size))
        self.lo, self.hi = sum(sizes[:rank]), sum(sizes[:rank + 1])
        self.m_local, self.share = self.hi - self.lo, (self.hi - self.lo) / m
        seed = config.seed if config.seed is not None else int(torch.randint(0, 2**62, (1,)))
        if world is not None:
            seed = world.broadcast_int(seed)             # one order of the examples for all ranks
        # Two streams: the order of the examples (on the CPU, the same on every rank), dropout masks and
        # augmentation (on the device; rank 0's is a single process's, every other rank has its own).
        self.shuffle_rng = torch.Generator().manual_seed(seed)
        self.dropout_rng = torch.Generator(device=net.device).manual_seed(rank_seed(seed + 1, rank))
        self.params = list(net.parameters())
        weights = net.weights()
        biases = [p for p in self.params if not any(p is w for w in weights)]
        self.optimizer = BookSGD([{"params": weights}, {"params": biases, "weight_decay": 0.0}], lr=config.eta,
                                 momentum=config.momentum, weight_decay=config.lmbda / divisor,
                                 regularization=config.regularization)
        # With cuda_graph, each step is replayed from a CUDA graph (captured again when eta changes).
        self.graphed = GraphedStep(self.step, net.device, [self.dropout_rng]) if cuda_graph else None

    # --- the epoch -------------------------------------------------------------------------------

    def run_epoch(self, epoch: int, active: Sequence[bool], progress: Progress) -> list[bool]:
        """One pass over the training data; [False] when the cost or the weights became inf or nan."""
        net, m, x, y = self.net, self.m, self.x, self.y
        order = torch.randperm(self.n, generator=self.shuffle_rng).to(x.device) if self.config.shuffle else None
        # Mini-batch j is images (or order) [j * stride + lo, j * stride + hi).
        stride, lo, hi = m, self.lo, self.hi
        if self.augmentation is not None:
            from nndl.deep.augment import augment_in_chunks
            if self.world is not None:                   # augment only this rank's images, in the order it uses them
                mine = order if order is not None else torch.arange(self.n, device=x.device)
                mine = mine[:self.num_batches * m].view(self.num_batches, m)[:, lo:hi].reshape(-1)
                x, y, order, stride, lo, hi = x[mine], y[mine], None, self.m_local, 0, self.m_local
            x = augment_in_chunks(x, self.augmentation, self.dropout_rng)
        net.train()
        for chunk in range(0, self.num_batches, PROGRESS_EVERY):
            for j in range(chunk, min(chunk + PROGRESS_EVERY, self.num_batches)):
                if order is None:
                    xb, yb = x[j * stride + lo:j * stride + hi], y[j * stride + lo:j * stride + hi]
                else:
                    batch = order[j * stride + lo:j * stride + hi]
                    xb, yb = x[batch], y[batch]
                cost = self.step(xb, yb) if self.graphed is None else self.graphed(self.optimizer.eta, xb, yb)
            diverged = not bool(torch.isfinite(cost))
            if self.world is not None:                   # every rank stops together, or none does
                diverged = self.world.any(diverged, "checking the cost on every process")
            if diverged:
                return [False]
            progress(min(min(PROGRESS_EVERY, self.num_batches - chunk) * m, self.images_per_epoch - chunk * m))
        return [True]

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One step of gradient descent on the mini-batch xb (m, c, h, w), yb (m,); returns its cost C0."""
        if self.autocast is None:
            cost = F.nll_loss(self.net(xb, self.dropout_rng), yb)
        else:
            with torch.autocast(xb.device.type, dtype=getattr(torch, self.autocast)):
                log_p = self.net(xb, self.dropout_rng)
            cost = F.nll_loss(log_p.float(), yb)
        grads = torch.autograd.grad(cost, self.params)
        if self.world is not None:                       # sum of (m_r / m) * mean gradient of rank r's m_r images
            grads = self.world.all_reduce_gradients(grads, self.share)
        for p, g in zip(self.params, grads):
            p.grad = g
        with torch.no_grad():
            self.optimizer.update()                      # BookSGD.step without torch's hooks (see there)
        return cost.detach()

    # --- what fit asks between epochs -----------------------------------------------------------

    def finite(self, i: int) -> bool:
        return _finite(self.net)

    def measure(self, i: int, monitor: Sequence[str]) -> dict[str, float]:
        """The monitored costs and accuracies after an epoch, and the test accuracy, as a dict by name."""
        return measure_network(self.net, self.config, self.divisor, monitor, (self.x, self.y), self.validation,
                               self.test, self.world)

    def copy_params(self, i: int) -> dict[str, torch.Tensor]:
        return _copy_state(self.net)

    def restore_params(self, i: int, params: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(params)

    def params_from_state(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: t.to(self.net.device) for name, t in params.items()}

    def get_eta(self, i: int) -> float:
        return self.optimizer.eta

    def set_eta(self, i: int, eta: float) -> None:
        self.optimizer.eta = eta

    def network_config(self) -> Any:
        return self.net.config

    def saturation(self, i: int) -> float | None:
        return None

    def close(self) -> None:
        pass

    # --- checkpoints -----------------------------------------------------------------------------

    def write_checkpoint(self, path: str, state: dict[str, Any], metadata: dict[str, Any] | None) -> None:
        """Write the complete state after an epoch, so that ``load_state`` continues exactly from here.

        Under ``world`` every rank calls it (to hand over its dropout
        generator) and rank 0 writes.
        """
        from nndl.deep.checkpoint import save_checkpoint
        rngs = None if self.world is None else self.world.gather_states(self.dropout_rng.get_state())
        if self.world is not None and not self.world.is_main:
            return
        state = {**state, "eta": float(self.optimizer.eta), "optimizer": _cpu(self.optimizer.state_dict()),
                 "shuffle_rng": self.shuffle_rng.get_state(), "dropout_rng": self.dropout_rng.get_state().cpu()}
        if rngs is not None:
            state["dropout_rngs"] = rngs                 # rank r's generator; dropout_rng is rank 0's
        if "best" in state:
            state["best"] = {name: t.cpu() for name, t in state["best"].items()}
        save_checkpoint(path, self.net, state, metadata)

    def _rank_rng_state(self, state: dict[str, Any]) -> torch.Tensor:
        """This rank's dropout generator state from a checkpoint written by any number of processes."""
        rank, size = (0, 1) if self.world is None else (self.world.rank, self.world.world_size)
        saved = state.get("dropout_rngs")
        if isinstance(saved, list) and len(saved) == size and isinstance(saved[rank], torch.Tensor):
            rng = saved[rank]
        elif rank == 0:
            rng = state["dropout_rng"]
        else:                                            # more ranks than the checkpoint had: a stream of its own
            seed = int.from_bytes(hashlib.sha256(state["dropout_rng"].numpy().tobytes()).digest()[:8], "little") >> 1
            return torch.Generator(device=self.net.device).manual_seed(rank_seed(seed, rank)).get_state()
        return rng.cpu()                                 # a generator's state is a CPU ByteTensor, on any device

    def _set_dropout_rng(self, saved: torch.Tensor) -> None:
        """Restore the dropout generator, or -- for a state written on another kind of device (a CUDA
        generator's 16 bytes on the CPU, the CPU's 5,056 on a GPU) -- re-seed it from that state, with a note:
        the run goes on, but its dropout masks and augmentation differ from those it would have drawn there."""
        try:
            self.dropout_rng.set_state(saved)
            return
        except RuntimeError:
            other_kind = {16, torch.Generator().get_state().numel()}
            if not (isinstance(saved, torch.Tensor) and saved.dtype == torch.uint8 and saved.numel() in other_kind):
                raise
        seed = int.from_bytes(hashlib.sha256(saved.numpy().tobytes()).digest()[:8], "little") >> 1
        self.dropout_rng.manual_seed(seed)
        print(f"Note: the checkpoint's dropout generator was saved on another kind of device than "
              f"{self.net.device}; it is re-seeded from that state, so the dropout masks and augmentation from "
              "here on differ from those the run would have drawn there", file=sys.stderr, flush=True)

    @contextmanager
    def hold_checkpoint(self, path: str) -> Iterator[None]:
        """The checkpoint's lock, held by the process that writes it (rank 0 of a distributed run).

        Under ``world`` the ranks agree first: when rank 0 is refused, every
        rank raises, rather than the others waiting for it in the first
        all-reduce.
        """
        with ExitStack() as held:
            refused = None
            if self.world is None or self.world.is_main:
                try:
                    held.enter_context(sole_writer(path))
                except OutputError as e:
                    refused = e
            if self.world is not None and self.world.any(refused is not None, "agreeing on the checkpoint's lock"):
                raise refused or OutputError(f"rank 0 could not lock the checkpoint {path}: see its message")
            if refused is not None:
                raise refused
            yield

    def load_state(self, state: dict[str, Any]) -> None:
        """The optimiser (learning rate, velocities) and the random generators from a checkpoint."""
        try:
            eta = float(state["eta"])
            epoch = state["epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < -1:
                raise ValueError(f"the last finished epoch must be a whole number, got {epoch!r}")
            if not math.isfinite(eta) or eta <= 0:
                raise ValueError(f"the learning rate must be a positive number, got {eta!r}")
            self.shuffle_rng.set_state(state["shuffle_rng"])
            self._set_dropout_rng(self._rank_rng_state(state))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ModelFileError(f"the checkpoint's training state is incomplete or damaged ({e})") from None
        load_optimizer_state(self.optimizer, state, self.params, self.config.momentum)
        self.optimizer.eta = eta


def _cpu(value: Any) -> Any:
    """An optimiser's state_dict with every tensor on the CPU (checkpoints load on any device)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cpu(v) for v in value]
    return value
