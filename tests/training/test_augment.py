"""ADA augmentation: identity at p = 0, exact whole-pixel maps, colour algebra, probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from training.augment import AugmentPipe

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
ALL = GEOMETRIC + COLOUR


def only(*names: str, p: float = 1.0, **settings: float) -> AugmentPipe:
    """A pipe with just `names` enabled (multiplier 1 unless given) at overall probability p."""
    multipliers = {name: settings.pop(name, 1.0) if name in names else 0.0 for name in ALL}
    pipe = AugmentPipe(**multipliers, **settings)
    pipe.p.copy_(torch.as_tensor(p))
    return pipe


def images(n: int = 8, size: int = 16, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def binomial_bounds(n: int, probability: float, sigmas: float = 4.5) -> tuple[float, float]:
    sd = math.sqrt(n * probability * (1 - probability))
    return n * probability - sigmas * sd, n * probability + sigmas * sd


# -- identity, shapes, buffer -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_p_zero_returns_the_input_itself(dtype: torch.dtype) -> None:
    x = images().to(dtype)
    out = AugmentPipe()(x, seeded())
    assert out is x and torch.equal(out, images().to(dtype))


def test_p_is_a_float32_buffer_saved_with_the_state_dict() -> None:
    pipe = AugmentPipe()
    assert pipe.p.dtype == torch.float32 and pipe.p.shape == () and float(pipe.p) == 0.0
    pipe.p.copy_(torch.as_tensor(0.375))
    restored = AugmentPipe()
    restored.load_state_dict(pipe.state_dict())
    assert float(restored.p) == 0.375
    assert "p=0.3750" in repr(restored)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_shape_and_dtype_are_kept(dtype: torch.dtype) -> None:
    pipe = only(*ALL)
    x = images(n=4, size=8).to(dtype)
    out = pipe(x, seeded())
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.isfinite(out).all() and not torch.equal(out, x)


def test_non_square_images_are_supported() -> None:
    x = torch.rand(4, 3, 8, 16) * 2 - 1
    out = only(*ALL)(x, seeded())
    assert out.shape == x.shape and torch.isfinite(out).all()


# -- gradients ----------------------------------------------------------------------------------

def test_backward_gives_finite_nonzero_gradients_to_the_images() -> None:
    x = images(n=4, size=8).requires_grad_()
    weights = torch.rand(4, 3, 8, 8, generator=seeded(1))
    (only(*ALL)(x, seeded()) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().sum(dim=(1, 2, 3)) > 0).all()


def test_gradcheck_through_all_transforms() -> None:
    pipe = only(*ALL)
    x = images(n=2, size=6).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: pipe(t, seeded(3)), (x,), eps=1e-6, atol=1e-5)


# -- each transform alone -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_each_transform_alone_changes_images(name: str) -> None:
    x = images(n=16, size=8)
    out = only(name)(x, seeded())
    changed = [not torch.equal(a, b) for a, b in zip(x, out)]
    assert any(changed), f"{name} at p=1 changed none of 16 images"


def test_xflip_alone_mirrors_exactly_or_not_at_all() -> None:
    x = images(n=32)
    out = only("xflip")(x, seeded())
    flipped = [torch.equal(b, a.flip(-1)) for a, b in zip(x, out)]
    kept = [torch.equal(b, a) for a, b in zip(x, out)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 32


def test_rotate90_alone_gives_an_exact_quarter_turn() -> None:
    x = images(n=32)
    out = only("rotate90")(x, seeded())
    turns = []
    for a, b in zip(x, out):
        matches = [k for k in range(4) if torch.equal(b, torch.rot90(a, k, dims=(1, 2)))]
        assert len(matches) == 1
        turns.append(matches[0])
    assert set(turns) == {0, 1, 2, 3}


def mirrored_shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`image` moved by (dy, dx) whole pixels, the uncovered border filled by mirroring."""
    def source(i: int, size: int) -> int:
        return -i - 1 if i < 0 else 2 * size - 1 - i if i >= size else i

    h, w = image.shape[-2:]
    rows = torch.tensor([source(y - dy, h) for y in range(h)])
    cols = torch.tensor([source(x - dx, w) for x in range(w)])
    return image[:, rows][:, :, cols]


def test_xint_alone_is_an_exact_whole_pixel_shift_with_mirrored_borders() -> None:
    reach = 2  # xint_max 0.125 of 16 pixels
    x = images(n=16, size=16)
    out = only("xint")(x, seeded())
    shifts = []
    for a, b in zip(x, out):
        found = [(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)
                 if torch.equal(b, mirrored_shift(a, dy, dx))]
        assert len(found) == 1
        shifts.append(found[0])
    assert len(set(shifts)) > 3


def test_geometric_transforms_reflect_at_the_borders() -> None:
    """A constant image stays constant: the border is mirrored, never filled with black."""
    x = torch.full((8, 3, 16, 16), 0.3)
    out = only(*GEOMETRIC)(x, seeded())
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_brightness_alone_adds_one_normal_offset_per_image() -> None:
    x = images(n=400, size=4)
    offsets = only("brightness")(x, seeded()) - x
    per_image = offsets.mean(dim=(1, 2, 3))
    torch.testing.assert_close(offsets, per_image[:, None, None, None].expand_as(offsets), atol=1e-6, rtol=0)
    assert 0.17 < per_image.std().item() < 0.23  # N(0, 0.2^2): standard error ~0.007
    assert abs(per_image.mean().item()) < 0.04


def test_contrast_alone_scales_by_a_lognormal_factor() -> None:
    x = images(n=400, size=4)
    factors = only("contrast")(x, seeded()) / x
    per_image = factors.median(dim=1).values.flatten(1).median(dim=1).values
    torch.testing.assert_close(factors, per_image[:, None, None, None].expand_as(factors), atol=1e-4, rtol=1e-4)
    assert (per_image > 0).all()
    assert 0.42 < torch.log2(per_image).std().item() < 0.58  # 2^(0.5 N(0, 1))


@pytest.mark.parametrize("names", [("brightness",), ("contrast",), ("lumaflip",), ("hue",), ("saturation",), COLOUR])
def test_colour_transforms_keep_grey_grey(names: tuple[str, ...]) -> None:
    grey = images(n=16, size=8, channels=1).expand(16, 3, 8, 8)
    out = only(*names)(grey, seeded())
    torch.testing.assert_close(out[:, 1:], out[:, :1].expand(16, 2, 8, 8), atol=1e-5, rtol=0)
    if names != ("hue",) and names != ("saturation",):  # those leave grey exactly as it was
        assert not torch.allclose(out, grey)


@pytest.mark.parametrize("name", ["hue", "saturation"])
def test_hue_and_saturation_keep_luma(name: str) -> None:
    x = images(n=16, size=8)
    out = only(name)(x, seeded())
    torch.testing.assert_close(out.mean(dim=1), x.mean(dim=1), atol=1e-5, rtol=0)
    assert (out - x).abs().max() > 0.05


def test_lumaflip_negates_luma_and_keeps_chroma() -> None:
    x = images(n=32, size=8)
    out = only("lumaflip")(x, seeded())
    luma_in, luma_out = x.mean(dim=1, keepdim=True), out.mean(dim=1, keepdim=True)
    flipped = 0
    for a, b, la, lb in zip(x, out, luma_in, luma_out):
        torch.testing.assert_close(b - lb, a - la, atol=1e-5, rtol=0)
        if not torch.equal(a, b):
            torch.testing.assert_close(lb, -la, atol=1e-5, rtol=0)
            flipped += 1
    assert 0 < flipped < 32


# -- randomness ---------------------------------------------------------------------------------

def test_same_seed_same_output_and_no_global_randomness() -> None:
    pipe, x = only(*ALL), images()
    before = torch.get_rng_state()
    first, second = pipe(x, seeded(7)), pipe(x, seeded(7))
    assert torch.equal(first, second)
    assert not torch.equal(first, pipe(x, seeded(8)))
    assert torch.equal(torch.get_rng_state(), before)


def test_xflip_probability_follows_p() -> None:
    """At p = 0.5 xflip is applied to half the images, and an applied xflip mirrors half of
    those (i uniform in {0, 1}), so a quarter of the batch comes out mirrored."""
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(400, 3, 4, 4)
    out = only("xflip", p=0.5)(x, seeded())
    mirrored = sum(torch.equal(b, a.flip(-1)) for a, b in zip(x, out))
    low, high = binomial_bounds(400, 0.25)
    assert low < mirrored < high


def test_multiplier_scales_the_probability() -> None:
    x = images(n=400, size=4)
    out = only("brightness", p=0.6, brightness=0.5)(x, seeded())
    changed = sum(not torch.equal(a, b) for a, b in zip(x, out))
    low, high = binomial_bounds(400, 0.3)
    assert low < changed < high


def test_rotation_is_drawn_twice_so_that_its_overall_probability_is_p() -> None:
    x = images(n=400, size=4)
    out = only("rotate", p=0.5)(x, seeded())
    changed = sum(not torch.equal(a, b) for a, b in zip(x, out))
    low, high = binomial_bounds(400, 0.5)
    assert low < changed < high  # two independent draws at p would give 0.75


# -- refusals and devices -----------------------------------------------------------------------

def test_bad_inputs_and_settings_are_refused() -> None:
    pipe = only(*ALL)
    with pytest.raises(ValueError, match="float"):
        pipe(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected shape"):
        pipe(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="3 channels"):
        pipe(torch.zeros(2, 1, 8, 8))
    assert only(*GEOMETRIC)(torch.zeros(2, 1, 8, 8), seeded()).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="hue"):
        AugmentPipe(hue=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_accepts_float16() -> None:
    pipe, x = only(*ALL), images(n=4, size=16)
    on_cpu = pipe(x, seeded(5))
    on_gpu = pipe.cuda()(x.cuda(), seeded(5))
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-5, rtol=1e-5)
    half = pipe(x.cuda().half(), seeded(5))
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float().cpu(), on_cpu, atol=1e-2, rtol=1e-2)
