"""Shared fixtures: small learnable data, a synthetic idx data set, and the real MNIST when present."""

import os
from pathlib import Path

import numpy as np
import pytest

from nndl.data.idx import write_idx
from nndl.data.mnist import FILES


def default_sigint():
    """``preexec_fn`` for a process the tests press Ctrl-C in: SIGINT as a terminal gives it.

    A test run started in the background (``pytest &``, a script's job) ignores
    SIGINT, and its children would inherit that.
    """
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_python(code, timeout=60):
    """``python -c code`` in a fresh interpreter importing this checkout's nndl: the CompletedProcess (text).

    For what only a fresh process shows, such as which modules an import pulls in.
    """
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})


def pytest_configure(config):
    """A relative $NNDL_DATA (as the README's first command writes it) made absolute, once.

    Tests run commands in other directories (``cwd=tmp_path``); there the
    relative path would name nothing.
    """
    if os.environ.get("NNDL_DATA"):
        os.environ["NNDL_DATA"] = str(Path(os.environ["NNDL_DATA"]).resolve())


def real_mnist_dir():
    """The directory of the real MNIST files, or None: $NNDL_DATA, then ../shared/data/mnist."""
    candidates = []
    if os.environ.get("NNDL_DATA"):
        candidates.append(Path(os.environ["NNDL_DATA"]))
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
    for c in candidates:
        if all((c / (name + ".gz")).exists() or (c / name).exists() for name in FILES.values()):
            return c
    return None


@pytest.fixture(scope="session")
def mnist_data():
    """The real MNIST, loaded once per test session; skips when the files are absent."""
    directory = real_mnist_dir()
    if directory is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    from nndl.data.mnist import load_mnist
    return load_mnist(directory, download=False, progress=False)


def blobs(n=300, n_in=8, k=3, seed=0, spread=0.35):
    """A small classification problem: k Gaussian clusters in [0, 1]^n_in.

    Returns
    -------
    x : ndarray, shape (n, n_in), float32
    labels : ndarray, shape (n,), int64
    """
    rng = np.random.default_rng(seed)
    centres = rng.random((k, n_in))
    labels = rng.integers(0, k, size=n)
    x = centres[labels] + spread * rng.standard_normal((n, n_in)) / np.sqrt(n_in)
    return np.clip(x, 0, 1).astype(np.float32), labels.astype(np.int64)


@pytest.fixture
def idx_dataset(tmp_path):
    """A synthetic data set in MNIST's four-file idx layout: 28x28 images of 10 learnable classes.

    1,200 training images (the last 200 are the validation split when loaded
    with validation_size=200) and 300 test images. Each class lights up its
    own horizontal band of the image, plus noise.
    """
    rng = np.random.default_rng(0)

    def make(n):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
        return images, labels

    train_images, train_labels = make(1200)
    test_images, test_labels = make(300)
    directory = tmp_path / "digits"
    directory.mkdir()
    write_idx(directory / (FILES["train_images"] + ".gz"), train_images)
    write_idx(directory / (FILES["train_labels"] + ".gz"), train_labels)
    write_idx(directory / (FILES["test_images"] + ".gz"), test_images)
    write_idx(directory / (FILES["test_labels"] + ".gz"), test_labels)
    return directory


@pytest.fixture(scope="module")
def one_torch_thread():
    """PyTorch on one thread for a module's tests: the machine is shared, and one thread is also the
    fastest for networks this small. Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
