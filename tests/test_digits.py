"""Predicting digits in images and reading whole numbers (nndl.digits.predict, nndl.digits.read) and their
commands, nndl predict and nndl read: the probabilities, MNIST digits on paper, composed numbers, bad input."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nndl.cli import main
from nndl.digits.predict import MIN_CONFIDENCE, Classifier, Prediction, predict
from nndl.digits.prepare import compose_number, gap_for_distance
from nndl.digits.read import METHODS, Reading, read_number
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.engine.modelio import save
from nndl.errors import InputError, ModelFileError

ROOT = Path(__file__).resolve().parents[1]


def png(array):
    """PNG bytes of a uint8 array."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def on_paper(digit, scale=3, shift=(7, 4), size=130, resample=Image.Resampling.BILINEAR):
    """An MNIST digit (784,) as a person would photograph it: enlarged, black on white, off-centre."""
    ink = Image.fromarray(np.round(digit.reshape(28, 28) * 255).astype(np.uint8))
    ink = ink.resize((28 * scale, 28 * scale), resample)
    paper = Image.new("L", (size, size), 0)
    paper.paste(ink, shift)
    return png(255 - np.asarray(paper))


def on_white(number):
    """A composed number (white ink on black floats) as dark ink on white paper, uint8."""
    return 255 - np.round(number * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_data):
    """(path, network): [784, 30, 10], sigmoid, trained for 2 epochs on 10,000 MNIST images (about 92%)."""
    from nndl.training import train
    net = FeedforwardNetwork([784, 30, 10], seed=1)
    train(net, (mnist_data.training.images[:10000], mnist_data.training.labels[:10000]), epochs=2,
          mini_batch_size=10, eta=0.5, seed=1)
    path = tmp_path_factory.mktemp("digits") / "net.npz"
    save(net, path)
    return path, net


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "random.json"
    save(FeedforwardNetwork([784, 20, 10], seed=0), path)
    return path


@pytest.fixture(scope="module")
def sure(trained, mnist_data):
    """Indices of test digits among the first 500 that the trained network gets right with p > 0.9."""
    p = Classifier(trained[1]).probabilities(mnist_data.test.images[:500])
    labels = mnist_data.test.labels[:500]
    return [i for i in range(500) if p[i].argmax() == labels[i] and p[i].max() > 0.9]


# --- the classifier --------------------------------------------------------------------------------------------


def test_sigmoid_outputs_are_normalised_and_softmax_outputs_kept():
    x = np.random.default_rng(0).random((5, 784)).astype(np.float32)
    sigmoid = FeedforwardNetwork([784, 10, 10], seed=0)
    c = Classifier(sigmoid)
    a = sigmoid.feedforward(x)
    np.testing.assert_allclose(c.probabilities(x), a / a.sum(axis=1, keepdims=True))
    assert c.output == "normalised sigmoid" and "normalised sigmoid" in c.description
    softmax = FeedforwardNetwork([784, 10, 10], activations=["sigmoid", "softmax"], cost="log-likelihood", seed=0)
    np.testing.assert_allclose(Classifier(softmax).probabilities(x), softmax.feedforward(x))
    relu = FeedforwardNetwork([784, 10, 10], activations="relu", cost="quadratic", seed=0)
    z = relu.feedforward(x)
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(Classifier(relu).probabilities(x), expected / expected.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(c.probabilities(x.reshape(5, 28, 28)), c.probabilities(x))
    with pytest.raises(InputError, match=r"\(n, 784\)"):
        c.probabilities(np.zeros((2, 27, 27)))


def test_models_that_do_not_take_28x28_images_or_give_ten_digits_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"this model takes 100 inputs; nndl predict needs a 28x28 \(784-input\)"):
        Classifier(FeedforwardNetwork([100, 10]))
    with pytest.raises(InputError, match="this model has 5 outputs"):
        Classifier(FeedforwardNetwork([784, 5]))
    with pytest.raises(ModelFileError, match="missing.npz: no such model file"):
        Classifier.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not a model")
    with pytest.raises(ModelFileError, match="garbage.json"):
        Classifier.load(garbage)


def test_a_convolutional_model_is_a_classifier_too(tmp_path):
    torch = pytest.importorskip("torch")
    from nndl.deep.checkpoint import save_model
    from nndl.deep.network import ConvNetwork
    from nndl.deep.presets import get_preset
    config = get_preset("conv1").network
    path = save_model(ConvNetwork(config, seed=0), tmp_path / "conv.pt")
    c = Classifier.load(path)
    assert c.convolutional and c.output == "softmax" and "convolutional" in c.description
    x = np.random.default_rng(0).random((3, 784)).astype(np.float32)
    p = c.probabilities(x)
    with torch.no_grad():
        expected = c.network.log_probabilities(x).exp().double().numpy()
    np.testing.assert_allclose(p, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)


# --- predictions ------------------------------------------------------------------------------------------------


def test_a_prediction_has_the_top_three_and_a_json_form(trained, mnist_data):
    [p] = predict(trained[0], [mnist_data.test.images[0]])            # a model path and an array
    assert isinstance(p, Prediction)
    probabilities = np.array(p.probabilities)
    assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-9
    assert p.digit == int(probabilities.argmax()) == p.top3[0][0]
    assert [d for d, _ in p.top3] == list(np.argsort(-probabilities, kind="stable")[:3])
    assert p.confident == (p.top3[0][1] >= MIN_CONFIDENCE)
    d = json.loads(json.dumps(p.to_dict()))
    assert set(d) == {"digit", "probabilities", "top3", "message", "confident", "image"}
    image = np.array(d["image"])
    assert image.shape == (28, 28) and image.min() >= 0 and image.max() == 255
    assert d["top3"][0] == [p.digit, p.top3[0][1]]


def test_a_blank_image_gets_no_digit_and_a_reason(random_model):
    [p] = predict(random_model, [png(np.full((40, 40), 255, np.uint8))])
    assert p.digit is None and p.top3 == [] and not p.confident and "blank" in p.message
    assert p.to_dict()["digit"] is None and sum(p.probabilities) == 0


def test_an_unclear_digit_says_so_and_still_gives_its_best_guess():
    p = Prediction.from_probabilities(np.array([0.05, 0.4, 0.35] + [0.2 / 7] * 7), np.zeros(784, np.float32))
    assert p.digit == 1 and not p.confident and "no clear digit" in p.message and "40%" in p.message
    q = Prediction.from_probabilities(np.array([0.01] * 9 + [0.91]), np.zeros(784, np.float32))
    assert q.digit == 9 and q.confident and q.message is None


def test_a_single_image_need_not_be_in_a_list(random_model):
    c = Classifier.load(random_model)
    image = png(np.pad(np.zeros((20, 8), np.uint8), 10, constant_values=255))
    assert predict(c, image)[0].probabilities == predict(c, [image])[0].probabilities


@pytest.mark.parametrize("resample", [Image.Resampling.NEAREST, Image.Resampling.BILINEAR], ids=["nearest", "bilinear"])
def test_mnist_digits_on_paper_get_the_networks_answer_for_the_original(trained, mnist_data, resample):
    """The round trip: enlarged 3x, dark on white, off-centre, written to PNG, prepared back to 28x28."""
    path, net = trained
    digits = mnist_data.test.images[:60]
    rng = np.random.default_rng(0)
    pngs = [on_paper(d, shift=tuple(int(v) for v in rng.integers(0, 46, 2)), resample=resample) for d in digits]
    answers = np.array([p.digit for p in predict(path, pngs)])
    assert np.sum(answers == net.predict(digits)) >= 58


# --- reading numbers -----------------------------------------------------------------------------------------------


def test_digits_apart_are_read_by_both_methods_with_their_boxes(trained, mnist_data, sure):
    images, labels = mnist_data.test.images, mnist_data.test.labels
    picks = sure[:5]
    number, boxes = compose_number(images[picks], gaps=[6, 9, 4, 7], offsets=[0, 2, -1, 1, 0])
    for method in METHODS:
        reading = read_number(trained[0], on_white(number), method=method)
        assert isinstance(reading, Reading) and reading.method == method
        assert reading.text == "".join(str(labels[i]) for i in picks), method
        assert reading.message is None and reading.score <= 0
        for (x0, y0, x1, y1), (u0, v0, u1, v1) in zip(reading.boxes, boxes):
            assert abs(x0 - u0) <= 2 and abs(x1 - u1) <= 2 and abs(y0 - v0) <= 2 and abs(y1 - v1) <= 2
    d = json.loads(json.dumps(reading.to_dict()))
    assert d["text"] == reading.text and len(d["digits"]) == len(d["boxes"]) == 5


def test_a_large_photo_of_a_number_is_read_with_boxes_in_its_own_pixels(trained, mnist_data, sure):
    images, labels = mnist_data.test.images, mnist_data.test.labels
    picks = sure[5:9]
    number, boxes = compose_number(images[picks], gaps=[6, 9, 4])
    scale = 24                                                # about 2.7 million pixels: worked on at half size
    big = Image.fromarray(on_white(number)).resize((number.shape[1] * scale, number.shape[0] * scale))
    assert big.width * big.height > 2_000_000
    reading = read_number(trained[0], png(np.asarray(big)))
    assert reading.text == "".join(str(labels[i]) for i in picks)
    for got, expected in zip(reading.boxes, boxes):
        assert np.allclose(got, np.array(expected) * scale, atol=2 * scale)


def test_touching_digits_are_read_by_scoring_cuts_better_than_by_components(trained, mnist_data, sure):
    images, labels = mnist_data.test.images, mnist_data.test.labels
    rng = np.random.default_rng(0)
    right = {method: 0 for method in METHODS}
    for _ in range(20):
        picks = rng.choice(sure, size=4, replace=False)
        gaps = [6, gap_for_distance(images[picks[1]], images[picks[2]], 1), 5]      # the middle pair touches
        number, _ = compose_number(images[picks], gaps)
        truth = "".join(str(labels[i]) for i in picks)
        for method in METHODS:
            right[method] += read_number(trained[0], on_white(number), method=method).text == truth
    assert right["scored"] >= 14 and right["scored"] > right["components"] + 5, right


def test_a_broken_digit_is_one_digit_to_both_methods(trained, mnist_data, sure):
    images = mnist_data.test.images
    picks = sure[:3]
    number, boxes = compose_number(images[picks], gaps=[8, 8])
    x0, y0, x1, y1 = boxes[1]
    middle = (y0 + y1) // 2
    number[middle:middle + 1, x0:x1] = 0                      # a thin white line through the middle digit
    for method in METHODS:
        assert len(read_number(trained[0], on_white(number), method=method).text) == 3, method


def test_a_blank_page_reads_nothing_and_says_why(random_model):
    for method in METHODS:
        reading = read_number(random_model, png(np.full((60, 200), 255, np.uint8)), method=method)
        assert reading.text == "" and reading.digits == [] and "blank" in reading.message


def test_read_refuses_an_unknown_method_and_a_busy_picture(random_model):
    from nndl.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown method"):
        read_number(random_model, np.zeros((10, 10)), method="guess")
    dots = np.full((200, 200), 255, np.uint8)
    dots[2:198:4, 2:198:4] = 0                                # 2,401 separate dots
    with pytest.raises(InputError, match="separate marks"):
        read_number(random_model, dots)


# --- the commands ----------------------------------------------------------------------------------------------------


def nndl(capsys, *argv):
    """Run ``nndl ARGV`` in-process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def files(tmp_path, mnist_data, sure):
    """Image files: a 7 on paper, a blank page, a composed number, and bad ones."""
    images = mnist_data.test.images
    paths = {"seven": tmp_path / "seven.png", "blank": tmp_path / "blank.png", "number": tmp_path / "number.png",
             "text": tmp_path / "notes.png", "empty": tmp_path / "empty.png", "bomb": tmp_path / "bomb.png"}
    paths["seven"].write_bytes(on_paper(images[0]))
    paths["blank"].write_bytes(png(np.full((50, 50), 255, np.uint8)))
    paths["number"].write_bytes(png(on_white(compose_number(images[sure[:4]], gaps=[6, 7, 5])[0])))
    paths["text"].write_text("seven")
    paths["empty"].write_bytes(b"")
    side = 7000                                               # 49 million pixels, a few kilobytes
    paths["bomb"].write_bytes(png(np.zeros((1, 1), np.uint8))[:8] + _ihdr(side, side) + _iend())
    return paths


def _ihdr(width, height):
    import struct
    import zlib
    data = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return struct.pack(">I", len(data)) + b"IHDR" + data + struct.pack(">I", zlib.crc32(b"IHDR" + data))


def _iend():
    import struct
    import zlib
    return struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def test_nndl_predict_prints_the_digit_and_top_three(capsys, trained, files, mnist_data, tmp_path):
    path, net = trained
    status, out, err = nndl(capsys, "predict", path, files["seven"], files["blank"], "--show", tmp_path / "seen.png")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{files['seven']}: {net.predict(mnist_data.test.images[:1])[0]}")
    assert lines[0].count("%") == 3
    assert lines[1] == f"{files['blank']}: no digit -- the image is blank: nothing in it differs from its background"
    assert Image.open(tmp_path / "seen.png").format == "PNG" and f"Wrote {tmp_path / 'seen.png'}" in err


def test_nndl_predict_json_is_one_object_per_line(capsys, trained, files):
    status, out, err = nndl(capsys, "predict", trained[0], files["seven"], files["blank"], "--json")
    assert status == 0, err
    first, second = [json.loads(line) for line in out.splitlines()]
    assert first["file"] == str(files["seven"]) and first["digit"] == first["top3"][0][0]
    assert len(first["image"]) == 28 and second["digit"] is None and "blank" in second["message"]


@pytest.mark.parametrize("name, words", [
    ("text", "notes.png is not an image"),
    ("empty", "empty.png is empty"),
    ("missing", "missing.png: no such file or directory"),
    ("bomb", "bomb.png is too large: 7000 x 7000 = 49,000,000 pixels"),
])
def test_nndl_predict_reports_a_bad_image_in_one_line(capsys, trained, files, tmp_path, name, words):
    image = files.get(name, tmp_path / "missing.png")
    status, out, err = nndl(capsys, "predict", trained[0], image)
    assert status == 2 and out == ""
    assert err.startswith("nndl: error: ") and err.count("\n") == 1 and words in err, err
    status, out, err = nndl(capsys, "predict", trained[0], files["seven"], image, "--json")       # the others go on
    assert status == 2 and err.count("\n") == 1
    good, bad = [json.loads(line) for line in out.splitlines()]
    assert good["digit"] is not None and words in bad["error"]


def test_nndl_predict_and_read_report_a_bad_model_in_one_line(capsys, files, tmp_path):
    small = tmp_path / "small.npz"
    save(FeedforwardNetwork([100, 10], seed=0), small)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    cases = [(small, "this model takes 100 inputs; nndl predict needs a 28x28 (784-input) model"),
             (tmp_path / "missing.npz", "missing.npz: no such model file"),
             (corrupt, "corrupt.npz")]
    for model, words in cases:
        for command in ("predict", "read"):
            status, out, err = nndl(capsys, command, model, files["seven"])
            assert status == 2 and out == "" and err.count("\n") == 1, (command, err)
            assert err.startswith("nndl: error: ") and words in err, (command, err)


def test_nndl_read_prints_the_number_and_draws_the_boxes(capsys, trained, files, mnist_data, sure, tmp_path):
    truth = "".join(str(mnist_data.test.labels[i]) for i in sure[:4])
    status, out, err = nndl(capsys, "read", trained[0], files["number"], "--show", tmp_path / "boxes.png")
    assert status == 0 and out == truth + "\n", err
    assert Image.open(tmp_path / "boxes.png").format == "PNG"
    status, out, _ = nndl(capsys, "read", trained[0], files["number"], "--method", "components", "--json")
    reading = json.loads(out)
    assert status == 0 and reading["text"] == truth and reading["method"] == "components"
    assert len(reading["boxes"]) == 4 and reading["file"] == str(files["number"])


def test_nndl_read_of_a_blank_page_says_so_and_exits_1(capsys, trained, files):
    status, out, err = nndl(capsys, "read", trained[0], files["blank"])
    assert status == 1 and out == "" and "blank" in err


def test_nndl_read_reports_a_bad_image_in_one_line(capsys, trained, files):
    for name, words in (("text", "is not an image"), ("empty", "is empty"), ("bomb", "too large")):
        status, out, err = nndl(capsys, "read", trained[0], files[name])
        assert status == 2 and out == "" and err.count("\n") == 1 and words in err, err


def test_the_commands_offer_the_methods_and_name_the_threshold_of_the_library(capsys, trained, files):
    status, out, err = nndl(capsys, "read", "--help")
    assert status == 0 and "{" + ",".join(METHODS) + "}" in out
    status, out, err = nndl(capsys, "predict", "--help")
    assert status == 0 and f"below {MIN_CONFIDENCE:.0%})" in " ".join(out.split())
    status, out, err = nndl(capsys, "read", trained[0], files["blank"], "--method", "nonsense")
    assert status == 2 and out == "" and "invalid choice: 'nonsense'" in err and all(repr(m) in err for m in METHODS)


def test_importing_the_modules_imports_nothing_heavy():
    code = ("import sys, nndl, nndl.cli, nndl.cli.digits, nndl.serve, nndl.digits.predict, nndl.digits.read, "
            "nndl.digits.prepare\n"
            "nndl.cli.build_parser()\n"
            "print(sorted(m for m in ('torch', 'matplotlib', 'PIL', 'scipy', 'starlette', 'fastapi', 'uvicorn')\n"
            "             if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# --- bad arrays and bad paths: one clear InputError, never a hang --------------------------------------------------


def test_a_batch_array_is_n_prepared_images_and_one_image_array_is_one(random_model, mnist_data):
    classifier = Classifier.load(random_model)
    batch = mnist_data.test.images[:5]
    expected = classifier.probabilities(batch)
    for images, n in [(batch, 5), (batch[:1], 1), (batch.reshape(5, 28, 28), 5)]:
        predictions = predict(classifier, images)
        assert len(predictions) == n
        assert np.allclose([p.probabilities for p in predictions], expected[:n])
    assert len(predict(classifier, batch[0])) == 1 and len(predict(classifier, batch[0].reshape(28, 28))) == 1
    [blank] = predict(classifier, np.zeros((1, 784), np.float32))
    assert blank.digit is None and "blank" in blank.message


@pytest.mark.parametrize("pixels, words", [
    (np.full((2, 784), np.nan), "finite"),
    (np.full((784,), np.inf), "finite"),
    (np.full((3, 784), 200.0), "divide them by 255"),
    (-np.ones((1, 28, 28)), "[0, 1]"),
    (np.zeros((2, 100)), "(n, 784)"),
    (np.zeros((2, 3, 28, 28)), "(n, 28, 28)"),
    (np.array(["a"] * 784), "numbers"),
])
def test_probabilities_refuse_arrays_that_are_not_prepared_images(random_model, pixels, words):
    classifier = Classifier.load(random_model)
    with pytest.raises(InputError, match="prepared images") as e:
        classifier.probabilities(pixels)
    assert words in str(e.value)
    if pixels.ndim in (2, 3) and pixels.shape[-1] in (784, 28):
        with pytest.raises(InputError, match="prepared images"):
            predict(classifier, pixels)


def test_one_image_array_with_nan_or_a_row_of_784_is_refused(random_model):
    with pytest.raises(InputError, match="NaN"):
        predict(random_model, [np.full((28, 28), np.nan)])
    with pytest.raises(InputError, match="not one image"):
        predict(random_model, [np.zeros((3, 784), np.float32)])


def test_a_float_tiff_with_nan_is_refused_naming_the_file(capsys, random_model, tmp_path):
    pixels = np.ones((40, 40), np.float32)
    pixels[10:20, 10:30] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(pixels, mode="F").save(path)
    with pytest.raises(InputError, match="nan.tif holds pixels that are not numbers"):
        predict(random_model, [path])
    with pytest.raises(InputError, match="nan.tif holds pixels that are not numbers"):
        read_number(random_model, path)
    status, out, err = nndl(capsys, "predict", random_model, path)
    assert status == 2 and err.startswith("nndl: error: ") and err.count("\n") == 1 and "nan.tif" in err


def _unblock_later(fifo, seconds, opened):
    """After ``seconds``, open ``fifo`` for writing and close it, so a reader stuck on it gets EOF (the test then
    fails instead of hanging)."""
    import threading

    def unblock():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:                 # no reader waiting: nothing to unblock
            return
        opened.append(True)
        os.close(fd)

    timer = threading.Timer(seconds, unblock)
    timer.daemon = True
    timer.start()
    return timer


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_a_link_loop_or_a_name_too_long_is_refused_in_one_line_without_waiting(capsys, random_model,
                                                                                       tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    unblocked: list[bool] = []
    timer = _unblock_later(fifo, 30, unblocked)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    long = tmp_path / ("x" * 300 + ".png")
    for path, words in [(fifo, "is not a regular file (a FIFO)"), (loop, "symbolic link"),
                        (long, "file name is too long")]:
        with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
            predict(random_model, [path])
        for command in ("predict", "read"):
            status, out, err = nndl(capsys, command, random_model, path)
            assert status == 2 and out == "", (command, path, err)
            assert err.startswith("nndl: error: ") and err.count("\n") == 1 and words in err, (command, err)
            assert "Traceback" not in err
    model_fifo = tmp_path / "model.npz"                      # a FIFO given as the model
    os.mkfifo(model_fifo)
    model_timer = _unblock_later(model_fifo, 30, unblocked)
    status, out, err = nndl(capsys, "predict", model_fifo, fifo)
    timer.cancel()
    model_timer.cancel()
    assert not unblocked, "a reader waited on the FIFO"
    assert status == 2 and "not a regular file" in err and err.count("\n") == 1
