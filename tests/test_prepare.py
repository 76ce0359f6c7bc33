"""Preparing any image as MNIST's digits were (nndl.digits.prepare): known centred results on synthetic images,
the bad inputs refused in words, and the MNIST digits themselves left as they are."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from nndl.digits.prepare import (
    MAX_PIXELS,
    NOISE_FLOOR,
    compose_number,
    gap_for_distance,
    open_image,
    prepare,
    prepare_array,
    shrink_factor,
    to_grey,
    to_ink,
)
from nndl.errors import InputError


def png(image, mode=None):
    """PNG bytes of a Pillow image or a uint8 array."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image, mode)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def page(width=200, height=150, box=(40, 30, 100, 60), ink=0, paper=255):
    """A page (uint8, height x width) with a filled rectangle ``box`` = (x0, y0, x1, y1) of ``ink``."""
    a = np.full((height, width), paper, dtype=np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1] = ink
    return a


def block(h, w):
    """The expected 28x28 image of a filled rectangle scaled to h x w: ones, centred by their centre of mass."""
    field = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - h) // 2, (28 - w) // 2
    field[top:top + h, left:left + w] = 1
    cy, cx = ndimage.center_of_mass(field)
    return ndimage.shift(field, (round(14 - cy), round(14 - cx)), order=0)


# --- the known centred results --------------------------------------------------------------------


def test_a_dark_rectangle_on_white_is_inverted_scaled_to_20_pixels_and_centred():
    p = prepare(png(page(box=(40, 30, 100, 60))))                   # 60 wide, 30 tall: scaled by 1/3
    assert not p.blank and p.inverted and p.message is None
    assert p.box == (40, 30, 100, 60)
    image = p.pixels.reshape(28, 28)
    assert p.pixels.dtype == np.float32 and p.pixels.shape == (784,)
    np.testing.assert_allclose(image, block(10, 20), atol=1e-5)
    rows, cols = np.nonzero(image > 0.5)
    assert cols.max() - cols.min() + 1 == 20 and rows.max() - rows.min() + 1 == 10
    cy, cx = ndimage.center_of_mass(image)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_the_longer_side_is_scaled_to_20_whatever_the_orientation_and_size():
    tall = prepare(png(page(width=300, height=400, box=(100, 40, 120, 360))))    # 20 x 320 -> 1.25 x 20
    image = tall.pixels.reshape(28, 28)
    rows, cols = np.nonzero(image > 0.01)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 <= 2
    small = prepare(png(page(width=20, height=20, box=(5, 3, 10, 13))))          # 5 x 10 enlarged to 10 x 20
    np.testing.assert_allclose(small.pixels.reshape(28, 28), block(20, 10), atol=1e-5)


def test_light_ink_on_black_is_not_inverted_and_gives_the_same_image():
    dark = prepare(png(page(box=(40, 30, 100, 60))))
    light = prepare(png(page(box=(40, 30, 100, 60), ink=255, paper=0)))
    assert light.inverted is False and dark.inverted is True
    np.testing.assert_array_equal(light.pixels, dark.pixels)


def test_grey_paper_and_a_faint_pen_are_stretched_to_black_and_white():
    faint = prepare(png(page(box=(40, 30, 100, 60), ink=150, paper=200)))
    np.testing.assert_allclose(faint.pixels.reshape(28, 28), block(10, 20), atol=1e-5)


def test_the_centre_of_mass_not_the_box_goes_to_the_centre():
    a = page(width=100, height=100, box=(20, 20, 80, 80))
    a[20:80, 50:80] = 255                                    # an L: the left column and the bottom bar
    a[70:80, 20:80] = 0
    image = prepare(png(a)).pixels.reshape(28, 28)
    cy, cx = ndimage.center_of_mass(image)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    rows, cols = np.nonzero(image)
    assert (rows.min() + rows.max()) / 2 < 14 - 1            # the mass sits low and left in its box, so the
    assert (cols.min() + cols.max()) / 2 > 14 + 1            # box goes up and right of the centre


def test_a_transparent_png_with_black_strokes_is_composited_on_white():
    rgba = np.zeros((150, 200, 4), dtype=np.uint8)           # transparent black everywhere ...
    rgba[30:60, 40:100, 3] = 255                             # ... opaque black where the stroke is
    p = prepare(png(rgba, "RGBA"))
    assert p.inverted
    np.testing.assert_allclose(p.pixels.reshape(28, 28), block(10, 20), atol=1e-5)
    white_strokes = rgba.copy()
    white_strokes[..., :3] = 255                             # white strokes on transparency: on black instead
    q = prepare(png(white_strokes, "RGBA"))
    np.testing.assert_allclose(q.pixels.reshape(28, 28), block(10, 20), atol=1e-5)


def test_colour_palette_and_16_bit_images_give_the_same_result():
    grey = page(box=(40, 30, 100, 60))
    expected = prepare(png(grey)).pixels
    rgb = np.stack([grey, grey, grey], axis=-1).copy()
    rgb[grey == 0] = (0, 0, 90)                              # dark blue ink
    np.testing.assert_allclose(prepare(png(rgb, "RGB")).pixels, expected, atol=1e-5)
    np.testing.assert_allclose(prepare(png(Image.fromarray(grey).convert("P"))).pixels, expected, atol=1e-5)
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)      # 0..65535
    assert sixteen.mode.startswith("I")
    np.testing.assert_allclose(prepare(png(sixteen)).pixels, expected, atol=1e-5)
    jpeg = io.BytesIO()
    Image.fromarray(grey).save(jpeg, format="JPEG", quality=90)
    lossy = prepare(jpeg.getvalue()).pixels.reshape(28, 28)      # compression noise: the same shape, centred
    rows, cols = np.nonzero(lossy > 0.5)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (10, 20)
    assert np.allclose(ndimage.center_of_mass(lossy), 14, atol=0.5)


def test_the_exif_orientation_is_applied():
    upright = page(width=150, height=200, box=(40, 30, 60, 150))         # a tall bar
    photo = Image.fromarray(np.ascontiguousarray(np.rot90(upright)))    # stored on its side ...
    exif = Image.Exif()
    exif[0x0112] = 8                                                      # ... with "rotate 90 CW to view"
    out = io.BytesIO()
    photo.save(out, format="PNG", exif=exif)
    grey = to_grey(open_image(out.getvalue()))
    assert grey.shape == upright.shape


def test_a_very_large_image_is_shrunk_first_and_its_box_is_in_its_own_pixels():
    assert shrink_factor(2000, 1000) == 1 and shrink_factor(3000, 1000) == 2
    a = page(width=3000, height=1000, box=(600, 300, 1800, 900))         # 3 million pixels: halved
    p = prepare(png(a))
    assert p.box == (600, 300, 1800, 900)
    np.testing.assert_allclose(p.pixels.reshape(28, 28), block(10, 20), atol=1e-5)
    assert to_grey(Image.fromarray(a)).shape == (500, 1500)


def test_specks_are_left_out_of_the_box():
    a = page(box=(40, 30, 100, 60))
    a[140, 190] = 0                                          # a speck of dust far away
    p = prepare(png(a))
    assert p.box == (40, 30, 100, 60)
    np.testing.assert_allclose(p.pixels.reshape(28, 28), block(10, 20), atol=1e-5)


def test_arrays_are_images_too():
    expected = prepare(png(page(box=(40, 30, 100, 60)))).pixels
    grey = page(box=(40, 30, 100, 60))
    np.testing.assert_allclose(prepare(grey).pixels, expected, atol=1e-5)                     # uint8
    np.testing.assert_allclose(prepare(grey / 255.0).pixels, expected, atol=1e-5)             # floats in [0, 1]
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        prepare(grey.astype(np.float64))                     # floats 0..255: not scaled
    with pytest.raises(InputError, match="shape"):
        prepare(np.zeros((4, 4, 7)))


def test_prepare_array_takes_white_ink_on_black_as_it_is():
    ink = np.zeros((40, 90), dtype=np.float32)
    ink[5:35, 10:70] = 1
    p = prepare_array(ink)
    assert p.box == (10, 5, 70, 35) and not p.inverted
    np.testing.assert_allclose(p.pixels.reshape(28, 28), block(10, 20), atol=1e-5)
    assert prepare_array(np.zeros((10, 10))).blank
    with pytest.raises(InputError):
        prepare_array(np.full((5, 5), 2.0))


# --- blank images -----------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [np.full((50, 50), 255, np.uint8), np.zeros((50, 50), np.uint8),
                               page(box=(10, 10, 30, 30), ink=250, paper=255), np.full((1, 1), 9, np.uint8)],
                         ids=["white", "black", "too-faint", "one-pixel"])
def test_a_blank_image_says_so_and_has_no_pixels(a):
    p = prepare(png(a))
    assert p.blank and "blank" in p.message and p.box is None
    assert p.pixels.shape == (784,) and not p.pixels.any()


def test_to_ink_reports_the_background_it_found():
    ink, inverted, blank = to_ink(page(box=(40, 30, 100, 60)) / 255)
    assert inverted and not blank and ink.max() == 1 and ink[0, 0] == 0


# --- bad input ----------------------------------------------------------------------------------------


def _png_header(width, height):
    """A PNG that claims width x height pixels and holds none: a decompression bomb's header, in 57 bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"these bytes are not a picture", "not an image"),
    (b"\x89PNG\r\n\x1a\n and then garbage", "image"),
    (png(page())[:200], "damaged"),
    (_png_header(7000, 7000), "too large"),                  # 49 million pixels: over our limit
    (_png_header(20000, 20000), "too large"),                # 400 million: over Pillow's own limit too
], ids=["empty", "text", "bad-png", "truncated", "bomb", "huge-bomb"])
def test_bad_bytes_are_refused_in_one_plain_sentence(data, words):
    with pytest.raises(InputError, match=words) as info:
        prepare(data)
    assert "\n" not in str(info.value)


def test_a_bomb_is_refused_before_its_pixels_are_decoded(monkeypatch):
    from PIL import ImageFile
    side = int(MAX_PIXELS ** 0.5) + 100
    bomb = png(Image.new("1", (side, side), 1))              # a few kilobytes for 40+ million pixels
    assert len(bomb) < 100_000

    def never(self):
        raise AssertionError("the pixels of a bomb were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    with pytest.raises(InputError, match=f"more than the {MAX_PIXELS:,}"):
        open_image(bomb)


def test_files_empty_missing_or_not_images(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.png is empty"):
        open_image(empty)
    with pytest.raises(FileNotFoundError):
        open_image(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("seven")
    with pytest.raises(InputError, match="notes.png is not an image"):
        open_image(text)
    with pytest.raises(InputError, match="cannot read an image from a int"):
        open_image(7)


def test_a_file_object_and_a_path_give_the_same_image(tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(png(page()))
    with open(path, "rb") as f:
        from_file = prepare(f)
    np.testing.assert_array_equal(from_file.pixels, prepare(path).pixels)
    np.testing.assert_array_equal(prepare(str(path)).pixels, prepare(path.read_bytes()).pixels)


# --- MNIST itself, and numbers made of its digits -----------------------------------------------------------


def test_mnist_digits_come_back_nearly_unchanged(mnist_data):
    """MNIST's digits are already prepared: preparing them again changes most not at all, the rest little."""
    x = mnist_data.test.images[:200]
    prepared = np.array([prepare(row).pixels for row in x])
    floor = np.where(x >= NOISE_FLOOR, x, 0)           # what the noise floor takes away
    same = np.all(np.abs(prepared - floor) < 1e-6, axis=1)
    assert same.mean() > 0.8
    assert np.abs(prepared - x).mean() < 0.01


def test_gap_for_distance_makes_digits_touch_or_keeps_them_apart(mnist_data):
    from scipy import ndimage as nd
    a, b = mnist_data.test.images[0], mnist_data.test.images[1]           # a 7 and a 2
    for distance, touching in ((1, True), (0, True), (4, False)):
        gap = gap_for_distance(a, b, distance)
        image, boxes = compose_number(np.stack([a, b]), [gap])
        _, n = nd.label(image > 0, structure=np.ones((3, 3)))
        _, n_a = nd.label(a.reshape(28, 28) > 0, structure=np.ones((3, 3)))
        _, n_b = nd.label(b.reshape(28, 28) > 0, structure=np.ones((3, 3)))
        assert (n < n_a + n_b) == touching, distance
        assert boxes[1][0] - boxes[0][2] == gap


def test_compose_number_places_digits_in_their_boxes():
    d = np.zeros((3, 28, 28), dtype=np.float32)
    d[:, 4:24, 10:18] = 1                                     # three 8-wide, 20-tall bars
    image, boxes = compose_number(d, gaps=[5, -2], offsets=[0, 2, -1], margin=3)
    assert boxes[0] == (3, 4 + 3 + 1, 11, 24 + 3 + 1)
    assert boxes[1][0] == 11 + 5 and boxes[2][0] == boxes[1][2] - 2
    for x0, y0, x1, y1 in boxes:
        assert image[y0:y1, x0:x1].min() == 1
    with pytest.raises(InputError, match="3 digits need 2 gaps"):
        compose_number(d, gaps=[1])
