"""nndl conv, nndl ensemble and nndl evaluate on convolutional models, on a small synthetic idx data set."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import default_sigint
from test_cli import data_args, run

SMALL = ["--conv", "6:5:2", "--fc", "20", "--activation", "relu", "--epochs", 2, "--eta", 0.05, "--threads", 1,
         "--device", "cpu", "--no-progress"]


def test_list_presets_shows_every_rung_with_the_books_result(capsys):
    code, out, _ = run(capsys, "conv", "--list-presets")
    assert code == 0
    for name, book in [("fc100", "97.80%"), ("conv1", "98.78%"), ("conv2", "99.06%"), ("relu", "99.23%"),
                       ("expanded", "99.37%"), ("dropout", "99.60%"), ("ensemble", "99.67%")]:
        assert name in out and book in out


def test_train_save_evaluate_and_vote(capsys, idx_dataset, tmp_path):
    model, history = tmp_path / "net.pt", tmp_path / "h.json"
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), *SMALL, "--seed", 1, "--save", model,
                         "--history", history)
    assert code == 0, err
    assert "conv-pool 6 5x5/2x2 relu -> fully-connected 20 relu -> softmax 10" in out
    assert "Epoch 1: validation accuracy" in out and "the corresponding test accuracy is" in out
    saved = json.loads(history.read_text())
    assert saved["network"]["layers"][0]["filters"] == 6 and saved["config"]["shuffle"] is True
    code, out, _ = run(capsys, "evaluate", model, *data_args(idx_dataset))
    accuracy = saved["test_accuracy"][saved["epochs"].index(saved["best_epoch"])]
    assert code == 0 and f"test accuracy: {accuracy:.2%}" in out
    other = tmp_path / "other.pt"
    assert run(capsys, "conv", *data_args(idx_dataset), *SMALL, "--seed", 2, "--save", other)[0] == 0
    votes = tmp_path / "votes.json"
    code, out, _ = run(capsys, "ensemble", model, other, model, *data_args(idx_dataset), "--device", "cpu",
                       "--json", votes)
    assert code == 0 and "majority vote of 3" in out and "average of the probabilities" in out
    written = json.loads(votes.read_text())
    assert f"majority vote of 3: {written['vote']:.2%}" in out and len(written["members"]) == 3
    assert written["members"][0] == written["members"][2] == pytest.approx(accuracy)


def test_a_preset_with_changes_and_the_book_style(capsys, idx_dataset, tmp_path):
    history = tmp_path / "h.json"
    code, out, err = run(capsys, "conv", "--preset", "dropout", *data_args(idx_dataset), "--fc", 30, "--epochs", 1,
                         "--no-expand", "--threads", 1, "--device", "cpu", "--history", history)
    assert code == 0, err
    saved = json.loads(history.read_text())
    layers = saved["network"]["layers"]
    assert [layer.get("n_out") for layer in layers] == [None, None, 30, 10]
    assert layers[2]["p_dropout"] == 0.5 and layers[3]["p_dropout"] == 0.5
    assert saved["network"]["dropout"] == "book" and saved["config"]["shuffle"] is False
    assert saved["config"]["lmbda_scale"] == "batches" and saved["n_training"] == 1000


def test_resume_continues_to_the_same_result(capsys, idx_dataset, tmp_path):
    checkpoint, first, second = tmp_path / "run.ckpt", tmp_path / "a.pt", tmp_path / "b.pt"
    common = [*data_args(idx_dataset), "--conv", "4:5:2", "--fc", "10", "--dropout", 0.2, "--momentum", 0.5,
              "--threads", 1, "--device", "cpu", "--seed", 3, "--no-progress"]
    assert run(capsys, "conv", *common, "--epochs", 3, "--save", first)[0] == 0
    assert run(capsys, "conv", *common, "--epochs", 1, "--checkpoint", checkpoint)[0] == 0
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), "--resume", checkpoint, "--epochs", 3,
                         "--threads", 1, "--device", "cpu", "--save", second, "--no-progress")
    assert code == 0, err
    assert "Resuming" in out and "Epoch 2:" in out and "Epoch 0:" not in out
    a = torch.load(first, weights_only=True)["parameters"]
    b = torch.load(second, weights_only=True)["parameters"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("options, message", [
    (["--device", "cuda"], "use --device cpu"),
    (["--conv", "20x5"], "--conv takes FILTERS:SIZE:POOL"),
    (["--dropout", "1.0"], r"must be in \[0, 1\)"),
    (["--preset", "lenet"], "unknown preset 'lenet'; choose one of: fc100"),
    (["--conv", "20:30:2"], "does not fit its 28x28 input"),
    (["--conv", "20:5:30"], "pooling does not fit"),
    (["--mini-batch-size", "5000"], "larger than the 1000 training images"),
    (["--elastic", "-1", "4"], "elastic"),
])
def test_bad_options_are_one_line_errors(capsys, idx_dataset, options, message):
    if options[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), "--epochs", 1, "--threads", 1, *options)
    assert code == 2
    assert err.startswith("nndl: error:") and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(message, err), err


def test_resuming_from_a_model_or_a_damaged_file_is_refused(capsys, idx_dataset, tmp_path):
    model = tmp_path / "net.pt"
    assert run(capsys, "conv", *data_args(idx_dataset), *SMALL, "--epochs", 1, "--save", model)[0] == 0
    code, _, err = run(capsys, "conv", *data_args(idx_dataset), "--resume", model)
    assert code == 2 and "is a model, not a checkpoint" in err
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(model.read_bytes()[:500])
    code, _, err = run(capsys, "conv", *data_args(idx_dataset), "--resume", damaged)
    assert code == 2 and "is not an nndl convolutional model" in err
    code, _, err = run(capsys, "evaluate", damaged, *data_args(idx_dataset))
    assert code == 2 and "nndl: error:" in err


def test_ctrl_c_saves_what_was_asked_and_keeps_the_last_checkpoint(idx_dataset, tmp_path):
    model, checkpoint = tmp_path / "net.pt", tmp_path / "run.ckpt"
    command = [sys.executable, "-m", "nndl", "conv", *map(str, data_args(idx_dataset)), "--conv", "4:5:2",
               "--fc", "10", "--epochs", "1000", "--threads", "1", "--device", "cpu", "--no-progress",
               "--save", str(model), "--checkpoint", str(checkpoint)]
    env = dict(os.environ, PYTHONFAULTHANDLER="1")       # SIGABRT then prints where it was
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checkpoint.exists(), "no checkpoint was written"
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            out, err = process.communicate(timeout=30)
            pytest.fail(f"Ctrl-C did not stop training within 120 s\n--- stdout\n{out}\n--- stderr\n{err}")
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Finished (interrupted)" in out and "Saved the best network" in out
    from nndl.deep.checkpoint import load_checkpoint, load_model
    load_model(model)
    _, state, _ = load_checkpoint(checkpoint)
    assert state["epoch"] >= 0
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "temporary files left behind"


def test_show_augmentation_writes_a_figure(capsys, idx_dataset, tmp_path):
    figure = tmp_path / "aug.png"
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), "--shift", 2, "--rotate", 10, "--elastic", 8, 3,
                         "--show-augmentation", figure, "--threads", 1)
    assert code == 0, err
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- several seeds at once ----------------------------------------------------------------------------


def test_seeds_train_each_network_as_its_seed_alone_and_vote(capsys, idx_dataset, tmp_path):
    alone = tmp_path / "alone.json"
    code, _, err = run(capsys, "conv", *data_args(idx_dataset), *SMALL, "--seed", 2, "--history", alone)
    assert code == 0, err
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), *SMALL, "--seeds", 1, 2, "--vote",
                         "--save", tmp_path / "net.pt", "--history", tmp_path / "h.json")
    assert code == 0, err
    assert "2 networks at once, seeds 1 2" in out
    assert "seed 1: Epoch 0:" in out and "seed 2: Epoch 1:" in out
    assert "Vote of the 2 networks on the 300 test images:" in out
    for seed in (1, 2):
        assert (tmp_path / f"net-s{seed}.pt").exists()
    together = json.loads((tmp_path / "h-s2.json").read_text())
    separate = json.loads(alone.read_text())
    assert together["evaluation_accuracy"] == separate["evaluation_accuracy"]
    assert together["config"]["seed"] == 2
    code, out, _ = run(capsys, "ensemble", tmp_path / "net-s1.pt", tmp_path / "net-s2.pt", *data_args(idx_dataset))
    assert code == 0


def test_seeds_resume_from_one_checkpoint_to_the_same_result(capsys, idx_dataset, tmp_path):
    settings = [*SMALL[:SMALL.index("--epochs")], *SMALL[SMALL.index("--eta"):]]
    code, _, err = run(capsys, "conv", *data_args(idx_dataset), *settings, "--epochs", 3, "--seeds", 4, 5,
                       "--history", tmp_path / "full.json")
    assert code == 0, err
    checkpoint = tmp_path / "run.ckpt"
    code, _, err = run(capsys, "conv", *data_args(idx_dataset), *settings, "--epochs", 1, "--seeds", 4, 5,
                       "--checkpoint", checkpoint)
    assert code == 0, err
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), "--resume", checkpoint, "--epochs", 3,
                         "--history", tmp_path / "resumed.json", "--threads", 1, "--no-progress")
    assert code == 0, err
    assert "Resuming" in out and "(seeds 4 5)" in out
    for seed in (4, 5):
        full, resumed = (json.loads((tmp_path / f"{name}-s{seed}.json").read_text()) for name in ("full", "resumed"))
        assert resumed["evaluation_accuracy"] == full["evaluation_accuracy"]
        assert resumed["test_accuracy"] == full["test_accuracy"]


@pytest.mark.parametrize("options, message", [
    (["--seeds", 1, 1, 2], "--seeds must differ from each other; repeated: 1"),
    (["--seeds", 1, 2, "--seed", 3], "either --seed"),
    (["--seed", 3, "--vote"], "--vote needs several networks"),
    (["--seeds", 1, 2, "--shift", 1], "augmentation"),
])
def test_seeds_refuse_what_cannot_mean_anything_in_one_line(capsys, idx_dataset, options, message):
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), *SMALL, *options)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_seeds_that_are_not_numbers_are_refused(capsys, idx_dataset):
    code, out, err = run(capsys, "conv", *data_args(idx_dataset), *SMALL, "--seeds", 1, "two")
    assert code == 2 and "invalid int value: 'two'" in err
