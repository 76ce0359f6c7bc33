"""Fuzzed model files: every byte position of a small model's zip structure, overwritten, is refused in words.

A PyTorch model file (``.pt``) and a NumPy model file (``.npz``) are zip
archives. For many positions in their local headers, central directory and
data, two kinds of damage (all zero bits, all one bits) must end either in a
model that loads whole, or in an ``NndlError`` (or ``OSError``) naming the
file -- never another exception, and never a network with non-finite weights.
"""

import numpy as np
import pytest
import torch
from test_conv_files import HALF_WRITER

from nndl.deep.checkpoint import load_model, save_model
from nndl.deep.config import ConvNetConfig
from nndl.deep.network import ConvNetwork
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.engine.modelio import load, save
from nndl.errors import NndlError

CONFIG = ConvNetConfig(input_shape=(1, 8, 8), layers=(
    {"type": "conv-pool", "filters": 2, "filter": 3, "pool": 2, "activation": "relu"},
    {"type": "softmax", "n_out": 3}))


@pytest.fixture(scope="module")
def pt_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("pt") / "net.pt"
    save_model(ConvNetwork(CONFIG, seed=1), path, {"note": "fuzz"})
    return path.read_bytes()


@pytest.fixture(scope="module")
def npz_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "net.npz"
    save(FeedforwardNetwork((6, 4, 3), seed=1), path)
    return path.read_bytes()


def positions(size, count=40):
    """Byte positions spread over the start (local header), the end (central directory) and the middle."""
    head = list(range(0, min(60, size), 3))
    tail = list(range(max(0, size - 120), size, 6))
    middle = list(np.linspace(60, max(61, size - 121), num=count, dtype=int))
    return sorted(set(head + tail + middle))


def damaged(data, position, value):
    out = bytearray(data)
    out[position] = value
    return bytes(out)


def fuzz_cases(kind):
    # The files are made by the fixtures, after collection: positions are spread over a size at least
    # theirs, and a test wraps a position past its file's end around to the start.
    return [(position, value) for position in positions(40_000 if kind == "pt" else 3_000) for value in (0x00, 0xFF)]


def _damaged_file(original, tmp_path, name, position, value):
    """``original`` with byte ``position`` (wrapped past its end) set to ``value``, written to tmp_path/name."""
    position %= len(original)
    if original[position] == value:
        pytest.skip("that byte already has this value")
    path = tmp_path / name
    path.write_bytes(damaged(original, position, value))
    return path


def _loads_whole_or_refuses_in_words(load, path):
    """The network ``load(path)`` gives, or None when it refused in one line naming the file."""
    try:
        return load(path)
    except (NndlError, OSError) as e:
        assert path.name in str(e) and "\n" not in str(e)
        return None


@pytest.mark.parametrize("position, value", fuzz_cases("pt"))
def test_a_damaged_pytorch_model_loads_whole_or_is_refused_in_words(pt_bytes, tmp_path, position, value):
    net = _loads_whole_or_refuses_in_words(load_model, _damaged_file(pt_bytes, tmp_path, "damaged.pt", position, value))
    assert net is None or all(bool(torch.isfinite(p).all()) for p in net.parameters())


@pytest.mark.parametrize("position, value", fuzz_cases("npz"))
def test_a_damaged_numpy_model_loads_whole_or_is_refused_in_words(npz_bytes, tmp_path, position, value):
    net = _loads_whole_or_refuses_in_words(load, _damaged_file(npz_bytes, tmp_path, "damaged.npz", position, value))
    assert net is None or net.parameters_finite()


PREDICTIONS_WRITER = HALF_WRITER + """
from nndl.deep.ensemble import save_predictions
g = torch.Generator().manual_seed(0)
split = (torch.rand(20, 1, 28, 28, generator=g), torch.randint(0, 10, (20,), generator=g))
save_predictions(sys.argv[1], ConvNetwork(config, seed=0), {"validation": split, "test": split})
"""


def test_kill_9_during_a_predictions_write_keeps_the_old_file_and_the_next_write_tidies(capsys, tmp_path,
                                                                                       idx_dataset):
    import json
    import os
    import signal
    import subprocess
    import sys

    from test_cli import data_args

    from nndl.cli import main
    from nndl.deep.checkpoint import load_tensors
    from nndl.deep.ensemble import read_predictions

    target = tmp_path / "p.pt"
    run = ["conv", *map(str, data_args(idx_dataset)), "--conv", "2:5:2", "--epochs", "1", "--threads", "1",
           "--device", "cpu", "--no-progress", "--seed", "1", "--predictions", str(target)]
    assert main(run) == 0
    before = target.read_bytes()
    config = ConvNetConfig(layers=({"type": "conv-pool", "filters": 2, "filter": (5, 5), "pool": (2, 2),
                                    "activation": "relu"}, {"type": "softmax", "n_out": 10}))
    child = subprocess.Popen([sys.executable, "-c", PREDICTIONS_WRITER, str(target), json.dumps(config.to_dict())],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "half written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
        if child.stdout is not None:
            child.stdout.close()
    assert target.read_bytes() == before                                  # the old file, whole
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".p.pt.")]) == 1
    assert main(run) == 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir() if "p.pt" in p.name) == ["p.pt"]
    read_predictions(target, load_tensors(target, "predictions"))
