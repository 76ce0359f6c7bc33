"""One process at a time trains into a checkpoint (``nndl.files.lock``), for every engine and front end.

The other process is real: a child Python that takes the lock and holds it
until told to let go, or is killed outright (a killed holder must leave no
stale lock). The refused run must stop before it trains anything: no
checkpoint written, the holder's file untouched.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import OutputError
from nndl.files.lock import lock_path, sole_writer
from nndl.training import train

ROOT = Path(__file__).resolve().parent.parent
#: Seconds the holder may take to start and take the lock.
START_LIMIT = 60


class Holder:
    """A separate process that holds the lock of ``path`` from the start until ``release`` or ``kill``."""

    def __init__(self, path):
        code = textwrap.dedent(f"""
            import sys
            from nndl.files.lock import sole_writer
            with sole_writer({str(path)!r}):
                print("held", flush=True)
                sys.stdin.read()
        """)
        self.process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "held":
            self.process.kill()
            raise AssertionError(f"the holder did not take the lock: {self.process.communicate()[1]}")

    def release(self):
        _, err = self.process.communicate("", timeout=START_LIMIT)
        assert self.process.returncode == 0, err

    def kill(self):
        self.process.kill()
        self.process.communicate(timeout=START_LIMIT)


@pytest.fixture
def holder(tmp_path):
    """Start a Holder of a path (called with it); every one started is ended after the test."""
    started = []

    def start(path):
        started.append(Holder(path))
        return started[-1]
    yield start
    for h in started:
        if h.process.poll() is None:
            h.kill()


def numpy_problem():
    rng = np.random.default_rng(0)
    return rng.random((40, 6)), rng.integers(0, 3, 40)


def test_a_second_writer_is_refused_in_one_line_and_the_lock_is_free_once_the_holder_lets_go(tmp_path, holder):
    path = tmp_path / "run.ckpt"
    h = holder(path)
    with pytest.raises(OutputError) as refused:
        with sole_writer(path):
            pytest.fail("two processes held the lock")
    message = str(refused.value)
    assert "\n" not in message and f"process {h.process.pid} is already training into {path}" in message
    assert "wait for it to finish or stop it" in message
    h.release()
    assert not Path(lock_path(path)).exists()                 # the holder took its lock file away
    with sole_writer(path):
        assert Path(lock_path(path)).read_text() == f"{os.getpid()}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_holder_killed_outright_leaves_no_stale_lock(tmp_path, holder):
    path = tmp_path / "run.ckpt"
    holder(path).kill()
    assert Path(lock_path(path)).exists()                     # left behind, but no longer locked
    with sole_writer(path):
        pass
    assert not Path(lock_path(path)).exists()


def test_the_same_process_cannot_hold_it_twice_and_a_missing_folder_is_refused_not_made(tmp_path):
    path = tmp_path / "run.ckpt"
    with sole_writer(path):
        with pytest.raises(OutputError, match=f"process {os.getpid()} is already training"):
            with sole_writer(path):
                pass
    with pytest.raises(OutputError, match=r"cannot write .*run\.ckpt: the folder .*missing does not exist"):
        with sole_writer(tmp_path / "missing" / "run.ckpt"):
            pass
    assert not (tmp_path / "missing").exists()


def test_numpy_training_into_a_held_checkpoint_stops_before_its_first_epoch(tmp_path, holder):
    path = tmp_path / "run.npz"
    x, y = numpy_problem()
    h = holder(path)
    net = FeedforwardNetwork((6, 5, 3), seed=1)
    before = [p.copy() for p in net.params]
    with pytest.raises(OutputError, match="is already training into"):
        train(net, (x, y), epochs=2, mini_batch_size=5, eta=0.5, seed=1, checkpoint=str(path))
    assert not path.exists()
    assert all(np.array_equal(a, b) for a, b in zip(before, net.params))
    h.release()
    history = train(net, (x, y), epochs=2, mini_batch_size=5, eta=0.5, seed=1, checkpoint=str(path))
    assert history.epochs == [0, 1] and path.exists()
    with sole_writer(path):                     # released when training ended
        pass


def test_torch_training_one_network_or_several_at_once_into_a_held_checkpoint_is_refused(tmp_path, holder):
    torch = pytest.importorskip("torch")
    from nndl.deep.multi import train_many
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train as train_conv
    from nndl.training.config import ConvNetConfig, TrainingConfig

    config = ConvNetConfig(input_shape=(1, 6, 6), layers=(
        {"type": "fully-connected", "n_out": 5, "activation": "sigmoid"}, {"type": "softmax", "n_out": 3}))
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(30, 1, 6, 6, generator=g), torch.randint(0, 3, (30,), generator=g))
    settings = TrainingConfig(epochs=1, mini_batch_size=5, eta=0.1, seed=3)
    one, several = tmp_path / "one.ckpt", tmp_path / "several.ckpt"
    holders = [holder(one), holder(several)]
    with pytest.raises(OutputError, match="is already training into .*one.ckpt"):
        train_conv(ConvNetwork(config, seed=3), data, settings, checkpoint=one)
    with pytest.raises(OutputError, match="is already training into .*several.ckpt"):
        train_many([ConvNetwork(config, seed=s) for s in (3, 5)], data, config=settings, seeds=[3, 5],
                   checkpoint=several)
    assert not one.exists() and not several.exists()
    for h in holders:
        h.release()
    train_conv(ConvNetwork(config, seed=3), data, settings, checkpoint=one)
    train_many([ConvNetwork(config, seed=s) for s in (3, 5)], data, config=settings, seeds=[3, 5],
               checkpoint=several)
    assert one.exists() and several.exists()


def test_nndl_train_into_a_held_checkpoint_says_so_and_fails(capsys, idx_dataset, tmp_path, holder):
    from nndl.cli import main
    checkpoint = tmp_path / "run.npz"
    h = holder(checkpoint)
    code = main(["train", "--dataset", "idx", "--data", str(idx_dataset), "--validation-size", "200",
                 "--sizes", "784", "10", "10", "--epochs", "1", "--no-progress", "--checkpoint", str(checkpoint)])
    err = capsys.readouterr().err
    assert code != 0 and "is already training into" in err and "Traceback" not in err
    assert not checkpoint.exists()
    h.release()


def test_a_lock_file_removed_by_its_last_holder_between_open_and_lock_is_opened_again(tmp_path, monkeypatch):
    import fcntl
    path, calls = tmp_path / "run.ckpt", []
    real = fcntl.flock

    def flock(fd, operation):
        calls.append(os.fstat(fd).st_ino)
        if len(calls) == 1:                   # the holder before us lets go: it removes the file, then unlocks
            os.unlink(lock_path(path))
        real(fd, operation)
    monkeypatch.setattr(fcntl, "flock", flock)
    with sole_writer(path):
        assert len(calls) == 2                # the first file was gone once locked: it opened the new one
        assert os.stat(lock_path(path)).st_ino == calls[1]
        assert Path(lock_path(path)).read_text() == f"{os.getpid()}\n"
    assert not Path(lock_path(path)).exists()
