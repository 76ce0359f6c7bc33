"""Instructions executed by the NumPy mini-batch loop, counted by callgrind: this tree against another.

Seconds are noisy on a shared two-core machine; instructions are not. The
script trains the chapter 1 network ([784, 30, 10], sigmoid, quadratic
cost, mini-batches of 10) on 4,000 synthetic images in float32 for 1 and for
3 epochs under ``valgrind --tool=callgrind``; the difference is the cost of
2 epochs = 800 mini-batches, free of start-up and data checks. With
``--reference DIR`` (another checkout of nndl, e.g. the previous release) it
counts that tree the same way and prints the ratio.

    python benchmarks/bench_instructions.py --reference /path/to/nndl-0.1
    python benchmarks/bench_instructions.py --settings momentum=0.9 lmbda=5
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROGRAM = """
import numpy as np
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.training import train
rng = np.random.default_rng(0)
x = rng.random((4000, 784), dtype=np.float32)
y = rng.integers(0, 10, 4000)
net = FeedforwardNetwork((784, 30, 10), activations="sigmoid", cost="quadratic", init="large", seed=1,
                         dtype=np.float32)
train(net, (x, y), epochs={epochs}, mini_batch_size=10, eta=3.0, seed=1, {settings})
"""


def instructions(code_dir, epochs, settings):
    """Instructions callgrind counts for one run of the program against the nndl in ``code_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(code_dir), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        program = _PROGRAM.format(epochs=epochs, settings=settings)
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c",
                               program], env=env, capture_output=True, text=True, check=False)
        match = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not match:
            raise SystemExit(f"callgrind failed for {code_dir}:\n{done.stderr[-2000:]}")
        return int(match.group(1))


def per_800_batches(code_dir, settings):
    return instructions(code_dir, 3, settings) - instructions(code_dir, 1, settings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="another nndl checkout to count the same way")
    parser.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra training settings, e.g. momentum=0.9 lmbda=5")
    args = parser.parse_args(argv)
    settings = ", ".join(f"{k}={v}" for k, v in (s.split("=", 1) for s in args.settings))
    ours = per_800_batches(ROOT, settings)
    print(f"this tree: {ours / 1e6:.1f} million instructions for 800 mini-batches ({settings or 'plain SGD'})")
    if args.reference:
        reference = per_800_batches(args.reference.resolve(), settings)
        print(f"reference: {reference / 1e6:.1f} million instructions ({args.reference})")
        print(f"ratio this tree / reference: {ours / reference:.4f}")


if __name__ == "__main__":
    main()
