"""Saving and loading networks: both formats round-trip exactly; bad files are refused clearly."""

import json
import zipfile

import numpy as np
import pytest
from conftest import run_python

from nndl.engine.feedforward import FeedforwardNetwork
from nndl.engine.modelio import ModelFileError, load, save
from nndl.files.modelfile import ModelData, read_model, write_model


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
    (lambda d: d.update(format="something-else"), "not an nndl-model file"),
    (lambda d: d.update(sizes=[6, 5]), "activation names"),
    (lambda d: d["activations"].__setitem__(0, "swish"), "unknown activation"),
    (lambda d: d.update(cost="hinge"), "unknown cost"),
    (lambda d: d["weights"].__setitem__(0, [[1.0, 2.0]]), r"weights\[0\] should have shape \(5, 6\), found \(1, 2\)"),
    (lambda d: d["biases"].pop(), "3 layers need 3 arrays in \"biases\", found 2"),
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


# ---------------------------------------------------------------------------
# Any malformed file: ModelFileError naming the file, never another exception
# ---------------------------------------------------------------------------

DEEP = 100_000


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


def _set_in(key, index, value):
    return lambda d: d[key].__setitem__(index, value)


#: Changes to a valid JSON model ([6, 5, 4, 3]: tanh, relu, softmax), each making it malformed.
BAD_FIELDS = {
    "sizes-string": _set("sizes", "6 5 4 3"),
    "sizes-dict": _set("sizes", {"input": 6}),
    "sizes-nested": _set("sizes", [[6], [5], [4], [3]]),
    "sizes-float": _set("sizes", [6, 5.0, 4, 3]),
    "sizes-bool": _set("sizes", [6, True, 4, 3]),
    "sizes-huge": _set("sizes", [6, 10**30, 4, 3]),
    "sizes-too-many-parameters": _set("sizes", [100_000, 100_000, 4, 3]),
    "sizes-too-many-layers": _set("sizes", [3] * 2000),
    "sizes-negative": _set("sizes", [6, -5, 4, 3]),
    "sizes-zero": _set("sizes", [6, 0, 4, 3]),
    "sizes-one": _set("sizes", [6]),
    "sizes-null": _set("sizes", None),
    "sizes-missing": lambda d: d.pop("sizes"),
    "activations-string": _set("activations", "tanh"),
    "activations-numbers": _set("activations", [1, 2, 3]),
    "activations-nested": _set("activations", [["tanh"], "relu", "softmax"]),
    "activations-dict": _set("activations", [{"name": "tanh"}, "relu", "softmax"]),
    "activations-null": _set("activations", None),
    "cost-number": _set("cost", 5),
    "cost-list": _set("cost", ["log-likelihood"]),
    "cost-dict": _set("cost", {"name": "log-likelihood"}),
    "dtype-number": _set("dtype", 64),
    "dtype-list": _set("dtype", ["float64"]),
    "dtype-int": _set("dtype", "int8"),
    "metadata-list": _set("metadata", [1, 2]),
    "metadata-string": _set("metadata", "notes"),
    "version-string": _set("version", "1"),
    "version-float": _set("version", 1.5),
    "version-bool": _set("version", True),
    "version-zero": _set("version", 0),
    "version-huge": _set("version", 10**40),
    "version-list": _set("version", [1]),
    "format-list": _set("format", ["nndl-model"]),
    "format-null": _set("format", None),
    "weights-string": _set("weights", "oops"),
    "weights-dict": _set("weights", {"0": []}),
    "weights-null": _set("weights", None),
    "weights-too-deep": _set_in("weights", 0, [[[1.0] * 6] * 5]),
    "weights-ragged": _set_in("weights", 0, [[1.0] * 6] * 4 + [[1.0] * 5]),
    "weights-strings": _set_in("weights", 0, [["1.0"] * 6] * 5),
    "weights-bools": _set_in("weights", 0, [[True] * 6] * 5),
    "weights-nulls": _set_in("weights", 0, [[None] * 6] * 5),
    "weights-dicts": _set_in("weights", 0, [[{}] * 6] * 5),
    "weights-overflow": _set_in("weights", 0, [[10**400] * 6] * 5),
    "weights-garbage": _set_in("weights", 0, [1, "a", [2, [3, {"b": None}]], True]),
    "weights-extra-layer": lambda d: d["weights"].append([[1.0]]),
    "biases-string": _set("biases", "oops"),
    "biases-nested": _set_in("biases", 0, [[[0.5]]] * 5),
    "biases-wrong-length": _set_in("biases", 0, [0.5] * 4),
    "biases-row": _set_in("biases", 0, [[0.5] * 5]),
    "float32-overflow": lambda d: (d.update(dtype="float32"), d["weights"][0][0].__setitem__(0, 1e300)),
}

#: Whole files (text or bytes) that are not models.
BAD_FILES = {
    "empty": b"",
    "binary-garbage": bytes(range(256)) * 4,
    "not-utf8": b'{"format": "nndl-model\xff"}',
    "truncated-json": b'{"format": "nndl-model", "version": 1, "sizes": [6, 5',
    "top-level-list": b"[1, 2]",
    "top-level-string": b'"nndl-model"',
    "top-level-null": b"null",
    "top-level-number": b"5",
    "deeply-nested": b"[" * DEEP + b"]" * DEEP,
    "deeply-nested-metadata": (b'{"format": "nndl-model", "version": 1, "metadata": ' + b"[" * DEEP + b"]" * DEEP
                               + b"}"),
    "integer-too-long": b'{"format": "nndl-model", "version": ' + b"9" * 5000 + b"}",
    "infinity": b'{"format": "nndl-model", "version": 1, "sizes": [1, 1], "activations": ["sigmoid"], '
                b'"cost": "quadratic", "weights": [[[Infinity]]], "biases": [[0]]}',
    "book-sizes-string": b'{"sizes": "784 30 10", "weights": 1, "biases": 2, "cost": "QuadraticCost"}',
    "book-cost-list": b'{"sizes": [2, 1], "weights": [[[1, 2]]], "biases": [[[1]]], "cost": ["QuadraticCost"]}',
    "book-cost-unknown": b'{"sizes": [2, 1], "weights": [[[1, 2]]], "biases": [[[1]]], "cost": "HingeCost"}',
    "book-weights-garbage": b'{"sizes": [2, 1], "weights": [[["a", {}]]], "biases": [[[1]]], "cost": "QuadraticCost"}',
    "zip-magic-then-garbage": b"PK\x03\x04" + bytes(100),
}


def _npz(path, description, **arrays):
    """An .npz model with the given description (a dict, or any JSON value) and arrays."""
    np.savez_compressed(path, description=np.array(json.dumps(description)), **arrays)
    return path


def _npz_description(net):
    return {"format": "nndl-model", "version": 1, "sizes": net.sizes, "activations": [l.name for l in net.layers],
            "cost": net.cost.name, "dtype": "float64", "metadata": {}}


def _good_arrays(net):
    return {name: a for l, (w, b) in enumerate(zip(net.weights, net.biases))
            for name, a in ((f"weights_{l}", w), (f"biases_{l}", b))}


def bad_npz_files(net, tmp_path):
    """name -> path of a malformed .npz model."""
    from test_npz import npy_bytes, zip_of

    tmp_path.mkdir(exist_ok=True)
    good = save(net, tmp_path / "good.npz")
    description, arrays = _npz_description(net), _good_arrays(net)
    files = {}
    raw = good.read_bytes()
    for cut in (10, 200, len(raw) // 2, len(raw) - 10):
        files[f"truncated-{cut}"] = tmp_path / f"truncated-{cut}.npz"
        files[f"truncated-{cut}"].write_bytes(raw[:cut])
    files["object-description"] = tmp_path / "object.npz"
    np.savez(files["object-description"], description=np.array([{"format": "nndl-model"}], dtype=object))
    files["object-weights"] = tmp_path / "object-weights.npz"
    np.savez(files["object-weights"], description=np.array(json.dumps(description)),
             **{**arrays, "weights_0": np.array([[{}] * 6] * 5, dtype=object)})
    files["description-not-json"] = tmp_path / "not-json.npz"
    np.savez(files["description-not-json"], description=np.array("{oops"), **arrays)
    files["description-list"] = _npz(tmp_path / "list.npz", [1, 2], **arrays)
    files["description-numbers"] = tmp_path / "numbers.npz"
    np.savez(files["description-numbers"], description=np.arange(3.0), **arrays)
    files["description-two-strings"] = tmp_path / "two.npz"
    np.savez(files["description-two-strings"], description=np.array(["{}", "{}"]), **arrays)
    files["description-deep"] = tmp_path / "deep.npz"
    np.savez(files["description-deep"], description=np.array("[" * DEEP + "]" * DEEP), **arrays)
    files["no-description"] = tmp_path / "no-description.npz"
    np.savez(files["no-description"], **arrays)
    files["sizes-string"] = _npz(tmp_path / "sizes-string.npz", {**description, "sizes": "6 5 4 3"}, **arrays)
    files["sizes-huge"] = _npz(tmp_path / "sizes-huge.npz", {**description, "sizes": [10**6, 10**6, 4, 3]},
                               **arrays)
    files["missing-weights"] = _npz(tmp_path / "missing.npz", description,
                                    **{k: v for k, v in arrays.items() if k != "weights_1"})
    files["extra-member"] = _npz(tmp_path / "extra.npz", description, **arrays, surprise=np.zeros(3))
    files["integer-weights"] = _npz(tmp_path / "int.npz", description,
                                    **{**arrays, "weights_0": np.zeros((5, 6), np.int64)})
    files["wrong-shape"] = _npz(tmp_path / "shape.npz", description, **{**arrays, "weights_0": np.zeros((6, 5))})
    files["biases-column"] = _npz(tmp_path / "column.npz", description, **{**arrays, "biases_0": np.zeros((5, 1))})
    files["nan"] = _npz(tmp_path / "nan.npz", description, **{**arrays, "biases_2": np.full(3, np.nan)})
    text = json.dumps(description)
    members = {"description.npy": npy_bytes(f"<U{len(text)}", (), text.encode("utf-32-le"))}
    members.update({f"{k}.npy": npy_bytes("<f8", v.shape, v.tobytes()) for k, v in arrays.items()})
    files["declares-10**12-elements"] = zip_of(tmp_path / "huge-shape.npz",
                                               {**members, "weights_0.npy": npy_bytes("<f8", (10**6, 10**6))})
    files["description-declares-400MB"] = zip_of(tmp_path / "huge-description.npz",
                                                 {**members, "description.npy": npy_bytes("<U100000000", ())})
    damaged = bytearray(raw)
    damaged[len(raw) // 3: len(raw) // 3 + 20] = bytes(20)
    files["corrupt-deflate"] = tmp_path / "corrupt.npz"
    files["corrupt-deflate"].write_bytes(bytes(damaged))
    return files


def test_every_malformed_model_file_is_a_model_file_error(net, tmp_path):
    valid = _valid(net, tmp_path)
    cases = {}
    for name, change in BAD_FIELDS.items():
        data = json.loads(json.dumps(valid))
        change(data)
        cases[f"field-{name}"] = _write(tmp_path, json.dumps(data), f"field-{name}.json")
    for name, content in BAD_FILES.items():
        cases[f"file-{name}"] = tmp_path / f"file-{name}.json"
        cases[f"file-{name}"].write_bytes(content)
    cases.update({f"npz-{name}": path for name, path in bad_npz_files(net, tmp_path / "npz").items()})
    (tmp_path / "a-directory.json").mkdir()
    cases["directory"] = tmp_path / "a-directory.json"
    (tmp_path / "loop.json").symlink_to(tmp_path / "loop.json")
    cases["symlink-loop"] = tmp_path / "loop.json"

    wrong = {}
    for name, path in cases.items():
        try:
            load(path)
        except ModelFileError as e:
            if str(path) not in str(e) or len(str(e)) > 600:
                wrong[name] = f"message: {e}"
        except BaseException as e:                    # RecursionError, MemoryError, anything else
            wrong[name] = f"{type(e).__name__}: {e}"
        else:
            wrong[name] = "loaded"
    assert wrong == {}
    assert len(cases) > 90


def test_the_field_cases_fail_for_their_own_reason(net, tmp_path):
    """Each bad field is reported as such, not as some later symptom."""
    data = _valid(net, tmp_path)
    expected = {"sizes-huge": "sizes", "sizes-too-many-parameters": "more than the 268,435,456",
                "activations-dict": "unknown activation", "cost-list": "unknown cost", "dtype-list": "dtype",
                "metadata-list": "metadata", "version-huge": "newer than this nndl", "weights-overflow": "too large",
                "weights-bools": "not an array of numbers", "biases-row": r"biases\[0\] should have shape",
                "float32-overflow": "too large for float32"}
    for name, match in expected.items():
        changed = json.loads(json.dumps(data))
        BAD_FIELDS[name](changed)
        with pytest.raises(ModelFileError, match=match):
            load(_write(tmp_path, changed, f"{name}.json"))


def test_npz_huge_shapes_are_refused_before_reading(net, tmp_path):
    files = bad_npz_files(net, tmp_path)
    with pytest.raises(ModelFileError, match=r"member 'weights_0' has shape \(1000000, 1000000\), expected \(5, 6\)"):
        load(files["declares-10**12-elements"])
    with pytest.raises(ModelFileError, match="member 'description' declares shape"):
        load(files["description-declares-400MB"])
    with pytest.raises(ModelFileError, match="more than the 268,435,456"):
        load(files["sizes-huge"])


def test_book_file_with_flat_biases_and_metadata_free_model_still_load(net, tmp_path):
    data = _valid(net, tmp_path)
    data.pop("metadata")
    data.pop("dtype")
    assert load(_write(tmp_path, data)).metadata == {}


# --- the file format alone: plain data, NumPy only ------------------------------------------------------------


@pytest.mark.parametrize("name", ["m.json", "m.npz"])
def test_the_format_reads_and_writes_plain_data(net, tmp_path, name):
    model = ModelData(sizes=[3, 2], activations=["made-up"], cost="also-made-up", dtype="float32",
                      weights=[np.arange(6.0).reshape(2, 3)], biases=[np.array([0.5, -1.0])], metadata={"a": 1})
    read = read_model(write_model(model, tmp_path / name))
    assert (read.sizes, read.activations, read.cost, read.dtype, read.metadata) == \
        ([3, 2], ["made-up"], "also-made-up", "float32", {"a": 1})
    np.testing.assert_array_equal(read.weights[0], model.weights[0])
    np.testing.assert_array_equal(read.biases[0], model.biases[0])
    with pytest.raises(ModelFileError, match=r"unknown activation 'made-up' \(known: relu\)"):
        read_model(tmp_path / name, known_activations=["relu"])
    with pytest.raises(ModelFileError, match=r"unknown cost 'also-made-up' \(known: quadratic\)"):
        read_model(tmp_path / name, known_costs=["quadratic"])


def test_the_files_package_imports_nothing_from_nndl_but_its_errors():
    code = ("import sys, nndl.files.atomic, nndl.files.header, nndl.files.modelfile, nndl.files.npz, "
            "nndl.files.outputs\n"
            "print(sorted(m for m in sys.modules if m.startswith('nndl.') and not m.startswith('nndl.files')))")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['nndl._version', 'nndl.errors']"           # (the package's top names its version)
