"""Data augmentation on the device: shifts, rotations, elastic distortions (nndl.deep.augment)."""

import math
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from nndl.deep.augment import (  # noqa: E402
    Augmentation,
    _transform,
    augment,
    augment_in_chunks,
    elastic_field,
    gaussian_kernel,
    plot_examples,
)
from nndl.errors import ConfigError, InputError  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def random_images(n=4, height=12, width=12, seed=1, dtype=torch.float32):
    return torch.rand(n, 1, height, width, generator=generator(seed), dtype=dtype)


def blob(size=28, sigma=3.0, dtype=torch.float32):
    """A centred Gaussian blob (1, 1, size, size), peak 1, nearly zero at the border."""
    c = torch.arange(size, dtype=dtype) + 0.5 - size / 2
    r2 = c.view(-1, 1) ** 2 + c.view(1, -1) ** 2
    return torch.exp(-r2 / (2 * sigma ** 2)).view(1, 1, size, size)


# --- Augmentation: validation and serialisation ---

@pytest.mark.parametrize("field, value", [
    ("shift", -1), ("shift", 14), ("shift", math.inf), ("shift", math.nan), ("shift", "2"), ("shift", True),
    ("rotate", -0.5), ("rotate", 181), ("rotate", math.nan),
    ("elastic_alpha", -1), ("elastic_alpha", 101), ("elastic_alpha", math.inf),
    ("elastic_sigma", 0), ("elastic_sigma", -2), ("elastic_sigma", 29), ("elastic_sigma", None),
])
def test_bad_fields_raise_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field) as info:
        Augmentation(**{field: value})
    assert "\n" not in str(info.value)


def test_limits_are_allowed_and_values_become_floats():
    a = Augmentation(shift=13.9, rotate=180, elastic_alpha=100, elastic_sigma=28)
    assert a.rotate == 180.0 and isinstance(a.rotate, float)
    assert Augmentation(shift=0, rotate=0, elastic_alpha=0).elastic_sigma == 4.0


def test_active_and_describe():
    assert not Augmentation().active
    assert Augmentation().describe() == "none"
    assert Augmentation(elastic_sigma=2).describe() == "none"
    assert Augmentation(shift=1).active and Augmentation(rotate=1).active and Augmentation(elastic_alpha=1).active
    a = Augmentation(shift=2, rotate=10, elastic_alpha=34, elastic_sigma=4)
    assert a.describe() == "shifts up to 2 px, rotations up to 10°, elastic (alpha 34, sigma 4)"


def test_dict_round_trip_and_unknown_keys():
    a = Augmentation(shift=1.5, rotate=7, elastic_alpha=9, elastic_sigma=3)
    assert Augmentation.from_dict(a.to_dict()) == a
    assert a.to_dict() == {"shift": 1.5, "rotate": 7.0, "elastic_alpha": 9.0, "elastic_sigma": 3.0}
    assert Augmentation.from_dict({"shift": 2}) == Augmentation(shift=2)
    with pytest.raises(ConfigError, match="shfit"):
        Augmentation.from_dict({"shfit": 2})
    with pytest.raises(ConfigError):
        Augmentation.from_dict([("shift", 2)])
    with pytest.raises(ConfigError, match="rotate"):
        Augmentation.from_dict({"rotate": 500})


# --- the resampling, with explicit parameters ---

def test_no_parameters_is_the_identity():
    x = random_images()
    assert torch.allclose(_transform(x), x, atol=1e-6)


def test_integer_shift_rolls_with_zero_fill():
    x = random_images(n=2, height=10, width=12)
    shifts = torch.tensor([[2.0, -1.0], [2.0, -1.0]])             # 2 px right, 1 px up
    expected = torch.zeros_like(x)
    expected[:, :, :-1, 2:] = x[:, :, 1:, :-2]
    out = _transform(x, shifts_xy=shifts)
    assert torch.allclose(out, expected, atol=1e-6, rtol=0)
    # At MNIST's size float32 rounding inside grid_sample costs ~2e-6; float64 is exact to rounding.
    x64 = random_images(n=2, height=28, width=28, dtype=torch.float64)
    expected64 = torch.zeros_like(x64)
    expected64[:, :, :-1, 2:] = x64[:, :, 1:, :-2]
    out64 = _transform(x64, shifts_xy=shifts.double())
    assert torch.allclose(out64, expected64, atol=1e-12, rtol=0)


def test_shift_moves_content_in_the_stated_direction():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1.0
    out = _transform(x, shifts_xy=torch.tensor([[1.0, 2.0]]))    # 1 right, 2 down
    assert out[0, 0, 5, 4].item() == pytest.approx(1.0, abs=1e-6)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_rotation_by_90_degrees_is_rot90():
    x = torch.zeros(1, 1, 8, 8)                                    # centred but not rotation-symmetric
    x[0, 0, 2, 3:6] = 1.0
    x[0, 0, 3:6, 2] = 0.5
    x[0, 0, 4, 4] = 0.25
    out = _transform(torch.cat([x, x]), angles_deg=torch.tensor([90.0, -90.0]))
    assert torch.allclose(out[0:1], torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)   # anticlockwise
    assert torch.allclose(out[1:2], torch.rot90(x, -1, dims=(2, 3)), atol=1e-5, rtol=0)
    odd = random_images(n=1, height=7, width=7)                   # odd size: centre on a pixel
    assert torch.allclose(_transform(odd, angles_deg=torch.tensor([180.0])),
                          torch.rot90(odd, 2, dims=(2, 3)), atol=1e-5, rtol=0)


def test_rotation_preserves_ink_of_a_centred_blob():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10:18, 12:16] = 0.8                                   # a bar, so rotation really moves pixels
    x = x + 0.5 * blob()
    x = x.clamp(0, 1)
    for angle in (13.0, 30.0, -45.0):
        out = _transform(x, angles_deg=torch.tensor([angle]))
        assert out.sum().item() == pytest.approx(x.sum().item(), rel=0.02)
        assert not torch.allclose(out, x, atol=1e-3)


def test_displacement_reads_source_at_p_plus_d():
    x = random_images(n=1, height=9, width=9)
    d = torch.zeros(1, 9, 9, 2)
    d[..., 0] = 1.0                                                # every pixel reads one to its right
    out = _transform(x, displacement=d)
    assert torch.allclose(out[..., :-1], x[..., 1:], atol=1e-6, rtol=0)
    assert torch.all(out[..., -1] == 0)


# --- Gaussian kernel and elastic field ---

@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5, 4.0, 28.0])
def test_gaussian_kernel(sigma):
    k = gaussian_kernel(sigma)
    assert k.shape == (2 * math.ceil(3 * sigma) + 1,) and k.dtype == torch.float32
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(k, k.flip(0))
    assert k.argmax().item() == (k.numel() - 1) // 2
    assert gaussian_kernel(sigma, dtype=torch.float64).dtype == torch.float64


def test_gaussian_kernel_rejects_bad_sigma():
    for sigma in (0, -1, math.nan):
        with pytest.raises(ConfigError, match="sigma"):
            gaussian_kernel(sigma)


def test_elastic_field_shape_dtype_device():
    f = elastic_field(3, 10, 12, 8.0, 3.0, generator())
    assert f.shape == (3, 10, 12, 2) and f.dtype == torch.float32 and f.device.type == "cpu"
    assert f.abs().max() > 0
    f64 = elastic_field(2, 5, 5, 8.0, 1.0, generator(), dtype=torch.float64, device="cpu")
    assert f64.dtype == torch.float64


def test_elastic_field_zero_alpha_and_linear_in_alpha():
    assert torch.all(elastic_field(2, 8, 8, 0.0, 2.0, generator()) == 0)
    small = elastic_field(2, 16, 16, 2.0, 2.0, generator(5))
    large = elastic_field(2, 16, 16, 6.0, 2.0, generator(5))
    assert torch.allclose(large, 3 * small, atol=1e-6)


def test_elastic_field_is_smoother_for_larger_sigma():
    def roughness(field):
        neighbours = (field[:, :, 1:] - field[:, :, :-1]).abs().mean()
        return (neighbours / field.abs().mean()).item()       # relative to the field's own size
    rough = elastic_field(4, 40, 40, 10.0, 1.0, generator(3))
    smooth = elastic_field(4, 40, 40, 10.0, 4.0, generator(3))
    assert roughness(smooth) < roughness(rough) / 2
    assert (smooth[:, :, 1:] - smooth[:, :, :-1]).abs().mean() < (rough[:, :, 1:] - rough[:, :, :-1]).abs().mean()


# --- augment ---

def test_inactive_augmentation_returns_the_same_tensor():
    x = random_images()
    assert augment(x, Augmentation(), generator()) is x
    assert augment_in_chunks(x, Augmentation(elastic_sigma=2), generator()) is x


def test_augment_is_deterministic_per_generator_seed():
    x = random_images(n=5)
    a = Augmentation(shift=2, rotate=15, elastic_alpha=8, elastic_sigma=3)
    first = augment(x, a, generator(7))
    assert torch.equal(first, augment(x, a, generator(7)))
    assert not torch.allclose(first, augment(x, a, generator(8)))
    g = generator(7)
    assert not torch.allclose(augment(x, a, g), augment(x, a, g))          # the state moves on


def test_augment_draws_in_the_documented_order():
    x = random_images(n=3)
    a = Augmentation(shift=2, rotate=15, elastic_alpha=8, elastic_sigma=3)
    g = generator(11)
    angles = (torch.rand(3, generator=g) * 2 - 1) * 15
    shifts = (torch.rand(3, 2, generator=g) * 2 - 1) * 2
    field = elastic_field(3, 12, 12, 8.0, 3.0, g)
    expected = _transform(x, angles, shifts, field)
    assert torch.allclose(augment(x, a, generator(11)), expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_augment_output_range_shape_dtype(dtype):
    x = random_images(n=4, dtype=dtype)
    out = augment(x, Augmentation(shift=3, rotate=30, elastic_alpha=20, elastic_sigma=2), generator())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out is not x and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)


def test_augment_leaves_its_input_alone_and_has_no_gradient():
    x = random_images().requires_grad_(True)
    before = x.detach().clone()
    out = augment(x, Augmentation(shift=2), generator())
    assert torch.equal(x.detach(), before) and not out.requires_grad


def test_bad_inputs_raise_input_error():
    a = Augmentation(shift=1)
    for bad in (torch.rand(2, 12, 12), torch.rand(2, 3, 12, 12), torch.rand(1, 1, 1, 12, 12),
                torch.zeros(2, 1, 8, 8, dtype=torch.uint8)):
        with pytest.raises(InputError):
            augment(bad, a, generator())
    with pytest.raises(InputError):
        augment([[0.0]], a, generator())
    with pytest.raises(InputError, match="generator"):
        augment(torch.zeros(2, 1, 8, 8, device="meta"), a, generator())     # generator on another device
    with pytest.raises(InputError, match="generator"):
        augment(random_images(), a, 0)
    with pytest.raises(ConfigError):
        augment(random_images(), {"shift": 1}, generator())


def test_empty_batch():
    x = torch.zeros(0, 1, 8, 8)
    out = augment(x, Augmentation(rotate=5), generator())
    assert out.shape == x.shape


# --- augment_in_chunks ---

def test_chunks_equal_augment_when_one_chunk_and_are_deterministic():
    x = random_images(n=10)
    a = Augmentation(shift=2, rotate=10, elastic_alpha=8, elastic_sigma=3)
    whole = augment(x, a, generator(4))
    assert torch.equal(augment_in_chunks(x, a, generator(4), chunk=10), whole)
    assert torch.equal(augment_in_chunks(x, a, generator(4), chunk=64), whole)
    chunked = augment_in_chunks(x, a, generator(4), chunk=3)
    assert chunked.shape == x.shape and chunked.dtype == x.dtype
    assert torch.equal(chunked, augment_in_chunks(x, a, generator(4), chunk=3))
    g = generator(4)                                               # chunk by chunk, drawing in turn
    expected = torch.cat([augment(x[i:i + 3], a, g) for i in range(0, 10, 3)])
    assert torch.equal(chunked, expected)
    with pytest.raises(ConfigError, match="chunk"):
        augment_in_chunks(x, a, generator(), chunk=0)


# --- plot_examples ---

def test_plot_examples_writes_a_png_without_pyplot(tmp_path):
    path = tmp_path / "figures" / "augment.png"
    code = textwrap.dedent(f"""
        import sys
        import torch
        from nndl.deep.augment import Augmentation, plot_examples
        images = torch.rand(3, 1, 10, 10, generator=torch.Generator().manual_seed(0))
        result = plot_examples(images, Augmentation(shift=2, rotate=10), {str(path)!r}, count=2, copies=2)
        assert result == {str(path)!r}, result
        assert "matplotlib.pyplot" not in sys.modules
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_plot_examples_accepts_flat_images_and_checks_arguments(tmp_path):
    flat = torch.rand(2, 64, generator=generator())
    out = plot_examples(flat, Augmentation(elastic_alpha=8, elastic_sigma=3), tmp_path / "flat.png",
                        count=5, copies=1)
    assert out == str(tmp_path / "flat.png")
    assert (tmp_path / "flat.png").read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ConfigError, match="copies"):
        plot_examples(flat, Augmentation(shift=1), tmp_path / "x.png", copies=0)
    with pytest.raises(InputError):
        plot_examples(torch.rand(2, 63), Augmentation(shift=1), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
