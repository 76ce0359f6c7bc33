"""Check nndl's chapter 6 on a CUDA GPU in one command and a few minutes: tests, timings, the ladder.

Made for the rare day a GPU machine is lent for a few minutes. Everything it
writes goes under ``--out`` (default ``gpu-check/``), and a run that is
stopped keeps what it did. It never writes into ``experiments/results``.

What it does, in order, each step within its share of ``--budget`` seconds
(default 480 in all):

0. The machine: GPU name and memory, compute capability, torch, CUDA and
   cuDNN versions, TF32 settings, CPUs, load.
1. Tests (a subprocess): ``pytest tests/test_cuda.py tests/test_deep.py -k
   "cuda or device or checkpoint or resum"`` -- every test that touches a
   CUDA code path (CPU against CUDA numbers, checkpoints and model files
   across devices, nccl with one process, ``nndl reproduce`` on the GPU).
   Passed, failed, skipped and errors are counted from pytest's JUnit XML;
   the output is kept in ``OUT/step1-pytest.txt``.
2. Timings (a subprocess, so that a failed CUDA graph capture cannot harm
   step 3): the network of each rung of the chapter 6 ladder
   (``nndl.deep.presets``), at the book's mini-batch of 10 and settings, on
   synthetic MNIST-shaped data (random 28x28 images and labels, stored
   order). A fixed number of steps (``--steps``, 1,000) is timed and
   extrapolated to an epoch of the rung's training set (50,000 images, or
   250,000 for the expanded-data rungs). Four ways:

   1 eager      ``nndl.deep.train.train``, one network: the real training path
                (``History.epoch_time`` of a one-epoch run, after a warm-up).
   1 graph      the same ``TorchEngine.step`` replayed from a CUDA graph by
                ``nndl.deep.graphs.GraphedStep``, the path of training with
                ``cuda_graph=True``: 3 eager warm-up steps on a side stream,
                one capture, then each mini-batch copied into the graph's
                static input buffers and the graph replayed. Dropout draws
                from the engine's own CUDA generator, registered with the
                graph. First those 23 steps are compared with the same 23
                steps run eagerly from the same start, both with cuDNN's
                deterministic algorithms ("check": max |difference| of the
                parameters); then the step is captured afresh with the kernels
                training uses, and timed.
   K eager      ``nndl.deep.multi.train_many``: K = 5 networks at once.
   K graph      the step of train_many's engine (``MultiTorchEngine.step``)
                captured and replayed the same way, checked the same way.

   The K rows need ``nndl.deep.multi``; where it is absent they are skipped,
   said in one line. Without CUDA (``--quick --device cpu``) nothing is
   captured: the "graph" rows run the same step on the same static buffers
   eagerly (marked ``*``), which checks everything but the capture.
3. The ladder: with the time left, as much of chapter 6 as fits, at the
   book's settings, on the real MNIST (``--data`` or ``NNDL_DATA``), fastest
   rung first (as timed in step 2), one seed, through ``nndl reproduce``
   itself (``nndl.experiments.runner.reproduce`` on the GPU). A rung gets the
   book's epochs when they fit, else as many as fit (``--epochs``: kept apart
   as ``ID-eN.json``, not compared with the book). Results, figures and
   ``REPORT.md`` are written into OUT as each rung finishes; every epoch is
   checkpointed (``OUT/runs/checkpoints``), so a stopped run keeps its
   epochs and a later ``gpu_check`` with the same OUT goes on from them. A
   timer stops training (between two mini-batches, as Ctrl-C does) before
   the budget runs out. On CUDA each training step is replayed from a CUDA
   graph (``nndl reproduce --cuda-graph``; ``--eager-ladder`` trains
   eagerly), and a rung's pace is predicted from its "1 graph" row.

Everything measured is in ``OUT/gpu_check.json``; what was printed is in
``OUT/gpu_check.log``.

``--quick`` runs the same three steps tiny: 20 timed steps of three rungs'
networks, and the ``--quick`` configuration of one rung (ch6-fc100: one epoch
on 1,000 images). It is the only way to run without CUDA: without a GPU and
without ``--quick`` the script says so in one line and exits with status 2.

Usage::

    NNDL_DATA=/path/to/mnist python benchmarks/gpu_check.py --out gpu-check
    python benchmarks/gpu_check.py --quick --device cpu --out /tmp/gpu-check     # a smoke run, no GPU
"""

import argparse
import importlib.util
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))                    # run from a checkout without installing
sys.path.insert(0, str(HERE))

FORMAT, VERSION = "nndl-gpu-check", 1
#: Each step's share of the budget: step 1 ends by this fraction of it (and within STEP1_MAX s), step 2 by this.
STEP1_SHARE, STEP1_MAX, STEP2_END = 0.25, 150.0, 0.55
#: Seconds kept back at the end of the budget: writing the last files after the ladder's timer has stopped it.
FINISH_MARGIN, QUICK_FINISH_MARGIN = 20.0, 5.0
#: The pytest selection of step 1: every test that touches a CUDA path.
TEST_FILES = ("tests/test_cuda.py", "tests/test_deep.py")
TEST_SELECTION = "cuda or device or checkpoint or resum"
#: Step 2: networks trained at once, warm-up steps before a capture, steps compared with eager ones.
K, WARMUP, CHECK_STEPS = 5, 3, 20
STEPS, QUICK_STEPS, QUICK_CHECK_STEPS = 1000, 20, 5
QUICK_RUNGS = ("fc100", "relu", "dropout")
QUICK_LADDER = ("ch6-fc100",)
#: A graph's parameters may differ from the eager steps' by this fraction of the largest parameter (float32).
CHECK_TOLERANCE = 1e-4
MODES = ("1 eager", "1 graph", f"{K} eager", f"{K} graph")
#: The book's training sets: 50,000 images, or 250,000 for the rungs trained on the expanded data.
BOOK_IMAGES, EXPANDED_IMAGES = 50_000, 250_000
EVALUATION_IMAGES = 20_000          # validation and test, measured after every epoch


def first_line(error):
    """'TypeError: the first line of the message' (at most 300 characters)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300].rstrip(": ")


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def multi_available():
    """Whether ``nndl.deep.multi`` (train_many, K networks at once) is in this tree."""
    try:
        return importlib.util.find_spec("nndl.deep.multi") is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------------------
# Output: the log, the JSON
# ---------------------------------------------------------------------------

class Log:
    """Print a line and keep it in OUT/gpu_check.log."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")        # noqa: SIM115 - open for the whole run

    def __call__(self, line=""):
        print(line, flush=True)
        self.file.write(f"{line}\n")
        self.file.flush()

    def close(self):
        self.file.close()


def save(report, out):
    from nndl.files.atomic import atomic_write_text
    atomic_write_text(out / "gpu_check.json", json.dumps(report, indent=1, default=str) + "\n")


# ---------------------------------------------------------------------------
# 0. The machine
# ---------------------------------------------------------------------------

def machine(device):
    import torch
    from machine import base_context
    context = dict(base_context(), torch=torch.__version__, cuda=torch.version.cuda, device=str(device),
                   cuda_available=torch.cuda.is_available(), threads=torch.get_num_threads())
    if torch.backends.cudnn.is_available():
        context["cudnn"] = torch.backends.cudnn.version()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        context.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                       compute_capability=f"{props.major}.{props.minor}",
                       multiprocessors=props.multi_processor_count, gpu_count=torch.cuda.device_count(),
                       tf32_cudnn=torch.backends.cudnn.allow_tf32, tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if smi.returncode == 0 and smi.stdout.strip():
                context["driver"] = smi.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return context


def print_machine(context, log):
    from machine import cpu_line
    if "gpu" in context:
        log(f"GPU: {context['gpu']}, {context['gpu_memory_gib']} GiB, compute capability "
            f"{context['compute_capability']}, {context['multiprocessors']} multiprocessors"
            f"{', driver ' + context['driver'] if 'driver' in context else ''}"
            f" ({context['gpu_count']} visible)")
        log(f"TF32: cuDNN {context['tf32_cudnn']}, matmul {context['tf32_matmul']} (PyTorch's defaults; "
            "float32 convolutions may round to TF32)")
    else:
        log(f"GPU: none used (device {context['device']}; CUDA available: {context['cuda_available']})")
    log(f"torch {context['torch']}, CUDA {context['cuda'] or '-'}, cuDNN {context.get('cudnn', '-')}; "
        f"Python {context['python']}; {cpu_line(context)}")


# ---------------------------------------------------------------------------
# Subprocesses with a time limit
# ---------------------------------------------------------------------------

def run_streaming(command, limit, on_line, env=None):
    """Run ``command`` (cwd ROOT), handing each output line to ``on_line``; kill it after ``limit`` s.

    Returns (returncode, timed_out, seconds).
    """
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", start_new_session=True)
    expired = threading.Event()

    def stop():
        expired.set()
        try:
            os.killpg(process.pid, signal.SIGKILL)               # the process and anything it started
        except (ProcessLookupError, PermissionError):
            pass

    timer = threading.Timer(max(1.0, limit), stop)
    timer.start()
    try:
        for line in process.stdout:
            on_line(line.rstrip("\n"))
        process.wait()
    except BaseException:
        stop()
        process.wait()
        raise
    finally:
        timer.cancel()
    return process.returncode, expired.is_set(), time.perf_counter() - start


def child_env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get(
        "PYTHONPATH", "").split(os.pathsep) if p]), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# ---------------------------------------------------------------------------
# 1. Tests
# ---------------------------------------------------------------------------

def step1_tests(out, limit, log):
    command = [sys.executable, "-m", "pytest", *TEST_FILES, "-k", TEST_SELECTION, "-v", "-rfEs",
               "-p", "no:cacheprovider", f"--junitxml={out / 'step1-junit.xml'}",
               f"--basetemp={out / 'step1-tmp'}"]
    section = {"command": shlex.join(["python", *command[1:]]), "limit_seconds": round(limit, 1)}
    log(f"$ {section['command']}")
    if importlib.util.find_spec("pytest") is None:
        section["skipped"] = "pytest is not installed (pip install pytest)"
        log(f"step 1 skipped: {section['skipped']}")
        return section
    junit = out / "step1-junit.xml"
    if junit.exists():
        junit.unlink()
    lines = []
    with open(out / "step1-pytest.txt", "w", encoding="utf-8") as text:
        def keep(line):
            lines.append(line)
            text.write(line + "\n")
            text.flush()
        code, timed_out, seconds = run_streaming(command, limit, keep, child_env())
    section.update(returncode=code, timed_out=timed_out, seconds=round(seconds, 1), output="step1-pytest.txt")
    counts = _junit_counts(junit)
    if counts is None:                                 # killed before pytest wrote its report: count its lines
        counts = _line_counts(lines)
        section["counted_from"] = "pytest's output (it was stopped before writing its report)"
    section.update(counts)
    summary = next((line for line in reversed(lines) if " in " in line and ("passed" in line or "failed" in line
                                                                          or "skipped" in line or "error" in line)),
                   lines[-1] if lines else "(no output)")
    section["summary"] = summary.strip("= ")
    if timed_out:
        log(f"step 1: stopped after its {limit:.0f} s; counted so far: {_counts_words(section)}")
    else:
        log(f"step 1: {_counts_words(section)} in {seconds:.0f} s (pytest says: {section['summary']})")
    for failure in section.get("failures", [])[:10]:
        log(f"  FAILED {failure['test']}: {failure['message']}")
    return section


def _counts_words(section):
    return (f"{section['passed']} passed, {section['failed']} failed, {section['errors']} errors, "
            f"{section['skipped']} skipped")


def _line_counts(lines):
    """passed/failed/errors/skipped from pytest -v lines ('tests/x.py::test_y PASSED [ 10%]')."""
    counts = dict(passed=0, failed=0, errors=0, skipped=0)
    failures = []
    words = {"PASSED": "passed", "FAILED": "failed", "ERROR": "errors", "SKIPPED": "skipped", "XFAIL": "skipped",
             "XPASS": "passed"}
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and "::" in parts[0] and parts[1] in words:
            counts[words[parts[1]]] += 1
            if parts[1] in ("FAILED", "ERROR"):
                failures.append({"test": parts[0], "message": parts[1].lower()})
    return {**counts, "failures": failures, "skip_reasons": {}}


def _junit_counts(path):
    """passed/failed/errors/skipped and each failure's test and message from pytest's JUnit XML, or None."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    counts = dict(passed=0, failed=0, errors=0, skipped=0)
    failures, skip_reasons = [], {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        outcome = "passed"
        for child in case:
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "errors"
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
                reason = (child.get("message") or "").strip()
                skip_reasons[reason] = skip_reasons.get(reason, 0) + 1
            if child.tag in ("failure", "error"):
                message = (child.get("message") or "").strip().splitlines()
                failures.append({"test": name, "message": message[0][:300] if message else child.tag})
        counts[outcome] += 1
    return {**counts, "failures": failures, "skip_reasons": skip_reasons}


# ---------------------------------------------------------------------------
# 2. Timings (the subprocess's side)
# ---------------------------------------------------------------------------

def _sync(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _has_dropout(config):
    return any(layer.get("p_dropout", 0.0) for layer in config.layers)


@contextmanager
def _deterministic_cudnn():
    """cuDNN's deterministic algorithms for the ``with`` block (no effect without CUDA); the setting is put back."""
    import torch
    previous = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic = previous


def _can_register_generators():
    import torch
    return hasattr(torch.cuda.CUDAGraph, "register_generator_state")


def _compare(a_params, b_params):
    """(max |a - b|, max |b|) over lists of tensors."""
    diff = max(float((a.detach().double() - b.detach().double()).abs().max()) for a, b in zip(a_params, b_params))
    scale = max(float(b.detach().double().abs().max()) for b in b_params)
    return diff, scale


class Timer:
    """What the timing process needs for one network: its data, config, and the four ways to time it."""

    def __init__(self, preset, device, steps, check_steps):
        import torch

        from nndl.deep.train import BEST_ON_TIE, LAST_BATCH
        self.preset, self.device, self.steps, self.check_steps = preset, device, steps, check_steps
        self.network = preset.network
        self.config = preset.training.replace(epochs=1, seed=1)
        self.resolved = self.config.with_conventions(LAST_BATCH, BEST_ON_TIE)
        self.m = self.config.mini_batch_size
        self.batches = steps + WARMUP + check_steps
        generator = torch.Generator().manual_seed(1)
        n = self.batches * self.m
        self.x = torch.rand(n, 1, 28, 28, generator=generator).to(device)
        self.y = torch.randint(0, 10, (n,), generator=generator).to(device)
        self.timed = (self.x[:steps * self.m], self.y[:steps * self.m])
        self.warm = (self.x[-WARMUP * self.m:], self.y[-WARMUP * self.m:])

    def net(self, seed=1):
        from nndl.deep.network import ConvNetwork
        return ConvNetwork(self.network, device=self.device, seed=seed)

    def row(self, mode, members, seconds, **extra):
        images = self.steps * self.m
        return dict(mode=mode, members=members, steps=self.steps, images=images, seconds=seconds,
                    images_per_second=members * images / seconds if seconds > 0 else None, **extra)

    # --- eager: the real training paths -------------------------------------------------------

    def one_eager(self):
        from nndl.deep.train import train
        net = self.net()
        train(net, self.warm, self.config)                                   # warm-up: autotuner, allocator
        history = train(net, self.timed, self.config)
        return self.row("1 eager", 1, history.epoch_time[0], stop_reason=history.stop_reason)

    def k_eager(self, train_many):
        seeds = list(range(1, K + 1))
        nets = [self.net(seed) for seed in seeds]
        train_many(nets, self.warm, self.config, seeds=seeds)
        histories = train_many(nets, self.timed, self.config, seeds=seeds)
        return self.row(f"{K} eager", K, max(h.epoch_time[0] for h in histories),
                        stop_reason=sorted({h.stop_reason for h in histories}))

    # --- graphs -----------------------------------------------------------------------------------

    def _batch(self, j):
        """Mini-batch j of the synthetic data (counted round): (images (m, 1, 28, 28), labels (m,))."""
        k = (j % self.batches) * self.m
        return self.x[k:k + self.m], self.y[k:k + self.m]

    def _graph_row(self, mode, members, make_engine, step_of, generators_of, set_generators, params_of):
        """Replay an engine's step from a CUDA graph as training does (``nndl.deep.graphs.GraphedStep``),
        check it against the same steps eagerly, then time the replays."""
        from nndl.deep.device import fast_kernels
        from nndl.deep.graphs import GraphedStep
        notes = []
        graphed, eager = make_engine(), make_engine()
        generators = generators_of(graphed)
        if self.device.type == "cuda" and generators and not _can_register_generators():
            set_generators(graphed, None)           # the default CUDA generator, which any graph may use
            generators = []
            notes.append("dropout masks from the default CUDA generator (this PyTorch cannot register a "
                         "generator of its own with a graph); not compared")
        def graph():
            return GraphedStep(lambda xb, yb: step_of(graphed, xb, yb), self.device, generators, warmup=WARMUP)

        with fast_kernels(self.device, self.m):
            # The check: graph and eager steps both with cuDNN's deterministic algorithms, so that any
            # difference is the graph's, not the run-to-run noise of algorithms that add up in any order.
            with _deterministic_cudnn():
                checked = graph()
                start = time.perf_counter()
                for j in range(WARMUP + 1):                              # eager warm-up steps, then the capture
                    checked("check", *self._batch(j))
                _sync(self.device)
                capture_seconds = time.perf_counter() - start
                for j in range(WARMUP + 1, WARMUP + self.check_steps):
                    checked("check", *self._batch(j))
                for j in range(WARMUP + self.check_steps):             # the same steps, eagerly
                    step_of(eager, *self._batch(j))
                _sync(self.device)
                diff, scale = _compare(params_of(graphed), params_of(eager))
            del checked
            if notes:
                check = "not compared"
            else:
                check = "ok" if diff <= CHECK_TOLERANCE * max(scale, 1.0) else "DIFFERS"
            # The timing: captured afresh with the kernels training uses (cuDNN's autotuner, any algorithm).
            replayed, first = graph(), WARMUP + self.check_steps
            for j in range(WARMUP + 1):
                replayed("timing", *self._batch(first + j))
            first += WARMUP + 1
            _sync(self.device)
            start = time.perf_counter()
            for j in range(self.steps):
                replayed("timing", *self._batch(first + j))
            _sync(self.device)
            seconds = time.perf_counter() - start
        return self.row(mode, members, seconds, captured=replayed.graph is not None, capture_seconds=capture_seconds,
                        check=check, check_steps=WARMUP + self.check_steps, check_max_diff=diff,
                        check_scale=scale, notes=notes)

    def one_graph(self):
        from nndl.deep.train import TorchEngine

        def make():
            return TorchEngine(self.net(), (self.x, self.y), self.resolved)

        def set_generators(engine, generator):
            engine.dropout_rng = generator

        generators = (lambda e: [e.dropout_rng]) if _has_dropout(self.network) else (lambda e: [])
        return self._graph_row("1 graph", 1, make, lambda e, xb, yb: e.step(xb, yb), generators, set_generators,
                               lambda e: e.params)

    def k_graph(self, multi):
        engine_class = getattr(multi, "MultiTorchEngine", None)
        if engine_class is None or not hasattr(engine_class, "step"):
            raise RuntimeError("nndl.deep.multi has no MultiTorchEngine with a step() to capture")
        seeds = list(range(1, K + 1))
        members = list(range(K))

        def make():
            return engine_class([self.net(seed) for seed in seeds], (self.x, self.y), self.resolved, seeds)

        def set_generators(engine, generator):
            engine.dropout_rngs = [generator] * K

        generators = (lambda e: list(e.dropout_rngs)) if _has_dropout(self.network) else (lambda e: [])
        return self._graph_row(f"{K} graph", K, make, lambda e, xb, yb: e.step(xb, yb, members), generators,
                               set_generators, lambda e: [p for net in e.nets for p in net.parameters()])


def timings_worker(spec_path):
    """The timing process: every network of ``spec["rungs"]``, each way; one JSON line per result."""
    import torch

    from nndl.deep.presets import get_preset
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    device = torch.device(spec["device"])
    deadline = spec["deadline"]
    multi, multi_error = None, None
    if spec["multi"]:
        try:
            import nndl.deep.multi as multi
        except Exception as e:                          # noqa: BLE001 - reported, the K rows are skipped
            multi_error = first_line(e)
    with open(spec["rows"], "a", encoding="utf-8") as rows:
        def emit(**row):
            rows.write(json.dumps(row, default=str) + "\n")
            rows.flush()

        for name in spec["rungs"]:
            emit(kind="start", network=name)
            try:
                timer = Timer(get_preset(name), device, spec["steps"], spec["check_steps"])
            except Exception as e:                      # noqa: BLE001
                emit(kind="row", network=name, mode="setup", error=first_line(e))
                emit(kind="done", network=name)
                continue
            ways = [("1 eager", timer.one_eager), ("1 graph", timer.one_graph)]
            if multi is not None:
                ways += [(f"{K} eager", lambda timer=timer: timer.k_eager(multi.train_many)),
                         (f"{K} graph", lambda timer=timer: timer.k_graph(multi))]
            for mode, way in ways:
                if time.time() > deadline:
                    emit(kind="row", network=name, mode=mode, skipped="the timings' share of the budget ran out")
                    continue
                try:
                    row = way()
                except Exception as e:                  # noqa: BLE001 - a way that fails is reported, the rest go on
                    row = dict(mode=mode, error=first_line(e))
                    print(f"  {name} {mode}: failed: {row['error']}", flush=True)
                    traceback.print_exc(limit=4)
                    if device.type == "cuda" and not _cuda_healthy(device):
                        emit(kind="row", network=name, **row)
                        print("  the CUDA context is broken after that failure; a fresh process goes on",
                              flush=True)
                        sys.exit(3)
                else:
                    print(f"  {name} {mode}: {row['images_per_second']:,.0f} img/s"
                          + (f", check {row['check']} (max |diff| {row['check_max_diff']:.2g})"
                             if "check" in row else ""), flush=True)
                emit(kind="row", network=name, **row)
            del timer
            if device.type == "cuda":
                torch.cuda.empty_cache()
            emit(kind="done", network=name)
        if multi_error:
            emit(kind="note", text=f"nndl.deep.multi could not be imported: {multi_error}")


def _cuda_healthy(device):
    import torch
    try:
        torch.cuda.synchronize(device)
        torch.zeros(1, device=device).add_(1).item()
        return True
    except Exception:                                   # noqa: BLE001
        return False


# ---------------------------------------------------------------------------
# 2. Timings (the main process's side)
# ---------------------------------------------------------------------------

def _network_key(preset):
    return json.dumps(preset.network.to_dict(), sort_keys=True)


def ladder_groups(names):
    """The rungs grouped by (network, training set): [{"network": first rung of that network, "rungs": [...], ...}]."""
    from nndl.deep.presets import PRESETS
    first_of, groups = {}, {}
    for name, preset in PRESETS.items():
        if name not in names:
            continue
        key = _network_key(preset)
        first_of.setdefault(key, name)
        group = groups.setdefault((key, preset.expanded), {
            "network": first_of[key], "rungs": [], "expanded": preset.expanded,
            "images_per_epoch": EXPANDED_IMAGES if preset.expanded else BOOK_IMAGES})
        group["rungs"].append(name)
    return list(groups.values())


def step2_timings(args, device, out, deadline, log):
    from nndl.deep.presets import PRESETS
    names = list(QUICK_RUNGS) if args.quick else list(PRESETS)
    groups = ladder_groups(names)
    networks = list(dict.fromkeys(g["network"] for g in groups))
    multi = multi_available()
    section = {"steps": args.steps, "mini_batch_size": 10, "k": K, "warmup_steps": WARMUP,
               "check_steps": WARMUP + args.check_steps, "check_tolerance": CHECK_TOLERANCE,
               "data": "synthetic: random 28x28 images and labels, stored order",
               "extrapolated_to": f"an epoch of the rung's training set ({BOOK_IMAGES:,} images, "
                                  f"{EXPANDED_IMAGES:,} for the expanded-data rungs)",
               "train_many": "present" if multi else "absent", "groups": groups, "rows": [], "notes": []}
    log(f"step 2: {len(networks)} networks, {args.steps} steps of 10 images each way"
        f"{'' if device.type == 'cuda' else ' (no CUDA: the graph rows run uncaptured, marked *)'}")
    if not multi:
        line = (f"K at once: the {K} eager and {K} graph rows are skipped: nndl.deep.multi (train_many) is not "
                "in this tree")
        section["notes"].append(line)
        log(line)
    rows_path = out / "step2-rows.jsonl"
    rows_path.write_text("")
    remaining, attempt, died = list(networks), 0, {}       # died: network -> why its process ended
    while remaining and time.time() < deadline - 5 and attempt < 4:
        attempt += 1
        spec = out / "step2-spec.json"
        spec.write_text(json.dumps({"device": str(device), "rungs": remaining, "steps": args.steps,
                                    "check_steps": args.check_steps, "deadline": deadline, "multi": multi,
                                    "rows": str(rows_path)}))
        tail = []

        def echo(line, tail=tail):
            tail.append(line)
            del tail[:-30]
            log(line)
        code, timed_out, _ = run_streaming([sys.executable, str(Path(__file__).resolve()), "--timings-worker",
                                            str(spec)], deadline - time.time() + 10, echo, child_env())
        records = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
        done = {r["network"] for r in records if r["kind"] == "done"}
        started = [r["network"] for r in records if r["kind"] == "start"]
        if code != 0 or timed_out:
            why = ("the timing process was stopped at the end of the timings' share" if timed_out else
                   f"the timing process ended with status {code} (its last line: {tail[-1] if tail else '-'})")
            broken = next((n for n in reversed(started) if n not in done), None)
            section["notes"].append(why + (f" while timing {broken}" if broken else ""))
            log(f"step 2: {section['notes'][-1]}")
            if broken:
                died[broken] = why
                with open(rows_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"kind": "done", "network": broken}) + "\n")
                done.add(broken)
            if timed_out:
                break
        remaining = [n for n in remaining if n not in done]
        if code == 0:
            break
    records = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    section["notes"] += [r["text"] for r in records if r["kind"] == "note"]
    by_network = {}
    for r in records:
        if r["kind"] == "row":
            by_network.setdefault(r["network"], {})[r["mode"]] = {k: v for k, v in r.items() if k != "kind"}
    modes = MODES if multi else MODES[:2]
    for network in networks:
        timed = by_network.setdefault(network, {})
        missing = [mode for mode in modes if mode not in timed]
        for k, mode in enumerate(missing):
            if network in died:
                what = {"error": died[network]} if k == 0 else {"skipped": "not reached"}
            else:
                what = {"skipped": "not timed: the timings' share of the budget ran out"}
            timed[mode] = {"network": network, "mode": mode, **what}
    for group in groups:
        timed = by_network.get(group["network"], {})
        eager = timed.get("1 eager", {}).get("images_per_second")
        for mode in MODES:
            if mode not in timed:
                continue
            row = dict(timed[mode], rungs=group["rungs"], images_per_epoch=group["images_per_epoch"])
            rate = row.get("images_per_second")
            if rate:
                row["seconds_per_epoch"] = row["members"] * group["images_per_epoch"] / rate
                row["ratio_to_1_eager"] = rate / eager if eager else None
            section["rows"].append(row)
    print_table(section, device, log)
    return section


def print_table(section, device, log):
    header = f"{'rungs':<20}{'mode':<10}{'img/s':>10}{'s/epoch':>10}{'vs 1 eager':>12}  check"
    log("")
    log(header)
    log("-" * (len(header) + 20))
    for row in section["rows"]:
        rungs = ", ".join(row["rungs"])
        mode = row["mode"] + ("*" if row.get("captured") is False else "")
        if row.get("images_per_second"):
            ratio = row.get("ratio_to_1_eager")
            check = ""
            if "check" in row:
                check = f"{row['check']} ({row['check_max_diff']:.1g})" if row["check"] != "not compared" else \
                    "not compared"
            log(f"{rungs:<20}{mode:<10}{row['images_per_second']:>10,.0f}{row['seconds_per_epoch']:>10.1f}"
                f"{(f'{ratio:.2f}x' if ratio else '-'):>12}  {check}")
        else:
            why = row.get("error") or row.get("skipped") or "no result"
            log(f"{rungs:<20}{mode:<10}{'-':>10}{'-':>10}{'-':>12}  {'failed: ' if 'error' in row else ''}{why}")
    log("")
    log(f"img/s: training images per second ({K} eager/graph: all {K} networks' images together); s/epoch: one "
        f"epoch of the rung's training set for every network of the row, extrapolated from {section['steps']} "
        "timed steps of 10 images; vs 1 eager: img/s over the '1 eager' row's. check: the largest difference of "
        f"a parameter after {section['check_steps']} graph steps from the same steps run eagerly "
        f"(ok: within {CHECK_TOLERANCE:g} of the largest parameter).")
    if device.type != "cuda":
        log("*: no CUDA, so nothing was captured: the step ran eagerly on the graph's static input buffers.")
    for note in section["notes"]:
        log(f"note: {note}")


# ---------------------------------------------------------------------------
# 3. The ladder, through nndl reproduce
# ---------------------------------------------------------------------------

class Deadline:
    """From ``arm`` until ``disarm``: at ``when`` the process gets SIGINT, which nndl's training loop takes as
    Ctrl-C -- it stops between two mini-batches, keeps its finished epochs and checkpoint."""

    def __init__(self):
        self.restore = None
        self.previous_alarm = None
        self.previous_int = None

    def arm(self, when):
        from nndl.training import interrupt
        self.previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started ignoring it
        self.restore = interrupt.install()
        self.previous_alarm = signal.signal(signal.SIGALRM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
        signal.setitimer(signal.ITIMER_REAL, max(0.05, when - time.time()))

    def disarm(self):
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self.previous_alarm is not None:
            signal.signal(signal.SIGALRM, self.previous_alarm)
        if self.restore is not None:
            self.restore()
        if self.previous_int is not None:
            signal.signal(signal.SIGINT, self.previous_int)


def _done_epochs(checkpoint):
    """Epochs already in a rung's checkpoint (0 when there is none or it cannot be read)."""
    if not checkpoint.exists():
        return 0
    try:
        from nndl.deep.checkpoint import load_checkpoint
        _, state, _ = load_checkpoint(checkpoint)
        return len(json.loads(state["history"]).get("epochs", []))
    except Exception:                                   # noqa: BLE001 - the run itself will say what is wrong
        return 0


def _plans(timings, quick, graphs=False):
    """Each rung's experiment and its predicted seconds per epoch (None: not timed), fastest first.

    ``graphs``: the ladder trains from CUDA graphs, so its pace is the "1 graph" row's where that row was
    captured and checked ok (else the "1 eager" row's); measuring after each epoch stays eager.
    """
    from nndl.experiments.registry import get
    eager, graphed = {}, {}
    for row in timings.get("rows", []):
        if not row.get("images_per_second"):
            continue
        if row["mode"] == "1 eager":
            for rung in row["rungs"]:
                eager[rung] = row["images_per_second"]
        elif row["mode"] == "1 graph" and graphs and row.get("captured") and row.get("check") == "ok":
            for rung in row["rungs"]:
                graphed[rung] = row["images_per_second"]
    from nndl.deep.presets import PRESETS
    names = [i.removeprefix("ch6-") for i in QUICK_LADDER] if quick else list(PRESETS)
    plans = []
    for order, name in enumerate(names):
        preset = PRESETS[name]
        rate = eager.get(name)
        epoch = None
        if rate:
            images = EXPANDED_IMAGES if preset.expanded else BOOK_IMAGES
            # Training, measuring 20,000 images (forward only, in batches of 200: a few times faster per image),
            # and what fit does between epochs (copies of the parameters, the checkpoint).
            epoch = (images / graphed.get(name, rate) + EVALUATION_IMAGES / (3 * rate) + 0.5) * preset.members
        plans.append({"id": f"ch6-{name}", "experiment": get(f"ch6-{name}"), "epoch_seconds": epoch,
                      "members": preset.members, "expanded": preset.expanded, "order": order})
    plans.sort(key=lambda p: (p["epoch_seconds"] is None, p["epoch_seconds"] or 0.0, p["order"]))
    return plans


def step3_ladder(args, device, out, deadline, timings, log):
    from nndl.experiments.runner import reproduce
    section = {"out": str(out), "report": str(out / "REPORT.md"), "seeds": [1], "runs": [], "stopped": None}
    try:
        from nndl.data.mnist import find_mnist
        data_dir = str(find_mnist(args.data))
    except Exception as e:                               # noqa: BLE001 - no data: the step is skipped, said so
        section["skipped"] = f"the MNIST files were not found ({first_line(e)}); set NNDL_DATA or --data"
        log(f"step 3 skipped: {section['skipped']}")
        return section
    section["data"] = data_dir
    margin = QUICK_FINISH_MARGIN if args.quick else FINISH_MARGIN
    stop_at = deadline - margin
    graphs = device.type == "cuda" and not args.eager_ladder
    section["cuda_graph"] = graphs
    log(f"step 3: the ladder from {data_dir} into {out} until {max(0.0, stop_at - time.time()):.0f} s from now"
        f"{' (--quick configurations)' if args.quick else ''}, fastest rung first, seed 1"
        f"{', each training step replayed from a CUDA graph' if graphs else ', eagerly'}")
    calibration = 1.0                                   # actual / predicted seconds of the rungs so far
    alarm, current, start = Deadline(), None, time.perf_counter()
    try:
        alarm.arm(stop_at)
        for plan in _plans(timings, args.quick, graphs):
            experiment, book_epochs = plan["experiment"], plan["experiment"].book_epochs(args.quick)
            left = stop_at - time.time()
            entry = {"id": plan["id"], "book_epochs": book_epochs}
            if left < 1:
                entry["skipped"] = "no time left"
                section["runs"].append(entry)
                continue
            epochs, predicted = None, None
            if not args.quick:
                overhead = 5.0 + (15.0 if plan["expanded"] else 0.0)
                checkpoint = out / "runs" / "checkpoints" / f"{plan['id']}-s1.ckpt"
                done = 0 if plan["members"] > 1 else _done_epochs(checkpoint)
                if plan["epoch_seconds"] is None:
                    fit = 1                              # not timed: one epoch, the timer guards it
                else:
                    per_epoch = plan["epoch_seconds"] * calibration * 1.15
                    fit = math.floor((left - overhead) / per_epoch) if left > overhead else 0
                if done + fit < 1 or (fit < 1 and done < book_epochs):
                    entry["skipped"] = (f"one epoch needs about {plan['epoch_seconds'] * calibration:.0f} s, "
                                        f"{left:.0f} s are left")
                    section["runs"].append(entry)
                    log(f"  {plan['id']}: skipped ({entry['skipped']})")
                    continue
                epochs = min(book_epochs, done + fit)
                if plan["epoch_seconds"] is not None:
                    predicted = overhead + (epochs - done) * plan["epoch_seconds"] * calibration
                entry.update(epochs=epochs, epochs_before=done, predicted_seconds=predicted)
                log(f"  {plan['id']}: {epochs} of the book's {book_epochs} epochs"
                    + (f" ({done} already in its checkpoint)" if done else "")
                    + (f", about {predicted:.0f} s" if predicted else ", not timed in step 2"))
            start = time.perf_counter()
            section["runs"].append(entry)
            current = entry
            outcome = reproduce([plan["id"]], seeds=[1], quick=args.quick, out=out, data_dir=data_dir,
                                epochs=None if epochs == book_epochs else epochs, device=str(device),
                                cuda_graph=graphs, echo=lambda line: log(f"    {line}"))
            current = None
            entry["seconds"] = time.perf_counter() - start
            entry.update(_result_of(out, experiment, args.quick, epochs, book_epochs, outcome))
            if predicted and entry.get("value") is not None and entry["seconds"] > 0:
                calibration = min(3.0, max(0.5, calibration * entry["seconds"] / predicted))
        alarm.disarm()
    except KeyboardInterrupt:
        alarm.disarm()
        section["stopped"] = ("the budget's end: the rung in progress keeps its finished epochs in its checkpoint "
                              f"({out / 'runs' / 'checkpoints'}); run again with the same --out to go on")
        log(f"step 3: stopped at {section['stopped']}")
        if current is not None:
            checkpoint = out / "runs" / "checkpoints" / f"{current['id']}-s1{'-quick' if args.quick else ''}.ckpt"
            current.update(interrupted=True, seconds=time.perf_counter() - start,
                           epochs_in_checkpoint=_done_epochs(checkpoint))
            log(f"  {current['id']}: stopped with {current['epochs_in_checkpoint']} epoch(s) in its checkpoint")
    finally:
        alarm.disarm()
    finished = [r for r in section["runs"] if r.get("value") is not None]
    log(f"step 3: {len(finished)} rung(s) finished: " + (", ".join(
        f"{r['id']} {100 * r['value']:.2f}% ({r['epochs_trained']} epoch{'s' if r['epochs_trained'] != 1 else ''}, "
        f"{r['verdict']})" for r in finished)
        or "none"))
    if (out / "REPORT.md").exists():
        log(f"report: {out / 'REPORT.md'}")
    return section


def _result_of(out, experiment, quick, epochs, book_epochs, outcome):
    """What reproduce wrote for one rung: value, verdict, epochs trained."""
    stem = experiment.id if epochs is None or epochs == book_epochs else f"{experiment.id}-e{epochs}"
    result = {"finished": experiment.id in outcome.finished, "already_done": experiment.id in outcome.skipped}
    if experiment.id in outcome.failed:
        result["error"] = outcome.failed[experiment.id]
        return result
    try:
        data = json.loads((out / f"{stem}.json").read_text())
    except (OSError, ValueError):
        return result
    run = data["runs"][0] if data.get("runs") else {}
    history = run.get("history") or (run.get("members") or [{}])[0].get("history") or {}
    within = data.get("within")
    verdict = ("quick run, not compared" if quick else
               f"{epochs} of {book_epochs} epochs, not compared" if data.get("epochs") is not None else
               {True: "reproduces the book", False: "does not reproduce the book", None: "-"}[within])
    result.update(file=f"{stem}.json", value=data.get("median"), book=experiment.book, verdict=verdict,
                  within=within, epochs_trained=len(history.get("epochs", [])), summary=run.get("summary"),
                  epoch_seconds=history.get("epoch_time"))
    return result


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the three steps, tiny (seconds on a CPU); the only way to run without CUDA")
    parser.add_argument("--out", default="gpu-check", help="directory for everything it writes (default gpu-check)")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for the whole check (default 480); the ladder stops cleanly before the end")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None,
                        help="default: cuda (cpu with --quick when there is no CUDA)")
    parser.add_argument("--data", default=None, help="the MNIST directory (default: NNDL_DATA, nndl's usual search)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"timed steps of each way in step 2 (default {STEPS}; {QUICK_STEPS} with --quick)")
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out: tests, timings, ladder")
    parser.add_argument("--eager-ladder", action="store_true",
                        help="train step 3's ladder eagerly (default on CUDA: each step replayed from a CUDA graph)")
    parser.add_argument("--timings-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = QUICK_STEPS if args.quick else STEPS
    args.check_steps = QUICK_CHECK_STEPS if args.quick else CHECK_STEPS
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - {"tests", "timings", "ladder"}
    if unknown:
        parser.error(f"--skip: unknown step(s) {', '.join(sorted(unknown))}; choose tests, timings, ladder")
    if args.steps < 1 or args.budget <= 0:
        parser.error("--steps must be at least 1 and --budget above 0")
    return args


def refuse(message):
    print(f"gpu_check: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv=None):
    args = parse_args(argv)
    if args.timings_worker:
        timings_worker(args.timings_worker)
        return 0
    start_wall = time.time()
    import torch
    cuda = torch.cuda.is_available()
    if not cuda and (not args.quick or args.device == "cuda"):
        why = "this PyTorch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        return refuse(f"no CUDA GPU here ({why}): the check needs one; --quick --device cpu runs a short check "
                      "on the CPU")
    device = torch.device(args.device or ("cuda" if cuda else "cpu"))
    out = Path(args.out).expanduser().resolve()
    results = (ROOT / "experiments" / "results").resolve()
    if out == results or results in out.parents:
        return refuse(f"--out {args.out} is inside experiments/results, which this check never writes; "
                      "choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    deadline = start_wall + args.budget
    log = Log(out / "gpu_check.log")
    report = {"format": FORMAT, "version": VERSION, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "quick": args.quick, "device": str(device), "budget_seconds": args.budget, "started": now_iso(),
              "out": str(out)}
    try:
        log(f"gpu_check {'--quick ' if args.quick else ''}on {device}, budget {args.budget:.0f} s, writing {out}"
            f" ({report['started']})")
        if not cuda:
            log("no CUDA here: the --quick check runs on the CPU (asked for)")
        report["machine"] = machine(device)
        print_machine(report["machine"], log)
        save(report, out)

        log("")
        log("== step 1: tests that touch CUDA ==")
        if "tests" in args.skip:
            report["step1_tests"] = {"skipped": "--skip tests"}
        else:
            limit = min(STEP1_MAX, STEP1_SHARE * args.budget) if not args.quick else max(1.0, deadline - time.time())
            report["step1_tests"] = step1_tests(out, min(limit, max(1.0, deadline - time.time())), log)
        save(report, out)

        log("")
        log("== step 2: each rung's network timed, extrapolated to an epoch ==")
        if "timings" in args.skip:
            report["step2_timings"] = {"skipped": "--skip timings", "rows": []}
        else:
            end = deadline if args.quick else start_wall + STEP2_END * args.budget
            report["step2_timings"] = step2_timings(args, device, out, end, log)
        save(report, out)

        log("")
        log("== step 3: the ladder at the book's settings, as far as the budget goes ==")
        if "ladder" in args.skip:
            report["step3_ladder"] = {"skipped": "--skip ladder", "runs": []}
        else:
            report["step3_ladder"] = step3_ladder(args, device, out, deadline, report["step2_timings"], log)
        status = 0
    except KeyboardInterrupt:
        report["interrupted"] = True
        log("interrupted: what was done so far is in gpu_check.json")
        status = 130
    report["seconds"] = round(time.time() - start_wall, 1)
    report["finished"] = now_iso()
    save(report, out)
    log("")
    log(f"done in {report['seconds']:.0f} s of the {args.budget:.0f} s budget: {out / 'gpu_check.json'}, "
        f"{out / 'gpu_check.log'}")
    log.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
