"""Training: update rules in closed form, schedules, early stopping, seeding, bad input, divergence."""

import json

import numpy as np
import pytest
from conftest import blobs

from nndl.engine.backprop import Backprop
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.engine.optimizers import SGD
from nndl.engine.regularizers import L1, L2
from nndl.errors import ConfigError, InputError
from nndl.training import train
from nndl.training.config import TrainingConfig
from nndl.training.history import History
from nndl.training.plateau import Plateau


def one_batch(seed=0, m=4, sizes=(3, 4, 2)):
    rng = np.random.default_rng(seed)
    return rng.random((m, sizes[0])), rng.integers(0, sizes[-1], size=m)


def gradients(net, x, labels):
    """Mean gradient of P = [W | b] per layer, from FeedforwardNetwork.backprop."""
    nabla_w, nabla_b = net.backprop(x, labels)
    return [np.hstack([w, b[:, None]]) / x.shape[0] for w, b in zip(nabla_w, nabla_b)]


def step(net, optimizer, x, labels, fused=True):
    """One update of ``optimizer`` on the mini-batch: the fused BLAS path, or the plain rule from gradients."""
    if not fused:
        optimizer.step(gradients(net, x, labels))
        return
    work = Backprop(net, x.shape[0])
    work.x[...] = x
    work.forward()
    work.backward(net.targets(labels))
    optimizer._step_from_backprop(work, x.shape[0])


# --- closed-form update rules -------------------------------------------------

FUSED = pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])


@FUSED
def test_plain_sgd_step(fused):
    net = FeedforwardNetwork((3, 4, 2), seed=0)
    x, labels = one_batch()
    before, g = net.copy_params(), gradients(net, x, labels)
    step(net, SGD(net.params, 0.5), x, labels, fused)
    for p, p0, gl in zip(net.params, before, g):
        np.testing.assert_allclose(p, p0 - 0.5 * gl, rtol=1e-12)


@FUSED
def test_l2_weight_decay_step(fused):
    """w -> (1 - eta lambda/n) w - eta g ; biases are not decayed."""
    net = FeedforwardNetwork((3, 4, 2), seed=1)
    x, labels = one_batch(1)
    eta, lmbda, n = 0.5, 5.0, 50
    before, g = net.copy_params(), gradients(net, x, labels)
    step(net, SGD(net.params, eta, weight_decay=L2(lmbda), n=n), x, labels, fused)
    for p, p0, gl in zip(net.params, before, g):
        np.testing.assert_allclose(p[:, :-1], (1 - eta * lmbda / n) * p0[:, :-1] - eta * gl[:, :-1], rtol=1e-12)
        np.testing.assert_allclose(p[:, -1], p0[:, -1] - eta * gl[:, -1], rtol=1e-12)


@FUSED
def test_l1_step(fused):
    """w -> w - (eta lambda/n) sgn(w) - eta g."""
    net = FeedforwardNetwork((3, 4, 2), seed=2)
    x, labels = one_batch(2)
    eta, lmbda, n = 0.5, 5.0, 50
    before, g = net.copy_params(), gradients(net, x, labels)
    step(net, SGD(net.params, eta, weight_decay=L1(lmbda), n=n), x, labels, fused)
    for p, p0, gl in zip(net.params, before, g):
        expected = p0[:, :-1] - eta * lmbda / n * np.sign(p0[:, :-1]) - eta * gl[:, :-1]
        np.testing.assert_allclose(p[:, :-1], expected, rtol=1e-12)
        np.testing.assert_allclose(p[:, -1], p0[:, -1] - eta * gl[:, -1], rtol=1e-12)


@FUSED
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps(nesterov, fused):
    """v' = mu v - eta g;  w' = w + v'  (Nesterov: w' = w + mu v' - eta g)."""
    net = FeedforwardNetwork((3, 4, 2), seed=3)
    x, labels = one_batch(3)
    eta, mu = 0.4, 0.9
    opt = SGD(net.params, eta, momentum=mu, nesterov=nesterov)
    w = net.copy_params()
    v = [np.zeros_like(p) for p in w]
    for _ in range(2):
        g = gradients(net, x, labels)
        step(net, opt, x, labels, fused)
        for l in range(len(w)):
            v[l] = mu * v[l] - eta * g[l]
            w[l] = w[l] + (mu * v[l] - eta * g[l] if nesterov else v[l])
            np.testing.assert_allclose(net.params[l], w[l], rtol=1e-12)


@FUSED
def test_momentum_with_l2_adds_the_decay_to_the_gradient(fused):
    net = FeedforwardNetwork((3, 4, 2), seed=4)
    x, labels = one_batch(4)
    eta, mu, lmbda, n = 0.3, 0.5, 2.0, 20
    before, g = net.copy_params(), gradients(net, x, labels)
    step(net, SGD(net.params, eta, momentum=mu, weight_decay=L2(lmbda), n=n), x, labels, fused)
    for p, p0, gl in zip(net.params, before, g):
        gl = gl.copy()
        gl[:, :-1] += lmbda / n * p0[:, :-1]
        np.testing.assert_allclose(p, p0 - eta * gl, rtol=1e-12)  # first step from rest: v' = -eta g


def test_plateau_counts_epochs_since_the_best():
    plateau = Plateau()
    improved = [plateau.update(epoch, a) for epoch, a in enumerate([0.5, 0.7, 0.6, 0.7, 0.69, 0.71])]
    assert improved == [True, True, False, False, False, True]      # equal to the best is no improvement
    assert plateau.best == 0.71 and plateau.best_epoch == 5 and plateau.since_best == 0
    for epoch in range(6, 12):
        plateau.update(epoch, 0.1)
    assert plateau.since_best == 6
    assert plateau.stalled_for(3) and plateau.stalled_for(2) and not plateau.stalled_for(4)


def _scripted_run(accuracies, monkeypatch, **settings):
    """train() on a tiny problem with the evaluation accuracy after epoch j forced to accuracies[j]."""
    import nndl.training.numpy_engine as loop
    script = iter(accuracies)
    real = loop._measure

    def measure(*args):
        measured = real(*args)
        measured["evaluation_accuracy"] = next(script)
        return measured
    monkeypatch.setattr(loop, "_measure", measure)
    x, labels = blobs(n=40, n_in=3, k=2, seed=0)
    net = FeedforwardNetwork((3, 2), seed=0)
    return train(net, (x, labels), epochs=len(accuracies), mini_batch_size=10, eta=1.0,
                 evaluation_data=(x, labels), **settings)


def test_halve_on_plateau_schedule(monkeypatch):
    history = _scripted_run([0.5, 0.6, 0.6, 0.6, 0.7, 0.6, 0.6] + [0.1] * 20, monkeypatch, schedule="halve",
                            patience=2)
    # improvements at epochs 0, 1, 4; halvings after each 2 epochs without improvement
    assert history.eta[:8] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    assert history.stop_reason == "learning-rate schedule" and "1/128" in history.message
    assert history.eta[-1] == pytest.approx(2 / 128)          # it stops when eta reaches 1/128


def test_early_stopping_rule(monkeypatch):
    history = _scripted_run([0.5, 0.7, 0.6, 0.7, 0.69, 0.9], monkeypatch, early_stopping=3)
    assert history.epochs == [0, 1, 2, 3, 4] and history.stop_reason == "early stopping"
    assert history.best_epoch == 1


# --- training runs on small data ---------------------------------------------

@pytest.fixture(scope="module")
def problem():
    x, labels = blobs(n=600, n_in=10, k=4, seed=1)
    return (x[:450], labels[:450]), (x[450:], labels[450:])


@pytest.mark.parametrize("kwargs", [
    dict(activations="sigmoid", cost="quadratic", init="large", eta=3.0),
    dict(activations="sigmoid", cost="cross-entropy", eta=0.5),
    dict(activations=["tanh", "softmax"], cost="log-likelihood", eta=0.1),
    dict(activations=["relu", "softmax"], cost="log-likelihood", eta=0.05),
    dict(activations="sigmoid", cost="cross-entropy", eta=0.5, lmbda=1.0),
    dict(activations="sigmoid", cost="cross-entropy", eta=0.5, lmbda=1.0, regularization="l1"),
    dict(activations="sigmoid", cost="cross-entropy", eta=0.1, momentum=0.9),
    dict(activations="sigmoid", cost="cross-entropy", eta=0.1, momentum=0.9, nesterov=True),
    dict(activations="sigmoid", cost="cross-entropy", eta=0.5, p_dropout=0.3),
    dict(activations="sigmoid", cost="cross-entropy", eta=0.5, dtype=np.float32),
])
def test_each_configuration_learns(problem, kwargs):
    kwargs = dict(kwargs)
    net_args = {k: kwargs.pop(k) for k in ("activations", "cost", "init", "dtype") if k in kwargs}
    net = FeedforwardNetwork((10, 20, 4), seed=0, **net_args)
    eta = kwargs.pop("eta")
    history = train(net, problem[0], epochs=15, mini_batch_size=10, eta=eta, evaluation_data=problem[1], seed=0,
                    **kwargs)
    assert history.stop_reason == "completed"
    assert history.best_accuracy > 0.9, history.evaluation_accuracy
    assert net.params[0].dtype == net_args.get("dtype", np.float64)


def test_same_seed_same_numbers_different_seed_different(problem):
    def run(seed):
        net = FeedforwardNetwork((10, 8, 4), seed=seed)
        train(net, problem[0], epochs=2, mini_batch_size=10, eta=0.5, seed=seed, p_dropout=0.2)
        return net.params
    a, b, c = run(7), run(7), run(8)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a[0], c[0])


def test_last_mini_batch_may_be_smaller(problem):
    x, labels = problem[0]
    net = FeedforwardNetwork((10, 5, 4), seed=0)
    history = train(net, (x[:23], labels[:23]), epochs=1, mini_batch_size=10, eta=0.5)   # batches of 10, 10, 3
    assert history.epochs == [0]
    assert net.parameters_finite()


def test_monitoring_records_all_four_and_history_round_trips(problem, tmp_path):
    net = FeedforwardNetwork((10, 12, 4), seed=0)
    monitor = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")
    history = train(net, problem[0], epochs=3, mini_batch_size=10, eta=0.5, lmbda=0.5, evaluation_data=problem[1],
                    monitor=monitor)
    for name in monitor + ("eta", "epoch_time", "monitor_time"):
        assert len(getattr(history, name)) == 3, name
    # the costs include the regularisation term
    from nndl.engine.regularizers import L2
    x, labels = problem[0]
    assert history.training_cost[-1] == pytest.approx(net.total_cost(x, labels, L2(0.5), n=len(labels)))
    assert history.training_cost[-1] > net.total_cost(x, labels)
    history.save(tmp_path / "h.json")
    loaded = History.load(tmp_path / "h.json")
    assert loaded == history


def test_history_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "h.json"
    data = History().to_dict()
    data["version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="newer"):
        History.load(path)


def test_early_stopping_restores_the_best_weights(problem):
    net = FeedforwardNetwork((10, 12, 4), seed=0)
    saved = {}

    def remember(history):
        saved[history.epochs[-1]] = net.copy_params()
    history = train(net, problem[0], epochs=200, mini_batch_size=10, eta=0.5, evaluation_data=problem[1],
                    early_stopping=3, on_epoch=remember)
    assert history.stop_reason == "early stopping"
    assert len(history.epochs) < 200
    assert history.epochs[-1] - history.best_epoch == 3
    for p, b in zip(net.params, saved[history.best_epoch]):
        np.testing.assert_array_equal(p, b)


def test_schedule_stops_training(problem):
    net = FeedforwardNetwork((10, 12, 4), seed=0)
    history = train(net, problem[0], epochs=500, mini_batch_size=10, eta=0.5, evaluation_data=problem[1],
                    schedule="halve", patience=2)
    assert history.stop_reason == "learning-rate schedule"
    assert history.eta[0] == 0.5 and history.eta[-1] == pytest.approx(0.5 / 64)
    assert len(history.epochs) < 500


def test_divergence_is_reported_not_crashed(problem):
    net = FeedforwardNetwork((10, 30, 4), activations=["linear", "linear"], cost="quadratic", seed=0)
    history = train(net, problem[0], epochs=5, mini_batch_size=10, eta=1e6, evaluation_data=problem[1])
    assert history.stop_reason == "diverged"
    assert "diverged" in history.message and "eta" in history.message
    assert net.parameters_finite()


def test_saturation_is_reported():
    """A huge learning rate drives sigmoids into saturation: accuracy stays at chance, and it says so."""
    x, labels = blobs(n=400, n_in=10, k=10, seed=3)
    net = FeedforwardNetwork((10, 30, 10), cost="quadratic", init="large", seed=0)
    history = train(net, (x[:300], labels[:300]), epochs=3, mini_batch_size=10, eta=1e5, seed=0,
                    evaluation_data=(x[300:], labels[300:]))
    assert history.stop_reason == "saturated"
    assert "saturated" in history.message and "smaller learning rate" in history.message


def test_keyboard_interrupt_stops_cleanly(problem, monkeypatch):
    net = FeedforwardNetwork((10, 12, 4), seed=0)
    calls = {"n": 0}
    original = Backprop.forward

    def forward(self):
        calls["n"] += 1
        if calls["n"] == 100:   # in the third epoch (45 mini-batches an epoch)
            raise KeyboardInterrupt
        return original(self)
    monkeypatch.setattr(Backprop, "forward", forward)
    history = train(net, problem[0], epochs=10, mini_batch_size=10, eta=0.5, evaluation_data=problem[1],
                    restore_best=True)
    assert history.stop_reason == "interrupted"
    assert history.epochs == [0, 1]
    assert net.parameters_finite()


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), "epochs"), (dict(mini_batch_size=0), "mini-batch"), (dict(eta=0.0), "eta"),
    (dict(eta=-1.0), "eta"), (dict(lmbda=-0.1), "lambda"), (dict(p_dropout=1.0), "dropout"),
    (dict(p_dropout=-0.1), "dropout"), (dict(momentum=1.0), "momentum"),
    (dict(nesterov=True), "Nesterov"), (dict(regularization="l3", lmbda=1.0), "regularisation"),
    (dict(early_stopping=3), "validation"), (dict(schedule="halve"), "validation"),
    (dict(monitor=("evaluation_cost",)), "evaluation data"), (dict(monitor=("bogus",)), "monitor"),
    (dict(epochs=2.5), "epochs"), (dict(lmbda=1e9), "lambda = 1e\\+09 is too large"),
    (dict(bogus=1), "unknown training setting"), (dict(eta=float("nan")), "eta"),
])
def test_bad_training_arguments(problem, kwargs, match):
    args = dict(epochs=1, mini_batch_size=10, eta=0.5)
    args.update(kwargs)
    net = FeedforwardNetwork((10, 5, 4), seed=0)
    with pytest.raises(ConfigError, match=match):
        train(net, problem[0], epochs=args.pop("epochs"), mini_batch_size=args.pop("mini_batch_size"),
              eta=args.pop("eta"), **args)


def test_training_data_that_does_not_fit_the_network(problem):
    net = FeedforwardNetwork((7, 5, 4), seed=0)
    with pytest.raises(InputError, match="input layer has 7 neurons but the training data have 10"):
        train(net, problem[0], epochs=1, mini_batch_size=10, eta=0.5)
    with pytest.raises(ValueError, match="inputs but"):
        train(FeedforwardNetwork((10, 5, 4)), (problem[0][0], problem[0][1][:5]), epochs=1, mini_batch_size=10, eta=0.5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(sizes=[10]), "at least an input"),
    (dict(sizes=[10, 0, 4]), "every layer size must be a whole number of at least 1"),
    (dict(activations=["softmax", "sigmoid"]), "softmax can only be the output"),
    (dict(activations="swish"), "unknown activation"), (dict(cost="hinge"), "unknown cost"),
    (dict(activations=["sigmoid", "tanh"], cost="cross-entropy"), "cross-entropy"),
    (dict(activations=["sigmoid", "relu"], cost="log-likelihood"), "log-likelihood"),
    (dict(init="huge"), "initialis"), (dict(dtype=np.int32), "dtype"),
    (dict(activations=["sigmoid"]), "activations"),
])
def test_bad_network_arguments(kwargs, match):
    args = dict(sizes=[10, 5, 4])
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        FeedforwardNetwork(args.pop("sizes"), **args)


def test_softmax_outputs_sum_to_one():
    net = FeedforwardNetwork((6, 5, 4), activations=["sigmoid", "softmax"], cost="log-likelihood", seed=0)
    out = net.feedforward(np.random.default_rng(0).random((7, 6)) * 100)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert np.all(out > 0)


def test_ctrl_c_during_the_measurements_keeps_the_history_consistent(problem, monkeypatch, tmp_path):
    net = FeedforwardNetwork((10, 12, 4), seed=0)
    calls = {"n": 0}
    original = FeedforwardNetwork.feedforward

    def feedforward(self, x):
        calls["n"] += 1
        if calls["n"] == 2:          # measuring after the second epoch
            raise KeyboardInterrupt
        return original(self, x)
    monkeypatch.setattr(FeedforwardNetwork, "feedforward", feedforward)
    history = train(net, problem[0], epochs=5, mini_batch_size=10, eta=0.5, evaluation_data=problem[1])
    assert history.stop_reason == "interrupted"
    assert len(history.epochs) == len(history.eta) == len(history.evaluation_accuracy) == 1
    history.save(tmp_path / "h.json")
    assert History.load(tmp_path / "h.json").epochs == [0]


# --- inputs checked before training --------------------------------------------

@pytest.mark.parametrize("change,match", [
    (lambda x, y: (np.round(x * 255), y), "0-255 pixel values.*scale them by 1/255"),
    (lambda x, y: (np.round(x * 255).astype(np.uint8), y), "0-255 pixel values"),
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), y), "nan or infinite"),
    (lambda x, y: (x[:0], y[:0]), "empty"),
    (lambda x, y: (x, y + 0.5), "whole numbers"),
    (lambda x, y: (x, y * 50), "must lie in 0..3"),
    (lambda x, y: (x, y.astype(str)), "integer labels"),
    (lambda x, y: (x[:, :, None], y), r"shape \(n, 10\)"),
])
def test_training_data_is_checked(problem, change, match):
    x, y = change(*problem[0])
    with pytest.raises(InputError, match=match):
        train(FeedforwardNetwork((10, 5, 4), seed=0), (x, y), epochs=1, mini_batch_size=10, eta=0.5)


@pytest.mark.parametrize("labels,match", [
    (lambda y: np.where(np.arange(y.size) == 3, 200, y), "must lie in 0..3"),
    (lambda y: np.eye(4)[y] * 0.9, "one-hot"),
    (lambda y: np.eye(4)[y] + np.eye(4)[(y + 1) % 4], "one-hot"),
])
def test_evaluation_labels_are_checked(problem, labels, match):
    """A test label of 200 is an error, not an example counted as wrong; 2-d labels must be exactly one-hot."""
    x, y = problem[1]
    net = FeedforwardNetwork((10, 5, 4), seed=0)
    with pytest.raises(InputError, match=match):
        train(net, problem[0], epochs=1, mini_batch_size=10, eta=0.5, evaluation_data=(x, labels(y)))
    with pytest.raises(InputError, match=match):
        net.evaluate(x, labels(y))


def test_one_hot_evaluation_labels_are_accepted(problem):
    x, y = problem[1]
    net = FeedforwardNetwork((10, 5, 4), seed=0)
    assert net.evaluate(x, np.eye(4)[y]) == net.evaluate(x, y)


def test_training_targets_are_used_as_given():
    """Soft targets (rows that are not one-hot) train towards themselves, not towards their argmax."""
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    soft = np.array([[0.3, 0.7], [0.6, 0.4], [0.6, 0.4], [0.3, 0.7]])
    net = FeedforwardNetwork((2, 8, 2), cost="cross-entropy", seed=0)
    train(net, (x, soft), epochs=3000, mini_batch_size=4, eta=2.0, seed=0)
    np.testing.assert_allclose(net.feedforward(x), soft, atol=0.02)


def test_weight_decay_that_flips_the_weights_is_refused_before_training(problem):
    """eta lambda / n >= 1 is a lambda problem, and is said to be one before any epoch runs."""
    with pytest.raises(ConfigError, match=r"lambda = 5000 is too large.*lambda < n/eta = 900"):
        train(FeedforwardNetwork((10, 5, 4), seed=0), problem[0], epochs=1, mini_batch_size=10, eta=0.5,
              lmbda=5000.0)


def test_a_config_object_and_keyword_changes(problem):
    config = TrainingConfig(epochs=2, mini_batch_size=10, eta=0.5, seed=3)
    a = train(FeedforwardNetwork((10, 5, 4), seed=0), problem[0], config, evaluation_data=problem[1])
    b = train(FeedforwardNetwork((10, 5, 4), seed=0), problem[0], config.replace(epochs=1), epochs=2,
              evaluation_data=problem[1])
    assert a.config == config.replace(last_batch="train", best_on_tie=False)
    assert a.evaluation_accuracy == b.evaluation_accuracy
