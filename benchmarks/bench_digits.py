"""Measure ``nndl predict`` and ``nndl read`` against the targets of issue 9.

1. **Digits on paper.** Each MNIST test digit is written as a PNG the way a
   person would photograph one: enlarged 3x, dark on white, at a random
   place off-centre in a 140x140 page. Enlarging is done two ways:
   ``nearest`` (each pixel becomes a 3x3 block: the same picture, larger)
   and ``bilinear`` (smoothed, as a scanner or browser would, which also
   blurs it slightly). Each PNG goes through :func:`nndl.digits.predict.predict`
   (decoding, MNIST's preparation, the network); the score is the agreement
   of its prediction with the network's prediction on the original 28x28
   image. Target: at least 99%.

2. **Reading numbers.** ``--numbers`` numbers (default 1,000) of 3 to 8
   MNIST *test* digits, picked at random, written side by side (dark on
   white) with random vertical offsets of up to 2 pixels. The space between
   neighbours is drawn for each pair:

   ========== ======= =====================================================
   apart       35%    2-8 blank columns between their boxes
   close       25%    the closest ink, row by row, 2-3 columns apart (boxes
                      often overlap in x; strokes may meet diagonally)
   touching    25%    the closest ink side by side on some row (1 column)
   overlapping 15%    strokes overlapping by 1-3 columns
   ========== ======= =====================================================

   (:func:`nndl.digits.prepare.gap_for_distance` finds the gap for a distance).
   Whether a pair's ink really is connected (8-connectivity) is checked
   after composing. Each number is read with ``method="components"`` (the
   baseline) and ``method="scored"``. Sequence accuracy: the whole number
   read exactly. Digit accuracy: per number, its digits minus the edit
   (Levenshtein) distance between the text read and the truth (at least 0),
   summed and divided by all digits. "Perfect segmentation" is the network
   on each digit's own 28x28 image: the best any segmentation could do.

Run from the repository root (train a model first, e.g. ``nndl train --sizes
784 100 10 --cost cross-entropy --init default --eta 0.5 --lmbda 5 --epochs
10 --seed 1 --save net100.npz``)::

    NNDL_DATA=/path/to/mnist python benchmarks/bench_digits.py net100.npz
    python benchmarks/bench_digits.py m.pt --n 2000 --numbers 300 --json out.json

The random choices are seeded (``--seed``), so a run can be repeated.
"""

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):                        # run as a script from anywhere: use this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nndl.digits.prepare import compose_number, gap_for_distance  # noqa: E402

#: How neighbouring digits are spaced: (kind, share, how).
SPACINGS = (("apart", 0.35), ("close", 0.25), ("touching", 0.25), ("overlapping", 0.15))


def png_bytes(array):
    """PNG bytes of a uint8 array (h, w)."""
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def on_paper(digit, upscale, rng, scale=3, page=140):
    """An MNIST digit (784,) enlarged ``scale`` times, dark on white, at a random place on a page: PNG bytes."""
    from PIL import Image
    ink = Image.fromarray(np.round(digit.reshape(28, 28) * 255).astype(np.uint8))
    resample = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}[upscale]
    ink = ink.resize((28 * scale, 28 * scale), resample)
    canvas = Image.new("L", (page, page), 0)
    room = page - 28 * scale
    canvas.paste(ink, (int(rng.integers(0, room + 1)), int(rng.integers(0, room + 1))))
    return png_bytes(255 - np.asarray(canvas))


def make_number(images, labels, rng):
    """One composed number: (image uint8 dark on white, text, kinds of each pair, touching flag of each pair)."""
    k = int(rng.integers(3, 9))
    picks = rng.integers(0, len(images), size=k)
    digits = images[picks]
    offsets = [int(v) for v in rng.integers(-2, 3, size=k)]
    kinds = [SPACINGS[int(rng.choice(len(SPACINGS), p=[s for _, s in SPACINGS]))][0] for _ in range(k - 1)]
    gaps = []
    for a, kind in enumerate(kinds):
        dy = offsets[a + 1] - offsets[a]
        if kind == "apart":
            gaps.append(int(rng.integers(2, 9)))
        else:
            distance = {"close": int(rng.integers(2, 4)), "touching": 1,
                        "overlapping": int(rng.integers(-2, 1))}[kind]
            gaps.append(gap_for_distance(digits[a], digits[a + 1], distance, dy))
    image, _ = compose_number(digits, gaps, offsets)
    touching = [_connected(digits[a:a + 2], gaps[a], offsets[a:a + 2]) for a in range(k - 1)]
    text = "".join(str(int(labels[p])) for p in picks)
    return 255 - np.round(image * 255).astype(np.uint8), text, kinds, touching, picks


def _connected(pair, gap, offsets):
    """Whether the ink of two neighbouring digits, composed as in the number, is one 8-connected mark."""
    from scipy import ndimage
    image, _ = compose_number(pair, [gap], offsets)
    _, n_left = ndimage.label(compose_number(pair[:1], [], offsets[:1])[0] > 0, structure=np.ones((3, 3)))
    _, n_right = ndimage.label(compose_number(pair[1:], [], offsets[1:])[0] > 0, structure=np.ones((3, 3)))
    _, n_both = ndimage.label(image > 0, structure=np.ones((3, 3)))
    return n_both < n_left + n_right


def edit_distance(a, b):
    """Levenshtein distance between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def bench_predict(classifier, images, n, seed):
    """Agreement of predictions on digits written to PNG with those on the original 28x28 images."""
    from nndl.digits.predict import MIN_CONFIDENCE, predict
    p = classifier.probabilities(images[:n])                 # (n, 10)
    original, sure = p.argmax(axis=1), p.max(axis=1) >= MIN_CONFIDENCE
    results = {}
    for upscale in ("nearest", "bilinear"):
        rng = np.random.default_rng(seed)
        pngs = [on_paper(digit, upscale, rng) for digit in images[:n]]
        start = time.perf_counter()
        predictions = predict(classifier, pngs)
        seconds = time.perf_counter() - start
        digits = np.array([-1 if p.digit is None else p.digit for p in predictions])
        agree = int(np.sum(digits == original))
        agree_sure = int(np.sum((digits == original) & sure))
        results[upscale] = {"n": n, "agree": agree, "agreement": agree / n, "ms_per_image": 1000 * seconds / n,
                            "confident_originals": int(sure.sum()), "agree_confident": agree_sure}
        print(f"  3x {upscale:<8} on white, off-centre: agreement {agree / n:.2%} ({agree} / {n}); where the "
              f"network is confident on the original: {agree_sure / max(1, sure.sum()):.2%} of {int(sure.sum())}   "
              f"{1000 * seconds / n:.1f} ms per image (decode + prepare + network)", flush=True)
    return {"original_predictions": n, "renderings": results}


def bench_read(classifier, images, labels, count, seed):
    """Sequence and digit accuracy of reading composed numbers, scored segmentation against components."""
    from nndl.digits.read import read_number
    rng = np.random.default_rng(seed + 1)
    numbers = [make_number(images, labels, rng) for _ in range(count)]
    truth_digits = classifier.probabilities(images).argmax(axis=1)
    total_digits = sum(len(text) for _, text, _, _, _ in numbers)
    with_touching = [any(t) for _, _, _, t, _ in numbers]
    pairs = [(kind, touch) for _, _, kinds, touching, _ in numbers for kind, touch in zip(kinds, touching)]
    print(f"  {count} numbers, {total_digits} digits, {len(pairs)} neighbouring pairs: "
          + ", ".join(f"{kind} {sum(k == kind for k, _ in pairs)}" for kind, _ in SPACINGS)
          + f"; ink connected in {sum(t for _, t in pairs)} pairs; {sum(with_touching)} numbers have touching digits")
    perfect_seq = sum(all(truth_digits[p] == labels[p] for p in picks) for *_, picks in numbers)
    perfect_dig = sum(int(np.sum(truth_digits[picks] == labels[picks])) for *_, picks in numbers)
    print(f"  {'perfect segmentation':<22} sequence {perfect_seq / count:7.2%}   "
          f"digits {perfect_dig / total_digits:7.2%}")
    results = {"numbers": count, "digits": total_digits, "with_touching": int(sum(with_touching)),
               "perfect_segmentation": {"sequence": perfect_seq / count, "digits": perfect_dig / total_digits}}
    for method in ("components", "scored"):
        start = time.perf_counter()
        texts = [read_number(classifier, image, method=method).text for image, *_ in numbers]
        seconds = time.perf_counter() - start
        exact = [t == truth for t, (_, truth, *_) in zip(texts, numbers)]
        correct = sum(max(0, len(truth) - edit_distance(t, truth)) for t, (_, truth, *_) in zip(texts, numbers))
        by_hardest = {}
        for e, (_, _, kinds, _, _) in zip(exact, numbers):
            hardest = next(k for k in ("overlapping", "touching", "close", "apart") if k in kinds + ["apart"])
            by_hardest.setdefault(hardest, []).append(e)
        results[method] = {"sequence": sum(exact) / count, "digits": correct / total_digits,
                           "ms_per_number": 1000 * seconds / count,
                           "sequence_by_hardest_pair": {k: {"numbers": len(v), "sequence": sum(v) / len(v)}
                                                        for k, v in by_hardest.items()}}
        print(f"  {method:<22} sequence {sum(exact) / count:7.2%}   digits {correct / total_digits:7.2%}   "
              f"{1000 * seconds / count:.0f} ms per number", flush=True)
        print(f"  {'':<22} sequence by the hardest pair in the number: "
              + ", ".join(f"{k} {sum(v) / len(v):.1%} of {len(v)}"
                          for k in ("apart", "close", "touching", "overlapping") if (v := by_hardest.get(k))),
              flush=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description="Measure nndl predict and nndl read on MNIST test digits.")
    parser.add_argument("model", help="a model file: nndl train --save (.json, .npz) or nndl conv --save (.pt)")
    parser.add_argument("--n", type=int, default=10000, help="test digits written to PNG (part 1)")
    parser.add_argument("--numbers", type=int, default=1000, help="composed numbers to read (part 2)")
    parser.add_argument("--only", choices=["predict", "read"], help="run one part only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the placements and the numbers")
    parser.add_argument("--data", help="directory of the MNIST files (default: $NNDL_DATA, ...)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    from nndl.data.mnist import load_mnist
    from nndl.digits.predict import Classifier
    classifier = Classifier.load(args.model)
    test = load_mnist(args.data, progress=False).test
    print(f"model: {classifier.description}")
    print(f"network on the original 28x28 test images: accuracy "
          f"{np.mean(classifier.probabilities(test.images).argmax(axis=1) == test.labels):.2%}")
    results = {"model": str(args.model), "description": classifier.description, "seed": args.seed}
    if args.only in (None, "predict"):
        print(f"1. Digits on paper ({args.n} MNIST test digits), target: agreement >= 99%")
        results["predict"] = bench_predict(classifier, test.images, min(args.n, len(test)), args.seed)
    if args.only in (None, "read"):
        print("2. Reading numbers of 3-8 MNIST test digits")
        results["read"] = bench_read(classifier, test.images, test.labels, args.numbers, args.seed)
    if args.json:
        from nndl.files.atomic import atomic_write_text
        atomic_write_text(args.json, json.dumps(results, indent=2))
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
