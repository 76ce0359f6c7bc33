"""Chapters 1 and 2 of the experiment registry: hand-built constructions checked exactly, baselines, every quick run."""

import numpy as np
import pytest
from conftest import real_mnist_dir

from nndl.engine.feedforward import FeedforwardNetwork, one_hot
from nndl.errors import ConfigError
from nndl.experiments import Context, ch1, ch2, experiments, get
from nndl.experiments.registry import config_dict

BITS = [(0, 0), (0, 1), (1, 0), (1, 1)]
IDS = [i for i in experiments() if i.startswith(("ch1-", "ch2-"))]


# --- perceptrons -------------------------------------------------------------------------------------

def test_the_book_perceptron_is_nand_on_its_whole_truth_table():
    x1, x2 = np.array(BITS).T
    assert ch1.nand(x1, x2).tolist() == [1, 1, 1, 0]
    assert ch1.perceptron(np.array(BITS), (-2, -2), 3).tolist() == [1, 1, 1, 0]
    result = get("ch1-nand").run(get("ch1-nand").config, Context())
    assert result["shown"] is True and result["weighted_input"] == [3.0, 1.0, 1.0, -1.0]


def test_a_perceptron_that_is_not_nand_is_reported():
    gate = ch1.PerceptronGate(weights=(2.0, 2.0), bias=-3.0)                   # AND
    result = get("ch1-nand").run(gate, Context())
    assert result["outputs"] == [0, 0, 0, 1] and result["shown"] is False


def test_on_the_boundary_the_perceptron_outputs_zero():
    assert ch1.perceptron([[1, 1]], (-1.5, -1.5), 3.0).tolist() == [0]       # w.x + b = 0 exactly


@pytest.mark.parametrize("merged", [False, True])
def test_the_nand_adder_adds_two_bits_exactly(merged):
    x1, x2 = np.array(BITS).T
    sum_bit, carry_bit = ch1.half_adder(x1, x2, merged=merged)
    assert [int(s) + 2 * int(c) for s, c in zip(sum_bit, carry_bit)] == [a + b for a, b in BITS]
    assert sum_bit.tolist() == [0, 1, 1, 0] and carry_bit.tolist() == [0, 0, 0, 1]


def test_the_adder_uses_only_its_gate():
    # with an OR gate in every place the circuit computes something else, and the run says so
    config = ch1.AdderConfig(gate=ch1.PerceptronGate(weights=(2.0, 2.0), bias=-1.0))
    result = get("ch1-adder").run(config, Context())
    assert result["shown"] is False
    assert get("ch1-adder").run(get("ch1-adder").config, Context())["shown"] is True


def test_gate_settings_are_checked():
    with pytest.raises(ConfigError):
        ch1.PerceptronGate(weights=(1.0,))
    with pytest.raises(ConfigError):
        ch1.PerceptronGate(bias=float("nan"))
    with pytest.raises(ConfigError):
        ch1.SigmoidLimitConfig(scales=(10.0, 1.0))


def test_sigmoid_neurons_approach_the_perceptron_as_c_grows():
    experiment = get("ch1-sigmoid-limit")
    result = experiment.run(experiment.config, Context())
    difference = result["max_difference"]
    assert all(b < a for a, b in zip(difference, difference[1:]))
    assert difference[0] > 0.1 and difference[-1] < 1e-3 and result["shown"] is True
    # the largest difference sits at the margin: sigma(-c * margin)
    assert difference[-1] == pytest.approx(1 / (1 + np.exp(100 * 0.1)), rel=0.05)


# --- the 4-bit output layer ----------------------------------------------------------------------------

def test_the_binary_layer_reads_every_one_hot_output_exactly():
    w, b = ch1.binary_output_layer()
    assert w.shape == (4, 10) and b.shape == (4,)
    for digit in range(10):
        for high, low in ((1.0, 0.0), (0.99, 0.01)):
            a = np.full((1, 10), low)
            a[0, digit] = high
            assert ch1._decode(a, w, b).tolist() == [digit]


def test_the_binary_layer_holds_for_every_output_the_exercise_allows():
    w, b = ch1.binary_output_layer()
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 10, size=2000)
    a = rng.uniform(0.0, 0.01, size=(2000, 10))                              # others at most 0.01
    a[np.arange(2000), digits] = rng.uniform(0.99, 1.0, size=2000)          # the correct one at least 0.99
    assert np.array_equal(ch1._decode(a, w, b), digits)
    # and the worst corner of that box is still on the right side for every bit
    for digit in range(10):
        z_min, z_max = ch1._worst_case(w, b, digit, 0.99, 0.01)
        bits = (digit // ch1.BIT_VALUES) % 2
        assert np.all(z_min[bits == 1] > 0) and np.all(z_max[bits == 0] < 0)


def test_a_too_weak_binary_layer_is_caught_by_the_worst_case():
    w, b = ch1.binary_output_layer(weight=10.0)
    b = b - 9.5                                                              # every bit pushed towards 0
    z_min, _ = ch1._worst_case(w, b, 9, 0.99, 0.01)                          # digit 9 = 1001
    assert np.any(z_min[[0, 3]] < 0)


# --- baselines ---------------------------------------------------------------------------------------------

def test_darkness_classifier_on_a_made_up_set():
    images = np.zeros((4, 784), dtype=np.float32)
    images[0, :10] = 1.0                                                     # darkness 10: digit 0
    images[1, :50] = 1.0                                                     # darkness 50: digit 1
    labels = np.array([0, 1, 0, 1])
    images[2, :12] = 1.0
    images[3, :40] = 1.0
    averages = ch1.average_darkness(images, labels)
    assert averages[0] == pytest.approx(11.0) and averages[1] == pytest.approx(45.0)
    assert np.isnan(averages[2:]).all()
    test = np.zeros((2, 784), dtype=np.float32)
    test[0, :20] = 1.0
    test[1, :30] = 1.0
    assert ch1.classify_by_darkness(test, averages).tolist() == [0, 1]       # unseen digits are never guessed


def _context():
    directory = real_mnist_dir()
    if directory is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    return Context(seed=1, quick=True, data_dir=str(directory))


def test_darkness_baseline_on_a_subset():
    experiment = get("ch1-darkness")
    result = experiment.run(ch1.DarknessConfig(training_size=5000, evaluation_size=2000), _context())
    assert result["n"] == 2000 and result["n_training"] == 5000
    assert 0.15 < result["value"] < 0.30                                    # the book: 22.25% on everything
    darkness = result["average_darkness"]
    assert darkness.index(min(darkness)) == 1 and darkness.index(max(darkness)) == 0   # 1 is lightest, 0 darkest


def test_random_baseline_is_near_ten_percent_and_seeded():
    experiment = get("ch1-random")
    context = _context()
    a = experiment.run(experiment.config, context)
    b = experiment.run(experiment.config, context)
    assert a["value"] == b["value"] and abs(a["value"] - 0.10) < 0.01 and a["n"] == 10000


def test_svm_baseline_on_a_subset():
    pytest.importorskip("sklearn")
    experiment = get("ch1-svm")
    result = experiment.run(ch1.SvmConfig(training_size=300, evaluation_size=200), _context())
    assert result["n"] == 200 and result["n_training"] == 300
    assert 0.5 < result["value"] < 0.95
    assert np.array(result["confusion"]).sum() == 200
    assert np.trace(np.array(result["confusion"])) == result["correct"]


def test_svm_reproduces_the_books_100_image_result_exactly():
    # chapter 3's "more data" comparison: SVC trained on the first 100 training images classifies
    # 2,507 of the 10,000 validation images correctly -- only with the book's k/256 pixels
    pytest.importorskip("sklearn")
    experiment = get("ch1-svm")
    context = _context()
    result = experiment.run(ch1.SvmConfig(training_size=100, evaluate_on="validation"), context)
    assert result["correct"] == 2507 and result["n"] == 10000
    plain = experiment.run(ch1.SvmConfig(training_size=100, evaluate_on="validation", book_pixels=False), context)
    assert plain["correct"] != 2507


def test_svm_settings_are_checked():
    with pytest.raises(ConfigError):
        ch1.SvmConfig(gamma="sometimes")
    with pytest.raises(ConfigError):
        ch1.SvmConfig(kernel="quantum")
    with pytest.raises(ConfigError):
        ch1.SvmConfig(evaluate_on="training")
    assert ch1.SvmConfig(gamma=0.01).gamma == 0.01


# --- chapter 2 --------------------------------------------------------------------------------------------

def test_gradcheck_is_below_its_bound():
    experiment = get("ch2-gradcheck")
    result = experiment.run(experiment.config, Context(seed=3))
    assert result["value"] < ch2.GRADCHECK_BOUND and result["shown"] is True
    assert len(result["cases"]) == len(ch2.gradcheck_cases(experiment.config)) == 12
    assert experiment.within(result["value"]) is True


def test_gradcheck_would_see_a_wrong_gradient():
    from nndl.engine.costs import QuadraticCost
    from nndl.engine.gradcheck import check_gradients

    class WrongCost(QuadraticCost):
        def delta(self, z, a, y, activation, tmp, out):                      # BP1 without sigma'(z)
            return np.subtract(a, y, out=out)

    net = FeedforwardNetwork((3, 4, 2), activations="sigmoid", cost="quadratic", seed=0)
    x, labels = np.random.default_rng(0).random((5, 3)), np.array([0, 1, 1, 0, 1])
    assert check_gradients(net, x, labels, h=1e-5).max_relative_error < ch2.GRADCHECK_BOUND
    net.cost = WrongCost()
    assert check_gradients(net, x, labels, h=1e-5).max_relative_error > 1e3 * ch2.GRADCHECK_BOUND


@pytest.mark.parametrize("sizes, m", [((784, 30, 10), 10), ((6, 5, 4, 3), 7)])
def test_matrix_backprop_equals_the_per_example_loop(sizes, m):
    from nndl.engine.backprop import Backprop
    rng = np.random.default_rng(5)
    net = FeedforwardNetwork(sizes, activations="sigmoid", cost="quadratic", init="large", seed=5)
    x = rng.random((m, sizes[0]))
    y = one_hot(rng.integers(0, sizes[-1], size=m), sizes[-1])
    grads = ch2.matrix_gradient(Backprop(net, m), x, y)
    nabla_w, nabla_b = ch2.per_example_gradient([w.copy() for w in net.weights],
                                                [b.reshape(-1, 1).copy() for b in net.biases],
                                                [r.reshape(-1, 1) for r in x], [r.reshape(-1, 1) for r in y])
    for g, w, b in zip(grads, nabla_w, nabla_b):
        np.testing.assert_allclose(g[:, :-1], w, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g[:, -1], b[:, 0], rtol=1e-12, atol=1e-14)
    # and both equal the engine's own backprop
    engine_w, _ = net.backprop(x, y)
    np.testing.assert_allclose(engine_w[0], nabla_w[0], rtol=1e-12, atol=1e-14)


def test_matrix_speed_run_reports_agreement_and_a_ratio():
    experiment = get("ch2-matrix-speed")
    result = experiment.run(experiment.quick, Context(seed=1))
    assert result["max_abs_difference"] <= ch2.AGREEMENT
    assert result["value"] == pytest.approx(result["seconds_per_example_loop"] / result["seconds_matrix"])
    assert result["shown"] == (result["value"] > 1)


# --- the registry: every quick run, with its figure ------------------------------------------------------

def test_the_registry_has_chapters_1_and_2_in_order():
    assert IDS == ["ch1-nand", "ch1-adder", "ch1-sigmoid-limit", "ch1-binary-output", "ch1-30-hidden",
                   "ch1-100-hidden", "ch1-eta-0.001", "ch1-eta-100", "ch1-no-hidden", "ch1-random",
                   "ch1-darkness", "ch1-svm", "ch2-gradcheck", "ch2-matrix-speed"]
    assert get("ch1-darkness").target == 0.2225 and not get("ch1-darkness").seeded
    assert get("ch1-svm").needs == ("mnist", "sklearn")


@pytest.mark.parametrize("experiment_id", IDS)
def test_quick_run_and_figure(experiment_id, tmp_path):
    import json
    experiment = get(experiment_id)
    if "sklearn" in experiment.needs:
        pytest.importorskip("sklearn")
    context = _context() if "mnist" in experiment.needs else Context(seed=1, quick=True)
    if not experiment.seeded:
        context.seed = None
    config = experiment.settings(quick=True)
    run = experiment.run(config, context)
    run = json.loads(json.dumps(run))                                        # JSON-ready, as it is saved
    assert run.get("value") is not None or run.get("shown") is not None
    if run.get("shown") is not None:
        assert isinstance(run["shown"], bool)
    result = {"id": experiment.id, "title": experiment.title, "book": experiment.book, "target": experiment.target,
              "tolerance": experiment.tolerance, "unit": experiment.unit, "quick": True,
              "config": config_dict(config), "runs": [{**run, "seed": context.seed, "seconds": 0.0}]}
    path = tmp_path / f"{experiment_id}.png"
    experiment.plot(result, path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
