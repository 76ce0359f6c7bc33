"""Chapter 5: why are deep neural networks hard to train? Unstable gradients.

The book measures the "speed of learning" of each hidden layer l as the
length ||dC/db^l|| of the gradient of the cost with respect to that layer's
biases, averaged over 1,000 training images. In sigmoid networks with
hidden layers of 30 neurons, the earlier layers learn much more slowly,
and the gap grows with depth (the vanishing gradient problem); a chain of
single neurons shows why: dC/db_1 is a product of factors w_j sigma'(z_j),
each usually below 1/4 in size, and with large weights the product can
explode instead.

Experiments:

* ``ch5-speed-init``      ||dC/db^l|| of every hidden layer at initialisation, 2, 3 and 4 hidden layers;
* ``ch5-speed-training``  the same norms during training (the book's batch gradient descent on 1,000 images);
* ``ch5-depth-accuracy``  accuracy against depth: adding hidden layers does not help much;
* ``ch5-chain``           the chain of one sigmoid neuron per layer: vanishing and exploding gradients.

The networks are the book's network2 set-up (cross-entropy cost, weights
N(0, 1/n_in), biases N(0, 1)) on nndl's engine; the gradients come from its
backpropagation (``FeedforwardNetwork.backprop``).
"""

from dataclasses import dataclass

import numpy as np

from nndl.errors import ConfigError
from nndl.experiments.common import MnistRun, train_mnist
from nndl.experiments.figures import epoch_axis, figure
from nndl.experiments.registry import Experiment, register
from nndl.training.config import NetworkConfig, Settings, TrainingConfig
from nndl.validate import real_number, whole_number

__all__ = ["BOOK_INITIAL_NORMS", "BOOK_DEPTH_ACCURACY", "speed_of_learning", "chain_gradients",
           "exploding_chain", "SpeedInit", "SpeedTraining", "DepthAccuracy", "Chain"]

#: The book's ||dC/db^l|| at initialisation, first hidden layer to last (its repository's data), by hidden layers.
BOOK_INITIAL_NORMS = {2: (0.066, 0.309), 3: (0.012, 0.060, 0.283), 4: (0.0030, 0.0171, 0.0695, 0.285)}
#: The book's best validation accuracies of chapter 5 with 1 to 4 hidden layers of 30 neurons.
BOOK_DEPTH_ACCURACY = {1: 0.9648, 2: 0.9690, 3: 0.9657, 4: 0.9653}
#: How far (a fraction) a measured initial norm may fall from the book's and still count as matching.
NORM_TOLERANCE = 0.30


def speed_of_learning(net, x, labels):
    """The speed of learning of each hidden layer: ||dC/db^l|| of the cost averaged over the examples.

    As the book does: the gradient with respect to the biases of layer l,
    averaged over the n examples, then its length (one number per layer).

    Parameters
    ----------
    net : FeedforwardNetwork
    x : ndarray, shape (n, sizes[0])
    labels : ndarray, shape (n,) of int, or desired outputs (n, sizes[-1])

    Returns
    -------
    list of float, one per hidden layer, first hidden layer first.
    """
    _, nabla_b = net.backprop(x, labels)                   # nabla_b[l]: (sizes[l+1],), summed over the n examples
    n = np.asarray(x).shape[0]
    return [float(np.linalg.norm(nb / n)) for nb in nabla_b[:-1]]


def _whole_numbers(values, what, minimum=1):
    if isinstance(values, int):
        values = (values,)
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{what} must be a list of whole numbers, got {values!r}")
    values = tuple(whole_number(v, what, minimum=minimum) for v in values)
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"{what} must increase, got {list(values)}")
    return values


def _network(depth, hidden, cost, init):
    """A NetworkConfig: 784 inputs, ``depth`` sigmoid hidden layers of ``hidden``, 10 sigmoid outputs."""
    return NetworkConfig(sizes=(784,) + (hidden,) * depth + (10,), activations=("sigmoid",), cost=cost, init=init)


def _training_images(context, images):
    """The first ``images`` of the book's 50,000 training images: x (images, 784), labels (images,)."""
    training = context.mnist().training
    if images > training.images.shape[0]:
        raise ConfigError(f"asked for {images:,} training images, there are {training.images.shape[0]:,}")
    return training.images[:images], training.labels[:images]


def _rising(values):
    """True when the values increase strictly from first to last."""
    return all(b > a for a, b in zip(values, values[1:]))


def _norms_summary(depths, means, books=None):
    return "; ".join(f"{d} hidden " + ", ".join(f"{m:.3g}" for m in mean)
                     + (f" (book {', '.join(f'{b:g}' for b in books[str(d)])})" if str(d) in (books or {}) else "")
                     for d, mean in zip(depths, means))


# --- ch5-speed-init -------------------------------------------------------

@dataclass(frozen=True)
class SpeedInit(Settings):
    """Speed of learning of each hidden layer of freshly initialised networks.

    Attributes
    ----------
    hidden_layers : tuple of int
        The depths measured: [784, 30, 30, 10] has 2 hidden layers.
    hidden : int
        Neurons per hidden layer.
    images : int
        The gradients are averaged over the first this many training images.
    networks : int
        Networks drawn per depth in one run (their norms' mean and spread are reported).
    cost, init : str
        The book's network2: cross-entropy, weights N(0, 1/n_in).
    """

    hidden_layers: tuple = (2, 3, 4)
    hidden: int = 30
    images: int = 1000
    networks: int = 10
    cost: str = "cross-entropy"
    init: str = "default"

    def __post_init__(self):
        object.__setattr__(self, "hidden_layers", _whole_numbers(self.hidden_layers, "hidden_layers"))
        for name in ("hidden", "images", "networks"):
            object.__setattr__(self, name, whole_number(getattr(self, name), name))
        network = _network(1, self.hidden, self.cost, self.init)          # checks cost and init
        object.__setattr__(self, "cost", network.cost)
        object.__setattr__(self, "init", network.init)


def run_speed_init(config, context):
    x, labels = _training_images(context, config.images)
    rng = np.random.default_rng(context.seed)
    depths, norms, means, stds, ratios, within, single, rising = [], [], [], [], [], [], [], []
    for depth in config.hidden_layers:
        network = _network(depth, config.hidden, config.cost, config.init)
        draws = np.array([speed_of_learning(network.build(seed=rng), x, labels)
                          for _ in range(config.networks)])               # (networks, depth)
        mean = draws.mean(axis=0)
        book = BOOK_INITIAL_NORMS.get(depth) if config.hidden == 30 else None    # the book's layers have 30
        depths.append(depth)
        norms.append(draws.tolist())
        means.append(mean.tolist())
        stds.append(draws.std(axis=0).tolist())
        ratios.append(float(mean[0] / mean[-1]))
        within.append(None if book is None else
                      [bool(abs(m - b) <= NORM_TOLERANCE * b) for m, b in zip(mean, book)])
        single.append(None if book is None else
                      np.mean(np.abs(draws - book) <= NORM_TOLERANCE * np.asarray(book), axis=0).tolist())
        rising.append(float(np.mean([_rising(d) for d in draws])))
    deepest = depths.index(4) if 4 in depths else len(depths) - 1
    matched = [w for row in within if row for w in row]
    singles = [v for row in single if row for v in row]
    book_norms = {str(d): list(BOOK_INITIAL_NORMS[d]) for d, w in zip(depths, within) if w is not None}
    compared = (f"; {sum(matched)}/{len(matched)} layer means within +-30% of the book's "
                f"(single networks: {np.mean(singles):.0%})" if matched else "")
    return {
        "value": ratios[deepest],
        "shown": all(_rising(m) for m in means),
        "hidden_layers": depths,
        "norms": norms,
        "mean": means,
        "std": stds,
        "first_to_last": ratios,
        "rising_fraction": rising,
        "within_30_percent": within,
        "single_networks_within_30_percent": single,
        "book": book_norms,
        "book_first_to_last": {str(d): BOOK_INITIAL_NORMS[d][0] / BOOK_INITIAL_NORMS[d][-1]
                               for d, w in zip(depths, within) if w is not None},
        "images": config.images,
        "networks": config.networks,
        "summary": (f"mean of {config.networks} nets: " + _norms_summary(depths, means, book_norms) + compared
                    + f"; relative spread (std/mean) {_relative_spread(stds, means)}"),
    }


def _relative_spread(stds, means):
    values = [s / m for std, mean in zip(stds, means) for s, m in zip(std, mean) if m > 0]
    return f"{min(values):.0%}-{max(values):.0%}" if values else "-"


def _layer_colours(n):
    from matplotlib import colormaps
    cmap = colormaps["viridis"]
    return [cmap(0.1 + 0.75 * i / max(1, n - 1)) for i in range(n)]


def plot_speed_init(result, path):
    runs = result["runs"]
    first = runs[0]
    depths = first["hidden_layers"]
    width = 0.8 / max(depths)
    colours = _layer_colours(max(depths))
    with figure(path, size=(7.0, 4.5), title=f"{result['id']}: {result['title']}",
                caption=f"sigmoid, cross-entropy, weights N(0, 1/n_in); mean and std of "
                        f"{first['networks'] * len(runs)} networks; {first['images']:,} images") as (ax,):
        for g, depth in enumerate(depths):
            draws = np.concatenate([np.asarray(run["norms"][g]) for run in runs])     # (draws, depth)
            book = first["book"].get(str(depth))
            for layer in range(depth):
                position = g + (layer - (depth - 1) / 2) * width
                label = f"hidden layer {layer + 1}" if g == len(depths) - 1 else None
                ax.bar(position, draws[:, layer].mean(), width * 0.9, yerr=draws[:, layer].std(),
                       color=colours[layer], capsize=2, label=label)
                if book:
                    ax.plot(position, book[layer], marker="x", color="black", markersize=8, linestyle="none",
                            label="book" if (g, layer) == (0, 0) else None)
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * 8)                                      # room for the legend above the bars
        ax.legend(loc="upper left", ncol=3, fontsize=8)
        ax.set_xticks(range(len(depths)))
        ax.set_xticklabels([f"{d} hidden layers" for d in depths])
        ax.set_ylabel("||dC/db|| (speed of learning)")


# --- ch5-speed-training ---------------------------------------------------

@dataclass(frozen=True)
class SpeedTraining(Settings):
    """Speed of learning of each hidden layer during training.

    The book's set-up: batch gradient descent (one mini-batch of all 1,000
    images per epoch) for 500 epochs, eta 0.1, lambda 5.0, the norms
    measured on the same 1,000 images before each epoch.

    Attributes
    ----------
    hidden_layers, hidden, images, cost, init
        As in SpeedInit.
    train : TrainingConfig
        Its ``seed`` is replaced by each run's.
    every : int
        Record the norms every this many epochs (and before the first and
        after the last). The book records every epoch; each record is one
        more pass over the images, so every 5 epochs halves the run's time
        and still resolves the curves over 500 epochs.
    """

    hidden_layers: tuple = (2, 3, 4)
    hidden: int = 30
    images: int = 1000
    train: TrainingConfig = TrainingConfig(epochs=500, mini_batch_size=1000, eta=0.1, lmbda=5.0, monitor=())
    every: int = 5
    cost: str = "cross-entropy"
    init: str = "default"

    def __post_init__(self):
        object.__setattr__(self, "hidden_layers", _whole_numbers(self.hidden_layers, "hidden_layers"))
        for name in ("hidden", "images", "every"):
            object.__setattr__(self, name, whole_number(getattr(self, name), name))
        if not isinstance(self.train, TrainingConfig):
            raise ConfigError("train must be a TrainingConfig")
        network = _network(1, self.hidden, self.cost, self.init)
        object.__setattr__(self, "cost", network.cost)
        object.__setattr__(self, "init", network.init)


def _norm_recorder(net, x, labels, every, epochs, recorded, at):
    """An ``on_epoch`` callback: every ``every`` epochs and after the last, appends the speeds of learning
    of ``net`` to ``recorded`` and the epochs done to ``at``."""

    def on_epoch(history):
        done = history.epochs[-1] + 1
        if done % every == 0 or done == epochs:
            recorded.append(speed_of_learning(net, x, labels))
            at.append(done)

    return on_epoch


def run_speed_training(config, context):
    from nndl.training import train

    x, labels = _training_images(context, config.images)
    rng = np.random.default_rng(context.seed)
    depths, epochs, norms, accuracy, slower, ordered = [], [], [], [], [], []
    for depth in config.hidden_layers:
        net = _network(depth, config.hidden, config.cost, config.init).build(seed=rng)
        recorded, at = [speed_of_learning(net, x, labels)], [0]
        on_epoch = _norm_recorder(net, x, labels, config.every, config.train.epochs, recorded, at)
        seed = None if context.seed is None else context.seed * 100 + depth
        train(net, (x, labels), config.train.replace(seed=seed), on_epoch=on_epoch)
        series = np.array(recorded)                                      # (records, depth)
        depths.append(depth)
        epochs.append(at)
        norms.append(series.T.tolist())                                  # norms[g][layer] = list over records
        accuracy.append(net.accuracy(x, labels))
        slower.append(float(np.mean(series[:, 0] < series[:, -1])))
        ordered.append(float(np.mean([_rising(row) for row in series])))
    geometric = [np.exp(np.mean(np.log(np.asarray(n)), axis=1)).tolist() for n in norms]   # per layer, over records
    deepest = len(depths) - 1
    final = float(norms[deepest][0][-1] / norms[deepest][-1][-1])           # first / last hidden layer, at the end
    return {
        "value": final,
        # The book: "through it all, the first hidden layer learns much more slowly". For every depth: the
        # layers' geometric means rise from first to last, and the first is the slower at 90% of the records.
        "shown": all(_rising(g) and s >= 0.9 for g, s in zip(geometric, slower)),
        "hidden_layers": depths,
        "epochs": epochs,
        "norms": norms,
        "geometric_mean": geometric,
        "first_slower_fraction": slower,
        "all_ordered_fraction": ordered,
        "training_accuracy": accuracy,
        "images": config.images,
        "summary": (f"first hidden layer slower than the last at {min(slower):.0%} of the records (worst depth); "
                    "geometric means over the records: "
                    + _norms_summary(depths, geometric)
                    + f"; final first/last {final:.3g} ({depths[deepest]} hidden); training accuracy at the end "
                    + ", ".join(f"{a:.0%}" for a in accuracy)),
    }


def plot_speed_training(result, path):
    first = result["runs"][0]
    depths = first["hidden_layers"]
    colours = _layer_colours(max(depths))
    config = result.get("config") or {}
    train = config.get("train", {})
    setting = (f"; eta {train.get('eta')}, lambda {train.get('lmbda')}, mini-batch {train.get('mini_batch_size')}"
               if train else "")
    with figure(path, ncols=len(depths), size=(4.6, 4.0), title=f"{result['id']}: {result['title']}",
                caption=f"seed {first.get('seed')}; {first['images']:,} training images{setting}") as axes:
        for ax, g, depth in zip(axes, range(len(depths)), depths):
            for layer in range(depth):
                ax.semilogy(first["epochs"][g], first["norms"][g][layer], color=colours[layer],
                            label=f"hidden layer {layer + 1}")
            ax.set_title(f"{depth} hidden layers", fontsize=10)
            epoch_axis(ax)
            ax.set_ylabel("||dC/db|| (speed of learning)")


# --- ch5-depth-accuracy ---------------------------------------------------

@dataclass(frozen=True)
class DepthAccuracy(Settings):
    """Best accuracy of networks with 1 to 4 hidden layers of 30 sigmoid neurons.

    Attributes
    ----------
    base : MnistRun
        The run for every depth; its ``net.sizes`` are replaced by
        [784, hidden x depth, 10]. The book: network2 (cross-entropy,
        weights N(0, 1/n_in)), 30 epochs, mini-batch 10, eta 0.1, lambda
        5.0, validation accuracy.
    hidden_layers : tuple of int
    hidden : int
    """

    base: MnistRun = MnistRun(net=NetworkConfig(sizes=(784, 30, 10), cost="cross-entropy", init="default"),
                              train=TrainingConfig(epochs=30, mini_batch_size=10, eta=0.1, lmbda=5.0),
                              evaluate_on="validation")
    hidden_layers: tuple = (1, 2, 3, 4)
    hidden: int = 30

    def __post_init__(self):
        if not isinstance(self.base, MnistRun):
            raise ConfigError("base must be an MnistRun")
        object.__setattr__(self, "hidden_layers", _whole_numbers(self.hidden_layers, "hidden_layers"))
        object.__setattr__(self, "hidden", whole_number(self.hidden, "hidden"))

    def run_for(self, depth):
        """The MnistRun of the network with ``depth`` hidden layers."""
        net = self.base.net
        sizes = (net.sizes[0],) + (self.hidden,) * depth + (net.sizes[-1],)
        activations = (net.activations[0],) * depth + (net.activations[-1],)     # hidden ones as the base's first
        return self.base.replace(net=net.replace(sizes=sizes, activations=activations))


def run_depth_accuracy(config, context):
    best, curves = [], []
    for depth in config.hidden_layers:
        _, history = train_mnist(config.run_for(depth), context)
        best.append(history.best_accuracy)
        curves.append(history.evaluation_accuracy)
    gain = max(best[1:]) - best[0] if len(best) > 1 else 0.0
    return {
        "value": best[-1],
        "shown": bool(gain < 0.01 and min(best) > 0.5),       # every depth learned, the deeper ones gained < 1 point
        "hidden_layers": list(config.hidden_layers),
        "best_accuracy": best,
        "evaluation_accuracy": curves,
        "evaluated_on": config.base.evaluate_on,
        "gain_over_shallowest": gain,
        "book_accuracy": {str(d): BOOK_DEPTH_ACCURACY[d] for d in config.hidden_layers if d in BOOK_DEPTH_ACCURACY},
        "summary": ", ".join(f"{d} hidden {100 * a:.2f}%" for d, a in zip(config.hidden_layers, best))
                   + f"; deeper gain {100 * gain:+.2f} points",
    }


def plot_depth_accuracy(result, path):
    runs = result["runs"]
    first = runs[0]
    depths = first["hidden_layers"]
    with figure(path, ncols=2, size=(5.0, 4.0), title=f"{result['id']}: {result['title']}",
                caption=f"accuracy on the {first['evaluated_on']} data; book: network2, cross-entropy, "
                        "eta 0.1, lambda 5, 30 epochs") as (left, right):
        for run in runs:
            left.plot(depths, [100 * a for a in run["best_accuracy"]], marker="o", label=f"seed {run['seed']}")
        book = first.get("book_accuracy", {})
        if book:
            keys = [d for d in depths if str(d) in book]
            left.plot(keys, [100 * book[str(d)] for d in keys], marker="x", color="black", linestyle=":",
                      label="book")
        left.set_xticks(depths)
        left.set_xlabel("Hidden layers of 30 neurons")
        left.set_ylabel("Best accuracy (%)")
        for depth, curve in zip(depths, first["evaluation_accuracy"]):
            right.plot(range(len(curve)), [100 * a for a in curve], label=f"{depth} hidden")
        finals = [100 * c[-1] for c in first["evaluation_accuracy"] if c]
        if finals:                  # zoom on where the curves end; a slow first epoch may fall below
            highest = max(100 * max(c) for c in first["evaluation_accuracy"] if c)
            right.set_ylim(max(right.get_ylim()[0], min(finals) - 4), min(100.0, highest + 1))
        epoch_axis(right)
        right.set_ylabel(f"Accuracy (%), seed {first['seed']}")


# --- ch5-chain ------------------------------------------------------------

def chain_gradients(weights, biases, x=1.0, y=0.0):
    """``|dC/db_j|`` of a chain of one sigmoid neuron per layer, by nndl's backpropagation.

    Parameters
    ----------
    weights, biases : sequence of float, one per layer (length L)
    x : float
        The input.
    y : float
        The desired output; the cost is quadratic, C = (a_L - y)^2 / 2.

    Returns
    -------
    gradients : ndarray, shape (L,)
        ``|dC/db_j|`` for the layers j = 1 .. L.
    terms : ndarray, shape (L,)
        ``|w_j sigma'(z_j)|``, the factors of the book's product (the first has
        no later use: dC/db_1 = sigma'(z_1) w_2 sigma'(z_2) ... dC/da_L).
    """
    from nndl.engine.feedforward import FeedforwardNetwork

    L = len(weights)
    net = FeedforwardNetwork([1] * (L + 1), activations="sigmoid", cost="quadratic", init="large")
    net.set_parameters([np.array([[w]]) for w in weights], [np.array([b]) for b in biases])
    _, nabla_b = net.backprop(np.array([[x]]), np.array([[y]]))
    a, terms = x, []
    for w, b in zip(weights, biases):                      # forward, for the factors w_j sigma'(z_j)
        z = w * a + b
        a = 1.0 / (1.0 + np.exp(-z))
        terms.append(abs(w) * a * (1.0 - a))
    return np.abs(np.array([float(nb[0]) for nb in nabla_b])), np.array(terms)


def exploding_chain(layers, w=100.0, x=1.0):
    """The book's exploding construction: every weight w, each bias chosen so that z_j = w a_{j-1} + b_j = 0.

    Then sigma'(z_j) = 1/4 and every factor w sigma'(z_j) is w/4 (25 for w = 100).

    Returns
    -------
    weights, biases : lists of float, one per layer
    """
    weights, biases, a = [], [], x
    for _ in range(layers):
        weights.append(float(w))
        biases.append(-float(w) * a)                       # z = w a + b = 0
        a = 0.5                                            # sigma(0)
    return weights, biases


@dataclass(frozen=True)
class Chain(Settings):
    """Chains of one sigmoid neuron per layer.

    Attributes
    ----------
    layers : int
        Neurons in the chain (the last is the output).
    x, y : float
        The input and the desired output (quadratic cost).
    chains : int
        Random chains drawn (weights and biases N(0, 1)): their median
        ``|dC/db_j|`` per layer is reported.
    w : float
        The weight of the exploding construction.
    """

    layers: int = 5
    x: float = 1.0
    y: float = 0.0
    chains: int = 1000
    w: float = 100.0

    def __post_init__(self):
        object.__setattr__(self, "layers", whole_number(self.layers, "layers", minimum=2))
        object.__setattr__(self, "chains", whole_number(self.chains, "chains"))
        object.__setattr__(self, "x", real_number(self.x, "x", low=-1e6))
        object.__setattr__(self, "y", real_number(self.y, "y", high=1.0, high_open=False))
        object.__setattr__(self, "w", real_number(self.w, "w", low_open=True))


def run_chain(config, context):
    rng = np.random.default_rng(context.seed)
    random_rows, term_rows = [], []
    for _ in range(config.chains):
        weights, biases = rng.standard_normal(config.layers), rng.standard_normal(config.layers)
        g, t = chain_gradients(weights, biases, config.x, config.y)
        random_rows.append(g)
        term_rows.append(t)
    random, terms = np.array(random_rows), np.array(term_rows)          # (chains, layers)
    median = np.median(random, axis=0)
    large_weights, zeroing_biases = exploding_chain(config.layers, config.w, config.x)
    exploding, exploding_terms = chain_gradients(large_weights, zeroing_biases, config.x, config.y)
    vanishing_shown = all(b > a for a, b in zip(median, median[1:]))
    exploding_shown = all(a > b for a, b in zip(exploding, exploding[1:]))
    ratio = np.median(random[:, 0] / random[:, -1])
    return {
        "value": float(ratio),
        "shown": bool(vanishing_shown and exploding_shown),
        "layers": config.layers,
        "random_median": median.tolist(),
        "random_quartiles": np.percentile(random, [25, 75], axis=0).tolist(),
        "random_example": random[0].tolist(),
        "random_term_median": np.median(terms, axis=0).tolist(),
        "random_terms_below_quarter": float(np.mean(terms < 0.25)),
        "exploding": exploding.tolist(),
        "exploding_terms": exploding_terms.tolist(),
        "w": config.w,
        "chains": config.chains,
        "summary": (f"random N(0,1): median |dC/db_1|/|dC/db_{config.layers}| {ratio:.3g}, "
                    f"{np.mean(terms < 0.25):.0%} of |w sigma'(z)| below 1/4; w = {config.w:g}: factor "
                    f"{exploding[0] / exploding[1]:.3g} per layer, |dC/db_1| = {exploding[0]:.3g}"),
    }


def plot_chain(result, path):
    runs = result["runs"]
    first = runs[0]
    layers = np.arange(1, first["layers"] + 1)
    with figure(path, size=(6.0, 4.5), title=f"{result['id']}: {result['title']}",
                caption=f"one sigmoid neuron per layer, quadratic cost; random: median (band: quartiles) of "
                        f"{first['chains']} chains") as (ax,):
        for run in runs:
            ax.semilogy(layers, run["random_median"], marker="o", label=f"weights N(0, 1), seed {run['seed']}")
        low, high = first["random_quartiles"]
        ax.fill_between(layers, low, high, alpha=0.2)
        ax.semilogy(layers, first["exploding"], marker="s", color="tab:red",
                    label=f"w = {first['w']:g}, sigma'(z) = 1/4")
        ax.set_xticks(layers)
        ax.set_xlabel("Layer j (1 = first)")
        ax.set_ylabel("|dC/db_j|")


register(Experiment(
    id="ch5-speed-init", title="speed of learning of each hidden layer at initialisation",
    run=run_speed_init, plot=plot_speed_init, config=SpeedInit(), quick=SpeedInit(images=200, networks=2),
    book="initial norms, first to last: 2 hidden 0.066, 0.309; 3 hidden 0.012, 0.060, 0.283; "
         "4 hidden 0.0030, 0.0171, 0.0695, 0.285 (value: first/last for 4 hidden, book 0.0105)",
    better=None, unit="", needs=("mnist",)))

register(Experiment(
    id="ch5-speed-training", title="speed of learning of each hidden layer during training",
    run=run_speed_training, plot=plot_speed_training, config=SpeedTraining(),
    quick=SpeedTraining(images=200, train=SpeedTraining().train.replace(epochs=10, mini_batch_size=200)),
    book="earlier hidden layers learn much more slowly throughout training",
    better=None, unit="", needs=("mnist",)))

register(Experiment(
    id="ch5-depth-accuracy", title="accuracy against the number of hidden layers",
    run=run_depth_accuracy, plot=plot_depth_accuracy, config=DepthAccuracy(),
    quick=DepthAccuracy(base=DepthAccuracy().base.replace(train=DepthAccuracy().base.train.replace(epochs=2),
                                                          training_size=1000, evaluation_size=1000)),
    book="adding layers does not raise accuracy much (96.48%, 96.90%, 96.57%, 96.53% for 1-4 hidden layers)",
    better="higher", unit="%", needs=("mnist",)))

register(Experiment(
    id="ch5-chain", title="a chain of single neurons: vanishing and exploding gradients",
    run=run_chain, plot=plot_chain, config=Chain(), quick=Chain(chains=200),
    book="|w sigma'(z)| < 1/4 usually: gradients vanish toward the first layer; w = 100 with "
         "sigma'(z) = 1/4: each layer multiplies by 25", better=None, unit=""))
