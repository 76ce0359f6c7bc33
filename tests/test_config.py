"""The typed configurations: validation, dict round trips, and old history files."""

import json

import numpy as np
import pytest

from nndl.errors import ConfigError, FileFormatError
from nndl.training.config import NetworkConfig, TrainingConfig
from nndl.training.history import History


def test_round_trip_through_json():
    config = TrainingConfig(epochs=60, eta=0.1, lmbda=5.0, momentum=0.9, nesterov=True, schedule="halve",
                            monitor=["training_cost", "evaluation-accuracy"], seed=4)
    assert TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    network = NetworkConfig(sizes=[784, 100, 10], activations="relu", cost="log-likelihood") \
        if False else NetworkConfig(sizes=[784, 100, 10], activations=["relu", "softmax"], cost="nll")
    assert network.activations == ("relu", "softmax") and network.cost == "log-likelihood"
    assert NetworkConfig.from_dict(json.loads(json.dumps(network.to_dict()))) == network


def test_names_are_normalised():
    config = TrainingConfig(regularization="L1", schedule=" Halve ", monitor="Training_Cost")
    assert (config.regularization, config.schedule, config.monitor) == ("l1", "halve", ("training_cost",))
    assert NetworkConfig(activations="Sigmoid", cost="Cross_Entropy").cost == "cross-entropy"


@pytest.mark.parametrize("data,match", [
    ({"eta": 0}, "eta"), ({"eta": "fast"}, "eta"), ({"eta": float("inf")}, "eta"), ({"epochs": -1}, "epochs"),
    ({"epochs": True}, "epochs"), ({"momentum": 1.0}, "momentum"), ({"nesterov": "yes"}, "nesterov"),
    ({"nesterov": True}, "Nesterov"), ({"p_dropout": 1}, "dropout"), ({"schedule": "cosine"}, "schedule"),
    ({"early_stopping": 0}, "early stopping"), ({"monitor": [3]}, "monitor"), ({"monitor": {"a": 1}}, "monitor"),
    ({"seed": -3}, "seed"), ({"seed": 1.5}, "seed"), ({"restore_best": "no"}, "restore_best"),
    ({"etaa": 0.5}, "unknown TrainingConfig setting"), ({"min_eta_ratio": 2}, "min_eta_ratio"),
])
def test_bad_training_settings(data, match):
    with pytest.raises(ConfigError, match=match):
        TrainingConfig.from_dict(data, source="run.json")


@pytest.mark.parametrize("data,match", [
    ({"sizes": [784]}, "at least an input"), ({"sizes": "784 30 10"}, "list of layer sizes"),
    ({"sizes": [784, 0, 10]}, "layer size"), ({"sizes": [784, 2.5, 10]}, "layer size"),
    ({"sizes": [784, 10**6, 10**6, 10]}, "more than"), ({"sizes": [784, [30], 10]}, "layer size"),
    ({"activations": ["softmax", "sigmoid"]}, "softmax can only"), ({"activations": [1, 2]}, "activation"),
    ({"activations": []}, "activations"), ({"activations": ["relu"] * 5}, "need 2 activations"),
    ({"cost": "hinge"}, "unknown cost"), ({"cost": ["quadratic"]}, "cost"), ({"init": "huge"}, "initialis"),
    ({"dtype": "int8"}, "dtype"), ({"activations": "relu", "cost": "cross-entropy"}, "cross-entropy"),
])
def test_bad_network_settings(data, match):
    with pytest.raises(ConfigError, match=match):
        NetworkConfig.from_dict(data)


def test_network_config_builds_the_network_it_describes():
    config = NetworkConfig(sizes=(5, 4, 3), activations=("tanh", "softmax"), cost="log-likelihood",
                           init="default", dtype="float32")
    net = config.build(seed=1)
    assert net.sizes == [5, 4, 3] and net.dtype == np.float32 and NetworkConfig.of(net) == config
    np.testing.assert_array_equal(net.params[0], config.build(seed=1).params[0])


def test_history_of_nndl_0_1_still_loads(tmp_path):
    """Format version 1 kept every setting in one flat config dict."""
    old = {"format": "nndl-history", "version": 1, "epochs": [0, 1], "eta": [0.5, 0.5], "epoch_time": [1.0, 1.0],
           "monitor_time": [0.1, 0.1], "training_cost": [], "training_accuracy": [], "evaluation_cost": [],
           "evaluation_accuracy": [0.9, 0.95], "best_epoch": 1, "best_accuracy": 0.95, "stop_reason": "completed",
           "message": "", "config": {"sizes": [784, 30, 10], "activations": ["sigmoid", "sigmoid"],
                                     "cost": "quadratic", "epochs": 2, "mini_batch_size": 10, "eta": 0.5,
                                     "lmbda": 0.0, "regularization": "l2", "momentum": 0.0, "nesterov": False,
                                     "p_dropout": 0.0, "schedule": "halve-on-plateau", "early_stopping": None,
                                     "seed": 1, "dtype": "float64", "n_training": 50000, "n_evaluation": 10000}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    history = History.load(path)
    assert history.config.eta == 0.5 and history.config.schedule == "halve"
    assert history.network.sizes == (784, 30, 10) and history.n_training == 50000


@pytest.mark.parametrize("change", [
    lambda d: d.update(epochs="0 1"), lambda d: d.update(epochs=[0, "1"]), lambda d: d.update(eta=[0.5]),
    lambda d: d.update(eta=[0.5, None]), lambda d: d.update(best_epoch="1"), lambda d: d.update(message=3),
    lambda d: d.update(stop_reason="bored"), lambda d: d.update(config=[1]), lambda d: d.update(config={"x": 1}),
    lambda d: d.update(network={"sizes": "big"}), lambda d: d.update(n_training=-1), lambda d: d.update(extra=1),
    lambda d: d.update(version="2"), lambda d: d.update(version=True), lambda d: d.pop("format"),
    lambda d: d.update(evaluation_accuracy=[[0.9], [0.8]]), lambda d: d.update(best_accuracy=float("nan")),
])
def test_malformed_histories_are_a_file_format_error(tmp_path, change):
    history = History(epochs=[0, 1], eta=[0.5, 0.5], epoch_time=[1.0, 1.0], monitor_time=[0.1, 0.1],
                      evaluation_accuracy=[0.9, 0.95])
    data = history.to_dict()
    change(data)
    path = tmp_path / "h.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FileFormatError, match=str(path)):
        History.load(path)


def test_deeply_nested_or_binary_history_files(tmp_path):
    deep, binary = tmp_path / "deep.json", tmp_path / "binary.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    binary.write_bytes(bytes(range(256)) * 4)
    for path in (deep, binary):
        with pytest.raises(FileFormatError, match=str(path)):
            History.load(path)
