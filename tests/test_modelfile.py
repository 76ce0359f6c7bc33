"""Saving and loading networks: both formats round-trip exactly; bad files are refused clearly."""

import json
import zipfile

import numpy as np
import pytest

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.files.modelfile import ModelFileError, load, save


@pytest.fixture
def net():
    return FeedforwardNetwork([6, 5, 4, 3], activations=["tanh", "relu", "softmax"], cost="log-likelihood", seed=2)


@pytest.mark.parametrize("name", ["net.json", "net.npz"])
def test_round_trip_is_exact(net, tmp_path, name):
    path = save(net, tmp_path / name, metadata={"note": "hello"})
    loaded = load(path)
    assert loaded.sizes == net.sizes
    assert [l.name for l in loaded.layers] == ["tanh", "relu", "softmax"]
    assert loaded.cost.name == "log-likelihood"
    for a, b in zip(loaded.params, net.params):
        np.testing.assert_array_equal(a, b)
    assert loaded.metadata == {"note": "hello"}
    assert not list(tmp_path.glob(".*tmp"))


def test_json_is_human_readable(net, tmp_path):
    data = json.loads(save(net, tmp_path / "n.json").read_text())
    assert data["format"] == "nndl-model" and data["version"] == 1
    assert data["sizes"] == [6, 5, 4, 3]
    assert np.array(data["weights"][0]).shape == (5, 6)
    assert np.array(data["biases"][0]).shape == (5,)


def test_float32_model_keeps_its_dtype(tmp_path):
    net = FeedforwardNetwork([4, 3], dtype=np.float32, seed=0)
    assert load(save(net, tmp_path / "f.npz")).dtype == np.float32


def test_binary_is_smaller_for_large_models(tmp_path):
    net = FeedforwardNetwork([784, 100, 10], seed=0)
    j, b = save(net, tmp_path / "a.json"), save(net, tmp_path / "a.npz")
    assert b.stat().st_size < j.stat().st_size / 2


def test_reads_the_books_network2_format(tmp_path):
    rng = np.random.default_rng(0)
    w = [rng.standard_normal((3, 4)), rng.standard_normal((2, 3))]
    b = [rng.standard_normal((3, 1)), rng.standard_normal((2, 1))]
    path = tmp_path / "book.json"
    path.write_text(json.dumps({"sizes": [4, 3, 2], "weights": [x.tolist() for x in w],
                                "biases": [x.tolist() for x in b], "cost": "CrossEntropyCost"}))
    net = load(path)
    assert net.cost.name == "cross-entropy" and [l.name for l in net.layers] == ["sigmoid", "sigmoid"]
    x = rng.random((1, 4))
    a = x.T
    for wl, bl in zip(w, b):
        a = 1 / (1 + np.exp(-(wl @ a + bl)))
    np.testing.assert_allclose(net.feedforward(x), a.T)


def test_saving_replaces_atomically_and_a_failed_save_leaves_the_old_file(net, tmp_path, monkeypatch):
    path = save(net, tmp_path / "n.json")
    before = path.read_bytes()
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save(net, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.json"]


def _write(tmp_path, data, name="m.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _valid(net, tmp_path):
    return json.loads(save(net, tmp_path / "ok.json").read_text())


@pytest.mark.parametrize("change,match", [
    (lambda d: d.update(version=2), "newer than this nndl"),
    (lambda d: d.update(format="something-else"), "not an nndl model"),
    (lambda d: d.update(sizes=[6, 5]), "activation names"),
    (lambda d: d["activations"].__setitem__(0, "swish"), "unknown activation"),
    (lambda d: d.update(cost="hinge"), "unknown cost"),
    (lambda d: d["weights"].__setitem__(0, [[1.0, 2.0]]), "layer 1 should have weights of shape"),
    (lambda d: d["biases"].pop(), "weight matrices and bias vectors"),
    (lambda d: d["weights"].__setitem__(0, "oops"), "not an array of numbers"),
    (lambda d: d.update(activations=["softmax", "relu", "softmax"]), "softmax can only be the output"),
    (lambda d: d.pop("weights"), "weights"),
])
def test_malformed_model_files(net, tmp_path, change, match):
    data = _valid(net, tmp_path)
    change(data)
    with pytest.raises(ModelFileError, match=match):
        load(_write(tmp_path, data))


def test_nan_weights_refused(net, tmp_path):
    text = (tmp_path / "x").with_suffix(".json")
    data = _valid(net, tmp_path)
    data["weights"][0][0][0] = float("nan")
    text.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="inf or nan"):
        load(text)


@pytest.mark.parametrize("content,match", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                                           ("", "not valid JSON")])
def test_not_a_model(tmp_path, content, match):
    with pytest.raises(ModelFileError, match=match):
        load(_write(tmp_path, content))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.json")


def test_truncated_npz(net, tmp_path):
    path = save(net, tmp_path / "n.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="not a readable .npz"):
        load(path)


def test_npz_with_pickled_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, description=np.array([{"format": "nndl-model"}], dtype=object))
    with pytest.raises(ModelFileError):
        load(path)
    assert zipfile.is_zipfile(path)


def test_saved_files_get_ordinary_permissions(net, tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        path = save(net, tmp_path / "n.json")
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644
