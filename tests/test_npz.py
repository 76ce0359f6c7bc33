"""read_npz: member headers checked (names, dtypes, shapes, limits) before any data is read."""

import io
import random
import struct
import zipfile

import numpy as np
import pytest

from nndl.errors import FileFormatError, ModelFileError
from nndl.files.npz import read_npz


def npy_bytes(descr, shape, data=b"", fortran_order=False):
    """A hand-made ``.npy`` member (format 1.0) whose header may declare anything."""
    header = repr({"descr": descr, "fortran_order": fortran_order, "shape": shape}).encode("latin1")
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def zip_of(path, members, compression=zipfile.ZIP_DEFLATED):
    """Write ``members`` (name -> bytes) as a zip archive at ``path``."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.npz"
    np.savez_compressed(path, w=np.arange(6.0).reshape(2, 3), n=np.array([1, 2], dtype=">i4"),
                        text=np.array("hello"))
    return path


def test_reads_checked_arrays(good):
    arrays = read_npz(good, {"w": ("f", (2, 3)), "n": "iu", "text": "U"})
    np.testing.assert_array_equal(arrays["w"], np.arange(6.0).reshape(2, 3))
    assert arrays["n"].dtype == np.int32 and arrays["n"].dtype.isnative and arrays["n"].flags.writeable
    assert arrays["text"].item() == "hello"


def test_reads_from_a_file_object(good):
    assert read_npz(io.BytesIO(good.read_bytes()), {"w": "f"}, allow_extra=True)["w"].shape == (2, 3)


@pytest.mark.parametrize("members, match", [
    ({"w": "f", "missing": "f"}, "missing member"),
    ({"w": "f"}, "unexpected member"),
    ({"w": "iu", "n": "iu", "text": "U"}, "member 'w' has dtype float64, expected integer or unsigned integer"),
    ({"w": ("f", (3, 2)), "n": "iu", "text": "U"}, r"member 'w' has shape \(2, 3\), expected \(3, 2\)"),
    ({"w": "f", "n": "iu", "text": "U"} , None),
])
def test_expectations(good, members, match):
    if match is None:
        assert set(read_npz(good, members)) == {"w", "n", "text"}
        return
    with pytest.raises(FileFormatError, match=match):
        read_npz(good, members)


def test_a_huge_declared_shape_is_refused_before_reading(tmp_path):
    path = zip_of(tmp_path / "huge.npz", {"w.npy": npy_bytes("<f8", (10**6, 10**6), bytes(64))})
    with pytest.raises(FileFormatError, match=r"huge\.npz: member 'w' declares shape \(1000000, 1000000\)"):
        read_npz(path, {"w": "f"})


def test_a_huge_text_member_is_refused_by_its_bytes(tmp_path):
    path = zip_of(tmp_path / "t.npz", {"d.npy": npy_bytes("<U100000000", (), b"")})
    with pytest.raises(FileFormatError, match=r"400,000,000 bytes\), more than"):
        read_npz(path, {"d": "U"}, max_elements=10)


def test_negative_dimensions(tmp_path):
    path = zip_of(tmp_path / "neg.npz", {"w.npy": npy_bytes("<f8", (-1, 3), bytes(24))})
    with pytest.raises(FileFormatError, match="impossible shape"):
        read_npz(path, {"w": "f"})


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FileFormatError, match="dtype object"):
        read_npz(path, {"w": "f"})


def test_a_compressed_member_with_more_data_than_declared_is_read_only_as_far_as_declared(tmp_path):
    path = zip_of(tmp_path / "bomb.npz", {"w.npy": npy_bytes("|u1", (8,), bytes(50 << 20))})
    assert path.stat().st_size < 100_000
    with pytest.raises(FileFormatError, match="holds more data than that, but its shape .* needs 8 bytes"):
        read_npz(path, {"w": "u"})


@pytest.mark.parametrize("data, match", [
    (npy_bytes("<f8", (3,), bytes(8)), "holds 8 bytes of data, but its shape"),
    (b"\x93NUMPY\x01\x00\xff\x00{'descr'", "not a NumPy array"),
    (b"not an npy file at all", "not a NumPy array"),
    (npy_bytes("<f8", (2,), bytes(16)).replace(b"'shape'", b"'shapE'"), "not a NumPy array"),
    (npy_bytes("<U0", (1,), b""), "cannot be read"),
    (b"\x93NUMPY\x03\x00" + bytes(20), "version 3.0"),
])
def test_malformed_members(tmp_path, data, match):
    path = zip_of(tmp_path / "m.npz", {"w.npy": data})
    with pytest.raises(FileFormatError, match=match):
        read_npz(path, {"w": "fU"})


def test_duplicate_members(tmp_path):
    path = tmp_path / "dup.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        zip_of(path, {"w.npy": npy_bytes("<f8", (1,), bytes(8))})
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("w.npy", npy_bytes("<f8", (1,), bytes(8)))
    with pytest.raises(FileFormatError, match="appears twice"):
        read_npz(path, {"w": "f"})


def test_not_a_zip_file(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"PK\x03\x04 and then nonsense")
    with pytest.raises(ModelFileError, match=r"x\.npz is not a readable \.npz file"):
        read_npz(path, {"w": "f"}, error=ModelFileError)


def test_missing_file_is_not_disguised(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_npz(tmp_path / "nope.npz", {"w": "f"})


def test_random_damage_never_escapes_as_another_exception(good):
    """Flip bytes anywhere in a valid archive: the only outcomes are arrays or FileFormatError."""
    original = good.read_bytes()
    rng = random.Random(0)
    outcomes = {"read": 0, "refused": 0}
    for trial in range(400):
        damaged = bytearray(original)
        for _ in range(rng.choice([1, 2, 8])):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if trial % 4 == 0:
            damaged = damaged[:rng.randrange(len(damaged))]
        try:
            read_npz(io.BytesIO(bytes(damaged)), {"w": "f", "n": "iu", "text": "U"}, label="damaged")
            outcomes["read"] += 1
        except FileFormatError as e:
            assert str(e).startswith("damaged")
            outcomes["refused"] += 1
    assert outcomes["refused"] > 200
