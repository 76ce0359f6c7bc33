"""Tests for nndl.data.expand (synthetic images only; real MNIST tests are marked)."""

import json
import os
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


def random_images(n=6, seed=1):
    """n random 28x28 images with pixels k/255, shape (n, 784), and labels."""
    rng = np.random.default_rng(seed)
    images = (rng.integers(0, 256, size=(n, 784)) / 255.0).astype(np.float32)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    return images, labels


def single_pixel(row, col, value=1.0):
    """A (1, 28, 28) float32 image with one lit pixel."""
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, row, col] = value
    return image


def lit(image):
    """(row, col) of every non-zero pixel of a 28x28 image."""
    return [tuple(int(v) for v in p) for p in np.argwhere(image != 0)]


# ---------------------------------------------------------------------------
# shift_images
# ---------------------------------------------------------------------------

def test_shift_directions_single_pixel():
    images, labels = shift_images(single_pixel(10, 20), np.array([3]))
    assert images.shape == (5, 28, 28)
    original, up, down, left, right = images
    assert lit(original) == [(10, 20)]
    assert lit(up) == [(9, 20)]
    assert lit(down) == [(11, 20)]
    assert lit(left) == [(10, 19)]
    assert lit(right) == [(10, 21)]
    assert labels.tolist() == [3] * 5
    assert expand.SHIFT_ORDER == ("original", "up", "down", "left", "right")


@pytest.mark.parametrize(
    "row, col, gone",
    [(0, 5, 1), (27, 5, 2), (5, 0, 3), (5, 27, 4)],  # index of the copy that loses it
)
def test_shift_drops_pixels_at_border(row, col, gone):
    images, _ = shift_images(single_pixel(row, col), np.array([0]))
    for k in range(5):
        expected_count = 0 if k == gone else 1
        assert np.count_nonzero(images[k]) == expected_count, k


def test_shift_fills_vacated_border_with_zeros():
    full = np.ones((2, 28, 28), dtype=np.float32)
    images, _ = shift_images(full, np.array([1, 2]))
    up, down, left, right = images[1], images[2], images[3], images[4]
    assert np.all(up[27, :] == 0) and np.all(up[:27, :] == 1)
    assert np.all(down[0, :] == 0) and np.all(down[1:, :] == 1)
    assert np.all(left[:, 27] == 0) and np.all(left[:, :27] == 1)
    assert np.all(right[:, 0] == 0) and np.all(right[:, 1:] == 1)
    # Second image's copies start at row 5 and are the same.
    np.testing.assert_array_equal(images[5:], images[:5])


def test_shift_matches_roll_with_zero_border():
    images, labels = random_images()
    stack = images.reshape(-1, 28, 28)
    out, out_labels = shift_images(stack, labels)
    expected = []
    for image in stack:
        up = np.roll(image, -1, axis=0)
        up[-1] = 0
        down = np.roll(image, 1, axis=0)
        down[0] = 0
        left = np.roll(image, -1, axis=1)
        left[:, -1] = 0
        right = np.roll(image, 1, axis=1)
        right[:, 0] = 0
        expected.extend([image, up, down, left, right])
    np.testing.assert_array_equal(out, np.array(expected))
    np.testing.assert_array_equal(out_labels, np.repeat(labels, 5))


def test_shift_layouts_and_counts():
    images, labels = random_images(n=6)
    flat, flat_labels = shift_images(images, labels)
    square, square_labels = shift_images(images.reshape(6, 28, 28), labels)
    assert flat.shape == (30, 784) and flat.dtype == np.float32
    assert square.shape == (30, 28, 28)
    np.testing.assert_array_equal(flat, square.reshape(30, 784))
    np.testing.assert_array_equal(flat_labels, square_labels)
    assert flat_labels.dtype == np.int64 and flat_labels.shape == (30,)
    # The originals are kept, in order, at rows 0, 5, 10, ...
    np.testing.assert_array_equal(flat[::5], images)


def test_shift_distance_and_dtype_kept():
    image = single_pixel(10, 10).astype(np.uint8)
    images, _ = shift_images(image, np.array([0]), distance=3)
    assert images.dtype == np.uint8
    assert [lit(im) for im in images] == [[(10, 10)], [(7, 10)], [(13, 10)], [(10, 7)], [(10, 13)]]


def test_shift_empty_input():
    images, labels = shift_images(np.zeros((0, 784), np.float32), np.zeros(0, np.int64))
    assert images.shape == (0, 784) and labels.shape == (0,)


@pytest.mark.parametrize(
    "images, labels, kwargs, match",
    [
        (np.zeros((2, 783)), np.zeros(2, int), {}, "shape"),
        (np.zeros((2, 28, 27)), np.zeros(2, int), {}, "shape"),
        (np.zeros(784), np.zeros(1, int), {}, "shape"),
        (np.zeros((2, 784)), np.zeros(3, int), {}, "one entry per image"),
        (np.zeros((2, 784)), np.zeros(2), {}, "integer dtype"),
        (np.zeros((2, 784)), np.zeros((2, 1), int), {}, r"shape \(n,\)"),
        (np.zeros((2, 784), dtype=complex), np.zeros(2, int), {}, "real numbers"),
        (np.zeros((2, 784)), np.zeros(2, int), {"distance": 0}, "distance"),
        (np.zeros((2, 784)), np.zeros(2, int), {"distance": 28}, "distance"),
        (np.zeros((2, 784)), np.zeros(2, int), {"distance": 1.0}, "distance"),
    ],
)
def test_shift_bad_input(images, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        shift_images(images, labels, **kwargs)


# ---------------------------------------------------------------------------
# rotate_images
# ---------------------------------------------------------------------------

def test_rotate_zero_degrees_is_identity():
    images, labels = random_images()
    out, out_labels = rotate_images(images, labels, angles=[0.0])
    assert out.shape == (12, 784) and out.dtype == np.float32
    np.testing.assert_allclose(out[1::2], images, atol=1e-6)
    np.testing.assert_array_equal(out[0::2], images)
    np.testing.assert_array_equal(out_labels, np.repeat(labels, 2))


def test_rotate_90_degrees_is_counter_clockwise():
    # A pixel near the top centre goes to the left centre: counter-clockwise
    # as displayed, the same as np.rot90 over the image axes.
    images, _ = rotate_images(single_pixel(5, 14), np.array([7]), angles=[90.0])
    assert images.shape == (2, 28, 28)
    assert np.argwhere(images[1] > 0.5).tolist() == [[13, 5]]
    stack = random_images(n=3)[0].reshape(3, 28, 28)
    out, _ = rotate_images(stack, np.arange(3), angles=[90.0, -90.0])
    np.testing.assert_allclose(out[1::3], np.rot90(stack, 1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(out[2::3], np.rot90(stack, -1, axes=(1, 2)), atol=1e-5)


def test_rotate_small_angle_stays_in_unit_range_and_order():
    images, labels = random_images()
    out, out_labels = rotate_images(images, labels, angles=(-10.0, 10.0))
    assert out.shape == (18, 784)
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out[0::3], images)
    assert not np.allclose(out[1::3], images)
    assert not np.allclose(out[1::3], out[2::3])
    np.testing.assert_array_equal(out_labels, np.repeat(labels, 3))
    # Each rotated copy equals rotating that image alone.
    single, _ = rotate_images(images[4:5], labels[4:5], angles=(10.0,))
    np.testing.assert_array_equal(out[4 * 3 + 2], single[1])


@pytest.mark.parametrize("angle", [-10.0, 3.5, 10.0, 30.0])
def test_rotate_matches_scipy_ndimage_rotate(angle):
    from scipy import ndimage

    images, labels = random_images(n=5)
    stack = images.reshape(5, 28, 28)
    out, _ = rotate_images(stack, labels, angles=[angle])
    for i in range(5):
        expected = ndimage.rotate(
            stack[i], angle, reshape=False, order=1, mode="constant", cval=0.0
        )
        np.testing.assert_allclose(out[2 * i + 1], np.clip(expected, 0, 1), rtol=0, atol=1e-6)


def test_rotate_fills_corners_with_zeros():
    full = np.ones((1, 28, 28), dtype=np.float32)
    out, _ = rotate_images(full, np.array([0]), angles=[45.0])
    rotated = out[1]
    assert rotated[0, 0] == 0 and rotated[27, 27] == 0
    assert rotated[14, 14] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "images, angles, match",
    [
        (np.zeros((2, 784), np.float32), (), "at least one"),
        (np.zeros((2, 784), np.float32), 10.0, "sequence"),
        (np.zeros((2, 784), np.float32), "10", "sequence"),
        (np.zeros((2, 784), np.float32), [float("nan")], "finite"),
        (np.zeros((2, 784), np.uint8), [10.0], "floating"),
        (np.full((2, 784), 2.0, np.float32), [10.0], r"\[0, 1\]"),
        (np.full((2, 784), np.nan, np.float32), [10.0], r"\[0, 1\]"),
    ],
)
def test_rotate_bad_input(images, angles, match):
    with pytest.raises(ValueError, match=match):
        rotate_images(images, np.zeros(2, np.int64), angles=angles)


# ---------------------------------------------------------------------------
# expand_training_data
# ---------------------------------------------------------------------------

def test_expand_without_shuffle_is_shift_then_rotations():
    images, labels = random_images()
    out, out_labels = expand_training_data(
        images, labels, shifts=True, rotations=(-5.0, 5.0), shuffle=False
    )
    assert out.shape == (6 * 7, 784)
    by_image = out.reshape(6, 7, 784)
    shifted, _ = shift_images(images, labels)
    rotated, _ = rotate_images(images, labels, angles=(-5.0, 5.0))
    np.testing.assert_array_equal(by_image[:, :5].reshape(-1, 784), shifted)
    np.testing.assert_array_equal(by_image[:, 5:].reshape(-1, 784), rotated.reshape(6, 3, 784)[:, 1:].reshape(-1, 784))
    np.testing.assert_array_equal(out_labels, np.repeat(labels, 7))


def test_expand_shuffle_keeps_labels_with_images():
    images, labels = random_images(n=6)
    labels = np.arange(6)  # label = index of the source image
    plain, _ = expand_training_data(images, labels, shuffle=False)
    out, out_labels = expand_training_data(images, labels, seed=3)
    assert out.shape == (30, 784)
    assert sorted(out_labels.tolist()) == sorted(np.repeat(labels, 5).tolist())
    assert not np.array_equal(out, plain)
    # Every shuffled row is one of the copies of the image its label names.
    plain_by_image = plain.reshape(6, 5, 784)
    for row, label in zip(out, out_labels):
        assert any(np.array_equal(row, copy) for copy in plain_by_image[label])
    # ... and the shuffled set is a permutation of the unshuffled one.
    order = np.lexsort(out.T)
    plain_order = np.lexsort(plain.T)
    np.testing.assert_array_equal(out[order], plain[plain_order])


def test_expand_deterministic_for_seed():
    images, labels = random_images()
    a, a_labels = expand_training_data(images, labels, rotations=[8.0], seed=11)
    b, b_labels = expand_training_data(images, labels, rotations=[8.0], seed=11)
    c, c_labels = expand_training_data(images, labels, rotations=[8.0], seed=12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a, c)


def test_expand_shuffle_across_blocks(monkeypatch):
    # Force several blocks so the scatter into the output is exercised.
    monkeypatch.setattr(expand, "_BLOCK", 4)
    images, _ = random_images(n=10)
    labels = np.arange(10)
    out, out_labels = expand_training_data(images.reshape(10, 28, 28), labels, seed=5)
    assert out.shape == (50, 28, 28)
    plain, _ = shift_images(images, labels)
    plain_by_image = plain.reshape(10, 5, 784)
    for row, label in zip(out.reshape(50, 784), out_labels):
        assert any(np.array_equal(row, copy) for copy in plain_by_image[label])
    assert np.bincount(out_labels).tolist() == [5] * 10


def test_expand_no_shifts_no_rotations_is_a_shuffle():
    images, labels = random_images()
    out, out_labels = expand_training_data(images, labels, shifts=False, rotations=None, seed=0)
    assert out.shape == images.shape
    assert sorted(out_labels.tolist()) == sorted(labels.tolist())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shifts": 1}, "shifts"),
        ({"rotations": 5}, "sequence"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_expand_bad_options(kwargs, match):
    images, labels = random_images()
    with pytest.raises(ValueError, match=match):
        expand_training_data(images, labels, **kwargs)


# ---------------------------------------------------------------------------
# save_expanded / load_expanded
# ---------------------------------------------------------------------------

METADATA = {"shifts": True, "rotations": [], "seed": 0, "source": "synthetic"}


def test_save_load_round_trip_exact(tmp_path):
    images, labels = random_images()
    out, out_labels = expand_training_data(images, labels, seed=2)
    path = save_expanded(tmp_path / "expanded.npz", out, out_labels, metadata=METADATA)
    assert path == tmp_path / "expanded.npz"
    loaded, loaded_labels, metadata = load_expanded(path)
    assert loaded.dtype == np.float32 and loaded.shape == (30, 784)
    assert loaded_labels.dtype == np.int64 and loaded_labels.shape == (30,)
    np.testing.assert_array_equal(loaded, out)
    np.testing.assert_array_equal(loaded_labels, out_labels)
    assert metadata == METADATA


def test_save_accepts_square_layout_and_all_pixel_levels(tmp_path):
    levels = (np.arange(784) % 256 / 255.0).astype(np.float32).reshape(1, 28, 28)
    images = np.concatenate([levels] * 2)
    path = save_expanded(tmp_path / "e.npz", images, np.array([0, 9]), metadata={})
    loaded, labels, _ = load_expanded(path)
    np.testing.assert_array_equal(loaded, images.reshape(2, 784))
    assert labels.tolist() == [0, 9]


def test_save_file_contents_and_no_pickle(tmp_path):
    images, labels = random_images()
    path = save_expanded(str(tmp_path / "e.npz"), images, labels, metadata=METADATA)
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"images", "labels", "metadata"}
        assert archive["images"].dtype == np.uint8
        assert archive["images"].shape == (6, 784)
        assert archive["labels"].dtype == np.int64
        header = json.loads(archive["metadata"].item())
    assert header["format"] == "nndl-expanded"
    assert header["format_version"] == 1
    assert header["count"] == 6
    assert header["expansion"] == METADATA


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path):
    images, labels = random_images()
    path = tmp_path / "sub" / "e.npz"
    save_expanded(path, images, labels, metadata=METADATA)
    save_expanded(path, images[:3], labels[:3], metadata=METADATA)  # overwrite
    assert os.listdir(path.parent) == ["e.npz"]
    assert load_expanded(path)[0].shape == (3, 784)


def test_saved_file_has_usual_permissions(tmp_path):
    images, labels = random_images()
    path = save_expanded(tmp_path / "e.npz", images, labels, metadata={})
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    assert path.stat().st_mode == reference.stat().st_mode


def test_failed_save_leaves_old_file_and_no_temp_file(tmp_path, monkeypatch):
    images, labels = random_images()
    path = tmp_path / "e.npz"
    save_expanded(path, images, labels, metadata=METADATA)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        save_expanded(path, images[:2], labels[:2], metadata=METADATA)
    assert os.listdir(tmp_path) == ["e.npz"]
    monkeypatch.undo()
    assert load_expanded(path)[0].shape == (6, 784)


def test_save_keeps_name_without_npz_suffix(tmp_path):
    images, labels = random_images()
    path = save_expanded(tmp_path / "expanded.data", images, labels, metadata={})
    assert os.listdir(tmp_path) == ["expanded.data"]
    assert load_expanded(path)[1].shape == (6,)


@pytest.mark.parametrize(
    "images, labels, metadata, match",
    [
        (np.zeros((2, 784), np.float32), np.array([0, 10]), {}, r"labels must be in 0\.\.9"),
        (np.zeros((2, 784), np.float32), np.array([-1, 0]), {}, r"labels must be in 0\.\.9"),
        (np.full((2, 784), 1.5, np.float32), np.array([0, 1]), {}, r"\[0, 1\]"),
        (np.zeros((2, 784), np.uint8), np.array([0, 1]), {}, "floating"),
        (np.zeros((2, 784), np.float32), np.array([0, 1]), {"x": object()}, "JSON"),
        (np.zeros((2, 784), np.float32), np.array([0, 1]), ["not", "a dict"], "dict"),
    ],
)
def test_save_bad_input(tmp_path, images, labels, metadata, match):
    with pytest.raises(ValueError, match=match):
        save_expanded(tmp_path / "e.npz", images, labels, metadata=metadata)
    assert os.listdir(tmp_path) == []


def write_raw(path, images, labels, header):
    """Write an archive directly, bypassing save_expanded's checks."""
    with open(path, "wb") as handle:
        np.savez_compressed(handle, images=images, labels=labels, metadata=np.array(json.dumps(header)))


def good_header(count=2, **changes):
    header = {"format": "nndl-expanded", "format_version": 1, "count": count, "expansion": {}}
    header.update(changes)
    return header


def test_load_newer_format_version(tmp_path):
    path = tmp_path / "e.npz"
    write_raw(path, np.zeros((2, 784), np.uint8), np.zeros(2, np.int64), good_header(format_version=2))
    with pytest.raises(ValueError, match="version 2.*newer") as info:
        load_expanded(path)
    assert str(path) in str(info.value)


def test_load_wrong_label_range(tmp_path):
    path = tmp_path / "e.npz"
    write_raw(path, np.zeros((2, 784), np.uint8), np.array([3, 12]), good_header())
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9") as info:
        load_expanded(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "images, labels, header, match",
    [
        (np.zeros((2, 784), np.uint8), np.zeros(2, np.int64), good_header(format="other"), "not an nndl-expanded"),
        (np.zeros((2, 784), np.uint8), np.zeros(2, np.int64), good_header(format_version="1"), "format_version"),
        (np.zeros((2, 784), np.float32), np.zeros(2, np.int64), good_header(), "uint8"),
        (np.zeros((2, 783), np.uint8), np.zeros(2, np.int64), good_header(), "shape"),
        (np.zeros((3, 784), np.uint8), np.zeros(3, np.int64), good_header(count=2), "shape"),
        (np.zeros((2, 784), np.uint8), np.zeros(2, np.float64), good_header(), "labels must be integers"),
        (np.zeros((2, 784), np.uint8), np.zeros(2, np.int64), good_header(expansion=None), "expansion"),
    ],
)
def test_load_invalid_contents(tmp_path, images, labels, header, match):
    path = tmp_path / "e.npz"
    write_raw(path, images, labels, header)
    with pytest.raises(ValueError, match=match):
        load_expanded(path)


def test_load_corrupt_file(tmp_path):
    images, labels = random_images()
    path = save_expanded(tmp_path / "e.npz", images, labels, metadata={})
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not an npz file at all" * 10)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(flipped))
    for bad in (truncated, garbage, empty, damaged):
        with pytest.raises(ValueError) as info:
            load_expanded(bad)
        assert str(bad) in str(info.value), bad


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_expanded(path)


def test_load_refuses_pickled_members(tmp_path):
    path = tmp_path / "e.npz"
    with open(path, "wb") as handle:
        np.savez(
            handle,
            images=np.zeros((2, 784), np.uint8),
            labels=np.array([0, 1], dtype=object),
            metadata=np.array(json.dumps(good_header())),
        )
    with pytest.raises(ValueError, match=str(path.name)):
        load_expanded(path)


# ---------------------------------------------------------------------------
# expand_mnist_file
# ---------------------------------------------------------------------------

def test_expand_mnist_file_with_data_in_memory(tmp_path):
    images, labels = random_images(n=4)
    data = SimpleNamespace(training=SimpleNamespace(images=images, labels=labels))
    path = expand_mnist_file(tmp_path / "out.npz", data=data, rotations=[5.0], seed=4, progress=False)
    loaded, loaded_labels, metadata = load_expanded(path)
    assert loaded.shape == (24, 784)
    assert np.bincount(loaded_labels, minlength=10).sum() == 24
    assert metadata["shifts"] is True
    assert metadata["rotations"] == [5.0]
    assert metadata["seed"] == 4
    assert metadata["source_count"] == 4 and metadata["count"] == 24
    assert metadata["shift_order"] == ["original", "up", "down", "left", "right"]
    again = expand_mnist_file(tmp_path / "again.npz", data=data, rotations=[5.0], seed=4, progress=False)
    assert again.read_bytes() != b""
    np.testing.assert_array_equal(load_expanded(again)[0], loaded)


@pytest.mark.mnist
@pytest.mark.slow
def test_expand_real_mnist(tmp_path, mnist_data):
    data = mnist_data
    path = expand_mnist_file(tmp_path / "expanded.npz", data=data, progress=False)
    images, labels, metadata = load_expanded(path)
    assert images.shape == (250_000, 784)
    assert np.bincount(labels).tolist() == (np.bincount(data.training.labels) * 5).tolist()
    assert metadata["count"] == 250_000
