"""Training a ConvNetwork by mini-batch stochastic gradient descent, as network3 does or better.

Each epoch takes ``n // m`` mini-batches of m images (the book's
``num_training_batches``; the last n mod m images are left out of that
epoch) -- in stored order, as network3 does, or shuffled afresh each epoch
(``TrainingConfig.shuffle``, nndl's default). Each mini-batch is one step of
the book's update, on every weight w and bias b:

    w -> (1 - eta lambda / d) w - eta dC0/dw,     b -> b - eta dC0/db,

the gradient of C = C0 + (lambda / 2d) sum w^2 with C0 the mean
log-likelihood of the mini-batch and d the number of mini-batches per epoch
(network3's scaling, ``lmbda_scale="batches"``) or n (network2's). With
momentum mu > 0: v -> mu v - eta dC/dp, p -> p + v, as in chapter 3.

After each epoch the validation accuracy decides the best epoch -- an
accuracy equal to the best so far counts as a new best, as in network3 --
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

import hashlib
import json
import time

import torch
import torch.nn.functional as F

from nndl.deep.data import as_tensors
from nndl.deep.device import fast_kernels
from nndl.deep.distributed import rank_seed, shard_sizes
from nndl.errors import ConfigError, ModelFileError
from nndl.training import interrupt
from nndl.training.config import resolve_training_config
from nndl.training.history import History
from nndl.training.loop import _check_weight_decay, _plateau_rules
from nndl.training.plateau import Plateau

__all__ = ["train", "PROGRESS_EVERY"]

#: Mini-batches between two progress-bar updates (and two checks for divergence).
PROGRESS_EVERY = 250


def train(net, training_data, config=None, *, validation_data=None, test_data=None, augmentation=None,
          progress=False, on_epoch=None, checkpoint=None, checkpoint_metadata=None, resume=None, world=None,
          **settings):
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

    Returns
    -------
    History
        ``stop_reason``: "completed", "early stopping", "learning-rate
        schedule", "diverged" (the weights of the last good epoch are kept)
        or "interrupted" (Ctrl-C, between two mini-batches).
    """
    config = resolve_training_config(config, settings)
    _check_supported(config)
    shape, k, device, dtype = net.config.input_shape, net.config.n_outputs, net.device, net.dtype
    x, y = as_tensors(training_data, shape, k, device, dtype, "training data")
    validation = None if validation_data is None else as_tensors(validation_data, shape, k, device, dtype,
                                                                  "validation data")
    test = None if test_data is None else as_tensors(test_data, shape, k, device, dtype, "test data")
    n, m = x.shape[0], config.mini_batch_size
    if m > n:
        raise ConfigError(f"the mini-batch size {m} is larger than the {n} training images")
    divisor = config.lmbda_divisor(n)
    _check_weight_decay(config, divisor)
    monitor = config.monitors(validation is not None)
    if world is not None:
        shard_sizes(m, world.world_size)                    # refuses m < N before any message is sent
        world.broadcast_parameters(net)
    run = _Run(net, config, n, divisor, augmentation, world)
    history = History(config=config, network=net.config, n_training=n,
                      n_evaluation=0 if validation is None else validation[0].shape[0],
                      n_test=0 if test is None else test[0].shape[0])
    plateau = Plateau(ties=True)
    if resume is not None:
        history = run.restore(resume, history, plateau)
    restore_best = config.restore_best if config.restore_best is not None else config.early_stopping is not None
    best = run.best if restore_best else None
    good = _copy_state(net)

    with fast_kernels(device, run.m_local):
        try:
            for epoch in range(len(history.epochs), config.epochs):
                epoch_time = run.epoch(x, y, epoch, progress)
                if epoch_time is None:
                    net.load_state_dict(good)
                    history.stop("diverged", f"training diverged in epoch {epoch}: the cost became inf or nan "
                                             f"(eta = {run.eta:g} is probably too large); the weights from the end "
                                             "of the previous epoch were kept")
                    break
                good = _copy_state(net)
                start = time.perf_counter()
                measured = _measure(net, monitor, (x, y), validation, test, config, divisor, world)
                history.record(epoch, run.eta, epoch_time, time.perf_counter() - start, measured)
                accuracy = history.watched_accuracy()
                if accuracy is not None and plateau.update(epoch, accuracy):
                    history.best_epoch, history.best_accuracy = epoch, accuracy
                    if restore_best:
                        best = _copy_state(net)
                reason = _plateau_rules(config, plateau, run)
                if reason:
                    history.stop(*reason)
                if checkpoint is not None:
                    run.save(checkpoint, history, best, checkpoint_metadata)
                if on_epoch is not None:
                    on_epoch(history)
                if reason:
                    break
        except KeyboardInterrupt:
            history.stop("interrupted", f"interrupted by the user after {len(history.epochs)} complete epochs")
            if not _finite(net):
                net.load_state_dict(good)
        finally:
            run.close()
    if restore_best and best is not None:
        net.load_state_dict(best)
    return history


def _check_supported(config):
    if config.p_dropout:
        raise ConfigError("dropout is set per layer in a convolutional network (p_dropout of a layer), not in the "
                          "training settings")
    if config.nesterov:
        raise ConfigError("Nesterov's momentum is not available for convolutional networks; use momentum")


def _copy_state(net):
    return {name: t.detach().clone() for name, t in net.state_dict().items()}


def _finite(net):
    return all(bool(torch.isfinite(p).all()) for p in net.parameters())


def _measure_split(net, data, world):
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


def _measure(net, monitor, training, validation, test, config, divisor, world=None):
    """The monitored costs and accuracies after an epoch, and the test accuracy, as a dict by name."""
    measured = {}
    l2 = 0.0
    if any(name.endswith("cost") for name in monitor) and config.lmbda:
        with torch.no_grad():
            weights = net.weights()
            if config.regularization == "l2":
                l2 = 0.5 * config.lmbda / divisor * float(sum((w * w).sum() for w in weights))
            else:
                l2 = config.lmbda / divisor * float(sum(w.abs().sum() for w in weights))
    for prefix, data in (("training", training), ("evaluation", validation)):
        if f"{prefix}_accuracy" in monitor or f"{prefix}_cost" in monitor:
            accuracy, cost = _measure_split(net, data, world)
            if f"{prefix}_accuracy" in monitor:
                measured[f"{prefix}_accuracy"] = accuracy
            if f"{prefix}_cost" in monitor:
                measured[f"{prefix}_cost"] = cost + l2
    if test is not None:
        measured["test_accuracy"] = _measure_split(net, test, world)[0]
    return measured


class _Run:
    """The state of one training run between epochs: eta, velocities, random generators, progress bar.

    Under ``world``, this rank's part of each global mini-batch of m is the
    images ``lo:hi`` of it (``m_local`` = hi - lo of them), and its
    gradient counts with the weight ``share`` = m_local / m.
    """

    def __init__(self, net, config, n, divisor, augmentation, world=None):
        self.net, self.config, self.n, self.divisor, self.world = net, config, n, divisor, world
        self.augmentation = augmentation if augmentation is not None and augmentation.active else None
        self.eta = config.eta
        self.m, self.num_batches = config.mini_batch_size, n // config.mini_batch_size
        rank, sizes = (0, [self.m]) if world is None else (world.rank, shard_sizes(self.m, world.world_size))
        self.lo, self.hi = sum(sizes[:rank]), sum(sizes[:rank + 1])
        self.m_local, self.share = self.hi - self.lo, (self.hi - self.lo) / self.m
        seed = config.seed if config.seed is not None else int(torch.randint(0, 2**62, (1,)))
        if world is not None:
            seed = world.broadcast_int(seed)             # one order of the examples for all ranks
        # Two streams: the order of the examples (on the CPU, the same on every rank), dropout masks and
        # augmentation (on the device; rank 0's is a single process's, every other rank has its own).
        self.shuffle_rng = torch.Generator().manual_seed(seed)
        self.dropout_rng = torch.Generator(device=net.device).manual_seed(rank_seed(seed + 1, rank))
        self.params = list(net.parameters())
        self.weights = net.weights()
        self.is_weight = [any(p is w for w in self.weights) for p in self.params]
        self.velocities = [torch.zeros_like(p) for p in self.params] if config.momentum else None
        self.best = None
        self.bar = None

    # --- one epoch ---------------------------------------------------------

    def epoch(self, x, y, epoch, progress):
        """One pass over the training data; the seconds it took, or None if the cost became inf or nan."""
        net, m = self.net, self.m
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
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=self.num_batches * m, desc=f"epoch {epoch}", unit="img", unit_scale=True,
                            leave=False, dynamic_ncols=True, mininterval=0.2)
        net.train()
        start = time.perf_counter()
        for chunk in range(0, self.num_batches, PROGRESS_EVERY):
            for j in range(chunk, min(chunk + PROGRESS_EVERY, self.num_batches)):
                if order is None:
                    xb, yb = x[j * stride + lo:j * stride + hi], y[j * stride + lo:j * stride + hi]
                else:
                    batch = order[j * stride + lo:j * stride + hi]
                    xb, yb = x[batch], y[batch]
                cost = self.step(xb, yb)
            interrupt.check()
            diverged = not bool(torch.isfinite(cost))
            if self.world is not None:                   # every rank stops together, or none does
                diverged = self.world.any(diverged, "checking the cost on every process")
            if diverged:
                self.close()
                return None
            if self.bar is not None:
                self.bar.update(min(PROGRESS_EVERY, self.num_batches - chunk) * m)
        if not _finite(net):                                 # the last update itself may have overflowed
            self.close()
            return None
        elapsed = time.perf_counter() - start
        self.close()
        return elapsed

    def step(self, xb, yb):
        """One step of gradient descent on the mini-batch xb (m, c, h, w), yb (m,); returns its cost C0."""
        cost = F.nll_loss(self.net(xb, self.dropout_rng), yb)
        grads = torch.autograd.grad(cost, self.params)
        if self.world is not None:                       # sum of (m_r / m) * mean gradient of rank r's m_r images
            grads = self.world.all_reduce_gradients(grads, self.share)
        config, eta = self.config, self.eta
        decay = config.lmbda / self.divisor
        with torch.no_grad():
            if self.velocities is None:
                if decay and config.regularization == "l2":
                    torch._foreach_mul_(self.weights, 1.0 - eta * decay)      # the book's weight decay
                elif decay:
                    torch._foreach_add_(self.weights, torch._foreach_sign(self.weights), alpha=-eta * decay)
                torch._foreach_add_(self.params, grads, alpha=-eta)
            else:
                grads = list(grads)
                if decay:                                                   # the penalty joins the velocity
                    for i, (w, is_weight) in enumerate(zip(self.params, self.is_weight)):
                        if is_weight:
                            grads[i] = grads[i] + decay * (w if config.regularization == "l2" else w.sign())
                torch._foreach_mul_(self.velocities, config.momentum)
                torch._foreach_add_(self.velocities, grads, alpha=-eta)
                torch._foreach_add_(self.params, self.velocities)
        return cost.detach()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # --- checkpoints ---------------------------------------------------------

    def save(self, path, history, best, metadata):
        """Write the complete state after an epoch, so that ``restore`` continues exactly from here.

        Under ``world`` every rank calls it (to hand over its dropout
        generator) and rank 0 writes.
        """
        from nndl.deep.checkpoint import save_checkpoint
        rngs = None if self.world is None else self.world.gather_states(self.dropout_rng.get_state())
        if self.world is not None and not self.world.is_main:
            return
        state = {"epoch": history.epochs[-1], "eta": float(self.eta), "history": json.dumps(history.to_dict()),
                 "shuffle_rng": self.shuffle_rng.get_state(), "dropout_rng": self.dropout_rng.get_state().cpu()}
        if rngs is not None:
            state["dropout_rngs"] = rngs                 # rank r's generator; dropout_rng is rank 0's
        if self.velocities is not None:
            state["velocities"] = [v.detach().cpu().clone() for v in self.velocities]
        if best is not None:
            state["best"] = {name: t.cpu() for name, t in best.items()}
        save_checkpoint(path, self.net, state, metadata)

    def _rank_rng_state(self, state):
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

    def restore(self, state, history, plateau):
        """Continue from a saved state: returns its History; sets eta, velocities, generators, best, plateau."""
        try:
            saved = History.from_dict(json.loads(state["history"]), source="the checkpoint's history")
            eta = float(state["eta"])
            self.shuffle_rng.set_state(state["shuffle_rng"])
            self.dropout_rng.set_state(self._rank_rng_state(state))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ModelFileError(f"the checkpoint's training state is incomplete or damaged ({e})") from None
        if saved.network != self.net.config:
            raise ConfigError(f"the checkpoint is of a different network ({saved.network.describe()}) than the one "
                              f"given ({self.net.config.describe()})")
        if saved.config.replace(epochs=self.config.epochs) != self.config:
            changed = [f"{k}: {v!r} -> {getattr(self.config, k)!r}" for k, v in saved.config.to_dict().items()
                       if k != "epochs" and v != self.config.to_dict()[k]]
            raise ConfigError("resuming needs the training settings of the checkpoint (only the number of epochs may "
                              f"change); changed: {', '.join(changed)}")
        if saved.stop_reason not in ("completed", "interrupted"):
            raise ConfigError(f"the checkpoint's run has already ended ({saved.stop_reason}: {saved.message})")
        if self.velocities is not None:
            velocities = state.get("velocities")
            if not isinstance(velocities, list) or len(velocities) != len(self.params):
                raise ModelFileError("the checkpoint has no velocities for this momentum run")
            self.velocities = [v.to(p.device, p.dtype) for v, p in zip(velocities, self.params)]
        if "best" in state:
            self.best = {name: t.to(self.net.device) for name, t in state["best"].items()}
        self.eta = eta
        for epoch, accuracy in zip(saved.epochs, saved.evaluation_accuracy or saved.training_accuracy):
            plateau.update(epoch, accuracy)
        saved.config = self.config
        saved.stop("completed", "")
        return saved
