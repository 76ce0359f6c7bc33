"""Files the user names as inputs (models, checkpoints): refused in one line, before they are opened.

A FIFO, a directory, a symbolic-link loop, a name longer than the file
system allows and a file too large for its kind are each one
``nndl: error:`` line naming the path (exit status 2), never a hang or a
traceback; through the library, an ``NndlError``.
"""

import errno
import os
import threading

import pytest

from nndl.cli import main
from nndl.engine import modelio
from nndl.errors import FileFormatError, ModelFileError
from nndl.files import inputs
from nndl.files.inputs import check_input, open_input
from nndl.training import checkpoint as numpy_checkpoint

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from nndl.deep import checkpoint as conv_checkpoint  # noqa: E402


def cli_in_thread(capsys, *args, timeout=60):
    """``nndl ARGS`` in-process in a thread: (status, stdout, stderr); fails rather than hang."""
    result = {}

    def target():
        try:
            result["code"] = main([str(a) for a in args])
        except BaseException as e:                   # a traceback the user would see
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"nndl {' '.join(map(str, args))} hung (waiting on a FIFO?)", pytrace=False)
    if "error" in result:
        pytest.fail(f"traceback: {type(result['error']).__name__}: {result['error']}", pytrace=False)
    out, err = capsys.readouterr()
    return result["code"], out, err


def one_line(result, *needles):
    code, out, err = result
    assert "Traceback" not in err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nndl") and ": error: " in lines[0], err
    for needle in needles:
        assert str(needle) in lines[0], lines[0]
    return lines[0]


def bad_paths(tmp_path):
    """name -> (path, words the message must hold)."""
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.npz"
    os.symlink(loop, loop)
    directory = tmp_path / "adir.npz"
    directory.mkdir()
    long = tmp_path / ("x" * 300 + ".npz")
    return {"fifo": (fifo, "named pipe"), "loop": (loop, "symbolic links"),
            "directory": (directory, "directory"), "too-long": (long, "longer than the file system allows")}


CASES = ["fifo", "loop", "directory", "too-long"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("case", CASES)
def test_check_input_refuses_without_opening(tmp_path, case):
    path, words = bad_paths(tmp_path)[case]
    with pytest.raises(ModelFileError) as info:
        open_input(path, "a model file", 1 << 20, ModelFileError)
    assert words in str(info.value)
    if case != "too-long":
        assert str(path) in str(info.value)


def test_check_input_size_limit_and_missing(tmp_path):
    path = tmp_path / "big.npz"
    path.write_bytes(b"\0" * 2048)
    with pytest.raises(FileFormatError, match="more than the 1 KB"):
        check_input(path, "a model file", 1024)
    assert check_input(path, "a model file", 4096) == 2048
    with open_input(path, "a model file", 4096) as f:
        assert len(f.read()) == 2048
    with pytest.raises(FileNotFoundError):
        check_input(tmp_path / "missing.npz", "a model file", 1024)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("load", [modelio.load, numpy_checkpoint.load_checkpoint, conv_checkpoint.load_tensors,
                                  conv_checkpoint.load_model, conv_checkpoint.load_checkpoint,
                                  conv_checkpoint.load_members_checkpoint])
def test_every_loader_refuses_in_words(tmp_path, case, load):
    path, words = bad_paths(tmp_path)[case]
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert words in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", [["evaluate", "{}"], ["train", "--load", "{}", "--epochs", "1"],
                                     ["train", "--resume", "{}"], ["conv", "--resume", "{}", "--threads", "1"]])
def test_cli_refuses_in_one_line(capsys, tmp_path, case, command):
    path, words = bad_paths(tmp_path)[case]
    argv = [str(path) if a == "{}" else a for a in command]
    one_line(cli_in_thread(capsys, *argv), words)


def test_conv_model_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 4096)
    monkeypatch.setattr(conv_checkpoint, "MAX_BYTES", 1024)
    with pytest.raises(ModelFileError, match="more than the 1 KB"):
        conv_checkpoint.load_tensors(path)


def test_reason_words():
    assert "symbolic links" in inputs._reason(OSError(errno.ELOOP, "x"))
    assert "longer" in inputs._reason(OSError(errno.ENAMETOOLONG, "x"))
