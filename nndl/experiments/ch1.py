"""Chapter 1's experiments: perceptrons, sigmoid neurons, the first digit classifier and its baselines.

Hand-built constructions (checked exactly, no randomness):

* ``ch1-nand`` -- the perceptron with weights -2, -2 and bias 3 is a NAND gate;
* ``ch1-adder`` -- the book's circuit of five NAND perceptrons adds two bits;
* ``ch1-sigmoid-limit`` -- sigma(c (w.x + b)) tends to the perceptron's step as c grows;
* ``ch1-binary-output`` -- the exercise's extra layer turning 10 outputs into a 4-bit code.

The network runs of ``network.py`` (sigmoid neurons, quadratic cost,
weights and biases N(0, 1), mini-batches of 10, 30 epochs, test accuracy):
``ch1-30-hidden``, ``ch1-100-hidden``, ``ch1-eta-0.001``, ``ch1-eta-100``,
``ch1-no-hidden``; and the baselines the book compares them with:
``ch1-random``, ``ch1-darkness``, ``ch1-svm``.

A perceptron here outputs 1 when w.x + b > 0 and 0 otherwise (the book's
rule, with the threshold moved into the bias).
"""

import math
from dataclasses import dataclass

import numpy as np

from nndl.errors import ConfigError, MissingDependencyError
from nndl.experiments.common import MnistRun, mnist_experiment, train_mnist
from nndl.experiments.figures import figure
from nndl.experiments.registry import Experiment, register
from nndl.training.config import NetworkConfig, Settings, TrainingConfig
from nndl.validate import real_number, whole_number

__all__ = ["perceptron", "nand", "half_adder", "binary_output_layer", "average_darkness", "classify_by_darkness",
           "PerceptronGate", "AdderConfig", "SigmoidLimitConfig", "BinaryOutputConfig", "RandomGuessConfig",
           "DarknessConfig", "SvmConfig"]

#: The four inputs of a two-input gate, one per row: 00, 01, 10, 11.
TRUTH_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.int64)


# --- settings checks ----------------------------------------------------------------------------

def _real(value, what):
    """A finite real number of either sign."""
    return real_number(value, what, low=-math.inf)


def _reals(values, what, n=None):
    """A tuple of finite reals (exactly ``n`` of them when given)."""
    if not isinstance(values, (list, tuple)) or not values or (n is not None and len(values) != n):
        count = f"{n} numbers" if n is not None else "a list of numbers"
        raise ConfigError(f"{what} must be {count}, got {values!r}")
    return tuple(_real(v, what) for v in values)


def _optional_size(value, what):
    if value is not None:
        whole_number(value, what)


# --- perceptrons ----------------------------------------------------------------------------------

def perceptron(x, w, b):
    """The perceptron's output: 1 where w.x + b > 0, else 0.

    Parameters
    ----------
    x : array_like, shape (n, len(w))
        One input per row.
    w : array_like, shape (len(w),)
    b : float

    Returns
    -------
    ndarray of int, shape (n,)
    """
    return (np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64) + b > 0).astype(np.int64)


@dataclass(frozen=True)
class PerceptronGate(Settings):
    """A perceptron with two inputs: the book's NAND gate by default.

    Attributes
    ----------
    weights : (float, float)
        w1, w2 (the book: -2, -2).
    bias : float
        b (the book: 3).
    """

    weights: tuple = (-2.0, -2.0)
    bias: float = 3.0

    def __post_init__(self):
        object.__setattr__(self, "weights", _reals(self.weights, "the gate's weights", n=2))
        object.__setattr__(self, "bias", _real(self.bias, "the gate's bias"))


def nand(x1, x2, gate=PerceptronGate()):
    """The gate's perceptron applied to two columns of bits: arrays of shape (n,) -> (n,)."""
    return perceptron(np.stack([x1, x2], axis=1), gate.weights, gate.bias)


def _run_nand(config, context):
    outputs = perceptron(TRUTH_INPUTS, config.weights, config.bias)
    expected = 1 - TRUTH_INPUTS[:, 0] * TRUTH_INPUTS[:, 1]             # NAND: 0 only for 11
    weighted = TRUTH_INPUTS @ np.array(config.weights) + config.bias
    exact = bool(np.array_equal(outputs, expected))
    return {
        "value": None, "shown": exact,
        "summary": "NAND on all 4 inputs" if exact else f"not NAND: outputs {outputs.tolist()} for 00, 01, 10, 11",
        "inputs": TRUTH_INPUTS.tolist(), "weighted_input": weighted.tolist(),
        "outputs": outputs.tolist(), "expected": expected.tolist(),
        "weights": list(config.weights), "bias": config.bias,
    }


def _plot_nand(result, path):
    run = result["runs"][0]
    (w1, w2), b = run["weights"], run["bias"]
    with figure(path, title=f"{result['id']}: perceptron w = ({w1:g}, {w2:g}), b = {b:g}",
                caption=f"book: {result['book']}") as (ax,):
        grid = np.linspace(-0.5, 1.5, 201)
        gx, gy = np.meshgrid(grid, grid)
        ax.contourf(gx, gy, (w1 * gx + w2 * gy + b > 0).astype(float), levels=[-0.5, 0.5, 1.5],
                    colors=["#f4cccc", "#d9ead3"], alpha=0.8)
        if w2 != 0:
            ax.plot(grid, -(w1 * grid + b) / w2, color="k", label=f"{w1:g} x1 + {w2:g} x2 + {b:g} = 0")
        for (x1, x2), out, want in zip(run["inputs"], run["outputs"], run["expected"]):
            ax.scatter([x1], [x2], s=160, color="tab:green" if out else "tab:red", edgecolor="k", zorder=3)
            ax.annotate(f"{x1}{x2} -> {out}" + ("" if out == want else f" (NAND: {want})"), (x1, x2),
                        xytext=(8, 8), textcoords="offset points", fontsize=9)
        ax.scatter([], [], color="tab:green", edgecolor="k", label="output 1")
        ax.scatter([], [], color="tab:red", edgecolor="k", label="output 0")
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")


# --- the adder ----------------------------------------------------------------------------------

#: The book's adder of two bits: (gate, first input, second input), each gate a NAND perceptron.
#: The carry gate gets the first gate's output twice (the book's "double connection").
ADDER_GATES = (
    ("g1", "x1", "x2"),
    ("g2", "x1", "g1"),
    ("g3", "g1", "x2"),
    ("sum", "g2", "g3"),
    ("carry", "g1", "g1"),
)


@dataclass(frozen=True)
class AdderConfig(Settings):
    """The adder's gate: every one of its five perceptrons is this one (NAND by default)."""

    gate: PerceptronGate = PerceptronGate()

    def __post_init__(self):
        if not isinstance(self.gate, PerceptronGate):
            raise ConfigError("the adder's gate must be a PerceptronGate")


def half_adder(x1, x2, gate=PerceptronGate(), merged=False):
    """x1 + x2 for columns of bits, computed only by the gate's perceptrons wired as the book's circuit.

    Parameters
    ----------
    x1, x2 : ndarray of int, shape (n,)
    gate : PerceptronGate
    merged : bool
        Give the carry perceptron its doubled input as one connection of
        weight w1 + w2 (the book's -4) instead of two of -2 each.

    Returns
    -------
    sum_bit, carry_bit : ndarray of int, shape (n,)
    """
    values = {"x1": np.asarray(x1), "x2": np.asarray(x2)}
    for name, a, b in ADDER_GATES:
        if merged and a == b:
            w = (gate.weights[0] + gate.weights[1],)
            values[name] = perceptron(values[a][:, None], w, gate.bias)
        else:
            values[name] = nand(values[a], values[b], gate)
    return values["sum"], values["carry"]


def _run_adder(config, context):
    x1, x2 = TRUTH_INPUTS[:, 0], TRUTH_INPUTS[:, 1]
    want_sum, want_carry = x1 ^ x2, x1 & x2
    rows, exact = {}, True
    for merged in (False, True):
        sum_bit, carry_bit = half_adder(x1, x2, config.gate, merged=merged)
        ok = bool(np.array_equal(sum_bit, want_sum) and np.array_equal(carry_bit, want_carry))
        exact = exact and ok
        rows["merged" if merged else "double"] = {"sum": sum_bit.tolist(), "carry": carry_bit.tolist(), "exact": ok}
    return {
        "value": None, "shown": exact,
        "summary": "adds two bits exactly (5 NAND perceptrons)" if exact else "wrong on some inputs",
        "inputs": TRUTH_INPUTS.tolist(), "expected_sum": want_sum.tolist(), "expected_carry": want_carry.tolist(),
        "circuit": [list(g) for g in ADDER_GATES], "double": rows["double"], "merged": rows["merged"],
    }


def _plot_adder(result, path):
    run = result["runs"][0]
    header = ["x1", "x2", "sum", "carry", "x1 XOR x2", "x1 AND x2", "sum (-4 weight)", "carry (-4 weight)"]
    cells, colours = [], []
    for i, (x1, x2) in enumerate(run["inputs"]):
        row = [x1, x2, run["double"]["sum"][i], run["double"]["carry"][i], run["expected_sum"][i],
               run["expected_carry"][i], run["merged"]["sum"][i], run["merged"]["carry"][i]]
        cells.append([str(v) for v in row])
        good = [row[2] == row[4], row[3] == row[5], row[6] == row[4], row[7] == row[5]]
        colours.append(["white", "white"] + ["#d9ead3" if g else "#f4cccc" for g in good[:2]] + ["white", "white"]
                       + ["#d9ead3" if g else "#f4cccc" for g in good[2:]])
    circuit = "; ".join(f"{g} = NAND({a}, {b})" for g, a, b in run["circuit"])
    with figure(path, title=f"{result['id']}: adding two bits with NAND perceptrons (w = -2, -2, b = 3)",
                size=(9.0, 3.2), caption=circuit) as (ax,):
        ax.axis("off")
        table = ax.table(cellText=cells, colLabels=header, cellColours=colours, loc="center", cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1.0, 1.6)
        verdict = "exact on every input" if run["shown"] else "WRONG on some input"
        ax.set_title(f"truth table: {verdict} (green: equals the expected bit)", fontsize=9)


# --- sigmoid neurons as perceptrons -----------------------------------------------------------------

@dataclass(frozen=True)
class SigmoidLimitConfig(Settings):
    """A perceptron (the NAND gate) and sigmoid neurons with its weights and bias times c.

    Attributes
    ----------
    weights : (float, float)
    bias : float
    scales : tuple of float
        The values of c, increasing.
    margin : float
        Inputs with ``|w.x + b| < margin`` are left out: on the boundary
        w.x + b = 0 the sigmoid neuron gives 1/2 whatever c (the book's exercise
        excludes it), and near it the convergence is arbitrarily slow.
    grid : int
        Inputs are a grid of grid x grid points on [0, 1]^2.
    """

    weights: tuple = (-2.0, -2.0)
    bias: float = 3.0
    scales: tuple = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    margin: float = 0.1
    grid: int = 101

    def __post_init__(self):
        object.__setattr__(self, "weights", _reals(self.weights, "the weights", n=2))
        object.__setattr__(self, "bias", _real(self.bias, "the bias"))
        scales = _reals(self.scales, "the scales c")
        if any(c <= 0 for c in scales) or list(scales) != sorted(set(scales)):
            raise ConfigError(f"the scales c must be positive and increasing, got {list(scales)}")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "margin", real_number(self.margin, "the margin", low_open=True))
        object.__setattr__(self, "grid", whole_number(self.grid, "the grid size", minimum=2))


def _run_sigmoid_limit(config, context):
    from scipy.special import expit

    t = np.linspace(0.0, 1.0, config.grid)
    x = np.stack(np.meshgrid(t, t), axis=-1).reshape(-1, 2)                  # (grid^2, 2)
    z = x @ np.array(config.weights) + config.bias                          # (grid^2,)
    keep = np.abs(z) >= config.margin
    step = perceptron(x[keep], config.weights, config.bias)
    max_difference = [float(np.max(np.abs(expit(c * z[keep]) - step))) for c in config.scales]
    decreasing = all(b < a for a, b in zip(max_difference, max_difference[1:]))
    curve_z = np.linspace(-3.0, 3.0, 241)
    return {
        "value": max_difference[-1], "shown": bool(decreasing),
        "summary": f"max |sigma(c z) - step(z)| from {max_difference[0]:.3g} (c = {config.scales[0]:g}) to "
                   f"{max_difference[-1]:.3g} (c = {config.scales[-1]:g})"
                   + ("" if decreasing else "; NOT decreasing"),
        "scales": list(config.scales), "max_difference": max_difference, "inputs_used": int(keep.sum()),
        "curve_z": curve_z.tolist(), "curves": [expit(c * curve_z).tolist() for c in config.scales],
        "margin": config.margin,
    }


def _plot_sigmoid_limit(result, path):
    run = result["runs"][0]
    with figure(path, ncols=2, title=f"{result['id']}: sigma(c(w.x + b)) tends to the perceptron's step",
                caption=f"inputs: [0, 1]^2 with |w.x + b| >= {run['margin']:g}") as (left, right):
        z = np.array(run["curve_z"])
        for c, curve in zip(run["scales"], run["curves"]):
            left.plot(z, curve, label=f"c = {c:g}")
        left.step(z, (z > 0).astype(float), where="post", color="k", linestyle="--", label="step (perceptron)")
        left.set_xlabel("z = w.x + b")
        left.set_ylabel("output")
        right.loglog(run["scales"], run["max_difference"], "o-")
        right.set_xlabel("c")
        right.set_ylabel("max |sigma(c z) - step(z)|")


# --- the exercise: a 4-bit output layer -----------------------------------------------------------

#: Place values of the four output bits, most significant first.
BIT_VALUES = np.array([8, 4, 2, 1])


def binary_output_layer(weight=10.0):
    """Weights and biases of the extra layer mapping the 10 digit outputs to the digit's 4-bit code.

    Output neuron k (most significant bit first) has weight +weight from
    digit neuron d when bit k of d is 1 and -weight when it is 0, and bias 0.
    With the correct digit neuron at >= 0.99 and the others at <= 0.01, the
    weighted input of a bit that should be 1 is at least
    weight (0.99 - 9 x 0.01) = 0.9 weight > 0, and of a bit that should be 0
    at most -0.9 weight < 0.

    Returns
    -------
    w : ndarray, shape (4, 10)
    b : ndarray, shape (4,)
    """
    bits = (np.arange(10)[None, :] // BIT_VALUES[:, None]) % 2               # (4, 10): bit k of digit d
    return np.where(bits == 1, weight, -weight).astype(np.float64), np.zeros(4)


def _decode(a, w, b):
    """The 4-bit number the extra layer reads from outputs a of shape (n, 10): bits > 1/2, shape (n,)."""
    from scipy.special import expit
    return (expit(a @ w.T + b) > 0.5).astype(np.int64) @ BIT_VALUES


def _worst_case(w, b, digit, high, low):
    """Over outputs with a[digit] in [high, 1] and the others in [0, low]: the (min, max) weighted input of each bit.

    z = w a + b is linear in a, so its extremes are at the corners of the box.
    """
    lo = np.full(10, 0.0)
    hi = np.full(10, low)
    lo[digit], hi[digit] = high, 1.0
    z_min = np.minimum(w * lo, w * hi).sum(axis=1) + b                     # (4,)
    z_max = np.maximum(w * lo, w * hi).sum(axis=1) + b
    return z_min, z_max


@dataclass(frozen=True)
class BinaryOutputConfig(Settings):
    """The extra layer's weights, the exercise's assumption, and a network whose real outputs it decodes.

    Attributes
    ----------
    weight : float
        The magnitude of the extra layer's weights.
    high, low : float
        The exercise's assumption: the correct output at least ``high``, the others at most ``low``.
    network : MnistRun
        A chapter 1 network trained briefly; its test outputs are decoded.
    """

    weight: float = 10.0
    high: float = 0.99
    low: float = 0.01
    network: MnistRun = MnistRun(net=NetworkConfig(sizes=(784, 30, 10)),
                                 train=TrainingConfig(epochs=3, mini_batch_size=10, eta=3.0))

    def __post_init__(self):
        object.__setattr__(self, "weight", real_number(self.weight, "the weight", low_open=True))
        object.__setattr__(self, "high", real_number(self.high, "high", high=1.0, high_open=False))
        object.__setattr__(self, "low", real_number(self.low, "low", high=self.high))
        if not isinstance(self.network, MnistRun):
            raise ConfigError("the network to decode must be an MnistRun")
        if self.network.net.sizes[-1] != 10:
            raise ConfigError("the network to decode needs 10 outputs")


def _run_binary_output(config, context):
    from scipy.special import expit

    w, b = binary_output_layer(config.weight)
    digits = np.arange(10)
    # 1. the exercise: outputs that satisfy its assumption
    one_hot = np.eye(10)
    assumed = np.where(one_hot == 1, config.high, config.low)               # (10, 10): correct at high, others at low
    decoded_one_hot = _decode(one_hot, w, b).tolist()
    decoded_assumed = _decode(assumed, w, b).tolist()
    want_bits = (digits[:, None] // BIT_VALUES[None, :]) % 2               # (10, 4)
    worst_high, worst_low = 1.0, 0.0                                        # output of the weakest 1-bit / 0-bit
    for d in digits:
        z_min, z_max = _worst_case(w, b, d, config.high, config.low)
        ones = want_bits[d] == 1
        if ones.any():
            worst_high = min(worst_high, float(expit(z_min[ones]).min()))
        if (~ones).any():
            worst_low = max(worst_low, float(expit(z_max[~ones]).max()))
    exact = (decoded_one_hot == digits.tolist() and decoded_assumed == digits.tolist()
             and worst_high > 0.5 and worst_low < 0.5)

    # 2. a trained network's real outputs
    net, history = train_mnist(config.network, context)
    data = context.mnist()
    test = data.test if config.network.evaluate_on == "test" else data.validation
    x, labels = test.images, test.labels
    if config.network.evaluation_size:
        x, labels = x[:config.network.evaluation_size], labels[:config.network.evaluation_size]
    a = net.feedforward(x)                                                  # (n, 10)
    argmax = a.argmax(axis=1)
    decoded = _decode(a, w, b)
    agree = decoded == argmax
    confident = (a.max(axis=1) >= config.high) & (np.sort(a, axis=1)[:, -2] <= config.low)
    agreement = float(agree.mean())
    return {
        "value": agreement, "shown": bool(exact),
        "summary": (f"exact on the 10 digits; decodes the argmax of {100 * agreement:.2f}% of "
                    f"{len(labels):,} real outputs" if exact else "NOT exact on the 10 digits"),
        "w": w.tolist(), "b": b.tolist(), "decoded_one_hot": decoded_one_hot, "decoded_assumed": decoded_assumed,
        "worst_one_bit": worst_high, "worst_zero_bit": worst_low,
        "n_evaluated": int(len(labels)), "network_accuracy": float(np.mean(argmax == labels)),
        "confident_fraction": float(confident.mean()),
        "agreement_confident": float(agree[confident].mean()) if confident.any() else None,
        "agreement_other": float(agree[~confident].mean()) if (~confident).any() else None,
        "decoded_counts": np.bincount(decoded, minlength=16).tolist(),
        "history": history.to_dict(),
    }


def _plot_binary_output(result, path):
    run = result["runs"][0]
    w = np.array(run["w"])
    with figure(path, ncols=2, size=(5.5, 4.0), title=f"{result['id']}: a 4-bit output layer after the 10 outputs",
                caption=f"{result['config']['network']['net']['sizes']} trained "
                        f"{result['config']['network']['train']['epochs']} epochs; bits read as sigma(z) > 1/2") \
            as (left, right):
        limit = 2 * np.abs(w).max()                                        # pale colours, readable numbers
        left.imshow(w, cmap="RdBu", vmin=-limit, vmax=limit)
        for (k, d), value in np.ndenumerate(w):
            left.text(d, k, f"{value:+g}", ha="center", va="center", fontsize=7)
        left.set_xticks(range(10))
        left.set_yticks(range(4), [f"bit {v}" for v in BIT_VALUES])
        left.set_xlabel("digit neuron (old output layer)")
        left.set_title("weights (biases 0)", fontsize=9)
        labels, values = [], []
        for r in result["runs"]:
            seed = f"\nseed {r['seed']}" if len(result["runs"]) > 1 else ""
            for key, what in (("value", "all outputs"),
                              ("agreement_confident", f"assumption holds\n({100 * r['confident_fraction']:.1f}%)"),
                              ("agreement_other", f"assumption fails\n({100 - 100 * r['confident_fraction']:.1f}%)")):
                if r.get(key) is not None:
                    labels.append(what + seed)
                    values.append(100 * r[key])
        bars = right.bar(range(len(values)), values, color="tab:blue")
        right.bar_label(bars, fmt="%.1f%%", fontsize=7)
        right.set_xticks(range(len(values)), labels, fontsize=7)
        right.set_ylabel("decoded number = argmax (%)")
        right.set_ylim(0, 105)
        right.set_title(f"{result['runs'][0]['n_evaluated']:,} real test outputs "
                        f"(assumption: correct >= {result['config']['high']:g}, others <= {result['config']['low']:g})",
                        fontsize=8)


# --- the network runs of network.py ---------------------------------------------------------------

def _chapter1_run(sizes, eta, quick=False):
    """network.py's run: sigmoid, quadratic cost, N(0, 1) weights, 30 epochs of mini-batches of 10, test data."""
    net = NetworkConfig(sizes=sizes, activations=("sigmoid",), cost="quadratic", init="large")
    if quick:
        return MnistRun(net=net, train=TrainingConfig(epochs=2, mini_batch_size=10, eta=eta), training_size=2000,
                        evaluate_on="test", evaluation_size=1000)
    return MnistRun(net=net, train=TrainingConfig(epochs=30, mini_batch_size=10, eta=eta), evaluate_on="test")


# --- baselines --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RandomGuessConfig(Settings):
    """Guess a digit uniformly at random for each test image (the first ``evaluation_size``; None: all 10,000)."""

    evaluation_size: int | None = None

    def __post_init__(self):
        _optional_size(self.evaluation_size, "evaluation_size")


def _per_digit_accuracy(guesses, labels):
    return [float(np.mean(guesses[labels == d] == d)) if np.any(labels == d) else None for d in range(10)]


def _run_random(config, context):
    labels = context.mnist().test.labels[:config.evaluation_size]
    rng = np.random.default_rng(context.seed)
    guesses = rng.integers(0, 10, size=labels.shape[0])
    correct = int(np.count_nonzero(guesses == labels))
    return {
        "value": correct / labels.shape[0], "correct": correct, "n": int(labels.shape[0]),
        "summary": f"{correct:,} / {labels.shape[0]:,}",
        "per_digit_accuracy": _per_digit_accuracy(guesses, labels),
    }


def _plot_per_digit(ax, runs):
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        ax.bar(np.arange(10) + (i - (len(runs) - 1) / 2) * width,
               [100 * (a or 0.0) for a in run["per_digit_accuracy"]], width=width,
               label=f"seed {run['seed']}" if run.get("seed") is not None else None)
    ax.set_xticks(range(10))
    ax.set_xlabel("digit")
    ax.set_ylabel("test accuracy (%)")


def _plot_random(result, path):
    with figure(path, title=f"{result['id']}: {result['title']}", caption=f"book: {result['book']}") as (ax,):
        _plot_per_digit(ax, result["runs"])
        ax.axhline(10, color="0.4", linestyle=":", label="10%")


@dataclass(frozen=True)
class DarknessConfig(Settings):
    """The average-darkness classifier.

    Attributes
    ----------
    training_size : int, optional
        Average over the first this many of the 50,000 training images (None: all, as the book).
    evaluation_size : int, optional
        Classify the first this many test images (None: all 10,000).
    """

    training_size: int | None = None
    evaluation_size: int | None = None

    def __post_init__(self):
        _optional_size(self.training_size, "training_size")
        _optional_size(self.evaluation_size, "evaluation_size")


def average_darkness(images, labels):
    """The mean total darkness (sum of pixel values) of each digit's images: shape (10,).

    Parameters
    ----------
    images : ndarray, shape (n, 784)
    labels : ndarray of int, shape (n,)
    """
    darkness = images.sum(axis=1, dtype=np.float64)                           # (n,)
    return np.array([darkness[labels == d].mean() if np.any(labels == d) else np.nan for d in range(10)])


def classify_by_darkness(images, averages):
    """For each image, the digit whose average darkness is closest to its own: shape (n,).

    Ties go to the smaller digit; a digit never seen (nan average) is never chosen.
    """
    darkness = images.sum(axis=1, dtype=np.float64)                           # (n,)
    distance = np.abs(darkness[:, None] - averages[None, :])                  # (n, 10)
    return np.where(np.isnan(distance), np.inf, distance).argmin(axis=1)


def _run_darkness(config, context):
    data = context.mnist()
    train_x, train_y = data.training.images[:config.training_size], data.training.labels[:config.training_size]
    test_x, test_y = data.test.images[:config.evaluation_size], data.test.labels[:config.evaluation_size]
    averages = average_darkness(train_x, train_y)
    guesses = classify_by_darkness(test_x, averages)
    correct = int(np.count_nonzero(guesses == test_y))
    return {
        "value": correct / test_y.shape[0], "correct": correct, "n": int(test_y.shape[0]),
        "n_training": int(train_y.shape[0]),
        "summary": f"{correct:,} / {test_y.shape[0]:,} (averages over {train_y.shape[0]:,} training images)",
        "average_darkness": [None if np.isnan(a) else float(a) for a in averages],
        "per_digit_accuracy": _per_digit_accuracy(guesses, test_y),
        "guesses": np.bincount(guesses, minlength=10).tolist(),
    }


def _plot_darkness(result, path):
    run = result["runs"][0]
    with figure(path, ncols=2, title=f"{result['id']}: classify by the closest average darkness",
                caption=f"book: {result['book']}; ours: {run['summary']}") as (left, right):
        left.bar(range(10), [a or 0.0 for a in run["average_darkness"]], color="0.3")
        left.set_xticks(range(10))
        left.set_xlabel("digit")
        left.set_ylabel("average darkness (sum of pixels in [0, 1])")
        _plot_per_digit(right, [run])
        right.axhline(100 * run["value"], color="tab:red", linestyle=":", label=f"overall {100 * run['value']:.2f}%")


#: SVC's kernels, and the gamma settings other than a number.
SVM_KERNELS = ("rbf", "linear", "poly", "sigmoid")
SVM_GAMMAS = ("auto", "scale")


@dataclass(frozen=True)
class SvmConfig(Settings):
    """scikit-learn's SVC as the book ran it (the defaults of its day).

    Attributes
    ----------
    training_size : int, optional
        Train on the first this many of the 50,000 training images (None: all, as the book).
    evaluate_on : {"test", "validation"}
        The data classified: the test images (chapter 1) or the validation
        images (chapter 3's comparison with more training data).
    evaluation_size : int, optional
        Classify the first this many of them (None: all 10,000).
    kernel : str
    C : float
    gamma : "auto", "scale" or float
        "auto" is 1 / 784, the default of scikit-learn until 0.22 (since then "scale").
    book_pixels : bool
        Scale the pixels to k/256 as in the book's ``mnist.pkl.gz`` (its largest
        value is 255/256; nndl's pixels are k/255). With the RBF kernel and a
        fixed gamma the scale changes the kernel slightly.
    """

    training_size: int | None = None
    evaluate_on: str = "test"
    evaluation_size: int | None = None
    kernel: str = "rbf"
    C: float = 1.0
    gamma: object = "auto"
    book_pixels: bool = True

    def __post_init__(self):
        _optional_size(self.training_size, "training_size")
        _optional_size(self.evaluation_size, "evaluation_size")
        if self.evaluate_on not in ("test", "validation"):
            raise ConfigError(f"evaluate_on must be test or validation, got {self.evaluate_on!r}")
        if self.kernel not in SVM_KERNELS:
            raise ConfigError(f"unknown SVM kernel {self.kernel!r}; choose one of: {', '.join(SVM_KERNELS)}")
        object.__setattr__(self, "C", real_number(self.C, "C", low_open=True))
        if isinstance(self.gamma, str):
            if self.gamma not in SVM_GAMMAS:
                raise ConfigError(f"gamma must be a positive number or one of {', '.join(SVM_GAMMAS)}, "
                                  f"got {self.gamma!r}")
        else:
            object.__setattr__(self, "gamma", real_number(self.gamma, "gamma", low_open=True))
        if not isinstance(self.book_pixels, bool):
            raise ConfigError(f"book_pixels must be true or false, got {self.book_pixels!r}")


def _run_svm(config, context):
    import time

    try:
        import sklearn
        from sklearn import svm
    except ImportError:
        raise MissingDependencyError("ch1-svm needs scikit-learn: pip install scikit-learn") from None
    data = context.mnist()
    scale = np.float32(255 / 256) if config.book_pixels else np.float32(1)
    train_x = data.training.images[:config.training_size] * scale
    train_y = data.training.labels[:config.training_size]
    evaluation = data.test if config.evaluate_on == "test" else data.validation
    test_x = evaluation.images[:config.evaluation_size] * scale
    test_y = evaluation.labels[:config.evaluation_size]
    clf = svm.SVC(C=config.C, kernel=config.kernel, gamma=config.gamma)
    start = time.perf_counter()
    clf.fit(train_x, train_y)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predictions = clf.predict(test_x)
    predict_seconds = time.perf_counter() - start
    correct = int(np.count_nonzero(predictions == test_y))
    confusion = np.zeros((10, 10), dtype=np.int64)                            # [true digit, predicted digit]
    np.add.at(confusion, (test_y, predictions), 1)
    return {
        "value": correct / test_y.shape[0], "correct": correct, "n": int(test_y.shape[0]),
        "n_training": int(train_y.shape[0]), "evaluated_on": config.evaluate_on,
        "summary": f"{correct:,} / {test_y.shape[0]:,} {config.evaluate_on} images (trained on "
                   f"{train_y.shape[0]:,})",
        "confusion": confusion.tolist(), "n_support_vectors": int(clf.n_support_.sum()),
        "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "sklearn_version": sklearn.__version__,
    }


def _plot_svm(result, path):
    run = result["runs"][0]
    confusion = np.array(run["confusion"])
    config = result["config"]
    gamma = "1/784" if config["gamma"] == "auto" else config["gamma"]
    with figure(path, size=(6.0, 5.0), title=f"{result['id']}: SVC ({config['kernel']}, C = {config['C']:g}, "
                                              f"gamma = {gamma}), {run.get('evaluated_on', 'test')} predictions",
                caption=f"book: {result['book']}; ours: {run['summary']}, scikit-learn {run['sklearn_version']}") \
            as (ax,):
        image = ax.imshow(np.log10(1 + confusion), cmap="Blues")
        for (i, j), count in np.ndenumerate(confusion):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                        color="white" if count > confusion.max() / 3 else "black")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("true digit")
        ax.grid(False)
        ax.figure.colorbar(image, ax=ax, shrink=0.7, label="log10(1 + count)")


# --- the registry -----------------------------------------------------------------------------------

def _register():
    register(Experiment(
        id="ch1-nand", title="a perceptron with weights -2, -2 and bias 3 computes NAND",
        run=_run_nand, config=PerceptronGate(), book="NAND: 00, 01, 10 -> 1; 11 -> 0", unit="",
        plot=_plot_nand, seeded=False))
    register(Experiment(
        id="ch1-adder", title="an adder of two bits built only from NAND perceptrons",
        run=_run_adder, config=AdderConfig(), book="sum bit x1 XOR x2, carry bit x1 AND x2", unit="",
        plot=_plot_adder, seeded=False))
    register(Experiment(
        id="ch1-sigmoid-limit", title="sigmoid neurons with weights and bias times c tend to perceptrons as c grows",
        run=_run_sigmoid_limit, config=SigmoidLimitConfig(),
        book="the same as the perceptron in the limit c -> infinity (where w.x + b != 0)", unit="",
        plot=_plot_sigmoid_limit, seeded=False))
    register(Experiment(
        id="ch1-binary-output", title="an extra layer converts the 10 outputs to the digit's 4-bit code (exercise)",
        run=_run_binary_output, config=BinaryOutputConfig(),
        quick=BinaryOutputConfig(network=MnistRun(net=NetworkConfig(sizes=(784, 30, 10)),
                                                  train=TrainingConfig(epochs=1, mini_batch_size=10, eta=3.0),
                                                  training_size=2000, evaluation_size=1000)),
        book="exercise: weights exist (correct output >= 0.99, others <= 0.01); no number given",
        plot=_plot_binary_output, needs=("mnist",)))

    mnist_experiment("ch1-30-hidden", "network.py, [784, 30, 10], eta 3.0: best test accuracy",
                     _chapter1_run((784, 30, 10), 3.0), _chapter1_run((784, 30, 10), 3.0, quick=True),
                     book="peak 95.42% (epoch 28); epoch 0 about 91% (9,129)", target=0.9542, tolerance=0.003)
    mnist_experiment("ch1-100-hidden", "network.py, [784, 100, 10], eta 3.0: best test accuracy",
                     _chapter1_run((784, 100, 10), 3.0), _chapter1_run((784, 100, 10), 3.0, quick=True),
                     book="96.59% (runs vary a lot)", target=0.9659, tolerance=0.003)
    mnist_experiment("ch1-eta-0.001", "network.py, [784, 100, 10], eta 0.001: learns very slowly (value: best epoch)",
                     _chapter1_run((784, 100, 10), 0.001), _chapter1_run((784, 100, 10), 0.001, quick=True),
                     book="about 21% after 30 epochs (2,142 / 10,000 at epoch 29, still rising)", target=0.21,
                     tolerance=0.05, better=None)
    mnist_experiment("ch1-eta-100", "network.py, [784, 30, 10], eta 100: too large, stuck (value: best epoch)",
                     _chapter1_run((784, 30, 10), 100.0), _chapter1_run((784, 30, 10), 100.0, quick=True),
                     book="stuck near 10% (1,009 / 10,000, later 982)", target=0.10, tolerance=0.05, better=None)
    mnist_experiment("ch1-no-hidden", "network.py, [784, 10] without a hidden layer (exercise): best test accuracy",
                     _chapter1_run((784, 10), 3.0), _chapter1_run((784, 10), 3.0, quick=True),
                     book="no number given")

    register(Experiment(
        id="ch1-random", title="baseline: guess the digit at random", run=_run_random,
        config=RandomGuessConfig(), book="about 10%", target=0.10, tolerance=0.01, better=None,
        plot=_plot_random, needs=("mnist",)))
    register(Experiment(
        id="ch1-darkness", title="baseline: the digit of the closest average darkness", run=_run_darkness,
        config=DarknessConfig(), quick=DarknessConfig(training_size=5000, evaluation_size=1000),
        book="2,225 / 10,000 = 22.25%", target=0.2225, tolerance=0.00005, better=None,
        plot=_plot_darkness, seeded=False, needs=("mnist",)))
    register(Experiment(
        id="ch1-svm", title="baseline: scikit-learn's SVC with the defaults of the book's day", run=_run_svm,
        config=SvmConfig(), quick=SvmConfig(training_size=1000, evaluation_size=1000),
        book="9,435 / 10,000 = 94.35%", target=0.9435, tolerance=0.001, better=None,
        plot=_plot_svm, seeded=False, needs=("mnist", "sklearn")))


_register()
