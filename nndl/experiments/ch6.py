"""Chapter 6: the ladder of convolutional networks to 99.67%, the learned filters, the digits still missed.

Every rung of ``nndl.deep.presets`` is an experiment here, run the book's
way (network3: mini-batches of 10 in stored order, its weights and dropout,
lambda over the number of mini-batches); its value is the book's figure of
merit, the test accuracy at the epoch of best validation accuracy. The runs
need PyTorch (``pip install 'nndl[deep]'``); listing them does not.

A rung takes from minutes (fc100) to hours (the expanded-data rungs) on a
CPU: each run checkpoints after every epoch (in OUT/runs/checkpoints) and an
interrupted ``nndl reproduce`` resumes it from there. A checkpoint is the
run's, whatever its number of epochs: ``--epochs 12`` now and the book's 60
later train the same network on, epoch 13 onwards. ``ch6-filters`` and
``ch6-misclassified`` look at the networks of ``ch6-conv1`` and ``ch6-relu``
and share their checkpoints, so after those rungs they need no training; the
members of ``ch6-ensemble`` seed 1 are ``ch6-dropout``'s seeds 1 to 5 in the same way.
``--quick`` trains each network for one epoch on 1,000 images, in seconds.
"""

from dataclasses import dataclass

from nndl.deep.config import ConvNetConfig
from nndl.deep.presets import PRESETS
from nndl.errors import ConfigError
from nndl.experiments.figures import epoch_axis, figure
from nndl.experiments.registry import Experiment, register
from nndl.training.config import Settings, TrainingConfig

__all__ = ["ConvRun", "train_conv"]


@dataclass(frozen=True)
class ConvRun(Settings):
    """A chapter 6 run: a convolutional network, how to train it, on what.

    Attributes
    ----------
    net : ConvNetConfig
    train : TrainingConfig
        Its ``seed`` is replaced by each run's seed.
    expanded : bool
        Train on the 250,000 images of the book's expanded set (each image and its four 1-pixel shifts).
    training_size : int, optional
        The first this many training images only (None: all).
    evaluation_size : int, optional
        The first this many validation and test images only (None: all 10,000 of each).
    members : int
        Networks trained (seeds ``members*(seed-1)+1 ... members*seed``) that vote, as the book's
        ensemble. Where a rung trains the same network alone (ch6-dropout for ch6-ensemble), the
        members are that rung's networks of those seeds, checkpoints shared.
    augmentation : dict, optional
        Distortions drawn afresh every epoch, as ``nndl.deep.augment.Augmentation.to_dict`` writes
        them (shift, rotate, elastic_alpha, elastic_sigma); None for none, the book's way. Left out
        of ``to_dict`` when None, so the book's runs keep the dicts their results and checkpoints hold.
    autocast : {None, "bfloat16"}
        The forward passes of training in bfloat16 (``nndl.deep.train.train``'s ``autocast``); None,
        the book's float32 throughout. Left out of ``to_dict`` when None.
    """

    net: ConvNetConfig | None = None
    train: TrainingConfig = TrainingConfig()
    expanded: bool = False
    training_size: int | None = None
    evaluation_size: int | None = None
    members: int = 1
    augmentation: dict | None = None
    autocast: str | None = None

    def __post_init__(self):
        if not isinstance(self.net, ConvNetConfig) or not isinstance(self.train, TrainingConfig):
            raise ConfigError("a ConvRun needs a ConvNetConfig and a TrainingConfig")
        for name in ("training_size", "evaluation_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number >= 1 or null, got {value!r}")
        if isinstance(self.members, bool) or not isinstance(self.members, int) or self.members < 1:
            raise ConfigError(f"members must be a whole number >= 1, got {self.members!r}")
        if self.augmentation is not None and not (isinstance(self.augmentation, dict) and self.augmentation):
            raise ConfigError(f"augmentation must be a non-empty dict of settings or null, got {self.augmentation!r}")
        if self.autocast not in (None, "bfloat16"):
            raise ConfigError(f"autocast must be null or \"bfloat16\", got {self.autocast!r}")

    def to_dict(self):
        data = super().to_dict()
        for name in ("augmentation", "autocast"):
            if data[name] is None:
                del data[name]
        return data

    def quick(self):
        """The same network and settings, one epoch on 1,000 training images, measured on 500."""
        return ConvRun(net=self.net, train=self.train.replace(epochs=1), expanded=self.expanded,
                       training_size=1000, evaluation_size=500, members=min(self.members, 2),
                       augmentation=self.augmentation, autocast=self.autocast)


def _data(config, context):
    """(training, validation, test) tensor pairs on the CPU, cut to the configured sizes (before expanding)."""
    import dataclasses

    import torch

    from nndl.data.mnist import Split
    from nndl.deep.data import split_tensors

    def first(split, k):
        return split if k is None else Split(split.images[:k], split.labels[:k])

    data = context.mnist()
    data = dataclasses.replace(data, training=first(data.training, config.training_size),
                               validation=first(data.validation, config.evaluation_size),
                               test=first(data.test, config.evaluation_size))
    training, validation, test = split_tensors(data, expanded="shifts" if config.expanded else None,
                                               dtype=getattr(torch, config.net.dtype))
    if config.training_size:
        training = (training[0][:config.training_size], training[1][:config.training_size])
    return training, validation, test


def _without_epochs(config_data):
    """A ConvRun's dict with its number of epochs left out (what a checkpoint must match to be resumed)."""
    train = {k: v for k, v in config_data.get("train", {}).items() if k != "epochs"}
    return {**config_data, "train": train}


def train_conv(config, context, seed, data, suffix=""):
    """Train one network of ``config`` with ``seed`` on ``data``; returns (net, History).

    The network trains on ``context.device`` (the CPU when it is None); the
    data moves there once per run. With a ``context.work_dir`` it
    checkpoints every epoch and resumes from a checkpoint of the same run
    (same configuration but for the number of epochs, same seed) left by a
    run that was stopped or that trained for fewer epochs. A checkpoint of
    more epochs than asked for is refused rather than overwritten.
    """
    from pathlib import Path

    from nndl.deep.checkpoint import load_checkpoint
    from nndl.deep.device import SMALL_BATCH, set_threads
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train

    # One thread at the book's small mini-batches: a second one gains little there, and two threads
    # fighting another process for two cores run many times slower (measured in docs/scaling.md).
    set_threads(context.threads or (1 if config.train.mini_batch_size <= SMALL_BATCH else None))
    training_config = config.train.replace(seed=seed)
    metadata = {"experiment": context.name, "config": config.to_dict(), "seed": seed}
    device = context.device or "cpu"
    checkpoint, resume = context.checkpoint_path(suffix), None
    if checkpoint and Path(checkpoint).exists():
        net, state, saved = load_checkpoint(checkpoint, device=device)
        if saved.get("experiment") == metadata["experiment"] and isinstance(saved.get("config"), dict) \
                and _without_epochs(saved["config"]) == _without_epochs(metadata["config"]) \
                and saved.get("seed") == seed:
            done = _epochs_done(checkpoint, [state.get("history")])
            if done > training_config.epochs:
                raise ConfigError(f"{checkpoint} holds {done} epochs of this run, more than the "
                                  f"{training_config.epochs} asked for; ask for at least {done} epochs, or move "
                                  "the file away to start again")
            resume = state
    if resume is None:
        net = ConvNetwork(config.net, device=device, seed=seed)
    training, validation, test = data
    augmentation = None
    if config.augmentation is not None:
        from nndl.deep.augment import Augmentation
        augmentation = Augmentation.from_dict(config.augmentation)
    history = train(net, training, training_config, validation_data=validation, test_data=test,
                    augmentation=augmentation, checkpoint=checkpoint, checkpoint_metadata=metadata, resume=resume,
                    autocast=config.autocast, cuda_graph=context.cuda_graph and config.autocast is None)
    if history.stop_reason == "interrupted":
        raise KeyboardInterrupt
    return net, history


def _epochs_done(checkpoint, texts):
    """The most epochs any history in a checkpoint's training state holds, each history checked."""
    from nndl.errors import FileFormatError, ModelFileError
    from nndl.training.history import History
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ModelFileError(f"{checkpoint}: its training state is damaged (no history of the run); move the file "
                             "away to start again")
    try:
        return max(len(History.from_json(text, f"{checkpoint}: its history").epochs) for text in texts)
    except FileFormatError as e:
        raise ModelFileError(f"{e}; move the file away to start again") from None


def run_rung_many(config, contexts):
    """Several seeds of a rung trained at once (``nndl.deep.multi.train_many``): one result per context.

    The members checkpoint together every epoch (OUT/runs/checkpoints/ID-sA-B-C.ckpt) and resume
    from there; each member is the network its seed trains alone (see ``nndl.deep.multi``).
    """
    if config.members != 1:
        raise ConfigError("only rungs of one network train their seeds together")
    if config.augmentation is not None or config.autocast is not None:
        raise ConfigError("networks trained on augmented data or with autocast train one at a time (several at "
                          "once cannot do either yet)")
    from pathlib import Path

    from nndl.deep.checkpoint import load_members_checkpoint
    from nndl.deep.device import set_threads
    from nndl.deep.multi import train_many
    from nndl.deep.network import ConvNetwork

    first = contexts[0]
    set_threads(first.threads)
    seeds = [c.seed for c in contexts]
    training_config = config.train
    metadata = {"experiment": first.name.rsplit("-s", 1)[0], "config": config.to_dict(), "seeds": seeds}
    checkpoint = first.checkpoint_path(suffix="") if first.work_dir else None
    if checkpoint:
        checkpoint = str(Path(checkpoint).with_name(f"{metadata['experiment']}-s{'-'.join(map(str, seeds))}"
                                                     f"{'-quick' if first.quick else ''}.ckpt"))
    resume = None
    device = first.device or "cpu"
    if checkpoint and Path(checkpoint).exists():
        nets, state, saved = load_members_checkpoint(checkpoint, device=device)
        if saved.get("experiment") == metadata["experiment"] and isinstance(saved.get("config"), dict) \
                and _without_epochs(saved["config"]) == _without_epochs(metadata["config"]) \
                and list(state.get("seeds", [])) == seeds:
            done = _epochs_done(checkpoint, state.get("histories"))
            if done > training_config.epochs:
                raise ConfigError(f"{checkpoint} holds {done} epochs of this run, more than the "
                                  f"{training_config.epochs} asked for")
            resume = state
    if resume is None:
        nets = [ConvNetwork(config.net, device=device, seed=seed) for seed in seeds]
    training, validation, test = _data(config, first)
    histories = train_many(nets, training, training_config, seeds=seeds, validation_data=validation,
                           test_data=test, checkpoint=checkpoint, checkpoint_metadata=metadata, resume=resume,
                           cuda_graph=first.cuda_graph)
    if any(h.stop_reason == "interrupted" for h in histories):
        raise KeyboardInterrupt
    results = []
    for history in histories:
        result = _member_result(history)
        result["value"] = test = history.best_test_accuracy
        validation = history.best_accuracy
        result["summary"] = (f"no epoch finished ({history.stop_reason})" if test is None or validation is None
                             else f"test {100 * test:.2f}% at epoch {history.best_epoch} "
                                  f"(validation {100 * validation:.2f}%)")
        results.append(result)
    return results


def _member_result(history):
    """A network's part of a result; ``training_seconds`` adds up every epoch, also those before a resume."""
    return {"best_epoch": history.best_epoch, "best_validation_accuracy": history.best_accuracy,
            "test_accuracy": history.best_test_accuracy, "training_seconds": history.training_time,
            "history": history.to_dict()}


def _rung_of(config):
    """The id of the rung that trains ``config`` (its book or quick configuration, any number of epochs), or None."""
    from nndl.experiments.registry import experiments
    wanted = _without_epochs(config.to_dict())
    for experiment in experiments().values():
        if experiment.run is run_rung and wanted in (_without_epochs(experiment.config.to_dict()),
                                                     _without_epochs(experiment.quick.to_dict())):
            return experiment.id
    return None


def run_rung(config, context):
    """One seed of a rung: value = test accuracy at the best validation epoch (of the vote, for an ensemble)."""
    data = _data(config, context)
    if config.members == 1:
        net, history = train_conv(config, context, context.seed, data)
        result = _member_result(history)
        result["value"] = history.best_test_accuracy
        result["summary"] = (f"test {100 * history.best_test_accuracy:.2f}% at epoch {history.best_epoch} "
                             f"(validation {100 * history.best_accuracy:.2f}%)")
        return result
    from nndl.deep.ensemble import evaluate_ensemble
    seeds = [config.members * ((context.seed or 1) - 1) + i + 1 for i in range(config.members)]
    single = config.replace(members=1)
    rung = _rung_of(single)
    nets, members = [], []
    for i, seed in enumerate(seeds):
        if rung is not None:          # member i is that rung's network of this seed: its checkpoint, shared
            net, history = train_conv(single, _as_run_of(context, rung, seed), seed, data)
        else:
            net, history = train_conv(config, context, seed, data, suffix=f"-m{i + 1}")
        nets.append(net)
        members.append({"seed": seed, **_member_result(history)})
    scores = evaluate_ensemble(nets, *data[2])
    return {"value": scores["vote"], "vote": scores["vote"], "average": scores["average"],
            "member_accuracies": scores["members"], "members": members,
            "summary": f"vote {100 * scores['vote']:.2f}%, average {100 * scores['average']:.2f}%, members "
                       + ", ".join(f"{100 * a:.2f}%" for a in scores["members"])}


def plot_rung(result, path, target_label="book"):
    """Validation and test accuracy against epoch, one pair of lines per seed (or member).

    The target, when the experiment has one, is a dotted line labelled ``target_label``.
    """
    caption = f"book: {result['book']}; test accuracy is read at the best validation epoch"
    if result.get("epochs") is not None:
        caption += (f"; a quick run, trained for {result['epochs']} epochs" if result.get("quick") else
                    f"; trained for {result['epochs']} of the book's {result['book_epochs']} epochs")
    with figure(path, title=f"{result['id']}: {result['title']}", size=(6.0, 4.0), caption=caption) as (ax,):
        for run in result["runs"]:
            nets = run.get("members") or [run]
            for _k, member in enumerate(nets):
                history = member["history"]
                label = f"seed {member.get('seed', run['seed'])}"
                marker = "o" if len(history["epochs"]) < 3 else None      # one or two points: a line alone is unseen
                line, = ax.plot(history["epochs"], [100 * a for a in history["evaluation_accuracy"]], marker=marker,
                                label=f"{label} validation")
                ax.plot(history["epochs"], [100 * a for a in history["test_accuracy"]], linestyle="--",
                        marker=marker, color=line.get_color(), label=f"{label} test")
            if "vote" in run:
                ax.axhline(100 * run["vote"], color="black", linestyle="-.",
                           label=f"ensemble {run['seed']}: vote (test)")
        if result.get("target") is not None:
            ax.axhline(100 * result["target"], color="0.3", linestyle=":", label=f"{target_label} (test)")
        epoch_axis(ax)
        ax.set_ylabel("Accuracy (%)")


def _as_run_of(context, rung, seed=None):
    """``context`` made the run of experiment ``rung`` with ``seed`` (default: the context's own).

    The name, and so the checkpoint, become the rung's: "ch6-filters-s2-quick" -> "ch6-conv1-s2-quick".
    """
    import dataclasses
    tag = f"-s{context.seed}"
    rest = context.name.rpartition(tag)[2] if context.seed is not None and tag in context.name else ""
    seed = context.seed if seed is None else seed
    return dataclasses.replace(context, seed=seed, name=f"{rung}{'' if seed is None else f'-s{seed}'}{rest}")


def neighbour_correlation(filters):
    """How alike neighbouring weights are: the correlation of every weight with its right and lower neighbour.

    ``filters`` (k, h, w), each standardised first. Random filters give about 0;
    filters with spatial structure (smooth light and dark regions), clearly more.
    """
    import numpy as np
    f = np.asarray(filters, dtype=np.float64)
    f = (f - f.mean(axis=(1, 2), keepdims=True)) / f.std(axis=(1, 2), keepdims=True)
    left = np.concatenate([f[:, :, :-1].ravel(), f[:, :-1, :].ravel()])
    right = np.concatenate([f[:, :, 1:].ravel(), f[:, 1:, :].ravel()])
    return float(np.corrcoef(left, right)[0, 1])


def run_filters(config, context):
    """The conv1 network's first layer: its learned 5x5 filters (the ch6-conv1 run's network, when it exists).

    "Spatial structure" is measured: the filters' neighbour correlation against
    the same weights shuffled within each filter (1,000 shuffles); shown when it
    is above the shuffles' 99th percentile.
    """
    import numpy as np
    context = _as_run_of(context, "ch6-conv1")
    net, history = train_conv(config, context, context.seed, _data(config, context))
    weights = net.layers[0].weight.detach().cpu()
    filters = weights.reshape(weights.shape[0], *weights.shape[-2:]).numpy()
    correlation = neighbour_correlation(filters)
    rng = np.random.default_rng(context.seed)
    shuffled = [neighbour_correlation(np.stack([rng.permutation(f.ravel()).reshape(f.shape) for f in filters]))
                for _ in range(1000)]
    chance = float(np.percentile(shuffled, 99))
    return {"value": correlation, "shown": correlation > chance, "shuffled_99th_percentile": chance,
            "test_accuracy": history.best_test_accuracy,
            "filters": weights.reshape(weights.shape[0], -1).tolist(), "filter_shape": list(weights.shape[1:]),
            "history": history.to_dict(),
            "summary": f"{weights.shape[0]} filters; neighbouring weights correlate {correlation:.2f} (shuffled: "
                       f"{chance:.2f} at the 99th percentile); network's test accuracy "
                       f"{100 * history.best_test_accuracy:.2f}%"}


def plot_filters(result, path):
    """The first layer's filters as small images, darker for larger weights, as the book draws them."""
    import numpy as np
    run = result["runs"][0]
    shape = run["filter_shape"]
    filters = np.asarray(run["filters"]).reshape(-1, shape[-2], shape[-1])
    columns = 10
    rows = -(-len(filters) // columns)
    with figure(path, nrows=rows, ncols=columns, size=(0.9, 0.9),
                title=f"{result['id']}: the {len(filters)} learned 5x5 filters (seed {run['seed']})") as axes:
        for ax, w in zip(axes, filters):
            ax.imshow(w, cmap="Greys", interpolation="nearest")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)


#: Misclassified digits drawn (and kept as pixels in the result; the rest by their test-set index).
SHOWN = 40


def run_misclassified(config, context):
    """The ReLU network's test digits it gets wrong: every index, both labels, and the first SHOWN as pixels.

    The network is the ch6-relu run's of the same seed when it exists (its
    checkpoint). ``images`` are base64 text of 784 bytes (0..255, row by row).
    """
    import base64

    import torch
    data = _data(config, context)
    net, history = train_conv(config, _as_run_of(context, "ch6-relu"), context.seed, data)
    images, labels = data[2]
    predicted = net.predict(images).cpu()
    wrong = torch.nonzero(predicted != labels).flatten()
    pixels = (images[wrong[:SHOWN]].reshape(-1, 784) * 255).round().to(torch.uint8).numpy()
    return {"value": float((predicted == labels).float().mean()), "n_test": int(labels.shape[0]),
            "indices": wrong.tolist(), "labels": labels[wrong].tolist(), "predicted": predicted[wrong].tolist(),
            "images": [base64.b64encode(row.tobytes()).decode("ascii") for row in pixels],
            "history": history.to_dict(),
            "summary": f"{len(wrong)} of {labels.shape[0]:,} test digits misclassified (last epoch's network)"}


def plot_misclassified(result, path):
    """The first SHOWN misclassified test digits, each titled 'true -> predicted'."""
    import base64

    import numpy as np
    run = result["runs"][0]
    shown = min(len(run["images"]), SHOWN)
    columns = 10
    rows = max(1, -(-shown // columns))
    with figure(path, nrows=rows, ncols=columns, size=(1.0, 1.15),
                title=f"{result['id']}: {len(run['indices'])} misclassified test digits "
                      f"(true -> predicted, seed {run['seed']})") as axes:
        for k, ax in enumerate(axes):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if k < shown:
                image = np.frombuffer(base64.b64decode(run["images"][k]), dtype=np.uint8).reshape(28, 28)
                ax.imshow(image, cmap="Greys", interpolation="nearest")
                ax.set_title(f"{run['labels'][k]} -> {run['predicted'][k]}", fontsize=8)


def _rung(preset):
    config = ConvRun(net=preset.network, train=preset.training, expanded=preset.expanded,
                     members=preset.members)
    tolerance = 0.001 if preset.book > 0.99 else 0.003
    return register(Experiment(
        id=f"ch6-{preset.name}", title=preset.title, run=run_rung, config=config, quick=config.quick(),
        book=f"{100 * preset.book:.2f}%", target=preset.book, tolerance=tolerance, plot=plot_rung,
        needs=("mnist", "torch"), run_many=run_rung_many if preset.members == 1 else None))


for _preset in PRESETS.values():
    _rung(_preset)

_CONV1 = PRESETS["conv1"]
_conv1 = ConvRun(net=_CONV1.network, train=_CONV1.training)
register(Experiment(
    id="ch6-filters", title="the learned 5x5 filters of the first conv layer (the conv1 network)",
    run=run_filters, config=_conv1, quick=_conv1.quick(), unit="",
    book="a picture: the filters show spatial structure, not randomness (value: neighbour correlation)",
    plot=plot_filters, needs=("mnist", "torch")))

_RELU = PRESETS["relu"]
_relu = ConvRun(net=_RELU.network, train=_RELU.training)
register(Experiment(
    id="ch6-misclassified", title="the test digits the ReLU network still gets wrong",
    run=run_misclassified, config=_relu, quick=_relu.quick(),
    book="the book shows the 33 its ensemble misses; many are hard for a person too",
    plot=plot_misclassified, needs=("mnist", "torch")))
