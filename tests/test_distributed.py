"""Data-parallel training on several processes (nndl.deep.distributed), on the CPU with gloo.

Two processes are started the way torchrun starts them -- RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in their environment, a free port on
this machine -- and run ``_worker`` below; one test goes through ``torchrun``
itself and the command line. The oracle is a single-process run of the same
global mini-batch in this process: after 20 steps every rank must hold
exactly the same parameters, within 1e-6 of it.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_cli import data_args, run

from nndl.deep.checkpoint import load_checkpoint
from nndl.deep.config import ConvNetConfig
from nndl.deep.distributed import (
    DEFAULT_TIMEOUT,
    World,
    init_from_environment,
    launched_by_torchrun,
    rank_seed,
    shard_sizes,
)
from nndl.deep.network import ConvNetwork
from nndl.deep.train import train
from nndl.errors import ConfigError, NndlError, OutputError
from nndl.files.lock import sole_writer
from nndl.training.config import TrainingConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
#: Seconds a launch of two processes may take before the test gives up on it (they take a few).
LAUNCH_LIMIT = 120
TOLERANCE = 1e-6

NETWORK = ConvNetConfig(input_shape=(1, 8, 8), layers=(
    {"type": "conv-pool", "filters": 3, "filter": 3, "pool": 2, "activation": "relu"},
    {"type": "fully-connected", "n_out": 6, "activation": "sigmoid"},
    {"type": "softmax", "n_out": 3}))
DROPOUT = NETWORK.replace(layers=NETWORK.layers[:1] + (
    {"type": "fully-connected", "n_out": 6, "activation": "sigmoid", "p_dropout": 0.5},
    {"type": "softmax", "n_out": 3, "p_dropout": 0.5}), dropout="inverted")

#: The runs compared with one process: 20 steps each.
#: A: shuffled, momentum, L2 over the number of mini-batches, 3 images left over (203 = 20 x 10 + 3).
#: B: a mini-batch of 5 on 2 ranks (3 + 2 images), stored order, L2 over n.
RUNS = {
    "A": (203, TrainingConfig(epochs=1, mini_batch_size=10, eta=0.2, lmbda=0.5, lmbda_scale="batches",
                              momentum=0.5, shuffle=True, seed=5)),
    "B": (104, TrainingConfig(epochs=1, mini_batch_size=5, eta=0.2, lmbda=1.0, lmbda_scale="n", shuffle=False,
                              seed=6)),
}
#: C: two epochs with validation data and a checkpoint; resumed across process counts.
RESUMED = TrainingConfig(epochs=2, mini_batch_size=8, eta=0.2, lmbda=0.1, lmbda_scale="batches", seed=7,
                         restore_best=False)




def data(n, seed):
    """n learnable 8x8 images of 3 classes (a bright band per class, plus noise): (images, labels) tensors."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    images = 0.3 * torch.rand(n, 1, 8, 8, generator=generator)
    for k in range(3):
        images[labels == k, 0, 2 * k:2 * k + 2, 1:7] = 1.0
    return images, labels


def params(net):
    return {name: t.detach().clone() for name, t in net.state_dict().items()}


def max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ---------------------------------------------------------------------------
# The worker: what each process runs
# ---------------------------------------------------------------------------

def _worker(spec_path):
    """One rank: the runs ``spec["scenario"]`` names, results to spec["dir"]/NAME-rankR.pt."""
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    out = Path(spec["dir"])
    try:
        world = init_from_environment("cpu", spec["timeout"], required=True)
    except NndlError as e:
        print(f"nndl: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    rank = world.rank
    try:
        if spec["scenario"] == "train":
            for name, (n, config) in RUNS.items():
                net = ConvNetwork(NETWORK, seed=1 + rank)          # rank 1 starts elsewhere: broadcast fixes it
                before = world.comm_calls
                train(net, data(n, 0), config, world=world)
                torch.save({"params": params(net), "steps": world.comm_calls - before}, out / f"{name}-rank{rank}.pt")
            net, state, _ = load_checkpoint(out / "single.ckpt")
            history = train(net, data(96, 1), RESUMED, validation_data=data(31, 2), resume=state,
                            checkpoint=out / f"C-rank{rank}.ckpt", world=world)
            torch.save({"params": params(net), "accuracy": history.evaluation_accuracy}, out / f"C-rank{rank}.pt")
            net = ConvNetwork(DROPOUT, seed=1)
            train(net, data(80, 3), TrainingConfig(epochs=1, mini_batch_size=8, eta=0.1, seed=8), world=world,
                  checkpoint=out / f"D-rank{rank}.ckpt")
            torch.save({"params": params(net)}, out / f"D-rank{rank}.pt")
            try:                                 # E: another process holds E.ckpt's lock (the fixture does)
                train(ConvNetwork(NETWORK, seed=1), data(40, 3), RESUMED, world=world, checkpoint=out / "E.ckpt")
                refused = ""
            except OutputError as e:
                refused = str(e)
            (out / f"E-rank{rank}.txt").write_text(refused)
        else:                                                     # "crash" or "hang": rank 1 fails at step 5
            import nndl.deep.train as train_module
            step, calls = train_module.TorchEngine.step, []

            def failing_step(self, xb, yb):
                calls.append(1)
                if rank == 1 and len(calls) == 5:
                    if spec["scenario"] == "crash":
                        os._exit(7)
                    time.sleep(10 * spec["timeout"])
                return step(self, xb, yb)

            train_module.TorchEngine.step = failing_step
            train(ConvNetwork(NETWORK, seed=1), data(400, 0), TrainingConfig(epochs=1, mini_batch_size=4, eta=0.1,
                                                                              seed=1), world=world)
    except NndlError as e:
        print(f"nndl: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    finally:
        world.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launch:
    """``ranks`` of a world of ``world_size`` started as torchrun starts them, running ``_worker(scenario)``."""

    def __init__(self, tmp_path, scenario, timeout=30.0, ranks=(0, 1), world_size=2):
        spec = tmp_path / f"{scenario}.json"
        spec.write_text(json.dumps({"scenario": scenario, "dir": str(tmp_path), "timeout": timeout}))
        port = _free_port()
        code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_distributed; "
                f"test_distributed._worker({str(spec)!r})")
        self.start = time.perf_counter()
        self.processes = []
        for rank in ranks:
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                       LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
            self.processes.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    def results(self, only_first=False):
        """[(returncode, stderr, seconds since the start)] of each rank; ``only_first``: stop the others
        once the first has ended (a rank that hangs)."""
        results = []
        try:
            for p in self.processes[:1] if only_first else self.processes:
                _, err = p.communicate(timeout=LAUNCH_LIMIT)
                results.append((p.returncode, err, time.perf_counter() - self.start))
        finally:
            for p in self.processes:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        return results


# ---------------------------------------------------------------------------
# The same run as one process
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The 'train' scenario on two ranks, with the single-process references it is compared with."""
    out = tmp_path_factory.mktemp("ddp")
    single = ConvNetwork(NETWORK, seed=1)
    train(single, data(96, 1), RESUMED.replace(epochs=1), validation_data=data(31, 2), checkpoint=out / "single.ckpt")
    with sole_writer(out / "E.ckpt"):
        for code, err, _ in Launch(out, "train").results():
            assert code == 0, err
    return out


def test_every_rank_holds_the_parameters_of_one_process_with_the_same_global_mini_batch(trained):
    for name, (n, config) in RUNS.items():
        reference = ConvNetwork(NETWORK, seed=1)
        train(reference, data(n, 0), config)
        ranks = [torch.load(trained / f"{name}-rank{r}.pt", weights_only=True) for r in (0, 1)]
        assert ranks[0]["steps"] == ranks[1]["steps"] == 20
        a, b = ranks[0]["params"], ranks[1]["params"]
        assert all(torch.equal(a[k], b[k]) for k in a), f"run {name}: the ranks' parameters differ"
        assert max_diff(a, params(reference)) <= TOLERANCE, f"run {name}"
        assert max_diff(a, params(ConvNetwork(NETWORK, seed=1))) > 1e-3      # and they did train


def test_a_checkpoint_resumes_across_process_counts_and_only_rank_0_writes(trained):
    # One process trained epoch 0 (single.ckpt); two processes resumed it for epoch 1 (C-rank0.ckpt) ...
    reference, after_epoch = ConvNetwork(NETWORK, seed=1), []
    train(reference, data(96, 1), RESUMED.replace(epochs=3), validation_data=data(31, 2),
          on_epoch=lambda h: after_epoch.append(params(reference)))
    ranks = [torch.load(trained / f"C-rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert max_diff(ranks[0]["params"], after_epoch[1]) <= TOLERANCE
    assert torch.equal(torch.tensor(ranks[0]["accuracy"]), torch.tensor(ranks[1]["accuracy"]))
    assert (trained / "C-rank0.ckpt").exists() and not (trained / "C-rank1.ckpt").exists()
    assert not (trained / "D-rank1.ckpt").exists()
    assert not any(trained.glob("*-rank1.ckpt.lock"))                   # nor does any other rank take the lock
    # ... and one process goes on from the checkpoint the two wrote.
    net, state, _ = load_checkpoint(trained / "C-rank0.ckpt")
    assert state["epoch"] == 1 and len(state["dropout_rngs"]) == 2
    history = train(net, data(96, 1), RESUMED.replace(epochs=3), validation_data=data(31, 2), resume=state)
    assert history.epochs == [0, 1, 2]
    assert max_diff(params(net), params(reference)) <= TOLERANCE


def test_when_another_run_holds_the_checkpoint_every_rank_refuses_instead_of_waiting_for_rank_0(trained):
    rank0, rank1 = ((trained / f"E-rank{r}.txt").read_text() for r in (0, 1))
    assert "is already training into" in rank0 and "E.ckpt" in rank0
    assert "rank 0 could not lock the checkpoint" in rank1
    assert not (trained / "E.ckpt").exists()


def test_with_dropout_each_rank_draws_its_own_masks_and_the_parameters_still_agree(trained):
    a, b = (torch.load(trained / f"D-rank{r}.pt", weights_only=True)["params"] for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, state, _ = load_checkpoint(trained / "D-rank0.ckpt")
    rank0, rank1 = state["dropout_rngs"]
    assert torch.equal(rank0, state["dropout_rng"]) and not torch.equal(rank0, rank1)
    assert rank_seed(9, 0) == 9 and len({rank_seed(9, r) for r in range(4)} | {rank_seed(10, 0)}) == 5


def test_a_mini_batch_is_shared_out_as_evenly_as_possible():
    assert shard_sizes(10, 2) == [5, 5] and shard_sizes(10, 4) == [3, 3, 2, 2] and shard_sizes(3, 3) == [1, 1, 1]
    with pytest.raises(ConfigError, match="cannot be shared by 4 processes"):
        shard_sizes(3, 4)


# ---------------------------------------------------------------------------
# Failure: a crashed or hung peer, a peer that never comes, no torchrun
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def failures(tmp_path_factory):
    """Three launches at once (they mostly wait): a rank that crashes, one that hangs, one that never comes.

    Each would otherwise wait for as long as LAUNCH_LIMIT, and fail the test.
    """
    return {"crash": Launch(tmp_path_factory.mktemp("crash"), "crash", timeout=60.0),
            "hang": Launch(tmp_path_factory.mktemp("hang"), "hang", timeout=3.0),
            "alone": Launch(tmp_path_factory.mktemp("alone"), "train", timeout=2.0, ranks=(0,))}


def test_a_crashed_rank_ends_the_job_with_a_clear_message_instead_of_hanging(failures):
    (code0, err0, _), (code1, _, _) = failures["crash"].results()
    assert code1 == 7 and code0 == 2
    # Stopped by the closed connection, not by the 60 s timeout (that message would say "did not answer").
    assert "process 0 of 2: the all-reduce of the gradients failed: another process stopped" in err0, err0


def test_a_hung_rank_ends_the_job_after_the_timeout(failures):
    [(code0, err0, _)] = failures["hang"].results(only_first=True)
    assert code0 == 2 and "did not answer within 3 s" in err0, err0


def test_a_peer_that_never_joins_is_reported_after_the_timeout(failures):
    [(code, err, _)] = failures["alone"].results()
    assert code == 2 and "process 0 of 2 could not join the others at 127.0.0.1:" in err and "within 2 s" in err


def test_distributed_options_without_torchrun_say_how_to_launch(capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert not launched_by_torchrun() and init_from_environment() is None
    for options in (["--distributed"], ["--dist-timeout", "30"]):
        code, _, err = run(capsys, "conv", "--preset", "relu", *options)
        assert code == 2 and "torchrun --nproc_per_node=2 -m nndl conv" in err
    with pytest.raises(ConfigError, match="MASTER_ADDR, MASTER_PORT are not set"):
        init_from_environment(environ={"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="do not fit together"):
        init_from_environment(environ={"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "x",
                                       "MASTER_PORT": "1"})
    one = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "x", "MASTER_PORT": "1"}
    assert init_from_environment(environ=one) is None                 # torchrun with one process: no group
    assert World(rank=0, world_size=2).describe() == "2 processes (gloo, cpu)" and DEFAULT_TIMEOUT > 0


# ---------------------------------------------------------------------------
# The command line under torchrun
# ---------------------------------------------------------------------------

def test_torchrun_trains_one_network_rank_0_writes_and_one_process_resumes_it(capsys, idx_dataset, tmp_path):
    checkpoint, model, history, votes = (tmp_path / name for name in ("run.ckpt", "net.pt", "h.json", "p.pt"))
    options = [*data_args(idx_dataset), "--conv", "4:5:2", "--fc", "10", "--activation", "relu", "--eta", 0.05,
               "--seed", 3, "--device", "cpu", "--no-progress", "--mini-batch-size", 16]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nndl",
               "conv", *map(str, options), "--epochs", "1", "--dist-timeout", "60", "--checkpoint", str(checkpoint),
               "--save", str(model), "--history", str(history), "--predictions", str(votes)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_LIMIT, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("Epoch 0:") == 1 and out.count("Saved the best network") == 1
    assert "Data-parallel over 2 processes (gloo, cpu): each mini-batch of 16 is shared out (8 per process)" in out
    assert "The last 8 of the 1,000 images in each epoch's order are left out" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["digits", "h.json", "net.pt", "p.pt", "run.ckpt"])
    assert json.loads(history.read_text())["config"]["mini_batch_size"] == 16     # the global mini-batch
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), "--resume", checkpoint, "--epochs", 2,
                         "--threads", 1, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert "Resuming" in out and "Epoch 1:" in out and "Epoch 0:" not in out
    code, out, err = run(capsys, "ensemble", votes, votes, model, *data_args(idx_dataset), "--device", "cpu")
    assert code == 0, err
    assert "(saved predictions)" in out and "majority vote of 3" in out
    accuracies = {line.split(": test accuracy ")[1].split()[0] for line in out.splitlines() if "test accuracy" in line}
    assert len(accuracies) == 1                          # the predictions are the saved network's


def test_ensemble_votes_from_saved_predictions_without_the_data(capsys, tmp_path):
    from nndl.deep.ensemble import save_predictions
    images, labels = data(30, 4)
    paths = []
    for seed in (1, 2, 3):
        net = ConvNetwork(NETWORK, seed=seed)
        train(net, data(60, seed), TrainingConfig(epochs=2, mini_batch_size=6, eta=0.5, seed=seed))
        paths.append(save_predictions(tmp_path / f"m{seed}.pt", net, {"test": (images, labels)}, {"seed": seed}))
    code, out, err = run(capsys, "ensemble", *paths, "--device", "cpu", "--data", tmp_path / "nowhere")
    assert code == 0, err and "majority vote of 3" in out
    code, _, err = run(capsys, "ensemble", *paths, "--split", "validation", "--device", "cpu")
    assert code == 2 and "holds no validation predictions" in err
    other = save_predictions(tmp_path / "other.pt", net, {"test": (images[:-1], labels[:-1])})
    code, _, err = run(capsys, "ensemble", paths[0], other, "--device", "cpu")
    assert code == 2 and "other test images than" in err
