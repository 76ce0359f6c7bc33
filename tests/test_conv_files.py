"""Hostile PyTorch files: refused from their zip directory and structure, before a tensor is read or a
network built.

A small file whose header declares hundreds of millions of parameters, a zip
bomb, a file with tensor data overwritten (its CRC-32 fails), a truncated
file and a pickled object are each a ``ModelFileError`` through the library
and one ``nndl: error:`` line through ``nndl evaluate`` (exit status 2).
"""

import io
import json
import struct
import zipfile

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from nndl.cli import main  # noqa: E402
from nndl.deep import checkpoint  # noqa: E402
from nndl.deep import network as deep_network  # noqa: E402
from nndl.deep.config import ConvNetConfig  # noqa: E402
from nndl.deep.network import ConvNetwork  # noqa: E402
from nndl.errors import ModelFileError  # noqa: E402

SMALL = ConvNetConfig(layers=({"type": "conv-pool", "filters": 2, "filter": (5, 5), "pool": (2, 2),
                               "activation": "relu"},
                              {"type": "fully-connected", "n_out": 8, "activation": "relu"},
                              {"type": "softmax", "n_out": 10}))
#: 784 x 300000 + ...: about 236 million weights and biases.
HUGE = ConvNetConfig(layers=({"type": "fully-connected", "n_out": 300000, "activation": "relu"},
                             {"type": "softmax", "n_out": 10}))


def header(config):
    return json.dumps({"network": config.to_dict(), "metadata": {}})


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.pt"
    checkpoint.save_model(ConvNetwork(SMALL, seed=0), path)
    return path


def data_offset(raw, name):
    """Where member ``name``'s data starts in the zip ``raw``."""
    info = zipfile.ZipFile(io.BytesIO(raw)).getinfo(name)
    n, m = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + n + m


def refused(capsys, path, *needles, forbidden=()):
    """Library and CLI refuse ``path`` in words; returns the CLI's line."""
    with pytest.raises(ModelFileError) as info:
        checkpoint.load_model(path)
    for needle in needles:
        assert needle in str(info.value)
    code = main(["evaluate", str(path), "--dataset", "idx", "--data", str(path.parent)])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nndl: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]
    for word in forbidden:
        assert word not in lines[0]
    return lines[0]


def test_huge_header_is_refused_before_any_network_is_built(capsys, tmp_path, monkeypatch):
    path = tmp_path / "huge.pt"
    torch.save({"format": "nndl-conv", "version": 1, "header": header(HUGE), "parameters": {}}, path)
    assert path.stat().st_size < 5000

    def no_building(*args, **kwargs):
        raise AssertionError("a network was built before its tensors were checked")
    monkeypatch.setattr(deep_network.ConvNetwork, "__init__", no_building)
    refused(capsys, path, "do not match the architecture")


def test_huge_header_with_small_tensors_of_the_right_names(capsys, tmp_path, monkeypatch):
    path = tmp_path / "huge.pt"
    names = checkpoint._parameter_shapes(HUGE)
    torch.save({"format": "nndl-conv", "version": 1, "header": header(HUGE),
                "parameters": {name: torch.zeros(1) for name in names}}, path)
    monkeypatch.setattr(deep_network.ConvNetwork, "__init__", lambda *a, **k: pytest.fail("built"))
    refused(capsys, path, "has shape (1,), but the architecture needs")


def test_zip_bomb_is_refused_unread(capsys, tmp_path):
    raw = io.BytesIO()
    torch.save({"format": "nndl-conv", "version": 1, "header": header(SMALL), "parameters": {"x": torch.zeros(4)}},
               raw)
    source = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w") as z:
        for info in source.infolist():
            if info.filename.endswith("/data/0"):
                member = zipfile.ZipInfo(info.filename)
                member.compress_type = zipfile.ZIP_DEFLATED
                with z.open(member, "w", force_zip64=True) as f:
                    for _ in range(4):
                        f.write(b"\0" * 2**22)                      # 16 MB of zeros in a few KB
            else:
                z.writestr(info.filename, source.read(info))
    refused(capsys, path, "zip bomb")


def test_overwritten_tensor_data_fails_its_crc(capsys, small):
    raw = bytearray(small.read_bytes())
    name = next(n for n in zipfile.ZipFile(small).namelist() if n.endswith("/data/0"))
    start = data_offset(bytes(raw), name)
    raw[start:start + 64] = bytes(range(64))
    small.write_bytes(bytes(raw))
    refused(capsys, small, "Bad CRC-32")


def test_truncated_file_is_called_a_truncated_pytorch_file(capsys, small):
    raw = small.read_bytes()
    small.write_bytes(raw[:len(raw) // 2])
    line = refused(capsys, small, "truncated or damaged PyTorch file", forbidden=(".npz",))
    assert "npz" not in line


def test_pickled_object_is_refused_without_pytorchs_hint(capsys, tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"format": "nndl-conv", "x": torch.nn.Linear(2, 2)}, path)
    refused(capsys, path, "objects other than tensors and numbers", "torch.nn.modules.linear.Linear",
            forbidden=("weights_only", "likely succeed", "can still be loaded"))


def test_record_smaller_than_its_storage(capsys, small):
    """A storage declaring more numbers than its record holds (a cheap way to ask for memory)."""
    raw = small.read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(raw))
    pkl = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    path = small.with_name("lying.pt")
    with zipfile.ZipFile(path, "w") as z:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename == pkl:
                # the first storage's numel, a BININT1/BININT after its location 'cpu', made 2**28
                at = data.index(b"X\x03\x00\x00\x00cpu")
                end = at + 8 + (2 if data[at + 8:at + 9] == b"q" else 0)
                op = data[end:end + 1]
                width = {b"K": 1, b"M": 2, b"J": 4}[op]
                data = data[:end] + b"J" + struct.pack("<i", 2**28) + data[end + 1 + width:]
            z.writestr(info, data)
    refused(capsys, path, "should be 1,073,741,824 bytes")


def test_good_files_still_load(small, tmp_path):
    net = checkpoint.load_model(small)
    assert isinstance(net, ConvNetwork)
    reference = ConvNetwork(SMALL, seed=0)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor)


# ---------------------------------------------------------------------------
# kill -9 in the middle of torch.save: the next checkpoint write removes the leftover
# ---------------------------------------------------------------------------

#: A child process whose torch.save writes half its file, says so and waits (to be killed): sys.argv[1] is the
#: target, sys.argv[2] a ConvNetConfig as JSON (``config``).
HALF_WRITER = """
import io, sys, time
import torch
torch.set_num_threads(1)
from nndl.deep import checkpoint
from nndl.deep.config import ConvNetConfig
from nndl.deep.network import ConvNetwork

real_save = torch.save

def half_then_wait(obj, f):
    buffer = io.BytesIO()
    real_save(obj, buffer)
    f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    f.flush()
    print("half written", flush=True)
    time.sleep(600)

checkpoint.torch.save = half_then_wait
config = ConvNetConfig.from_dict(__import__("json").loads(sys.argv[2]))
"""
WRITER = HALF_WRITER + """
checkpoint.save_checkpoint(sys.argv[1], ConvNetwork(config, seed=0), {"epoch": 0})
"""


def test_kill_9_during_a_checkpoint_write_leaves_a_leftover_that_the_next_write_removes(capsys, tmp_path,
                                                                                        idx_dataset):
    import os
    import signal
    import subprocess
    import sys

    from test_cli import data_args

    target = tmp_path / "run.ckpt"
    config = ConvNetConfig(layers=({"type": "conv-pool", "filters": 2, "filter": (5, 5), "pool": (2, 2),
                                    "activation": "relu"},
                                   {"type": "softmax", "n_out": 10}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), json.dumps(config.to_dict())],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "half written"
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.ckpt.")]
        assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
        child.stdout.close()
    assert not target.exists()
    code = main(["conv", *map(str, data_args(idx_dataset)), "--conv", "2:5:2", "--epochs", "1", "--threads", "1",
                 "--device", "cpu", "--no-progress", "--checkpoint", str(target)])
    capsys.readouterr()
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "run.ckpt" in p.name) == ["run.ckpt"]
    checkpoint.load_checkpoint(target)


# ---------------------------------------------------------------------------
# --resume of a checkpoint whose training state is damaged
# ---------------------------------------------------------------------------

RUN = ["--conv", "2:5:2", "--fc", "10", "--threads", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture
def momentum_checkpoint(capsys, idx_dataset, tmp_path):
    from test_cli import data_args
    path = tmp_path / "run.ckpt"
    assert main([str(a) for a in ["conv", *data_args(idx_dataset), *RUN, "--epochs", 1, "--momentum", 0.5,
                                  "--checkpoint", path]]) == 0
    capsys.readouterr()
    return path


def _wrong_velocity_shape(training):
    state = training["optimizer"]["state"]
    state[next(iter(state))]["momentum_buffer"] = torch.zeros(3)


def _integer_velocities(training):
    for entry in training["optimizer"]["state"].values():
        entry["momentum_buffer"] = entry["momentum_buffer"].to(torch.int64)


DAMAGE = {
    "velocity-shape": (_wrong_velocity_shape, "has shape (3,), but the network needs"),
    "velocity-integers": (_integer_velocities, "floating-point"),
    "optimizer-not-a-dict": (lambda t: t.__setitem__("optimizer", 3), "optimiser state is damaged"),
    "optimizer-state-not-a-dict": (lambda t: t["optimizer"].__setitem__("state", [1]), "optimiser state is damaged"),
    "eta-text": (lambda t: t.__setitem__("eta", "x"), "incomplete or damaged"),
    "eta-negative": (lambda t: t.__setitem__("eta", -1.0), "positive"),
    "epoch-text": (lambda t: t.__setitem__("epoch", "x"), "whole number"),
    "shuffle-rng": (lambda t: t.__setitem__("shuffle_rng", torch.zeros(3, dtype=torch.uint8)),
                    "incomplete or damaged"),
    "dropout-rng": (lambda t: t.__setitem__("dropout_rng", torch.zeros(7, dtype=torch.uint8)),
                    "incomplete or damaged"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_resume_of_a_damaged_training_state_is_one_line(capsys, idx_dataset, momentum_checkpoint, case):
    from test_cli import data_args
    damage, needle = DAMAGE[case]
    content = torch.load(momentum_checkpoint, weights_only=True)
    damage(content["training"])
    torch.save(content, momentum_checkpoint)
    code = main([str(a) for a in ["conv", *data_args(idx_dataset), "--resume", momentum_checkpoint, "--epochs", 2,
                                  "--threads", 1, "--device", "cpu", "--no-progress"]])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nndl: error: "), err
    assert needle in lines[0] and "Epoch 1" not in out


def test_resume_on_the_cpu_of_a_cuda_generator_state(capsys, idx_dataset, momentum_checkpoint):
    """A CUDA generator's state is 16 bytes; on the CPU the run re-seeds from it and says so."""
    from test_cli import data_args
    content = torch.load(momentum_checkpoint, weights_only=True)
    content["training"]["dropout_rng"] = torch.arange(16, dtype=torch.uint8)
    torch.save(content, momentum_checkpoint)
    argv = [str(a) for a in ["conv", *data_args(idx_dataset), "--resume", momentum_checkpoint, "--epochs", 2,
                             "--threads", 1, "--device", "cpu", "--no-progress"]]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "Epoch 1" in out and "re-seeded" in err and "Traceback" not in err


def test_pickle_of_millions_of_objects_is_refused_unpickled(capsys, tmp_path):
    """A few megabytes of one-byte EMPTY_DICT operations would make gigabytes of dicts."""
    raw = io.BytesIO()
    torch.save({"format": "nndl-conv"}, raw)
    source = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    bomb = b"\x80\x02(" + b"}" * (checkpoint._MAX_PICKLE_OPS + 10) + b"l."
    path = tmp_path / "pickle-bomb.pt"
    with zipfile.ZipFile(path, "w") as z:
        for info in source.infolist():
            z.writestr(info.filename, bomb if info.filename.endswith("data.pkl") else source.read(info))
    refused(capsys, path, "more than 1,000,000 objects")
