"""One network trained by several processes at once: data parallelism with ``torch.distributed``.

Launch it with PyTorch's own launcher, ``torchrun``, which starts the
processes and tells each one who it is (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT in the environment)::

    torchrun --nproc_per_node=2 -m nndl conv --preset relu --device cpu      # 2 processes, this machine
    torchrun --nproc_per_node=8 -m nndl conv --preset dropout --device cuda  # one per GPU
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d \\
             --rdzv-endpoint=HOST:29500 -m nndl conv ...                     # two machines

Each process (a *rank*) holds a whole copy of the network; ``gloo`` carries
the messages between CPU processes, ``nccl`` between GPUs.

How N processes follow the single-process run
---------------------------------------------
``--mini-batch-size m`` (``TrainingConfig.mini_batch_size``) stays the
*global* mini-batch: one step of gradient descent still looks at m images.
Every epoch all ranks draw the same order of the n images (the shuffling
generator is seeded alike), cut it into the same d = n // m mini-batches,
and rank r takes its own consecutive part of each: m_r = m // N images, one
more for the first m mod N ranks (m = 10 on 4 ranks: 3, 3, 2, 2). Rank r
computes the mean gradient g_r of the log-likelihood over its m_r images;
the ranks then add up (m_r / m) g_r with one all-reduce, which is exactly the
mean gradient over all m images -- the gradient one process computes for
the whole mini-batch (with equal parts, m_r / m = 1/N: the average of the
ranks' gradients). Every rank then applies nndl's own update to identical
parameters (broadcast from rank 0 at the start),

    w -> (1 - eta lambda / d) w - eta (1/m) sum_x dC_x/dw

(or, with momentum, the same velocity update as one process), with the same
eta and the same d = n // m, the number of *global* mini-batches per epoch
(network3's L2 divisor; with ``lmbda_scale="n"`` it is n). So N processes
with m/N images each take the same steps as one process with m, up to the
order of floating-point additions (measured: 1e-7 after 20 steps,
``tests/test_distributed.py``). To train with more images per
step, raise m itself: that is a different run (fewer, larger steps), as it
would be in one process. The last n mod m images of each epoch's order are
left out, as in one process (different ones each epoch when shuffled); the
command line says how many, once.

Dropout masks are the one thing that differs: every rank draws its own, rank
0 from the same generator a single process uses (seed + 1), rank r > 0 from a
stream of its own derived from the seed and r (``rank_seed``), so no two
ranks drop the same neurons of different images in step. With dropout (or
augmentation) the run is therefore a different sample of the same random
process, not the same numbers. Checkpoints keep every rank's generator, so
a run resumed on the same number of processes continues exactly.

Only rank 0 prints, writes checkpoints, the History and the saved model;
every rank reads a checkpoint it resumes from. Validation and test accuracy
are measured on a share of the images per rank and added up (exact counts).

Failure
-------
Every wait on another process ends after ``timeout`` seconds (``--dist-timeout``,
default DEFAULT_TIMEOUT): a process that never joins, a rendezvous that
cannot be reached, a peer that hangs. A peer that crashes closes its
connections, and the others stop at once with ``DistributedError``
(also an ``NndlError``: one line from the command line).
"""

import datetime
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from nndl.deep._torch import torch
from nndl.errors import ConfigError, NndlError

__all__ = ["World", "DistributedError", "init_from_environment", "launched_by_torchrun", "how_to_launch",
           "rank_seed", "shard_sizes", "DEFAULT_TIMEOUT", "TORCHRUN_VARIABLES"]

#: Seconds any process waits for the others (joining, each all-reduce) before giving up with an error.
DEFAULT_TIMEOUT = 300.0
#: What torchrun tells each process; all of them are needed.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(NndlError, RuntimeError):
    """Another process of a distributed run failed, never joined, or could not be reached in time."""


def how_to_launch(example="nndl conv --preset relu"):
    """The sentence that tells a user how to start a distributed run."""
    command = example.split(" ", 1)
    rest = command[1] if len(command) > 1 else ""
    return (f"start it with torchrun, which starts the processes and sets {', '.join(TORCHRUN_VARIABLES)} "
            f"for each: torchrun --nproc_per_node=2 -m nndl {rest} (--nproc_per_node=N: N processes on this "
            "machine; add --nnodes and --rdzv-endpoint=HOST:PORT for several machines)")


def launched_by_torchrun(environ=None):
    """True when the environment says this process is one rank of a torchrun launch (any variable set)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in ("RANK", "WORLD_SIZE"))


def rank_seed(seed, rank):
    """The seed of rank ``rank``'s own random stream (dropout, augmentation): ``seed`` itself for rank 0.

    Other ranks get a number mixed from (seed, rank), far from seed + k, so
    that rank 1 of seed s never repeats rank 0 of seed s + 1.
    """
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"nndl-rank-stream:{seed}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def shard_sizes(m, world_size):
    """How a mini-batch of m images is shared by ``world_size`` ranks: a list of m_r (sum m, each >= 1)."""
    if m < world_size:
        raise ConfigError(f"a mini-batch of {m} image{'s' if m != 1 else ''} cannot be shared by {world_size} "
                          f"processes (each needs at least one image of every mini-batch): use "
                          f"--mini-batch-size {world_size} or more, or fewer processes")
    base, extra = divmod(m, world_size)
    return [base + (1 if r < extra else 0) for r in range(world_size)]


def _first_line(error):
    """The first line of a torch.distributed error, without gloo's advice that follows it."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    line = lines[0].split(". This is typically caused by")[0] if lines else type(error).__name__
    return line[:300]


@dataclass
class World:
    """This process's place in a distributed run, and the few collective operations training needs.

    Attributes
    ----------
    rank, world_size : int
        This process is rank ``rank`` of ``world_size`` (0 is the one that prints and writes).
    local_rank, local_world_size : int
        The same on this machine (a GPU run uses GPU ``local_rank``).
    backend : str
        "gloo" (CPU) or "nccl" (CUDA GPUs).
    device : torch.device
    timeout : float
        Seconds any collective waits for the others.
    comm_seconds, comm_calls, comm_bytes :
        Time spent in the gradients' all-reduce, how many, and their bytes
        (on CUDA the time is only the launch unless ``timing`` is set). The
        time includes waiting for the slowest rank to arrive.
    comm_log : list of float or None
        When a list, the seconds of every gradients' all-reduce are appended
        to it (benchmarks/bench_scaling.py).
    """

    rank: int
    world_size: int
    local_rank: int = 0
    local_world_size: int = 1
    backend: str = "gloo"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    timeout: float = DEFAULT_TIMEOUT
    timing: bool = False
    comm_seconds: float = 0.0
    comm_calls: int = 0
    comm_bytes: int = 0
    comm_log: list[Any] | None = None

    @property
    def is_main(self):
        """True on rank 0, the process that prints and writes files."""
        return self.rank == 0

    def describe(self):
        """'2 processes (gloo, cpu)'."""
        return f"{self.world_size} processes ({self.backend}, {self.device.type})"

    # --- errors ------------------------------------------------------------

    def _failed(self, what, error):
        if isinstance(error, DistributedError):
            return error
        text = str(error)
        if "timed out" in text.lower() or "timeout" in text.lower():
            why = (f"another process did not answer within {self.timeout:g} s (--dist-timeout): it may have hung, "
                   "or be far slower")
        else:
            why = "another process stopped or cannot be reached (its own error, if it printed one, is above)"
        return DistributedError(f"process {self.rank} of {self.world_size}: {what} failed: {why} "
                                f"[{_first_line(error)}]")

    def _collective(self, what, operation, *args, **kwargs):
        import torch.distributed as dist
        try:
            return operation(*args, **kwargs)
        except (RuntimeError, dist.DistError) as e:
            raise self._failed(what, e) from None

    # --- the collectives training uses ---------------------------------------

    def all_reduce_gradients(self, grads, weight):
        """Sum ``weight * g`` over the ranks for every gradient g, in one message; returns the summed list.

        ``weight`` = m_r / m (this rank's share of the global mini-batch), so
        the sum is the mean gradient of the whole mini-batch. The gradients
        travel as one flat buffer: one all-reduce per step, not one per tensor.
        """
        import torch.distributed as dist
        flat = torch.cat([g.reshape(-1) for g in grads])                  # (n_parameters,)
        flat.mul_(weight)
        sync = self.timing and flat.is_cuda
        if sync:
            torch.cuda.synchronize(flat.device)
        start = time.perf_counter()
        self._collective("the all-reduce of the gradients", dist.all_reduce, flat)
        if sync:
            torch.cuda.synchronize(flat.device)
        seconds = time.perf_counter() - start
        self.comm_seconds += seconds
        self.comm_calls += 1
        if self.comm_log is not None:
            self.comm_log.append(seconds)
        self.comm_bytes += flat.numel() * flat.element_size()
        return [part.view_as(g) for part, g in zip(flat.split([g.numel() for g in grads]), grads)]

    def all_reduce_sum(self, values, what="an all-reduce"):
        """A float64 tensor of ``values`` summed over the ranks (on this rank's device)."""
        import torch.distributed as dist
        tensor = torch.as_tensor(values, dtype=torch.float64).to(self.device)
        self._collective(what, dist.all_reduce, tensor)
        return tensor.cpu()

    def any(self, flag, what="an agreement between the processes"):
        """True on every rank when ``flag`` is true on any rank."""
        return bool(self.all_reduce_sum([1.0 if flag else 0.0], what)[0] > 0)

    def broadcast_parameters(self, net):
        """Make every rank's parameters (and buffers) those of rank 0."""
        import torch.distributed as dist
        with torch.no_grad():
            for tensor in list(net.parameters()) + list(net.buffers()):
                self._collective("sharing rank 0's initial parameters", dist.broadcast, tensor.data, 0)

    def broadcast_int(self, value):
        """Rank 0's integer ``value`` (0 <= value < 2**63), on every rank."""
        import torch.distributed as dist
        tensor = torch.tensor([value], dtype=torch.int64, device=self.device)
        self._collective("sharing rank 0's seed", dist.broadcast, tensor, 0)
        return int(tensor.item())

    def gather_states(self, state):
        """Every rank's uint8 ``state`` tensor (e.g. a generator's), in rank order, on every rank (CPU)."""
        import torch.distributed as dist
        state = state.to(self.device)
        parts = [torch.empty_like(state) for _ in range(self.world_size)]
        self._collective("collecting the random generators' states", dist.all_gather, parts, state)
        return [p.cpu() for p in parts]

    def barrier(self, what="waiting for the other processes"):
        import torch.distributed as dist
        self._collective(what, dist.barrier, **({"device_ids": [self.device.index]} if self.backend == "nccl"
                                                 else {}))

    def close(self):
        """Leave the process group (every rank, at the end)."""
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def _environment(environ):
    missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
    if missing:
        raise ConfigError(f"this looks like a distributed launch, but {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not set; {how_to_launch()}")
    try:
        values = {name: int(environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        values["LOCAL_WORLD_SIZE"] = int(environ.get("LOCAL_WORLD_SIZE", values["WORLD_SIZE"]))
        int(environ["MASTER_PORT"])
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE, LOCAL_RANK and MASTER_PORT must be whole numbers; "
                          + how_to_launch()) from None
    if not (values["WORLD_SIZE"] >= 1 and 0 <= values["RANK"] < values["WORLD_SIZE"]
            and 0 <= values["LOCAL_RANK"] < max(1, values["LOCAL_WORLD_SIZE"])):
        raise ConfigError(f"RANK {values['RANK']}, LOCAL_RANK {values['LOCAL_RANK']} and WORLD_SIZE "
                          f"{values['WORLD_SIZE']} do not fit together; {how_to_launch()}")
    return values


def init_from_environment(device="auto", timeout=DEFAULT_TIMEOUT, *, required=False, environ=None):
    """Join the distributed run torchrun started, or None when this is a single process.

    Parameters
    ----------
    device : str
        "auto" (a GPU per process when CUDA is available, else the CPU),
        "cpu" or "cuda". Rank r of a machine takes GPU r (LOCAL_RANK).
    timeout : float
        Seconds to wait for the other processes, now and at every step.
    required : bool
        Refuse to run as a single process (``--distributed``): without
        torchrun's environment, raise ConfigError saying how to launch.
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    World or None
        None when not launched by torchrun, or launched with one process.

    Raises
    ------
    ConfigError
        Required but not launched by torchrun; an incomplete environment; a
        device that cannot be shared out (more processes than GPUs, cuda:N).
    DistributedError
        The others did not join within ``timeout`` or the rendezvous could not be reached.
    """
    environ = os.environ if environ is None else environ
    if not launched_by_torchrun(environ):
        if required:
            raise ConfigError(f"--distributed needs the environment torchrun gives each process; {how_to_launch()}")
        return None
    values = _environment(environ)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"the distributed timeout must be a number of seconds > 0, got {timeout!r}")
    world_size, rank, local_rank = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if world_size == 1:
        return None
    device = _rank_device(device, local_rank, values["LOCAL_WORLD_SIZE"])
    backend = "nccl" if device.type == "cuda" else "gloo"
    world = World(rank=rank, world_size=world_size, local_rank=local_rank,
                  local_world_size=values["LOCAL_WORLD_SIZE"], backend=backend, device=device, timeout=float(timeout))
    import torch.distributed as dist
    if not dist.is_available() or not (dist.is_gloo_available() if backend == "gloo" else dist.is_nccl_available()):
        raise ConfigError(f"this PyTorch has no {backend} backend for torch.distributed")
    address = f"{environ['MASTER_ADDR']}:{environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=float(timeout)),
                                **({"device_id": device} if backend == "nccl" else {}))
    except (RuntimeError, dist.DistError) as e:
        raise DistributedError(
            f"process {rank} of {world_size} could not join the others at {address} within {timeout:g} s "
            f"(--dist-timeout): a process did not start or failed, or the address cannot be reached "
            f"[{_first_line(e)}]") from None
    return world


def _rank_device(spec, local_rank, local_world_size):
    name = str(spec).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda":
        raise ConfigError(f"under torchrun, --device is auto, cpu or cuda (each process takes the GPU of its local "
                          f"rank), got {spec!r}")
    if not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    if local_world_size > torch.cuda.device_count():
        raise ConfigError(f"{local_world_size} processes on this machine but only {torch.cuda.device_count()} "
                          "GPU(s): start at most one process per GPU (--nproc_per_node)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)
