"""A bad-input campaign: every user mistake ends in a plain one-line error, never a traceback.

Through the command line (``nndl.cli.main`` in-process, and a few real
``python -m nndl`` processes): exit status 2 and exactly one line on stderr,
``nndl: error: ...``, naming the offending option, value or path, and no
"Traceback" anywhere. Through the library: an ``nndl.errors.NndlError``
(``FileNotFoundError``/``PermissionError`` for a file that is missing or
unreadable, ``IsADirectoryError`` for a directory), never TypeError,
AttributeError, KeyError, IndexError, RecursionError or MemoryError.

The data is a tiny synthetic set in MNIST's idx layout (300 training images,
the last 50 of them the validation split, 100 test images); every training
run is one epoch. Last, ``kill -9`` in the middle of each kind of write must
leave the previous file intact, and the next write must leave no temporary
files behind.
"""

import copy
import gzip
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.lib import format as npy_format

from nndl.cli import main
from nndl.data.expand import load_expanded, save_expanded
from nndl.data.idx import write_idx
from nndl.data.mnist import FILES, load_idx_dataset
from nndl.engine import modelio
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import NndlError
from nndl.training import train
from nndl.training.config import NetworkConfig, TrainingConfig
from nndl.training.history import History

VALIDATION = 50
#: Exceptions that are bugs, whatever the input.
FORBIDDEN = (TypeError, AttributeError, KeyError, IndexError, RecursionError, MemoryError)
#: The one line of a user error. argparse's own usage errors say "nndl train: error:"; that spelling
#: is checked separately (test_usage_errors_use_the_documented_prefix) so it does not hide the rest.
ERROR_LINE = re.compile(r"nndl(?: (?:train|evaluate|expand|plot))?: error: \S")
DELETE = object()
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def cli(capsys, *args):
    """Run ``nndl ARGS`` in-process; (exit status, stdout, stderr). An escaping exception fails the test."""
    argv = [str(a) for a in args]
    try:
        code = main(argv)
    except BaseException as e:                                   # what the user would see as a traceback
        capsys.readouterr()
        shown = " ".join(argv)
        pytest.fail(f"Traceback: `nndl {shown[:300]}` raised {type(e).__name__}: {str(e)[:300]}", pytrace=False)
    out, err = capsys.readouterr()
    return code, out, err


def user_error(result, *needles):
    """Assert exit status 2, one ``nndl: error:`` line on stderr naming every needle, no traceback."""
    code, out, err = result
    assert "Traceback" not in out and "Traceback" not in err, f"traceback in the output:\n{err[-3000:]}"
    assert code == 2, f"exit status {code}, expected 2; stderr: {err[-1500:]!r}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}: {err[-1500:]!r}"
    line = lines[0]
    assert ERROR_LINE.match(line), f"the error line does not start with 'nndl: error:': {line!r}"
    for needle in needles:
        assert str(needle) in line, f"the message does not name {str(needle)!r}: {line!r}"
    return line


def clean_outcome(result, *needles):
    """For values that are legal but extreme: success, or a user error naming the needles."""
    code, out, err = result
    assert "Traceback" not in out and "Traceback" not in err, f"traceback in the output:\n{err[-3000:]}"
    if code != 0:
        user_error(result, *needles)


def library_error(fn, *needles, allowed=(NndlError,)):
    """Assert ``fn()`` raises one of ``allowed`` whose message names every needle; never a bug's exception."""
    try:
        result = fn()
    except allowed as e:
        message = str(e)
        for needle in needles:
            assert str(needle) in message, f"{type(e).__name__} does not name {str(needle)!r}: {message[:500]!r}"
        return e
    except FORBIDDEN as e:
        pytest.fail(f"{type(e).__name__} (a bug, not an NndlError): {str(e)[:300]}", pytrace=False)
    except Exception as e:
        pytest.fail(f"{type(e).__module__}.{type(e).__name__} is not an NndlError: {str(e)[:300]}", pytrace=False)
    pytest.fail(f"no error was raised (returned {str(result)[:200]})", pytrace=False)


def data_args(directory):
    return ["--dataset", "idx", "--data", directory, "--validation-size", VALIDATION]


def temporaries(target):
    """The temporary files of ``target`` in its directory (``.NAME.*``)."""
    target = Path(target)
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def npy_bytes(array, allow_pickle=False):
    buf = io.BytesIO()
    npy_format.write_array(buf, np.asarray(array), allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_declaring(shape, descr="<f8", data=b"\0" * 64):
    """A .npy member whose header declares ``shape`` but that holds only ``data``."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + data


def zip_bytes(members, compression=zipfile.ZIP_DEFLATED):
    """A zip archive: name -> bytes (stored as is) or ndarray (stored as NAME.npy)."""
    buf = io.BytesIO()
    written = set()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, value in members.items():
            stored = name if isinstance(value, (bytes, bytearray)) else name + ".npy"
            assert stored not in written, f"the test wrote member {stored} twice"
            written.add(stored)
            if isinstance(value, (bytes, bytearray)):
                z.writestr(stored, bytes(value))
            else:
                z.writestr(stored, npy_bytes(value, allow_pickle=True))
    return buf.getvalue()


def corrupt_member(raw, member, start=40, length=200):
    """``raw`` (a zip) with bytes inside the compressed data of ``member`` overwritten."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        info = z.getinfo(member)
    data = bytearray(raw)
    offset = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[offset + 26:offset + 30])
    begin = offset + 30 + name_len + extra_len + start
    end = min(begin + length, offset + 30 + name_len + extra_len + info.compress_size - 4)
    for i in range(begin, end):
        data[i] ^= 0x5A
    return bytes(data)


def bad_crc(raw, member):
    """``raw`` (a zip) with the CRC of ``member`` wrong in both headers."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        info = z.getinfo(member)
    data = bytearray(raw)
    wrong = struct.pack("<I", (info.CRC ^ 0xFFFFFFFF) & 0xFFFFFFFF)
    data[info.header_offset + 14:info.header_offset + 18] = wrong
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack("<H", data[central + 28:central + 30])[0]
        if data[central + 46:central + 46 + name_len] == info.filename.encode():
            data[central + 16:central + 20] = wrong
            break
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def deep_list(depth=100_000):
    return ("[" * depth + "]" * depth).encode()


def deep_dict(depth=100_000):
    return ('{"a":' * depth + "1" + "}" * depth).encode()


GARBAGE = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes().replace(b"PK", b"pk")


# ---------------------------------------------------------------------------
# Fixtures: a tiny idx data set and one good file of each kind
# ---------------------------------------------------------------------------


def _make_images(rng, n, side=28):
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = (rng.random((n, side, side)) * 60).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label: 4 + 2 * label, 4:side - 4] = 255
    return images, labels


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Four idx files in MNIST's layout: 300 training (50 validation) and 100 test images."""
    rng = np.random.default_rng(0)
    directory = tmp_path_factory.mktemp("digits")
    train_images, train_labels = _make_images(rng, 300)
    test_images, test_labels = _make_images(rng, 100)
    write_idx(directory / (FILES["train_images"] + ".gz"), train_images)
    write_idx(directory / (FILES["train_labels"] + ".gz"), train_labels)
    write_idx(directory / (FILES["test_images"] + ".gz"), test_images)
    write_idx(directory / (FILES["test_labels"] + ".gz"), test_labels)
    return directory


@pytest.fixture(scope="module")
def good(tmp_path_factory, digits):
    """A good model (JSON and .npz), history and expanded file, and their contents."""
    directory = tmp_path_factory.mktemp("good")
    net = FeedforwardNetwork([784, 3, 10], activations="sigmoid", cost="quadratic", seed=0)
    modelio.save(net, directory / "model.json")
    modelio.save(net, directory / "model.npz")
    data = load_idx_dataset(digits, validation_size=VALIDATION)
    trained = FeedforwardNetwork([784, 3, 10], activations="sigmoid", cost="quadratic", seed=0)
    history = train(trained, data.training, epochs=2, mini_batch_size=10, eta=1.0,
                    evaluation_data=data.validation,
                    monitor=["training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy"])
    history.save(directory / "history.json")
    save_expanded(directory / "expanded.npz", data.training.images[:20], data.training.labels[:20],
                  {"source": "campaign"})
    model = json.loads((directory / "model.json").read_text())
    description = {k: v for k, v in model.items() if k not in ("weights", "biases")}
    return SimpleNamespace(
        dir=directory, net=net, data=data,
        model_json=directory / "model.json", model_npz=directory / "model.npz",
        history=directory / "history.json", expanded=directory / "expanded.npz",
        model=model, description=description,
        history_dict=json.loads((directory / "history.json").read_text()),
        expanded_images=np.rint(data.training.images[:20] * 255).astype(np.uint8),
        expanded_labels=data.training.labels[:20].astype(np.int64))


# ---------------------------------------------------------------------------
# 1. Command-line options
# ---------------------------------------------------------------------------

NUMERIC_OPTION_CASES = [
    # (id, extra arguments, what the message must name)
    ("eta-zero", ["--eta", "0"], ["--eta", "0"]),
    ("eta-negative", ["--eta", "-1"], ["--eta", "-1"]),
    ("eta-nan", ["--eta", "nan"], ["--eta", "nan"]),
    ("eta-inf", ["--eta", "inf"], ["--eta", "inf"]),
    ("eta-minus-inf", ["--eta=-inf"], ["--eta", "-inf"]),
    ("eta-text", ["--eta", "fast"], ["--eta", "fast"]),
    ("eta-empty", ["--eta", ""], ["--eta"]),
    ("eta-overflows-to-inf", ["--eta", "1e999"], ["--eta", "1e999"]),
    ("lmbda-negative", ["--lmbda", "-2"], ["--lmbda", "-2"]),
    ("lmbda-nan", ["--lmbda", "nan"], ["--lmbda", "nan"]),
    ("lmbda-inf", ["--lmbda", "inf"], ["--lmbda", "inf"]),
    ("lmbda-text", ["--lmbda", "lots"], ["--lmbda", "lots"]),
    ("lmbda-overflows-to-inf", ["--lmbda", "1e999"], ["--lmbda", "1e999"]),
    ("lambda-alias-negative", ["--lambda", "-1"], ["-1"]),
    ("lmbda-huge-weight-decay-flips-weights", ["--lmbda", "1e12"], ["lambda", "1e+12"]),
    ("lmbda-just-too-large", ["--lmbda", "84", "--eta", "3"], ["lambda", "84"]),   # 3 * 84 / 250 >= 1
    ("epochs-zero", ["--epochs", "0"], ["--epochs", "0"]),
    ("epochs-negative", ["--epochs", "-3"], ["--epochs", "-3"]),
    ("epochs-nan", ["--epochs", "nan"], ["--epochs", "nan"]),
    ("epochs-inf", ["--epochs", "inf"], ["--epochs", "inf"]),
    ("epochs-fraction", ["--epochs", "1.5"], ["--epochs", "1.5"]),
    ("epochs-text", ["--epochs", "many"], ["--epochs", "many"]),
    ("mini-batch-zero", ["--mini-batch-size", "0"], ["--mini-batch-size", "0"]),
    ("mini-batch-negative", ["--mini-batch-size", "-10"], ["--mini-batch-size", "-10"]),
    ("mini-batch-nan", ["--mini-batch-size", "nan"], ["--mini-batch-size", "nan"]),
    ("mini-batch-inf", ["-m", "inf"], ["--mini-batch-size", "inf"]),
    ("mini-batch-fraction", ["--mini-batch-size", "2.5"], ["--mini-batch-size", "2.5"]),
    ("mini-batch-text", ["--mini-batch-size", "ten"], ["--mini-batch-size", "ten"]),
    ("dropout-one", ["--dropout", "1"], ["dropout", "1"]),
    ("dropout-above-one", ["--dropout", "1.5"], ["dropout", "1.5"]),
    ("dropout-negative", ["--dropout", "-0.1"], ["dropout", "-0.1"]),
    ("dropout-nan", ["--dropout", "nan"], ["dropout", "nan"]),
    ("dropout-inf", ["--dropout", "inf"], ["dropout", "inf"]),
    ("dropout-huge", ["--dropout", "1e999"], ["dropout"]),
    ("dropout-text", ["--dropout", "half"], ["--dropout", "half"]),
    ("momentum-one", ["--momentum", "1"], ["momentum", "1"]),
    ("momentum-two", ["--momentum", "2"], ["momentum", "2"]),
    ("momentum-negative", ["--momentum", "-0.5"], ["momentum", "-0.5"]),
    ("momentum-nan", ["--momentum", "nan"], ["momentum", "nan"]),
    ("momentum-inf", ["--momentum", "inf"], ["momentum", "inf"]),
    ("momentum-text", ["--momentum", "some"], ["--momentum", "some"]),
    ("patience-zero", ["--patience", "0"], ["--patience", "0"]),
    ("patience-negative", ["--patience", "-1"], ["--patience", "-1"]),
    ("patience-nan", ["--patience", "nan"], ["--patience", "nan"]),
    ("patience-fraction", ["--patience", "2.5"], ["--patience", "2.5"]),
    ("patience-text", ["--patience", "long"], ["--patience", "long"]),
    ("early-stopping-zero", ["--early-stopping", "0"], ["--early-stopping", "0"]),
    ("early-stopping-negative", ["--early-stopping", "-5"], ["--early-stopping", "-5"]),
    ("early-stopping-nan", ["--early-stopping", "nan"], ["--early-stopping", "nan"]),
    ("early-stopping-inf", ["--early-stopping", "inf"], ["--early-stopping", "inf"]),
    ("early-stopping-text", ["--early-stopping", "soon"], ["--early-stopping", "soon"]),
    ("training-size-zero", ["--training-size", "0"], ["--training-size", "0"]),
    ("training-size-negative", ["--training-size", "-100"], ["--training-size", "-100"]),
    ("training-size-nan", ["--training-size", "nan"], ["--training-size", "nan"]),
    ("training-size-fraction", ["--training-size", "0.5"], ["--training-size", "0.5"]),
    ("training-size-text", ["--training-size", "all"], ["--training-size", "all"]),
    ("validation-size-negative", ["--validation-size", "-1"], ["validation", "-1"]),
    ("validation-size-nan", ["--validation-size", "nan"], ["--validation-size", "nan"]),
    ("validation-size-fraction", ["--validation-size", "0.2"], ["--validation-size", "0.2"]),
    ("validation-size-text", ["--validation-size", "some"], ["--validation-size", "some"]),
    ("validation-size-all-of-training", ["--validation-size", "300"], ["validation", "300"]),
    ("validation-size-huge", ["--validation-size", str(10**30)], ["validation", str(10**30)]),
    ("seed-negative", ["--seed", "-5"], ["seed", "-5"]),
    ("seed-nan", ["--seed", "nan"], ["--seed", "nan"]),
    ("seed-fraction", ["--seed", "1.5"], ["--seed", "1.5"]),
    ("seed-text", ["--seed", "lucky"], ["--seed", "lucky"]),
    ("seed-empty", ["--seed", ""], ["--seed"]),
    ("sizes-zero-layer", ["--sizes", "784", "0", "10"], ["0", "--sizes"]),
    ("sizes-zero-layer-one-argument", ["--sizes", "784 0 10"], ["0", "--sizes"]),
    ("sizes-negative-layer", ["--sizes", "784", "-3", "10"], ["-3"]),
    ("sizes-only-input", ["--sizes", "784"], ["--sizes", "784"]),
    ("sizes-text", ["--sizes", "abc"], ["--sizes", "abc"]),
    ("sizes-text-in-the-middle", ["--sizes", "784", "x", "10"], ["--sizes", "x"]),
    ("sizes-fraction", ["--sizes", "784", "1.5", "10"], ["--sizes", "1.5"]),
    ("sizes-exponent", ["--sizes", "784", "1e3", "10"], ["--sizes", "1e3"]),
    ("sizes-huge-layer", ["--sizes", "784", "99999999", "10"], ["99999999"]),
    ("sizes-astronomical-layer", ["--sizes", "784", str(10**30), "10"], [str(10**30)]),
    ("sizes-zero-output", ["--sizes", "784", "30", "0"], ["0"]),
    ("sizes-input-does-not-fit-data", ["--sizes", "700", "30", "10"], ["700", "784"]),
    ("sizes-too-few-outputs-for-labels", ["--sizes", "784", "30", "5"], ["0..4"]),
    ("sizes-only-commas", ["--sizes", ",,,"], ["--sizes"]),
]


@pytest.mark.parametrize("args,needles", [c[1:] for c in NUMERIC_OPTION_CASES],
                         ids=[c[0] for c in NUMERIC_OPTION_CASES])
def test_numeric_options(capsys, digits, args, needles):
    result = cli(capsys, "train", *data_args(digits), "--epochs", 1, "--no-progress", *args)
    user_error(result, *needles)


CHOICE_CASES = [
    ("cost-unknown", ["--cost", "hinge"], ["hinge"]),
    ("cost-empty", ["--cost", ""], ["cost"]),
    ("activation-unknown", ["--activation", "swish"], ["swish"]),
    ("activation-empty", ["--activation", ""], ["activation"]),
    ("activation-too-many", ["--activation", "sigmoid", "sigmoid", "sigmoid"], ["activation", "3"]),
    ("init-unknown", ["--init", "huge"], ["--init", "huge"]),
    ("dtype-float16", ["--dtype", "float16"], ["--dtype", "float16"]),
    ("regularization-unknown", ["--regularization", "l3"], ["--regularization", "l3"]),
    ("schedule-unknown", ["--schedule", "cosine"], ["--schedule", "cosine"]),
    ("evaluate-on-unknown", ["--evaluate-on", "train"], ["--evaluate-on", "train"]),
    ("monitor-unknown", ["--monitor", "loss"], ["--monitor", "loss"]),
    ("dataset-unknown", ["--dataset", "cifar"], ["--dataset", "cifar"]),
    ("unknown-option", ["--learning-rate", "3"], ["--learning-rate"]),
    ("option-without-value", ["--eta"], ["--eta"]),
]


@pytest.mark.parametrize("args,needles", [c[1:] for c in CHOICE_CASES], ids=[c[0] for c in CHOICE_CASES])
def test_bad_choices(capsys, digits, args, needles):
    result = cli(capsys, "train", *data_args(digits), "--epochs", 1, "--no-progress", *args)
    user_error(result, *needles)


COMBINATION_CASES = [
    ("nesterov-without-momentum", ["--nesterov"], ["Nesterov", "momentum"]),
    ("nesterov-with-zero-momentum", ["--nesterov", "--momentum", "0"], ["Nesterov", "momentum"]),
    ("monitor-evaluation-accuracy-with-evaluate-on-none",
     ["--monitor", "evaluation_accuracy", "--evaluate-on", "none"], ["--monitor", "--evaluate-on"]),
    ("monitor-evaluation-cost-with-evaluate-on-none",
     ["--monitor", "training_cost", "evaluation_cost", "--evaluate-on", "none"], ["evaluation"]),
    ("early-stopping-with-evaluate-on-none", ["--early-stopping", "3", "--evaluate-on", "none"],
     ["early stopping"]),
    ("schedule-halve-with-evaluate-on-none", ["--schedule", "halve", "--evaluate-on", "none"], ["schedule"]),
    ("softmax-in-hidden-layer", ["--activation", "softmax", "sigmoid"], ["softmax"]),
    ("softmax-in-first-of-two-hidden-layers",
     ["--sizes", "784", "20", "20", "10", "--activation", "softmax", "sigmoid", "softmax",
      "--cost", "log-likelihood"], ["softmax"]),
    ("softmax-everywhere", ["--activation", "softmax"], ["softmax"]),
    ("log-likelihood-with-relu-output", ["--cost", "log-likelihood", "--activation", "relu"],
     ["log-likelihood", "relu"]),
    ("log-likelihood-with-tanh-output", ["--cost", "log-likelihood", "--activation", "sigmoid", "tanh"],
     ["log-likelihood", "tanh"]),
    ("cross-entropy-with-linear-output", ["--cost", "cross-entropy", "--activation", "linear"],
     ["cross-entropy", "linear"]),
    ("cross-entropy-with-tanh-output", ["--cost", "cross-entropy", "--activation", "tanh"],
     ["cross-entropy", "tanh"]),
    ("cross-entropy-with-relu-output", ["--cost", "cross-entropy", "--activation", "sigmoid", "relu"],
     ["cross-entropy", "relu"]),
    ("validation-size-zero-but-evaluated-on", ["--validation-size", "0", "--evaluate-on", "validation"],
     ["validation"]),
]


@pytest.mark.parametrize("args,needles", [c[1:] for c in COMBINATION_CASES],
                         ids=[c[0] for c in COMBINATION_CASES])
def test_options_that_do_not_go_together(capsys, digits, args, needles):
    result = cli(capsys, "train", *data_args(digits), "--epochs", 1, "--no-progress", *args)
    user_error(result, *needles)


@pytest.mark.parametrize("command", [
    ["train", "--dataset", "idx", "--epochs", "1"],
    ["evaluate", "MODEL", "--dataset", "idx"],
    ["expand", "OUT", "--dataset", "idx"],
], ids=["train", "evaluate", "expand"])
def test_dataset_idx_without_data(capsys, tmp_path, good, command):
    command = [str(good.model_json) if a == "MODEL" else str(tmp_path / "x.npz") if a == "OUT" else a
               for a in command]
    user_error(cli(capsys, *command), "--data")


LEGAL_EXTREMES = [
    # Legal but extreme: either it works, or it is refused in plain words naming the option.
    ("mini-batch-size-huge", ["--mini-batch-size", str(10**12)], ["mini-batch"]),
    ("mini-batch-size-larger-than-training-set", ["--mini-batch-size", "1000"], ["mini-batch"]),
    ("patience-huge", ["--patience", str(10**30), "--schedule", "halve", "--evaluate-on", "validation"],
     ["patience"]),
    ("early-stopping-huge", ["--early-stopping", str(10**30), "--evaluate-on", "validation"], ["early"]),
    ("training-size-huge", ["--training-size", str(10**30)], ["training-size"]),
    ("seed-huge", ["--seed", str(2**100)], ["seed"]),
    ("eta-huge", ["--eta", "1e300"], ["eta"]),
    ("lmbda-zero", ["--lmbda", "0"], ["lmbda"]),
    ("lmbda-huge-l1", ["--lmbda", "1e300", "--regularization", "l1"], ["lambda"]),
]


@pytest.mark.parametrize("args,needles", [c[1:] for c in LEGAL_EXTREMES], ids=[c[0] for c in LEGAL_EXTREMES])
def test_legal_extremes_work_or_are_refused_plainly(capsys, digits, args, needles):
    result = cli(capsys, "train", *data_args(digits), "--epochs", 1, "--no-progress", "--sizes", "784", "10",
                 "10", *args)
    clean_outcome(result, *needles)


EXPAND_OPTION_CASES = [
    ("nothing-to-do", ["--no-shifts"], ["--no-shifts"]),
    ("rotation-nan", ["--rotations", "nan"], ["nan"]),
    ("rotation-inf", ["--rotations", "10", "inf"], ["inf"]),
    ("rotation-text", ["--rotations", "ten"], ["--rotations", "ten"]),
    ("seed-negative", ["--seed", "-1"], ["seed", "-1"]),
    ("seed-text", ["--seed", "x"], ["--seed", "x"]),
    ("validation-size-negative", ["--validation-size", "-3"], ["validation", "-3"]),
]


@pytest.mark.parametrize("args,needles", [c[1:] for c in EXPAND_OPTION_CASES],
                         ids=[c[0] for c in EXPAND_OPTION_CASES])
def test_expand_options(capsys, digits, tmp_path, args, needles):
    result = cli(capsys, "expand", tmp_path / "expanded.npz", "--dataset", "idx", "--data", digits,
                 "--validation-size", VALIDATION, *args)
    user_error(result, *needles)
    assert not (tmp_path / "expanded.npz").exists()


EVALUATE_OPTION_CASES = [
    ("split-unknown", ["--split", "everything"], ["--split", "everything"]),
    ("validation-size-too-large", ["--validation-size", "1000"], ["validation", "1000"]),
    ("data-missing-directory", ["--data", "/nonexistent/nndl-data"], ["/nonexistent/nndl-data"]),
    ("validation-split-empty", ["--split", "validation", "--validation-size", "0"], ["validation"]),
]


@pytest.mark.parametrize("args,needles", [c[1:] for c in EVALUATE_OPTION_CASES],
                         ids=[c[0] for c in EVALUATE_OPTION_CASES])
def test_evaluate_options(capsys, digits, good, args, needles):
    user_error(cli(capsys, "evaluate", good.model_json, *data_args(digits), *args), *needles)


def test_model_that_does_not_fit_the_data(capsys, digits, tmp_path):
    small = FeedforwardNetwork([784, 3, 5], seed=0)               # 5 outputs; the labels go up to 9
    modelio.save(small, tmp_path / "five.json")
    user_error(cli(capsys, "evaluate", tmp_path / "five.json", *data_args(digits)), "0..4")
    wide = FeedforwardNetwork([400, 3, 10], seed=0)               # 20x20 inputs, the data is 28x28
    modelio.save(wide, tmp_path / "wide.json")
    user_error(cli(capsys, "evaluate", tmp_path / "wide.json", *data_args(digits)), "400", "784")


USAGE_CASES = [
    ("train-eta-zero", ["train", "--eta", "0"]),
    ("train-unknown-option", ["train", "--frobnicate"]),
    ("evaluate-unknown-split", ["evaluate", "--split", "everything"]),
    ("plot-without-history", ["plot"]),
    ("expand-bad-rotation", ["expand", "x.npz", "--rotations", "ten"]),
    ("unknown-command", ["frobnicate"]),
    ("no-command", []),
]


@pytest.mark.parametrize("args", [c[1] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES])
def test_usage_errors_use_the_documented_prefix(capsys, args):
    """nndl.cli promises one ``nndl: error: ...`` line for every mistake, usage mistakes included."""
    line = user_error(cli(capsys, *args))
    assert line.startswith("nndl: error: "), f"usage error spelled differently: {line!r}"


# ---------------------------------------------------------------------------
# 2. Output paths
# ---------------------------------------------------------------------------


def _output_case(name, tmp_path, good):
    """(extra train arguments, needles) for an output-path case."""
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "a-dir").mkdir()
    loaded = tmp_path / "loaded.json"
    shutil.copy(good.model_json, loaded)
    expanded = tmp_path / "expanded.npz"
    shutil.copy(good.expanded, expanded)
    link = tmp_path / "link.json"
    link.symlink_to(loaded)
    cases = {
        "save-is-a-directory": (["--save", tmp_path / "a-dir"], ["--save", tmp_path / "a-dir"]),
        "history-is-a-directory": (["--history", tmp_path / "a-dir"], ["--history", tmp_path / "a-dir"]),
        "save-is-dot": (["--save", "."], ["--save", "."]),
        "save-parent-is-a-file": (["--save", tmp_path / "a-file" / "net.json"], ["--save", "a-file"]),
        "history-grandparent-is-a-file": (["--history", tmp_path / "a-file" / "sub" / "run.json"],
                                          ["--history", "a-file"]),
        "save-and-history-same-path": (["--save", tmp_path / "same.json", "--history", tmp_path / "same.json"],
                                       ["--save", "--history", "same.json"]),
        "save-and-history-same-file-spelled-differently": (
            ["--save", tmp_path / "same.json", "--history", tmp_path / "a-dir" / ".." / "same.json"],
            ["--save", "--history"]),
        "save-is-the-loaded-model": (["--load", loaded, "--save", loaded], ["--save", loaded]),
        "save-is-a-link-to-the-loaded-model": (["--load", loaded, "--save", link], ["--save", link]),
        "history-is-the-loaded-model": (["--load", loaded, "--history", loaded], ["--history", loaded]),
        "save-is-the-expanded-input": (["--expanded", expanded, "--save", expanded], ["--save", expanded]),
        "save-empty-string": (["--save", ""], ["--save"]),
        "history-empty-string": (["--history", ""], ["--history"]),
        "save-blank": (["--save", "   "], ["--save"]),
        "save-trailing-slash": (["--save", str(tmp_path / "out") + "/"], ["--save", "out/"]),
        "history-trailing-slash": (["--history", str(tmp_path / "run") + "/"], ["--history", "run/"]),
    }
    return cases[name]


OUTPUT_CASES = ["save-is-a-directory", "history-is-a-directory", "save-is-dot", "save-parent-is-a-file",
                "history-grandparent-is-a-file", "save-and-history-same-path",
                "save-and-history-same-file-spelled-differently", "save-is-the-loaded-model",
                "save-is-a-link-to-the-loaded-model", "history-is-the-loaded-model", "save-is-the-expanded-input",
                "save-empty-string", "history-empty-string", "save-blank", "save-trailing-slash",
                "history-trailing-slash"]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_train_outputs_are_refused_before_training(capsys, digits, good, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    args, needles = _output_case(case, tmp_path, good)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    code, out, err = result = cli(capsys, "train", *data_args(digits), "--epochs", 1, "--no-progress",
                                  "--sizes", "784", "10", "10", *args)
    user_error(result, *needles)
    assert "Epoch 0" not in out, "the mistake was found only after training"
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before, "a file was written or changed"


def test_plot_output_equal_to_its_input(capsys, good, tmp_path):
    history = tmp_path / "run.json"
    shutil.copy(good.history, history)
    user_error(cli(capsys, "plot", history, "--output", history), "--output", history)
    assert history.read_bytes() == good.history.read_bytes()


def test_plot_default_output_equal_to_its_input(capsys, good, tmp_path):
    history = tmp_path / "run.png"                               # the default output is HISTORY with .png
    shutil.copy(good.history, history)
    user_error(cli(capsys, "plot", history), history)
    assert history.read_bytes() == good.history.read_bytes()


def test_plot_output_equal_to_its_second_input(capsys, good, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    shutil.copy(good.history, first)
    shutil.copy(good.history, second)
    user_error(cli(capsys, "plot", first, second, "-o", second), "--output", second)


@pytest.mark.parametrize("output,needles", [
    ("DIR", ["is a directory"]), ("", ["--output"]), ("DIR/", ["--output"]), ("FILE/x.png", ["a-file"]),
], ids=["directory", "empty-string", "trailing-slash", "parent-is-a-file"])
def test_plot_bad_outputs(capsys, good, tmp_path, output, needles):
    history = tmp_path / "run.json"
    shutil.copy(good.history, history)
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    output = output.replace("DIR", str(tmp_path / "a-dir")).replace("FILE", str(tmp_path / "a-file"))
    user_error(cli(capsys, "plot", history, "--output", output), *needles)
    assert not (tmp_path / "run.png").exists(), "the figure was written to the default output instead"


@pytest.mark.parametrize("output,needles", [
    ("DIR", ["OUTPUT", "a-dir"]), ("", ["OUTPUT"]), ("NEW/", ["OUTPUT"]), ("FILE/x.npz", ["OUTPUT", "a-file"]),
], ids=["directory", "empty-string", "trailing-slash", "parent-is-a-file"])
def test_expand_bad_outputs(capsys, digits, tmp_path, output, needles):
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    output = (output.replace("DIR", str(tmp_path / "a-dir")).replace("FILE", str(tmp_path / "a-file"))
              .replace("NEW", str(tmp_path / "new")))
    user_error(cli(capsys, "expand", output, *data_args(digits)), *needles)


@pytest.mark.skipif(ROOT, reason="root may write anywhere")
def test_output_in_a_read_only_directory(capsys, digits, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        user_error(cli(capsys, "train", *data_args(digits), "--epochs", 1, "--save", locked / "net.json"),
                   "--save", "permission")
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------
# 3. Malformed files: models, histories, expanded data sets
# ---------------------------------------------------------------------------


def _zip_not_npz(good):
    return zip_bytes({"hello.txt": b"hello"})


def _huge_int_json(kind):
    return lambda good: (b'{"format": "' + kind.encode() + b'", "version": 1, "sizes": [' + b"9" * 5000 + b"]}")


# Common malformations, for every kind of file: id -> function(good) -> bytes, or "DIR" / "MISSING".
COMMON = {
    "empty": lambda good: b"",
    "binary-garbage": lambda good: GARBAGE,
    "garbage-starting-with-PK": lambda good: b"PK\x03\x04" + GARBAGE,
    "plain-text": lambda good: b"hello, world\n",
    "json-null": lambda good: b"null",
    "json-empty-list": lambda good: b"[]",
    "json-number": lambda good: b"5",
    "json-string": lambda good: b'"nndl-model"',
    "json-empty-object": lambda good: b"{}",
    "deeply-nested-list-100000": lambda good: deep_list(),
    "deeply-nested-object-100000": lambda good: deep_dict(),
    "invalid-utf8": lambda good: b'{"format": "\xff\xfe"}',
    "utf8-bom": lambda good: b"\xef\xbb\xbf" + good.model_json.read_bytes(),
    "zip-that-is-not-npz": _zip_not_npz,
    "empty-zip": lambda good: zip_bytes({}),
    "directory": "DIR",
    "missing": "MISSING",
}


def _materialise(tmp_path, name, content, good):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif content != "MISSING":
        path.write_bytes(content(good))
    return path


def _file_allowed(content):
    if content == "MISSING":
        return (NndlError, FileNotFoundError)
    if content == "DIR":
        return (NndlError, IsADirectoryError)
    return (NndlError,)


# --- models ---------------------------------------------------------------

MODEL_FILES = dict(COMMON)
MODEL_FILES.update({
    "integer-of-5000-digits": _huge_int_json("nndl-model"),
    "truncated-json": lambda good: good.model_json.read_bytes()[:len(good.model_json.read_bytes()) // 2],
    "truncated-npz": lambda good: good.model_npz.read_bytes()[:len(good.model_npz.read_bytes()) // 2],
    "history-given-as-model": lambda good: good.history.read_bytes(),
    "expanded-given-as-model": lambda good: good.expanded.read_bytes(),
})


def _model_with(good, **changes):
    model = copy.deepcopy(good.model)
    for key, value in changes.items():
        if value is DELETE:
            model.pop(key, None)
        else:
            model[key] = value
    return model


def _w(good, l):
    return copy.deepcopy(good.model["weights"][l])


def _b(good, l):
    return copy.deepcopy(good.model["biases"][l])


def _poke(matrix, value):
    matrix = copy.deepcopy(matrix)
    if isinstance(matrix[0], list):
        matrix[0][0] = value
    else:
        matrix[0] = value
    return matrix


# id -> function(good) -> the model dict, written as JSON (NaN and Infinity as JSON's extensions).
MODEL_MUTATIONS = {
    "format-missing": lambda g: _model_with(g, format=DELETE),
    "format-is-history": lambda g: _model_with(g, format="nndl-history"),
    "format-number": lambda g: _model_with(g, format=5),
    "format-null": lambda g: _model_with(g, format=None),
    "format-list": lambda g: _model_with(g, format=["nndl-model"]),
    "format-object": lambda g: _model_with(g, format={"nndl-model": 1}),
    "version-missing": lambda g: _model_with(g, version=DELETE),
    "version-text": lambda g: _model_with(g, version="1"),
    "version-fraction": lambda g: _model_with(g, version=1.5),
    "version-true": lambda g: _model_with(g, version=True),
    "version-zero": lambda g: _model_with(g, version=0),
    "version-newer": lambda g: _model_with(g, version=2),
    "version-list": lambda g: _model_with(g, version=[1]),
    "sizes-missing": lambda g: _model_with(g, sizes=DELETE),
    "sizes-text": lambda g: _model_with(g, sizes="784 3 10"),
    "sizes-one-layer": lambda g: _model_with(g, sizes=[784]),
    "sizes-text-element": lambda g: _model_with(g, sizes=[784, "3", 10]),
    "sizes-fraction-element": lambda g: _model_with(g, sizes=[784, 3.5, 10]),
    "sizes-zero": lambda g: _model_with(g, sizes=[784, 0, 10]),
    "sizes-negative": lambda g: _model_with(g, sizes=[784, -3, 10]),
    "sizes-bool": lambda g: _model_with(g, sizes=[784, True, 10]),
    "sizes-null": lambda g: _model_with(g, sizes=None),
    "sizes-number": lambda g: _model_with(g, sizes=784),
    "sizes-object": lambda g: _model_with(g, sizes={"input": 784}),
    "sizes-nested": lambda g: _model_with(g, sizes=[[784], 3, 10]),
    "sizes-disagree-with-weights": lambda g: _model_with(g, sizes=[784, 4, 10]),
    "sizes-huge": lambda g: _model_with(g, sizes=[784, 10**12, 10]),
    "sizes-extra-layer": lambda g: _model_with(g, sizes=[784, 3, 10, 10]),
    "activations-missing": lambda g: _model_with(g, activations=DELETE),
    "activations-text": lambda g: _model_with(g, activations="sigmoid"),
    "activations-too-few": lambda g: _model_with(g, activations=["sigmoid"]),
    "activations-unknown": lambda g: _model_with(g, activations=["swish", "swish"]),
    "activations-numbers": lambda g: _model_with(g, activations=[1, 2]),
    "activations-null": lambda g: _model_with(g, activations=None),
    "activations-nested-list": lambda g: _model_with(g, activations=[["sigmoid"], "sigmoid"]),
    "activations-object": lambda g: _model_with(g, activations=[{"name": "sigmoid"}, "sigmoid"]),
    "activations-softmax-hidden": lambda g: _model_with(g, activations=["softmax", "sigmoid"]),
    "cost-missing": lambda g: _model_with(g, cost=DELETE),
    "cost-number": lambda g: _model_with(g, cost=5),
    "cost-null": lambda g: _model_with(g, cost=None),
    "cost-unknown": lambda g: _model_with(g, cost="hinge"),
    "cost-list": lambda g: _model_with(g, cost=["quadratic"]),
    "cost-object": lambda g: _model_with(g, cost={"name": "quadratic"}),
    "cost-log-likelihood-with-relu-output": lambda g: _model_with(g, cost="log-likelihood",
                                                                  activations=["relu", "relu"]),
    "cost-cross-entropy-with-linear-output": lambda g: _model_with(g, cost="cross-entropy",
                                                                   activations=["sigmoid", "linear"]),
    "dtype-float16": lambda g: _model_with(g, dtype="float16"),
    "dtype-int32": lambda g: _model_with(g, dtype="int32"),
    "dtype-number": lambda g: _model_with(g, dtype=64),
    "dtype-null": lambda g: _model_with(g, dtype=None),
    "dtype-list": lambda g: _model_with(g, dtype=["float64"]),
    "weights-missing": lambda g: _model_with(g, weights=DELETE),
    "weights-text": lambda g: _model_with(g, weights="0.5"),
    "weights-null": lambda g: _model_with(g, weights=None),
    "weights-number": lambda g: _model_with(g, weights=5),
    "weights-object": lambda g: _model_with(g, weights={"0": _w(g, 0), "1": _w(g, 1)}),
    "weights-empty-list": lambda g: _model_with(g, weights=[]),
    "weights-one-layer-missing": lambda g: _model_with(g, weights=[_w(g, 0)]),
    "weights-extra-layer": lambda g: _model_with(g, weights=[_w(g, 0), _w(g, 1), _w(g, 1)]),
    "weights-transposed": lambda g: _model_with(g, weights=[np.array(_w(g, 0)).T.tolist(), _w(g, 1)]),
    "weights-3d": lambda g: _model_with(g, weights=[[_w(g, 0)], _w(g, 1)]),
    "weights-ragged": lambda g: _model_with(g, weights=[[row[:-1] if i == 1 else row for i, row in
                                                         enumerate(_w(g, 0))], _w(g, 1)]),
    "weights-text-inside": lambda g: _model_with(g, weights=[[["a"] * 784] * 3, _w(g, 1)]),
    "weights-quoted-number-inside": lambda g: _model_with(g, weights=[_poke(_w(g, 0), "0.5"), _w(g, 1)]),
    "weights-bool-inside": lambda g: _model_with(g, weights=[_poke(_w(g, 0), True), _w(g, 1)]),
    "weights-null-inside": lambda g: _model_with(g, weights=[_poke(_w(g, 0), None), _w(g, 1)]),
    "weights-object-inside": lambda g: _model_with(g, weights=[_poke(_w(g, 0), {"w": 1}), _w(g, 1)]),
    "weights-nan": lambda g: _model_with(g, weights=[_poke(_w(g, 0), float("nan")), _w(g, 1)]),
    "weights-infinity": lambda g: _model_with(g, weights=[_w(g, 0), _poke(_w(g, 1), float("inf"))]),
    "weights-minus-infinity": lambda g: _model_with(g, weights=[_poke(_w(g, 0), float("-inf")), _w(g, 1)]),
    "biases-missing": lambda g: _model_with(g, biases=DELETE),
    "biases-text": lambda g: _model_with(g, biases="0"),
    "biases-null": lambda g: _model_with(g, biases=None),
    "biases-number": lambda g: _model_with(g, biases=0),
    "biases-empty-list": lambda g: _model_with(g, biases=[]),
    "biases-wrong-length": lambda g: _model_with(g, biases=[_b(g, 0)[:-1], _b(g, 1)]),
    "biases-one-layer-missing": lambda g: _model_with(g, biases=[_b(g, 0)]),
    "biases-extra-layer": lambda g: _model_with(g, biases=[_b(g, 0), _b(g, 1), _b(g, 1)]),
    "biases-matrix": lambda g: _model_with(g, biases=[[_b(g, 0)] * 2, _b(g, 1)]),
    "biases-text-inside": lambda g: _model_with(g, biases=[["x"] * 3, _b(g, 1)]),
    "biases-nan": lambda g: _model_with(g, biases=[_poke(_b(g, 0), float("nan")), _b(g, 1)]),
    "biases-infinity": lambda g: _model_with(g, biases=[_b(g, 0), _poke(_b(g, 1), float("inf"))]),
    "book-format-cost-list": lambda g: {"sizes": [784, 3, 10], "weights": g.model["weights"],
                                        "biases": [[[v] for v in b] for b in g.model["biases"]],
                                        "cost": ["CrossEntropyCost"]},
    "book-format-unknown-cost": lambda g: {"sizes": [784, 3, 10], "weights": g.model["weights"],
                                           "biases": g.model["biases"], "cost": "HingeCost"},
    "book-format-sizes-number": lambda g: {"sizes": 5, "weights": g.model["weights"],
                                           "biases": g.model["biases"], "cost": "QuadraticCost"},
    "book-format-sizes-one-layer": lambda g: {"sizes": [784], "weights": [], "biases": [],
                                              "cost": "QuadraticCost"},
}


def _model_mutation_bytes(good, mutation):
    return json.dumps(MODEL_MUTATIONS[mutation](good)).encode()


def _npz_model(good, description=None, drop=(), extra=None, replace=None):
    """A model .npz made by hand: the good model's arrays, with changes."""
    members = {"description": np.array(json.dumps(good.description if description is None else description))}
    for l, (w, b) in enumerate(zip(good.net.weights, good.net.biases)):
        members[f"weights_{l}"] = np.ascontiguousarray(w)
        members[f"biases_{l}"] = np.ascontiguousarray(b)
    for name in drop:
        del members[name]
    for name in replace or {}:
        members.pop(name[:-4] if name.endswith(".npy") else name + ".npy", None)    # no duplicate members
    members.update(replace or {})
    members.update(extra or {})
    return zip_bytes(members)


def _description_with(good, **changes):
    description = copy.deepcopy(good.description)
    for key, value in changes.items():
        if value is DELETE:
            description.pop(key, None)
        else:
            description[key] = value
    return description


NPZ_MODEL_FILES = {
    "npz-missing-weights": lambda g: _npz_model(g, drop=["weights_1"]),
    "npz-missing-biases": lambda g: _npz_model(g, drop=["biases_0"]),
    "npz-missing-description": lambda g: _npz_model(g, drop=["description"]),
    "npz-extra-member": lambda g: _npz_model(g, extra={"surprise": np.zeros(3)}),
    "npz-extra-layer-arrays": lambda g: _npz_model(g, extra={"weights_2": np.zeros((10, 10)),
                                                             "biases_2": np.zeros(10)}),
    "npz-description-not-json": lambda g: _npz_model(g, replace={"description": np.array("hello")}),
    "npz-description-deeply-nested": lambda g: _npz_model(g, replace={"description":
                                                                      np.array(deep_list().decode())}),
    "npz-description-integer-of-5000-digits": lambda g: _npz_model(g, replace={"description": np.array(
        '{"format": "nndl-model", "version": ' + "9" * 5000 + "}")}),
    "npz-description-2d": lambda g: _npz_model(g, replace={"description": np.array([["{}", "{}"]])}),
    "npz-description-number-array": lambda g: _npz_model(g, replace={"description": np.arange(3.0)}),
    "npz-description-list": lambda g: _npz_model(g, description=[1, 2]),
    "npz-sizes-null": lambda g: _npz_model(g, description=_description_with(g, sizes=None)),
    "npz-sizes-number": lambda g: _npz_model(g, description=_description_with(g, sizes=784)),
    "npz-sizes-text": lambda g: _npz_model(g, description=_description_with(g, sizes="abc")),
    "npz-sizes-object": lambda g: _npz_model(g, description=_description_with(g, sizes={"a": 1, "b": 2})),
    "npz-activations-nested-list": lambda g: _npz_model(g, description=_description_with(
        g, activations=[["sigmoid"], "sigmoid"])),
    "npz-cost-list": lambda g: _npz_model(g, description=_description_with(g, cost=["quadratic"])),
    "npz-version-newer": lambda g: _npz_model(g, description=_description_with(g, version=99)),
    "npz-object-dtype": lambda g: _npz_model(g, replace={"weights_0": np.array([{"evil": 1}] * 3, dtype=object)}),
    "npz-integer-weights": lambda g: _npz_model(g, replace={"weights_0": np.zeros((3, 784), dtype=np.int64)}),
    "npz-complex-weights": lambda g: _npz_model(g, replace={"weights_0": np.zeros((3, 784), dtype=complex)}),
    "npz-text-biases": lambda g: _npz_model(g, replace={"biases_1": np.array(["0"] * 10)}),
    "npz-nan-weights": lambda g: _npz_model(g, replace={"weights_1": np.full((10, 3), np.nan)}),
    "npz-inf-biases": lambda g: _npz_model(g, replace={"biases_0": np.array([np.inf, 0, 0])}),
    "npz-transposed-weights": lambda g: _npz_model(g, replace={"weights_0": np.zeros((784, 3))}),
    "npz-0d-weights": lambda g: _npz_model(g, replace={"weights_1": np.array(1.0)}),
    "npz-member-declares-10^12-float64": lambda g: _npz_model(g, replace={
        "weights_0.npy": npy_declaring((10**6, 10**6))}),
    "npz-member-declares-10^12-float32": lambda g: _npz_model(g, replace={
        "biases_0.npy": npy_declaring((10**12,), descr="<f4")}),
    "npz-description-declares-10^12": lambda g: _npz_model(g, replace={
        "description.npy": npy_declaring((10**12,), descr="<U1")}),
    "npz-member-header-garbage": lambda g: _npz_model(g, replace={"weights_0.npy": b"\x93NUMPY" + GARBAGE}),
    "npz-member-shorter-than-declared": lambda g: _npz_model(g, replace={
        "weights_1.npy": npy_bytes(np.zeros((10, 3)))[:-40]}),
    "npz-corrupt-deflate-stream": lambda g: corrupt_member(_npz_model(g), "weights_0.npy"),
    "npz-bad-crc": lambda g: bad_crc(_npz_model(g), "weights_0.npy"),
}


def _model_cases():
    cases = []
    for name, content in MODEL_FILES.items():
        cases.append(pytest.param(name, content, id=name))
    for name in MODEL_MUTATIONS:
        cases.append(pytest.param(name + ".json", (lambda n: lambda g: _model_mutation_bytes(g, n))(name),
                                  id="json-" + name))
    for name, content in NPZ_MODEL_FILES.items():
        cases.append(pytest.param(name + ".npz", content, id=name))
    return cases


MODEL_CASES = _model_cases()
#: A selection given to ``nndl train --load`` too (everything goes through ``nndl evaluate`` and the library).
LOAD_CASE_IDS = {"empty", "binary-garbage", "deeply-nested-list-100000", "truncated-json", "truncated-npz",
                 "history-given-as-model", "directory", "missing", "integer-of-5000-digits",
                 "json-sizes-text-element", "json-activations-nested-list", "json-cost-list", "json-weights-nan",
                 "json-weights-transposed", "json-version-newer", "npz-sizes-null", "npz-object-dtype",
                 "npz-member-declares-10^12-float64", "npz-corrupt-deflate-stream", "npz-extra-member"}


@pytest.mark.parametrize("name,content", MODEL_CASES)
def test_malformed_model_library(good, tmp_path, name, content):
    path = _materialise(tmp_path, name, content, good)
    library_error(lambda: modelio.load(path), path, allowed=_file_allowed(content))


@pytest.mark.parametrize("name,content", MODEL_CASES)
def test_malformed_model_evaluate(capsys, digits, good, tmp_path, name, content):
    path = _materialise(tmp_path, name, content, good)
    user_error(cli(capsys, "evaluate", path, *data_args(digits)), path)


@pytest.mark.parametrize("name,content", [c for c in MODEL_CASES if c.id in LOAD_CASE_IDS])
def test_malformed_model_train_load(capsys, digits, good, tmp_path, name, content):
    path = _materialise(tmp_path, name, content, good)
    user_error(cli(capsys, "train", *data_args(digits), "--load", path, "--epochs", 1, "--no-progress"), path)


@pytest.mark.skipif(ROOT, reason="root reads files without read permission")
@pytest.mark.parametrize("kind", ["model", "history", "expanded", "idx"])
def test_unreadable_files(capsys, digits, good, tmp_path, kind):
    source = {"model": good.model_json, "history": good.history, "expanded": good.expanded}.get(kind)
    path = tmp_path / (source.name if source else "digits")
    if source:
        shutil.copy(source, path)
        locked = path
    else:
        shutil.copytree(digits, path)
        locked = path / (FILES["test_labels"] + ".gz")
    locked.chmod(0)
    try:
        if kind == "model":
            library_error(lambda: modelio.load(path), path, allowed=(NndlError, PermissionError))
            result = cli(capsys, "evaluate", path, *data_args(digits))
        elif kind == "history":
            library_error(lambda: History.load(path), path, allowed=(NndlError, PermissionError))
            result = cli(capsys, "plot", path, "-o", tmp_path / "out.png")
        elif kind == "expanded":
            library_error(lambda: load_expanded(path), path, allowed=(NndlError, PermissionError))
            result = cli(capsys, "train", *data_args(digits), "--expanded", path, "--epochs", 1)
        else:
            library_error(lambda: load_idx_dataset(path, VALIDATION), locked, allowed=(NndlError, PermissionError))
            result = cli(capsys, "train", *data_args(path), "--epochs", 1)
        user_error(result, locked)
    finally:
        locked.chmod(0o600)


@pytest.mark.parametrize("history", [
    dict(),
    dict(epochs=[0, 1], eta=[1.0, 1.0], epoch_time=[0.1, 0.1], monitor_time=[0.0, 0.0]),
], ids=["no-epochs", "nothing-monitored"])
def test_plot_a_history_with_nothing_to_draw(capsys, tmp_path, history):
    path = tmp_path / "run.json"
    History(**history).save(path)
    user_error(cli(capsys, "plot", path, "-o", tmp_path / "out.png"), path)
    assert not (tmp_path / "out.png").exists()


# --- histories ------------------------------------------------------------

HISTORY_FILES = dict(COMMON)
HISTORY_FILES.update({
    "integer-of-5000-digits": _huge_int_json("nndl-history"),
    "truncated-json": lambda good: good.history.read_bytes()[:len(good.history.read_bytes()) // 2],
    "model-given-as-history": lambda good: good.model_json.read_bytes(),
    "npz-model-given-as-history": lambda good: good.model_npz.read_bytes(),
    "expanded-given-as-history": lambda good: good.expanded.read_bytes(),
})


def _history_with(good, **changes):
    history = copy.deepcopy(good.history_dict)
    for key, value in changes.items():
        if value is DELETE:
            history.pop(key, None)
        elif isinstance(value, dict) and key in ("config", "network") and isinstance(history.get(key), dict) \
                and value.get("__merge__"):
            history[key] = {**history[key], **{k: v for k, v in value.items() if k != "__merge__"}}
        else:
            history[key] = value
    return history


def _merge(**changes):
    return {"__merge__": True, **changes}


HISTORY_MUTATIONS = {
    "format-is-model": dict(format="nndl-model"),
    "format-missing": dict(format=DELETE),
    "format-list": dict(format=["nndl-history"]),
    "version-newer": dict(version=3),
    "version-text": dict(version="2"),
    "version-true": dict(version=True),
    "version-zero": dict(version=0),
    "epochs-text": dict(epochs="0 1"),
    "epochs-text-element": dict(epochs=[0, "1"]),
    "epochs-negative": dict(epochs=[-1, 0]),
    "epochs-null": dict(epochs=None),
    "epochs-bools": dict(epochs=[False, True]),
    "epochs-object": dict(epochs={"0": 0}),
    "eta-one-value-for-two-epochs": dict(eta=[1.0]),
    "eta-text": dict(eta=["fast", "faster"]),
    "eta-nan": dict(eta=[float("nan"), 1.0]),
    "evaluation-accuracy-infinity": dict(evaluation_accuracy=[float("inf"), 0.5]),
    "training-cost-object": dict(training_cost={"a": 1}),
    "training-cost-nested": dict(training_cost=[[1.0], [2.0]]),
    "epoch-time-null": dict(epoch_time=None),
    "best-epoch-text": dict(best_epoch="1"),
    "best-epoch-fraction": dict(best_epoch=1.5),
    "best-accuracy-text": dict(best_accuracy="high"),
    "best-accuracy-nan": dict(best_accuracy=float("nan")),
    "stop-reason-number": dict(stop_reason=5),
    "stop-reason-unknown": dict(stop_reason="exploded"),
    "stop-reason-list": dict(stop_reason=["completed"]),
    "message-number": dict(message=5),
    "n-training-negative": dict(n_training=-1),
    "n-training-text": dict(n_training="250"),
    "n-evaluation-fraction": dict(n_evaluation=1.5),
    "unknown-field": dict(surprise=1),
    "config-list": dict(config=[]),
    "config-text": dict(config="eta=3"),
    "config-null": dict(config=None),
    "config-eta-negative": dict(config=_merge(eta=-1)),
    "config-eta-text": dict(config=_merge(eta="3")),
    "config-epochs-infinity": dict(config=_merge(epochs=float("inf"))),
    "config-epochs-nan": dict(config=_merge(epochs=float("nan"))),
    "config-mini-batch-infinity": dict(config=_merge(mini_batch_size=float("inf"))),
    "config-patience-nan": dict(config=_merge(patience=float("nan"))),
    "config-unknown-setting": dict(config=_merge(learning_rate=3)),
    "config-monitor-number": dict(config=_merge(monitor=5)),
    "config-monitor-nested": dict(config=_merge(monitor=[["training_cost"]])),
    "config-seed-negative": dict(config=_merge(seed=-1)),
    "config-nesterov-text": dict(config=_merge(nesterov="yes")),
    "config-regularization-list": dict(config=_merge(regularization=["l2"])),
    "network-text": dict(network="784 30 10"),
    "network-list": dict(network=[784, 30, 10]),
    "network-sizes-text": dict(network=_merge(sizes="784 3 10")),
    "network-sizes-infinity": dict(network=_merge(sizes=[784, float("inf"), 10])),
    "network-sizes-nan": dict(network=_merge(sizes=[784, float("nan"), 10])),
    "network-sizes-null-element": dict(network=_merge(sizes=[784, None, 10])),
    "network-activations-nested": dict(network=_merge(activations=[["sigmoid"], "sigmoid"])),
    "network-activations-object": dict(network=_merge(activations={"sigmoid": 1})),
    "network-cost-number": dict(network=_merge(cost=5)),
    "network-cost-list": dict(network=_merge(cost=["quadratic"])),
    "network-init-list": dict(network=_merge(init=["large"])),
    "network-unknown-setting": dict(network=_merge(layers=3)),
}


def _history_cases():
    cases = [pytest.param(name, content, id=name) for name, content in HISTORY_FILES.items()]
    for name, changes in HISTORY_MUTATIONS.items():
        content = (lambda c: lambda g: json.dumps(_history_with(g, **c)).encode())(changes)
        cases.append(pytest.param(name + ".json", content, id="json-" + name))
    return cases


HISTORY_CASES = _history_cases()


@pytest.mark.parametrize("name,content", HISTORY_CASES)
def test_malformed_history_library(good, tmp_path, name, content):
    path = _materialise(tmp_path, name, content, good)
    library_error(lambda: History.load(path), path, allowed=_file_allowed(content))


@pytest.mark.parametrize("name,content", HISTORY_CASES)
def test_malformed_history_plot(capsys, good, tmp_path, name, content):
    path = _materialise(tmp_path, name, content, good)
    user_error(cli(capsys, "plot", path, "--output", tmp_path / "out.png"), path)
    assert not (tmp_path / "out.png").exists()


# --- expanded data sets -----------------------------------------------------

EXPANDED_FILES = dict(COMMON)
EXPANDED_FILES.update({
    "truncated-npz": lambda good: good.expanded.read_bytes()[:len(good.expanded.read_bytes()) // 2],
    "model-npz-given-as-expanded": lambda good: good.model_npz.read_bytes(),
    "model-json-given-as-expanded": lambda good: good.model_json.read_bytes(),
    "history-given-as-expanded": lambda good: good.history.read_bytes(),
})


def _expanded(good, drop=(), replace=None, extra=None, header=None, **header_changes):
    """An expanded .npz made by hand from the good one's arrays, with changes."""
    meta = {"format": "nndl-expanded", "format_version": 1, "count": 20, "nndl_version": "0",
            "expansion": {"source": "campaign"}}
    for key, value in header_changes.items():
        if value is DELETE:
            meta.pop(key)
        else:
            meta[key] = value
    members = {"images": good.expanded_images.reshape(-1, 784), "labels": good.expanded_labels,
               "metadata": np.array(json.dumps(meta) if header is None else header)}
    for name in drop:
        del members[name]
    for name in replace or {}:
        members.pop(name[:-4] if name.endswith(".npy") else name + ".npy", None)    # no duplicate members
    members.update(replace or {})
    members.update(extra or {})
    return zip_bytes(members)


EXPANDED_MUTATIONS = {
    "missing-images": lambda g: _expanded(g, drop=["images"]),
    "missing-labels": lambda g: _expanded(g, drop=["labels"]),
    "missing-metadata": lambda g: _expanded(g, drop=["metadata"]),
    "extra-member": lambda g: _expanded(g, extra={"surprise": np.zeros(2)}),
    "images-float32": lambda g: _expanded(g, replace={"images": g.expanded_images.reshape(-1, 784) / 255.0}),
    "images-object-dtype": lambda g: _expanded(g, replace={"images": np.array([{"evil": 1}] * 20, dtype=object)}),
    "images-783-pixels": lambda g: _expanded(g, replace={"images": g.expanded_images.reshape(-1, 784)[:, :783]}),
    "images-28x28": lambda g: _expanded(g, replace={"images": g.expanded_images.reshape(20, 28, 28)}),
    "images-uint16": lambda g: _expanded(g, replace={"images": g.expanded_images.reshape(-1, 784).astype(np.uint16)}),
    "labels-200": lambda g: _expanded(g, replace={"labels": np.full(20, 200, dtype=np.int64)}),
    "labels-negative": lambda g: _expanded(g, replace={"labels": np.full(20, -1, dtype=np.int64)}),
    "labels-float": lambda g: _expanded(g, replace={"labels": g.expanded_labels.astype(np.float64)}),
    "labels-text": lambda g: _expanded(g, replace={"labels": g.expanded_labels.astype(str)}),
    "labels-fewer-than-images": lambda g: _expanded(g, replace={"labels": g.expanded_labels[:19]}),
    "labels-2d": lambda g: _expanded(g, replace={"labels": g.expanded_labels.reshape(20, 1)}),
    "metadata-not-json": lambda g: _expanded(g, header="hello"),
    "metadata-deeply-nested": lambda g: _expanded(g, header=deep_list().decode()),
    "metadata-2d": lambda g: _expanded(g, replace={"metadata": np.array([["{}"]])}),
    "metadata-number-array": lambda g: _expanded(g, replace={"metadata": np.arange(2)}),
    "metadata-json-list": lambda g: _expanded(g, header="[1, 2]"),
    "metadata-format-is-model": lambda g: _expanded(g, format="nndl-model"),
    "metadata-version-newer": lambda g: _expanded(g, format_version=2),
    "metadata-version-text": lambda g: _expanded(g, format_version="1"),
    "metadata-count-text": lambda g: _expanded(g, count="20"),
    "metadata-count-negative": lambda g: _expanded(g, count=-1),
    "metadata-count-disagrees": lambda g: _expanded(g, count=21),
    "metadata-no-expansion": lambda g: _expanded(g, expansion=DELETE),
    "metadata-expansion-list": lambda g: _expanded(g, expansion=[1]),
    "images-declare-10^12": lambda g: _expanded(g, replace={"images.npy": npy_declaring((10**9, 1000), "|u1")}),
    "labels-declare-10^12": lambda g: _expanded(g, replace={"labels.npy": npy_declaring((10**12,), "<i8")}),
    "metadata-declares-10^12": lambda g: _expanded(g, replace={"metadata.npy": npy_declaring((10**12,), "<U1")}),
    "corrupt-deflate-stream": lambda g: corrupt_member(_expanded(g), "images.npy"),
    "bad-crc": lambda g: bad_crc(_expanded(g), "images.npy"),
}


def _expanded_cases():
    cases = [pytest.param(name, content, id=name) for name, content in EXPANDED_FILES.items()]
    cases += [pytest.param(name + ".npz", content, id="npz-" + name) for name, content in EXPANDED_MUTATIONS.items()]
    return cases


EXPANDED_CASES = _expanded_cases()


@pytest.mark.parametrize("name,content", EXPANDED_CASES)
def test_malformed_expanded_library(good, tmp_path, name, content):
    path = _materialise(tmp_path, name, content, good)
    library_error(lambda: load_expanded(path), path, allowed=_file_allowed(content))


@pytest.mark.parametrize("name,content", EXPANDED_CASES)
def test_malformed_expanded_train(capsys, digits, good, tmp_path, name, content):
    path = _materialise(tmp_path, name, content, good)
    user_error(cli(capsys, "train", *data_args(digits), "--expanded", path, "--epochs", 1, "--no-progress",
                   "--sizes", "784", "10", "10"), path)


# ---------------------------------------------------------------------------
# 4. Malformed idx data directories (--dataset idx)
# ---------------------------------------------------------------------------


def _put(directory, role, array=None, raw=None, gz=True):
    """Replace the file of ``role`` (both spellings) by ``array`` (write_idx) or ``raw`` bytes."""
    name = FILES[role]
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_dir():
            candidate.rmdir()
        elif candidate.exists():
            candidate.unlink()
    path = directory / (name + ".gz" if gz else name)
    if array is not None:
        write_idx(path, np.asarray(array), compress=gz)
    elif raw is not None:
        path.write_bytes(raw)
    return path


def _content(directory, role):
    return gzip.decompress((directory / (FILES[role] + ".gz")).read_bytes())


def _idx_header(type_code, *shape):
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def _flip_middle(raw):
    data = bytearray(raw)
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xA5
    return bytes(data)


IDX_CASES = {
    # id -> (function(directory) -> None, needles; "DIR" in a needle stands for the data directory)
    "train-images-truncated": (lambda d: _put(d, "train_images", raw=gzip.compress(
        _content(d, "train_images")[:-100])), [FILES["train_images"], "truncated"]),
    "train-labels-truncated-uncompressed": (lambda d: _put(d, "train_labels", raw=_content(
        d, "train_labels")[:-5], gz=False), [FILES["train_labels"], "truncated"]),
    "test-images-header-only": (lambda d: _put(d, "test_images", raw=_content(d, "test_images")[:16], gz=False),
                                [FILES["test_images"]]),
    "test-labels-three-bytes": (lambda d: _put(d, "test_labels", raw=b"\0\0\x08", gz=False),
                                [FILES["test_labels"]]),
    "train-images-empty": (lambda d: _put(d, "train_images", raw=b"", gz=False), [FILES["train_images"], "empty"]),
    "train-images-empty-gz": (lambda d: _put(d, "train_images", raw=gzip.compress(b"")), [FILES["train_images"]]),
    "test-images-wrong-magic": (lambda d: _put(d, "test_images", raw=b"\x01\x02" + _content(d, "test_images")[2:],
                                               gz=False), [FILES["test_images"], "magic"]),
    "train-labels-unknown-type": (lambda d: _put(d, "train_labels", raw=gzip.compress(
        b"\0\0\x0a\x01" + _content(d, "train_labels")[4:])), [FILES["train_labels"], "0x0A"]),
    "train-images-zero-dimensions": (lambda d: _put(d, "train_images", raw=b"\0\0\x08\x00", gz=False),
                                     [FILES["train_images"], "0 dimensions"]),
    "train-images-header-declares-huge-shape": (lambda d: _put(d, "train_images", raw=_idx_header(
        8, 10**9, 28, 28) + b"\0" * 1000, gz=False), [FILES["train_images"]]),
    "train-images-gz-header-declares-huge-shape": (lambda d: _put(d, "train_images", raw=gzip.compress(
        _idx_header(8, 2**32 - 1, 280, 280) + b"\0" * 1000)), [FILES["train_images"]]),
    "train-images-trailing-bytes": (lambda d: _put(d, "train_images", raw=_content(d, "train_images") + b"x" * 7,
                                                   gz=False), [FILES["train_images"], "trailing"]),
    "train-images-gz-trailing-garbage": (lambda d: _put(d, "train_images", raw=(
        d / (FILES["train_images"] + ".gz")).read_bytes() + b"garbage!"), [FILES["train_images"]]),
    "train-images-corrupt-gz": (lambda d: _put(d, "train_images", raw=_flip_middle(
        (d / (FILES["train_images"] + ".gz")).read_bytes())), [FILES["train_images"]]),
    "test-labels-truncated-gz": (lambda d: _put(d, "test_labels", raw=(
        d / (FILES["test_labels"] + ".gz")).read_bytes()[:-12]), [FILES["test_labels"]]),
    "train-images-gz-magic-only": (lambda d: _put(d, "train_images", raw=b"\x1f\x8b"), [FILES["train_images"]]),
    "train-images-2d": (lambda d: _put(d, "train_images", array=np.zeros((300, 784), np.uint8)),
                        ["train images", "3-d"]),
    "train-labels-2d": (lambda d: _put(d, "train_labels", array=np.zeros((300, 1), np.uint8)),
                        ["train labels", "1-d"]),
    "train-images-float32": (lambda d: _put(d, "train_images", array=np.zeros((300, 28, 28), np.float32)),
                             ["train images", "uint8"]),
    "test-labels-float32": (lambda d: _put(d, "test_labels", array=np.zeros(100, np.float32)),
                            ["test labels", "integers"]),
    "train-labels-fewer-than-images": (lambda d: _put(d, "train_labels", array=np.zeros(299, np.uint8)),
                                       ["300", "299"]),
    "test-images-fewer-than-labels": (lambda d: _put(d, "test_images", array=np.zeros((99, 28, 28), np.uint8)),
                                      ["99", "100"]),
    "train-labels-negative": (lambda d: _put(d, "train_labels", array=np.full(300, -1, np.int8)), ["negative"]),
    "train-labels-200": (lambda d: _put(d, "train_labels", array=np.full(300, 200, np.uint8)), ["200"]),
    "train-labels-10": (lambda d: _put(d, "train_labels", array=(np.arange(300) % 11).astype(np.uint8)), ["10"]),
    "test-labels-200": (lambda d: _put(d, "test_labels", array=np.full(100, 200, np.uint8)), ["200"]),
    "train-labels-int32-huge": (lambda d: _put(d, "train_labels", array=np.full(300, 2**31 - 1, np.int32)),
                                [str(2**31 - 1)]),
    "test-images-20x20": (lambda d: _put(d, "test_images", array=np.zeros((100, 20, 20), np.uint8)),
                          ["(28, 28)", "(20, 20)"]),
    "all-images-20x20": (lambda d: (_put(d, "test_images", array=np.zeros((100, 20, 20), np.uint8)),
                                    _put(d, "train_images", array=np.zeros((300, 20, 20), np.uint8))),
                         ["400", "784"]),
    "test-labels-missing": (lambda d: (d / (FILES["test_labels"] + ".gz")).unlink(), [FILES["test_labels"]]),
    "train-images-is-a-directory": (lambda d: (_put(d, "train_images"),
                                               (d / (FILES["train_images"] + ".gz")).mkdir()),
                                    [FILES["train_images"]]),
}


@pytest.fixture
def bad_digits(digits, tmp_path):
    directory = tmp_path / "bad-digits"
    shutil.copytree(digits, directory)
    return directory


@pytest.mark.parametrize("case", list(IDX_CASES))
def test_malformed_idx_data(capsys, bad_digits, case):
    change, needles = IDX_CASES[case]
    change(bad_digits)
    result = cli(capsys, "train", *data_args(bad_digits), "--epochs", 1, "--no-progress", "--sizes", "784", "10",
                 "10")
    user_error(result, *needles)


IDX_LOAD_CASES = [c for c in IDX_CASES if c not in ("train-labels-200", "train-labels-10", "test-labels-200",
                                                    "all-images-20x20", "train-labels-int32-huge")]


@pytest.mark.parametrize("case", IDX_LOAD_CASES)
def test_malformed_idx_data_library(bad_digits, case):
    change, needles = IDX_CASES[case]
    change(bad_digits)
    library_error(lambda: load_idx_dataset(bad_digits, validation_size=VALIDATION), *needles)


@pytest.mark.parametrize("case", ["train-labels-200", "train-labels-10", "test-labels-200", "all-images-20x20"])
def test_idx_data_that_does_not_fit_the_network_library(bad_digits, case):
    change, needles = IDX_CASES[case]
    change(bad_digits)
    data = load_idx_dataset(bad_digits, validation_size=VALIDATION)
    net = FeedforwardNetwork([784, 10, 10], seed=0)
    library_error(lambda: train(net, data.training, epochs=1, eta=1.0, evaluation_data=data.test), *needles)


def test_data_that_is_a_file(capsys, good):
    user_error(cli(capsys, "train", *data_args(good.model_json), "--epochs", 1), good.model_json)


def test_mnist_data_in_a_missing_directory(capsys, tmp_path):
    """The official data set (--dataset mnist, the default) in a directory that does not exist."""
    user_error(cli(capsys, "train", "--data", tmp_path / "nowhere", "--epochs", 1), tmp_path / "nowhere")


def test_mnist_data_that_is_not_mnist(capsys, digits):
    """Files named like MNIST's that are not MNIST: refused by checksum, in one line."""
    user_error(cli(capsys, "train", "--data", digits, "--epochs", 1), FILES["train_images"], "checksum")


# --- gzip bomb ----------------------------------------------------------------

BOMB_ZEROS = 200 << 20


@pytest.fixture(scope="module")
def bomb_digits(digits, tmp_path_factory):
    """The digits, with training images that declare 10 images but decompress to 200 MB of zeros."""
    directory = tmp_path_factory.mktemp("bomb")
    for f in digits.iterdir():
        shutil.copy(f, directory / f.name)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)         # a gzip stream
    chunk = bytes(1 << 20)
    with open(directory / (FILES["train_images"] + ".gz"), "wb") as f:
        f.write(compressor.compress(_idx_header(8, 10, 28, 28)))
        for _ in range(BOMB_ZEROS // len(chunk)):
            f.write(compressor.compress(chunk))
        f.write(compressor.flush())
    assert (directory / (FILES["train_images"] + ".gz")).stat().st_size < 2 << 20
    return directory


def test_gzip_bomb_is_refused(capsys, bomb_digits):
    user_error(cli(capsys, "train", *data_args(bomb_digits), "--epochs", 1, "--no-progress"),
               FILES["train_images"])


_MEASURE = r"""
import resource, sys
import numpy, nndl.cli, nndl.data.mnist, nndl.training, nndl.engine.modelio
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = nndl.cli.main(sys.argv[1:])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"PEAK-GROWTH-KB {after - before}")
sys.exit(code)
"""


def test_gzip_bomb_is_refused_in_little_memory(bomb_digits):
    result = subprocess.run([sys.executable, "-c", _MEASURE, "train", *map(str, data_args(bomb_digits)),
                             "--epochs", "1", "--no-progress"], capture_output=True, text=True, timeout=120)
    user_error((result.returncode, result.stdout, result.stderr), FILES["train_images"])
    growth_kb = int(re.search(r"PEAK-GROWTH-KB (-?\d+)", result.stdout).group(1))
    assert growth_kb < 48 * 1024, f"refusing the bomb took {growth_kb / 1024:.0f} MB more memory"


# ---------------------------------------------------------------------------
# 5. The library: networks, training, evaluation, configurations
# ---------------------------------------------------------------------------

_rng = np.random.default_rng(5)
X = _rng.random((20, 784))
Y = _rng.integers(0, 10, 20)


def _with(array, index, value):
    array = np.array(array, dtype=object if isinstance(value, str) else None)
    if isinstance(value, float) and array.dtype.kind in "iu":
        array = array.astype(float)
    array[index] = value
    return array


NETWORK_CASES = [
    ("sizes-none", dict(sizes=None), ["sizes"]),
    ("sizes-number", dict(sizes=784), ["784"]),
    ("sizes-text", dict(sizes="784 30 10"), ["784 30 10"]),
    ("sizes-one-layer", dict(sizes=[784]), ["784"]),
    ("sizes-empty", dict(sizes=[]), ["sizes"]),
    ("sizes-zero", dict(sizes=[784, 0, 10]), ["0"]),
    ("sizes-negative", dict(sizes=[784, -1, 10]), ["-1"]),
    ("sizes-text-element", dict(sizes=[784, "abc", 10]), ["abc"]),
    ("sizes-fraction", dict(sizes=[784, 1.5, 10]), ["1.5"]),
    ("sizes-none-element", dict(sizes=[784, None, 10]), ["None"]),
    ("sizes-nan", dict(sizes=[784, float("nan"), 10]), ["nan"]),
    ("sizes-inf", dict(sizes=[784, float("inf"), 10]), ["inf"]),
    ("sizes-huge", dict(sizes=[784, 10**12, 10]), [str(10**12)]),
    ("activations-none", dict(sizes=[784, 3, 10], activations=None), ["None"]),
    ("activations-number", dict(sizes=[784, 3, 10], activations=5), ["5"]),
    ("activations-unknown", dict(sizes=[784, 3, 10], activations="swish"), ["swish"]),
    ("activations-too-many", dict(sizes=[784, 3, 10], activations=["sigmoid"] * 3), ["3"]),
    ("activations-softmax-hidden", dict(sizes=[784, 3, 10], activations=["softmax", "sigmoid"]), ["softmax"]),
    ("activations-nones", dict(sizes=[784, 3, 10], activations=[None, None]), ["None"]),
    ("cost-none", dict(sizes=[784, 3, 10], cost=None), ["None"]),
    ("cost-number", dict(sizes=[784, 3, 10], cost=5), ["5"]),
    ("cost-unknown", dict(sizes=[784, 3, 10], cost="hinge"), ["hinge"]),
    ("cost-log-likelihood-relu", dict(sizes=[784, 3, 10], cost="log-likelihood", activations="relu"), ["relu"]),
    ("init-unknown", dict(sizes=[784, 3, 10], init="huge"), ["huge"]),
    ("init-none", dict(sizes=[784, 3, 10], init=None), ["None"]),
    ("init-number", dict(sizes=[784, 3, 10], init=5), ["5"]),
    ("dtype-int32", dict(sizes=[784, 3, 10], dtype="int32"), ["int32"]),
    ("dtype-float16", dict(sizes=[784, 3, 10], dtype=np.float16), ["float16"]),
    ("dtype-unknown-name", dict(sizes=[784, 3, 10], dtype="float99"), ["float99"]),
    ("seed-negative", dict(sizes=[784, 3, 10], seed=-1), ["-1"]),
    ("seed-text", dict(sizes=[784, 3, 10], seed="lucky"), ["lucky"]),
    ("seed-fraction", dict(sizes=[784, 3, 10], seed=1.5), ["1.5"]),
]


@pytest.mark.parametrize("kwargs,needles", [c[1:] for c in NETWORK_CASES], ids=[c[0] for c in NETWORK_CASES])
def test_network_construction(kwargs, needles):
    library_error(lambda: FeedforwardNetwork(**kwargs), *needles)


@pytest.fixture(scope="module")
def net():
    return FeedforwardNetwork([784, 5, 10], seed=0)


DATA_CASES = [
    ("x-wrong-width", (X[:, :783], Y), ["783"]),
    ("x-3d", (X.reshape(20, 28, 28), Y), ["(20, 28, 28)"]),
    ("x-empty", (X[:0], Y[:0]), ["empty"]),
    ("x-nan", (_with(X, (3, 5), np.nan), Y), ["nan"]),
    ("x-inf", (_with(X, (0, 0), np.inf), Y), ["infinite"]),
    ("x-0-255-uint8", ((X * 255).astype(np.uint8), Y), ["255"]),
    ("x-0-255-float", (np.round(X * 255), Y), ["255"]),
    ("x-strings", (np.full((20, 784), "0.5"), Y), ["numbers"]),
    ("x-none", (None, Y), ["shape"]),
    ("x-scalar", (5.0, Y), ["shape"]),
    ("x-ragged-list", ([[0.5] * 784, [0.5] * 783] * 10, Y), ["training data"]),
    ("x-object-array", (X.astype(object), Y), ["object"]),
    ("x-complex", (X.astype(complex), Y), ["complex"]),
    ("x-text", ("abc", Y), ["shape"]),
    ("y-10", (X, _with(Y, 0, 10)), ["0..9"]),
    ("y-200", (X, np.full(20, 200)), ["200"]),
    ("y-negative", (X, _with(Y, 1, -1)), ["-1"]),
    ("y-fraction", (X, _with(Y, 2, 1.5)), ["1.5"]),
    ("y-nan", (X, _with(Y, 2, np.nan)), ["nan"]),
    ("y-strings", (X, Y.astype(str)), ["labels"]),
    ("y-none", (X, None), ["labels"]),
    ("y-ragged", (X, [[1], [2, 3]] * 10), ["labels"]),
    ("y-fewer-than-x", (X, Y[:19]), ["20", "19"]),
    ("y-one-hot-wrong-width", (X, np.eye(9)[Y % 9]), ["labels"]),
    ("y-3d", (X, np.zeros((20, 10, 1))), ["labels"]),
    ("y-empty", (X, Y[:0]), ["0"]),
    ("y-text", (X, "0123456789" * 2), ["labels"]),
    ("data-none", None, ["training data"]),
    ("data-one-array", X, ["training data"]),
    ("data-triple", (X, Y, Y), ["training data"]),
    ("data-text", "abc", ["training data"]),
    ("data-dict", {"x": X, "y": Y}, ["training data"]),
]


@pytest.mark.parametrize("data,needles", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_train_with_bad_training_data(net, data, needles):
    library_error(lambda: train(net, data, epochs=1, eta=1.0), *needles)


EVALUATION_CASES = [
    ("labels-not-one-hot-rows", (X, np.full((20, 10), 0.1)), ["one-hot"]),
    ("labels-two-ones-per-row", (X, np.ones((20, 10))), ["one-hot"]),
    ("labels-200", (X, np.full(20, 200)), ["200"]),
    ("labels-fewer", (X, Y[:5]), ["20", "5"]),
    ("x-nan", (_with(X, (0, 0), np.nan), Y), ["nan"]),
    ("x-wrong-width", (X[:, :100], Y), ["100"]),
    ("x-empty", (X[:0], Y[:0]), ["empty"]),
    ("labels-none", (X, None), ["labels"]),
    ("not-a-pair", X, ["evaluation data"]),
]


@pytest.mark.parametrize("data,needles", [c[1:] for c in EVALUATION_CASES], ids=[c[0] for c in EVALUATION_CASES])
def test_train_with_bad_evaluation_data(net, data, needles):
    library_error(lambda: train(net, (X, Y), epochs=1, eta=1.0, evaluation_data=data), *needles)


SETTING_CASES = [
    ("eta-negative", dict(eta=-1), ["eta"]),
    ("eta-zero", dict(eta=0), ["eta"]),
    ("eta-nan", dict(eta=float("nan")), ["eta"]),
    ("eta-inf", dict(eta=float("inf")), ["eta"]),
    ("eta-text", dict(eta="3"), ["eta"]),
    ("eta-none", dict(eta=None), ["eta"]),
    ("eta-complex", dict(eta=1j), ["eta"]),
    ("epochs-zero", dict(epochs=0), ["epochs"]),
    ("epochs-fraction", dict(epochs=1.5), ["epochs"]),
    ("epochs-inf", dict(epochs=float("inf")), ["epochs"]),
    ("epochs-nan", dict(epochs=float("nan")), ["epochs"]),
    ("epochs-text", dict(epochs="1"), ["epochs"]),
    ("mini-batch-zero", dict(mini_batch_size=0), ["mini-batch"]),
    ("mini-batch-negative", dict(mini_batch_size=-1), ["mini-batch"]),
    ("mini-batch-inf", dict(mini_batch_size=float("inf")), ["mini-batch"]),
    ("lmbda-negative", dict(lmbda=-1), ["lambda"]),
    ("lmbda-huge-weight-decay", dict(lmbda=1e12), ["lambda"]),
    ("momentum-one", dict(momentum=1.0), ["momentum"]),
    ("momentum-negative", dict(momentum=-0.1), ["momentum"]),
    ("nesterov-without-momentum", dict(nesterov=True), ["Nesterov"]),
    ("nesterov-text", dict(nesterov="yes", momentum=0.5), ["nesterov"]),
    ("dropout-one", dict(p_dropout=1.0), ["dropout"]),
    ("dropout-nan", dict(p_dropout=float("nan")), ["dropout"]),
    ("early-stopping-without-evaluation-data", dict(early_stopping=3), ["evaluation"]),
    ("schedule-halve-without-evaluation-data", dict(schedule="halve"), ["evaluation"]),
    ("monitor-evaluation-without-evaluation-data", dict(monitor=["evaluation_accuracy"]), ["evaluation"]),
    ("monitor-unknown", dict(monitor="loss"), ["loss"]),
    ("monitor-number", dict(monitor=5), ["monitor"]),
    ("monitor-nested", dict(monitor=[["training_cost"]]), ["monitor"]),
    ("regularization-unknown", dict(regularization="l3"), ["l3"]),
    ("schedule-unknown", dict(schedule="cosine"), ["cosine"]),
    ("patience-zero", dict(patience=0), ["patience"]),
    ("min-eta-ratio-zero", dict(min_eta_ratio=0), ["min_eta_ratio"]),
    ("restore-best-text", dict(restore_best="yes"), ["restore_best"]),
    ("seed-negative", dict(seed=-1), ["seed"]),
    ("seed-text", dict(seed="x"), ["seed"]),
    ("seed-fraction", dict(seed=1.5), ["seed"]),
    ("unknown-setting", dict(learning_rate=3), ["learning_rate"]),
    ("config-text", dict(config="eta=3"), ["config"]),
    ("config-dict", dict(config={"eta": 3}), ["config"]),
    ("config-number", dict(config=5), ["config"]),
]


@pytest.mark.parametrize("kwargs,needles", [c[1:] for c in SETTING_CASES], ids=[c[0] for c in SETTING_CASES])
def test_train_with_bad_settings(net, kwargs, needles):
    kwargs = dict(kwargs)
    config = kwargs.pop("config", None)
    settings = {"epochs": 1, "eta": 1.0, **kwargs}
    library_error(lambda: train(net, (X, Y), config, **settings), *needles)


def test_train_with_huge_mini_batch_works_or_is_refused(net):
    """A mini-batch larger than the training set: full-batch descent, or a ConfigError; never MemoryError."""
    try:
        train(net, (X, Y), epochs=1, eta=1.0, mini_batch_size=10**12)
    except NndlError as e:
        assert "mini-batch" in str(e)
    except Exception as e:
        pytest.fail(f"{type(e).__name__}: {str(e)[:300]}", pytrace=False)


EVALUATE_CASES = [
    ("x-wrong-width", (X[:, :700], Y), ["700"]),
    ("x-nan", (_with(X, (1, 1), np.nan), Y), ["nan"]),
    ("x-0-255", ((X * 255).astype(np.uint8), Y), ["255"]),
    ("x-empty", (X[:0], Y[:0]), ["empty"]),
    ("x-strings", (np.full((20, 784), "a"), Y), ["numbers"]),
    ("x-none", (None, Y), ["shape"]),
    ("x-ragged", ([[0.1] * 784, [0.1]] * 10, Y), ["inputs"]),
    ("labels-10", (X, _with(Y, 0, 10)), ["0..9"]),
    ("labels-200", (X, np.full(20, 200)), ["200"]),
    ("labels-not-one-hot", (X, np.full((20, 10), 0.5)), ["one-hot"]),
    ("labels-fraction", (X, _with(Y, 0, 0.5)), ["0.5"]),
    ("labels-strings", (X, Y.astype(str)), ["labels"]),
    ("labels-none", (X, None), ["labels"]),
    ("labels-ragged", (X, [[1, 2], [3]] * 10), ["labels"]),
    ("labels-fewer", (X, Y[:3]), ["20", "3"]),
    ("labels-empty", (X, []), ["0"]),
]


@pytest.mark.parametrize("x,labels,needles", [(c[1][0], c[1][1], c[2]) for c in EVALUATE_CASES],
                         ids=[c[0] for c in EVALUATE_CASES])
def test_evaluate_with_bad_data(net, x, labels, needles):
    library_error(lambda: net.evaluate(x, labels), *needles)


@pytest.mark.parametrize("x,labels,needles", [(c[1][0], c[1][1], c[2]) for c in EVALUATE_CASES[:8]],
                         ids=[c[0] for c in EVALUATE_CASES[:8]])
def test_accuracy_and_total_cost_with_bad_data(net, x, labels, needles):
    library_error(lambda: net.accuracy(x, labels), *needles)
    library_error(lambda: net.total_cost(x, labels), *needles)


@pytest.mark.parametrize("x", [None, "abc", X[:, :10], X.reshape(20, 28, 28), np.full((2, 784), "a"),
                               [[0.1] * 784, [0.2]]],
                         ids=["none", "text", "wrong-width", "3d", "strings", "ragged"])
def test_feedforward_and_backprop_with_bad_inputs(net, x):
    library_error(lambda: net.feedforward(x))
    library_error(lambda: net.predict(x))
    library_error(lambda: net.backprop(x, Y[:2]))


@pytest.mark.parametrize("weights,biases", [
    (None, None), ("ab", "cd"), ([np.zeros((5, 784))], [np.zeros(5)]),
    ([np.zeros((784, 5)), np.zeros((10, 5))], [np.zeros(5), np.zeros(10)]),
    ([np.zeros((5, 784)), np.zeros((10, 5))], [np.zeros(4), np.zeros(10)]),
    ([np.full((5, 784), "x"), np.zeros((10, 5))], [np.zeros(5), np.zeros(10)]),
    ([[[0.1] * 784] * 4 + [[0.1]], np.zeros((10, 5))], [np.zeros(5), np.zeros(10)]),
    (5, 5),
], ids=["none", "text", "one-layer", "transposed", "short-biases", "strings", "ragged", "numbers"])
def test_set_parameters_with_bad_values(weights, biases):
    net = FeedforwardNetwork([784, 5, 10], seed=0)
    library_error(lambda: net.set_parameters(weights, biases))


TRAINING_CONFIG_CASES = [
    ("not-a-dict-list", [], ["TrainingConfig"]),
    ("not-a-dict-none", None, ["TrainingConfig"]),
    ("not-a-dict-text", "eta=3", ["TrainingConfig"]),
    ("unknown-key", {"learning_rate": 3}, ["learning_rate"]),
    ("epochs-text", {"epochs": "30"}, ["epochs"]),
    ("epochs-inf", {"epochs": float("inf")}, ["epochs"]),
    ("epochs-nan", {"epochs": float("nan")}, ["epochs"]),
    ("epochs-bool", {"epochs": True}, ["epochs"]),
    ("epochs-none", {"epochs": None}, ["epochs"]),
    ("epochs-list", {"epochs": [30]}, ["epochs"]),
    ("mini-batch-inf", {"mini_batch_size": float("inf")}, ["mini-batch"]),
    ("mini-batch-fraction", {"mini_batch_size": 2.5}, ["mini-batch"]),
    ("eta-text", {"eta": "3.0"}, ["eta"]),
    ("eta-none", {"eta": None}, ["eta"]),
    ("eta-negative", {"eta": -3}, ["eta"]),
    ("eta-list", {"eta": [3.0]}, ["eta"]),
    ("lmbda-nan", {"lmbda": float("nan")}, ["lambda"]),
    ("regularization-list", {"regularization": ["l2"]}, ["regularisation"]),
    ("regularization-unknown", {"regularization": "l0"}, ["l0"]),
    ("momentum-one", {"momentum": 1}, ["momentum"]),
    ("momentum-text", {"momentum": "0.9"}, ["momentum"]),
    ("nesterov-text", {"nesterov": "true", "momentum": 0.5}, ["nesterov"]),
    ("nesterov-without-momentum", {"nesterov": True}, ["Nesterov"]),
    ("dropout-one", {"p_dropout": 1}, ["dropout"]),
    ("schedule-unknown", {"schedule": "step"}, ["step"]),
    ("schedule-number", {"schedule": 2}, ["schedule"]),
    ("patience-nan", {"patience": float("nan")}, ["patience"]),
    ("patience-inf", {"patience": float("inf")}, ["patience"]),
    ("min-eta-ratio-above-one", {"min_eta_ratio": 2}, ["min_eta_ratio"]),
    ("early-stopping-zero", {"early_stopping": 0}, ["early stopping"]),
    ("early-stopping-inf", {"early_stopping": float("inf")}, ["early stopping"]),
    ("monitor-unknown", {"monitor": ["loss"]}, ["loss"]),
    ("monitor-number", {"monitor": 5}, ["monitor"]),
    ("monitor-dict", {"monitor": {"training_cost": True}}, ["monitor"]),
    ("restore-best-number", {"restore_best": 1}, ["restore_best"]),
    ("seed-negative", {"seed": -1}, ["seed"]),
    ("seed-fraction", {"seed": 0.5}, ["seed"]),
    ("seed-text", {"seed": "1"}, ["seed"]),
]


@pytest.mark.parametrize("data,needles", [c[1:] for c in TRAINING_CONFIG_CASES],
                         ids=[c[0] for c in TRAINING_CONFIG_CASES])
def test_training_config_from_dict(data, needles):
    library_error(lambda: TrainingConfig.from_dict(data, source="run.json"), *needles)


NETWORK_CONFIG_CASES = [
    ("not-a-dict", [784, 30, 10], ["NetworkConfig"]),
    ("unknown-key", {"layers": 3}, ["layers"]),
    ("sizes-text", {"sizes": "784 30 10"}, ["sizes"]),
    ("sizes-number", {"sizes": 784}, ["sizes"]),
    ("sizes-none", {"sizes": None}, ["sizes"]),
    ("sizes-one-layer", {"sizes": [784]}, ["784"]),
    ("sizes-zero", {"sizes": [784, 0, 10]}, ["0"]),
    ("sizes-text-element", {"sizes": [784, "30", 10]}, ["30"]),
    ("sizes-nan", {"sizes": [784, float("nan"), 10]}, ["nan"]),
    ("sizes-inf", {"sizes": [784, float("inf"), 10]}, ["inf"]),
    ("sizes-none-element", {"sizes": [784, None, 10]}, ["None"]),
    ("sizes-nested", {"sizes": [784, [30], 10]}, ["30"]),
    ("sizes-huge", {"sizes": [784, 99999999, 10]}, ["99999999"]),
    ("sizes-dict", {"sizes": {"784": 1, "10": 2}}, ["layer size"]),
    ("activations-number", {"activations": 5}, ["activations"]),
    ("activations-empty", {"activations": []}, ["activations"]),
    ("activations-unknown", {"activations": ["swish"]}, ["swish"]),
    ("activations-nested", {"activations": [["sigmoid"]]}, ["activations"]),
    ("activations-count", {"activations": ["sigmoid"] * 3}, ["3"]),
    ("activations-softmax-hidden", {"activations": ["softmax", "sigmoid"]}, ["softmax"]),
    ("cost-number", {"cost": 5}, ["cost"]),
    ("cost-unknown", {"cost": "hinge"}, ["hinge"]),
    ("cost-list", {"cost": ["quadratic"]}, ["cost"]),
    ("cost-activation-mismatch", {"cost": "cross-entropy", "activations": ["relu"]}, ["relu"]),
    ("init-unknown", {"init": "huge"}, ["huge"]),
    ("init-list", {"init": ["large"]}, ["init"]),
    ("dtype-unknown", {"dtype": "float16"}, ["float16"]),
    ("dtype-list", {"dtype": ["float64"]}, ["dtype"]),
]


@pytest.mark.parametrize("data,needles", [c[1:] for c in NETWORK_CONFIG_CASES],
                         ids=[c[0] for c in NETWORK_CONFIG_CASES])
def test_network_config_from_dict(data, needles):
    library_error(lambda: NetworkConfig.from_dict(data, source="run.json"), *needles)


# ---------------------------------------------------------------------------
# 6. Real processes: what a user at a terminal sees
# ---------------------------------------------------------------------------


def nndl_process(*args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "nndl", *map(str, args)], capture_output=True, text=True,
                            timeout=120, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


def test_process_bad_option(digits):
    user_error(nndl_process("train", *data_args(digits), "--eta", "nan"), "--eta", "nan")


def test_process_deeply_nested_model(digits, tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(deep_list())
    user_error(nndl_process("evaluate", path, *data_args(digits)), path)


def test_process_model_declaring_a_huge_array(digits, good, tmp_path):
    path = tmp_path / "huge.npz"
    path.write_bytes(NPZ_MODEL_FILES["npz-member-declares-10^12-float64"](good))
    user_error(nndl_process("evaluate", path, *data_args(digits)), path)


def test_process_missing_history(tmp_path):
    user_error(nndl_process("plot", tmp_path / "nowhere.json"), tmp_path / "nowhere.json")


def test_process_dataset_idx_without_data():
    user_error(nndl_process("train", "--dataset", "idx", "--epochs", "1"), "--data")


def test_process_expand_into_a_directory(digits, tmp_path):
    user_error(nndl_process("expand", tmp_path, *data_args(digits)), tmp_path)


def test_process_corrupt_idx_data(bad_digits):
    IDX_CASES["train-images-corrupt-gz"][0](bad_digits)
    user_error(nndl_process("train", *data_args(bad_digits), "--epochs", "1"), FILES["train_images"])


# ---------------------------------------------------------------------------
# 7. kill -9 in the middle of every kind of write
# ---------------------------------------------------------------------------

_WRITER = r"""
import os, sys, time
kind, target = sys.argv[1], sys.argv[2]
if "--slow" in sys.argv:
    # Throttle the writes of the atomic writer (only the speed changes), so that the kill lands mid-write.
    _fdopen = os.fdopen
    class Slow:
        def __init__(self, f):
            self._f = f
        def write(self, data):
            view = memoryview(data).cast("B")
            for i in range(0, len(view), 1 << 14):
                self._f.write(view[i:i + (1 << 14)])
                self._f.flush()
                time.sleep(0.002)
            return len(view)
        def __getattr__(self, name):
            return getattr(self._f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self._f.__exit__(*exc)
    os.fdopen = lambda *a, **k: Slow(_fdopen(*a, **k))
if kind == "model":
    from nndl.engine.feedforward import FeedforwardNetwork
    from nndl.engine.modelio import save
    save(FeedforwardNetwork([784, 3000, 10], seed=1), target)
elif kind == "history":
    from nndl.training.history import History
    n = 20000
    h = History(epochs=list(range(n)), eta=[0.5] * n, epoch_time=[0.25] * n, monitor_time=[0.125] * n,
                evaluation_accuracy=[i / n for i in range(n)], training_cost=[1.0 / (i + 1) for i in range(n)])
    h.save(target)
elif kind == "expanded":
    import numpy as np
    from nndl.data.expand import expand_training_data, save_expanded
    rng = np.random.default_rng(0)
    images, labels = expand_training_data(rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
                                          rng.integers(0, 10, 200), seed=0)
    save_expanded(target, images, labels, {"source": "kill test"})
print("finished", flush=True)
"""


def _kill_mid_write(command, target, need_bytes, timeout=90):
    """Start ``command``, wait for the temporary file of ``target`` (with bytes in it if ``need_bytes``),
    kill -9 the process, and return the names of the temporary files seen."""
    target = Path(target)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while True:
            seen = []
            for name in temporaries(target):
                try:
                    size = (target.parent / name).stat().st_size
                except FileNotFoundError:
                    continue
                if size > 0 or not need_bytes:
                    seen.append(name)
            if seen:
                os.kill(process.pid, signal.SIGKILL)
                break
            if process.poll() is not None:
                out, err = process.communicate()
                pytest.fail(f"the writer ended (status {process.returncode}) before it could be killed "
                            f"mid-write:\n{out.decode()[-500:]}\n{err.decode()[-2000:]}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail("no temporary file appeared", pytrace=False)
            time.sleep(0.0005)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL, f"the writer ended with {process.returncode}, not by the kill"
    return seen


def _check_after_kill(target, previous, load):
    """The target is the previous version, byte for byte, and still loads."""
    target = Path(target)
    assert target.exists(), "the previous version is gone"
    assert target.read_bytes() == previous, "the target was changed by a killed writer"
    load(target)
    assert temporaries(target), "no temporary file was left: the kill did not land mid-write"


def _check_next_write_cleans_up(target, write, load):
    write(target)
    load(target)
    assert temporaries(target) == [], f"stray temporary files after the next write: {temporaries(target)}"


@pytest.mark.parametrize("suffix,need_bytes", [(".json", False), (".npz", True)], ids=["json", "npz"])
def test_kill_during_model_save(tmp_path, suffix, need_bytes):
    target = tmp_path / ("net" + suffix)
    small = FeedforwardNetwork([784, 4, 10], seed=3)
    modelio.save(small, target)
    previous = target.read_bytes()
    _kill_mid_write([sys.executable, "-c", _WRITER, "model", str(target)], target, need_bytes)
    _check_after_kill(target, previous, modelio.load)
    other = FeedforwardNetwork([784, 5, 10], seed=4)
    _check_next_write_cleans_up(target, lambda p: modelio.save(other, p), modelio.load)
    assert modelio.load(target).sizes == [784, 5, 10]


def test_kill_during_history_save(tmp_path, good):
    target = tmp_path / "run.json"
    shutil.copy(good.history, target)
    previous = target.read_bytes()
    _kill_mid_write([sys.executable, "-c", _WRITER, "history", str(target), "--slow"], target, True)
    _check_after_kill(target, previous, History.load)
    history = History.load(good.history)
    _check_next_write_cleans_up(target, history.save, History.load)


def test_kill_during_expanded_save(tmp_path, good):
    target = tmp_path / "expanded.npz"
    shutil.copy(good.expanded, target)
    previous = target.read_bytes()
    _kill_mid_write([sys.executable, "-c", _WRITER, "expanded", str(target), "--slow"], target, True)
    _check_after_kill(target, previous, load_expanded)
    _check_next_write_cleans_up(
        target, lambda p: save_expanded(p, good.expanded_images, good.expanded_labels, {"source": "again"}),
        load_expanded)
    assert load_expanded(target)[2] == {"source": "again"}


def test_kill_during_cli_train_save(tmp_path, digits):
    target = tmp_path / "net.json"
    small = FeedforwardNetwork([784, 4, 10], seed=3)
    modelio.save(small, target)
    previous = target.read_bytes()
    command = [sys.executable, "-m", "nndl", "train", *map(str, data_args(digits)), "--sizes", "784", "3000", "10",
               "--epochs", "1", "--training-size", "100", "--no-progress", "--save", str(target)]
    _kill_mid_write(command, target, need_bytes=False)
    _check_after_kill(target, previous, modelio.load)
    _check_next_write_cleans_up(target, lambda p: modelio.save(small, p), modelio.load)
    assert target.read_bytes() == previous
