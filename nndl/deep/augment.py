"""Data augmentation of MNIST images on the fly, on whatever device the images are on.

Chapter 6 of the book expands the training set once, by shifting every image
one pixel in each of four directions (``nndl expand``). This module draws
fresh distortions every epoch instead, so a network never sees the same
image twice. Three transformations, all applied in one bilinear resampling
(``torch.nn.functional.grid_sample``; whatever comes in from outside the
image is background, 0):

rotation
    about the centre of the image, by an angle drawn uniformly in
    [-rotate, rotate] degrees per image; positive angles turn the digit
    anticlockwise as it is displayed (row 0 at the top). A few degrees to
    about 15 keep digits readable (a 6 rotated too far becomes a 9).
shift
    a translation drawn uniformly in [-shift, shift] pixels along each axis,
    per image (not rounded: fractional shifts interpolate). 1 to 3 pixels is
    typical on 28x28 digits; an integer shift moves the content by exactly
    that many pixels (to rounding: about 1e-6 in float32 on 28x28, from
    grid_sample's own arithmetic).
elastic distortion
    Simard, Steinkraus & Platt, "Best practices for convolutional neural
    networks applied to visual document analysis", ICDAR 2003: a random
    displacement field whose components are uniform in [-1, 1], independently
    per pixel, smoothed by a Gaussian of standard deviation ``sigma`` pixels
    and multiplied by ``alpha`` pixels. The pixel at (x, y) of the result
    takes the value at (x + dx, y + dy). Simard et al. used alpha 34, sigma 4
    on 28x28 digits (alone); with shifts and rotations, milder values
    (alpha about 8-12, sigma 3-4) are common. A small sigma makes the field
    look like noise; a large one makes it an almost rigid shift.

The order, per image, is: rotation, then shift, then the elastic
displacement. A result pixel at centred pixel coordinates ``p`` (relative to
the image centre, x to the right, y down) reads the source at::

    R(-angle) (p + d(p) - s)

where ``s`` is the shift and ``d`` the elastic field. Pixel units become
grid_sample's normalised units (``align_corners=False``) by a factor 2/W
along x and 2/H along y.

Randomness comes only from an explicit ``torch.Generator`` living on the
images' device, so the same generator state gives the same images. For a
batch of n images of H x W pixels ``augment`` draws, in this order and only
for the transformations that are on: the n angles (``torch.rand(n)``), the n
shifts (``torch.rand(n, 2)``, columns x then y), the elastic noise
(``torch.rand(n, 2, H, W)``, channels dx then dy).

Typical use, once per epoch::

    generator = torch.Generator(device=images.device).manual_seed(seed)
    augmentation = Augmentation(shift=2, rotate=10, elastic_alpha=8, elastic_sigma=3)
    for epoch in range(epochs):
        epoch_images = augment_in_chunks(images, augmentation, generator)
        ...
"""

import math
from dataclasses import dataclass, fields

from nndl.deep._torch import F, torch
from nndl.errors import ConfigError, InputError

__all__ = ["Augmentation", "gaussian_kernel", "elastic_field", "augment", "augment_in_chunks",
           "plot_examples"]

#: field name -> (lower bound, lower bound allowed, upper bound, upper bound allowed, unit)
_LIMITS = {
    "shift": (0.0, True, 14.0, False, "pixels"),
    "rotate": (0.0, True, 180.0, True, "degrees"),
    "elastic_alpha": (0.0, True, 100.0, True, "pixels"),
    "elastic_sigma": (0.0, False, 28.0, True, "pixels"),
}


def _range_text(low, low_in, high, high_in):
    return f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training image, drawn afresh every epoch.

    Attributes
    ----------
    shift : float
        Largest shift in pixels, drawn uniformly in [-shift, shift] per axis
        per image; in [0, 14). 0 = no shift.
    rotate : float
        Largest rotation in degrees, drawn uniformly in [-rotate, rotate] per
        image; in [0, 180]. 0 = no rotation.
    elastic_alpha : float
        Scale of the elastic displacement in pixels; in [0, 100]. 0 = no
        elastic distortion.
    elastic_sigma : float
        Standard deviation in pixels of the Gaussian smoothing the
        displacement field; in (0, 28]. Checked even when elastic_alpha is 0.

    Raises
    ------
    ConfigError
        For a value that is not a finite number in its range; the message
        names the field and the range.
    """

    shift: float = 0.0
    rotate: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0

    def __post_init__(self):
        for name, (low, low_in, high, high_in, unit) in _LIMITS.items():
            value = getattr(self, name)
            allowed = f"augmentation {name} must be a number in {_range_text(low, low_in, high, high_in)} {unit}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{allowed}, got {value!r}")
            value = float(value)
            if (not math.isfinite(value) or value < low or (value == low and not low_in)
                    or value > high or (value == high and not high_in)):
                raise ConfigError(f"{allowed}, got {value:g}")
            object.__setattr__(self, name, value)

    @property
    def active(self) -> bool:
        """Whether any transformation is on (False: ``augment`` returns its input)."""
        return self.shift > 0 or self.rotate > 0 or self.elastic_alpha > 0

    def to_dict(self) -> dict:
        """The four fields as a dict of floats (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Augmentation":
        """The inverse of ``to_dict``; missing keys take their defaults.

        Raises
        ------
        ConfigError
            If ``data`` is not a dict, has keys that are not fields, or has
            a bad value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"augmentation settings must be a dict, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ConfigError(f"unknown augmentation setting(s) {', '.join(unknown)}; "
                              f"expected some of {', '.join(known)}")
        return cls(**data)

    def describe(self) -> str:
        """One line for titles and logs, e.g. "shifts up to 2 px, rotations up to 10°", or "none"."""
        parts = []
        if self.shift > 0:
            parts.append(f"shifts up to {self.shift:g} px")
        if self.rotate > 0:
            parts.append(f"rotations up to {self.rotate:g}°")
        if self.elastic_alpha > 0:
            parts.append(f"elastic (alpha {self.elastic_alpha:g}, sigma {self.elastic_sigma:g})")
        return ", ".join(parts) if parts else "none"


def _check_sigma(sigma):
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise ConfigError(f"sigma must be a finite number > 0 pixels, got {sigma!r}")


def gaussian_kernel(sigma: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """1-d normalised Gaussian, radius ceil(3 sigma) (so odd length), sums to 1.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    tensor (2 * ceil(3 sigma) + 1,) of ``dtype`` on ``device``
        exp(-k^2 / (2 sigma^2)) for k = -r..r, divided by its sum.
    """
    _check_sigma(sigma)
    radius = math.ceil(3 * sigma)
    k = torch.arange(-radius, radius + 1, device=device, dtype=torch.float64)
    kernel = torch.exp(-(k * k) / (2.0 * sigma * sigma))
    return (kernel / kernel.sum()).to(dtype)


def _check_size(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def elastic_field(n: int, height: int, width: int, alpha: float, sigma: float, generator: torch.Generator,
                  *, device=None, dtype=torch.float32) -> torch.Tensor:
    """A random elastic displacement field (Simard et al. 2003), in pixels.

    Draws ``torch.rand(n, 2, height, width)`` from ``generator`` (always, even
    when alpha is 0, so the generator advances by the same amount), maps it
    to uniform noise in [-1, 1], smooths each of the 2n planes separably (rows,
    then columns) with ``gaussian_kernel(sigma)`` and multiplies by ``alpha``.
    The smoothing pads with zeros: near the border the field tapers off,
    where MNIST images are background anyway; zero padding, unlike
    reflection, works for kernels longer than the image.

    Parameters
    ----------
    n, height, width : int
    alpha : float
        Scale in pixels, >= 0 (0 gives a field of zeros).
    sigma : float
        Standard deviation of the smoothing Gaussian in pixels, > 0.
    generator : torch.Generator
        On ``device``.
    device : torch.device or str, optional
        Defaults to the generator's device.
    dtype : torch floating dtype

    Returns
    -------
    tensor (n, height, width, 2) of ``dtype`` on ``device``
        ``[..., 0]`` is dx (along the width), ``[..., 1]`` is dy (down the
        height).
    """
    _check_size(n, "n", 0)
    _check_size(height, "height", 1)
    _check_size(width, "width", 1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ConfigError(f"alpha must be a finite number >= 0 pixels, got {alpha!r}")
    _check_sigma(sigma)
    if device is None:
        device = generator.device
    noise = torch.rand(n, 2, height, width, generator=generator, device=device, dtype=dtype) * 2 - 1
    kernel = gaussian_kernel(sigma, device=device, dtype=dtype)
    radius = (kernel.numel() - 1) // 2
    planes = noise.reshape(n * 2, 1, height, width)
    planes = F.conv2d(planes, kernel.view(1, 1, 1, -1), padding=(0, radius))     # along each row
    planes = F.conv2d(planes, kernel.view(1, 1, -1, 1), padding=(radius, 0))     # along each column
    field = planes.reshape(n, 2, height, width).permute(0, 2, 3, 1) * alpha
    return field.contiguous()


def _check_images(images):
    if not isinstance(images, torch.Tensor):
        raise InputError(f"images must be a torch tensor (n, 1, H, W), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 1:
        raise InputError(f"images must have shape (n, 1, H, W) (one channel), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise InputError(f"images must be floating point with values in [0, 1], got {images.dtype}")


def _same_device(a, b):
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _check_generator(generator, images):
    if not isinstance(generator, torch.Generator):
        raise InputError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not _same_device(generator.device, images.device):
        raise InputError(f"the generator is on {generator.device} but the images are on {images.device}: "
                         f"create it with torch.Generator(device=images.device)")


def _transform(images, angles_deg=None, shifts_xy=None, displacement=None):
    """Resample ``images`` once: rotation, then shift, then displacement, with explicit parameters.

    Parameters
    ----------
    images : tensor (n, 1, H, W), float32 or float64
    angles_deg : tensor (n,), optional
        Anticlockwise rotation (as displayed) about the image centre, in degrees.
    shifts_xy : tensor (n, 2), optional
        Shift in pixels: column 0 to the right, column 1 down.
    displacement : tensor (n, H, W, 2), optional
        Elastic displacement in pixels (dx, dy): output pixel p reads the
        (rotated and shifted) image at p + displacement[p].

    Returns
    -------
    tensor (n, 1, H, W)
        Same dtype and device, clamped to [0, 1]; zeros come in from outside.
    """
    n, _, height, width = images.shape
    device, dtype = images.device, images.dtype
    # Centred pixel coordinates of the output pixel centres: x = j + 0.5 - W/2, y = i + 0.5 - H/2.
    xs = torch.arange(width, device=device, dtype=dtype) + (0.5 - width / 2)
    ys = torch.arange(height, device=device, dtype=dtype) + (0.5 - height / 2)
    x = xs.view(1, 1, width).expand(n, height, width)
    y = ys.view(1, height, 1).expand(n, height, width)
    if displacement is not None:                                  # elastic: applied last, undone first
        x = x + displacement[..., 0]
        y = y + displacement[..., 1]
    if shifts_xy is not None:
        x = x - shifts_xy[:, 0].view(n, 1, 1)
        y = y - shifts_xy[:, 1].view(n, 1, 1)
    if angles_deg is not None:
        # An anticlockwise turn on screen (y down) maps (x, y) to (x cos + y sin, -x sin + y cos);
        # the source of an output point is found by the inverse turn.
        theta = torch.deg2rad(angles_deg).view(n, 1, 1)
        cos, sin = torch.cos(theta), torch.sin(theta)
        x, y = cos * x - sin * y, sin * x + cos * y
    grid = torch.stack((x * (2.0 / width), y * (2.0 / height)), dim=-1)   # (n, H, W, 2), align_corners=False
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.clamp_(0.0, 1.0)


def augment(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Randomly rotated, shifted and elastically distorted copies of ``images``.

    Parameters
    ----------
    images : tensor (n, 1, H, W)
        Floating point, values in [0, 1], on any device.
    augmentation : Augmentation
    generator : torch.Generator
        Must live on the images' device (``torch.Generator(device=images.device)``).
        Draws, in order and only for what is on: angles ``rand(n)``, shifts
        ``rand(n, 2)``, elastic noise ``rand(n, 2, H, W)``.

    Returns
    -------
    tensor (n, 1, H, W)
        A new tensor of the same dtype and device, clamped to [0, 1]; one
        bilinear resampling applies rotation about the centre, then shift,
        then the elastic displacement. An inactive augmentation returns
        ``images`` itself (no copy). No gradient flows through the result.

    Raises
    ------
    InputError
        If images is not a floating tensor (n, 1, H, W), or the generator is
        not a torch.Generator on the images' device.
    ConfigError
        If augmentation is not an Augmentation.
    """
    if not isinstance(augmentation, Augmentation):
        raise ConfigError(f"augmentation must be an Augmentation, got {type(augmentation).__name__}")
    _check_images(images)
    _check_generator(generator, images)
    if not augmentation.active:
        return images
    n, _, height, width = images.shape
    if n == 0:
        return images.clone()
    device = images.device
    # float16 / bfloat16 are resampled in float32 (coarse random draws and coordinates otherwise).
    work = images if images.dtype in (torch.float32, torch.float64) else images.float()
    dtype = work.dtype
    with torch.no_grad():
        angles = shifts = displacement = None
        if augmentation.rotate > 0:
            u = torch.rand(n, generator=generator, device=device, dtype=dtype)
            angles = (u * 2 - 1) * augmentation.rotate
        if augmentation.shift > 0:
            u = torch.rand(n, 2, generator=generator, device=device, dtype=dtype)
            shifts = (u * 2 - 1) * augmentation.shift
        if augmentation.elastic_alpha > 0:
            displacement = elastic_field(n, height, width, augmentation.elastic_alpha, augmentation.elastic_sigma,
                                         generator, device=device, dtype=dtype)
        out = _transform(work.detach(), angles, shifts, displacement)
    return out.to(images.dtype)


def augment_in_chunks(images, augmentation, generator, chunk=4096) -> torch.Tensor:
    """``augment`` over a whole training set, ``chunk`` images at a time.

    The chunks are augmented in order, each drawing its own random numbers
    as ``augment`` does, so the result depends on ``chunk`` (with ``chunk >=
    n`` it is exactly ``augment(images, ...)``), and at most one chunk's
    grid and elastic field exist at once (4096 MNIST images: about 13 MB each
    in float32).

    Parameters
    ----------
    images : tensor (n, 1, H, W), floating, values in [0, 1]
    augmentation : Augmentation
    generator : torch.Generator on the images' device
    chunk : int >= 1

    Returns
    -------
    tensor (n, 1, H, W)
        A new tensor like ``images``; ``images`` itself when the augmentation
        is inactive.
    """
    if not isinstance(augmentation, Augmentation):
        raise ConfigError(f"augmentation must be an Augmentation, got {type(augmentation).__name__}")
    _check_images(images)
    _check_generator(generator, images)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"chunk must be an integer >= 1, got {chunk!r}")
    if not augmentation.active:
        return images
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], chunk):
        out[start:start + chunk] = augment(images[start:start + chunk], augmentation, generator)
    return out


def _as_image_tensor(images):
    """images (n, 1, H, W), (n, H, W) or (n, H*W) with a square H*W, as a float tensor (n, 1, H, W)."""
    if not isinstance(images, torch.Tensor):
        try:
            images = torch.as_tensor(images)
        except (TypeError, ValueError, RuntimeError):
            raise InputError("images must be a tensor or array (n, 1, H, W), (n, H, W) or (n, H*W)") from None
    if not images.is_floating_point():
        raise InputError(f"images must be floating point with values in [0, 1], got {images.dtype}")
    if images.dim() == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise InputError(f"flat images must have a square number of pixels, got {images.shape[1]}")
        images = images.reshape(-1, 1, side, side)
    elif images.dim() == 3:
        images = images.unsqueeze(1)
    _check_images(images)
    if images.shape[0] == 0:
        raise InputError("there are no images to plot")
    return images


def plot_examples(images, augmentation, path, *, seed=0, count=8, copies=5) -> str:
    """Draw some images with augmented versions of them to a PNG file.

    Parameters
    ----------
    images : tensor or array (n, 1, H, W), (n, H, W) or (n, H*W), values in [0, 1]
        The first ``count`` are drawn.
    augmentation : Augmentation
    path : str or Path
        The PNG file, written atomically.
    seed : int
        Seeds a generator on the images' device.
    count : int >= 1
        Rows (at most n).
    copies : int >= 1
        Augmented versions per row, after the original.

    Returns
    -------
    str
        ``str(path)``.
    """
    from nndl.figures import new_figure, write_png

    if not isinstance(augmentation, Augmentation):
        raise ConfigError(f"augmentation must be an Augmentation, got {type(augmentation).__name__}")
    for name, value in (("count", count), ("copies", copies)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    images = _as_image_tensor(images)[:count]
    rows = images.shape[0]
    generator = torch.Generator(device=images.device).manual_seed(int(seed))
    versions = [images] + [augment(images, augmentation, generator) for _ in range(copies)]
    pictures = [v.detach().to("cpu", torch.float32).numpy()[:, 0] for v in versions]

    fig = new_figure((1.2 * (copies + 1), 1.2 * rows + 0.6))
    axes = fig.subplots(rows, copies + 1, squeeze=False)
    for r in range(rows):
        for c in range(copies + 1):
            ax = axes[r][c]
            ax.imshow(pictures[c][r], cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("original" if c == 0 else f"augmented {c}", fontsize=8)
    fig.suptitle(f"Augmentation: {augmentation.describe()}", fontsize=10)
    write_png(fig, path)
    return str(path)
