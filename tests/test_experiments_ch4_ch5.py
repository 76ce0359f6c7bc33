"""Chapters 4 and 5 of the experiment registry: universality by bumps and towers, unstable gradients."""

import numpy as np
import pytest
from conftest import real_mnist_dir

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import ConfigError
from nndl.experiments import Context, ch4, ch5, experiments

CH4_CH5 = [i for i in ("ch4-bumps", "ch4-towers", "ch4-trained", "ch5-speed-init", "ch5-speed-training",
                       "ch5-depth-accuracy", "ch5-chain")]


# --- chapter 4 --------------------------------------------------------------

def test_bump_network_weights_follow_the_book():
    weights, biases = ch4.bump_parameters(4, w=1000.0)
    # two bumps: steps at -0.01 (outer edge moved out by 10/w), 0.5 | 0.5, 1.01
    steps = -biases[0] / weights[0][:, 0]
    assert np.allclose(steps, [-0.01, 0.5, 0.5, 1.01])
    h = weights[1][0]
    assert h[0] == -h[1] and h[2] == -h[3]
    # heights are sigma^-1 of f at the bumps' centres (0.25 and 0.75)
    assert np.allclose(ch4.sigmoid(h[[0, 2]]), ch4.f(np.array([0.25, 0.75])))
    # well inside a bump the network outputs f at the bump's centre
    out = ch4.bump_feedforward(weights, biases, [0.25, 0.75])
    assert np.allclose(out, ch4.f(np.array([0.25, 0.75])), atol=1e-6)


def test_bump_error_falls_as_neurons_grow():
    errors = [ch4.bump_max_error(n, 1000.0, 2001) for n in (10, 40, 160)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 8
    assert ch4.falls(errors) and not ch4.falls(errors[::-1])


def test_bump_configuration_is_checked():
    with pytest.raises(ConfigError):
        ch4.Bumps(hidden=(10, 15))                      # odd: bumps are pairs
    with pytest.raises(ConfigError):
        ch4.Bumps(hidden=(20, 10))                      # must increase
    with pytest.raises(ConfigError):
        ch4.Bumps(w=0)


def test_bumps_quick_run_shows_falling_error():
    experiment = experiments()["ch4-bumps"]
    result = experiment.run(experiment.settings(quick=True), Context())
    assert result["shown"] is True
    assert result["value"] == result["max_error"][-1] < result["max_error"][0] / 10


def test_tower_error_falls_as_the_grid_refines():
    g = np.linspace(0, 1, 33)
    X, Y = np.meshgrid(g, g, indexing="ij")
    points = np.stack([X.ravel(), Y.ravel()], axis=1)
    target = ch4.f2(points[:, 0], points[:, 1])
    errors = [float(np.abs(ch4.tower_approximation(points, cells, copies) - target).max())
              for cells, copies in ((2, 1), (4, 2), (8, 4))]
    assert errors[0] > errors[1] > errors[2]
    # one copy fails at the cell corners: there the network's output drops toward sigma(0) = 1/2 or below
    plain = np.abs(ch4.tower_approximation(points, 8, 1) - target).max()
    assert plain > errors[2]


def test_towers_quick_run_shows_falling_error():
    experiment = experiments()["ch4-towers"]
    result = experiment.run(experiment.settings(quick=True), Context())
    assert result["shown"] is True
    assert len(result["towers"]) == len(result["max_error"]) == 3


# --- chapter 5 --------------------------------------------------------------

def test_speed_of_learning_rises_from_first_to_last_layer_on_a_synthetic_batch():
    rng = np.random.default_rng(0)
    x = rng.random((200, 784)) * (rng.random((200, 784)) < 0.2)    # sparse, pixel-like inputs in [0, 1]
    labels = rng.integers(0, 10, size=200)
    for seed in range(3):
        net = FeedforwardNetwork([784, 30, 30, 30, 30, 10], cost="cross-entropy", init="default", seed=seed)
        norms = ch5.speed_of_learning(net, x, labels)
        assert len(norms) == 4
        assert norms[0] < norms[1] < norms[2] < norms[3]


def test_speed_of_learning_is_the_norm_of_the_average_bias_gradient():
    rng = np.random.default_rng(1)
    x, labels = rng.random((5, 6)), rng.integers(0, 3, size=5)
    net = FeedforwardNetwork([6, 4, 3], cost="cross-entropy", seed=0)
    one_by_one = sum(net.backprop(x[i:i + 1], labels[i:i + 1])[1][0] for i in range(5)) / 5
    assert ch5.speed_of_learning(net, x, labels) == pytest.approx([np.linalg.norm(one_by_one)])


def test_speed_init_on_mnist_rises_and_is_near_the_book():
    directory = real_mnist_dir()
    if directory is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    experiment = experiments()["ch5-speed-init"]
    result = experiment.run(ch5.SpeedInit(networks=3), Context(seed=0, data_dir=str(directory)))
    assert result["shown"] is True
    for mean in result["mean"]:
        assert all(b > a for a, b in zip(mean, mean[1:]))
    # the 4-hidden-layer net's first/last ratio is of the book's order (0.0105), well below 1
    assert 0.003 < result["value"] < 0.03


def test_exploding_chain_grows_by_w_over_4_per_layer():
    weights, biases = ch5.exploding_chain(5, w=100.0, x=1.0)
    gradients, terms = ch5.chain_gradients(weights, biases, x=1.0, y=0.0)
    assert np.allclose(terms, 25.0)
    assert np.allclose(gradients[:-1] / gradients[1:], 25.0)
    # the last layer: (a - y) sigma'(z) = 0.5 * 0.25
    assert gradients[-1] == pytest.approx(0.125)


def test_chain_gradients_match_the_books_product():
    rng = np.random.default_rng(3)
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    gradients, _ = ch5.chain_gradients(w, b, x=0.7, y=0.2)
    a, z = 0.7, []
    for wj, bj in zip(w, b):
        z.append(wj * a + bj)
        a = 1 / (1 + np.exp(-z[-1]))
    prime = [1 / (1 + np.exp(-zj)) * (1 - 1 / (1 + np.exp(-zj))) for zj in z]
    # dC/db_1 = sigma'(z_1) w_2 sigma'(z_2) w_3 sigma'(z_3) w_4 sigma'(z_4) dC/da_4
    expected = prime[0] * w[1] * prime[1] * w[2] * prime[2] * w[3] * prime[3] * (a - 0.2)
    assert gradients[0] == pytest.approx(abs(expected))


def test_vanishing_chain_shrinks_toward_the_first_layer():
    experiment = experiments()["ch5-chain"]
    result = experiment.run(experiment.settings(quick=True), Context(seed=0))
    median = result["random_median"]
    assert all(b > a for a, b in zip(median, median[1:]))
    assert result["value"] < 0.01
    exploding = result["exploding"]
    assert all(a > b for a, b in zip(exploding, exploding[1:]))
    assert result["shown"] is True


def test_depth_accuracy_builds_each_depth():
    config = ch5.DepthAccuracy()
    assert config.run_for(4).net.sizes == (784, 30, 30, 30, 30, 10)
    assert config.run_for(1).net.cost == "cross-entropy"
    with pytest.raises(ConfigError):
        ch5.DepthAccuracy(hidden_layers=(3, 2))


# --- every experiment of the two chapters ----------------------------------

@pytest.mark.parametrize("experiment_id", CH4_CH5)
def test_quick_run_and_plot(experiment_id, tmp_path):
    experiment = experiments()[experiment_id]
    directory = real_mnist_dir()
    if "mnist" in experiment.needs and directory is None:
        pytest.skip("the real MNIST files were not found (set NNDL_DATA)")
    config = experiment.settings(quick=True)
    seed = 1 if experiment.seeded else None
    run = experiment.run(config, Context(seed=seed, quick=True, data_dir=str(directory) if directory else None))
    import json
    run = json.loads(json.dumps(run))                     # JSON-ready, as the runner saves it
    assert "summary" in run and ("value" in run or "shown" in run)
    result = {"id": experiment.id, "title": experiment.title, "book": experiment.book, "target": experiment.target,
              "tolerance": experiment.tolerance, "unit": experiment.unit, "quick": True,
              "config": config.to_dict(), "runs": [dict(run, seed=seed, seconds=0.0)], "median": run.get("value"),
              "spread": 0.0, "within": None}
    path = tmp_path / f"{experiment_id}.png"
    experiment.plot(result, path)
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
