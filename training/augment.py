"""Adaptive discriminator augmentation (ADA): the differentiable 'bgc' pipeline, in plain PyTorch.

Written from Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data",
Section 2 and Appendix B (facts only: which transforms, in which order, with which parameter
distributions). Each transform is applied to each image independently with probability
p x its multiplier, where p is the overall strength the training loop adapts.

Geometric ('blit' then 'geom'), composed into one affine matrix per image:

* xflip: with i drawn uniformly from {0, 1}, mirror horizontally when i = 1 (so at p = 1 half the
  images are mirrored, which keeps the augmentation non-leaking).
* rotate90: rotate by i x 90 degrees, i uniform in {0, 1, 2, 3}.
* xint: integer translation, each axis uniform in [-xint_max, xint_max] of the image size,
  rounded to whole pixels.
* scale: isotropic scaling by 2^(scale_std x N(0, 1)), i.e. lognormal with sigma = scale_std ln 2.
* rotate: arbitrary rotation, uniform in [-pi, pi] x rotate_max. It is drawn twice, before and
  after the anisotropic scaling, each time with probability 1 - sqrt(1 - p x rotate), so that the
  chance of at least one rotation is p x rotate.
* aniso: scale x by s and y by 1/s, s = 2^(aniso_std x N(0, 1)).
* xfrac: fractional translation, each axis N(0, xfrac_std^2) of the image size.

Colour ('color'), composed into one 4x4 matrix per image acting on homogeneous RGB; images are
in [-1, 1], so 0 is mid-grey; the luma axis is v = (1, 1, 1) / sqrt(3):

* brightness: add b ~ N(0, brightness_std^2) to every channel.
* contrast: multiply by 2^(contrast_std x N(0, 1)).
* lumaflip: with i uniform in {0, 1}, reflect along the luma axis (I - 2 v v^T) when i = 1.
* hue: rotate around the luma axis by an angle uniform in [-pi, pi] x hue_max.
* saturation: scale the part orthogonal to the luma axis by 2^(saturation_std x N(0, 1)).

Resampling: the combined geometric matrix maps each output pixel centre to a source position,
read with bilinear interpolation from the image mirrored at its borders (symmetric reflection).
Whole-pixel maps (flips, quarter turns, integer shifts) read source pixels exactly. The paper
resamples through a 2x-upsampled image with a wavelet filter to limit blur and aliasing; this
module uses plain bilinear interpolation, which is a little softer for fractional transforms.
Both real and generated images pass through the same pipeline, so the difference does not leak.

Randomness comes only from the `generator` argument of `forward` (torch's default CPU generator
when it is None); parameters are drawn on the generator's device and moved to the images'.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from training.layers import check_shape

__all__ = ["AugmentPipe"]

_LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3.0)
# Quarter turns from lookup tables: cos/sin of k * 90 degrees, exactly 0 or +-1.
_COS90 = torch.tensor([1.0, 0.0, -1.0, 0.0])
_SIN90 = torch.tensor([0.0, 1.0, 0.0, -1.0])


class _Draws:
    """Per-image random numbers from one generator, returned on the images' device and dtype."""

    def __init__(self, n: int, generator: torch.Generator | None, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.n, self.generator, self.device, self.dtype = n, generator, device, dtype
        self._source = generator.device if generator is not None else torch.device("cpu")

    def uniform(self, *shape: int) -> torch.Tensor:
        """U[0, 1), shape [n, *shape]."""
        values = torch.rand(self.n, *shape, generator=self.generator, device=self._source)
        return values.to(self.device, self.dtype)

    def normal(self, *shape: int) -> torch.Tensor:
        """N(0, 1), shape [n, *shape]."""
        values = torch.randn(self.n, *shape, generator=self.generator, device=self._source)
        return values.to(self.device, self.dtype)

    def chosen(self, probability: float) -> torch.Tensor:
        """Which images get a transform: bool [n], each True with `probability`."""
        return self.uniform() < probability

    def integers(self, high: int) -> torch.Tensor:
        """Uniform in {0, ..., high - 1}, shape [n], as floats."""
        return torch.floor(self.uniform() * high).clamp(max=high - 1)

    def identity(self, size: int) -> torch.Tensor:
        """One identity matrix per image, [n, size, size], to compose transforms onto."""
        return torch.eye(size, device=self.device, dtype=self.dtype).repeat(self.n, 1, 1)


# ---- Matrices: [n, 3, 3] in centred pixel coordinates, [n, 4, 4] in homogeneous RGB. ----------

def _eye(n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(size, device=like.device, dtype=like.dtype).expand(n, size, size)


def _where(mask: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """The transform for chosen images, the exact identity for the others."""
    return torch.where(mask[:, None, None], matrix, _eye(len(mask), matrix.shape[-1], matrix))


def _affine(a: torch.Tensor, b: torch.Tensor, tx: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
            ty: torch.Tensor) -> torch.Tensor:
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [torch.stack([a, b, tx], -1), torch.stack([c, d, ty], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(sx)
    return _affine(sx, zero, zero, zero, sy, zero)


def _rotate2d(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(cos)
    return _affine(cos, -sin, zero, sin, cos, zero)


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    return _affine(one, zero, tx, zero, one, ty)


def _translate3d(t: torch.Tensor) -> torch.Tensor:
    matrix = _eye(len(t), 4, t).clone()
    matrix[:, :3, 3] = t[:, None]
    return matrix


def _scale3d(s: torch.Tensor) -> torch.Tensor:
    one = torch.ones_like(s)
    return torch.diag_embed(torch.stack([s, s, s, one], -1))


def _luma_outer(like: torch.Tensor) -> torch.Tensor:
    v = _LUMA.to(like.device, like.dtype)
    return torch.outer(v, v)


def _rotate_around_luma(theta: torch.Tensor) -> torch.Tensor:
    """Rodrigues' rotation about v: cos I + sin [v]x + (1 - cos) v v^T (on the RGB block)."""
    v = _LUMA.to(theta.device, theta.dtype)
    cross = torch.zeros(4, 4, device=theta.device, dtype=theta.dtype)
    cross[0, 1], cross[0, 2], cross[1, 2] = -v[2], v[1], -v[0]
    cross = cross - cross.T
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    rgb = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], device=theta.device, dtype=theta.dtype))
    unit = torch.zeros(4, 4, device=theta.device, dtype=theta.dtype)
    unit[3, 3] = 1.0
    return cos * rgb + sin * cross + (1 - cos) * _luma_outer(theta) + unit


def _saturate(s: torch.Tensor) -> torch.Tensor:
    vv = _luma_outer(s)
    return vv + (_eye(len(s), 4, s) - vv) * s[:, None, None]


# ---- Resampling with symmetric reflection at the borders. -------------------------------------

def _reflect(coords: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror positions into [0, size - 1]; the mirror lies half a pixel outside the edge."""
    folded = torch.remainder(coords + 0.5, 2 * size)
    folded = torch.where(folded >= size, 2 * size - folded, folded) - 0.5
    return folded.clamp(0, size - 1)


def _resample(images: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Output pixel (x, y) takes the source value at inverse @ (x - cx, y - cy, 1) + (cx, cy)."""
    n, c, h, w = images.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(h, device=images.device, dtype=images.dtype),
                            torch.arange(w, device=images.device, dtype=images.dtype), indexing="ij")
    centred = torch.stack([xs - cx, ys - cy, torch.ones_like(xs)], -1).reshape(1, h * w, 3)
    source = centred @ inverse[:, :2, :].transpose(1, 2)  # [n, h*w, 2]
    sx, sy = _reflect(source[..., 0] + cx, w), _reflect(source[..., 1] + cy, h)
    x0, y0 = torch.floor(sx), torch.floor(sy)
    wx, wy = (sx - x0)[:, None], (sy - y0)[:, None]
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    flat = images.reshape(n, c, h * w)

    def tap(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        index = (yi * w + xi).long()[:, None].expand(n, c, h * w)
        return flat.gather(2, index)

    top = tap(y0, x0) * (1 - wx) + tap(y0, x1) * wx
    bottom = tap(y1, x0) * (1 - wx) + tap(y1, x1) * wx
    return (top * (1 - wy) + bottom * wy).reshape(n, c, h, w)


# ---- The pipeline. ----------------------------------------------------------------------------

class AugmentPipe(nn.Module):
    """ADA augmentations applied to both real and generated images before the discriminator.

    Multipliers scale the overall probability `p` per transform (0 disables it). `p` is a
    buffer (saved with the state_dict) that the training loop sets with `pipe.p.copy_(...)`.
    """

    p: torch.Tensor                     # buffer: overall augmentation probability
    # Per-transform multipliers and parameter ranges, set from the constructor arguments.
    xflip: float
    rotate90: float
    xint: float
    scale: float
    rotate: float
    aniso: float
    xfrac: float
    brightness: float
    contrast: float
    lumaflip: float
    hue: float
    saturation: float
    xint_max: float
    scale_std: float
    rotate_max: float
    aniso_std: float
    xfrac_std: float
    brightness_std: float
    contrast_std: float
    hue_max: float
    saturation_std: float

    def __init__(self, *, xflip: float = 1, rotate90: float = 1, xint: float = 1, scale: float = 1,
                 rotate: float = 1, aniso: float = 1, xfrac: float = 1, brightness: float = 1,
                 contrast: float = 1, lumaflip: float = 1, hue: float = 1, saturation: float = 1,
                 xint_max: float = 0.125, scale_std: float = 0.2, rotate_max: float = 1.0,
                 aniso_std: float = 0.2, xfrac_std: float = 0.125, brightness_std: float = 0.2,
                 contrast_std: float = 0.5, hue_max: float = 1.0, saturation_std: float = 1.0) -> None:
        super().__init__()
        settings = dict(xflip=xflip, rotate90=rotate90, xint=xint, scale=scale, rotate=rotate,
                        aniso=aniso, xfrac=xfrac, brightness=brightness, contrast=contrast,
                        lumaflip=lumaflip, hue=hue, saturation=saturation, xint_max=xint_max,
                        scale_std=scale_std, rotate_max=rotate_max, aniso_std=aniso_std,
                        xfrac_std=xfrac_std, brightness_std=brightness_std,
                        contrast_std=contrast_std, hue_max=hue_max, saturation_std=saturation_std)
        for name, value in settings.items():
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"AugmentPipe.{name} must be a finite number >= 0, got {value!r}")
            setattr(self, name, float(value))
        self.register_buffer("p", torch.zeros([]))

    def extra_repr(self) -> str:
        enabled = [name for name in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                                     "brightness", "contrast", "lumaflip", "hue", "saturation")
                   if getattr(self, name) > 0]
        return f"p={float(self.p):.4f}, transforms={','.join(enabled) or 'none'}"

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch [N, C, H, W]; at p == 0 the input itself is returned."""
        check_shape(images, (None, None, None, None), "AugmentPipe images")
        if not images.is_floating_point():
            raise ValueError(f"AugmentPipe images: expected a float tensor, got {images.dtype}")
        p = float(self.p)
        if p == 0:
            return images
        dtype = torch.promote_types(images.dtype, torch.float32)
        x = images.to(dtype)
        draws = _Draws(len(x), generator, x.device, dtype)
        if any(getattr(self, t) > 0 for t in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")):
            x = _resample(x, self._geometric(p, draws, x.shape[-1], x.shape[-2]))
        if any(getattr(self, t) > 0 for t in ("brightness", "contrast", "lumaflip", "hue", "saturation")):
            if x.shape[1] != 3:
                raise ValueError(f"AugmentPipe colour transforms need 3 channels, got {x.shape[1]}")
            colour = self._colour(p, draws)
            n, c, h, w = x.shape
            flat = colour[:, :3, :3] @ x.reshape(n, c, h * w) + colour[:, :3, 3:]
            x = flat.reshape(n, c, h, w)
        return x.to(images.dtype)

    def _geometric(self, p: float, draws: _Draws, width: int, height: int) -> torch.Tensor:
        """Inverse of the composed transform (output -> source), in centred pixel coordinates."""
        inverse = draws.identity(3)
        if self.xflip > 0:
            i = draws.integers(2)
            inverse = inverse @ _where(draws.chosen(p * self.xflip), _scale2d(1 - 2 * i, torch.ones_like(i)))
        if self.rotate90 > 0:
            i = draws.integers(4).long()
            cos, sin = _COS90.to(inverse)[i], _SIN90.to(inverse)[i]
            inverse = inverse @ _where(draws.chosen(p * self.rotate90), _rotate2d(cos, -sin))
        if self.xint > 0:
            t = (draws.uniform(2) * 2 - 1) * self.xint_max
            tx, ty = torch.round(t[:, 0] * width), torch.round(t[:, 1] * height)
            inverse = inverse @ _where(draws.chosen(p * self.xint), _translate2d(-tx, -ty))
        if self.scale > 0:
            s = torch.exp2(draws.normal() * self.scale_std)
            inverse = inverse @ _where(draws.chosen(p * self.scale), _scale2d(1 / s, 1 / s))
        p_rotate = 1 - math.sqrt(1 - min(p * self.rotate, 1.0))
        if self.rotate > 0:
            inverse = inverse @ self._rotation(p_rotate, draws)
        if self.aniso > 0:
            s = torch.exp2(draws.normal() * self.aniso_std)
            inverse = inverse @ _where(draws.chosen(p * self.aniso), _scale2d(1 / s, s))
        if self.rotate > 0:
            inverse = inverse @ self._rotation(p_rotate, draws)
        if self.xfrac > 0:
            t = draws.normal(2) * self.xfrac_std
            tx, ty = t[:, 0] * width, t[:, 1] * height
            inverse = inverse @ _where(draws.chosen(p * self.xfrac), _translate2d(-tx, -ty))
        return inverse

    def _rotation(self, probability: float, draws: _Draws) -> torch.Tensor:
        theta = (draws.uniform() * 2 - 1) * math.pi * self.rotate_max
        return _where(draws.chosen(probability), _rotate2d(torch.cos(-theta), torch.sin(-theta)))

    def _colour(self, p: float, draws: _Draws) -> torch.Tensor:
        """The composed colour transform (each new one applied after the previous ones)."""
        colour = draws.identity(4)
        if self.brightness > 0:
            b = draws.normal() * self.brightness_std
            colour = _where(draws.chosen(p * self.brightness), _translate3d(b)) @ colour
        if self.contrast > 0:
            c = torch.exp2(draws.normal() * self.contrast_std)
            colour = _where(draws.chosen(p * self.contrast), _scale3d(c)) @ colour
        if self.lumaflip > 0:
            i = draws.integers(2)
            flip = _eye(draws.n, 4, i) - 2 * _luma_outer(i) * i[:, None, None]
            colour = _where(draws.chosen(p * self.lumaflip), flip) @ colour
        if self.hue > 0:
            theta = (draws.uniform() * 2 - 1) * math.pi * self.hue_max
            colour = _where(draws.chosen(p * self.hue), _rotate_around_luma(theta)) @ colour
        if self.saturation > 0:
            s = torch.exp2(draws.normal() * self.saturation_std)
            colour = _where(draws.chosen(p * self.saturation), _saturate(s)) @ colour
        return colour
