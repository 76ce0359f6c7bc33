"""nndl reproduce --status: where checkpointed runs stand, read from their files."""

import pytest

torch = pytest.importorskip("torch")

from nndl.cli import main  # noqa: E402
from nndl.deep.config import ConvNetConfig  # noqa: E402
from nndl.deep.multi import train_many  # noqa: E402
from nndl.deep.network import ConvNetwork  # noqa: E402
from nndl.deep.train import train  # noqa: E402
from nndl.experiments.status import format_status, run_status  # noqa: E402
from nndl.training.config import TrainingConfig  # noqa: E402

NET = ConvNetConfig(layers=({"type": "conv-pool", "filters": 2, "filter": 3, "pool": 2},
                            {"type": "softmax", "n_out": 2}), input_shape=(1, 8, 8))


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 2, (n,), generator=g)


def checkpoint(folder, name, epochs, planned, seed=1):
    """A run of ``planned`` epochs stopped after ``epochs`` (its checkpoint is what that leaves)."""
    config = TrainingConfig(epochs=epochs, mini_batch_size=5, eta=0.1, seed=seed)
    train(ConvNetwork(NET, seed=seed), data(20, 1), config, validation_data=data(10, 2), test_data=data(10, 3),
          checkpoint=str(folder / f"{name}.ckpt"), checkpoint_metadata={"experiment": name, "seed": seed})
    return config.replace(epochs=planned)


@pytest.fixture
def out(tmp_path):
    (tmp_path / "runs" / "checkpoints").mkdir(parents=True)
    return tmp_path


def test_each_checkpoint_says_its_epochs_best_accuracies_and_time_left(out):
    folder = out / "runs" / "checkpoints"
    checkpoint(folder, "ch6-fake-s1", epochs=2, planned=2)
    checkpoint(folder, "ch6-fake-s2", epochs=3, planned=3, seed=2)
    (out / "runs" / "ch6-fake-s1.json").write_text("{}")
    (out / "runs" / "ch6-fake-s2-e2.json").write_text("{}")       # a result of 2 epochs is not one of 3
    rows = run_status(out)
    assert [r.name for r in rows] == ["ch6-fake-s1", "ch6-fake-s2"]
    assert [(r.epochs_done, r.epochs_planned, r.finished, r.result_written) for r in rows] == \
        [(2, 2, True, True), (3, 3, True, False)]
    assert all(r.best_epoch is not None and 0 <= r.best_validation <= 1 and r.seconds_per_epoch > 0 for r in rows)
    lines = format_status(rows, out)
    assert "2 of 2 epochs" in lines[0] and "finished" in lines[0] and "record its result" not in lines[0]
    assert "run the same reproduce command to record its result" in lines[1]


def test_an_unfinished_run_gets_the_time_left_at_its_pace(out):
    assert run_status(out) == []
    checkpoint(out / "runs" / "checkpoints", "ch6-fake-s1", epochs=1, planned=1)
    (status,) = run_status(out)
    status.epochs_planned = 5                             # as if the command had asked for 5
    assert not status.finished and status.seconds_left == pytest.approx(4 * status.seconds_per_epoch)
    lines = format_status([status], out)
    assert "1 of 5 epochs" in lines[0] and "an epoch, about" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("1 of 1 run(s) not finished")


def test_a_members_checkpoint_lists_each_member(out):
    nets = [ConvNetwork(NET, seed=s) for s in (1, 2)]
    train_many(nets, data(20, 1), TrainingConfig(epochs=1, mini_batch_size=5, eta=0.1), seeds=[1, 2],
               validation_data=data(10, 2), checkpoint=str(out / "runs" / "checkpoints" / "ch6-fake-s1-2.ckpt"),
               checkpoint_metadata={"experiment": "ch6-fake-s1-2"})
    rows = run_status(out)
    assert [r.name for r in rows] == ["ch6-fake-s1-2 member 1", "ch6-fake-s1-2 member 2"]
    assert all(r.epochs_done == 1 and r.finished for r in rows)


def test_a_damaged_checkpoint_is_one_line_and_the_others_still_show(out, capsys):
    checkpoint(out / "runs" / "checkpoints", "ch6-fake-s1", epochs=1, planned=1)
    (out / "runs" / "checkpoints" / "ch6-fake-s2.ckpt").write_bytes(b"not a zip file")
    assert main(["reproduce", "--status", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ch6-fake-s1 ") and "1 of 1 epochs" in lines[0]
    assert lines[1].startswith("ch6-fake-s2 ") and "unreadable:" in lines[1] and len(lines) == 2


def test_no_checkpoints_says_so(tmp_path, capsys):
    assert main(["reproduce", "--status", "--out", str(tmp_path)]) == 0
    assert "no checkpoints in" in capsys.readouterr().out


def test_a_folder_that_does_not_exist_is_an_error_not_an_empty_status(tmp_path, capsys):
    assert main(["reproduce", "--status", "--out", str(tmp_path / "typo")]) == 2
    err = capsys.readouterr().err
    assert "no folder" in err and "typo" in err


def test_a_run_being_trained_says_which_process_trains_it_and_one_in_its_first_epoch_is_listed(out):
    import subprocess
    import sys
    import textwrap
    folder = out / "runs" / "checkpoints"
    checkpoint(folder, "ch6-fake-s1", epochs=1, planned=1)
    checkpoint(folder, "ch6-fake-s2", epochs=1, planned=1, seed=2)
    code = textwrap.dedent(f"""
        import sys
        from nndl.files.lock import sole_writer
        with sole_writer({str(folder / "ch6-fake-s1.ckpt")!r}), sole_writer({str(folder / "ch6-fake-s3.ckpt")!r}):
            print("held", flush=True)
            sys.stdin.read()
    """)
    trainer = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert trainer.stdout.readline().strip() == "held"
        rows = run_status(out)
        assert [(r.name, r.epochs_done, r.training_pid) for r in rows] == \
            [("ch6-fake-s1", 1, trainer.pid), ("ch6-fake-s2", 1, None), ("ch6-fake-s3", 0, trainer.pid)]
        rows[0].epochs_planned = 5
        lines = format_status(rows, out)
        assert lines[0].endswith(f"left; training now (process {trainer.pid})")
        assert "training" not in lines[1]
        assert lines[2].startswith("ch6-fake-s3 ")
        assert lines[2].endswith(f"training its first epoch (process {trainer.pid})")
    finally:
        trainer.kill()
        trainer.wait()
    # killed outright: its lock files stay, but nothing holds them, so nothing is "training now"
    assert (folder / "ch6-fake-s1.ckpt.lock").exists()
    assert [(r.name, r.training_pid) for r in run_status(out)] == [("ch6-fake-s1", None), ("ch6-fake-s2", None)]


def test_a_run_of_fewer_epochs_than_the_books_is_recorded_under_its_own_name(out):
    checkpoint(out / "runs" / "checkpoints", "ch6-fake-s1", epochs=2, planned=2)
    assert not run_status(out)[0].result_written
    (out / "runs" / "ch6-fake-s1-e2.json").write_text("{}")              # as nndl reproduce --epochs 2 names it
    (status,) = run_status(out)
    assert status.finished and status.result_written
    assert "record its result" not in format_status([status], out)[0]
