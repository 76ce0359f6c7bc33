"""Time training of the chapter 6 networks with nndl and with a plain PyTorch loop.

What is measured is training throughput, in images per second, of the
networks of chapter 6 of "Neural Networks and Deep Learning", on synthetic
MNIST-shaped data (``torch.rand`` images of 1 x 28 x 28, random labels),
mini-batches taken in stored order as the book's network3 does:

conv2-relu (preset "relu")
    conv-pool 20 5x5/2x2 ReLU -> conv-pool 40 5x5/2x2 ReLU -> fully
    connected 100 ReLU -> softmax 10.
dropout (preset "dropout")
    the same conv-pool layers -> fully connected 1,000 ReLU -> fully
    connected 1,000 ReLU -> softmax 10, the inputs of the last three layers
    dropped with probability 0.5.
fc100 (preset "fc100")
    fully connected 100 sigmoid -> softmax 10.

Each network is timed at the book's mini-batch of 10 and at larger ones
(100 by default; ``--batch-sizes 10,100,500``), on the CPU, and on CUDA too
when ``torch.cuda.is_available()``. What is compared:

nndl
    The real training path: ``nndl.deep.train.train`` on a
    ``nndl.deep.network.ConvNetwork`` built from the preset's network, one
    epoch with ``TrainingConfig(epochs=1, mini_batch_size=m, eta=0.03,
    lmbda=0.1, lmbda_scale="batches", shuffle=False, seed=1)``, no
    validation or test data. The time is ``History.epoch_time[0]``: the
    training pass alone, without the measurements after the epoch.
reference
    The same network written separately in this script as one usually
    writes it in PyTorch: an ``nn.Module`` of ``nn.Conv2d`` and ``nn.Linear``
    layers, ``F.max_pool2d``, ``nn.Dropout``, trained by ``torch.optim.SGD``
    (lr 0.03, the same L2 step as weight decay, on all parameters) with
    ``optimizer.zero_grad(); loss = F.cross_entropy(model(x), y);
    loss.backward(); optimizer.step()``, PyTorch's default settings
    (oneDNN/mkldnn and cuDNN as they come). It sees the same images, the
    same mini-batches and the same number of steps as nndl.
compiled reference (``--compile`` only)
    The reference with ``torch.compile(model)`` (default mode, compiled
    afresh for each row); the first step, which compiles, is timed
    separately ("compile s") and left out of its images per second.
NumPy MLP (timed in the fc100 CPU rounds)
    nndl's own NumPy engine, ``nndl.training.train``, on the book's
    network2-style network: ``NetworkConfig(sizes=(784, 100, 10),
    activations=("sigmoid", "softmax"), cost="log-likelihood",
    init="default", dtype="float32")``, one epoch over the same images with
    the same settings; the time is ``History.epoch_time[0]``. That engine
    always trains on one BLAS thread.

several networks at once (``--members``, 3 and 5 by default)
    K ``dropout`` networks (seeds 1..K) at the book's mini-batch of 10,
    trained for one epoch together by ``nndl.deep.multi.train_many``, against
    the same K networks trained one at a time by ``train`` (the sum of their
    ``History.epoch_time[0]``), interleaved in the same rounds. What is
    compared is member-images per second: K x the images of the epoch over
    the seconds it took. The number of images is chosen from a short timed
    ``train`` pass of one network, so that one network's pass takes about
    ``--seconds``.

Every contender warms up first (a few steps for the reference, a tiny
``train`` call for nndl). The number of images N of each (network, m,
device) is chosen so that one pass takes about ``--seconds`` (1.5 s by
default, at most 50,000 images, the book's training set; ``--images`` fixes
it), estimated from a short timed run of the reference. Then the contenders
run alternately, ``--repeats`` rounds (3 by default), and the median of each
is reported, so that a change in the machine's load hits all of them alike.

How to read the output: one row per (network, m, device): images per second
of the reference and of nndl, and nndl / reference (above 1: nndl is
faster). ``threads`` is ``torch.get_num_threads()``, 1 by default
(``--threads``): one thread per process is how parallel runs (one seed per
core) use this machine. The project's speed targets are printed at the end as
PASS or FAIL, computed from the measured ratios; nothing is asserted.
Then one row per (K, device) of networks trained at once: member-images per
second one at a time and together, and together / one at a time.
Timings vary with whatever else the machine is doing: compare the rows of
one run, never numbers across runs.

Usage::

    python benchmarks/bench_chapter6.py
    python benchmarks/bench_chapter6.py --networks conv2-relu --batch-sizes 10,100,500 --json out.json
    python benchmarks/bench_chapter6.py --quick          # smoke run, seconds
    python benchmarks/bench_chapter6.py --compile        # adds a torch.compile reference
    python benchmarks/bench_chapter6.py --networks fc100 --batch-sizes 10 --members 3,5,10
    python benchmarks/bench_chapter6.py --members none   # without the rows of several networks at once
"""

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing

from machine import base_context, cpu_line  # noqa: E402  (benchmarks/machine.py, beside this script)

from nndl.deep.multi import train_many  # noqa: E402
from nndl.deep.network import ConvNetwork  # noqa: E402
from nndl.deep.presets import get_preset  # noqa: E402
from nndl.deep.train import train as train_conv  # noqa: E402
from nndl.training import train as train_numpy  # noqa: E402
from nndl.training.config import NetworkConfig, TrainingConfig  # noqa: E402

#: The networks: nndl's preset, and how the reference writes the same network.
NETWORKS = {
    "conv2-relu": dict(preset="relu", convs=(20, 40), hidden=(100,), activation="relu", p_dropout=0.0),
    "dropout": dict(preset="dropout", convs=(20, 40), hidden=(1000, 1000), activation="relu", p_dropout=0.5),
    "fc100": dict(preset="fc100", convs=(), hidden=(100,), activation="sigmoid", p_dropout=0.0),
}
ETA = 0.03
LMBDA = 0.1
SEED = 1
WARMUP_STEPS = 5               # reference steps (and nndl mini-batches) before anything is timed
CALIBRATION_IMAGES = 1000      # images of the timed reference pass that chooses N (at least 3 mini-batches)
MIN_STEPS = 10                 # each timed pass has at least this many mini-batches ...
MIN_IMAGES = 1000              # ... and images (unless --quick or --images)
MAX_IMAGES = 50_000            # ... and at most the book's training set
QUICK_SECONDS = 0.2
NUMPY_MLP = NetworkConfig(sizes=(784, 100, 10), activations=("sigmoid", "softmax"), cost="log-likelihood",
                          init="default", dtype="float32")
#: Several networks at once: which network, at which mini-batch size.
MEMBERS_NETWORK, MEMBERS_M = "dropout", 10
#: The project's speed targets: nndl / reference on the CPU for conv2-relu, at m = 10 and at larger mini-batches.
TARGET_NETWORK, TARGET_SMALL_M, TARGET_SMALL, TARGET_LARGE = "conv2-relu", 10, 1.5, 1.0


# ---------------------------------------------------------------------------
# The reference: the same networks as plain, idiomatic PyTorch
# ---------------------------------------------------------------------------

class ReferenceNet(nn.Module):
    """Conv-pool layers (conv, 2x2 max-pool, ReLU), fully connected layers, a linear output of 10 logits.

    ``convs`` are the numbers of 5x5 filters, ``hidden`` the sizes of the
    fully connected layers; ``p_dropout`` drops the inputs of the fully
    connected layers and of the output layer, as the book's network does.
    """

    def __init__(self, convs, hidden, activation, p_dropout):
        super().__init__()
        self.convs = nn.ModuleList()
        channels, size = 1, 28
        for filters in convs:
            self.convs.append(nn.Conv2d(channels, filters, kernel_size=5))
            channels, size = filters, (size - 4) // 2
        n_in = channels * size * size
        self.fcs = nn.ModuleList()
        for n_out in hidden:
            self.fcs.append(nn.Linear(n_in, n_out))
            n_in = n_out
        self.out = nn.Linear(n_in, 10)
        self.activation = F.relu if activation == "relu" else torch.sigmoid
        self.drop = nn.Dropout(p_dropout) if p_dropout else nn.Identity()

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(F.max_pool2d(conv(x), 2))
        x = torch.flatten(x, 1)
        for fc in self.fcs:
            x = self.activation(fc(self.drop(x)))
        return self.out(self.drop(x))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_pass(model, optimizer, x, y, m, device):
    """One pass over (x, y) in stored mini-batches of m, the plain PyTorch loop; returns the seconds."""
    model.train()
    sync(device)
    start = time.perf_counter()
    for k in range(0, x.shape[0] - m + 1, m):
        xb, yb = x[k:k + m], y[k:k + m]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def synthetic_data(n, device, seed):
    """n random images (n, 1, 28, 28) in [0, 1) and random labels (n,), on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    return x.to(device), y.to(device)


# ---------------------------------------------------------------------------
# nndl
# ---------------------------------------------------------------------------

def nndl_config(m):
    return TrainingConfig(epochs=1, mini_batch_size=m, eta=ETA, lmbda=LMBDA, lmbda_scale="batches", shuffle=False,
                          seed=SEED)


def nndl_pass(net, x, y, m):
    """One epoch of ``nndl.deep.train.train``; returns History.epoch_time[0] (training only)."""
    sync(net.device)
    history = train_conv(net, (x, y), nndl_config(m))
    if history.stop_reason != "completed":
        raise RuntimeError(f"nndl's training stopped early ({history.stop_reason}: {history.message})")
    return history.epoch_time[0]


def numpy_pass(net, x, labels, m):
    """One epoch of nndl's NumPy engine ``nndl.training.train``; returns History.epoch_time[0]."""
    history = train_numpy(net, (x, labels), nndl_config(m))
    if history.stop_reason != "completed":
        raise RuntimeError(f"the NumPy engine's training stopped early ({history.stop_reason}: {history.message})")
    return history.epoch_time[0]


# ---------------------------------------------------------------------------
# One (network, m, device): calibrate, warm up, interleave
# ---------------------------------------------------------------------------

def choose_images(rate, m, args):
    """N: a whole number of mini-batches taking about ``args.seconds`` at ``rate`` images/s."""
    if args.images:
        return max(1, args.images // m) * m
    low = m * (3 if args.quick else MIN_STEPS)
    if not args.quick:
        low = max(low, MIN_IMAGES)
    n = min(max(args.seconds * rate, low), max(MAX_IMAGES, low))
    return max(1, int(round(n / m))) * m


def bench_one(name, m, device, args, log):
    """Times the contenders on one network, mini-batch size and device; returns the result row."""
    spec = NETWORKS[name]
    torch.manual_seed(SEED)
    reference = ReferenceNet(spec["convs"], spec["hidden"], spec["activation"], spec["p_dropout"]).to(device)
    net = ConvNetwork(get_preset(spec["preset"]).network, device=device, seed=SEED)
    n_reference = sum(p.numel() for p in reference.parameters())
    if n_reference != net.n_parameters():
        raise RuntimeError(f"{name}: the reference has {n_reference:,} parameters, nndl's network "
                           f"{net.n_parameters():,}: they are not the same network")
    optimizer = torch.optim.SGD(reference.parameters(), lr=ETA)

    # Warm-up and calibration on data of their own: the reference's rate chooses N.
    steps = max(3, CALIBRATION_IMAGES // m)
    x_cal, y_cal = synthetic_data((WARMUP_STEPS + steps) * m, device, SEED + 1)
    reference_pass(reference, optimizer, x_cal[:WARMUP_STEPS * m], y_cal[:WARMUP_STEPS * m], m, device)
    seconds = reference_pass(reference, optimizer, x_cal[WARMUP_STEPS * m:], y_cal[WARMUP_STEPS * m:], m, device)
    n = choose_images(steps * m / seconds, m, args)
    nndl_pass(net, x_cal[:WARMUP_STEPS * m], y_cal[:WARMUP_STEPS * m], m)
    # The book's L2 step, lambda / (number of mini-batches), as weight decay (on the biases too).
    optimizer.param_groups[0]["weight_decay"] = LMBDA / (n // m)
    x, y = synthetic_data(n, device, SEED)

    contenders = {"reference": lambda: reference_pass(reference, optimizer, x, y, m, device),
                  "nndl": lambda: nndl_pass(net, x, y, m)}
    row = dict(network=name, preset=spec["preset"], m=m, device=device.type, threads=torch.get_num_threads(),
               images=n, steps=n // m, parameters=n_reference)

    if args.compile:
        compiled, row["compile_seconds"], row["compile_error"] = compile_reference(reference, x_cal, y_cal, m,
                                                                                   device)
        if compiled is not None:
            model, compiled_optimizer = compiled
            compiled_optimizer.param_groups[0]["weight_decay"] = LMBDA / (n // m)
            contenders["compiled"] = lambda: reference_pass(model, compiled_optimizer, x, y, m, device)
    if name == "fc100" and device.type == "cpu":
        mlp = NUMPY_MLP.build(seed=SEED)
        x_np, labels_np = x.reshape(n, -1).numpy(), y.numpy()
        numpy_pass(mlp, x_cal[:WARMUP_STEPS * m].reshape(WARMUP_STEPS * m, -1).numpy(),
                   y_cal[:WARMUP_STEPS * m].numpy(), m)
        contenders["numpy"] = lambda: numpy_pass(mlp, x_np, labels_np, m)

    times = {key: [] for key in contenders}
    for _ in range(args.repeats):
        for key, run in contenders.items():
            times[key].append(run())
    steps_images = (n // m) * m
    for key, values in times.items():
        row[f"{key}_seconds"] = values
        row[f"{key}_images_per_second"] = steps_images / statistics.median(values)
    row["ratio"] = row["nndl_images_per_second"] / row["reference_images_per_second"]
    log(f"  {name} m={m} {device.type}: N={n:,}, reference {row['reference_images_per_second']:,.0f} img/s, "
        f"nndl {row['nndl_images_per_second']:,.0f} img/s ({row['ratio']:.2f}x)"
        + (f", NumPy MLP {row['numpy_images_per_second']:,.0f} img/s" if "numpy" in times else ""))
    return row


def compile_reference(reference, x_cal, y_cal, m, device):
    """A torch.compile'd copy of the reference, warmed up.

    Returns ((model, optimizer), seconds of the first step, None), or (None, None, why) if compiling failed.
    """
    model = copy.deepcopy(reference)
    optimizer = torch.optim.SGD(model.parameters(), lr=ETA)
    try:
        torch.compiler.reset()      # a fresh compilation for each row, not graphs cached by earlier rows
        compiled = torch.compile(model)
        seconds = reference_pass(compiled, optimizer, x_cal[:m], y_cal[:m], m, device)    # compiles fwd + bwd
        reference_pass(compiled, optimizer, x_cal[:WARMUP_STEPS * m], y_cal[:WARMUP_STEPS * m], m, device)
    except Exception as error:      # noqa: BLE001 - any failure of the compiler stack only skips this variant
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return None, None, f"{type(error).__name__}: {first_line}"
    return (compiled, optimizer), seconds, None


def members_config(m, seed):
    return nndl_config(m).replace(seed=seed)


def one_at_a_time_pass(nets, seeds, x, y, m):
    """Each network's epoch of ``train`` in turn; returns the sum of their History.epoch_time[0]."""
    seconds = 0.0
    for net, seed in zip(nets, seeds):
        sync(net.device)
        history = train_conv(net, (x, y), members_config(m, seed))
        if history.stop_reason != "completed":
            raise RuntimeError(f"nndl's training stopped early ({history.stop_reason}: {history.message})")
        seconds += history.epoch_time[0]
    return seconds


def together_pass(nets, seeds, x, y, m):
    """One epoch of ``train_many`` for all the networks; returns its History.epoch_time[0] (the same for all)."""
    sync(nets[0].device)
    histories = train_many(nets, (x, y), nndl_config(m), seeds=seeds)
    stopped = [h for h in histories if h.stop_reason != "completed"]
    if stopped:
        raise RuntimeError(f"nndl's training stopped early ({stopped[0].stop_reason}: {stopped[0].message})")
    return histories[0].epoch_time[0]


def bench_members(k, device, args, log):
    """K ``dropout`` networks at once against one at a time, interleaved; returns the result row."""
    m, spec = MEMBERS_M, NETWORKS[MEMBERS_NETWORK]
    seeds = [SEED + i for i in range(k)]
    nets = [ConvNetwork(get_preset(spec["preset"]).network, device=device, seed=seed) for seed in seeds]
    # Warm-up, and one network's rate on data of its own chooses N.
    steps = max(3, CALIBRATION_IMAGES // m)
    x_cal, y_cal = synthetic_data((WARMUP_STEPS + steps) * m, device, SEED + 1)
    warm_x, warm_y = x_cal[:WARMUP_STEPS * m], y_cal[:WARMUP_STEPS * m]
    one_at_a_time_pass(nets[:1], seeds[:1], warm_x, warm_y, m)
    together_pass(nets, seeds, warm_x, warm_y, m)
    seconds = one_at_a_time_pass(nets[:1], seeds[:1], x_cal[WARMUP_STEPS * m:], y_cal[WARMUP_STEPS * m:], m)
    n = choose_images(steps * m / seconds, m, args)
    x, y = synthetic_data(n, device, SEED)
    contenders = {"one_at_a_time": lambda: one_at_a_time_pass(nets, seeds, x, y, m),
                  "together": lambda: together_pass(nets, seeds, x, y, m)}
    times = {key: [] for key in contenders}
    for _ in range(args.repeats):
        for key, run in contenders.items():
            times[key].append(run())
    row = dict(network=MEMBERS_NETWORK, members=k, m=m, device=device.type, threads=torch.get_num_threads(),
               images=n, steps=n // m)
    member_images = k * (n // m) * m
    for key, values in times.items():
        row[f"{key}_seconds"] = values
        row[f"{key}_member_images_per_second"] = member_images / statistics.median(values)
    row["ratio"] = row["together_member_images_per_second"] / row["one_at_a_time_member_images_per_second"]
    log(f"  {k} x {MEMBERS_NETWORK} m={m} {device.type}: N={n:,}, one at a time "
        f"{row['one_at_a_time_member_images_per_second']:,.0f} member-img/s, together "
        f"{row['together_member_images_per_second']:,.0f} member-img/s ({row['ratio']:.2f}x)")
    return row


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

def machine_context():
    context = dict(base_context(), torch=torch.__version__, threads=torch.get_num_threads(),
                   mkldnn_enabled=torch.backends.mkldnn.enabled, cuda=torch.cuda.is_available())
    if context["cuda"]:
        context["cuda_device"] = torch.cuda.get_device_name(0)
    return context


def print_context(context):
    print(f"python {context['python']} on {context['platform']}")
    print(f"torch {context['torch']}, numpy {context['numpy']}")
    print(cpu_line(context))
    print(f"CUDA: {context.get('cuda_device', 'not available')}")
    print(f"torch.set_num_threads({context['threads']}): one thread per process is how parallel runs "
          f"(one seed per core) use this machine")
    print(f"reference: PyTorch defaults (torch.backends.mkldnn.enabled = {context['mkldnn_enabled']}); "
          "nndl chooses its own kernels inside train()")
    print(flush=True)


def print_table(rows, with_compile):
    header = (f"{'network':<12}{'m':>5}  {'device':<8}{'threads':>7}{'images':>8}{'reference img/s':>17}"
              f"{'nndl img/s':>12}{'nndl/ref':>10}")
    if with_compile:
        header += f"{'compiled img/s':>16}{'compile s':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        line = (f"{r['network']:<12}{r['m']:>5}  {r['device']:<8}{r['threads']:>7}{r['images']:>8,}"
                f"{r['reference_images_per_second']:>17,.0f}{r['nndl_images_per_second']:>12,.0f}"
                f"{r['ratio']:>9.2f}x")
        if with_compile:
            if "compiled_images_per_second" in r:
                line += f"{r['compiled_images_per_second']:>16,.0f}{r['compile_seconds']:>11.1f}"
            else:
                line += f"{'failed':>16}{'-':>11}"
        print(line)
    print()
    print("img/s: training images per second, median of the rounds; nndl/ref: above 1 = nndl faster.")


def print_numpy(rows):
    numpy_rows = [r for r in rows if "numpy_images_per_second" in r]
    if not numpy_rows:
        print("NumPy MLP: not timed (it runs in the fc100 cpu rounds; add fc100 to --networks).")
        return
    print("NumPy MLP: nndl.training.train, [784, 100, 10] sigmoid + softmax, log-likelihood, float32,")
    print("1 BLAS thread (timed in the fc100 cpu rounds, on the same images):")
    for r in numpy_rows:
        numpy_rate = r["numpy_images_per_second"]
        print(f"  m={r['m']:<4} {numpy_rate:>10,.0f} img/s  = {numpy_rate / r['reference_images_per_second']:.2f}x "
              f"the PyTorch reference, {numpy_rate / r['nndl_images_per_second']:.2f}x nndl's PyTorch engine")


def print_members(rows):
    if not rows:
        print("several networks at once: not timed (--members none).")
        return
    print(f"several networks at once: {MEMBERS_NETWORK} networks, m={MEMBERS_M}, nndl.deep.multi.train_many against "
          "train one network at a time")
    header = (f"{'networks':>8}  {'device':<8}{'threads':>7}{'images':>8}{'one at a time':>15}{'together':>10}"
              f"{'together/one':>14}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['members']:>8}  {r['device']:<8}{r['threads']:>7}{r['images']:>8,}"
              f"{r['one_at_a_time_member_images_per_second']:>15,.0f}{r['together_member_images_per_second']:>10,.0f}"
              f"{r['ratio']:>13.2f}x")
    print()
    print("member-images/s: networks x images of the epoch / seconds, median of the rounds; together/one: above 1 = "
          "training them at once is faster.")


def target_results(rows):
    """The project's speed targets, each as a dict: what, goal, measured ratio (None: not measured), passed."""
    results = []
    cpu_rows = {r["m"]: r for r in rows if r["network"] == TARGET_NETWORK and r["device"] == "cpu"}
    wanted = [TARGET_SMALL_M] + sorted(m for m in cpu_rows if m > TARGET_SMALL_M)
    for m in wanted:
        goal = TARGET_SMALL if m == TARGET_SMALL_M else TARGET_LARGE
        ratio = cpu_rows[m]["ratio"] if m in cpu_rows else None
        results.append(dict(network=TARGET_NETWORK, device="cpu", m=m, goal=goal, ratio=ratio,
                            passed=None if ratio is None else ratio >= goal))
    if len(wanted) == 1:
        results.append(dict(network=TARGET_NETWORK, device="cpu", m="larger", goal=TARGET_LARGE, ratio=None,
                            passed=None))
    return results


def print_targets(results):
    print("targets (nndl / plain eager PyTorch, on the CPU):")
    for t in results:
        size = f"m={t['m']}" if t["m"] != "larger" else f"m>{TARGET_SMALL_M}"
        what = f"{t['network']} cpu {size}: nndl >= {t['goal']:.1f}x the reference"
        if t["ratio"] is None:
            print(f"  NOT MEASURED  {what}")
        else:
            print(f"  {'PASS' if t['passed'] else 'FAIL':<12}  {what}: measured {t['ratio']:.2f}x")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help="comma-separated subset of " + ",".join(NETWORKS) + " (default all)")
    parser.add_argument("--batch-sizes", default="10,100", help="comma-separated mini-batch sizes (default 10,100)")
    parser.add_argument("--devices", default=None,
                        help="comma-separated subset of cpu,cuda (default: cpu, and cuda when available)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="about how long each timed pass should take (default 1.5; "
                             f"{QUICK_SECONDS:g} with --quick)")
    parser.add_argument("--images", type=int, default=None,
                        help="images per timed pass instead of choosing them from --seconds")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short passes, 1 round")
    parser.add_argument("--compile", action="store_true",
                        help="also time the reference under torch.compile (skipped with a note if it fails)")
    parser.add_argument("--members", default="3,5",
                        help=f"numbers of {MEMBERS_NETWORK} networks to train at once against one at a time, "
                             f"comma-separated (default 3,5; 'none' skips them)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.members.strip().lower() == "none":
        args.members = []
    else:
        try:
            args.members = [int(k) for k in args.members.split(",") if k.strip()]
        except ValueError:
            parser.error(f"--members must be whole numbers separated by commas, or none; got {args.members!r}")
        if min(args.members, default=2) < 2:
            parser.error("--members: train at least 2 networks at once")
    args.networks = [name.strip() for name in args.networks.split(",") if name.strip()]
    unknown = sorted(set(args.networks) - set(NETWORKS))
    if unknown or not args.networks:
        parser.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    try:
        args.batch_sizes = [int(m) for m in args.batch_sizes.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--batch-sizes must be whole numbers separated by commas, got {args.batch_sizes!r}")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        parser.error("--batch-sizes must be at least 1")
    available = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.devices is None:
        args.devices = available
    else:
        args.devices = [d.strip() for d in args.devices.split(",") if d.strip()]
        missing = sorted(set(args.devices) - set(available))
        if missing or not args.devices:
            parser.error(f"device(s) {', '.join(missing)} not available here; choose from {', '.join(available)}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.seconds is None:
        args.seconds = QUICK_SECONDS if args.quick else 1.5
    if args.repeats < 1 or args.threads < 1 or args.seconds <= 0 or (args.images is not None and args.images < 1):
        parser.error("--repeats, --threads and --images must be at least 1, --seconds above 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    context = machine_context()
    print_context(context)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    rows, notes = [], []
    start = time.perf_counter()
    for device_name in args.devices:
        device = torch.device(device_name)
        for name in args.networks:
            for m in args.batch_sizes:
                rows.append(bench_one(name, m, device, args, log))
    member_rows = [bench_members(k, torch.device(device_name), args, log)
                   for device_name in args.devices for k in args.members]
    log(f"  ({time.perf_counter() - start:.0f} s in all)")
    log("")

    print_table(rows, args.compile)
    print_numpy(rows)
    print()
    targets = target_results(rows)
    print_targets(targets)
    print()
    print_members(member_rows)
    if torch.backends.mkldnn.enabled != context["mkldnn_enabled"]:
        notes.append("torch.backends.mkldnn.enabled changed during the run: the reference rows may not have "
                     "used PyTorch's defaults")
    errors = sorted({r["compile_error"] for r in rows if r.get("compile_error")})
    for error in errors:
        notes.append(f"torch.compile failed, the compiled reference was skipped: {error}")
    if args.quick:
        notes.append(f"--quick: about {args.seconds:g} s per pass and {args.repeats} round(s): a smoke run, "
                     "not a measurement.")
    for note in notes:
        print("note:", note)

    if args.json:
        config = dict(networks=args.networks, batch_sizes=args.batch_sizes, devices=args.devices,
                      repeats=args.repeats, threads=args.threads, seconds=args.seconds, images=args.images,
                      quick=args.quick, compile=args.compile, members=args.members, eta=ETA, lmbda=LMBDA,
                      seed=SEED)
        result = dict(context=context, config=config, results=rows, targets=targets, members=member_rows,
                      notes=notes)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
