"""nndl conv options that cannot mean anything: one ``nndl: error:`` line (exit status 2), no traceback.

--validation-size 0 (nndl conv picks its best epoch by validation accuracy), --validation-size with
MNIST (whose validation split is fixed), --resume with options the checkpoint fixes, a seed beyond
64 bits, and a network that cannot fit in memory.
"""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from test_cli import data_args  # noqa: E402

from nndl.cli import conv as conv_cli  # noqa: E402
from nndl.cli import main  # noqa: E402
from nndl.deep import network as deep_network  # noqa: E402

BASE = ["--conv", "2:5:2", "--fc", "10", "--epochs", "1", "--threads", "1", "--device", "cpu", "--no-progress"]


def one_line(capsys, argv, *needles):
    try:
        code = main([str(a) for a in argv])
    except BaseException as e:                   # what the user would see as a traceback
        pytest.fail(f"traceback: {type(e).__name__}: {e}", pytrace=False)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nndl: error: "), err
    assert "Traceback" not in err and "Epoch" not in out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_validation_size_zero_is_refused(capsys, idx_dataset):
    argv = ["conv", "--dataset", "idx", "--data", idx_dataset, "--validation-size", 0, *BASE]
    one_line(capsys, argv, "--validation-size 0", "best epoch")


def test_validation_size_with_mnist_is_refused(capsys, tmp_path):
    one_line(capsys, ["conv", "--data", tmp_path, "--validation-size", 60000, *BASE], "--validation-size 60000",
             "--dataset idx")


@pytest.mark.parametrize("seed", [2**70, 2**63, -1])
def test_seed_beyond_64_bits_is_refused(capsys, idx_dataset, seed):
    one_line(capsys, ["conv", *data_args(idx_dataset), *BASE, "--seed", seed], f"--seed {seed}", "2**63 - 2")


def test_seeds_beyond_64_bits_are_refused(capsys, idx_dataset):
    one_line(capsys, ["conv", *data_args(idx_dataset), *BASE, "--seeds", 1, 2**70], "--seeds", "2**63 - 2")


def test_resume_refuses_options_the_checkpoint_fixes(capsys, idx_dataset, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    assert main([str(a) for a in ["conv", *data_args(idx_dataset), *BASE, "--checkpoint", checkpoint]]) == 0
    capsys.readouterr()
    line = one_line(capsys, ["conv", *data_args(idx_dataset), "--resume", checkpoint, "--eta", 5, "--conv", "50:3:2",
                             "--threads", 1], "--eta", "--conv", "from the checkpoint")
    assert "--epochs" in line                                  # what may still be given
    one_line(capsys, ["conv", *data_args(idx_dataset), "--resume", checkpoint, "--seed", 3], "--seed")


def test_a_network_too_large_for_the_memory_is_refused_before_it_is_built(capsys, idx_dataset, monkeypatch):
    monkeypatch.setattr(conv_cli, "_memory_available", lambda device: 2**30)
    monkeypatch.setattr(deep_network.ConvNetwork, "__init__", lambda *a, **k: pytest.fail("built"))
    one_line(capsys, ["conv", *data_args(idx_dataset), *BASE, "--conv", "4000:5:2"], "GB", "1.0 GB is available")


def test_an_allocation_that_fails_is_one_line(capsys, idx_dataset, monkeypatch):
    def cannot(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 92160000000 bytes.\nmore")
    monkeypatch.setattr(deep_network.ConvNetwork, "__init__", cannot)
    one_line(capsys, ["conv", *data_args(idx_dataset), *BASE], "out of memory", "can't allocate memory")


def test_other_runtime_errors_are_still_bugs(idx_dataset, monkeypatch):
    monkeypatch.setattr(deep_network.ConvNetwork, "__init__", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("some bug")))
    with pytest.raises(RuntimeError, match="some bug"):
        main([str(a) for a in ["conv", *data_args(idx_dataset), *BASE]])


def test_memory_estimate_grows_with_the_network():
    from nndl.deep.config import ConvNetConfig
    small = ConvNetConfig(layers=({"type": "conv-pool", "filters": 20, "filter": 5, "pool": 2, "activation": "relu"},
                                  {"type": "softmax", "n_out": 10}))
    big = small.replace(layers=({"type": "conv-pool", "filters": 4000, "filter": 5, "pool": 2, "activation": "relu"},
                                {"type": "softmax", "n_out": 10}))
    assert conv_cli._memory_needed(small, 10) < 2**27 < conv_cli._memory_needed(big, 10)
