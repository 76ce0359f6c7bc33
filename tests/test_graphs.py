"""Training steps replayed from CUDA graphs (``nndl.deep.graphs``), where they can be tested without a GPU.

On a CPU ``GraphedStep`` captures nothing: it runs the step on the same
static input buffers, with the same warm-up, recapture and fallback logic.
These tests check that logic: training through it is exactly training
without it (one network and K at once, with dropout, momentum, a last
partial mini-batch and a learning rate that changes), a new key starts a new
capture, and ``cuda_graph`` is refused in one line where it cannot run. The
captured graphs themselves are compared with eager training in
``tests/test_cuda.py``, on a GPU.
"""

import pytest
import torch

import nndl.deep.multi as multi
import nndl.deep.train as deep_train
from nndl.deep.config import ConvNetConfig
from nndl.deep.graphs import GraphedStep
from nndl.deep.multi import train_many
from nndl.deep.network import ConvNetwork
from nndl.deep.train import train
from nndl.errors import ConfigError
from nndl.training.config import TrainingConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NET = ConvNetConfig(layers=(
    {"type": "conv-pool", "filters": 4, "filter": 5, "pool": 2, "activation": "relu"},
    {"type": "fully-connected", "n_out": 20, "activation": "sigmoid", "p_dropout": 0.3},
    {"type": "softmax", "n_out": 10, "p_dropout": 0.2}), init="fan-in")
#: 105 images in mini-batches of 10: ten whole ones and a last one of 5, trained.
SETTINGS = dict(epochs=3, mini_batch_size=10, eta=0.1, momentum=0.5, lmbda=0.5, shuffle=True, seed=7,
                last_batch="train")




@pytest.fixture
def graphs_on_cpu(monkeypatch):
    """Let ``cuda_graph=True`` through on the CPU, and keep every GraphedStep made, to look at afterwards."""
    made = []

    class Recorded(GraphedStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    for module in (deep_train, multi):
        monkeypatch.setattr(module, "check_cuda_graph", lambda device: None)
        monkeypatch.setattr(module, "GraphedStep", Recorded)
    return made


def digits(n, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = 0.3 * torch.rand(n, 1, 28, 28, generator=generator)
    for k in range(10):
        images[labels == k, 0, 2 * k + 2:2 * k + 4, 4:24] = 1.0
    return images, labels


def params(net):
    return {name: t.detach().clone() for name, t in net.state_dict().items()}


def test_training_through_the_graph_path_is_training_without_it(graphs_on_cpu):
    training = digits(105, 0)
    images, labels = digits(30, 1)
    validation = images, (labels + 1) % 10           # labels it cannot learn: its accuracy stalls and eta halves
    config = TrainingConfig(**{**SETTINGS, "epochs": 4}, schedule="halve", patience=1, min_eta_ratio=1 / 64)
    plain, graphed = ConvNetwork(NET, seed=3), ConvNetwork(NET, seed=3)
    expected = train(plain, training, config, validation_data=validation)
    got = train(graphed, training, config, validation_data=validation, cuda_graph=True)
    assert len(set(expected.eta)) > 1                # the learning rate changed during the run ...
    [step] = graphs_on_cpu
    assert step.captures == len(set(expected.eta))   # ... and the step was captured again at each new one
    assert step.key == expected.eta[-1]
    assert got.eta == expected.eta and got.evaluation_accuracy == expected.evaluation_accuracy
    before, after = params(plain), params(graphed)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert plain.measure(*training)[0] > 0.3         # it learned something


def test_a_new_learning_rate_is_captured_again_after_its_warm_up():
    calls = []

    def step(x):
        calls.append(x.clone())
        return x * 2

    graphed = GraphedStep(step, torch.device("cpu"), warmup=2)
    outputs = [graphed(0.1, torch.full((3,), float(i))) for i in range(5)]
    assert [float(o[0]) for o in outputs] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert graphed.captures == 1                                   # two warm-up steps, then one capture
    graphed(0.05, torch.full((3,), 9.0))                           # another eta: warm up again
    assert graphed.captures == 1 and graphed.warm == 1
    graphed(0.05, torch.full((3,), 1.0))
    graphed(0.05, torch.full((3,), 2.0))
    assert graphed.captures == 2
    assert float(graphed(0.05, torch.full((2,), 4.0))[0]) == 8.0   # another shape: eagerly, the capture kept
    assert graphed.captures == 2 and len(calls) == 9


def test_several_networks_through_the_graph_path_train_as_without_it(graphs_on_cpu):
    training = digits(100, 2)
    config = TrainingConfig(**{**SETTINGS, "last_batch": "drop", "epochs": 2}, monitor=("training_cost",))
    seeds = [1, 2, 3]
    plain = [ConvNetwork(NET, seed=s) for s in seeds]
    graphed = [ConvNetwork(NET, seed=s) for s in seeds]
    expected = train_many(plain, training, config, seeds=seeds)
    got = train_many(graphed, training, config, seeds=seeds, cuda_graph=True)
    [step] = graphs_on_cpu
    assert step.captures == 1
    assert [h.training_cost for h in got] == [h.training_cost for h in expected]
    assert all(len(h.training_cost) == 2 for h in got)
    for a, b in zip(plain, graphed):
        before, after = params(a), params(b)
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_cuda_graphs_are_refused_in_one_line_where_they_cannot_run():
    net = ConvNetwork(NET, seed=1)
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA GPU, not cpu"):
        train(net, digits(20, 0), TrainingConfig(epochs=1, mini_batch_size=10, eta=0.1), cuda_graph=True)
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA GPU"):
        train_many([ConvNetwork(NET, seed=1), ConvNetwork(NET, seed=2)], digits(20, 0),
                   TrainingConfig(epochs=1, mini_batch_size=10, eta=0.1), seeds=[1, 2], cuda_graph=True)


def test_cuda_graphs_and_autocast_are_refused_together(graphs_on_cpu):
    net = ConvNetwork(NET, seed=1)
    with pytest.raises(ConfigError, match="CUDA graphs and autocast do not go together"):
        train(net, digits(20, 0), TrainingConfig(epochs=1, mini_batch_size=10, eta=0.1), cuda_graph=True,
              autocast="bfloat16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a CUDA GPU")
def test_the_commands_refuse_cuda_graphs_without_a_gpu_before_loading_anything(capsys, tmp_path):
    from test_cli import run
    missing = tmp_path / "no-data-here"                  # never read: the refusal comes first
    code, out, err = run(capsys, "conv", "--preset", "fc100", "--epochs", 1, "--device", "cpu", "--cuda-graph",
                         "--data", missing)
    assert code == 2 and out == "" and err.strip().splitlines() == [
        "nndl: error: CUDA graphs need a CUDA GPU, not cpu: train on a GPU (--device cuda), or without CUDA graphs"]
    code, out, err = run(capsys, "reproduce", "ch6-fc100", "--quick", "--cuda-graph", "--data", missing,
                         "--out", tmp_path / "out")
    assert code == 2 and "CUDA graphs need a CUDA GPU, not cpu" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    code, out, err = run(capsys, "reproduce", "ch6-fc100", "--quick", "--device", "gpu", "--out", tmp_path / "out")
    assert code == 2 and "unknown device 'gpu'" in err and not (tmp_path / "out").exists()
