"""The default model of the handwriting commands: a chapter 6 network stored as plain arrays and run in NumPy.

The NumPy forward pass must equal nndl.deep.ConvNetwork's; the file is read without trusting it; the
commands take an image alone; and the model shipped in the package is small, says how it was trained,
and is as accurate on the MNIST test images as its metadata claims.
"""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from nndl.cli import main
from nndl.deep.presets import get_preset
from nndl.digits import convnet
from nndl.digits.convnet import (
    NumpyConvNetwork,
    default_model_path,
    is_numpy_conv_model,
    read_conv_model,
    write_conv_model,
)
from nndl.digits.predict import Classifier
from nndl.errors import ConfigError, ModelFileError


def _random_numpy_net(preset="expanded", seed=0):
    """A NumpyConvNetwork of a preset's architecture with random (not book-initialised) parameters."""
    config = get_preset(preset).network
    rng = np.random.default_rng(seed)
    shapes = convnet._parameter_shapes(config)
    weights = [(0.1 * rng.standard_normal(w)).astype(np.float32) for w, _ in shapes]
    biases = [(0.1 * rng.standard_normal(b)).astype(np.float32) for _, b in shapes]
    return NumpyConvNetwork(config, weights, biases, {"test_accuracy": 0.5, "command": "made up for a test"})


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A default model in a temporary place (the path the commands look up is patched to it)."""
    path = tmp_path / "default-model.npz"
    net = _random_numpy_net()
    write_conv_model(path, net.config, net.weights, net.biases, net.metadata)
    monkeypatch.setattr(convnet, "default_model_path", lambda: path)
    return path


@pytest.mark.parametrize("preset", ["conv2", "expanded", "dropout"])        # sigmoid; ReLU; dropout (book style)
def test_the_numpy_forward_pass_equals_the_pytorch_network(preset):
    torch = pytest.importorskip("torch")
    from nndl.deep.network import ConvNetwork
    net = ConvNetwork(get_preset(preset).network, seed=1)
    net.eval()
    with torch.no_grad():
        for layer in net.layers:                 # the book's softmax starts at zero: give every layer something
            layer.weight.add_(0.05 * torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(2)))
            layer.bias.add_(0.1 * torch.randn(layer.bias.shape, generator=torch.Generator().manual_seed(3)))
        images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(4))
        expected = net(images).numpy()
    copy = convnet.from_torch(net)
    got = copy.log_probabilities(images.numpy())
    assert got.shape == (16, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.exp(expected).max() > 0.15                                     # not the uniform 0.1 of a blank net
    np.testing.assert_array_equal(copy.predict(images.numpy()), expected.argmax(axis=1))


def test_a_model_file_round_trips_and_is_recognised(tmp_path):
    net = _random_numpy_net("dropout")
    path = write_conv_model(tmp_path / "m.npz", net.config, net.weights, net.biases, net.metadata)
    assert is_numpy_conv_model(path)
    back = read_conv_model(path)
    assert back.config == net.config and back.metadata == net.metadata
    images = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    np.testing.assert_array_equal(back.log_probabilities(images), net.log_probabilities(images))
    with zipfile.ZipFile(path) as archive:                                    # plain arrays, never a pickle
        assert not any(name.endswith(".pkl") for name in archive.namelist())


def test_wrong_parameters_are_refused_before_anything_runs():
    net = _random_numpy_net()
    with pytest.raises(ConfigError, match="do not fit"):
        NumpyConvNetwork(net.config, net.weights[::-1], net.biases[::-1])
    with pytest.raises(ConfigError, match="needs as many"):
        NumpyConvNetwork(net.config, net.weights[:-1], net.biases[:-1])


def _rewrite(path, target, **members):
    """A copy of the .npz ``path`` at ``target`` with some members replaced."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(members)
    np.savez(target, **arrays)
    return target


def test_a_damaged_or_foreign_file_is_refused_in_words(tmp_path):
    net = _random_numpy_net()
    good = write_conv_model(tmp_path / "good.npz", net.config, net.weights, net.biases)
    description = json.loads(str(np.load(good)["description"]))
    wrong_shape = _rewrite(good, tmp_path / "shape.npz", weights_0=np.zeros((3, 3), np.float32))
    with pytest.raises(ModelFileError, match="shape"):
        read_conv_model(wrong_shape)
    nan = net.weights[1].copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ModelFileError, match="inf or nan"):
        read_conv_model(_rewrite(good, tmp_path / "nan.npz", weights_1=nan))
    bad_net = dict(description, network={**description["network"], "layers": []})
    with pytest.raises(ModelFileError, match="cannot be built"):
        read_conv_model(_rewrite(good, tmp_path / "net.npz", description=np.array(json.dumps(bad_net))))
    newer = dict(description, version=99)
    with pytest.raises(ModelFileError, match="version 99"):
        read_conv_model(_rewrite(good, tmp_path / "v.npz", description=np.array(json.dumps(newer))))
    other = tmp_path / "other.npz"
    np.savez(other, description=np.array(json.dumps({"format": "nndl-model"})))
    assert not is_numpy_conv_model(other) and not is_numpy_conv_model(tmp_path / "missing.npz")
    with pytest.raises(ModelFileError, match="not a convolutional model"):
        read_conv_model(other)


def _nndl(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _digit_png(tmp_path, name="seven.png"):
    from PIL import Image
    image = np.full((60, 60), 255, np.uint8)
    image[10:14, 12:48] = 0                                                   # a 7: a bar and a slanted stroke
    for row in range(14, 52):
        col = 46 - (row - 14) // 2
        image[row, col - 2:col + 2] = 0
    path = tmp_path / name
    Image.fromarray(image).save(path)
    return path


def test_predict_and_read_take_an_image_alone_and_an_explicit_model_still_wins(capsys, tmp_path, shipped):
    image = _digit_png(tmp_path)
    status, out, err = _nndl(capsys, "predict", image, "--json")
    assert status == 0, err
    default = json.loads(out)
    assert default["file"] == str(image) and sum(default["probabilities"]) == pytest.approx(1.0)
    status, out, err = _nndl(capsys, "read", image, "--json")
    assert status in (0, 1) and "Traceback" not in err
    # another model given explicitly is the one used: a different network gives different probabilities
    other = _random_numpy_net(seed=7)
    explicit = write_conv_model(tmp_path / "other.npz", other.config, other.weights, other.biases)
    status, out, err = _nndl(capsys, "predict", explicit, image, "--json")
    assert status == 0, err
    assert json.loads(out)["probabilities"] != default["probabilities"]
    # two images without a model: both are images
    second = _digit_png(tmp_path, "again.png")
    status, out, err = _nndl(capsys, "predict", image, second)
    assert status == 0 and out.count("\n") == 2, (out, err)


def test_a_model_without_images_and_read_with_two_images_are_refused_in_one_line(capsys, tmp_path, shipped):
    status, out, err = _nndl(capsys, "predict", shipped)
    assert status == 2 and out == "" and "is a model file: give the images" in err and err.count("\n") == 1
    image = _digit_png(tmp_path)
    status, out, err = _nndl(capsys, "read", image, image)
    assert status == 2 and "read takes one image" in err and err.count("\n") == 1


def test_without_a_shipped_file_the_commands_say_to_give_a_model(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(convnet, "default_model_path", lambda: tmp_path / "default-model.npz")
    status, out, err = _nndl(capsys, "predict", _digit_png(tmp_path))
    assert status == 2 and "no default model" in err and "give a model file" in err and err.count("\n") == 1


def test_the_default_classifier_says_what_it_is(shipped):
    classifier = Classifier.default()
    assert "convolutional network" in classifier.description and "nndl's default model" in classifier.description
    assert "50.00% on the MNIST test images" in classifier.description


def test_reading_the_default_model_needs_no_pytorch(shipped):
    code = ("import sys; from nndl.digits.predict import Classifier; import nndl.digits.convnet as c; "
            f"c.default_model_path = lambda: __import__('pathlib').Path({str(shipped)!r}); "
            "import numpy as np; p = Classifier.default().probabilities(np.zeros((2, 784))); "
            "print(p.shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(2, 10) False"


# --- the file shipped in the package ---------------------------------------------------------------------

SHIPPED = default_model_path()
needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(), reason="this checkout has no default model file")


@needs_shipped
def test_the_shipped_model_is_small_and_says_how_it_was_trained():
    assert SHIPPED.stat().st_size <= 1024 * 1024
    net = read_conv_model(SHIPPED)
    metadata = net.metadata
    assert metadata["command"].startswith("nndl ")
    assert metadata["test_accuracy"] >= 0.992
    assert 1 <= metadata["epoch"] <= metadata["epochs_planned"] and 0 < metadata["validation_accuracy"] <= 1
    assert net.n_parameters() == metadata["parameters"]


@needs_shipped
@pytest.mark.mnist
def test_the_shipped_model_is_as_accurate_on_the_mnist_test_images_as_it_says(mnist_data):
    net = read_conv_model(SHIPPED)
    test = mnist_data.test
    accuracy = float(np.mean(net.predict(test.images) == test.labels))
    assert accuracy == pytest.approx(net.metadata["test_accuracy"], abs=1e-4)
    assert accuracy >= 0.992


def test_nndl_predict_with_no_model_uses_the_default(tmp_path, shipped):
    import nndl
    [prediction] = nndl.predict(None, [_digit_png(tmp_path)])
    expected = Classifier.default().probabilities(np.asarray(prediction.pixels, dtype=np.float32).reshape(1, 784))[0]
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)


@needs_shipped
@pytest.mark.mnist
def test_nndl_evaluate_without_a_model_measures_the_shipped_one(capsys, mnist_data):
    from conftest import real_mnist_dir
    status, out, err = _nndl(capsys, "evaluate", "--data", real_mnist_dir())
    assert status == 0, err
    expected = read_conv_model(SHIPPED).metadata["test_accuracy"]
    assert "nndl's default model" in out and f"test accuracy: {100 * expected:.2f}%" in out
