"""Write the default model of nndl's handwriting commands from a chapter 6 run's checkpoint.

    python experiments/default_model.py OUT/runs/checkpoints/ch6-expanded-s1.ckpt

takes the network a ``nndl reproduce ch6-...`` run has trained so far (the
checkpoint's, as it is: nothing is chosen by its test accuracy), measures it
on the MNIST validation and test images with the NumPy forward pass that
will run it (:mod:`nndl.digits.convnet`), and writes it to
``nndl/digits/default-model.npz`` with its metadata: the command that
trains it, the epoch it was taken at, both accuracies, its size. It refuses
a network under 99.2% on the test images or a file over 1 MB.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nndl import __version__
from nndl.data.mnist import load_mnist
from nndl.deep.checkpoint import load_checkpoint
from nndl.digits.convnet import default_model_path, from_torch, read_conv_model, write_conv_model

MIN_TEST_ACCURACY = 0.992
MAX_BYTES = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a chapter 6 run's checkpoint (OUT/runs/checkpoints/ID-sS.ckpt)")
    parser.add_argument("--data", default=None, help="the MNIST files (default: as nndl finds them)")
    parser.add_argument("--out", default=str(default_model_path()), help="where to write the model")
    args = parser.parse_args(argv)

    net, state, saved = load_checkpoint(args.checkpoint)
    history = json.loads(state["history"])
    experiment, seed = saved["experiment"].rsplit("-s", 1)[0], saved["seed"]
    planned = saved["config"]["train"]["epochs"]
    copy = from_torch(net)
    data = load_mnist(args.data, download=False, progress=False)
    accuracy = {name: float(np.mean(copy.predict(split.images) == split.labels))
                for name, split in (("validation", data.validation), ("test", data.test))}
    epochs = len(history["epochs"])
    metadata = {
        "command": f"nndl reproduce {experiment} --seeds {seed}",
        "experiment": experiment, "seed": seed, "epoch": epochs, "epochs_planned": planned,
        "note": (f"the network after epoch {epochs} of the run's {planned}, as its checkpoint held it when it "
                 f"was exported; the test images served only the {100 * MIN_TEST_ACCURACY:.1f}% gate"),
        "test_accuracy": accuracy["test"], "validation_accuracy": accuracy["validation"],
        "parameters": copy.n_parameters(),
        "nndl_version": __version__, "written": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    if accuracy["test"] < MIN_TEST_ACCURACY:
        raise SystemExit(f"{100 * accuracy['test']:.2f}% on the test images is under {100 * MIN_TEST_ACCURACY:.1f}%: "
                         "train on")
    path = write_conv_model(args.out, copy.config, copy.weights, copy.biases, metadata)
    size = Path(path).stat().st_size
    if size > MAX_BYTES:
        Path(path).unlink()
        raise SystemExit(f"{size:,} bytes is over the 1 MB a default model may take")
    back = read_conv_model(path)
    assert back.n_parameters() == copy.n_parameters()
    print(f"Wrote {path} ({size:,} bytes): {copy.config.describe()}, epoch {epochs} of {planned}, "
          f"validation {100 * accuracy['validation']:.2f}%, test {100 * accuracy['test']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
