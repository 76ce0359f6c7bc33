"""Chapter 3 and hyper-parameter experiments of the registry: the slowdown demonstration, every quick run and figure,
the fields the overfitting result claims, and the configurations' checks."""

import json
import math
import sys

import pytest
from conftest import real_mnist_dir

from nndl.errors import ConfigError
from nndl.experiments import ch3, experiments, hyper  # noqa: E402  (registers them)
from nndl.experiments.common import MnistRun
from nndl.experiments.registry import Context, config_dict
from nndl.training.config import NetworkConfig, TrainingConfig

IDS = [i for i in experiments() if i.startswith(("ch3-", "hyper-"))]


# --- the single neuron of section 3.1 -----------------------------------------------------------

def test_slowdown_demonstration_shows_the_slowdown():
    result = ch3.run_slowdown(ch3.Neuron(), Context())
    assert result["shown"] is True
    assert result["bad_start"] == [2.0, 2.0]
    assert result["quadratic_start_ratio"] < 0.05            # hardly learns at first ...
    assert result["cross_entropy_start_ratio"] == pytest.approx(1.0)   # ... where cross-entropy is at its fastest
    curves = {(c["cost_function"], c["w"], c["b"]): c for c in result["curves"]}
    # The book's numbers: outputs 0.82 and 0.98 at the start; from (0.6, 0.9) the quadratic cost ends near 0.09.
    assert curves[("quadratic", 0.6, 0.9)]["start_output"] == pytest.approx(0.82, abs=0.005)
    assert curves[("quadratic", 2.0, 2.0)]["start_output"] == pytest.approx(0.98, abs=0.005)
    assert curves[("quadratic", 0.6, 0.9)]["final_output"] == pytest.approx(0.09, abs=0.01)
    # From the bad start the quadratic cost has barely moved after 50 epochs, yet ends far lower.
    bad = curves[("quadratic", 2.0, 2.0)]
    assert bad["cost_left_after_window"] > 0.95
    assert bad["curve"]["cost"][-1] < 0.1 * bad["curve"]["cost"][0]
    assert len(bad["curve"]["cost"]) == 301


def test_slowdown_criterion_can_fail():
    # Two starts that are both only a little wrong: nothing saturates, so no slowdown.
    result = ch3.run_slowdown(ch3.Neuron(starts=((0.6, 0.9), (0.5, 0.8))), Context())
    assert result["shown"] is False
    assert result["quadratic_start_ratio"] > 0.9


@pytest.mark.parametrize("cost", ch3.COSTS)
def test_neuron_steps_follow_the_cost_gradient(cost):
    """One step changes w by -eta dC/dw; compare with a central difference of the cost."""
    w, b, x, y, eta, h = 1.3, -0.4, 0.7, 0.2, 0.1, 1e-6

    def c(w_):
        return ch3.train_neuron(w_, b, x, y, eta, cost, 0)["cost"][0]

    curve = ch3.train_neuron(w, b, x, y, eta, cost, 1)
    step = curve["w"][1] - curve["w"][0]
    assert step == pytest.approx(-eta * (c(w + h) - c(w - h)) / (2 * h), rel=1e-6)


def test_learning_speed():
    assert ch3.learning_speed([4.0, 3.0, 2.5, 2.4], 1) == (1.0, 1.0, 1.0)
    first, fastest, ratio = ch3.learning_speed([1.0, 0.99, 0.5, 0.4], 1)
    assert (first, fastest) == (pytest.approx(0.01), pytest.approx(0.49)) and ratio < 0.05
    assert ch3.learning_speed([1.0, 1.0, 1.0], 1)[2] == 0.0


# --- criteria -----------------------------------------------------------------------------------

def test_learning_rate_criterion():
    small = [3.0, 2.5, 2.1, 1.8]
    middle = [1.0, 0.6, 0.4, 0.33]
    large = [1.2, 0.9, 1.1, 0.8, 1.0]
    assert all(ch3.judge_learning_rates(small, middle, large, min_rises=2).values())
    checks = ch3.judge_learning_rates(small, middle, [1.2, 1.0, 0.9, 0.8], min_rises=2)
    assert checks["large eta oscillates"] is False
    checks = ch3.judge_learning_rates(middle, small, large, min_rises=2)
    assert not checks["middle eta lowest"] and not checks["small eta falls slowly"]


def test_threshold_criterion():
    assert hyper.falls_from_start([3.0, 2.0, 1.0])
    assert not hyper.falls_from_start([3.0, 2.0, 2.5])
    assert not hyper.falls_from_start([3.0, 4.0, 1.0])
    assert not hyper.falls_from_start([3.0, None])
    assert not hyper.falls_from_start([3.0])


# --- the registry entries -----------------------------------------------------------------------

def test_the_chapter_3_and_hyper_experiments_are_registered_in_order():
    assert IDS == ["ch3-slowdown", "ch3-ce-30", "ch3-ce-100", "ch3-overfit", "ch3-overfit-l2",
                   "ch3-unregularised-30", "ch3-l2-30", "ch3-l2-100-60", "ch3-init-30", "ch3-init-100",
                   "ch3-learning-rates", "ch3-more-data", "ch3-softmax", "ch3-l1", "ch3-dropout", "ch3-momentum",
                   "ch3-nesterov", "ch3-tanh", "ch3-relu", "ch3-early-stopping", "ch3-schedule",
                   "hyper-eta-threshold", "hyper-search"]
    registry = experiments()
    targets = {i: registry[i].target for i in IDS if registry[i].target is not None}
    assert targets == {"ch3-ce-30": 0.9549, "ch3-ce-100": 0.9682, "ch3-overfit": 0.8227, "ch3-overfit-l2": 0.8710,
                       "ch3-unregularised-30": 0.9533, "ch3-l2-30": 0.9649, "ch3-l2-100-60": 0.9804,
                       "ch3-init-30": 0.9653, "ch3-init-100": 0.9781, "ch3-more-data": 0.9597}
    for i in targets:
        assert registry[i].tolerance == 0.003 and registry[i].better == "higher"
        assert registry[i].needs == ("mnist",)
    assert registry["ch3-slowdown"].seeded is False and registry["ch3-slowdown"].needs == ()


def test_the_book_settings():
    registry = experiments()
    l2 = registry["ch3-l2-100-60"].config
    assert (l2.net.sizes, l2.net.init, l2.train.eta, l2.train.lmbda, l2.train.epochs, l2.evaluate_on) == \
        ((784, 100, 10), "large", 0.1, 5.0, 60, "validation")
    overfit = registry["ch3-overfit"].config
    assert (overfit.training_size, overfit.train.epochs, overfit.train.eta, overfit.evaluate_on) == \
        (1000, 400, 0.5, "test")
    assert set(overfit.train.monitor) == {"training_cost", "training_accuracy", "evaluation_cost",
                                          "evaluation_accuracy"}
    more = registry["ch3-more-data"].config
    assert more.training(100, seed=1).epochs == 15_000 and more.training(50_000, seed=1).lmbda == pytest.approx(5.0)
    init = registry["ch3-init-30"].config
    assert init.inits == ("default", "large") and init.mnist.train.eta == 0.1 and init.mnist.train.lmbda == 5.0
    # Quick versions keep lambda/n: 5 over 50,000 images is 0.1 over 1,000.
    quick = registry["ch3-l2-30"].quick
    assert quick.training_size == 1000 and quick.train.lmbda == pytest.approx(0.1)


@pytest.mark.parametrize("experiment_id", [i for i in IDS if type(experiments()[i].config) is not MnistRun])
def test_configurations_round_trip_through_json(experiment_id):
    """This module's own configuration types read back what they write (nested networks and runs included)."""
    experiment = experiments()[experiment_id]
    for config in (experiment.config, experiment.settings(quick=True)):
        data = json.loads(json.dumps(config.to_dict()))
        assert type(config).from_dict(data) == config


_MNIST = MnistRun(net=NetworkConfig(sizes=(784, 30, 10), cost="cross-entropy", init="default"),
                  train=TrainingConfig(epochs=3, eta=0.5, monitor=("training_cost",)), training_size=1000,
                  evaluate_on="validation")


@pytest.mark.parametrize("make", [
    lambda: ch3.Neuron(epochs=0),
    lambda: ch3.Neuron(window=500),
    lambda: ch3.Neuron(starts=((1.0,),)),
    lambda: ch3.Neuron(starts=()),
    lambda: ch3.Neuron(y=2.0),
    lambda: ch3.Neuron(eta_quadratic=0.0),
    lambda: ch3.Neuron(slow_ratio=1.5),
    lambda: ch3.InitComparison(_MNIST, inits=("default", "default")),
    lambda: ch3.InitComparison(_MNIST, inits=("default", "huge")),
    lambda: ch3.InitComparison("not a run"),
    lambda: ch3.InitComparison({"net": {"sizes": [784]}}),
    lambda: ch3.InitComparison({"net": {}, "epochs": 3}),     # an unknown setting
    lambda: ch3.LearningRates(_MNIST, etas=(0.25, 0.025, 2.5)),
    lambda: ch3.LearningRates(_MNIST, etas=(0.025, 0.25)),
    lambda: ch3.LearningRates(_MNIST.replace(train=_MNIST.train.replace(monitor=("evaluation_accuracy",)))),
    lambda: ch3.LearningRates(_MNIST, min_rises=-1),
    lambda: ch3.MoreData(training_sizes=(1000, 100)),
    lambda: ch3.MoreData(training_sizes=(100, 60_000)),
    lambda: ch3.MoreData(training_sizes=()),
    lambda: ch3.MoreData(images_seen=10, training_sizes=(100,)),
    lambda: ch3.MoreData(svm="yes"),
    lambda: ch3.MoreData(eta=-1.0),
    lambda: ch3.SoftmaxComparison(_MNIST),                    # not a softmax network
    lambda: ch3.Technique(_MNIST, min_accuracy=1.5),
    lambda: ch3.Technique(_MNIST, stop_reason="bored"),
    lambda: hyper.EtaThreshold(_MNIST, etas=()),
    lambda: hyper.EtaThreshold(_MNIST, etas=(1.0, 0.1)),
    lambda: hyper.EtaThreshold(_MNIST.replace(train=_MNIST.train.replace(monitor=None))),
    lambda: hyper.GridSearch(_MNIST.replace(evaluate_on="test")),
    lambda: hyper.GridSearch(_MNIST, etas=(1.0, 100.0), lmbdas=(1.0, 100.0)),   # eta lambda / n >= 1
    lambda: hyper.GridSearch(_MNIST, lmbdas=(-1.0,)),
])
def test_configurations_reject_bad_values(make):
    with pytest.raises(ConfigError):
        make()


# --- every quick run, through run() and plot() --------------------------------------------------

_RUNS = {}


def _quick_result(experiment_id):
    """The experiment's quick run for seed 1 (once per test session), as the result dict plot() reads."""
    if experiment_id not in _RUNS:
        experiment = experiments()[experiment_id]
        if "mnist" in experiment.needs and real_mnist_dir() is None:
            pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
        seed = 1 if experiment.seeded else None
        context = Context(seed=seed, quick=True, data_dir=str(real_mnist_dir()) if real_mnist_dir() else None)
        run = experiment.run(experiment.settings(quick=True), context)
        run = json.loads(json.dumps(run, allow_nan=False))          # JSON-ready, as the runner saves it
        _RUNS[experiment_id] = {
            "id": experiment.id, "title": experiment.title, "book": experiment.book, "target": experiment.target,
            "tolerance": experiment.tolerance, "unit": experiment.unit, "quick": True,
            "config": json.loads(json.dumps(config_dict(experiment.settings(quick=True)))),
            "runs": [dict(run, seed=seed, seconds=0.0)],
        }
    return _RUNS[experiment_id]


@pytest.mark.parametrize("experiment_id", IDS)
def test_quick_run_and_figure(experiment_id, tmp_path):
    result = _quick_result(experiment_id)
    run = result["runs"][0]
    assert "value" in run or "shown" in run
    if run.get("value") is not None:
        assert math.isfinite(run["value"])
    assert isinstance(run.get("summary"), str) and run["summary"]
    path = tmp_path / f"{experiment_id}.png"
    experiments()[experiment_id].plot(result, path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_overfit_result_records_what_it_claims():
    run = _quick_result("ch3-overfit")["runs"][0]
    history = run["history"]
    accuracy, cost = history["training_accuracy"], history["evaluation_cost"]
    assert len(accuracy) == len(cost) == len(history["training_cost"]) == len(history["evaluation_accuracy"]) == 30
    first = run["first_epoch_training_100"]
    if first is not None:
        assert accuracy[first] == 1.0 and all(a < 1.0 for a in accuracy[:first])
    else:
        assert max(accuracy) < 1.0
    assert cost[run["lowest_evaluation_cost_epoch"]] == min(cost)
    assert run["value"] == max(history["evaluation_accuracy"])
    assert run["evaluated_on"] == "test"


def test_init_result_has_both_initialisations():
    run = _quick_result("ch3-init-30")["runs"][0]
    assert set(run["best"]) == set(run["epoch0"]) == {"default", "large"}
    assert run["value"] == run["best"]["default"]
    assert run["epoch0"]["large"] == run["inits"]["large"]["history"]["evaluation_accuracy"][0]


def test_threshold_recommends_half_the_threshold():
    run = _quick_result("hyper-eta-threshold")["runs"][0]
    assert run["threshold"] is not None and run["value"] == run["threshold"] / 2
    falls = {c["eta"]: c["falls"] for c in run["curves"]}
    assert falls[run["threshold"]] and not any(f for eta, f in falls.items() if eta > run["threshold"])
    assert falls[100.0] is False                                 # eta 100 does not make the cost fall


def test_search_covers_the_grid():
    result = _quick_result("hyper-search")
    run = result["runs"][0]
    grid = {(row["eta"], row["lmbda"]) for row in run["table"]}
    assert grid == {(e, l) for e in result["config"]["etas"] for l in result["config"]["lmbdas"]}
    assert run["value"] == max(row["best_accuracy"] for row in run["table"]) == run["best"]["best_accuracy"]


def test_softmax_outputs_are_probabilities():
    run = _quick_result("ch3-softmax")["runs"][0]
    assert run["max_sum_error"] < 1e-9
    assert run["checks"]["outputs sum to 1"] is True


def test_more_data_without_scikit_learn_records_the_svm_as_missing(monkeypatch):
    if real_mnist_dir() is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)       # makes "from sklearn.svm import SVC" fail
    monkeypatch.setattr(ch3, "_SVM_CACHE", {})
    config = ch3.MoreData(training_sizes=(100,), images_seen=1000, evaluation_size=200)
    run = ch3.run_more_data(config, Context(seed=1, data_dir=str(real_mnist_dir())))
    assert run["svm_accuracy"] == [None] and run["svm_missing"]
    assert run["value"] == run["accuracy"][-1] and 0.0 <= run["value"] <= 1.0
