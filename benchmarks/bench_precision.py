"""Does bfloat16 autocast train nndl's recipe network faster, and as well, as float32?

The network is ``beyond-single``'s (``nndl.experiments.beyond.RECIPE``):
conv-pool 32 and 64 maps, a fully connected layer of 1,024 ReLUs, dropout,
softmax. Two measurements, float32 against ``train(..., autocast="bfloat16")``:

speed
    One epoch of ``nndl.deep.train.train`` (the real training path) on
    synthetic MNIST-shaped images, at each mini-batch size of
    ``--batch-sizes``; the time is ``History.epoch_time[0]``. The two
    precisions alternate within each of ``--rounds`` rounds and the best round
    of each is kept, so that a change in the machine's load hits both.
    Printed: images per second and the ratio bfloat16 / float32.
learning (``--learn``, needs the MNIST files)
    The recipe from the same initial weights, on the first ``--images``
    training images with its augmentation, for ``--epochs`` epochs, in each
    precision; printed: the validation accuracy after each epoch (on the
    first 5,000 validation images). Equal to within the difference two seeds
    make is "as well".

One thread by default (``--threads``): the long runs use one process per
core. What the hardware offers matters most: bfloat16 pays where the CPU has
bfloat16 arithmetic (AVX512-BF16, AMX) and costs where it must convert.

    python benchmarks/bench_precision.py                       # speed, m = 10, 50, 128
    python benchmarks/bench_precision.py --learn --data DIR    # and learning
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from machine import base_context, cpu_line  # noqa: E402

PRECISIONS = (None, "bfloat16")


def _name(autocast):
    return "float32" if autocast is None else autocast


def epoch_speed(config, m, autocast, images, labels, seed=1):
    """Images per second of one training epoch of a fresh network of ``config`` at mini-batch ``m``."""
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train
    net = ConvNetwork(config.net, seed=seed)
    training = config.train.replace(epochs=1, mini_batch_size=m, schedule="constant", restore_best=None, seed=seed)
    history = train(net, (images, labels), training, autocast=autocast)
    return images.shape[0] / history.epoch_time[0]


def learning(config, data_dir, n_images, epochs, autocast, seed=1):
    """Validation accuracy after each epoch of the recipe on the first ``n_images`` training images."""
    from nndl.data.mnist import load_mnist
    from nndl.deep.augment import Augmentation
    from nndl.deep.data import split_tensors
    from nndl.deep.network import ConvNetwork
    from nndl.deep.train import train
    training, validation, _ = split_tensors(load_mnist(data_dir, download=False, progress=False))
    training = (training[0][:n_images], training[1][:n_images])
    validation = (validation[0][:5000], validation[1][:5000])
    net = ConvNetwork(config.net, seed=seed)
    history = train(net, training, config.train.replace(epochs=epochs, seed=seed, restore_best=None,
                                                        schedule="constant"),
                    validation_data=validation, augmentation=Augmentation.from_dict(config.augmentation),
                    autocast=autocast)
    return history.evaluation_accuracy, sum(history.epoch_time)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="10,50,128", help="mini-batch sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="about how long one float32 epoch takes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the two precisions, alternating")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--learn", action="store_true", help="also compare learning on MNIST")
    parser.add_argument("--data", default=None, help="the MNIST files (default: as nndl finds them)")
    parser.add_argument("--images", type=int, default=10_000, help="training images for --learn")
    parser.add_argument("--epochs", type=int, default=3, help="epochs for --learn")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nndl.experiments.beyond import RECIPE, multiply_adds
    context = base_context()
    print(f"Python {context['python']}, {context['platform']}; {cpu_line(context)}")
    print(f"torch {torch.__version__}, {args.threads} thread(s); network: {RECIPE.net.describe()}")
    flops = 6 * multiply_adds(RECIPE.net)
    generator = torch.Generator().manual_seed(0)
    print(f"{'m':>5} {'float32 img/s':>14} {'bfloat16 img/s':>15} {'ratio':>6} {'fp32 GFLOP/s':>13} "
          f"{'bf16 GFLOP/s':>13}")
    for m in (int(v) for v in args.batch_sizes.split(",")):
        probe = torch.rand(20 * m, 1, 28, 28, generator=generator)
        rate = epoch_speed(RECIPE, m, None, probe, torch.randint(0, 10, (20 * m,), generator=generator))
        n = max(m, int(rate * args.seconds) // m * m)
        images = torch.rand(n, 1, 28, 28, generator=generator)
        labels = torch.randint(0, 10, (n,), generator=generator)
        best = {p: 0.0 for p in PRECISIONS}
        for _ in range(args.rounds):
            for precision in PRECISIONS:
                best[precision] = max(best[precision], epoch_speed(RECIPE, m, precision, images, labels))
        f32, b16 = best[None], best["bfloat16"]
        print(f"{m:>5} {f32:>14,.0f} {b16:>15,.0f} {b16 / f32:>6.2f} {f32 * flops / 1e9:>13.1f} "
              f"{b16 * flops / 1e9:>13.1f}", flush=True)
    if args.learn:
        from nndl.data.locate import find_mnist
        data_dir = args.data or find_mnist()
        print(f"\nlearning: the recipe on {args.images:,} images, {args.epochs} epochs, validation accuracy "
              "(5,000 images) after each epoch")
        for precision in PRECISIONS:
            start = time.perf_counter()
            accuracies, seconds = learning(RECIPE, data_dir, args.images, args.epochs, precision)
            print(f"{_name(precision):>9}: " + ", ".join(f"{100 * a:.2f}%" for a in accuracies)
                  + f"   (training {seconds:.0f} s, {time.perf_counter() - start:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()
