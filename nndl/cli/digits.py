"""Your own handwriting on the command line: ``nndl predict`` a digit per image, ``nndl read`` a whole number::

    nndl predict net.npz seven.png photo.jpg        seven.png: 7   (7 96.2%, 9 2.1%, 1 0.8%)
    nndl predict net.npz *.png --json               one JSON object per image, one per line
    nndl read net.npz number.png --show boxes.png   504192

Pillow, SciPy and matplotlib are imported only when a command runs.
"""

import argparse
import json
import sys

from nndl.cli._common import FILE_ERRORS, error_message, report_error

__all__ = ["add_commands", "cmd_predict", "cmd_read"]


def add_commands(commands) -> None:
    """Add ``predict`` and ``read`` to the sub-command parsers ``commands``.

    The methods ``read`` offers and the threshold ``predict`` names are the
    library's own, so the two cannot disagree; importing their modules here
    costs NumPy, nothing heavier (Pillow, SciPy and matplotlib come later).
    """
    from nndl.digits.predict import MIN_CONFIDENCE
    from nndl.digits.read import METHODS
    p = commands.add_parser(
        "predict", help="which digit is in each image",
        description="Predict the digit in each image (PNG, JPEG, GIF, BMP, TIFF, WebP, ...) with a saved network. "
                    "Each image is prepared as MNIST's digits were: greyscale; dark ink on light paper inverted; "
                    "cropped to the ink; scaled to fit 20x20 keeping its aspect ratio; centred by its centre of "
                    "mass in 28x28. Prints the digit and the three most probable digits with their "
                    "probabilities; a blank image, or one with no clear digit (top probability below "
                    f"{MIN_CONFIDENCE:.0%}), says so. A network with sigmoid outputs gives its outputs normalised to "
                    "sum to 1.")
    p.add_argument("images", metavar="[MODEL] IMAGE", nargs="+",
                   help=f"{MODEL_HELP}; then image files, one digit in each")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per image, one per line: file, digit (null when blank), "
                        "probabilities, top3, confident, message, image (the 28x28 input, ints 0-255); or "
                        "file and error")
    p.add_argument("--show", metavar="PNG", help="also write a PNG of the 28x28 images the network saw")
    p.set_defaults(run=cmd_predict)

    r = commands.add_parser(
        "read", help="read a whole number written in one image",
        description="Read a number written in one image, such as 504192: split it into digits and classify each. "
                    "--method scored (the default) also cuts marks that may be touching digits and keeps the "
                    "grouping the network is most confident of, as chapter 1 of the book suggests; --method "
                    "components takes each connected mark as a digit. Prints the number; notes (unclear digits) "
                    "go to stderr. Exit status 1 when nothing was read.")
    r.add_argument("images", metavar="[MODEL] IMAGE", nargs="+",
                   help=f"{MODEL_HELP}; then an image of the digits written side by side on one line")
    r.add_argument("--method", choices=METHODS, default="scored",
                   help="how the image is split into digits (default: scored)")
    r.add_argument("--json", action="store_true",
                   help="print the reading as one JSON object: file, text, digits (one prediction each), boxes, "
                        "score, method, message")
    r.add_argument("--show", metavar="PNG", help="also write a PNG of the image with the chosen boxes and digits")
    r.set_defaults(run=cmd_read)


#: What the optional MODEL argument of predict, read and serve is.
MODEL_HELP = ("MODEL: a model taking 28x28 images -- nndl train --save (.json, .npz) or nndl conv --save (.pt); "
              "without one, the convolutional network shipped with nndl")

#: The suffixes of model files: a lone argument ending so is a model given without images.
MODEL_SUFFIXES = (".json", ".npz", ".pt", ".pth", ".ckpt")


def _image_suffix(path: str) -> bool:
    """Whether ``path`` ends with a suffix of an image format Pillow reads (.png, .jpg, .tif, ...)."""
    from pathlib import Path

    from PIL import Image
    return Path(path).suffix.lower() in Image.registered_extensions()


def split_model(paths: list[str], one_image: bool = False) -> tuple[str | None, list[str]]:
    """(model or None, images) from predict's or read's arguments.

    With two or more arguments the first is the model unless its name ends like an image's (.png, .jpg, ...),
    as in ``nndl predict net.npz a.png``; otherwise every argument is an image, read by nndl's default model.
    Raises ConfigError when no image is left, or (``one_image``) more than one is given.
    """
    from nndl.errors import ConfigError
    if len(paths) == 1 and paths[0].lower().endswith(MODEL_SUFFIXES):
        raise ConfigError(f"{paths[0]} is a model file: give the image{'' if one_image else 's'} to read after it")
    if len(paths) >= 2 and not _image_suffix(paths[0]):
        model, images = paths[0], paths[1:]
    else:
        model, images = None, paths
    if one_image and len(images) > 1:
        raise ConfigError(f"read takes one image (got {len(images)}: {' '.join(images[:4])}"
                          f"{' ...' if len(images) > 4 else ''}); for one digit per image use nndl predict")
    return model, images


def _resolvable(paths):
    """The paths that resolve (``check_outputs`` compares outputs with inputs through ``Path.resolve``); one
    that does not -- a symbolic link loop -- cannot be an output's file either, and its own opening reports
    it in one line."""
    from pathlib import Path
    kept = []
    for path in paths:
        try:
            Path(path).resolve()
        except (OSError, RuntimeError):
            continue
        kept.append(path)
    return kept


def _describe(name, prediction):
    """One line for a person: the digit and the three most probable digits."""
    if prediction.digit is None:
        return f"{name}: no digit -- {prediction.message}"
    top = ", ".join(f"{d} {p:.1%}" for d, p in prediction.top3)
    line = f"{name}: {prediction.digit}{'' if prediction.confident else '?'}   ({top})"
    return line if prediction.confident else f"{line}   {prediction.message}"


def cmd_predict(args: argparse.Namespace) -> int:
    from nndl.digits.predict import Classifier, predict, show_predictions
    from nndl.digits.prepare import prepare
    from nndl.errors import InputError
    from nndl.files.outputs import check_outputs
    model, images = split_model(args.images)
    check_outputs({"--show": args.show}, inputs=_resolvable([*([model] if model else []), *images]))
    classifier = Classifier.of(model)
    prepared, failed = {}, {}
    for k, path in enumerate(images):
        try:
            prepared[k] = prepare(path)
        except (InputError, *FILE_ERRORS) as e:
            failed[k] = e
    predictions = dict(zip(prepared, predict(classifier, list(prepared.values())))) if prepared else {}
    for k, path in enumerate(images):
        if k in failed:
            report_error(failed[k], args.debug)                             # one line on stderr
            if args.json:
                print(json.dumps({"file": path, "error": error_message(failed[k])}), flush=True)
        elif args.json:
            print(json.dumps({"file": path, **predictions[k].to_dict()}), flush=True)
        else:
            print(_describe(path, predictions[k]), flush=True)
    if args.show and predictions:
        shown = sorted(predictions)
        show_predictions([predictions[k] for k in shown], args.show, names=[images[k] for k in shown])
        print(f"Wrote {args.show}", file=sys.stderr)
    return 2 if failed else 0


def cmd_read(args: argparse.Namespace) -> int:
    from nndl.digits.predict import Classifier
    from nndl.digits.read import read_number, show_reading
    from nndl.files.outputs import check_outputs
    model, (image,) = split_model(args.images, one_image=True)
    check_outputs({"--show": args.show}, inputs=_resolvable([*([model] if model else []), image]))
    classifier = Classifier.of(model)
    reading = read_number(classifier, image, method=args.method)
    if args.json:
        print(json.dumps({"file": image, **reading.to_dict()}), flush=True)
    else:
        if reading.text:
            print(reading.text, flush=True)
        if reading.message:
            print(f"nndl: {reading.message}", file=sys.stderr)
    if args.show:
        show_reading(reading, image, args.show)
        print(f"Wrote {args.show}", file=sys.stderr)
    return 0 if reading.text else 1
