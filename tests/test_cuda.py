"""Chapter 6 on a CUDA GPU: the CPU's numbers, checkpoints and model files across devices, nccl.

Every test here needs a CUDA GPU (``torch.cuda.is_available()``) and is
skipped, saying so, where there is none -- in CI and on most machines. On a
GPU machine run them with ``python -m pytest tests/test_cuda.py`` (or ``-m
cuda``); ``benchmarks/gpu_check.py`` runs them first. What they check:

* a ConvNetwork on ``cuda`` gives the CPU's log-probabilities: tightly in
  float64, loosely in float32 (cuDNN may use TF32 for float32 convolutions);
* steps of ``train`` on CUDA are the same steps on the CPU, float64, within
  rounding (momentum, L2, shuffled mini-batches, validation);
* a checkpoint written while training on CUDA (dropout: a CUDA generator)
  resumes on CUDA to exactly the uninterrupted run, with cuDNN's
  deterministic algorithms; it loads on the CPU;
* ``nndl.deep.distributed`` over nccl, one process (world size 1, started as
  torchrun starts a rank, on a free local port): the same run as without it;
* a model file saved from CUDA loads on the CPU with the same numbers;
* ``nndl reproduce`` trains a chapter 6 rung on the device it is given;
* training replayed from CUDA graphs (``cuda_graph=True``) is eager
  training: one network, with augmentation, resumed from its checkpoint,
  and several networks at once.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nndl.deep.checkpoint import load_checkpoint, load_model, save_model
from nndl.deep.config import ConvNetConfig
from nndl.deep.network import ConvNetwork
from nndl.deep.presets import get_preset
from nndl.deep.train import train
from nndl.training.config import TrainingConfig

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _why_no_cuda():
    if torch.version.cuda is None:
        return f"needs a CUDA GPU: this PyTorch ({torch.__version__}) was built without CUDA"
    return "needs a CUDA GPU: torch.cuda.is_available() is false (no CUDA device visible)"


CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason=_why_no_cuda() if not CUDA else ""),
              pytest.mark.usefixtures("one_torch_thread")]   # the CPU side of every comparison

#: Seconds the nccl subprocess may take (it takes a few: start Python, torch, CUDA, nccl).
LAUNCH_LIMIT = 120

#: A small 28x28 network with every kind of layer: conv-pool (ReLU), fully connected (sigmoid, dropout), softmax.
SMALL = ConvNetConfig(layers=(
    {"type": "conv-pool", "filters": 6, "filter": 5, "pool": 2, "activation": "relu"},
    {"type": "fully-connected", "n_out": 30, "activation": "sigmoid"},
    {"type": "softmax", "n_out": 10}), init="fan-in", dtype="float64")
WITH_DROPOUT = SMALL.replace(layers=SMALL.layers[:1] + (
    {"type": "fully-connected", "n_out": 30, "activation": "sigmoid", "p_dropout": 0.3},
    {"type": "softmax", "n_out": 10, "p_dropout": 0.2}), dtype="float32")
SETTINGS = dict(mini_batch_size=10, eta=0.1, momentum=0.5, lmbda=0.5, lmbda_scale="batches", shuffle=True, seed=7)




@pytest.fixture
def deterministic_cudnn():
    """cuDNN's deterministic algorithms only, for the test; its settings are put back afterwards."""
    previous = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    yield
    torch.backends.cudnn.deterministic = previous


def digits(n, seed, dtype=torch.float32):
    """n learnable 28x28 images of 10 classes (class k lights rows 2k+2..2k+3, on noise): (images, labels)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = 0.3 * torch.rand(n, 1, 28, 28, generator=generator, dtype=dtype)
    for k in range(10):
        images[labels == k, 0, 2 * k + 2:2 * k + 4, 4:24] = 1.0
    return images, labels


def cpu_params(net):
    return {name: t.detach().cpu().clone() for name, t in net.state_dict().items()}


def max_diff(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# --- the same network on both devices ------------------------------------------------------------


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-10), ("float32", 1e-2)])
def test_a_network_on_cuda_gives_the_cpus_log_probabilities(dtype, tolerance):
    config = get_preset("dropout").network.replace(init="fan-in", dtype=dtype)    # every layer random, dropout
    cpu, gpu = ConvNetwork(config, device="cpu", seed=1), ConvNetwork(config, device="cuda", seed=1)
    assert gpu.device.type == "cuda" and str(gpu.dtype) == f"torch.{dtype}"
    assert max_diff(cpu_params(cpu), cpu_params(gpu)) == 0.0           # drawn on the CPU: the same weights
    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    expected, got = cpu.log_probabilities(images), gpu.log_probabilities(images)
    assert got.device.type == "cuda"
    difference = float((expected.double() - got.cpu().double()).abs().max())
    assert difference <= tolerance, f"{dtype}: log-probabilities differ by {difference:.3g}"
    assert float(expected.std(dim=0).mean()) > 5e-3                    # the output depends on the image


def test_training_steps_on_cuda_are_the_steps_on_the_cpu():
    training, validation = digits(205, 0, torch.float64), digits(40, 1, torch.float64)
    config = TrainingConfig(epochs=2, **SETTINGS)                      # 2 x 20 steps, 5 images left out
    cpu, gpu = ConvNetwork(SMALL, device="cpu", seed=3), ConvNetwork(SMALL, device="cuda", seed=3)
    on_cpu = train(cpu, training, config, validation_data=validation)
    on_gpu = train(gpu, training, config, validation_data=validation)
    difference = max_diff(cpu_params(cpu), cpu_params(gpu))
    assert difference <= 1e-9, f"after 40 steps the parameters differ by {difference:.3g}"
    assert max_diff(cpu_params(cpu), cpu_params(ConvNetwork(SMALL, seed=3))) > 1e-2      # and they did train
    assert on_gpu.evaluation_accuracy == on_cpu.evaluation_accuracy and on_gpu.best_epoch == on_cpu.best_epoch


# --- checkpoints and model files across devices ----------------------------------------------------


def test_a_cuda_checkpoint_resumes_exactly_on_cuda_and_loads_on_the_cpu(tmp_path, deterministic_cudnn):
    training, validation, test = digits(120, 4), digits(40, 5), digits(40, 6)
    data = dict(validation_data=validation, test_data=test)
    whole = ConvNetwork(WITH_DROPOUT, device="cuda", seed=3)
    full = train(whole, training, epochs=3, **data, **SETTINGS)

    path = tmp_path / "run.ckpt"
    first = ConvNetwork(WITH_DROPOUT, device="cuda", seed=3)
    train(first, training, epochs=1, checkpoint=str(path), checkpoint_metadata={"run": "cuda"}, **data, **SETTINGS)
    after_one = cpu_params(first)
    del first
    net, state, metadata = load_checkpoint(path, device="cuda")
    assert metadata == {"run": "cuda"} and state["epoch"] == 0 and net.device.type == "cuda"
    resumed = train(net, training, epochs=3, resume=state, **data, **SETTINGS)
    for (name, p), q in zip(whole.named_parameters(), net.parameters()):
        assert torch.equal(p, q), name
    assert resumed.epochs == full.epochs == [0, 1, 2]
    assert resumed.evaluation_accuracy == full.evaluation_accuracy and resumed.test_accuracy == full.test_accuracy

    cpu_net, cpu_state, _ = load_checkpoint(path, device="cpu")       # the same file, on the CPU
    assert cpu_net.device.type == "cpu" and max_diff(cpu_params(cpu_net), after_one) == 0.0
    assert state["dropout_rng"].device.type == "cpu"                   # a generator's state is a CPU tensor
    buffers = [v for s in cpu_state["optimizer"]["state"].values() for v in s.values() if torch.is_tensor(v)]
    assert buffers and all(b.device.type == "cpu" for b in buffers)    # the velocities were saved from the GPU


# --- CUDA graphs ------------------------------------------------------------------------------------


def test_training_replayed_from_a_cuda_graph_is_eager_training(deterministic_cudnn):
    """Dropout masks from the registered generator, momentum, L2 and shuffling: replays compute the eager steps."""
    training, validation = digits(205, 0), digits(40, 1)
    config = TrainingConfig(epochs=2, **SETTINGS)
    eager, graphed = (ConvNetwork(WITH_DROPOUT, device="cuda", seed=2) for _ in range(2))
    expected = train(eager, training, config, validation_data=validation)
    got = train(graphed, training, config, validation_data=validation, cuda_graph=True)
    difference = max_diff(cpu_params(eager), cpu_params(graphed))
    assert difference <= 1e-5, f"the graph's parameters differ from the eager ones by {difference:.3g}"
    assert max_diff(cpu_params(eager), cpu_params(ConvNetwork(WITH_DROPOUT, seed=2))) > 1e-2      # it trained
    assert got.evaluation_accuracy == expected.evaluation_accuracy


def test_cuda_graphs_with_augmentation_draw_what_eager_training_draws(deterministic_cudnn):
    """Augmentation draws from the dropout generator eagerly at each epoch's start, between replays."""
    from nndl.deep.augment import Augmentation
    training = digits(100, 2)
    augmentation = Augmentation(shift=2.0, rotate=10.0)
    eager, graphed = (ConvNetwork(WITH_DROPOUT, device="cuda", seed=4) for _ in range(2))
    train(eager, training, epochs=2, augmentation=augmentation, **SETTINGS)
    train(graphed, training, epochs=2, augmentation=augmentation, cuda_graph=True, **SETTINGS)
    difference = max_diff(cpu_params(eager), cpu_params(graphed))
    assert difference <= 1e-5, f"the graph's parameters differ from the eager ones by {difference:.3g}"


def test_a_cuda_graph_run_resumes_from_its_checkpoint_exactly(tmp_path, deterministic_cudnn):
    training = digits(120, 4)
    whole = ConvNetwork(WITH_DROPOUT, device="cuda", seed=3)
    full = train(whole, training, epochs=3, cuda_graph=True, **SETTINGS)
    path = tmp_path / "run.ckpt"
    first = ConvNetwork(WITH_DROPOUT, device="cuda", seed=3)
    train(first, training, epochs=1, checkpoint=str(path), cuda_graph=True, **SETTINGS)
    net, state, _ = load_checkpoint(path, device="cuda")
    resumed = train(net, training, epochs=3, resume=state, cuda_graph=True, **SETTINGS)
    assert max_diff(cpu_params(whole), cpu_params(net)) == 0.0
    assert resumed.epochs == full.epochs == [0, 1, 2]


def test_several_networks_replayed_from_a_cuda_graph_train_as_eagerly(deterministic_cudnn):
    from nndl.deep.multi import train_many
    training = digits(100, 5)
    config = TrainingConfig(epochs=2, **{**SETTINGS, "shuffle": False})
    seeds = [1, 2, 3]
    eager = [ConvNetwork(WITH_DROPOUT, device="cuda", seed=s) for s in seeds]
    graphed = [ConvNetwork(WITH_DROPOUT, device="cuda", seed=s) for s in seeds]
    train_many(eager, training, config, seeds=seeds)
    train_many(graphed, training, config, seeds=seeds, cuda_graph=True)
    for k, (a, b) in enumerate(zip(eager, graphed)):
        difference = max_diff(cpu_params(a), cpu_params(b))
        assert difference <= 1e-5, f"member {k}: the graph's parameters differ by {difference:.3g}"


def test_a_model_saved_from_cuda_loads_on_the_cpu(tmp_path):
    net = ConvNetwork(WITH_DROPOUT, device="cuda", seed=5)
    train(net, digits(100, 7), epochs=1, **SETTINGS)
    path = save_model(net, tmp_path / "net.pt", {"trained on": "cuda"})
    loaded = load_model(path)
    assert loaded.device.type == "cpu" and loaded.dtype == torch.float32 and loaded.metadata == {"trained on": "cuda"}
    assert max_diff(cpu_params(loaded), cpu_params(net)) == 0.0
    images = digits(50, 8)[0]
    assert float((loaded.log_probabilities(images) - net.log_probabilities(images).cpu()).abs().max()) <= 2e-2
    again = load_model(path, device="cuda")
    assert again.device.type == "cuda" and torch.equal(again.predict(images), net.predict(images))


# --- nccl, one process ---------------------------------------------------------------------------------

NCCL_CONFIG = TrainingConfig(epochs=2, mini_batch_size=10, eta=0.1, momentum=0.5, lmbda=0.5, shuffle=True, seed=9)
NCCL_NETWORK = WITH_DROPOUT.replace(dtype="float64")


def _nccl_worker(out):
    """Rank 0 of a world of 1 on nccl, as ``nndl.deep.distributed.init_from_environment`` joins one; writes out/nccl.pt.

    ``init_from_environment`` itself goes without a process group when the
    world has one process, so the group is made here the way it makes one.
    """
    import datetime

    import torch.distributed as dist

    from nndl.deep.distributed import World
    torch.set_num_threads(1)
    out = Path(out)
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=120), device_id=device)
    world = World(rank=0, world_size=1, backend="nccl", device=device, timeout=120.0)
    try:
        net = ConvNetwork(NCCL_NETWORK, device=device, seed=1)
        history = train(net, digits(203, 10, torch.float64), NCCL_CONFIG, validation_data=digits(31, 11, torch.float64),
                        world=world, checkpoint=str(out / "nccl.ckpt"))
        torch.save({"params": cpu_params(net), "accuracy": history.evaluation_accuracy, "steps": world.comm_calls,
                    "backend": dist.get_backend()}, out / "nccl.pt")
    finally:
        world.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nccl_with_one_process_trains_as_a_plain_run(tmp_path):
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_nccl_available():
        pytest.skip("this PyTorch has no nccl backend for torch.distributed")
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_cuda; "
            f"test_cuda._nccl_worker({str(tmp_path)!r})")
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=LAUNCH_LIMIT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = torch.load(tmp_path / "nccl.pt", weights_only=True)
    assert result["backend"] == "nccl" and result["steps"] == 2 * (203 // 10)     # one all-reduce per step

    plain = ConvNetwork(NCCL_NETWORK, device="cuda", seed=1)
    history = train(plain, digits(203, 10, torch.float64), NCCL_CONFIG, validation_data=digits(31, 11, torch.float64))
    difference = max_diff(result["params"], cpu_params(plain))
    assert difference <= 1e-9, f"the nccl run's parameters differ from the plain run's by {difference:.3g}"
    assert result["accuracy"] == history.evaluation_accuracy
    _, state, _ = load_checkpoint(tmp_path / "nccl.ckpt")
    assert state["epoch"] == 1 and len(state["dropout_rngs"]) == 1


# --- nndl reproduce on the GPU -------------------------------------------------------------------------


def test_reproduce_trains_a_chapter6_rung_on_the_device_it_is_given(tmp_path, monkeypatch):
    from conftest import real_mnist_dir
    data = real_mnist_dir()
    if data is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    import nndl.deep.train as train_module
    from nndl.experiments.runner import reproduce
    devices, real_train = [], train_module.train

    def recording_train(net, *args, **kwargs):
        devices.append(net.device.type)
        return real_train(net, *args, **kwargs)

    monkeypatch.setattr(train_module, "train", recording_train)
    quiet = dict(seeds=[1], quick=True, data_dir=str(data), echo=lambda line: None)
    assert reproduce(["ch6-fc100"], out=tmp_path / "cuda", device="cuda", **quiet).ok
    assert reproduce(["ch6-fc100"], out=tmp_path / "cpu", **quiet).ok
    assert devices == ["cuda", "cpu"]
    on_gpu, on_cpu = (json.loads((tmp_path / where / "ch6-fc100.json").read_text())["median"]
                      for where in ("cuda", "cpu"))
    assert abs(on_gpu - on_cpu) <= 0.01                                # 500 test images: at most 5 of them differ
    assert (tmp_path / "cuda" / "runs" / "checkpoints" / "ch6-fc100-s1-quick.ckpt").exists()
