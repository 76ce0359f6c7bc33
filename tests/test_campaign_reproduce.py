"""A bad-input campaign for ``nndl reproduce`` and the JSON files nndl reads back.

Every result file ``nndl reproduce`` finds in its output directory -- a seed's
``runs/ID-sS.json``, an experiment's ``ID.json`` -- is checked before it is
used: its format and version, the id, seed, quick and configuration it claims,
the types of its fields, finite numbers, a median that is the median of its
runs. A damaged one is said in one line and that seed is run again (or the
seeds combined again); it never reaches the median or REPORT.md, and never
ends in a traceback. Training histories fed to ``History.load`` and
``nndl plot`` are mutated the same way. Then: ``--seeds`` that cannot be
seeds, ensembles whose members cannot vote together, and ``kill -9`` in the
middle of each write of ``nndl reproduce``.

The experiment run is a fake one registered for the test (``ch1-fake``, value
0.9 + seed/100, book 92% +- 0.5), so that each case takes milliseconds.
"""

import copy
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nndl.cli import main
from nndl.errors import ConfigError, FileFormatError, InputError
from nndl.experiments import registry
from nndl.experiments.registry import Experiment, experiments, get
from nndl.experiments.runner import check_seeds, load_result, reproduce, write_report
from nndl.files.header import MAX_DEPTH, parse_json
from nndl.training.history import History

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = (TypeError, AttributeError, KeyError, IndexError, RecursionError, MemoryError)
ERROR_LINE = re.compile(r"nndl(?: [a-z]+)?: error: \S")
DELETE = object()
#: The report's row of ch1-fake run with seeds 1 2 3: what a damaged file must never change.
ROW = "92.00% (91.00% to 93.00%, 3 seeds)"


# ---------------------------------------------------------------------------- the fake experiments

class Calls:
    seeds: list = []


def _fake_run(config, context):
    Calls.seeds.append(context.seed)
    return {"value": 0.9 + context.seed / 100, "summary": f"seed {context.seed}", "series": [1, 2, 3]}


def _fake_once(config, context):
    Calls.seeds.append(context.seed)
    return {"value": None, "shown": True, "summary": "shown"}


def _fake_plot(result, path):
    Path(path).write_bytes(b"\x89PNG fake " + str(len(result["runs"])).encode())


@pytest.fixture
def fake(monkeypatch):
    """ch1-fake (seeded, book 92% +- 0.5) and ch1-fakeonce (deterministic, no number: shown or not)."""
    experiments()
    config = get("ch1-nand").config
    monkeypatch.setitem(registry._REGISTRY, "ch1-fake", Experiment(
        id="ch1-fake", title="a fake", run=_fake_run, config=config, book="92%", target=0.92, tolerance=0.005,
        plot=_fake_plot))
    monkeypatch.setitem(registry._REGISTRY, "ch1-fakeonce", Experiment(
        id="ch1-fakeonce", title="a fake once", run=_fake_once, config=config, book="shown", seeded=False,
        plot=_fake_plot))
    Calls.seeds = []


def _run(out, ids=("ch1-fake",), seeds=(1, 2, 3), **kw):
    """reproduce(...) with its lines collected; an escaping bug exception fails the test."""
    lines: list[str] = []
    try:
        outcome = reproduce(list(ids), seeds=list(seeds), out=out, echo=lines.append, **kw)
    except FORBIDDEN as e:
        pytest.fail(f"{type(e).__name__} (a bug): {str(e)[:300]}", pytrace=False)
    return outcome, lines


def _row(out, experiment_id="ch1-fake"):
    report = (Path(out) / "REPORT.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith(f"| {experiment_id} |")]
    assert len(rows) == 1, report
    return rows[0]


def _mutate(data, path, value):
    """A deep copy of ``data`` with the key path ``path`` set to ``value`` (DELETE: removed)."""
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def _deep(n, inner="1", kind="["):
    close = "]" if kind == "[" else "}"
    opener = "[" if kind == "[" else '{"a":'
    return opener * n + inner + close * n


def _raw_json(data):
    """JSON text as Python writes it (NaN and Infinity included, as ``json.dumps`` spells them)."""
    return json.dumps(data, indent=1)


# ---------------------------------------------------------------------------- 1. a seed's result, damaged

#: (name, key path, value, expected): "again" -- said damaged and the seed run again; "kept" -- used as is.
RUN_MUTATIONS = [
    *[(f"missing-{key}", (key,), DELETE, "again") for key in ("id", "seed", "quick", "config", "value", "seconds")],
    ("missing-summary", ("summary",), DELETE, "kept"),
    ("missing-series", ("series",), DELETE, "kept"),
    ("value-null", ("value",), None, "again"),
    ("value-text", ("value",), "0.92", "again"),
    ("value-true", ("value",), True, "again"),
    ("value-list", ("value",), [0.92], "again"),
    ("value-object", ("value",), {"v": 0.92}, "again"),
    ("value-nan", ("value",), float("nan"), "again"),
    ("value-inf", ("value",), float("inf"), "again"),
    ("value-minus-inf", ("value",), float("-inf"), "again"),
    ("value-deep", ("value",), json.loads(_deep(MAX_DEPTH)), "again"),
    ("seed-other", ("seed",), 99, "again"),
    ("seed-text", ("seed",), "2", "again"),
    ("seed-float", ("seed",), 2.0, "again"),
    ("seed-true", ("seed",), True, "again"),
    ("seed-null", ("seed",), None, "again"),
    ("seed-negative", ("seed",), -2, "again"),
    ("id-other", ("id",), "ch1-nand", "again"),
    ("id-number", ("id",), 5, "again"),
    ("id-null", ("id",), None, "again"),
    ("quick-true", ("quick",), True, "again"),
    ("quick-text", ("quick",), "false", "again"),
    ("quick-zero", ("quick",), 0, "again"),
    ("config-empty", ("config",), {}, "again"),
    ("config-list", ("config",), [], "again"),
    ("config-text", ("config",), "x", "again"),
    ("config-other-eta", ("config", "eta"), 99.0, "again"),
    ("seconds-negative", ("seconds",), -1, "again"),
    ("seconds-text", ("seconds",), "1", "again"),
    ("seconds-nan", ("seconds",), float("nan"), "again"),
    ("seconds-null", ("seconds",), None, "again"),
    ("shown-text", ("shown",), "yes", "again"),
    ("shown-number", ("shown",), 1, "again"),
    ("summary-number", ("summary",), 5, "again"),
    ("summary-list", ("summary",), [], "again"),
    ("error-recorded", ("error",), "it failed", "again"),
    ("format-other", ("format",), "nndl-model", "again"),
    ("format-null", ("format",), None, "again"),
    ("version-newer", ("version",), 99, "again"),
    ("version-zero", ("version",), 0, "again"),
    ("version-text", ("version",), "1", "again"),
    ("history-damaged", ("history",), {"format": "nndl-history", "version": 2, "epochs": "x"}, "again"),
    ("history-newer", ("history",), {"format": "nndl-history", "version": 9}, "again"),
    ("legacy-no-format", ("format",), DELETE, "kept"),
]

#: (name, the file's text or bytes): every one is damaged and its seed runs again.
RUN_TEXTS = [
    ("empty", b""),
    ("truncated", b'{"id": "ch1-fake", "seed": 2, "val'),
    ("not-json", b"hello"),
    ("list", b"[]"),
    ("null", b"null"),
    ("number", b"42"),
    ("text", b'"ch1-fake"'),
    ("invalid-utf8", b'{"id": "\xff\xfe"}'),
    ("deep-lists-100000", _deep(100_000).encode()),
    ("deep-objects-100000", _deep(100_000, kind="{").encode()),
    ("deep-lists-1000", _deep(1000).encode()),
    ("huge-integer", b'{"value": ' + b"9" * 5000 + b"}"),
    ("number-1e400", None),                              # built from the good file: value 1e400 (infinite)
    ("nan-literal", None),                               # built from the good file: "value": NaN
]


@pytest.fixture
def done(fake, tmp_path):
    """An output directory with ch1-fake run for seeds 1 2 3 (and its good seed-2 result)."""
    outcome, _ = _run(tmp_path)
    assert outcome.finished == ["ch1-fake"] and ROW in _row(tmp_path)
    good = json.loads((tmp_path / "runs" / "ch1-fake-s2.json").read_text())
    (tmp_path / "ch1-fake.json").unlink()                # so that the seeds are read back and combined again
    Calls.seeds = []
    return tmp_path, good


def _after_damage(out, expected, needle="runs/ch1-fake-s2.json"):
    outcome, lines = _run(out)
    assert outcome.ok and outcome.finished == ["ch1-fake"], (outcome.failed, lines)
    said = [line for line in lines if needle in line]
    if expected == "again":
        assert Calls.seeds == [2], f"seed 2 was not run again: {Calls.seeds} {lines}"
        assert len(said) == 1 and "running that seed again" in said[0], lines
        assert "\n" not in said[0] and "Traceback" not in said[0]
    else:
        assert Calls.seeds == [] and not said, lines
    assert ROW in _row(out), "REPORT.md's row changed"
    result = load_result(out / "ch1-fake.json")
    assert result["seeds"] == [1, 2, 3] and result["median"] == pytest.approx(0.92)
    return said


@pytest.mark.parametrize("name,path,value,expected", RUN_MUTATIONS, ids=[m[0] for m in RUN_MUTATIONS])
def test_a_damaged_seed_result_is_said_and_run_again(done, name, path, value, expected):
    out, good = done
    target = out / "runs" / "ch1-fake-s2.json"
    data = _mutate(good, path, value)
    if name == "legacy-no-format":                     # as nndl 0.2 wrote them: neither format nor version
        del data["version"]
    target.write_text(_raw_json(data))
    _after_damage(out, expected)


@pytest.mark.parametrize("name,text", RUN_TEXTS, ids=[t[0] for t in RUN_TEXTS])
def test_a_seed_result_that_is_not_one_is_said_and_run_again(done, name, text):
    out, good = done
    if name == "number-1e400":
        text = _raw_json(good).replace('"value": 0.92', '"value": 1e400').encode()
    elif name == "nan-literal":
        text = _raw_json(good).replace('"value": 0.92', '"value": NaN').encode()
    (out / "runs" / "ch1-fake-s2.json").write_bytes(text)
    said = _after_damage(out, "again")
    if name.startswith("deep"):
        assert "nested too deeply" in said[0]


def test_the_message_says_what_is_wrong_in_one_line(done):
    out, good = done
    (out / "runs" / "ch1-fake-s2.json").write_text(_raw_json(_mutate(good, ("value",), None)))
    said = _after_damage(out, "again")
    assert said == ["runs/ch1-fake-s2.json is damaged (value: expected a number, got null): running that seed again"]
    (out / "runs" / "ch1-fake-s2.json").write_text(_raw_json(_mutate(good, ("seed",), 99)))
    Calls.seeds = []
    (out / "ch1-fake.json").unlink()
    said = _after_damage(out, "again")
    assert said == ["runs/ch1-fake-s2.json is damaged (seed: expected seed 2, got 99): running that seed again"]


ONCE_MUTATIONS = [
    ("shown-null-value-null", {"shown": None, "summary": ""}, "again"),
    ("shown-text", {"shown": "true"}, "again"),
    ("seed-one", {"seed": 1}, "again"),
    ("value-nan", {"value": float("nan")}, "again"),
    ("value-number", {"value": 0.5}, "kept"),
    ("value-null", {"value": None}, "kept"),
]


@pytest.mark.parametrize("name,changes,expected", ONCE_MUTATIONS, ids=[m[0] for m in ONCE_MUTATIONS])
def test_a_deterministic_experiments_result_is_checked_too(fake, tmp_path, name, changes, expected):
    _run(tmp_path, ids=["ch1-fakeonce"])
    target = tmp_path / "runs" / "ch1-fakeonce-once.json"
    good = json.loads(target.read_text())
    target.write_text(_raw_json({**good, **changes}))
    (tmp_path / "ch1-fakeonce.json").unlink()
    Calls.seeds = []
    outcome, lines = _run(tmp_path, ids=["ch1-fakeonce"])
    assert outcome.ok
    said = [line for line in lines if "runs/ch1-fakeonce-once.json" in line]
    assert (Calls.seeds, len(said)) == (([None], 1) if expected == "again" else ([], 0)), lines
    assert "| shown |" in _row(tmp_path, "ch1-fakeonce")


# ---------------------------------------------------------------------------- 2. an experiment's ID.json, damaged

RESULT_MUTATIONS = [
    *[(f"missing-{key}", (key,), DELETE) for key in ("format", "version", "id", "title", "quick", "median", "runs",
                                                      "seeds", "command", "unit")],
    ("format-other", ("format",), "nndl-history"),
    ("version-newer", ("version",), 2),
    ("version-text", ("version",), "1"),
    ("id-number", ("id",), 7),
    ("id-other", ("id",), "ch1-nand"),
    ("title-number", ("title",), 1),
    ("quick-text", ("quick",), "no"),
    ("median-wrong", ("median",), 0.5),
    ("median-nan", ("median",), float("nan")),
    ("median-inf", ("median",), float("inf")),
    ("median-text", ("median",), "92%"),
    ("median-null", ("median",), None),
    ("spread-wrong", ("spread",), [0.1, 0.99]),
    ("spread-short", ("spread",), [0.91]),
    ("spread-text", ("spread",), "0.91-0.93"),
    ("within-text", ("within",), "yes"),
    ("runs-empty", ("runs",), []),
    ("runs-text", ("runs",), "three"),
    ("runs-of-numbers", ("runs",), [1, 2, 3]),
    ("seeds-other", ("seeds",), [1, 2, 4]),
    ("seeds-twice", ("seeds",), [1, 1, 2]),
    ("seeds-of-lists", ("seeds",), [[1], [2], [3]]),
    ("run-value-null", ("runs", 1, "value"), None),
    ("run-value-nan", ("runs", 1, "value"), float("nan")),
    ("run-value-text", ("runs", 1, "value"), "0.92"),
    ("run-seconds-missing", ("runs", 1, "seconds"), DELETE),
    ("run-seed-other", ("runs", 1, "seed"), 99),
    ("run-history-damaged", ("runs", 0, "history"), {"format": "nndl-history", "version": 2, "n_test": -1}),
    ("epochs-zero", ("epochs",), 0),
    ("target-text", ("target",), "92%"),
]


@pytest.fixture
def finished(fake, tmp_path):
    outcome, _ = _run(tmp_path)
    assert outcome.finished == ["ch1-fake"]
    Calls.seeds = []
    return tmp_path, json.loads((tmp_path / "ch1-fake.json").read_text())


@pytest.mark.parametrize("name,path,value", RESULT_MUTATIONS, ids=[m[0] for m in RESULT_MUTATIONS])
def test_a_damaged_experiment_result_is_combined_again_and_never_reported(finished, name, path, value):
    out, good = finished
    (out / "ch1-fake.json").write_text(_raw_json(_mutate(good, path, value)))
    # REPORT.md rebuilt alone leaves it out, saying so ...
    lines: list[str] = []
    write_report(out, lines.append)
    assert "| ch1-fake |" not in (out / "REPORT.md").read_text()
    assert len(lines) == 1 and "ch1-fake.json" in lines[0] and "left out of REPORT.md" in lines[0], lines
    # ... nndl plot refuses it in one line ...
    with pytest.raises(FileFormatError, match="ch1-fake.json"):
        load_result(out / "ch1-fake.json")
    # ... and nndl reproduce combines the saved seeds again, without running any.
    outcome, lines = _run(out)
    assert outcome.finished == ["ch1-fake"] and Calls.seeds == [], lines
    said = [line for line in lines if "ch1-fake.json" in line and "runs/" not in line]
    assert len(said) == 1 and "combining its seeds again" in said[0], lines
    assert ROW in _row(out)
    assert load_result(out / "ch1-fake.json")["median"] == pytest.approx(0.92)


def test_a_damaged_result_of_another_experiment_leaves_only_its_row_out(finished):
    out, _ = finished
    (out / "ch1-nand.json").write_text(_deep(100_000))
    (out / "notes.json").write_text(_deep(100_000))             # not a result: not a word about it
    (out / "ch1-other.json").write_text('{"format": "nndl-experiment", "version": 1, "id": "ch1-nand"}')
    lines: list[str] = []
    write_report(out, lines.append)
    assert ROW in _row(out) and "| ch1-nand |" not in (out / "REPORT.md").read_text()
    assert [line.split(" ")[0] for line in lines] == ["ch1-nand.json", "ch1-other.json"], lines
    assert "nested too deeply" in lines[0] and "no title" in lines[1]


# ---------------------------------------------------------------------------- 3. through the command line

def cli(capsys, *args):
    argv = [str(a) for a in args]
    try:
        code = main(argv)
    except BaseException as e:
        capsys.readouterr()
        pytest.fail(f"Traceback: `nndl {' '.join(argv)[:300]}` raised {type(e).__name__}: {str(e)[:300]}",
                    pytrace=False)
    out, err = capsys.readouterr()
    return code, out, err


def user_error(result, *needles):
    code, out, err = result
    assert "Traceback" not in out + err, err[-3000:]
    assert code == 2, f"exit status {code}; stderr: {err[-1500:]!r}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), err[-1500:]
    for needle in needles:
        assert str(needle) in lines[0], lines[0]
    return lines[0]


def test_the_command_runs_a_damaged_seed_again_and_says_so(done, capsys):
    out, good = done
    (out / "runs" / "ch1-fake-s2.json").write_text(_raw_json(_mutate(good, ("value",), None)))
    code, stdout, err = cli(capsys, "reproduce", "ch1-fake", "--out", out)
    assert code == 0 and "Traceback" not in stdout + err
    assert "runs/ch1-fake-s2.json is damaged (value: expected a number, got null): running that seed again" in stdout
    assert ROW in _row(out)


SEEDS = [
    (["-1"], "-1"), (["1", "-1"], "-1"), (["x"], "'x'"), (["1.5"], "'1.5'"), (["1e3"], "'1e3'"),
    (["1", "1"], "1 given more than once"), (["3", "2", "3"], "3 given more than once"),
    (["4294967296"], "4294967296"), ([""], "''"),
]


@pytest.mark.parametrize("seeds,needle", SEEDS, ids=["/".join(s[0]) or "empty" for s in SEEDS])
def test_seeds_that_cannot_be_seeds_are_one_line(fake, capsys, tmp_path, seeds, needle):
    user_error(cli(capsys, "reproduce", "ch1-fake", "--out", tmp_path, "--seeds", *seeds), "--seeds", needle)
    assert Calls.seeds == []


@pytest.mark.parametrize("seeds", [[-1], [1, 1], [1.5], ["1"], [True], [], "12", None, [2**40]],
                         ids=["negative", "twice", "float", "text", "bool", "none", "string", "null", "huge"])
def test_the_library_checks_its_seeds_too(fake, tmp_path, seeds):
    with pytest.raises(ConfigError):
        check_seeds(seeds)
    with pytest.raises(ConfigError):
        reproduce(["ch1-fake"], seeds=seeds, out=tmp_path, echo=lambda line: None)
    assert Calls.seeds == []


def test_zero_and_the_largest_seed_are_seeds(fake, tmp_path):
    assert check_seeds([0, 2**32 - 1]) == [0, 2**32 - 1]


RESULTS_FOR_PLOT = ["median-wrong", "runs-empty", "missing-id", "version-newer", "seeds-of-lists"]


@pytest.mark.parametrize("name", RESULTS_FOR_PLOT)
def test_nndl_plot_of_a_damaged_result_is_one_line(finished, capsys, name):
    out, good = finished
    _, path, value = next(m for m in RESULT_MUTATIONS if m[0] == name)
    (out / "ch1-fake.json").write_text(_raw_json(_mutate(good, path, value)))
    user_error(cli(capsys, "plot", out / "ch1-fake.json", "-o", out / "again.png"), "ch1-fake.json")


def test_a_figure_that_cannot_be_drawn_from_a_result_is_a_file_error(tmp_path):
    from nndl.experiments.common import plot_accuracy
    e = Experiment(id="ch1-drawn", title="x", run=_fake_run, config=get("ch1-nand").config, plot=plot_accuracy)
    result = {"id": "ch1-drawn", "title": "x", "book": "", "runs": [{"seed": 1, "value": 0.5}]}
    with pytest.raises(FileFormatError, match="r.json does not hold what the figure of ch1-drawn"):
        e.draw(result, tmp_path / "x.png", "r.json")


# ---------------------------------------------------------------------------- 4. training histories, damaged

def _history():
    return History(epochs=[0, 1, 2], evaluation_accuracy=[0.5, 0.6, 0.7], training_cost=[1.0, 0.5, 0.25],
                   eta=[0.5] * 3, epoch_time=[0.1] * 3, monitor_time=[0.01] * 3, best_epoch=2, best_accuracy=0.7,
                   n_training=100, n_evaluation=10).to_dict()


HISTORY_MUTATIONS = [
    ("epochs-text", ("epochs",), "0 1 2"),
    ("epochs-negative", ("epochs",), [-1, 0, 1]),
    ("epochs-floats", ("epochs",), [0.5, 1, 2]),
    ("accuracy-nan", ("evaluation_accuracy",), [0.5, float("nan"), 0.7]),
    ("accuracy-inf", ("evaluation_accuracy",), [0.5, float("inf"), 0.7]),
    ("accuracy-short", ("evaluation_accuracy",), [0.5]),
    ("accuracy-text", ("evaluation_accuracy",), ["0.5", "0.6", "0.7"]),
    ("accuracy-nested", ("evaluation_accuracy",), [[0.5], [0.6], [0.7]]),
    ("cost-bools", ("training_cost",), [True, False, True]),
    ("eta-null", ("eta",), None),
    ("best-epoch-text", ("best_epoch",), "2"),
    ("best-accuracy-nan", ("best_accuracy",), float("nan")),
    ("stop-reason-other", ("stop_reason",), "bored"),
    ("message-number", ("message",), 5),
    ("n-training-negative", ("n_training",), -1),
    ("n-training-float", ("n_training",), 1.5),
    ("unknown-field", ("surprise",), 1),
    ("format-other", ("format",), "nndl-model"),
    ("format-missing", ("format",), DELETE),
    ("version-newer", ("version",), 3),
    ("version-text", ("version",), "2"),
    ("config-text", ("config",), "eta 0.5"),
    ("config-bad-eta", ("config", "eta"), -1),
    ("network-text", ("network",), "[784, 30, 10]"),
    ("deep-inside", ("message",), json.loads(_deep(MAX_DEPTH + 5))),
]
HISTORY_TEXTS = [("empty", b""), ("list", b"[]"), ("deep", _deep(100_000).encode()),
                 ("deep-objects", _deep(50_000, kind="{").encode()), ("invalid-utf8", b"\xff\xfe{}"),
                 ("huge-integer", b'{"format": "nndl-history", "version": ' + b"9" * 5000 + b"}")]


def _history_cases():
    cases = [(name, _raw_json(_mutate(_history(), path, value)).encode()) for name, path, value in HISTORY_MUTATIONS]
    return cases + HISTORY_TEXTS


@pytest.mark.parametrize("name,text", _history_cases(), ids=[c[0] for c in _history_cases()])
def test_a_damaged_history_is_one_line_for_history_load_and_nndl_plot(tmp_path, capsys, name, text):
    path = tmp_path / "h.json"
    path.write_bytes(text)
    try:
        History.load(path)
    except FileFormatError as e:
        assert "h.json" in str(e) and "\n" not in str(e)
    except BaseException as e:
        pytest.fail(f"History.load raised {type(e).__name__}: {str(e)[:300]}", pytrace=False)
    else:
        pytest.fail("History.load accepted it", pytrace=False)
    user_error(cli(capsys, "plot", path, "-o", tmp_path / "h.png"), "h.json")
    assert not (tmp_path / "h.png").exists()


def test_a_good_history_still_loads_and_plots(tmp_path, capsys):
    path = tmp_path / "h.json"
    path.write_text(_raw_json(_history()))
    assert History.load(path).best_accuracy == 0.7
    assert cli(capsys, "plot", path, "-o", tmp_path / "h.png")[0] == 0


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 5000, 1_000_000])
def test_parse_json_refuses_deep_nesting_without_recursion(depth):
    for kind in "[{":
        text = _deep(depth, kind=kind)
        if depth <= MAX_DEPTH:
            parse_json(text, "x.json")
        else:
            with pytest.raises(FileFormatError, match="x.json is nested too deeply"):
                parse_json(text, "x.json")


def test_a_checkpoints_history_text_is_checked(tmp_path):
    from nndl.errors import ModelFileError
    from nndl.training.fit import _saved_histories
    for texts in (["not json"], [_deep(100_000)], [json.dumps({"format": "nndl-history", "version": 2,
                                                                 "epochs": "x"})], [5]):
        with pytest.raises(ModelFileError, match="the checkpoint's training state is incomplete or damaged"):
            _saved_histories({"histories": texts}, 1)


# ---------------------------------------------------------------------------- 5. ensembles that cannot vote

def _log_probabilities(n, k, seed=0):
    import torch as t
    return t.log_softmax(t.randn(n, k, generator=t.Generator().manual_seed(seed)), dim=1)


@pytest.mark.parametrize("shapes,needle", [
    (((100, 10), (100, 7)), "different numbers of classes (a.pt: 10, b.pt: 7)"),
    (((100, 10), (90, 10)), "different numbers of images (a.pt: 100, b.pt: 90"),
    (((100, 10), (100, 10), (100, 12)), "c.pt: 12"),
    (((90, 10), (90, 10)), "labels: 100"),
], ids=["classes", "rows", "third-member", "labels"])
def test_ensemble_members_that_cannot_vote_together_are_named(shapes, needle):
    pytest.importorskip("torch")
    import torch as t

    from nndl.deep.ensemble import score
    outputs = [_log_probabilities(n, k, i) for i, (n, k) in enumerate(shapes)]
    with pytest.raises(InputError) as e:
        score(outputs, t.zeros(100, dtype=t.int64), ["a.pt", "b.pt", "c.pt"][:len(shapes)])
    assert needle in str(e.value)


def test_nndl_ensemble_of_predictions_with_other_classes_is_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch as t

    from nndl.deep.checkpoint import _write
    from nndl.deep.ensemble import PREDICTIONS_FORMAT, PREDICTIONS_VERSION
    labels = t.zeros(20, dtype=t.int64)
    paths = []
    for name, k in (("a.pt", 10), ("b.pt", 7)):
        header = {"network": {}, "metadata": {}, "splits": {"test": {"n": 20, "fingerprint": "same"}}}
        paths.append(_write(tmp_path / name, {"format": PREDICTIONS_FORMAT, "version": PREDICTIONS_VERSION,
                                              "header": json.dumps(header),
                                              "log_probabilities": {"test": _log_probabilities(20, k)},
                                              "labels": {"test": labels}}))
    user_error(cli(capsys, "ensemble", *paths, "--split", "test"), "different numbers of classes")


# ---------------------------------------------------------------------------- 6. kill -9 in the middle of a write

_KILLED = r"""
import os, sys, time
from pathlib import Path
out, stop = sys.argv[1], sys.argv[2]
_fdopen = os.fdopen
class Stalling:
    # Writes half of what it is given, then waits to be killed: the kill lands mid-write, every time.
    def __init__(self, f, name):
        self._f, self._name = f, name
    def write(self, data):
        if self._name.startswith("." + stop + "."):
            view = memoryview(data).cast("B")
            self._f.write(view[:len(view) // 2])
            self._f.flush()
            print("stalled", flush=True)
            time.sleep(600)
        return self._f.write(data)
    def __getattr__(self, name):
        return getattr(self._f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._f.__exit__(*exc)
def fdopen(fd, *a, **k):
    return Stalling(_fdopen(fd, *a, **k), os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
os.fdopen = fdopen
from nndl.experiments import registry
from nndl.experiments.registry import Experiment, experiments, get
experiments()
def run(config, context):
    return {"value": 0.8 + context.seed / 100, "summary": f"seed {context.seed}"}
registry._REGISTRY["ch1-fake"] = Experiment(id="ch1-fake", title="a fake", run=run, config=get("ch1-nand").config,
                                             book="92%", target=0.92, tolerance=0.005)
from nndl.experiments.runner import reproduce
reproduce(["ch1-fake"], seeds=[1, 2, 3], out=out, force=True, echo=lambda line: None)
print("finished", flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the file being written")
@pytest.mark.parametrize("target", ["runs/ch1-fake-s2.json", "ch1-fake.json", "REPORT.md"])
def test_kill_during_a_write_of_reproduce_keeps_the_previous_file_and_the_next_run_tidies(fake, tmp_path, target):
    _run(tmp_path)
    names = ["runs/ch1-fake-s1.json", "runs/ch1-fake-s2.json", "runs/ch1-fake-s3.json", "ch1-fake.json",
             "REPORT.md"]
    before = {name: (tmp_path / name).read_bytes() for name in names}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _KILLED, str(tmp_path), Path(target).name],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = process.stdout.readline().decode()
        assert line.strip() == "stalled", process.stderr.read().decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    # The file being written is the previous one, byte for byte; a half-written temporary file lies beside it.
    assert (tmp_path / target).read_bytes() == before[target]
    leftovers = [p for p in tmp_path.rglob(".*.tmp")]
    assert leftovers and all(p.name.startswith("." + Path(target).name + ".") for p in leftovers)
    # Whatever was written before the kill is whole and reads back.
    for name in names:
        parse_json((tmp_path / name).read_bytes(), name) if name.endswith(".json") else None
    # The next run finishes the work (or finds it done) and leaves no temporary file anywhere.
    Calls.seeds = []
    outcome, lines = _run(tmp_path)
    assert outcome.ok, lines
    assert list(tmp_path.rglob(".*.tmp")) == []
    assert load_result(tmp_path / "ch1-fake.json")["seeds"] == [1, 2, 3]
    assert "| ch1-fake |" in (tmp_path / "REPORT.md").read_text()
    assert not any("Traceback" in line for line in lines)


def test_a_live_writers_temporary_file_is_left_alone(fake, tmp_path):
    _run(tmp_path)
    live = tmp_path / f".REPORT.md.{os.getpid()}.0123abcd.tmp"
    live.write_text("being written")
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    dead = tmp_path / "runs" / f".ch1-fake-s1.json.{dead_pid}.89abcdef.tmp"
    dead.write_text("half")
    _run(tmp_path)                                   # everything is done: nothing is written, but it tidies
    assert live.exists() and not dead.exists()


def test_counts():
    """The campaign's size, kept honest: at least 100 cases of damaged files."""
    cases = len(RUN_MUTATIONS) + len(RUN_TEXTS) + len(ONCE_MUTATIONS) + len(RESULT_MUTATIONS) + \
        len(_history_cases()) + len(SEEDS)
    assert cases >= 100, cases


# ---------------------------------------------------------------------------- 7. a chapter 6 checkpoint's history

@pytest.mark.parametrize("history", ["not json", _deep(100_000), '{"format": "nndl-history", "version": 2, '
                                     '"epochs": "x"}', "[]"], ids=["not-json", "deep", "mistyped", "list"])
def test_a_chapter6_checkpoint_with_a_damaged_history_is_one_line(tmp_path, history):
    pytest.importorskip("torch")
    import numpy as np
    import torch

    from nndl.deep.checkpoint import load_checkpoint, save_checkpoint
    from nndl.errors import ModelFileError
    from nndl.experiments.ch6 import train_conv
    from nndl.experiments.registry import Context
    rng = np.random.default_rng(0)
    data = [(torch.tensor(rng.random((n, 784)), dtype=torch.float32), torch.tensor(rng.integers(0, 10, n)))
            for n in (40, 20, 20)]
    config = get("ch6-conv1").settings(quick=True)
    config = config.replace(train=config.train.replace(epochs=1))
    context = Context(seed=1, name="ch6-conv1-s1", work_dir=str(tmp_path))
    train_conv(config, context, 1, data)
    path = tmp_path / "ch6-conv1-s1.ckpt"
    net, state, saved = load_checkpoint(path)
    save_checkpoint(path, net, {**state, "history": history}, saved)
    with pytest.raises(ModelFileError, match="ch6-conv1-s1.ckpt") as e:
        train_conv(config, context, 1, data)
    assert "\n" not in str(e.value) and "move the file away" in str(e.value)
