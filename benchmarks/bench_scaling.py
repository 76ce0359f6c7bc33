"""Scaling beyond one process: data-parallel training on 1 and 2 processes, the all-reduce, parallel seeds.

What is measured, on this machine's CPUs (``--device cpu``; a GPU, when there
is one, only in the single-process rows with ``--device cuda``):

ladder
    Every network of chapter 6's ladder (``nndl conv --list-presets``):
    weights and biases, and the bytes one step of data-parallel training
    all-reduces (4 bytes a float32 parameter).
all-reduce
    Two ``gloo`` processes on this machine (``torchrun --standalone
    --nproc_per_node=2``), ``torch.distributed.all_reduce`` of one float32
    buffer of each ladder size and of 4 B .. 8 MB: the median seconds of
    ``--allreduce-repeats`` calls, each after a barrier. A least-squares fit
    t(B) = alpha + B / beta gives the latency alpha and bandwidth beta that
    docs/scaling.md's model uses.
training
    ``nndl.deep.train.train`` on synthetic MNIST-shaped images (random
    pixels and labels, stored order, eta 0.03, lambda 0.1 over the number of
    mini-batches) for the networks ``relu`` (two conv-pool layers, 100 ReLU)
    and ``dropout`` (two conv-pool layers, two layers of 1,000 ReLU,
    dropout 0.5), at global mini-batches m of 10 (the book's) and 100:

    * 1 process alone, 1 thread, mini-batch m (the baseline);
    * 1 process alone, 2 threads, mini-batch m (the other way to use both cores);
    * 2 independent processes at once, 1 thread each, no communication:
      at m (parallel seeds, at the level of the training loop: their images
      per second added up) and at m/2 (what each rank of a two-process run
      computes, under the same sharing of the cores);
    * 2 processes of 1 thread (``torchrun``, gloo), global mini-batch m,
      m/2 per process: images per second, and the seconds per step spent in
      the gradients' all-reduce (``World.comm_log``, timed around
      ``all_reduce`` itself: the transfer *and* the wait for the slower
      rank). The smaller of the two ranks' times of a step is its transfer
      alone (the later rank hardly waits); their difference, the wait.

    The time is ``History.epoch_time[0]`` of a one-epoch ``train`` call
    (rank 0's), after a warm-up call. The two-process rows run in one
    ``torchrun`` job, round after round (independent m/2, independent m,
    data-parallel m), each part started together after a barrier; the
    one-process rows run before and after that job, so drift in the
    machine's load shows. Medians of the rounds are reported, with ranges.
model
    The predicted step time of two processes, C2(m/2) + A(B) + P(B): the
    step time of each of two independent processes at m/2, the all-reduce
    of B bytes as measured on its own, and the packing of the gradients
    into one buffer (timed here); predicted images per second beside the
    measured ones. docs/scaling.md extends it to GPUs.
seeds (needs MNIST: ``--data DIR`` or nndl's usual places)
    Two independent runs of ``nndl conv --preset relu --epochs 1
    --training-size 5000`` (seeds 1 and 2), whole commands timed wall-clock
    (start-up, data, training, evaluation): one after the other with the
    default threads (one per core), one after the other with 1 thread each,
    and both at once with 1 thread each. Throughput = runs per second.
accuracy (needs MNIST)
    The same short run (seed 1) on 1 process and on 2 (``torchrun``): the
    test accuracy at the best validation epoch of each.

Timings vary with whatever else the machine does (it shares two cores with
long training runs): compare rows of one run; the load average is printed
at the start and the end. Nothing is asserted.

Usage::

    python benchmarks/bench_scaling.py --data /path/to/mnist
    python benchmarks/bench_scaling.py --quick                       # smoke run, a minute
    python benchmarks/bench_scaling.py --skip seeds,accuracy --json out.json
"""

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))                    # run from a checkout without installing

from machine import base_context, cpu_line  # noqa: E402  (benchmarks/machine.py, beside this script)

from nndl.deep.network import ConvNetwork  # noqa: E402
from nndl.deep.presets import PRESETS, get_preset  # noqa: E402
from nndl.deep.train import train  # noqa: E402
from nndl.training.config import TrainingConfig  # noqa: E402

NETWORKS = ("relu", "dropout")
BATCHES = (10, 100)
#: Mini-batches per timed pass (about 1-3 s each on one core).
STEPS = {10: 200, 100: 40}
SIZES = (4, 4096, 65536, 2**20, 8 * 2**20)
PARTS = ("ladder", "allreduce", "training", "seeds", "accuracy")


def config(m):
    return TrainingConfig(epochs=1, mini_batch_size=m, eta=0.03, lmbda=0.1, lmbda_scale="batches", shuffle=False,
                          seed=1)


def synthetic(n, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def timed_pass(net, m, steps, world=None):
    """One epoch of ``steps`` mini-batches of m: (seconds of training, all-reduce seconds per step or None)."""
    x, y = synthetic(steps * m)
    train(net, (x[:3 * m], y[:3 * m]), config(m), world=world)                       # warm-up
    if world is not None:
        world.comm_seconds, world.comm_calls, world.comm_log = 0.0, 0, []
    history = train(net, (x, y), config(m), world=world)
    comm = world.comm_seconds / world.comm_calls if world is not None and world.comm_calls else None
    return history.epoch_time[0], comm


def ladder():
    rows = []
    for preset in PRESETS.values():
        if preset.members > 1:
            continue
        n = ConvNetwork(preset.network, seed=0).n_parameters()
        rows.append({"preset": preset.name, "network": preset.network.describe(), "parameters": n, "bytes": 4 * n})
    return rows


def pack_seconds(preset, repeats=50):
    """Seconds to pack one step's gradients into one buffer and scale it (torch.cat + mul), 1 thread."""
    net = ConvNetwork(get_preset(preset).network, seed=0)
    grads = [torch.randn_like(p) for p in net.parameters()]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(0.5)
        [part.view_as(g) for part, g in zip(flat.split([g.numel() for g in grads]), grads)]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------
# The two-process job (this script again, under torchrun)
# ---------------------------------------------------------------------------

def worker(spec_path):
    """One rank of the two-process job: the all-reduce sizes, then the training rounds; each rank writes JSON."""
    import torch.distributed as dist

    from nndl.deep.distributed import init_from_environment
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    world = init_from_environment("cpu", timeout=600, required=True)
    result = {"allreduce": [], "training": []}
    try:
        if spec["allreduce"]:
            for size in spec["sizes"]:
                buffer = torch.ones(max(1, size // 4))
                times = []
                for k in range(spec["allreduce_repeats"] + 3):
                    dist.barrier()
                    start = time.perf_counter()
                    dist.all_reduce(buffer)
                    if k >= 3:
                        times.append(time.perf_counter() - start)
                result["allreduce"].append({"bytes": size, "seconds": statistics.median(times),
                                            "min": min(times), "max": max(times)})
        for name, m in spec["training"]:
            steps = spec["steps"][str(m)]
            alone, together = ConvNetwork(get_preset(name).network, seed=1), ConvNetwork(get_preset(name).network,
                                                                                        seed=1)
            for _ in range(spec["rounds"]):
                row = {"network": name, "m": m, "steps": steps}
                dist.barrier()
                row["half_seconds"] = timed_pass(alone, m // 2, 2 * steps)[0]     # same images, steps of m/2
                dist.barrier()
                row["independent_seconds"] = timed_pass(alone, m, steps)[0]
                dist.barrier()
                row["seconds"], row["comm"] = timed_pass(together, m, steps, world)
                logs = [None, None]
                dist.all_gather_object(logs, world.comm_log)
                per_step = np.array(logs)                                            # (2 ranks, steps)
                row["transfer"] = float(np.median(per_step.min(axis=0)))
                row["wait"] = float(np.median(per_step.max(axis=0) - per_step.min(axis=0)))
                result["training"].append(row)
        Path(spec["out"] + f".{world.rank}").write_text(json.dumps(result))
    finally:
        world.close()


def run_two_processes(args, training, log):
    """The two-process job under torchrun; returns each rank's result dict."""
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        sizes = sorted(set(SIZES) | {row["bytes"] for row in ladder()})
        spec.write_text(json.dumps({"sizes": sizes, "allreduce": "allreduce" in args.parts,
                                    "allreduce_repeats": args.allreduce_repeats, "training": training,
                                    "rounds": args.rounds * 2, "steps": {str(k): v for k, v in args.steps.items()},
                                    "out": str(out)}))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                   str(Path(__file__).resolve()), "--worker", str(spec)]
        log("  2 processes: python -m torch.distributed.run --standalone --nproc_per_node=2 bench_scaling.py "
            "--worker ...")
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"the two-process job failed:\n{done.stderr[-3000:]}")
        return [json.loads(Path(f"{out}.{rank}").read_text()) for rank in (0, 1)]


def fit(rows):
    """alpha (s), beta (bytes/s) of t = alpha + B / beta: least squares of the relative error, on the medians."""
    b = np.array([r["bytes"] for r in rows], dtype=float)
    t = np.array([r["seconds"] for r in rows])
    design = np.stack([np.ones_like(b), b], axis=1) / t[:, None]
    (alpha, inverse), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    return max(alpha, 0.0), 1.0 / inverse if inverse > 0 else float("inf")


def allreduce_at(rows, size):
    """The measured median all-reduce seconds of exactly ``size`` bytes."""
    return next(r["seconds"] for r in rows if r["bytes"] == size)


# ---------------------------------------------------------------------------
# Whole commands: parallel seeds, and the accuracy of a short run on 1 and 2 processes
# ---------------------------------------------------------------------------

SHORT_RUN = ["--preset", "relu", "--epochs", "1", "--training-size", "5000", "--device", "cpu", "--no-progress"]


def _conv(seed, threads, data):
    return [sys.executable, "-m", "nndl", "conv", *SHORT_RUN, "--seed", str(seed),
            *(["--threads", str(threads)] if threads else []), *(["--data", data] if data else [])]


def _timed(commands, parallel):
    """Run the commands one after another or all at once: (wall seconds, CPU seconds of the children, outputs)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    outputs = []
    if parallel:
        processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                     for c in commands]
        outputs = [p.communicate(timeout=1800)[0] for p in processes]
        codes = [p.returncode for p in processes]
    else:
        codes = []
        for c in commands:
            done = subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                  timeout=1800)
            outputs.append(done.stdout)
            codes.append(done.returncode)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise RuntimeError("a run failed:\n" + "\n".join(o[-2000:] for o in outputs))
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), outputs


def _test_accuracy(output):
    found = re.search(r"the corresponding test accuracy is ([0-9.]+)%", output)
    return float(found.group(1)) / 100 if found else None


def _epoch_seconds(output):
    found = re.search(r"\(([0-9.]+) s/epoch\)", output)
    return float(found.group(1)) if found else None


def seeds(args, log):
    """Two runs one after the other and both at once; the pair alternates ``--seed-rounds`` times."""
    variants = [("one after the other, 1 thread each", 1, False), ("both at once, 1 thread each", 1, True)]
    plan = [("one after the other, default threads", None, False)] if args.seed_default_threads else []
    plan += variants * args.seed_rounds
    rows = []
    for label, threads, parallel in plan:
        wall, cpu, outputs = _timed([_conv(s, threads, args.data) for s in (1, 2)], parallel)
        rows.append({"how": label, "wall": wall, "cpu": cpu, "runs_per_second": 2 / wall,
                     "test_accuracy": [_test_accuracy(o) for o in outputs]})
        log(f"  seeds: {label}: {wall:.1f} s wall, {cpu:.1f} s CPU")
    return rows


def seed_summary(rows):
    """Per way of running: median wall and CPU seconds; the paired ratios of the alternating rounds."""
    ways = {}
    for r in rows:
        ways.setdefault(r["how"], []).append(r)
    summary = {how: {"wall": _median_range([r["wall"] for r in group]),
                     "cpu": _median_range([r["cpu"] for r in group]),
                     "test_accuracy": group[0]["test_accuracy"], "rounds": len(group)} for how, group in ways.items()}
    sequential = ways.get("one after the other, 1 thread each", [])
    together = ways.get("both at once, 1 thread each", [])
    if sequential and together:
        summary["speedup"] = _median_range([a["wall"] / b["wall"] for a, b in zip(sequential, together)])
        # Without other work on the machine both runs would have a core each: wall = CPU / 2 at once, CPU in turn.
        summary["idle_projection"] = _median_range([2 * a["cpu"] / b["cpu"] for a, b in zip(sequential, together)])
    return summary


def accuracy(args, log):
    single = _timed([_conv(1, 1, args.data)], False)[2][0]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nndl",
               "conv", *SHORT_RUN, "--seed", "1", *(["--data", args.data] if args.data else [])]
    double = _timed([command], False)[2][0]
    rows = [{"processes": 1, "test_accuracy": _test_accuracy(single), "epoch_seconds": _epoch_seconds(single)},
            {"processes": 2, "test_accuracy": _test_accuracy(double), "epoch_seconds": _epoch_seconds(double)}]
    log(f"  accuracy: 1 process {rows[0]['test_accuracy']}, 2 processes {rows[1]['test_accuracy']}")
    return rows


# ---------------------------------------------------------------------------
# The model, carried to GPUs (assumptions, not measurements: see docs/scaling.md)
# ---------------------------------------------------------------------------

#: A training step of nndl's eager loop on a GPU: a fixed cost (about 40-50 kernel launches and the Python
#: around them) plus the arithmetic, at a sustained rate far below the peak for layers this small.
GPU_STEP_FIXED = 0.6e-3          # seconds per step, whatever the batch
GPU_FLOP_RATE = 10e12            # FLOP/s sustained (an H100's FP32 peak is 67e12)
GPU_MEMORY_BANDWIDTH = 2e12      # bytes/s, for packing the gradients into one buffer (read + write)
#: Links, as NCCL sees them: latency alpha of one small all-reduce (s) and bandwidth beta (bytes/s), per GPU
#: inside a node and per node between nodes.
LINKS = {
    "NVLink": (20e-6, 350e9),                 # H100 SXM + NVSwitch, NCCL bus bandwidth
    "PCIe 4": (30e-6, 12e9),                  # GPUs without NVLink, through the host's PCIe switches
    "100GbE": (100e-6, 9e9),                  # one 100 Gb/s Ethernet port per node, TCP
    "IB HDR": (20e-6, 23e9),                  # one 200 Gb/s InfiniBand port per node
    "IB NDR x8": (20e-6, 8 * 45e9),           # eight 400 Gb/s ports per node (DGX H100)
}


def flops_per_image(network):
    """Multiply-adds x 2 of one image's forward pass, x 3 for forward + backward (the usual estimate)."""
    total = 0
    for layer, (n_in, _n_out) in zip(network.layers, network.shapes()):
        if layer["type"] == "conv-pool":
            channels, height, width = n_in
            fh, fw = layer["filter"]
            total += 2 * (height - fh + 1) * (width - fw + 1) * layer["filters"] * channels * fh * fw
        else:
            total += 2 * math.prod(n_in) * layer["n_out"]
    return 3 * total


def allreduce_seconds(n_bytes, gpus_per_node, nodes, intra, inter):
    """A ring all-reduce inside each node, then across nodes (hierarchical, as NCCL does), no overlap."""
    alpha, beta = LINKS[intra]
    seconds = 0.0
    if gpus_per_node > 1:
        seconds += alpha + 2 * (gpus_per_node - 1) / gpus_per_node * n_bytes / beta
    if nodes > 1:
        alpha, beta = LINKS[inter]
        seconds += alpha + 2 * (nodes - 1) / nodes * n_bytes / beta
    return seconds


def gpu_step(network, n_bytes, b, gpus_per_node=1, nodes=1, intra="NVLink", inter="IB HDR"):
    """Seconds of one data-parallel step at b images per GPU: (compute, communication)."""
    compute = GPU_STEP_FIXED + b * flops_per_image(network) / GPU_FLOP_RATE
    if gpus_per_node * nodes == 1:
        return compute, 0.0
    return compute, 2 * n_bytes / GPU_MEMORY_BANDWIDTH + allreduce_seconds(n_bytes, gpus_per_node, nodes, intra,
                                                                           inter)


def print_gpu_model(names=NETWORKS):
    """The predicted images/s on 1-8 GPUs of a node and on several nodes, at m = 10 and at larger batches."""
    layouts = [("1 GPU", 1, 1, "NVLink", "IB HDR"), ("2 GPUs NVLink", 2, 1, "NVLink", "IB HDR"),
               ("4 GPUs NVLink", 4, 1, "NVLink", "IB HDR"), ("8 GPUs NVLink", 8, 1, "NVLink", "IB HDR"),
               ("8 GPUs PCIe", 8, 1, "PCIe 4", "IB HDR"), ("2x8 100GbE", 8, 2, "NVLink", "100GbE"),
               ("4x8 100GbE", 8, 4, "NVLink", "100GbE"), ("4x8 IB HDR", 8, 4, "NVLink", "IB HDR"),
               ("4x8 IB NDR x8", 8, 4, "NVLink", "IB NDR x8")]
    print(f"GPU model: a step costs {GPU_STEP_FIXED * 1e3:g} ms + b x FLOP / {GPU_FLOP_RATE / 1e12:g} TFLOP/s, "
          "then the all-reduce (no overlap); links (latency, bandwidth): "
          + "; ".join(f"{k} {a * 1e6:g} us, {b / 1e9:g} GB/s" for k, (a, b) in LINKS.items()))
    for name in names:
        network = get_preset(name).network
        n_bytes = 4 * ConvNetwork(network, seed=0).n_parameters()
        print(f"\n{name}: {n_bytes:,} bytes per all-reduce, {flops_per_image(network) / 1e6:.1f} MFLOP per image "
              f"(forward + backward); images/s (compute share of the step)")
        print(f"  {'layout':16}{'m = 10 in all':>22}{'b = 10 per GPU':>22}{'b = 100 per GPU':>22}"
              f"{'b = 1,000 per GPU':>22}{'b for 90%':>11}")
        for label, per_node, nodes, intra, inter in layouts:
            n = per_node * nodes
            cells = []
            for b, global_batch in ((10 / n, True), (10, False), (100, False), (1000, False)):
                compute, comm = gpu_step(network, n_bytes, max(b, 1), per_node, nodes, intra, inter)
                rate = (10 if global_batch else n * b) / (compute + comm)
                cells.append(f"{rate:>12,.0f} ({compute / (compute + comm):.0%})")
            _, comm = gpu_step(network, n_bytes, 1, per_node, nodes, intra, inter)
            # b at which the step's compute is 9 times its communication (90% of the time computing).
            needed = (9 * comm - GPU_STEP_FIXED) * GPU_FLOP_RATE / flops_per_image(network)
            needed = "-" if n == 1 else "any" if needed <= 1 else f"{needed:,.0f}"
            print(f"  {label:16}" + "".join(f"{c:>22}" for c in cells) + f"{needed:>11}")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def single_rounds(args, rows, log):
    """One round of the one-process rows: 1 thread and 2 threads at each m.

    Two threads get a tenth of the steps: on a machine whose cores are all
    busy they can be tens of times slower (measured here: 40 instead of
    1,000 images/s), and the rate is what is reported.
    """
    for name in args.networks:
        for m in args.batches:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                net = ConvNetwork(get_preset(name).network, seed=1, device=args.device)
                steps = args.steps[m] if threads == 1 else max(3, args.steps[m] // 10)
                seconds, _ = timed_pass(net, m, steps)
                rows.append({"network": name, "m": m, "threads": threads, "seconds": seconds, "steps": steps,
                             "device": args.device})
    torch.set_num_threads(1)
    log(f"  1 process: a round of {len(args.networks) * len(args.batches) * 2} passes done")


def _median_range(values):
    return statistics.median(values), min(values), max(values)


def summarise(single, ranks, allreduce, packs, args):
    """One row per (network, m): images/s of each way of running, the all-reduce per step, and the model."""
    table = []
    params = {row["preset"]: row["bytes"] for row in ladder()}
    for name in args.networks:
        for m in args.batches:
            row = {"network": name, "m": m, "bytes": params[name]}
            for threads, key in ((1, "one_process"), (2, "one_process_two_threads")):
                picked = [r for r in single if r["network"] == name and r["m"] == m and r["threads"] == threads]
                if picked:
                    row[key] = _median_range([r["steps"] * m / r["seconds"] for r in picked])
            if ranks and ranks[0]["training"]:
                rounds = [[r for r in rank["training"] if r["network"] == name and r["m"] == m] for rank in ranks]
                steps = rounds[0][0]["steps"]
                # Two independent processes: their images per second added up, round by round.
                row["independent_pair"] = _median_range([steps * m / a["independent_seconds"]
                                                         + steps * m / b["independent_seconds"]
                                                         for a, b in zip(*rounds)])
                row["two_processes"] = _median_range([steps * m / r["seconds"] for r in rounds[0]])
                row["step_two"] = statistics.median(r["seconds"] / steps for r in rounds[0])
                row["comm_per_step"] = statistics.median(r["comm"] for r in rounds[0])
                row["transfer"] = statistics.median(r["transfer"] for r in rounds[0])
                row["wait"] = statistics.median(r["wait"] for r in rounds[0])
                # Each rank's step at m/2 while the other computes too (mean of the ranks, median of the rounds).
                half = statistics.median((a["half_seconds"] + b["half_seconds"]) / 2 / (2 * steps)
                                         for a, b in zip(*rounds))
                row["half_step_together"] = half
                # The same model with the all-reduce as it costs inside training here (its transfer estimate).
                in_training = half + row["transfer"] + packs[name]
                row.update(predicted_in_training=m / in_training,
                           model_in_training_error=(m / in_training) / row["two_processes"][0] - 1)
                if allreduce:
                    predicted_step = half + allreduce_at(allreduce, params[name]) + packs[name]
                    row.update(predicted_step=predicted_step, predicted=m / predicted_step,
                               model_error=(m / predicted_step) / row["two_processes"][0] - 1)
            table.append(row)
    return table


def print_report(context, ladder_rows, allreduce, alpha_beta, table, packs, seed_rows, accuracy_rows, end_load):
    print(f"python {context['python']}, torch {context['torch']}, on {context['platform']}")
    print(cpu_line(context) + f"; at the end: load average {' '.join(str(v) for v in end_load)}")
    print()
    if ladder_rows:
        print("Ladder: parameters and bytes all-reduced per step (float32)")
    for r in ladder_rows:
        print(f"  {r['preset']:9} {r['parameters']:>10,} parameters {r['bytes']:>12,} bytes   {r['network']}")
    if allreduce:
        print()
        print("all_reduce, 2 gloo processes on this machine (median of the calls, after a barrier)")
        for r in allreduce:
            print(f"  {r['bytes']:>12,} bytes  {r['seconds'] * 1e6:>10,.0f} us  (min {r['min'] * 1e6:,.0f}, "
                  f"max {r['max'] * 1e6:,.0f})")
        alpha, beta = alpha_beta
        print(f"  fit t = alpha + B / beta: alpha = {alpha * 1e6:,.0f} us, beta = {beta / 1e9:.2f} GB/s")
    if table:
        print()
        print("Training, images/s: median of the rounds [range]; 1 thread per process unless said")

        def cell(value):
            return "-" if value is None else f"{value[0]:,.0f} [{value[1]:,.0f}-{value[2]:,.0f}]"

        print(f"  {'network':8}{'m':>5}  {'1 process':>20}  {'1 process, 2 threads':>20}  "
              f"{'2 independent':>20}  {'2 data-parallel':>20}")
        for r in table:
            print(f"  {r['network']:8}{r['m']:>5}  {cell(r.get('one_process')):>20}  "
                  f"{cell(r.get('one_process_two_threads')):>20}  {cell(r.get('independent_pair')):>20}  "
                  f"{cell(r.get('two_processes')):>20}")
        print()
        print("Two data-parallel processes, per step (ms): the step; the all-reduce as timed on rank 0 (transfer +")
        print("wait), the transfer alone (the later rank's time) and the wait; the model C2(m/2) + A(B) + P(B) with")
        print("A(B) the all-reduce measured on its own above; then images/s: the model, the model with the transfer")
        print("as measured inside training instead of A(B), and the measured rate")
        print(f"  {'network':8}{'m':>5}{'step':>9}{'all-reduce':>12}{'transfer':>10}{'wait':>8}{'C2(m/2)':>9}"
              f"{'A(B)':>8}{'P(B)':>7}{'model':>8}{'model img/s':>13}{'in-training':>13}{'measured':>10}")
        for r in table:
            if "step_two" not in r:
                continue
            line = (f"  {r['network']:8}{r['m']:>5}{r['step_two'] * 1e3:>9.2f}{r['comm_per_step'] * 1e3:>12.2f}"
                    f"{r['transfer'] * 1e3:>10.2f}{r['wait'] * 1e3:>8.2f}{r['half_step_together'] * 1e3:>9.2f}")
            if "predicted" in r:
                line += (f"{allreduce_at(allreduce, r['bytes']) * 1e3:>8.2f}{packs[r['network']] * 1e3:>7.2f}"
                         f"{r['predicted_step'] * 1e3:>8.2f}{r['predicted']:>7,.0f} ({r['model_error']:+.0%})"
                         f"{r['predicted_in_training']:>7,.0f} ({r['model_in_training_error']:+.0%})"
                         f"{r['two_processes'][0]:>10,.0f}")
            print(line)
    if seed_rows:
        print()
        print("Two independent runs (nndl conv " + " ".join(SHORT_RUN) + ", seeds 1 and 2), whole commands:")
        print("seconds for both, median [range] of the rounds (the last two alternate)")
        summary = seed_summary(seed_rows)
        for how, r in summary.items():
            if how in ("speedup", "idle_projection"):
                continue
            print(f"  {how:38} {r['rounds']} round(s)  wall {r['wall'][0]:6.1f} [{r['wall'][1]:.1f}-{r['wall'][2]:.1f}]"
                  f"  CPU {r['cpu'][0]:6.1f}   test accuracy " + ", ".join(f"{a:.2%}" for a in r["test_accuracy"]))
        if "speedup" in summary:
            low, high = summary["speedup"][1:], summary["idle_projection"][1:]
            print(f"  both at once / one after the other (1 thread each): {summary['speedup'][0]:.2f}x "
                  f"[{low[0]:.2f}-{low[1]:.2f}] measured; {summary['idle_projection'][0]:.2f}x "
                  f"[{high[0]:.2f}-{high[1]:.2f}] on an idle machine (2 x CPU in turn / CPU at once)")
    if accuracy_rows:
        print()
        print("The same short run (seed 1) on 1 and 2 processes")
        for r in accuracy_rows:
            print(f"  {r['processes']} process{'es' if r['processes'] > 1 else ''}: test accuracy "
                  f"{r['test_accuracy']:.2%}, {r['epoch_seconds']} s/epoch of training")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the MNIST directory for the seeds and accuracy parts")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="global mini-batches (even)")
    parser.add_argument("--rounds", type=int, default=2, help="1-process rounds before and after the 2-process job")
    parser.add_argument("--allreduce-repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu",
                        help="device of the 1-process rows (cpu, or cuda: then only those rows are timed)")
    parser.add_argument("--seed-rounds", type=int, default=3,
                        help="rounds of the alternating pair (in turn, at once) of the seeds part")
    parser.add_argument("--no-seed-default-threads", dest="seed_default_threads", action="store_false",
                        help="leave out the two runs one after the other with the default threads (slow on a busy "
                             "machine)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: " + ",".join(PARTS))
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, short passes, relu only")
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--model-only", action="store_true",
                        help="print the GPU predictions of docs/scaling.md's model (from its stated assumptions) "
                             "and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.networks = [n for n in args.networks.split(",") if n]
    args.batches = [int(m) for m in args.batches.split(",") if m]
    if any(m < 2 or m % 2 for m in args.batches):
        parser.error("--batches must be even numbers (each of 2 processes takes half)")
    args.parts = [p for p in PARTS if p not in args.skip.split(",")]
    args.steps = dict(STEPS)
    for m in args.batches:
        args.steps.setdefault(m, max(10, 2000 // m))
    if args.quick:
        args.rounds, args.allreduce_repeats, args.networks, args.seed_rounds = 1, 5, args.networks[:1], 1
        args.seed_default_threads = False
        args.steps = {m: max(5, s // 5) for m, s in args.steps.items()}
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.model_only:
        print_gpu_model(args.networks)
        return 0

    def log(text):
        print(text, file=sys.stderr, flush=True)

    context = dict(base_context(), torch=torch.__version__)
    start = time.perf_counter()
    ladder_rows = ladder() if "ladder" in args.parts else []
    single, ranks, allreduce, packs, alpha_beta = [], [], [], {}, None
    if "training" in args.parts or "allreduce" in args.parts:
        training = [[n, m] for n in args.networks for m in args.batches] if "training" in args.parts else []
        for _ in range(args.rounds if training else 0):
            single_rounds(args, single, log)
        if args.device == "cpu":
            ranks = run_two_processes(args, training, log)
            allreduce = ranks[0]["allreduce"]
        else:                                    # the two-process job is gloo on CPUs: not comparable
            log(f"  --device {args.device}: only the one-process rows are timed")
        for _ in range(args.rounds if training else 0):
            single_rounds(args, single, log)
        if allreduce:
            alpha_beta = fit(allreduce)
        packs = {name: pack_seconds(name) for name in args.networks}
    table = summarise(single, ranks, allreduce, packs, args) if single or ranks else []
    seed_rows = seeds(args, log) if "seeds" in args.parts else []
    accuracy_rows = accuracy(args, log) if "accuracy" in args.parts else []
    end_load = [round(v, 2) for v in os.getloadavg()]
    log(f"  ({time.perf_counter() - start:.0f} s in all)")
    print_report(context, ladder_rows, allreduce, alpha_beta, table, packs, seed_rows, accuracy_rows, end_load)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "context": context, "end_load": end_load, "ladder": ladder_rows, "allreduce": allreduce,
            "fit": None if alpha_beta is None else {"alpha": alpha_beta[0], "beta": alpha_beta[1]},
            "single": single, "ranks": ranks, "table": table, "packs": packs, "seeds": seed_rows,
            "seed_summary": seed_summary(seed_rows) if seed_rows else None,
            "accuracy": accuracy_rows, "args": {k: v for k, v in vars(args).items() if k != "steps"}}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
