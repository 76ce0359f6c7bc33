"""Several convolutional networks trained at once (``nndl.deep.multi``), checked against separate runs.

The oracle is ``nndl.deep.train.train``: K members trained together must end
where K separate runs with the same seeds end -- after 100 steps with
dropout, momentum, L2, the halving schedule, in stored and in shuffled
order -- to the rounding of the batched operations (float32) or exactly
enough for float64. Then: a member that diverges or stops early stops alone;
a checkpoint resumed at any epoch gives the uninterrupted run; what cannot
work is refused in one line. Everything is tiny and runs on the CPU.
"""

import shutil

import pytest
import torch

from nndl.deep.augment import Augmentation
from nndl.deep.checkpoint import (
    load_checkpoint,
    load_members_checkpoint,
    load_model,
    save_members_checkpoint,
)
from nndl.deep.multi import MultiTorchEngine, _BatchedLinear, train_many
from nndl.deep.network import ConvNetwork
from nndl.deep.train import train
from nndl.errors import ConfigError, ModelFileError
from nndl.training.config import ConvNetConfig, TrainingConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEEDS = [3, 5, 11]




def conv_config(dtype="float32", dropout="book", pool_gradient="one"):
    """Two conv-pool layers (the second on several maps: a grouped convolution) with dropout everywhere."""
    return ConvNetConfig(input_shape=(1, 12, 12), dtype=dtype, init="fan-in", dropout=dropout,
                         pool_gradient=pool_gradient, layers=(
                             {"type": "conv-pool", "filters": 3, "filter": 3, "pool": 2, "activation": "relu",
                              "p_dropout": 0.1},
                             {"type": "conv-pool", "filters": 4, "filter": 2, "pool": 2, "activation": "tanh"},
                             {"type": "fully-connected", "n_out": 8, "activation": "sigmoid", "p_dropout": 0.3},
                             {"type": "softmax", "n_out": 3, "p_dropout": 0.2}))


def plain_config(dtype="float32", dropout="book"):
    """No dropout on the first layer: in stored order its input is one for all (one convolution of K*F filters)."""
    return ConvNetConfig(input_shape=(1, 12, 12), dtype=dtype, init="book", dropout=dropout, layers=(
        {"type": "conv-pool", "filters": 3, "filter": 3, "pool": 2, "activation": "sigmoid"},
        {"type": "fully-connected", "n_out": 8, "activation": "relu", "p_dropout": 0.25},
        {"type": "softmax", "n_out": 3}))


def dense_config(dtype="float32", dropout="inverted"):
    """Fully connected layers only: the first is one product with the K members' weights side by side."""
    return ConvNetConfig(input_shape=(1, 12, 12), dtype=dtype, init="fan-in", dropout=dropout, layers=(
        {"type": "fully-connected", "n_out": 10, "activation": "tanh"},
        {"type": "softmax", "n_out": 3, "p_dropout": 0.4}))


ARCHITECTURES = {"conv": conv_config, "plain": plain_config, "dense": dense_config}


def data(n, seed, dtype=torch.float32):
    """n random 12x12 images and 3 classes, the class shown as a brighter band (learnable, not trivially)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    images = torch.rand(n, 1, 12, 12, generator=g, dtype=dtype) * 0.5
    for i, label in enumerate(labels.tolist()):
        images[i, 0, 4 * label:4 * label + 4, :] += 0.5
    return images, labels


def settings(**changes):
    """100 steps: 50 images in mini-batches of 5, for 10 epochs."""
    base = dict(epochs=10, mini_batch_size=5, eta=0.1, momentum=0.5, lmbda=0.5, shuffle=True)
    return TrainingConfig(**{**base, **changes})


def separate(make, seeds, config, **kwargs):
    """Each seed trained alone by ``train``: (nets, histories)."""
    nets, histories = [], []
    for seed in seeds:
        net = ConvNetwork(make(), seed=seed)
        histories.append(train(net, config=config.replace(seed=seed), **kwargs))
        nets.append(net)
    return nets, histories


def together(make, seeds, config, **kwargs):
    nets = [ConvNetwork(make(), seed=seed) for seed in seeds]
    return nets, train_many(nets, config=config, seeds=seeds, **kwargs)


def max_abs_diff(nets_a, nets_b):
    return max(float((p.detach() - q.detach()).abs().max()) for a, b in zip(nets_a, nets_b)
               for p, q in zip(a.parameters(), b.parameters()))


def assert_same_runs(histories_a, histories_b):
    for a, b in zip(histories_a, histories_b):
        assert a.epochs == b.epochs
        assert a.evaluation_accuracy == b.evaluation_accuracy
        assert a.test_accuracy == b.test_accuracy
        assert a.eta == b.eta
        assert (a.best_epoch, a.best_accuracy) == (b.best_epoch, b.best_accuracy)
        assert (a.stop_reason, a.message) == (b.stop_reason, b.message)
        assert a.config == b.config


# --- 1. the same numbers as separate runs ----------------------------------------------------------


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("shuffle", [False, True], ids=["stored", "shuffled"])
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_members_trained_together_equal_separate_runs(architecture, shuffle, dtype, tolerance):
    make = lambda: ARCHITECTURES[architecture](dtype)          # noqa: E731
    torch_dtype = getattr(torch, dtype)
    training, validation, test = data(50, 0, torch_dtype), data(30, 1, torch_dtype), data(30, 2, torch_dtype)
    # The halving schedule acts on each member's own learning rate.
    config = settings(shuffle=shuffle, schedule="halve", patience=1, min_eta_ratio=1 / 1024)
    kwargs = dict(training_data=training, validation_data=validation, test_data=test)
    alone, alone_histories = separate(make, SEEDS, config, **kwargs)
    nets, histories = together(make, SEEDS, config, **kwargs)
    assert max_abs_diff(alone, nets) <= tolerance
    assert_same_runs(alone_histories, histories)
    assert [h.config.seed for h in histories] == SEEDS
    assert sum(len(h.epochs) for h in histories) == 30           # every member trained its 100 steps
    if architecture != "dense":                          # the members' learning rates were halved in their own epochs
        assert len({tuple(h.eta) for h in histories}) > 1


@pytest.mark.parametrize("dropout, pool_gradient", [("inverted", "all-ties"), ("book", "all-ties")])
def test_inverted_dropout_and_the_all_ties_pool_gradient_too(dropout, pool_gradient):
    make = lambda: conv_config("float64", dropout, pool_gradient)   # noqa: E731
    kwargs = dict(training_data=data(50, 3, torch.float64), validation_data=data(20, 4, torch.float64))
    alone, alone_histories = separate(make, SEEDS, settings(epochs=4), **kwargs)
    nets, histories = together(make, SEEDS, settings(epochs=4), **kwargs)
    assert max_abs_diff(alone, nets) <= 1e-12
    assert_same_runs(alone_histories, histories)


def test_one_member_trained_alone_by_train_many_is_train():
    make = lambda: conv_config("float64")                       # noqa: E731
    kwargs = dict(training_data=data(50, 5, torch.float64), validation_data=data(20, 6, torch.float64))
    alone, alone_histories = separate(make, [7], settings(epochs=3), **kwargs)
    nets, histories = together(make, [7], settings(epochs=3), **kwargs)
    assert max_abs_diff(alone, nets) <= 1e-13
    assert_same_runs(alone_histories, histories)


def test_the_batched_linear_layers_gradient_passes_gradcheck():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)    # (K, m, n_in)
    w = torch.randn(3, 2, 5, generator=g, dtype=torch.float64, requires_grad=True)    # (K, n_out, n_in)
    b = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)       # (K, n_out)
    assert torch.autograd.gradcheck(_BatchedLinear.apply, (a, w, b))
    z = _BatchedLinear.apply(a, w, b)
    z.sum().backward()
    assert w.grad.is_contiguous()                        # what the update reads fastest


def test_the_networks_hold_their_members_weights_during_and_after_training():
    make = lambda: plain_config("float64")                      # noqa: E731
    training, validation = data(30, 7, torch.float64), data(20, 8, torch.float64)
    seen = {}
    nets = [ConvNetwork(make(), seed=seed) for seed in SEEDS]

    def look(history):                                   # nets[k] is member k now: its accuracy is the History's
        k = SEEDS.index(history.config.seed)
        seen[k] = nets[k].accuracy(*validation) == history.evaluation_accuracy[-1]
    train_many(nets, training, settings(epochs=2), seeds=SEEDS, validation_data=validation, on_epoch=look)
    assert seen == {0: True, 1: True, 2: True}
    storages = {p.untyped_storage().data_ptr() for net in nets for p in net.parameters()}
    assert len(storages) == sum(1 for net in nets for _ in net.parameters())    # each stands alone again


# --- 2. a member that diverges or stops early stops alone --------------------------------------------


def sabotage(nets, member, after_epoch):
    """on_epoch: make ``member``'s next epoch's cost nan after ``after_epoch``, as if its eta had been huge."""
    def hook(history):
        if history.config.seed == SEEDS[member] and history.epochs[-1] == after_epoch:
            with torch.no_grad():
                nets[member].layers[-2].weight[0, 0] = float("nan")
    return hook


@pytest.mark.parametrize("check_every", [250, 2], ids=["at-the-epochs-end", "within-the-epoch"])
def test_a_diverging_member_stops_alone_and_the_others_are_their_separate_runs(tmp_path, monkeypatch, check_every):
    # The cost is looked at every PROGRESS_EVERY mini-batches: with 2, member 1 stops within its epoch and the
    # others finish that epoch without it.
    import nndl.deep.multi
    import nndl.deep.train
    monkeypatch.setattr(nndl.deep.multi, "PROGRESS_EVERY", check_every)
    monkeypatch.setattr(nndl.deep.train, "PROGRESS_EVERY", check_every)
    make = lambda: conv_config("float64")                       # noqa: E731
    config = settings(epochs=5)
    kwargs = dict(training_data=data(50, 9, torch.float64), validation_data=data(20, 10, torch.float64))
    alone, alone_histories = [], []
    for k, seed in enumerate(SEEDS):
        net = ConvNetwork(make(), seed=seed)
        nets = [None] * len(SEEDS)
        nets[k] = net
        alone_histories.append(train(net, config=config.replace(seed=seed), on_epoch=sabotage(nets, 1, 1)
                                     if k == 1 else None, **kwargs))
        alone.append(net)
    nets = [ConvNetwork(make(), seed=seed) for seed in SEEDS]
    path = tmp_path / "run.ckpt"
    histories = train_many(nets, config=config, seeds=SEEDS, on_epoch=sabotage(nets, 1, 1), checkpoint=path,
                           **kwargs)
    assert [h.stop_reason for h in histories] == ["completed", "diverged", "completed"]
    assert "diverged in epoch 2" in histories[1].message and histories[1].epochs == [0, 1]
    assert max_abs_diff(alone, nets) <= 1e-12            # member 1 keeps its epoch-1 weights, as alone
    assert_same_runs(alone_histories, histories)
    _, state, _ = load_members_checkpoint(path)
    assert state["epoch"] == 4


def test_a_member_that_diverges_in_its_first_epoch_keeps_its_weights_and_the_others_go_on():
    nets = [ConvNetwork(plain_config(), seed=seed) for seed in SEEDS]
    with torch.no_grad():
        nets[2].layers[0].weight[0, 0, 0, 0] = float("inf")     # its cost is nan from the first step
    before = [{n: p.detach().clone() for n, p in net.named_parameters()} for net in nets]
    histories = train_many(nets, data(20, 11), settings(epochs=2, mini_batch_size=10, momentum=0.0, lmbda=0.0),
                           seeds=SEEDS)
    assert [h.stop_reason for h in histories] == ["completed", "completed", "diverged"]
    assert histories[2].epochs == [] and "diverged in epoch 0" in histories[2].message
    assert histories[0].epochs == histories[1].epochs == [0, 1]
    assert all(torch.equal(p, before[2][n]) for n, p in nets[2].named_parameters())
    assert not torch.equal(nets[0].layers[0].weight, before[0]["layers.0.weight"])


# --- 3. checkpoints and resuming ----------------------------------------------------------------------


def run_with_checkpoints(tmp_path, nets, config, kwargs, on_epoch=None):
    """The uninterrupted run of ``nets``, keeping a copy of every epoch's checkpoint: (histories, {epoch: path})."""
    path, copies = tmp_path / "run.ckpt", {}

    def keep(history):
        if on_epoch is not None:
            on_epoch(history)
        epoch = history.epochs[-1] if history.epochs else None
        if epoch is not None and epoch not in copies:    # written before on_epoch, once per epoch
            copies[epoch] = tmp_path / f"epoch{epoch}.ckpt"
            shutil.copy(path, copies[epoch])
    histories = train_many(nets, config=config, seeds=SEEDS, checkpoint=path, checkpoint_metadata={"run": "r"},
                           on_epoch=keep, **kwargs)
    return histories, copies


def resume_from(path, config, kwargs):
    nets, state, metadata = load_members_checkpoint(path)
    assert metadata == {"run": "r"}
    return nets, train_many(nets, config=config, seeds=SEEDS, resume=state, **kwargs)


def exactly_equal(nets_a, nets_b):
    return all(torch.equal(p, q) for a, b in zip(nets_a, nets_b) for p, q in zip(a.parameters(), b.parameters()))


def test_a_run_resumed_at_any_epoch_is_exactly_the_uninterrupted_run(tmp_path):
    make = lambda: conv_config("float32")                       # noqa: E731
    config = settings(epochs=4, schedule="halve", patience=1)
    kwargs = dict(training_data=data(30, 12), validation_data=data(20, 13), test_data=data(20, 14))
    nets = [ConvNetwork(make(), seed=seed) for seed in SEEDS]
    histories, copies = run_with_checkpoints(tmp_path, nets, config, kwargs)
    assert sorted(copies) == [0, 1, 2, 3]
    for epoch in (0, 1, 2):
        resumed_nets, resumed = resume_from(copies[epoch], config, kwargs)
        assert exactly_equal(nets, resumed_nets), epoch
        assert_same_runs(histories, resumed)


def scripted_accuracies(monkeypatch, script):
    """Member i's validation accuracy after its j-th measured epoch is script[i][start + j].

    Returns a setter of start."""
    real_measure, calls, start = MultiTorchEngine.measure, {}, [0]

    def measure(self, i, monitor):
        measured = real_measure(self, i, monitor)
        counts = calls.setdefault(id(self), {})
        counts[i] = counts.get(i, start[0]) + 1
        measured["evaluation_accuracy"] = script[i][counts[i] - 1]
        return measured
    monkeypatch.setattr(MultiTorchEngine, "measure", measure)
    return lambda epoch: start.__setitem__(0, epoch)


@pytest.mark.parametrize("how", ["diverged", "early stopping"])
def test_a_member_that_had_stopped_stays_stopped_when_the_others_resume(tmp_path, monkeypatch, how):
    make = lambda: conv_config("float64")                       # noqa: E731
    kwargs = dict(training_data=data(30, 15, torch.float64), validation_data=data(20, 16, torch.float64))
    nets = [ConvNetwork(make(), seed=seed) for seed in SEEDS]
    if how == "diverged":                                # member 1's epoch 1 becomes nan: it keeps epoch 0
        config, on_epoch, stopped_after = settings(epochs=5), sabotage(nets, 1, 0), 0
    else:
        # Member 1's validation accuracy falls after epoch 0: with early_stopping=2 it stops after epoch 2,
        # and its best epoch (0) is restored at the end; the others keep improving.
        config, on_epoch, stopped_after = settings(epochs=5, early_stopping=2), None, 2
        start_at = scripted_accuracies(monkeypatch, {0: [0.1, 0.2, 0.3, 0.4, 0.5], 1: [0.9, 0.5, 0.5, 0.5, 0.5],
                                                     2: [0.2, 0.3, 0.4, 0.5, 0.6]})
    histories, copies = run_with_checkpoints(tmp_path, nets, config, kwargs, on_epoch)
    assert [h.stop_reason for h in histories] == ["completed", how, "completed"]
    assert histories[1].epochs[-1] == stopped_after and len(histories[0].epochs) == 5
    if how == "early stopping":
        start_at(4)
    epochs_run, real_run_epoch = [], MultiTorchEngine.run_epoch

    def run_epoch(self, epoch, active, progress):
        epochs_run.append((epoch, list(active)))
        return real_run_epoch(self, epoch, active, progress)
    monkeypatch.setattr(MultiTorchEngine, "run_epoch", run_epoch)
    resumed_nets, resumed = resume_from(copies[3], config, kwargs)
    assert exactly_equal(nets, resumed_nets)
    assert_same_runs(histories, resumed)
    assert epochs_run == [(4, [True, False, True])]       # no epoch of the stopped member's own


def test_resuming_with_other_seeds_or_another_number_of_networks_is_refused(tmp_path):
    make = lambda: plain_config()                               # noqa: E731
    path = tmp_path / "run.ckpt"
    kwargs = dict(training_data=data(20, 17), validation_data=data(10, 18))
    train_many([ConvNetwork(make(), seed=s) for s in SEEDS], config=settings(epochs=1), seeds=SEEDS,
               checkpoint=path, **kwargs)
    nets, state, _ = load_members_checkpoint(path)
    with pytest.raises(ConfigError, match=r"changed: seed: 11 -> 12"):
        train_many(nets, config=settings(epochs=2), seeds=[3, 5, 12], resume=state, **kwargs)
    with pytest.raises(ConfigError, match=r"^the checkpoint holds 3 networks trained together \(seeds 3, 5, 11\), "
                                          r"but 2 are given \(seeds 3, 5\)"):
        train_many(nets[:2], config=settings(epochs=2), seeds=SEEDS[:2], resume=state, **kwargs)
    with pytest.raises(ConfigError, match="eta"):
        train_many(nets, config=settings(epochs=2, eta=0.2), seeds=SEEDS, resume=state, **kwargs)
    single = tmp_path / "single.ckpt"
    train(ConvNetwork(make(), seed=3), config=settings(epochs=1, seed=3), checkpoint=single, **kwargs)
    _, single_state, _ = load_checkpoint(single)
    with pytest.raises(ConfigError, match="one network trained alone; resume it with nndl.deep.train.train"):
        train_many(nets, config=settings(epochs=2), seeds=SEEDS, resume=single_state, **kwargs)


def test_a_run_whose_members_have_all_ended_is_not_resumed(tmp_path, monkeypatch):
    scripted_accuracies(monkeypatch, {0: [0.9, 0.5, 0.5], 1: [0.8, 0.4, 0.4]})     # both stop after epoch 1
    path = tmp_path / "run.ckpt"
    nets = [ConvNetwork(plain_config(), seed=s) for s in SEEDS[:2]]
    kwargs = dict(training_data=data(20, 19), validation_data=data(10, 20))
    config = settings(epochs=3, early_stopping=1)
    histories = train_many(nets, config=config, seeds=SEEDS[:2], checkpoint=path, **kwargs)
    assert [h.epochs for h in histories] == [[0, 1], [0, 1]]
    nets, state, _ = load_members_checkpoint(path)
    with pytest.raises(ConfigError, match=r"^every run in the checkpoint has already ended \(0: early stopping; "
                                          r"1: early stopping\)$"):
        train_many(nets, config=config.replace(epochs=5), seeds=SEEDS[:2], resume=state, **kwargs)


# --- 4. the members file ---------------------------------------------------------------------------


@pytest.fixture
def members_file(tmp_path):
    path = tmp_path / "run.ckpt"
    train_many([ConvNetwork(plain_config(), seed=s) for s in SEEDS], data(20, 21), settings(epochs=1, momentum=0.3),
               seeds=SEEDS, validation_data=data(10, 22), checkpoint=path)
    return path


def test_the_members_file_holds_every_members_state_and_only_tensors_numbers_and_text(members_file):
    content = torch.load(members_file, weights_only=True)           # pickle-free
    assert content["format"] == "nndl-conv-members" and len(content["parameters"]) == 3
    training = content["training"]
    assert training["seeds"] == SEEDS and len(training["histories"]) == 3 and len(training["members"]) == 3
    assert all(set(m) == {"eta", "optimizer", "shuffle_rng", "dropout_rng"} for m in training["members"])
    nets, _, _ = load_members_checkpoint(members_file)
    assert not torch.equal(nets[0].layers[0].weight, nets[1].layers[0].weight)


def test_a_members_file_is_not_read_as_one_network(members_file):
    with pytest.raises(ModelFileError, match="several networks trained together.*load_members_checkpoint"):
        load_checkpoint(members_file)
    with pytest.raises(ModelFileError, match="several networks trained together"):
        load_model(members_file)


def _rewrite(path, change):
    content = torch.load(path, weights_only=True)
    change(content)
    torch.save(content, path)


@pytest.mark.parametrize("change, match", [
    (lambda c: c["parameters"][2].update({"layers.0.weight": torch.zeros(4, 1, 3, 3)}),
     r"layers.0.weight has shape \(4, 1, 3, 3\)"),
    (lambda c: c["parameters"][1]["layers.1.bias"].fill_(float("nan")), "layers.1.bias must hold finite"),
    (lambda c: c["parameters"][0].pop("layers.2.weight"), "network 0's parameters do not match"),
    (lambda c: c["parameters"].pop(), "declares 3 networks, but the file holds parameters for 2"),
    (lambda c: c["training"]["members"].pop(), "one entry per network"),
    (lambda c: c["training"].update(bests=[None, {"x": torch.zeros(1)}, None]), "network 1's best epoch's"),
    (lambda c: c.update(header=c["header"].replace('"members": 3', '"members": 0')), "how many networks"),
])
def test_every_members_tensors_are_checked_against_the_architecture(members_file, change, match):
    _rewrite(members_file, change)
    with pytest.raises(ModelFileError, match=match):
        load_members_checkpoint(members_file)


def test_a_one_network_checkpoint_is_not_read_as_members(tmp_path):
    path = tmp_path / "single.ckpt"
    train(ConvNetwork(plain_config(), seed=3), data(20, 23), epochs=1, mini_batch_size=5, checkpoint=path)
    with pytest.raises(ModelFileError, match="holds one network.*load_checkpoint"):
        load_members_checkpoint(path)


def test_save_members_checkpoint_round_trip(tmp_path):
    nets = [ConvNetwork(plain_config(), seed=s) for s in SEEDS]
    path = save_members_checkpoint(tmp_path / "m.ckpt", nets, {"members": [{}, {}, {}]}, {"note": 1})
    loaded, state, metadata = load_members_checkpoint(path)
    assert metadata == {"note": 1} and exactly_equal(nets, loaded)


# --- 5. what several networks at once refuse ---------------------------------------------------------


@pytest.mark.parametrize("build, match", [
    (lambda nets: dict(nets=[]), "^training several networks at once needs at least one network, got none$"),
    (lambda nets: dict(seeds=[3, 5, 3]), "^seed 3 is given twice"),
    (lambda nets: dict(seeds=[3, 5]), "^each network needs its own seed: 3 networks, 2 seeds$"),
    (lambda nets: dict(nets=[nets[0], nets[1], ConvNetwork(dense_config(), seed=1)]),
     "^networks trained together must share one architecture: network 2 is"),
    (lambda nets: dict(nets=[nets[0], nets[1], nets[0]]), "^networks 0 and 2 are the same object"),
    (lambda nets: dict(augmentation=Augmentation(shift=2)),
     "^augmentation is not supported with several networks at once yet"),
    (lambda nets: dict(world=object()), "^several networks at once cannot train across processes"),
    (lambda nets: dict(seeds=[3, 5, -1]), "seed must be a whole number"),
    (lambda nets: dict(config=settings(mini_batch_size=50)), "mini-batch size 50 is larger"),
    (lambda nets: dict(config=settings(p_dropout=0.5)), "dropout is set per layer"),
])
def test_what_cannot_work_is_refused_in_one_line(build, match):
    nets = [ConvNetwork(plain_config(), seed=s) for s in SEEDS]
    arguments = dict(nets=nets, training_data=data(20, 24), config=settings(epochs=1), seeds=SEEDS)
    arguments.update(build(nets))
    with pytest.raises(ConfigError, match=match) as error:
        train_many(**arguments)
    assert "\n" not in str(error.value)


def test_an_augmentation_that_changes_nothing_is_allowed():
    nets = [ConvNetwork(plain_config(), seed=s) for s in SEEDS[:2]]
    histories = train_many(nets, data(20, 25), settings(epochs=1), seeds=SEEDS[:2], augmentation=Augmentation())
    assert [h.stop_reason for h in histories] == ["completed", "completed"]
