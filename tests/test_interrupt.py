"""Ctrl-C and SIGTERM stop training even when Python loses the first KeyboardInterrupt."""

import signal

import pytest
from conftest import blobs

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.training import interrupt, train


@pytest.fixture
def terminal_sigint():
    """SIGINT as in a terminal, also when the tests run in a background job (which ignores it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def installed(terminal_sigint):
    restore = interrupt.install()
    yield
    restore()


def lose_an_interrupt(signum=signal.SIGINT):
    """Deliver ``signum`` where its KeyboardInterrupt is swallowed, as a destructor or a C callback would."""
    try:
        signal.raise_signal(signum)
    except KeyboardInterrupt:
        pass


def test_install_handles_both_signals_and_restore_puts_the_old_handlers_back(terminal_sigint):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    restore = interrupt.install()
    try:
        assert signal.getsignal(signal.SIGINT) is interrupt._stop
        assert signal.getsignal(signal.SIGTERM) is interrupt._stop
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()                           # remembered
    finally:
        restore()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    interrupt.check()                                   # forgotten: no longer raises


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        restore = interrupt.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        restore()
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_lost_interrupt_still_stops_numpy_training_after_the_epoch(installed, signum):
    x, labels = blobs(n=200, n_in=6, k=3, seed=2)
    net = FeedforwardNetwork((6, 8, 3), seed=0)
    lose_an_interrupt(signum)
    history = train(net, (x, labels), epochs=50, mini_batch_size=10, eta=0.5)
    assert history.stop_reason == "interrupted"
    assert history.epochs == []
    assert net.parameters_finite()


def test_a_lost_interrupt_still_stops_convolutional_training(installed):
    torch = pytest.importorskip("torch")
    from nndl.deep.config import ConvNetConfig
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train as train_conv
    config = ConvNetConfig(input_shape=(1, 8, 8), layers=(
        {"type": "conv-pool", "filters": 2, "filter": 3, "pool": 2, "activation": "sigmoid"},
        {"type": "softmax", "n_out": 2}), dtype="float64")
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(40, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 2, (40,), generator=g)
    net = ConvNetwork(config, seed=0)
    lose_an_interrupt()
    history = train_conv(net, (images, labels), epochs=50, mini_batch_size=10, eta=0.1)
    assert history.stop_reason == "interrupted"
    assert history.epochs == []


def test_without_install_a_library_user_keeps_pythons_ctrl_c():
    x, labels = blobs(n=100, n_in=6, k=3, seed=2)
    history = train(FeedforwardNetwork((6, 8, 3), seed=0), (x, labels), epochs=2, mini_batch_size=10, eta=0.5)
    assert history.stop_reason == "completed" and history.epochs == [0, 1]
