"""The experiments registry and ``nndl reproduce``: completeness, the runner's files, resuming, errors, every
quick run."""

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real_mnist_dir

from nndl.errors import ConfigError, OutputError
from nndl.experiments import registry
from nndl.experiments.registry import Context, Experiment, experiments, get, select
from nndl.experiments.runner import reproduce, write_report
from nndl.training.config import Settings

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ROOT.parent / "shared" / "TARGETS.md"

#: Every row of TARGETS.md's tables (its first column, normalised) -> the experiments that reproduce it.
ROWS = {
    "[784,30,10], 30 epochs, eta 3.0": ["ch1-30-hidden"],
    "[784,100,10], 30 epochs, eta 3.0": ["ch1-100-hidden"],
    "[784,100,10], eta 0.001": ["ch1-eta-0.001"],
    "[784,30,10], eta 100.0": ["ch1-eta-100"],
    "[784,10], no hidden layer (exercise)": ["ch1-no-hidden"],
    "baseline: random guess": ["ch1-random"],
    "baseline: average darkness per digit": ["ch1-darkness"],
    "baseline: svm, scikit-learn svc defaults of its day (gamma 'auto')": ["ch1-svm"],
    "[784,30,10], cross-entropy, large (n(0,1)) init, eta 0.5, 30 epochs": ["ch3-ce-30"],
    "[784,100,10], same": ["ch3-ce-100"],
    "overfitting: 1,000 training images, [784,30,10], ce, eta 0.5, lambda 0, 400 epochs": ["ch3-overfit"],
    "same with l2 lambda 0.1": ["ch3-overfit-l2"],
    "50,000 images, [784,30,10], ce, eta 0.5, 30 epochs, lambda 0 / lambda 5.0": ["ch3-unregularised-30",
                                                                                   "ch3-l2-30"],
    "[784,100,10], ce, lambda 5.0, 60 epochs (eta as in the book's listing)": ["ch3-l2-100-60"],
    "weight init, [784,30,10], lambda 5, eta 0.1, 30 epochs, validation acc: default n(0,1/n_in) vs large n(0,1)":
        ["ch3-init-30"],
    "same with [784,100,10]": ["ch3-init-100"],
    "learning rates 0.025 / 0.25 / 2.5, lambda 5, 30 epochs: training cost": ["ch3-learning-rates"],
    "more data: [784,30,10] validation acc vs training size 100 / 1,000 / 10,000 / 50,000 (svm in brackets)":
        ["ch3-more-data"],
    "softmax + log-likelihood": ["ch3-softmax"],
    "l1, dropout, momentum, tanh, relu, early stopping (no-improvement-in-n), learning-rate schedule (halve on "
    "plateau until 1/128 of the start)": ["ch3-l1", "ch3-dropout", "ch3-momentum", "ch3-tanh", "ch3-relu",
                                          "ch3-early-stopping", "ch3-schedule"],
    "fc 100 sigmoid + softmax, eta 0.1, 60 epochs": ["ch6-fc100"],
    "conv 20 maps 5x5 + 2x2 max-pool, fc 100, softmax": ["ch6-conv1"],
    "+ second conv-pool, 40 maps 5x5": ["ch6-conv2"],
    "relu everywhere, eta 0.03, l2 lambda 0.1": ["ch6-relu"],
    "+ training data expanded to 250,000 by 1-pixel shifts": ["ch6-expanded"],
    "fc 300 / fc 1000 instead of fc 100": ["ch6-fc300", "ch6-fc1000"],
    "two fc 100 layers": ["ch6-2fc100", "ch6-2fc300", "ch6-2fc1000"],
    "two fc 1000 layers with dropout 0.5, 40 epochs": ["ch6-dropout"],
    "ensemble of 5 such networks voting": ["ch6-ensemble"],
}
#: What TARGETS and the issue ask for outside the tables.
OTHERS = ["ch1-nand", "ch1-adder", "ch1-sigmoid-limit", "ch1-binary-output", "ch2-gradcheck", "ch2-matrix-speed",
          "ch3-slowdown", "ch4-bumps", "ch4-towers", "ch4-trained", "ch5-speed-init", "ch5-speed-training",
          "ch5-depth-accuracy", "ch5-chain", "ch6-filters", "ch6-misclassified", "hyper-eta-threshold",
          "hyper-search"]


def _target_rows():
    rows = []
    for line in TARGETS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2 and cells[0] not in ("experiment", "---"):
            rows.append(re.sub(r"\s+", " ", cells[0].lower()))
    return rows


@pytest.mark.skipif(not TARGETS.exists(), reason="TARGETS.md is not beside the project")
def test_every_targets_row_has_an_experiment():
    rows = _target_rows()
    assert len(rows) >= 29
    unmapped = [row for row in rows if row not in ROWS]
    assert not unmapped, f"TARGETS rows with no experiment: {unmapped}"
    registered = experiments()
    missing = [i for row in rows for i in ROWS[row] if i not in registered]
    assert not missing


def test_the_registry_holds_the_other_experiments_and_numbers_where_the_book_gives_them():
    registered = experiments()
    assert [i for i in OTHERS if i not in registered] == []
    for i in ("ch1-30-hidden", "ch3-overfit", "ch6-relu", "ch6-ensemble", "ch1-darkness", "ch1-svm"):
        e = registered[i]
        assert e.target is not None and e.tolerance is not None and e.book
    assert registered["ch1-darkness"].target == pytest.approx(0.2225)
    assert registered["ch6-ensemble"].target == pytest.approx(0.9967)
    assert registered["ch6-relu"].tolerance == pytest.approx(0.001)     # 0.1 points above 99%


def test_every_experiment_is_well_formed():
    registered = experiments()
    assert list(registered)[0].startswith("ch1") and list(registered)[-1].startswith("beyond")
    for experiment_id, e in registered.items():
        assert experiment_id == e.id
        assert isinstance(e.config, Settings) and json.dumps(e.config.to_dict())
        assert isinstance(e.settings(quick=True), type(e.config))
        assert callable(e.run) and e.title
        assert set(e.needs) <= {"mnist", "torch", "sklearn"}


def test_listing_the_registry_imports_neither_torch_nor_matplotlib():
    code = ("import sys, nndl.experiments as e; n = len(e.experiments()); "
            "print(n, 'torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 55 and out[1:] == ["False", "False"]


def test_an_unknown_id_names_the_near_matches():
    with pytest.raises(ConfigError, match="ch3-overfit"):
        get("ch3-overfitt")
    with pytest.raises(ConfigError, match="nndl reproduce --list"):
        get("qqq-zzz")


def test_groups_and_all_select_in_the_books_order():
    assert [e.id for e in select(["ch2"])] == ["ch2-gradcheck", "ch2-matrix-speed"]
    chosen = [e.id for e in select(["ch6-relu", "ch1-nand", "ch6-relu"])]
    assert chosen == ["ch1-nand", "ch6-relu"]
    assert len(select(["all"])) == len(experiments())


def test_an_experiment_checks_what_it_is_given():
    config = get("ch1-nand").config
    run = get("ch1-nand").run
    with pytest.raises(ConfigError, match="lower case"):
        Experiment(id="Ch1 Thing", title="x", run=run, config=config)
    with pytest.raises(ConfigError, match="target needs a tolerance"):
        Experiment(id="ch1-thing", title="x", run=run, config=config, target=0.5)
    e = Experiment(id="ch1-thing", title="x", run=run, config=config, target=0.95, tolerance=0.003)
    assert e.within(0.948) and e.within(0.99) and not e.within(0.946)
    lower = Experiment(id="ch1-thing", title="x", run=run, config=config, target=0.1, tolerance=0.0, better="lower")
    assert lower.within(0.01) and not lower.within(0.2)
    assert e.within(None, shown=True) is True


# ---------------------------------------------------------------------------- the runner, with a fake experiment

class Calls:
    count = 0


def _fake_run(config, context):
    Calls.count += 1
    if context.seed == 13:
        raise ConfigError("seed 13 is unlucky")
    return {"value": 0.9 + context.seed / 100, "summary": f"seed {context.seed}", "series": [1, 2, 3]}


def _fake_plot(result, path):
    Path(path).write_bytes(b"\x89PNG fake " + str(len(result["runs"])).encode())


@pytest.fixture
def fake(monkeypatch):
    """A cheap registered experiment, ch1-fake, whose value is 0.9 + seed/100 (book: 0.92 +- 0.005)."""
    experiments()
    e = Experiment(id="ch1-fake", title="a fake", run=_fake_run, config=get("ch1-nand").config, book="92%",
                   target=0.92, tolerance=0.005, plot=_fake_plot)
    monkeypatch.setitem(registry._REGISTRY, "ch1-fake", e)
    Calls.count = 0
    return e


def test_reproduce_writes_each_seed_the_combined_result_the_figure_and_the_report(fake, tmp_path):
    outcome = reproduce(["ch1-fake"], seeds=[1, 2, 3], out=tmp_path, echo=lambda line: None)
    assert outcome.finished == ["ch1-fake"] and outcome.ok
    result = json.loads((tmp_path / "ch1-fake.json").read_text())
    assert result["format"] == "nndl-experiment" and result["seeds"] == [1, 2, 3]
    assert result["median"] == pytest.approx(0.92) and result["spread"] == pytest.approx([0.91, 0.93])
    assert result["within"] is True and result["command"] == "nndl reproduce ch1-fake --seeds 1 2 3"
    assert [r["series"] for r in result["runs"]] == [[1, 2, 3]] * 3
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.json")) == [f"ch1-fake-s{s}.json" for s in (1, 2, 3)]
    assert (tmp_path / "ch1-fake.png").read_bytes().startswith(b"\x89PNG")
    report = (tmp_path / "REPORT.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| ch1-fake"))
    assert "92%" in row and "92.00% (91.00% to 93.00%, 3 seeds)" in row and "| yes |" in row


def test_a_row_of_one_seed_says_so_and_an_unseeded_row_says_nothing(fake, tmp_path):
    reproduce(["ch1-fake"], seeds=[2], out=tmp_path, echo=lambda line: None)
    reproduce(["ch1-nand"], out=tmp_path, echo=lambda line: None)
    rows = {line.split(" | ")[0]: line for line in (tmp_path / "REPORT.md").read_text().splitlines()
            if line.startswith("| ch1-")}
    assert "| 92.00% (1 seed) |" in rows["| ch1-fake"]
    assert "seed" not in rows["| ch1-nand"].split(" | ")[3]


def test_reproduce_skips_what_is_done_resumes_seeds_and_force_runs_again(fake, tmp_path):
    quiet = dict(out=tmp_path, echo=lambda line: None)
    reproduce(["ch1-fake"], seeds=[1, 2], **quiet)
    assert Calls.count == 2
    assert reproduce(["ch1-fake"], seeds=[1, 2], **quiet).skipped == ["ch1-fake"] and Calls.count == 2
    reproduce(["ch1-fake"], seeds=[1, 2, 3], **quiet)             # seeds 1 and 2 are kept: one more run
    assert Calls.count == 3
    assert json.loads((tmp_path / "ch1-fake.json").read_text())["seeds"] == [1, 2, 3]
    reproduce(["ch1-fake"], seeds=[1, 2, 3], force=True, **quiet)
    assert Calls.count == 6
    reproduce(["ch1-fake"], seeds=[1], quick=True, **quiet)       # quick results never stand in for full ones
    assert Calls.count == 7


def test_a_failed_seed_is_reported_and_the_others_are_kept(fake, tmp_path):
    lines = []
    outcome = reproduce(["ch1-fake"], seeds=[1, 13], out=tmp_path, echo=lines.append)
    assert outcome.failed == {"ch1-fake": "seed 13 is unlucky"} and not outcome.ok
    assert (tmp_path / "runs" / "ch1-fake-s1.json").exists() and not (tmp_path / "ch1-fake.json").exists()
    assert any("seed 13 failed: seed 13 is unlucky" in line for line in lines)


def test_an_interrupted_run_keeps_the_finished_seeds_and_resumes(fake, tmp_path, monkeypatch):
    def interrupt_on_seed_2(config, context):
        if context.seed == 2:
            raise KeyboardInterrupt
        return _fake_run(config, context)

    monkeypatch.setitem(registry._REGISTRY, "ch1-fake", dataclasses.replace(fake, run=interrupt_on_seed_2))
    lines = []
    with pytest.raises(KeyboardInterrupt):
        reproduce(["ch1-fake"], seeds=[1, 2], out=tmp_path, echo=lines.append)
    assert "run the same command again" in lines[-1]
    assert (tmp_path / "runs" / "ch1-fake-s1.json").exists()
    monkeypatch.setitem(registry._REGISTRY, "ch1-fake", fake)
    Calls.count = 0
    reproduce(["ch1-fake"], seeds=[1, 2], out=tmp_path, echo=lambda line: None)
    assert Calls.count == 1 and (tmp_path / "ch1-fake.json").exists()


def test_an_output_directory_that_cannot_be_written_is_refused_before_any_run(fake, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError):
        reproduce(["ch1-fake"], seeds=[1], out=blocker / "results", echo=lambda line: None)
    assert Calls.count == 0
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError):
            reproduce(["ch1-fake"], seeds=[1], out=locked, echo=lambda line: None)


def test_a_missing_library_is_said_before_any_run(fake, monkeypatch, tmp_path):
    monkeypatch.setitem(registry._REGISTRY, "ch1-fake", dataclasses.replace(fake, needs=("sklearn",)))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    from nndl.errors import MissingDependencyError
    with pytest.raises(MissingDependencyError, match="pip install scikit-learn"):
        reproduce(["ch1-fake"], seeds=[1], out=tmp_path, echo=lambda line: None)
    assert Calls.count == 0


def test_the_report_is_rebuilt_from_the_results_in_the_directory(fake, tmp_path):
    reproduce(["ch1-fake"], seeds=[1], out=tmp_path, echo=lambda line: None)
    (tmp_path / "REPORT.md").unlink()
    (tmp_path / "notes.json").write_text('{"something": "else"}')
    report = write_report(tmp_path).read_text()
    assert report.count("| ch1-fake |") == 1 and "**no**" in report        # 91% is outside 92 +- 0.5


def _epochs_run(config, context):
    Calls.count += 1
    return {"value": 0.9 + config.train.epochs / 1000, "summary": f"{config.train.epochs} epochs"}


@pytest.fixture
def trained(monkeypatch):
    """A fake experiment, ch1-trained, with a book configuration of 30 epochs; its value is 0.9 + epochs/1000."""
    experiments()
    e = Experiment(id="ch1-trained", title="a fake that trains", run=_epochs_run, config=get("ch1-30-hidden").config,
                   book="93%", target=0.93, tolerance=0.005)
    monkeypatch.setitem(registry._REGISTRY, "ch1-trained", e)
    Calls.count = 0
    return e


def test_fewer_epochs_are_kept_apart_not_compared_and_give_way_to_the_books_run(trained, tmp_path):
    quiet = dict(out=tmp_path, echo=lambda line: None)
    reproduce(["ch1-trained"], seeds=[1, 2], epochs=2, **quiet)
    assert Calls.count == 2
    short = json.loads((tmp_path / "ch1-trained-e2.json").read_text())
    assert short["median"] == pytest.approx(0.902) and short["within"] is None
    assert short["epochs"] == 2 and short["book_epochs"] == 30 and short["config"]["train"]["epochs"] == 2
    assert short["command"] == "nndl reproduce ch1-trained --seeds 1 2 --epochs 2"
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.json")) == ["ch1-trained-s1-e2.json",
                                                                           "ch1-trained-s2-e2.json"]
    assert not (tmp_path / "ch1-trained.json").exists()
    row = next(line for line in (tmp_path / "REPORT.md").read_text().splitlines() if line.startswith("| ch1-trained"))
    assert "not compared: 2 of 30 epochs" in row and "--epochs 2" in row
    assert "was trained for N epochs instead of the book's M" in (tmp_path / "REPORT.md").read_text()
    assert reproduce(["ch1-trained"], seeds=[1, 2], epochs=2, **quiet).skipped == ["ch1-trained"]
    reproduce(["ch1-trained"], seeds=[1, 2], epochs=5, **quiet)             # a longer one: shown instead
    assert Calls.count == 4 and "not compared: 5 of 30" in (tmp_path / "REPORT.md").read_text()
    reproduce(["ch1-trained"], seeds=[1, 2], **quiet)                       # the book's own: shown, compared
    assert Calls.count == 6 and (tmp_path / "ch1-trained-e2.json").exists()
    report = (tmp_path / "REPORT.md").read_text()
    assert report.count("| ch1-trained |") == 1 and "not compared" not in report and "| yes |" in report
    assert "instead of the book's" not in report
    assert reproduce(["ch1-trained"], seeds=[1, 2], epochs=30, **quiet).skipped == ["ch1-trained"]  # = the book's


def test_epochs_are_refused_for_experiments_that_do_not_train_for_epochs(trained, tmp_path):
    with pytest.raises(ConfigError, match="ch1-nand, ch1-adder"):
        reproduce(["ch1-adder", "ch1-nand", "ch1-trained"], seeds=[1], epochs=3, out=tmp_path, echo=print)
    with pytest.raises(ConfigError):
        reproduce(["ch1-trained"], seeds=[1], epochs=0, out=tmp_path, echo=print)
    assert Calls.count == 0


def test_filters_misclassified_and_ensemble_share_the_checkpoints_of_their_rungs():
    from nndl.experiments.ch6 import _as_run_of, _rung_of
    for own, rung in (("ch6-filters", "ch6-conv1"), ("ch6-misclassified", "ch6-relu")):
        for quick in (False, True):
            assert get(own).settings(quick).to_dict() == get(rung).settings(quick).to_dict()
        context = Context(seed=2, name=f"{own}-s2-quick", work_dir="w")
        shared = _as_run_of(context, rung)
        assert shared.name == f"{rung}-s2-quick"
        assert shared.checkpoint_path() == str(Path("w") / f"{rung}-s2-quick.ckpt")
    ensemble = get("ch6-ensemble")
    for quick, epochs in ((False, None), (True, None), (False, 4)):
        assert _rung_of(ensemble.settings(quick, epochs).replace(members=1)) == "ch6-dropout"
    assert _rung_of(get("ch6-relu").config.replace(expanded=True)) == "ch6-expanded"
    assert _as_run_of(Context(seed=2, name="ch6-ensemble-s2"), "ch6-dropout", 7).name == "ch6-dropout-s7"


def test_the_ensembles_members_are_the_dropout_rungs_networks(tmp_path):
    reason = _can_run(get("ch6-ensemble"))
    if reason:
        pytest.skip(reason)
    data = str(real_mnist_dir())
    quiet = dict(quick=True, out=tmp_path, data_dir=data, echo=lambda line: None)
    assert reproduce(["ch6-ensemble"], seeds=[1], **quiet).ok
    checkpoints = sorted(p.name for p in (tmp_path / "runs" / "checkpoints").iterdir())
    assert checkpoints == ["ch6-dropout-s1-quick.ckpt", "ch6-dropout-s2-quick.ckpt"]
    stamps = [p.stat().st_mtime_ns for p in sorted((tmp_path / "runs" / "checkpoints").iterdir())]
    assert reproduce(["ch6-dropout"], seeds=[1, 2], **quiet).ok          # from those checkpoints: no training
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "runs" / "checkpoints").iterdir())] == stamps
    members = json.loads((tmp_path / "ch6-ensemble.json").read_text())["runs"][0]["members"]
    dropout = json.loads((tmp_path / "ch6-dropout.json").read_text())["runs"]
    assert [m["test_accuracy"] for m in members] == [r["value"] for r in dropout]
    row = next(line for line in (tmp_path / "REPORT.md").read_text().splitlines() if line.startswith("| ch6-ensemble"))
    best, median = max(m["test_accuracy"] for m in members), sum(m["test_accuracy"] for m in members) / 2
    assert f"(1 ensemble of 2; the networks alone: best {100 * best:.2f}%, median {100 * median:.2f}%)" in row
    for member in members + dropout:          # every epoch's time, also of epochs trained before a resume
        assert member["training_seconds"] == pytest.approx(sum(member["history"]["epoch_time"]))
        assert member["training_seconds"] > 0


def test_neighbour_correlation_tells_spatial_structure_from_noise():
    import numpy as np

    from nndl.experiments.ch6 import neighbour_correlation
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(200, 5, 5))
    assert abs(neighbour_correlation(noise)) < 0.1
    y, x = np.mgrid[0:5, 0:5]
    edges = np.stack([np.cos(a) * x + np.sin(a) * y for a in rng.uniform(0, 2 * np.pi, 20)])   # ramps: smooth
    assert neighbour_correlation(edges + 0.1 * rng.normal(size=edges.shape)) > 0.8
    checkers = np.stack([(-1.0) ** (x + y)] * 5)
    assert neighbour_correlation(checkers) == pytest.approx(-1.0)


def test_a_chapter6_checkpoint_goes_on_for_more_epochs_and_is_not_overwritten_by_fewer(tmp_path):
    pytest.importorskip("torch")
    import numpy as np
    import torch

    from nndl.experiments.ch6 import train_conv
    rng = np.random.default_rng(0)
    data = [(torch.tensor(rng.random((n, 784)), dtype=torch.float32), torch.tensor(rng.integers(0, 10, n)))
            for n in (60, 30, 30)]
    config = get("ch6-conv1").settings(quick=True)
    context = Context(seed=1, name="ch6-conv1-s1", work_dir=str(tmp_path))
    net, fresh = train_conv(config.replace(train=config.train.replace(epochs=3)), Context(seed=1), 1, data)
    _, short = train_conv(config.replace(train=config.train.replace(epochs=2)), context, 1, data)
    resumed, longer = train_conv(config.replace(train=config.train.replace(epochs=3)), context, 1, data)
    assert len(short.epochs) == 2 and len(longer.epochs) == 3
    assert longer.evaluation_accuracy == fresh.evaluation_accuracy and longer.test_accuracy == fresh.test_accuracy
    for a, b in zip(net.parameters(), resumed.parameters()):
        assert torch.equal(a, b)                                    # the same network, epoch 3 on from epoch 2
    before = (tmp_path / "ch6-conv1-s1.ckpt").read_bytes()
    with pytest.raises(ConfigError, match="holds 3 epochs"):
        train_conv(config.replace(train=config.train.replace(epochs=2)), context, 1, data)
    assert (tmp_path / "ch6-conv1-s1.ckpt").read_bytes() == before


def test_context_checkpoint_paths(tmp_path):
    assert Context().checkpoint_path() is None
    context = Context(name="ch6-relu-s1", work_dir=str(tmp_path / "w"))
    assert context.checkpoint_path("-m2") == str(tmp_path / "w" / "ch6-relu-s1-m2.ckpt")


def test_the_device_reaches_every_run_and_a_chapter6_network(fake, monkeypatch, tmp_path):
    devices = []

    def run(config, context):
        devices.append(context.device)
        return _fake_run(config, context)

    monkeypatch.setitem(registry._REGISTRY, "ch1-fake", dataclasses.replace(fake, run=run))
    reproduce(["ch1-fake"], seeds=[1, 2], out=tmp_path / "a", device="cuda:3", echo=lambda line: None)
    reproduce(["ch1-fake"], seeds=[1], out=tmp_path / "b", echo=lambda line: None)
    assert devices == ["cuda:3", "cuda:3", None]
    pytest.importorskip("torch")
    from nndl.experiments.ch6 import train_conv
    with pytest.raises(ConfigError, match="'no-such-device'"):          # the network is built on the device
        train_conv(get("ch6-fc100").settings(quick=True), Context(seed=1, device="no-such-device"), 1, None)


# ---------------------------------------------------------------------------- the command line

def _nndl(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nndl", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_cli_lists_runs_and_plots_again(tmp_path):
    listing = _nndl("reproduce", "--list")
    assert listing.returncode == 0 and "ch3-overfit" in listing.stdout and "82.27%" in listing.stdout
    unknown = _nndl("reproduce", "ch3-overfitt")
    assert unknown.returncode == 2 and "did you mean ch3-overfit" in unknown.stderr
    assert _nndl("reproduce").returncode == 2
    done = _nndl("reproduce", "ch1-nand", "ch1-adder", "--out", str(tmp_path), "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert "Report:" in done.stdout and (tmp_path / "ch1-adder.png").stat().st_size > 1000
    again = _nndl("reproduce", "ch1-nand", "--out", str(tmp_path))
    assert "already done" in again.stdout
    redraw = _nndl("plot", str(tmp_path / "ch1-nand.json"), "-o", str(tmp_path / "again.png"))
    assert redraw.returncode == 0 and (tmp_path / "again.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------- every experiment's quick run

def _can_run(e):
    if "mnist" in e.needs and real_mnist_dir() is None:
        return "the real MNIST files were not found (set NNDL_DATA)"
    for need, module in (("torch", "torch"), ("sklearn", "sklearn")):
        if need in e.needs and importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


@pytest.mark.parametrize("experiment_id", list(experiments()))
def test_every_quick_run_writes_valid_json_and_a_png(experiment_id, tmp_path):
    e = get(experiment_id)
    reason = _can_run(e)
    if reason:
        pytest.skip(reason)
    data = real_mnist_dir()
    outcome = reproduce([experiment_id], seeds=[1], quick=True, out=tmp_path, echo=lambda line: None,
                        data_dir=str(data) if data else None)
    assert outcome.ok, outcome.failed
    result = json.loads((tmp_path / f"{experiment_id}.json").read_text())
    assert result["quick"] is True and result["id"] == experiment_id and len(result["runs"]) == 1
    run = result["runs"][0]
    assert run.get("value") is not None or run.get("shown") is not None or run.get("summary")
    if e.plot is not None:
        assert (tmp_path / f"{experiment_id}.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_input_is_one_plain_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for args, needle in ((["ch1-nand", "--out", str(blocker / "out")], "--out"),
                         (["ch1-nand", "--jobs", "0"], "--jobs"),
                         (["ch1-nand", "--seeds", "one"], "--seeds"),
                         (["ch6-relu", "--epochs", "0"], "--epochs"),
                         (["ch6-relu", "ch1-nand", "--epochs", "3", "--out", str(tmp_path / "o")],
                          "these do not: ch1-nand")):
        result = _nndl("reproduce", *args)
        assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nndl-experiment", "version": 99, "id": "ch1-nand"}')
    result = _nndl("plot", str(bad), "-o", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "newer nndl" in result.stderr


def test_together_trains_the_seeds_of_a_rung_at_once_with_the_same_results(tmp_path):
    e = get("ch6-relu")
    reason = _can_run(e)
    if reason:
        pytest.skip(reason)
    data = str(real_mnist_dir())
    apart = reproduce(["ch6-relu"], seeds=[1, 2], quick=True, out=tmp_path / "apart", echo=lambda line: None,
                      data_dir=data)
    lines = []
    together = reproduce(["ch6-relu"], seeds=[1, 2], quick=True, out=tmp_path / "together", echo=lines.append,
                         data_dir=data, together=True)
    assert apart.ok and together.ok and "ch6-relu: seeds 1 2 trained together" in lines
    assert (tmp_path / "together" / "runs" / "checkpoints" / "ch6-relu-s1-2-quick.ckpt").exists()
    for seed in (1, 2):
        a, b = (json.loads((tmp_path / where / "runs" / f"ch6-relu-s{seed}.json").read_text())
                for where in ("apart", "together"))
        assert a["value"] == b["value"] and a["history"]["evaluation_accuracy"] == b["history"]["evaluation_accuracy"]
        assert a["history"]["config"]["seed"] == b["history"]["config"]["seed"] == seed
