"""benchmarks/gpu_check.py: its --quick run end to end on the CPU, and its refusal to run without CUDA otherwise.

The quick run is the whole check made tiny (a pytest subset, 20 timed steps
of three rungs' networks, the quick configuration of ch6-fc100 through
``nndl reproduce``), in a subprocess, as it would run on a GPU machine but
with ``--device cpu``. What it writes is checked: every step's section of
gpu_check.json, the timing table's rows, the ladder's result and REPORT.md,
and that nothing is written outside --out.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import real_mnist_dir

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
QUICK_RUNGS = ("fc100", "relu", "dropout")
#: Seconds the quick check may take on a busy two-core machine (it takes well under a minute).
LIMIT = 600


def run_check(*args, data=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if data is not None:
        env["NNDL_DATA"] = str(data)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=LIMIT, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The --quick --device cpu check, run once: (CompletedProcess, out directory, gpu_check.json, MNIST dir)."""
    out = tmp_path_factory.mktemp("gpu-check") / "out"
    data = real_mnist_dir()
    started = time.time()
    done = run_check("--quick", "--device", "cpu", "--out", out, data=data)
    report = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").exists() else None
    return done, out, report, data, started


def test_the_quick_check_runs_every_step_on_the_cpu(quick):
    done, out, report, _, _ = quick
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert report["format"] == "nndl-gpu-check" and report["quick"] and report["device"] == "cpu"
    assert {"machine", "step1_tests", "step2_timings", "step3_ladder", "seconds", "finished"} <= set(report)
    assert report["machine"]["torch"] == torch.__version__ and report["machine"]["cpu_count"] >= 1
    log = (out / "gpu_check.log").read_text()
    for heading in ("== step 1", "== step 2", "== step 3"):
        assert heading in log and heading in done.stdout


def test_step1_counts_the_tests_that_touch_cuda(quick):
    done, out, report, _, _ = quick
    tests = report["step1_tests"]
    assert "tests/test_cuda.py" in tests["command"] and "-k" in tests["command"]
    assert tests["failed"] == 0 and tests["errors"] == 0, tests.get("failures")
    assert tests["passed"] >= 3                                     # the CPU's device and checkpoint tests
    if not torch.cuda.is_available():
        assert tests["skipped"] >= 7                                # every test of test_cuda.py, saying why
        assert any("needs a CUDA GPU" in reason for reason in tests["skip_reasons"])
    assert (out / "step1-pytest.txt").read_text().strip()


def test_step2_times_each_network_eagerly_and_as_a_checked_graph(quick):
    done, _, report, _, _ = quick
    timings = report["step2_timings"]
    rows = {(row["rungs"][0], row["mode"]): row for row in timings["rows"]}
    for rung in QUICK_RUNGS:
        eager, graph = rows[(rung, "1 eager")], rows[(rung, "1 graph")]
        assert eager["images_per_second"] > 0 and eager["ratio_to_1_eager"] == pytest.approx(1.0)
        images = 250_000 if rung == "dropout" else 50_000          # the book's expanded data, or its 50,000
        assert eager["images_per_epoch"] == images
        assert eager["seconds_per_epoch"] == pytest.approx(images / eager["images_per_second"])
        assert graph["images_per_second"] > 0 and graph["check"] == "ok" and graph["check_max_diff"] == 0.0
        assert graph["captured"] is False                           # --device cpu: run on the static buffers
        assert graph["steps"] == timings["steps"] == 20
    if timings["train_many"] == "present":
        for rung in QUICK_RUNGS:
            assert rows[(rung, "5 eager")]["members"] == 5 and rows[(rung, "5 graph")]["check"] == "ok"
    else:                                   # one line says why the K-at-once rows are missing
        assert not any(mode.startswith("5") for _, mode in rows)
        said = [line for line in done.stdout.splitlines() if "nndl.deep.multi" in line and "skipped" in line]
        assert said and "train_many" in said[0]
    table = done.stdout.split("== step 2")[1]
    assert "img/s" in table and "s/epoch" in table and "vs 1 eager" in table
    for rung in QUICK_RUNGS:
        assert any(line.startswith(rung) and "1 eager" in line for line in table.splitlines())


def test_step3_trains_a_quick_rung_through_nndl_reproduce_into_out(quick):
    _, out, report, data, started = quick
    ladder = report["step3_ladder"]
    if "skipped" in ladder:                                         # no MNIST here: said, not failed
        assert data is None and "MNIST" in ladder["skipped"]
        return
    [run] = [r for r in ladder["runs"] if "skipped" not in r]
    assert run["id"] == "ch6-fc100" and 0.1 < run["value"] <= 1.0 and run["verdict"] == "quick run, not compared"
    assert ladder["cuda_graph"] is False                            # graphs on CUDA only
    result = json.loads((out / "ch6-fc100.json").read_text())
    assert result["quick"] and result["seeds"] == [1]
    assert "| ch6-fc100 |" in (out / "REPORT.md").read_text()
    assert (out / "runs" / "checkpoints" / "ch6-fc100-s1-quick.ckpt").exists()
    results = ROOT / "experiments" / "results"                     # never written by the check
    if results.exists():
        assert not [p for p in results.rglob("*") if p.stat().st_mtime > started]


def test_without_cuda_the_full_check_refuses_in_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the full check would run")
    for args in ([], ["--device", "cpu"], ["--quick", "--device", "cuda"]):
        done = run_check(*args, "--out", tmp_path / "out")
        assert done.returncode == 2, done.stderr
        assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
        assert "no CUDA GPU" in done.stderr and "--quick" in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_ladders_pace_is_the_checked_graph_rows_when_it_trains_from_graphs():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    rows = [dict(mode="1 eager", rungs=["fc100"], images_per_second=10_000.0),
            dict(mode="1 graph", rungs=["fc100"], images_per_second=100_000.0, captured=True, check="ok"),
            dict(mode="1 eager", rungs=["relu"], images_per_second=5_000.0),
            dict(mode="1 graph", rungs=["relu"], images_per_second=50_000.0, captured=True, check="DIFFERS")]
    def pace(graphs):
        return {p["id"]: p["epoch_seconds"] for p in gpu_check._plans({"rows": rows}, False, graphs)}
    eager, graphed = pace(False), pace(True)
    evaluation = gpu_check.EVALUATION_IMAGES / (3 * 10_000.0) + 0.5          # measured eagerly either way
    assert eager["ch6-fc100"] == pytest.approx(50_000 / 10_000.0 + evaluation)
    assert graphed["ch6-fc100"] == pytest.approx(50_000 / 100_000.0 + evaluation)
    assert graphed["ch6-relu"] == eager["ch6-relu"]                 # a graph that computed otherwise is not used
    assert eager["ch6-conv1"] is None                               # not timed
