"""Full-MNIST runs: real data, real training (marked slow; skipped without the MNIST files)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import real_mnist_dir

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.training import train

pytestmark = [pytest.mark.slow, pytest.mark.mnist]


def test_chapter1_network_after_two_epochs(mnist_data):
    net = FeedforwardNetwork([784, 30, 10], cost="quadratic", init="large", seed=1)
    history = train(net, mnist_data.training, epochs=2, mini_batch_size=10, eta=3.0,
                    evaluation_data=mnist_data.test, seed=1)
    assert history.evaluation_accuracy[0] > 0.85      # the book: about 91% after the first epoch
    assert history.best_accuracy > 0.90


def test_float32_learns_as_well(mnist_data):
    net = FeedforwardNetwork([784, 30, 10], cost="quadratic", init="large", seed=1, dtype=np.float32)
    history = train(net, mnist_data.training, epochs=2, mini_batch_size=10, eta=3.0,
                    evaluation_data=mnist_data.test, seed=1)
    assert history.best_accuracy > 0.90


def test_eta_100_saturates_and_says_so(mnist_data):
    net = FeedforwardNetwork([784, 30, 10], cost="quadratic", init="large", seed=1)
    history = train(net, mnist_data.training, epochs=2, mini_batch_size=10, eta=100.0,
                    evaluation_data=mnist_data.test, seed=1)
    assert history.best_accuracy < 0.2
    assert history.stop_reason in ("saturated", "diverged")
    assert "learning rate" in history.message or "eta" in history.message


def test_the_books_session_runs_as_printed(mnist_data, capsys):
    from nndl import mnist_loader, network
    training_data, validation_data, test_data = mnist_loader.load_data_wrapper(real_mnist_dir())
    net = network.Network([784, 30, 10], seed=2)
    net.SGD(training_data, 1, 10, 3.0, test_data=test_data)
    line = capsys.readouterr().out.strip().splitlines()[0]
    assert line.startswith("Epoch 0: ") and line.endswith(" / 10000")
    assert int(line.split()[2]) > 8500


def test_nndl_train_command_stays_under_500_mb(tmp_path):
    """The main job, as a person runs it, on full MNIST: resident memory of the child process."""
    if real_mnist_dir() is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    env = dict(os.environ, NNDL_DATA=str(real_mnist_dir()))
    # A small wrapper process runs the command and reports its child's peak
    # resident memory. (Measured from this test process, the figure would
    # include the pages the child inherits from pytest before its exec.)
    wrapper = ("import resource, subprocess, sys; "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(r.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "print(r.stdout); print(r.stderr, file=sys.stderr)")
    command = [sys.executable, "-m", "nndl", "train", "--epochs", "1", "--save", str(tmp_path / "m.npz")]
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    code, peak_kb, output = result.stdout.split("\n", 2)
    assert code == "0", result.stderr
    assert "Epoch 0: test accuracy" in output
    assert int(peak_kb) < 500 * 1024, f"nndl train used {int(peak_kb) / 1024:.0f} MB"
    result = subprocess.run([sys.executable, "-m", "nndl", "evaluate", str(tmp_path / "m.npz")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("test accuracy: ")
