"""The nndl command line, run in-process on a small synthetic data set in MNIST's idx layout."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nndl.cli import main
from nndl.data.idx import write_idx
from nndl.data.mnist import FILES
from nndl.engine.backprop import Backprop


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def data_args(directory):
    return ["--dataset", "idx", "--data", directory, "--validation-size", 200]


def test_train_save_evaluate(capsys, idx_dataset, tmp_path):
    model, history = tmp_path / "net.json", tmp_path / "run.json"
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--sizes", "784", "20", "10", "--epochs", 3,
                         "--eta", 3.0, "--seed", 1, "--save", model, "--history", history, "--no-progress")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Training [784, 20, 10]")
    assert [l.split(":")[0] for l in lines[1:4]] == ["Epoch 0", "Epoch 1", "Epoch 2"]
    assert "test accuracy" in lines[1] and "/ 300" in lines[1]
    assert any(l.startswith("Best: epoch") for l in lines)
    assert "Saved the best (epoch" in out and str(model) in out
    best = json.loads(history.read_text())["best_accuracy"]
    assert best > 0.9
    code, out, err = run(capsys, "evaluate", model, *data_args(idx_dataset))
    assert code == 0
    assert out.strip() == f"test accuracy: {best:.2%} ({round(best * 300)} / 300)"


def test_chapter3_options_and_continuing_from_a_saved_model(capsys, idx_dataset, tmp_path):
    model = tmp_path / "net.npz"
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--sizes", "784,30,10", "--activation", "tanh",
                         "softmax", "--cost", "log-likelihood", "--init", "default", "--eta", 0.1, "--lmbda", 1.0,
                         "--momentum", 0.5, "--nesterov", "--dropout", 0.2, "--evaluate-on", "validation",
                         "--monitor", "training_cost", "evaluation_accuracy", "--early-stopping", 5,
                         "--epochs", 4, "--save", model, "--dtype", "float32", "--no-progress")
    assert code == 0, err
    assert "validation accuracy" in out and "training cost" in out
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--load", model, "--epochs", 1, "--eta", 0.05,
                         "--no-progress", "--dtype", "float32")
    assert code == 0, err
    assert "Loaded" in out and "tanh/softmax" in out


def test_expand_then_train_on_the_expanded_set(capsys, idx_dataset, tmp_path):
    expanded = tmp_path / "expanded.npz"
    code, out, err = run(capsys, "expand", expanded, *data_args(idx_dataset))
    assert code == 0, err
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--expanded", expanded, "--epochs", 1,
                         "--sizes", 784, 10, 10, "--no-progress")
    assert code == 0, err
    assert "on 5,000 images" in out     # the 1,000 training images, each with 4 shifted copies


def test_saturation_is_said_plainly(capsys, idx_dataset):
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--eta", 100.0, "--epochs", 2, "--seed", 0,
                         "--no-progress")
    assert code == 0
    assert "saturated" in err or "diverged" in err
    assert "nan" not in out.lower()


def test_ctrl_c_saves_the_best_model_and_history(capsys, idx_dataset, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = Backprop.forward

    def forward(self):
        calls["n"] += 1
        if calls["n"] == 250:      # in the third epoch (100 mini-batches an epoch)
            raise KeyboardInterrupt
        return original(self)
    monkeypatch.setattr(Backprop, "forward", forward)
    model, history = tmp_path / "net.json", tmp_path / "run.json"
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--epochs", 10, "--save", model,
                         "--history", history, "--no-progress")
    assert code == 130
    assert "Finished (interrupted) after 2 epochs" in out
    assert f"to {model}" in out and f"to {history}" in out
    assert json.loads(history.read_text())["stop_reason"] == "interrupted"
    assert main(["evaluate", str(model), *map(str, data_args(idx_dataset))]) == 0


def one_line_error(code, err):
    """Exit status 2 and an error message (after any "downloading ..." progress lines), no traceback."""
    assert code == 2
    assert "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if not l.startswith("downloading ")]
    assert lines and lines[0].startswith("nndl") and "error:" in lines[0], err
    return "\n".join(lines)


def test_missing_data_names_every_place(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NNDL_DATA", str(tmp_path / "env-place"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("nndl.data.locate.cache_dir", lambda: tmp_path / "cache")
    code, out, err = run(capsys, "train", "--data", tmp_path / "nowhere")
    err = one_line_error(code, err)
    assert "nowhere" in err


def test_missing_data_without_explicit_path_lists_all_places(capsys, tmp_path, monkeypatch):
    from nndl.data import locate, mnist
    monkeypatch.setenv("NNDL_DATA", str(tmp_path / "env-place"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locate, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(mnist, "DEFAULT_MIRRORS", ("http://127.0.0.1:9/",))
    code, out, err = run(capsys, "evaluate", tmp_path / "m.json")
    one_line_error(code, err)   # the model file is checked first
    from nndl.engine.feedforward import FeedforwardNetwork
    from nndl.engine.modelio import save
    save(FeedforwardNetwork([784, 10]), tmp_path / "m.json")
    code, out, err = run(capsys, "evaluate", tmp_path / "m.json")
    err = one_line_error(code, err)
    assert "env-place" in err and "data/mnist" in err and "cache" in err


def test_corrupt_and_mislabelled_files(capsys, idx_dataset, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in idx_dataset.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    # a file named like MNIST but not MNIST: a checksum error
    code, out, err = run(capsys, "train", "--data", bad)
    assert "checksum" in one_line_error(code, err).lower()
    # a truncated idx file
    labels = bad / (FILES["test_labels"] + ".gz")
    write_idx(labels, np.zeros(300, np.uint8))
    import gzip
    raw = gzip.decompress(labels.read_bytes())[:-10]
    labels.write_bytes(gzip.compress(raw))
    code, out, err = run(capsys, "train", *data_args(bad))
    assert "truncated" in one_line_error(code, err)


@pytest.mark.parametrize("args,match", [
    (["--sizes", "700", "30", "10"], "700 neurons"),
    (["--epochs", "0"], "--epochs"), (["--mini-batch-size", "0"], "--mini-batch-size"),
    (["--eta", "-1"], "--eta"), (["--eta", "0"], "--eta"), (["--lmbda", "-2"], "--lmbda"),
    (["--dropout", "1.5"], "dropout"), (["--cost", "hinge"], "unknown cost"),
    (["--activation", "softmax", "sigmoid"], "softmax"), (["--sizes", "784", "x"], "whole numbers"),
    (["--early-stopping", "3", "--evaluate-on", "none"], "validation"),
])
def test_bad_options(capsys, idx_dataset, args, match):
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--no-progress", *args)
    assert match in one_line_error(code, err)


def test_unreadable_model_files(capsys, idx_dataset, tmp_path):
    (tmp_path / "bad.json").write_text("{ nope")
    code, out, err = run(capsys, "evaluate", tmp_path / "bad.json", *data_args(idx_dataset))
    assert "not valid JSON" in one_line_error(code, err)
    code, out, err = run(capsys, "evaluate", tmp_path / "none.json", *data_args(idx_dataset))
    assert "no such file" in one_line_error(code, err)


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "nndl", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--sizes", "--epochs", "--mini-batch-size", "--eta", "--seed", "--data", "--dtype", "--save"):
        assert option in result.stdout
    assert "784 30 10" in result.stdout and "(default: 30)" in result.stdout


def test_no_help_text_shows_an_empty_default_or_says_its_default_twice():
    from nndl.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(commands.choices) >= 10
    for name, sub in commands.choices.items():
        text = " ".join(sub.format_help().split())
        for empty in ("(default: None)", "(default: False)"):
            assert empty not in text, f"nndl {name} --help shows {empty}"
        for action in sub._actions:
            if action.help and "default" in action.help:
                assert sub.formatter_class(name).\
                    _get_help_string(action).count("default") == action.help.count("default"), (name, action.dest)


def test_history_then_plot(capsys, idx_dataset, tmp_path):
    history = tmp_path / "run.json"
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--epochs", 3, "--sizes", 784, 10, 10,
                         "--cost", "cross-entropy", "--eta", 0.5, "--monitor", "training_cost", "training_accuracy",
                         "evaluation_cost", "evaluation_accuracy", "--history", history, "--no-progress")
    assert code == 0, err
    code, out, err = run(capsys, "plot", history)
    assert code == 0, err
    png = tmp_path / "run.png"
    assert out.strip() == f"Wrote {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run(capsys, "plot", tmp_path / "missing.json")
    one_line_error(code, err)


def test_model_that_does_not_fit_the_data(capsys, idx_dataset, tmp_path):
    from nndl.engine.feedforward import FeedforwardNetwork
    from nndl.engine.modelio import save
    save(FeedforwardNetwork([700, 10]), tmp_path / "m.json")
    code, out, err = run(capsys, "evaluate", tmp_path / "m.json", *data_args(idx_dataset))
    assert "700 neurons" in one_line_error(code, err)
    code, out, err = run(capsys, "train", "--load", tmp_path / "m.json", *data_args(idx_dataset), "--no-progress")
    assert "700 neurons" in one_line_error(code, err)


# --- outputs checked before training; nothing lost after it ---------------------------

@pytest.mark.parametrize("outputs,match", [
    (lambda d: ["--save", d], "--save .* is a directory"),
    (lambda d: ["--save", d / "a.json", "--history", d / "a.json"], "--history and --save would both write"),
    (lambda d: ["--save", d / "file.txt" / "net.json"], "is a file, not a directory"),
    (lambda d: ["--history", f"{d}/sub/"], "is not a file name"),
])
def test_outputs_are_checked_before_training(capsys, idx_dataset, tmp_path, outputs, match):
    (tmp_path / "file.txt").write_text("x")
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--epochs", 1, "--no-progress",
                         *outputs(tmp_path))
    assert code == 2
    assert __import__("re").search(match, err), err
    assert "Epoch" not in out and "Training" not in out           # refused before any work


def test_output_that_is_the_model_being_loaded_is_refused(capsys, idx_dataset, tmp_path):
    model = tmp_path / "net.json"
    assert run(capsys, "train", *data_args(idx_dataset), "--epochs", 1, "--no-progress", "--save", model)[0] == 0
    before = model.read_bytes()
    code, _, err = run(capsys, "train", *data_args(idx_dataset), "--load", model, "--history", model)
    assert code == 2 and "is also an input" in err
    assert model.read_bytes() == before


def test_output_directory_is_created_when_missing(capsys, idx_dataset, tmp_path):
    model = tmp_path / "new" / "dir" / "net.npz"
    code, _, err = run(capsys, "train", *data_args(idx_dataset), "--epochs", 1, "--no-progress", "--save", model)
    assert code == 0, err
    assert model.is_file()


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root may write into read-only directories")
def test_read_only_output_directory_is_refused(capsys, idx_dataset, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--epochs", 1, "--save", locked / "net.json")
    assert code == 2 and "no permission" in err and "Epoch" not in out


def test_a_failed_save_is_rescued_to_a_named_file(capsys, idx_dataset, tmp_path, monkeypatch):
    """Disk full at the end of training: the network goes to a rescue file that the message names."""
    import errno

    import nndl.engine.modelio as modelio
    from nndl.engine.modelio import load
    target = tmp_path / "net.json"
    real_save = modelio.save

    def save(net, path, **kwargs):
        if str(path) == str(target):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(net, path, **kwargs)
    monkeypatch.setattr(modelio, "save", save)
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--epochs", 1, "--no-progress", "--seed", 1,
                         "--save", target)
    assert code == 2
    message = err.strip().splitlines()[-1]
    assert f"could not write the best (epoch 0) network to {target} (No space left on device)" in message
    rescued = message.rsplit("saved it to ", 1)[1].split(" instead")[0]
    assert load(rescued).sizes == [784, 30, 10] and not target.exists()


def test_errors_are_one_line_and_debug_shows_the_cause(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, out, err = run(capsys, "evaluate", bad)
    assert code == 2 and err.count("\n") == 1 and err.startswith("nndl: error:") and str(bad) in err
    code, out, err = run(capsys, "--debug", "evaluate", bad)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("nndl: error:")


def test_a_bug_is_not_disguised_as_a_user_error(capsys, idx_dataset, monkeypatch):
    import nndl.cli.train
    monkeypatch.setattr(nndl.cli.train, "load_data", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["train", *map(str, data_args(idx_dataset))])


def test_sigterm_stops_training_like_ctrl_c_and_saves(idx_dataset, tmp_path):
    import os
    import signal
    model, history = tmp_path / "net.json", tmp_path / "run.json"
    command = [sys.executable, "-u", "-m", "nndl", "train", *map(str, data_args(idx_dataset)), "--epochs", "100000",
               "--save", str(model), "--history", str(history), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    for line in process.stdout:                  # wait for the first finished epoch
        if line.startswith("Epoch 0"):
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Finished (interrupted)" in out and f"to {model}" in out
    assert json.loads(history.read_text())["stop_reason"] == "interrupted"


# --- the lines of a training run: one formatter for train and conv -------------------


def _history(**fields):
    from nndl.training.history import History
    return History(**{"epochs": [0, 1], "eta": [0.5, 0.25], "epoch_time": [1.25, 1.0], "monitor_time": [0.1, 0.1],
                      **fields})


def test_an_epoch_line_says_what_was_measured_in_one_form_for_train_and_conv():
    from nndl.cli._common import epoch_line
    train = _history(evaluation_accuracy=[0.9, 0.95], training_cost=[0.51234, 0.4], n_evaluation=300,
                     best_epoch=1, best_accuracy=0.95)
    assert epoch_line(train, "test") == ("Epoch 1: test accuracy 95.00% (285 / 300)  training cost 0.4000  "
                                         "(best to date)  eta 0.25  [1.00 s]")
    conv = _history(evaluation_accuracy=[0.95, 0.9], test_accuracy=[0.94, 0.92], n_evaluation=200, n_test=300,
                    best_epoch=0, best_accuracy=0.95)
    assert epoch_line(conv, "validation") == ("Epoch 1: validation accuracy 90.00% (180 / 200)  "
                                              "test accuracy 92.00% (276 / 300)  eta 0.25  [1.00 s]")
    costs_only = _history(training_cost=[1.0, 0.5], evaluation_cost=[1.5, 0.75], eta=[0.5, 0.5])
    assert epoch_line(costs_only, "validation") == "Epoch 1: training cost 0.5000  validation cost 0.7500  [1.00 s]"


def test_the_summary_says_why_training_stopped_and_which_epoch_was_best(capsys):
    from nndl.cli._common import print_summary, summary_lines
    conv = _history(evaluation_accuracy=[0.95, 0.9], test_accuracy=[0.94, 0.92], best_epoch=0, best_accuracy=0.95)
    conv.stop("early stopping", "no improvement in validation accuracy for 1 epochs")
    assert summary_lines(conv, "validation") == [
        "Finished (early stopping) after 2 epochs in 2.2 s of training (1.12 s/epoch).",
        "Best: epoch 0, validation accuracy 95.00%; the corresponding test accuracy is 94.00%."]
    print_summary(conv, "validation")
    out, err = capsys.readouterr()
    assert out.endswith("Note: no improvement in validation accuracy for 1 epochs.\n") and err == ""
    diverged = _history(epochs=[0], eta=[100.0], epoch_time=[0.5], training_accuracy=[0.1], best_epoch=0,
                        best_accuracy=0.1)
    diverged.stop("diverged", "training diverged in epoch 1")
    print_summary(diverged, "test")
    out, err = capsys.readouterr()
    assert out == ("Finished (diverged) after 1 epoch in 0.5 s of training (0.50 s/epoch).\n"
                   "Best: epoch 0, training accuracy 10.00%.\n")
    assert err == "Note: training diverged in epoch 1.\n"


def test_the_header_names_the_settings_that_shape_the_run():
    from nndl.cli._common import training_header
    from nndl.training.config import TrainingConfig
    config = TrainingConfig(epochs=3, eta=0.5, lmbda=5.0, momentum=0.9, nesterov=True)
    assert training_header("[784, 30, 10]", ["sigmoid/sigmoid", "cross-entropy cost", "float64"], 50000, config) == (
        "Training [784, 30, 10] (sigmoid/sigmoid, cross-entropy cost, float64) on 50,000 images: 3 epochs, "
        "mini-batch 10, eta 0.5, lambda 5 (l2), momentum 0.9 (Nesterov)")
    book = TrainingConfig(epochs=60, eta=0.03, lmbda=0.1, lmbda_scale="batches", shuffle=False)
    assert training_header("softmax 10", ["7,850 parameters"], 1000, book, where="cpu, 1 thread",
                           extra=["augmented: shifts up to 1 px"]) == (
        "Training softmax 10 (7,850 parameters) on 1,000 images on cpu, 1 thread: 60 epochs, mini-batch 10, "
        "eta 0.03, lambda 0.1 (l2), stored order, augmented: shifts up to 1 px")


# --- nndl train --checkpoint / --resume ---------------------------------------------------------------


def test_train_resumed_from_its_checkpoint_is_the_uninterrupted_run(capsys, idx_dataset, tmp_path):
    settings = ["--sizes", "784", "20", "10", "--eta", 1.0, "--momentum", 0.5, "--dropout", 0.1, "--seed", 4,
                "--evaluate-on", "validation", "--schedule", "halve", "--patience", 1, "--no-progress"]
    code, _, err = run(capsys, "train", *data_args(idx_dataset), *settings, "--epochs", 4,
                       "--history", tmp_path / "full.json")
    assert code == 0, err
    checkpoint = tmp_path / "run.npz"
    code, _, err = run(capsys, "train", *data_args(idx_dataset), *settings, "--epochs", 2, "--checkpoint", checkpoint)
    assert code == 0, err
    code, out, err = run(capsys, "train", "--data", idx_dataset, "--resume", checkpoint, "--epochs", 4,
                         "--history", tmp_path / "resumed.json", "--no-progress")
    assert code == 0, err
    assert out.startswith(f"Resuming {checkpoint} after epoch 1 of 4")
    assert [l.split(":")[0] for l in out.splitlines() if l.startswith("Epoch")] == ["Epoch 2", "Epoch 3"]
    full, resumed = (json.loads((tmp_path / name).read_text()) for name in ("full.json", "resumed.json"))
    for key in ("epochs", "evaluation_accuracy", "eta", "best_epoch", "config"):
        assert resumed[key] == full[key], key


def test_train_resume_refuses_other_settings_in_one_line_and_accepts_the_same(capsys, idx_dataset, tmp_path):
    checkpoint = tmp_path / "run.npz"
    code, _, err = run(capsys, "train", *data_args(idx_dataset), "--sizes", "784", "20", "10", "--epochs", 1,
                       "--eta", 0.5, "--checkpoint", checkpoint, "--no-progress")
    assert code == 0, err
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--resume", checkpoint, "--epochs", 3,
                         "--eta", 0.25, "--sizes", "784", "40", "10", "--no-progress")
    assert code == 2 and out == ""
    assert err.strip() == ("nndl: error: --resume takes the network, the training settings and the data options "
                           "from the checkpoint (only --epochs may change); --eta, --sizes differ from the "
                           "checkpoint's")
    code, out, err = run(capsys, "train", *data_args(idx_dataset), "--resume", checkpoint, "--epochs", 2,
                         "--eta", 0.5, "--sizes", "784", "20", "10", "--no-progress")
    assert code == 0, err
    code, _, err = run(capsys, "train", "--data", idx_dataset, "--resume", tmp_path / "missing.npz")
    assert code == 2 and err.count("\n") == 1 and "missing.npz" in err
    (tmp_path / "model.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    code, _, err = run(capsys, "train", "--data", idx_dataset, "--resume", tmp_path / "model.npz")
    assert code == 2 and err.startswith("nndl: error:") and err.count("\n") == 1


def test_python_m_nndl_cli_runs_the_command_line_as_python_m_nndl_does():
    for module in ("nndl", "nndl.cli"):
        result = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.startswith("nndl "), result.stderr
