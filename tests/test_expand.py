"""Tests for nndl.data.expand: hand-made images, tiny files, and (marked) the real MNIST."""

import io
import json
import os
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from nndl.data import expand
from nndl.data.expand import (
    expand_mnist_file,
    expand_training_data,
    load_expanded,
    rotate_images,
    save_expanded,
    shift_images,
)
from nndl.errors import ConfigError, FileFormatError, InputError


def random_images(n=6, seed=1):
    """n random uint8 images (n, 28, 28) and labels 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n)


def single_pixel(row, col, value=255):
    """A (1, 28, 28) uint8 image with one lit pixel."""
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, row, col] = value
    return image


def lit(image):
    """(row, col) of every non-zero pixel of a 28x28 image."""
    return [tuple(int(v) for v in p) for p in np.argwhere(image != 0)]


# ---------------------------------------------------------------------------
# shift_images
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("direction, where", [("up", (9, 20)), ("down", (11, 20)), ("left", (10, 19)),
                                              ("right", (10, 21))])
def test_shift_moves_the_picture_one_pixel(direction, where):
    out = shift_images(single_pixel(10, 20), direction)
    assert out.shape == (1, 28, 28) and out.dtype == np.uint8
    assert lit(out[0]) == [where]
    assert out[0][where] == 255


@pytest.mark.parametrize("row, col, gone", [(0, 5, "up"), (27, 5, "down"), (5, 0, "left"), (5, 27, "right")])
def test_shift_drops_the_pixel_that_leaves_the_border(row, col, gone):
    for direction in ("up", "down", "left", "right"):
        count = np.count_nonzero(shift_images(single_pixel(row, col), direction))
        assert count == (0 if direction == gone else 1), direction


def test_shift_fills_the_vacated_row_or_column_with_zeros():
    full = np.full((2, 28, 28), 255, dtype=np.uint8)
    up, down, left, right = (shift_images(full, d)[1] for d in ("up", "down", "left", "right"))
    assert np.all(up[27] == 0) and np.all(up[:27] == 255)
    assert np.all(down[0] == 0) and np.all(down[1:] == 255)
    assert np.all(left[:, 27] == 0) and np.all(left[:, :27] == 255)
    assert np.all(right[:, 0] == 0) and np.all(right[:, 1:] == 255)


def test_shift_matches_the_books_roll_and_zero():
    # The book's expand_mnist.py: np.roll, then zero the row or column that wrapped round.
    images, _ = random_images()
    for direction, shift, axis, wrapped in [("up", -1, 1, np.s_[:, 27]), ("down", 1, 1, np.s_[:, 0]),
                                            ("left", -1, 2, np.s_[:, :, 27]), ("right", 1, 2, np.s_[:, :, 0])]:
        expected = np.roll(images, shift, axis=axis)
        expected[wrapped] = 0
        np.testing.assert_array_equal(shift_images(images, direction), expected)


def test_float_images_become_uint8_by_rounding():
    levels = np.arange(784) % 256                                  # every level, several times
    as_float = (levels / 255.0).astype(np.float32).reshape(1, 784)  # MNIST's k / 255
    out = shift_images(np.concatenate([as_float, as_float.astype(np.float64)]), "up")
    expected = np.roll(levels.reshape(28, 28), -1, axis=0)
    expected[27] = 0
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[1], expected)
    # Not exactly k / 255: rounded to the nearest level.
    nearly = np.full((1, 784), 100.4 / 255)
    assert shift_images(nearly, "left")[0, 0, 0] == 100


def test_flat_and_square_layouts_give_the_same_result():
    images, _ = random_images()
    np.testing.assert_array_equal(shift_images(images.reshape(6, 784), "down"), shift_images(images, "down"))


def test_shift_empty_input():
    assert shift_images(np.zeros((0, 784), np.float32), "up").shape == (0, 28, 28)


@pytest.mark.parametrize("images, match", [
    (np.zeros((2, 783)), "shape"),
    (np.zeros((2, 28, 27)), "shape"),
    (np.zeros(784), "shape"),
    (np.zeros((2, 784), dtype=np.int64), "dtype"),
    (np.zeros((2, 784), dtype=complex), "dtype"),
    (np.zeros((2, 784), dtype=bool), "dtype"),
    (np.full((2, 784), 255.0), r"\[0, 1\]"),                         # pixels 0..255 given as floats
    (np.full((2, 784), -0.1), r"\[0, 1\]"),
    (np.full((2, 784), np.nan), r"\[0, 1\]"),
])
def test_bad_images_raise_input_error(images, match):
    with pytest.raises(InputError, match=match):
        shift_images(images, "up")


def test_unknown_direction_is_a_config_error():
    with pytest.raises(ConfigError, match="direction"):
        shift_images(single_pixel(3, 3), "sideways")
    with pytest.raises(ConfigError, match="direction"):
        shift_images(single_pixel(3, 3), ["up"])


# ---------------------------------------------------------------------------
# rotate_images
# ---------------------------------------------------------------------------

def test_rotate_by_zero_is_the_identity():
    images, _ = random_images()
    np.testing.assert_array_equal(rotate_images(images, 0.0), images)


def test_rotate_by_90_and_180_degrees_is_exact():
    images, _ = random_images()
    # Counter-clockwise as displayed: a pixel near the top centre goes to the left centre.
    assert lit(rotate_images(single_pixel(5, 14), 90)[0]) == [(13, 5)]
    np.testing.assert_array_equal(rotate_images(images, 90), np.rot90(images, 1, axes=(1, 2)))
    np.testing.assert_array_equal(rotate_images(images, -90), np.rot90(images, -1, axes=(1, 2)))
    np.testing.assert_array_equal(rotate_images(images, 180), images[:, ::-1, ::-1])


def test_rotate_a_symmetric_image_leaves_it_nearly_unchanged():
    # A disc about the centre (13.5, 13.5) looks the same at any angle, up to its rim.
    r, c = np.mgrid[:28, :28]
    disc = (np.hypot(r - 13.5, c - 13.5) < 9).astype(np.uint8)[None] * 255
    rotated = rotate_images(disc, 10.0)[0]
    inside = np.hypot(r - 13.5, c - 13.5) < 7.5                     # bilinear reads within 1.42 pixels
    outside = np.hypot(r - 13.5, c - 13.5) > 10.5
    assert np.all(rotated[inside] == 255) and np.all(rotated[outside] == 0)


def test_rotate_brings_in_zeros_at_the_corners():
    rotated = rotate_images(np.full((1, 28, 28), 255, np.uint8), 45.0)[0]
    assert rotated[0, 0] == rotated[0, 27] == rotated[27, 0] == rotated[27, 27] == 0
    assert np.all(rotated[10:18, 10:18] == 255)


@pytest.mark.parametrize("angle", [-10.0, 3.5, 10.0, 30.0])
def test_rotate_is_scipy_bilinear_rounded_to_the_nearest_level(angle):
    from scipy import ndimage

    images, _ = random_images(n=3)
    out = rotate_images(images, angle)
    for i in range(3):
        exact = ndimage.rotate(images[i].astype(np.float64), angle, reshape=False, order=1, mode="constant")
        np.testing.assert_array_equal(out[i], np.floor(exact + 0.5))


@pytest.mark.parametrize("angle", [float("nan"), float("inf"), "10", None, True, [10.0]])
def test_rotate_bad_angle_is_a_config_error(angle):
    with pytest.raises(ConfigError, match="angle"):
        rotate_images(single_pixel(3, 3), angle)


# ---------------------------------------------------------------------------
# expand_training_data
# ---------------------------------------------------------------------------

def test_unshuffled_order_is_original_shifts_then_rotations():
    images, labels = random_images()
    out, out_labels = expand_training_data(images, labels, rotations=(-5.0, 5.0), shuffle=False)
    assert out.shape == (6 * 7, 28, 28) and out.dtype == np.uint8
    by_image = out.reshape(6, 7, 28, 28)
    expected = [images] + [shift_images(images, d) for d in expand.SHIFT_ORDER[1:]] \
        + [rotate_images(images, -5.0), rotate_images(images, 5.0)]
    for k, copy in enumerate(expected):
        np.testing.assert_array_equal(by_image[:, k], copy)
    np.testing.assert_array_equal(out_labels, np.repeat(labels, 7))
    assert out_labels.dtype == np.int64
    assert expand.SHIFT_ORDER == ("original", "up", "down", "left", "right")


def test_float_input_gives_the_same_set_as_uint8():
    images, labels = random_images()
    a, _ = expand_training_data(images, labels, seed=4)
    b, _ = expand_training_data((images / 255.0).astype(np.float32).reshape(6, 784), labels, seed=4)
    np.testing.assert_array_equal(a, b)


def test_shuffled_set_is_a_permutation_with_labels_following_images():
    images, _ = random_images(n=10)
    labels = np.arange(10)                                       # label = index of the source image
    plain, _ = expand_training_data(images, labels, rotations=[8.0], shuffle=False)
    out, out_labels = expand_training_data(images, labels, rotations=[8.0], seed=3)
    assert out.shape == (60, 28, 28)
    assert not np.array_equal(out, plain)
    assert np.bincount(out_labels).tolist() == [6] * 10
    copies = plain.reshape(10, 6, 28, 28)
    for image, label in zip(out, out_labels):
        assert any(np.array_equal(image, copy) for copy in copies[label])
    # Each copy appears exactly once.
    as_rows = lambda a: sorted(map(bytes, a.reshape(len(a), -1)))    # noqa: E731
    assert as_rows(out) == as_rows(plain)


def test_shuffle_is_determined_by_the_seed():
    images, labels = random_images()
    a, a_labels = expand_training_data(images, labels, seed=11)
    b, b_labels = expand_training_data(images, labels, seed=11)
    c, _ = expand_training_data(images, labels, seed=12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a, c)
    # Copy k of image i lands on row permutation[c*i + k], as nndl has always shuffled.
    order = np.random.default_rng(11).permutation(30)
    plain, _ = expand_training_data(images, labels, shuffle=False)
    np.testing.assert_array_equal(a[order], plain)


def test_no_shifts_no_rotations_is_just_a_shuffle():
    images, labels = random_images()
    out, out_labels = expand_training_data(images, labels, shifts=False, rotations=None, seed=0)
    assert out.shape == images.shape
    assert sorted(out_labels.tolist()) == sorted(labels.tolist())


@pytest.mark.parametrize("kwargs, match", [
    ({"shifts": 1}, "shifts"),
    ({"rotations": 5}, "rotations"),
    ({"rotations": "10"}, "rotations"),
    ({"rotations": [float("nan")]}, "rotations"),
    ({"rotations": ["ten"]}, "rotations"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"seed": None}, "seed"),
    ({"seed": True}, "seed"),
])
def test_bad_options_are_config_errors(kwargs, match):
    images, labels = random_images()
    with pytest.raises(ConfigError, match=match):
        expand_training_data(images, labels, **kwargs)


@pytest.mark.parametrize("labels, match", [
    (np.zeros(5, int), "one per image"),
    (np.zeros(6), "integers"),
    (np.zeros((6, 1), int), "one per image"),
    (np.array([0, 1, 2, 3, 4, 10]), "0..9"),
    (np.array([0, 1, 2, 3, 4, -1]), "0..9"),
])
def test_bad_labels_are_input_errors(labels, match):
    with pytest.raises(InputError, match=match):
        expand_training_data(random_images()[0], labels)


def test_too_many_images_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(expand, "MAX_IMAGES", 20)
    with pytest.raises(ConfigError, match="more than the 20"):
        expand_training_data(*random_images())


# ---------------------------------------------------------------------------
# save_expanded / load_expanded
# ---------------------------------------------------------------------------

METADATA = {"shifts": True, "rotations": [], "seed": 0, "source": "synthetic"}


def test_round_trip_is_exact_and_gives_mnist_floats(tmp_path):
    images, labels = random_images()
    out, out_labels = expand_training_data(images, labels, seed=2)
    path = save_expanded(tmp_path / "expanded.npz", out, out_labels, METADATA)
    assert path == tmp_path / "expanded.npz"
    loaded, loaded_labels, metadata = load_expanded(path)
    assert loaded.dtype == np.float32 and loaded.shape == (30, 784)
    np.testing.assert_array_equal(loaded, (out.reshape(30, 784) / 255.0).astype(np.float32))
    assert loaded_labels.dtype == np.int64
    np.testing.assert_array_equal(loaded_labels, out_labels)
    assert metadata == METADATA


def test_round_trip_of_every_pixel_level_from_floats(tmp_path):
    levels = (np.arange(784) % 256 / 255.0).astype(np.float32).reshape(1, 784)
    path = save_expanded(tmp_path / "e.npz", np.concatenate([levels, levels]), np.array([0, 9]), {})
    loaded, labels, _ = load_expanded(path)
    np.testing.assert_array_equal(loaded, np.concatenate([levels, levels]))
    assert labels.tolist() == [0, 9]


def test_file_contents_need_no_pickle(tmp_path):
    images, labels = random_images()
    path = save_expanded(str(tmp_path / "e.npz"), images, labels, METADATA)
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"images", "labels", "metadata"}
        assert archive["images"].dtype == np.uint8 and archive["images"].shape == (6, 784)
        assert archive["labels"].dtype == np.int64
        header = json.loads(archive["metadata"].item())
    assert header["format"] == "nndl-expanded" and header["format_version"] == 1
    assert header["count"] == 6 and header["expansion"] == METADATA


def test_save_is_atomic_keeps_the_name_and_usual_permissions(tmp_path):
    images, labels = random_images()
    path = tmp_path / "sub" / "expanded.data"
    save_expanded(path, images, labels, METADATA)
    save_expanded(path, images[:3], labels[:3], METADATA)          # overwrite
    assert os.listdir(path.parent) == ["expanded.data"]
    assert load_expanded(path)[0].shape == (3, 784)
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    assert path.stat().st_mode == reference.stat().st_mode


def test_failed_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    images, labels = random_images()
    path = save_expanded(tmp_path / "e.npz", images, labels, METADATA)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        save_expanded(path, images[:2], labels[:2], METADATA)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["e.npz"]
    assert load_expanded(path)[0].shape == (6, 784)


@pytest.mark.parametrize("images, labels, metadata, error", [
    (np.zeros((2, 784), np.uint8), np.array([0, 10]), {}, InputError),
    (np.full((2, 784), 1.5, np.float32), np.array([0, 1]), {}, InputError),
    (np.zeros((2, 784), np.uint8), np.array([0, 1]), {"x": object()}, ConfigError),
    (np.zeros((2, 784), np.uint8), np.array([0, 1]), {"x": float("nan")}, ConfigError),
    (np.zeros((2, 784), np.uint8), np.array([0, 1]), ["not", "a dict"], ConfigError),
])
def test_save_bad_input_writes_nothing(tmp_path, images, labels, metadata, error):
    with pytest.raises(error):
        save_expanded(tmp_path / "e.npz", images, labels, metadata)
    assert os.listdir(tmp_path) == []


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_expanded(tmp_path / "nope.npz")


def header(**changes):
    """The header of a valid two-image file, with ``changes`` (a value None removes the key)."""
    h = {"format": "nndl-expanded", "format_version": 1, "count": 2, "expansion": {}}
    h.update(changes)
    return {k: v for k, v in h.items() if v is not None}


def archive(images=None, labels=None, metadata=None, **extra):
    """The bytes of an .npz archive written directly, bypassing save_expanded's checks.

    ``images`` and ``labels`` default to two blank images labelled 0; False leaves the member out.
    """
    images = np.zeros((2, 784), np.uint8) if images is None else images
    labels = np.zeros(2, np.int64) if labels is None else labels
    members = {"images": images, "labels": labels,
               "metadata": np.array(json.dumps(header())) if metadata is None else metadata, **extra}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: v for k, v in members.items() if v is not False})
    return buffer.getvalue()


def huge_images():
    """An archive whose images member declares (10**7, 784) but holds a few bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": (10**7, 784)})
    buffer = io.BytesIO(archive(images=False))
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr("images.npy", member.getvalue() + bytes(100))
    return buffer.getvalue()


def meta(text):
    """A metadata member holding ``text``."""
    return np.array(text)


def unparsable_header():
    """An archive whose images member has a .npy header numpy cannot even tokenize."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": (2, 784)})
    raw = member.getvalue().replace(b"), }", b", , ")                # an unclosed bracket
    buffer = io.BytesIO(archive(images=False))
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr("images.npy", raw + bytes(2 * 784))
    return buffer.getvalue()


MALFORMED = {
    "garbage": lambda: b"this is not an npz file at all" * 10,
    "empty": lambda: b"",
    "truncated": lambda: archive()[: len(archive()) // 2],
    "missing labels": lambda: archive(labels=False),
    "extra member": lambda: archive(weights=np.zeros(3)),
    "pickled labels": lambda: _pickled(),
    "metadata not JSON": lambda: archive(metadata=meta("{not json")),
    "metadata a list": lambda: archive(metadata=meta("[1, 2]")),
    "metadata nested too deep": lambda: archive(metadata=meta("[" * 100000 + "]" * 100000)),
    "metadata not one string": lambda: archive(metadata=np.array(["{}", "{}"])),
    "metadata a number": lambda: archive(metadata=np.array(7)),
    "other format": lambda: archive(metadata=meta(json.dumps(header(format="nndl-model")))),
    "no format": lambda: archive(metadata=meta(json.dumps(header(format=None)))),
    "newer version": lambda: archive(metadata=meta(json.dumps(header(format_version=2)))),
    "version a string": lambda: archive(metadata=meta(json.dumps(header(format_version="1")))),
    "version missing": lambda: archive(metadata=meta(json.dumps(header(format_version=None)))),
    "count missing": lambda: archive(metadata=meta(json.dumps(header(count=None)))),
    "count negative": lambda: archive(metadata=meta(json.dumps(header(count=-1)))),
    "count a string": lambda: archive(metadata=meta(json.dumps(header(count="2")))),
    "count true": lambda: archive(metadata=meta(json.dumps(header(count=True)))),
    "count disagrees": lambda: archive(metadata=meta(json.dumps(header(count=3)))),
    "count too large": lambda: archive(metadata=meta(json.dumps(header(count=10**7)))),
    "count a huge integer": lambda: archive(metadata=meta('{"format": "nndl-expanded", "format_version": 1, '
                                                         '"expansion": {}, "count": 1' + "0" * 5000 + "}")),
    "expansion missing": lambda: archive(metadata=meta(json.dumps(header(expansion=None)))),
    "expansion a list": lambda: archive(metadata=meta(json.dumps(header(expansion=[1])))),
    "images float": lambda: archive(images=np.zeros((2, 784), np.float32)),
    "images uint16": lambda: archive(images=np.zeros((2, 784), np.uint16)),
    "images 783 pixels": lambda: archive(images=np.zeros((2, 783), np.uint8)),
    "images square": lambda: archive(images=np.zeros((2, 28, 28), np.uint8)),
    "images declare a huge shape": huge_images,
    "labels float": lambda: archive(labels=np.zeros(2)),
    "labels 2-d": lambda: archive(labels=np.zeros((2, 1), np.int64)),
    "labels too few": lambda: archive(labels=np.zeros(1, np.int64)),
    "labels above 9": lambda: archive(labels=np.array([3, 12])),
    "labels negative": lambda: archive(labels=np.array([-1, 0])),
}


def _pickled():
    buffer = io.BytesIO()
    np.savez(buffer, images=np.zeros((2, 784), np.uint8), labels=np.array([0, 1], dtype=object),
             metadata=np.array(json.dumps(header())))
    return buffer.getvalue()


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_file_is_a_file_format_error_naming_the_path(tmp_path, case):
    path = tmp_path / "e.npz"
    path.write_bytes(MALFORMED[case]())
    with pytest.raises(FileFormatError) as info:
        load_expanded(path)
    assert str(path) in str(info.value)


def test_unparsable_npy_header_is_a_file_format_error(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(unparsable_header())
    with pytest.raises(FileFormatError, match="images"):
        load_expanded(path)


def test_newer_version_says_so(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(archive(metadata=meta(json.dumps(header(format_version=2)))))
    with pytest.raises(FileFormatError, match="version 2, newer"):
        load_expanded(path)


def test_damaged_bytes_load_or_raise_file_format_error(tmp_path):
    images, labels = random_images(n=20)
    data = save_expanded(tmp_path / "good.npz", images, labels, METADATA).read_bytes()
    path = tmp_path / "damaged.npz"
    refused = 0
    for position in range(0, len(data), max(1, len(data) // 200)):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            load_expanded(path)                                    # a byte the format does not check
        except FileFormatError as e:
            assert str(path) in str(e)
            refused += 1
    assert refused > 150


# ---------------------------------------------------------------------------
# expand_mnist_file
# ---------------------------------------------------------------------------

def test_expand_mnist_file_with_data_in_memory(tmp_path):
    images, labels = random_images(n=4)
    floats = (images / 255.0).astype(np.float32).reshape(4, 784)   # as MnistData holds them
    data = SimpleNamespace(training=SimpleNamespace(images=floats, labels=labels))
    path = expand_mnist_file(tmp_path / "out.npz", data=data, rotations=[5.0], seed=4)
    loaded, loaded_labels, metadata = load_expanded(path)
    assert loaded.shape == (24, 784)
    expected, expected_labels = expand_training_data(images, labels, rotations=[5.0], seed=4)
    np.testing.assert_array_equal(loaded, (expected.reshape(24, 784) / 255.0).astype(np.float32))
    np.testing.assert_array_equal(loaded_labels, expected_labels)
    assert metadata == {"source": "MNIST training split (given in memory)", "source_count": 4, "count": 24,
                        "shifts": True, "shift_distance": 1, "shift_order": list(expand.SHIFT_ORDER),
                        "rotations": [5.0], "shuffled": True, "seed": 4}


def test_expand_mnist_file_checks_options_before_loading(tmp_path):
    with pytest.raises(ConfigError, match="rotations"):
        expand_mnist_file(tmp_path / "out.npz", data=tmp_path / "no-data-here", rotations="ten")
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.mnist
@pytest.mark.slow
def test_expand_real_mnist(tmp_path, mnist_data):
    path = expand_mnist_file(tmp_path / "expanded.npz", data=mnist_data)
    images, labels, metadata = load_expanded(path)
    assert images.shape == (250_000, 784) and metadata["count"] == 250_000
    assert np.bincount(labels).tolist() == (np.bincount(mnist_data.training.labels) * 5).tolist()
    # The originals are all there: the first training image is among the shuffled rows.
    first = mnist_data.training.images[0]
    assert np.any(np.all(images == first, axis=1))
