"""The one training driver: both engines through ``nndl.training.fit``, their named conventions,
NumPy checkpoints and resume, the book's SGD as a torch Optimizer, and files of the previous release."""

from pathlib import Path

import numpy as np
import pytest

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.errors import ConfigError, ModelFileError
from nndl.training import train
from nndl.training.checkpoint import is_numpy_checkpoint, load_checkpoint
from nndl.training.config import TrainingConfig
from nndl.training.history import History

RELEASE_0_1 = Path(__file__).parent / "data" / "release-0.1"
#: The NumPy run whose result nndl 0.1 saved in RELEASE_0_1 (numpy-expected.npz, numpy-history.json).
NUMPY_0_1 = dict(epochs=3, mini_batch_size=7, eta=0.5, lmbda=0.1, momentum=0.3, p_dropout=0.2, seed=2,
                 monitor=["evaluation_accuracy", "training_cost"])


def numpy_problem():
    rng = np.random.default_rng(0)
    return rng.random((40, 6)), rng.integers(0, 3, 40)


def scripted(monkeypatch, accuracies):
    """Force the evaluation accuracy after epoch j to accuracies[j]."""
    import nndl.training.numpy_engine as engine
    script, real = iter(accuracies), engine._measure

    def measure(*args):
        measured = real(*args)
        measured["evaluation_accuracy"] = next(script)
        return measured
    monkeypatch.setattr(engine, "_measure", measure)


# --- the same numbers as nndl 0.1 ----------------------------------------------------------------


def test_the_numpy_engine_gives_the_previous_releases_numbers():
    x, y = numpy_problem()
    net = FeedforwardNetwork((6, 5, 3), seed=1)
    history = train(net, (x, y), evaluation_data=(x, y), **NUMPY_0_1)
    with np.load(RELEASE_0_1 / "numpy-expected.npz") as expected:
        for l, p in enumerate(net.params):
            np.testing.assert_allclose(p, expected[f"arr_{l}"], rtol=0, atol=1e-12)
    before = History.load(RELEASE_0_1 / "numpy-history.json")
    assert history.evaluation_accuracy == before.evaluation_accuracy
    np.testing.assert_allclose(history.training_cost, before.training_cost, rtol=1e-12)
    assert history.best_epoch == before.best_epoch


def test_files_of_the_previous_release_still_load():
    from nndl.engine.modelio import load
    for name in ("numpy.json", "numpy.npz"):
        net = load(RELEASE_0_1 / name)
        assert net.sizes == [6, 5, 3] and net.metadata == {"note": "nndl 0.1"}
    for name in ("numpy-history.json", "conv-history.json"):
        history = History.load(RELEASE_0_1 / name)
        assert history.config.last_batch is None and history.config.best_on_tie is None   # unset then
        assert history.epochs


# --- the named conventions ----------------------------------------------------------------------


def test_each_engine_records_its_chapters_conventions_in_the_history():
    x, y = numpy_problem()
    history = train(FeedforwardNetwork((6, 3), seed=0), (x, y), epochs=1, mini_batch_size=7, eta=0.1)
    assert history.config.last_batch == "train" and history.config.best_on_tie is False
    saved = History.from_dict(history.to_dict())
    assert saved.config.last_batch == "train" and saved.config.best_on_tie is False


def test_an_unset_convention_is_not_written_so_older_results_still_match():
    assert "last_batch" not in TrainingConfig().to_dict() and "best_on_tie" not in TrainingConfig().to_dict()
    assert TrainingConfig(last_batch="drop").to_dict()["last_batch"] == "drop"
    with pytest.raises(ConfigError, match="last mini-batch"):
        TrainingConfig(last_batch="keep")
    with pytest.raises(ConfigError, match="best_on_tie"):
        TrainingConfig(best_on_tie="yes")


def test_last_batch_drop_leaves_the_partial_mini_batch_out():
    x, y = numpy_problem()                                       # 40 examples, mini-batches of 15: 15 + 15 (+ 10)
    settings = dict(epochs=1, mini_batch_size=15, eta=0.5, shuffle=False)
    dropped = FeedforwardNetwork((6, 3), seed=0)
    train(dropped, (x, y), last_batch="drop", **settings)
    first_30 = FeedforwardNetwork((6, 3), seed=0)
    train(first_30, (x[:30], y[:30]), **settings)                # the same two mini-batches, nothing else
    trained = FeedforwardNetwork((6, 3), seed=0)
    train(trained, (x, y), **settings)
    for p, q, r in zip(dropped.params, first_30.params, trained.params):
        np.testing.assert_array_equal(p, q)
        assert not np.array_equal(p, r)


def test_a_mini_batch_larger_than_the_data_is_the_whole_data_unless_the_rest_is_dropped():
    x, y = numpy_problem()
    whole = FeedforwardNetwork((6, 3), seed=0)
    train(whole, (x, y), epochs=1, mini_batch_size=100, eta=0.5, shuffle=False)
    exact = FeedforwardNetwork((6, 3), seed=0)
    train(exact, (x, y), epochs=1, mini_batch_size=40, eta=0.5, shuffle=False)
    for p, q in zip(whole.params, exact.params):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ConfigError, match="larger than the 40 training examples"):
        train(FeedforwardNetwork((6, 3), seed=0), (x, y), epochs=1, mini_batch_size=100, eta=0.5,
              last_batch="drop")


@pytest.mark.parametrize("best_on_tie, best_epoch", [(False, 0), (True, 2)])
def test_best_on_tie_decides_which_of_equal_epochs_is_best(monkeypatch, best_on_tie, best_epoch):
    scripted(monkeypatch, [0.5, 0.4, 0.5])
    x, y = numpy_problem()
    history = train(FeedforwardNetwork((6, 3), seed=0), (x, y), epochs=3, mini_batch_size=10, eta=0.1,
                    evaluation_data=(x, y), best_on_tie=best_on_tie)
    assert history.best_epoch == best_epoch and history.best_accuracy == 0.5


# --- NumPy checkpoints ------------------------------------------------------------------------------


RUN = dict(mini_batch_size=7, eta=0.5, lmbda=0.1, momentum=0.3, p_dropout=0.2, seed=2, schedule="halve", patience=1,
           monitor=["evaluation_accuracy", "training_cost"], restore_best=True)


def test_a_numpy_run_resumed_from_its_checkpoint_is_exactly_the_uninterrupted_run(tmp_path):
    x, y = numpy_problem()
    whole = FeedforwardNetwork((6, 5, 3), seed=1)
    full = train(whole, (x, y), evaluation_data=(x, y), epochs=6, **RUN)

    path = tmp_path / "run.npz"
    first = FeedforwardNetwork((6, 5, 3), seed=1)
    train(first, (x, y), evaluation_data=(x, y), epochs=3, checkpoint=str(path), checkpoint_metadata={"run": "a"},
          **RUN)
    assert is_numpy_checkpoint(path)
    net, state, metadata = load_checkpoint(path)
    assert metadata == {"run": "a"} and state["epoch"] == 2 and "velocities" in state and "best" in state
    resumed = train(net, (x, y), evaluation_data=(x, y), epochs=6, resume=state, **RUN)
    for p, q in zip(whole.params, net.params):
        np.testing.assert_array_equal(p, q)
    assert resumed.epochs == full.epochs == list(range(6))
    assert resumed.evaluation_accuracy == full.evaluation_accuracy
    assert resumed.training_cost == full.training_cost and resumed.eta == full.eta
    assert resumed.best_epoch == full.best_epoch and resumed.config == full.config


def test_resuming_a_numpy_checkpoint_needs_the_same_network_and_settings(tmp_path):
    x, y = numpy_problem()
    path = tmp_path / "run.npz"
    train(FeedforwardNetwork((6, 5, 3), seed=1), (x, y), evaluation_data=(x, y), epochs=2, checkpoint=str(path),
          **RUN)
    _, state, _ = load_checkpoint(path)
    with pytest.raises(ConfigError, match="different network"):
        train(FeedforwardNetwork((6, 4, 3), seed=1), (x, y), evaluation_data=(x, y), epochs=3, resume=state, **RUN)
    with pytest.raises(ConfigError, match="different network"):
        train(FeedforwardNetwork((6, 5, 3), seed=1, dtype=np.float32), (x, y), evaluation_data=(x, y), epochs=3,
              resume=state, **RUN)
    net, state, _ = load_checkpoint(path)
    with pytest.raises(ConfigError, match="eta"):
        train(net, (x, y), evaluation_data=(x, y), epochs=3, resume=state, **{**RUN, "eta": 0.1})


def test_a_damaged_numpy_checkpoint_is_refused_in_one_line(tmp_path):
    x, y = numpy_problem()
    path = tmp_path / "run.npz"
    train(FeedforwardNetwork((6, 5, 3), seed=1), (x, y), evaluation_data=(x, y), epochs=1, checkpoint=str(path), **RUN)
    raw = bytearray(path.read_bytes())
    (tmp_path / "cut.npz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ModelFileError, match="cut.npz"):
        load_checkpoint(tmp_path / "cut.npz")
    (tmp_path / "model.npz").write_bytes((RELEASE_0_1 / "numpy.npz").read_bytes())
    assert not is_numpy_checkpoint(tmp_path / "model.npz")
    with pytest.raises(ModelFileError, match="missing member"):
        load_checkpoint(tmp_path / "model.npz")


# --- PyTorch: BookSGD and checkpoints of the previous release --------------------------------------


def test_book_sgd_is_the_books_rule_with_weight_decay_and_momentum():
    torch = pytest.importorskip("torch")
    from nndl.deep.optimizer import BookSGD
    w0, b0 = torch.tensor([[1.0, -2.0]], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    g_w, g_b = torch.tensor([[0.1, 0.2]], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64)
    eta, d, mu = 0.5, 0.01, 0.9
    for regularization, _penalty in (("l2", w0), ("l1", w0.sign())):
        w, b = w0.clone(), b0.clone()
        opt = BookSGD([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=eta, weight_decay=d,
                      regularization=regularization)
        w.grad, b.grad = g_w, g_b
        opt.step()
        expected_w = (1 - eta * d) * w0 - eta * g_w if regularization == "l2" else w0 - eta * d * w0.sign() - eta * g_w
        torch.testing.assert_close(w, expected_w, rtol=0, atol=1e-15)
        torch.testing.assert_close(b, b0 - eta * g_b, rtol=0, atol=1e-15)
        # with momentum, twice: v1 = -eta (g + d p0), v2 = mu v1 - eta (g + d p1)
        w, b = w0.clone(), b0.clone()
        opt = BookSGD([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=eta, momentum=mu, weight_decay=d,
                      regularization=regularization)
        v = torch.zeros_like(w0)
        p = w0.clone()
        for _ in range(2):
            w.grad, b.grad = g_w, g_b
            opt.step()
            v = mu * v - eta * (g_w + d * (p if regularization == "l2" else p.sign()))
            p = p + v
        torch.testing.assert_close(w, p, rtol=0, atol=1e-15)
        state = opt.state_dict()
        assert torch.equal(state["state"][0]["momentum_buffer"], v.to(w.dtype)) or torch.allclose(
            state["state"][0]["momentum_buffer"], v)
        opt.eta = 0.25
        assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


def test_a_checkpoint_of_the_previous_release_resumes_to_its_uninterrupted_result():
    torch = pytest.importorskip("torch")
    import test_deep as td

    from nndl.deep.checkpoint import load_checkpoint as load_conv_checkpoint
    from nndl.deep.checkpoint import load_model
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train as train_conv
    training, validation, test = td.blob_data(30, 10), td.blob_data(20, 11), td.blob_data(20, 12)
    net, state, metadata = load_conv_checkpoint(RELEASE_0_1 / "conv-momentum.ckpt")
    assert "velocities" in state and "optimizer" not in state and metadata == {"run": "a"}
    resumed = train_conv(net, training, epochs=3, validation_data=validation, test_data=test, resume=state,
                         **td.RESUME_SETTINGS)
    expected = load_model(RELEASE_0_1 / "conv-expected-3-epochs.pt")
    expected_history = History.load(RELEASE_0_1 / "conv-expected-3-epochs-history.json")
    for (name, p), q in zip(expected.named_parameters(), net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)
    assert resumed.evaluation_accuracy == expected_history.evaluation_accuracy
    assert resumed.best_epoch == expected_history.best_epoch == 2          # ties: network3's last of equal epochs
    fresh = ConvNetwork(td.resume_config(), seed=3)
    train_conv(fresh, training, epochs=3, validation_data=validation, test_data=test, **td.RESUME_SETTINGS)
    for (name, p), q in zip(expected.named_parameters(), fresh.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_a_conv_checkpoint_saves_the_optimizers_state_dict(tmp_path):
    pytest.importorskip("torch")
    import test_deep as td

    from nndl.deep.checkpoint import load_checkpoint as load_conv_checkpoint
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train as train_conv
    path = tmp_path / "run.ckpt"
    train_conv(ConvNetwork(td.resume_config(), seed=3), td.blob_data(30, 10), epochs=1, checkpoint=path,
               validation_data=td.blob_data(20, 11), **td.RESUME_SETTINGS)
    _, state, _ = load_conv_checkpoint(path)
    assert "velocities" not in state
    groups = state["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups][1] == 0.0 and groups[0]["momentum"] == 0.5
    assert all("momentum_buffer" in s for s in state["optimizer"]["state"].values())


def test_a_conv_network_can_train_the_last_partial_mini_batch():
    torch = pytest.importorskip("torch")
    import test_deep as td

    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train as train_conv
    x, y = td.blob_data(12, 10)
    settings = dict(epochs=1, mini_batch_size=5, eta=0.1, shuffle=False, seed=1)
    trained = ConvNetwork(td.tiny_config(), seed=3)
    history = train_conv(trained, (x, y), last_batch="train", **settings)
    assert history.config.last_batch == "train" and history.config.best_on_tie is True
    dropped = ConvNetwork(td.tiny_config(), seed=3)
    assert train_conv(dropped, (x, y), **settings).config.last_batch == "drop"
    first_10 = ConvNetwork(td.tiny_config(), seed=3)
    train_conv(first_10, (x[:10], y[:10]), **settings)
    assert all(torch.equal(p, q) for p, q in zip(dropped.parameters(), first_10.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(trained.parameters(), dropped.parameters()))
