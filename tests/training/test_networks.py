"""StyleGAN2-ADA networks: sizes, shapes, gradients, conditioning, truncation, mixing, resampling."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import cast

import pytest
import torch
import torch.nn.functional as F

from tests.training.conftest import tiny_network
from training.networks import (
    PRESET_RESOLUTIONS,
    Discriminator,
    DiscriminatorBlock,
    EqualizedConv2d,
    EqualizedLinear,
    Generator,
    MinibatchStdLayer,
    NetworkConfig,
    SynthesisBlock,
    SynthesisLayer,
    ToRGB,
    bias_act,
    build_networks,
    conv2d_resample,
    downsample2d,
    make_fir_filter,
    modulated_conv2d,
    preset,
    upfirdn2d,
    upsample2d,
)

PEER = dict(z_dim=512, w_dim=512, mapping_layers=8, channel_max=512, g_channel_base=1024, d_channel_base=2048)


def make_nets(seed: int = 0, **overrides) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    return build_networks(tiny_network(**overrides))


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- parameter counts, from the layer formulas (independent of the code under test) -------------

def _fc(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def _conv(i: int, o: int, k: int, bias: bool = True) -> int:
    return i * o * k * k + (o if bias else 0)


def _widths(resolution: int, base: int, cap: int) -> dict[int, int]:
    return {2 ** k: min(base // 2 ** k, cap) for k in range(2, int(math.log2(resolution)) + 1)}


def expected_g_params(cfg: NetworkConfig) -> int:
    ch = _widths(cfg.resolution, cfg.g_channel_base or cfg.channel_base, cfg.g_channel_max or cfg.channel_max)
    w, hidden = cfg.w_dim, cfg.mapping_width or cfg.w_dim
    embed = w if cfg.c_dim else 0
    n = _fc(cfg.c_dim, embed) if cfg.c_dim else 0                  # label embedding
    sizes = [cfg.z_dim + embed] + [hidden] * (cfg.mapping_layers - 1) + [w]
    n += sum(_fc(a, b) for a, b in zip(sizes, sizes[1:]))          # mapping MLP

    def layer(i: int, o: int) -> int:                              # affine, weight, bias, noise strength
        return _fc(w, i) + i * o * 9 + o + 1

    for r, c in ch.items():
        n += c * 16 if r == 4 else layer(ch[r // 2], c)            # constant input or up-conv
        n += layer(c, c)                                           # conv
        n += _fc(w, c) + c * cfg.img_channels + cfg.img_channels   # ToRGB: affine, 1x1 weight, bias
    return n


def expected_d_params(cfg: NetworkConfig) -> int:
    ch = _widths(cfg.resolution, cfg.d_channel_base or cfg.channel_base, cfg.d_channel_max or cfg.channel_max)
    n = _conv(cfg.img_channels, ch[cfg.resolution], 1)             # fromRGB
    for r in [x for x in ch if x > 4]:
        tmp, out = ch[r], ch[r // 2]
        n += _conv(tmp, tmp, 3) + _conv(tmp, out, 3) + _conv(tmp, out, 1, bias=False)
    c4 = ch[4]
    cmap = (cfg.cmap_dim or c4) if cfg.c_dim else 0
    n += _conv(c4 + cfg.mbstd_channels, c4, 3) + _fc(c4 * 16, c4) + _fc(c4, cmap or 1)
    if cfg.c_dim:                                                  # label mapping: embed + MLP
        n += _fc(cfg.c_dim, cmap) + cfg.mapping_layers * _fc(cmap, cmap)
    return n


def test_parameter_counts_of_a_hand_derived_config():
    # G widths 4:4, 8:2; D widths 8:2, 4:4; z = w = 2; one mapping layer; RGB.
    cfg = NetworkConfig(resolution=8, z_dim=2, w_dim=2, mapping_layers=1, channel_base=16, channel_max=4)
    G, D = build_networks(cfg)
    mapping = 2 * 2 + 2
    block4 = 4 * 16 + (2 * 4 + 4 + 4 * 4 * 9 + 4 + 1) + (2 * 4 + 4 + 3 * 4 + 3)
    block8 = (2 * 4 + 4 + 2 * 4 * 9 + 2 + 1) + (2 * 2 + 2 + 2 * 2 * 9 + 2 + 1) + (2 * 2 + 2 + 3 * 2 + 3)
    assert count(G) == mapping + block4 + block8 == 405
    block8_d = (3 * 2 + 2) + (2 * 2 * 9 + 2) + (2 * 4 * 9 + 4) + 2 * 4
    epilogue = (5 * 4 * 9 + 4) + (4 * 16 * 4 + 4) + (4 + 1)
    assert count(D) == block8_d + epilogue == 579


@pytest.mark.parametrize("resolution", [32, 64, 128])
@pytest.mark.parametrize("c_dim", [0, 5])
def test_parameter_counts_per_preset_match_the_layer_formulas(resolution, c_dim):
    cfg = preset(resolution, c_dim=c_dim)
    G, D = build_networks(cfg)
    assert count(G) == expected_g_params(cfg)
    assert count(D) == expected_d_params(cfg)


def test_mapping_depth_and_width_are_configurable():
    cfg = preset(32, mapping_layers=3, mapping_width=128, c_dim=2, cmap_dim=64)
    G, D = build_networks(cfg)
    assert D.mapping is not None
    assert len(G.mapping.layers) == 3 and G.mapping.layers[0].out_features == 128
    assert len(D.mapping.layers) == 3 and D.mapping.layers[-1].out_features == 64
    assert (count(G), count(D)) == (expected_g_params(cfg), expected_d_params(cfg))


def test_parameter_counts_grow_with_the_preset_resolution():
    g_counts, d_counts = [], []
    for r in (32, 64, 128, 256):
        G, D = build_networks(preset(r))
        g_counts.append(count(G))
        d_counts.append(count(D))
    assert g_counts == sorted(set(g_counts)) and d_counts == sorted(set(d_counts))


def test_peer_benchmark_config_widths_and_counts():
    cfg = preset(64, **PEER)
    assert cfg.g_channels() == {4: 256, 8: 128, 16: 64, 32: 32, 64: 16}
    assert cfg.d_channels() == {64: 32, 32: 64, 16: 128, 8: 256, 4: 512}
    G, D = build_networks(cfg)
    assert G.num_ws == 10
    assert (count(G), count(D)) == (expected_g_params(cfg), expected_d_params(cfg))


def test_preset_widths_follow_channel_base_and_max():
    assert preset(256).g_channels() == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}
    assert preset(1024).channel_base == 32768 and preset(1024).channel_max == 512
    assert preset(32).g_channels()[32] < preset(32).g_channels()[4]


# -- configuration errors ----------------------------------------------------------------------

@pytest.mark.parametrize("resolution", [16, 48, 100, 2048, 0, -64])
def test_preset_rejects_resolutions_outside_32_to_1024(resolution):
    assert PRESET_RESOLUTIONS == (32, 64, 128, 256, 512, 1024)
    with pytest.raises(ValueError, match="resolution must be one of"):
        preset(resolution)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="power of two"):
        NetworkConfig(resolution=24)
    with pytest.raises(ValueError, match="unknown NetworkConfig fields"):
        preset(64, channels=3)
    with pytest.raises(ValueError, match="mapping_layers"):
        preset(64, mapping_layers=0)
    with pytest.raises(ValueError, match="channel base too small"):
        preset(64, g_channel_base=32)


def test_config_round_trips_through_json():
    cfg = preset(128, c_dim=3, conv_clamp=256.0, g_channel_base=4096)
    again = NetworkConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.resolution = 64  # type: ignore[misc]


# -- output shapes ------------------------------------------------------------------------------

@pytest.mark.parametrize(("resolution", "batch"), [(32, 2), (64, 2), (128, 1), (256, 1)])
def test_output_shapes_per_preset(resolution, batch):
    torch.manual_seed(0)
    G, D = build_networks(preset(resolution))
    with torch.no_grad():
        img = G(torch.randn(batch, 512), noise_mode="const")
        assert img.shape == (batch, 3, resolution, resolution)
        assert torch.isfinite(img).all()
        score = D(img)
    assert score.shape == (batch, 1) and torch.isfinite(score).all()


@pytest.mark.slow
def test_1024_preset_builds_and_runs_one_sample():
    cfg = preset(1024)
    torch.manual_seed(0)
    G, D = build_networks(cfg)
    assert (count(G), count(D)) == (expected_g_params(cfg), expected_d_params(cfg))
    with torch.no_grad():
        img = G(torch.randn(1, 512), noise_mode="none")
        assert img.shape == (1, 3, 1024, 1024)
        assert D(img).shape == (1, 1)


def test_grayscale_and_label_shapes():
    G, D = make_nets(img_channels=1, c_dim=3)
    c = F.one_hot(torch.tensor([0, 2]), 3).float()
    img = G(torch.randn(2, 16), c)
    assert img.shape == (2, 1, 16, 16)
    assert D(img, c).shape == (2, 1)


# -- gradients ----------------------------------------------------------------------------------

@pytest.mark.parametrize("c_dim", [0, 4])
def test_gradients_reach_every_parameter(c_dim):
    G, D = make_nets(c_dim=c_dim)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(4, 16, generator=gen)
    c = F.one_hot(torch.arange(4) % 4, 4).float() if c_dim else None
    real = torch.randn(4, 3, 16, 16, generator=gen)
    fake = G(z, c, generator=gen, mix_z=torch.randn(4, 16, generator=gen), mix_cutoff=2)
    loss = F.softplus(D(fake, c)).mean() + F.softplus(-D(real, c)).mean()
    loss.backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_double_backward_for_r1_and_path_length():
    G, D = make_nets()
    real = torch.randn(4, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    grad.square().sum().backward()                       # R1
    for block in cast(list[DiscriminatorBlock], D.blocks):
        for conv in (block.conv0, block.conv1, block.skip):
            assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    ws = G.mapping(torch.randn(4, 16))
    img = G.synthesis(ws, noise_mode="const")
    (gw,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    gw.square().sum(2).mean(1).sqrt().mean().backward()  # path length
    assert cast(SynthesisBlock, G.synthesis.blocks[-1]).conv1.weight.grad is not None


# -- conditioning, truncation, mixing, noise ----------------------------------------------------

def test_labels_change_images_and_scores():
    G, D = make_nets(c_dim=3)
    G.eval()
    z = torch.randn(1, 16).repeat(3, 1)
    c = torch.eye(3)
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        score = D(img[:1].repeat(3, 1, 1, 1), c)
    assert not torch.allclose(img[0], img[1]) and not torch.allclose(img[1], img[2])
    assert score[0] != score[1] and score[1] != score[2]


def test_missing_or_unexpected_labels_raise():
    G, D = make_nets(c_dim=3)
    with pytest.raises(ValueError, match="labels c"):
        G(torch.randn(2, 16))
    with pytest.raises(ValueError, match="labels c"):
        D(torch.randn(2, 3, 16, 16))
    G0, D0 = make_nets()
    with pytest.raises(ValueError, match="c_dim=0"):
        G0(torch.randn(2, 16), torch.eye(2))
    assert G0(torch.randn(2, 16), torch.zeros(2, 0)).shape == (2, 3, 16, 16)


def test_truncation_psi_zero_gives_the_mean_image():
    G, _ = make_nets()
    G.train()
    for _ in range(3):
        G(torch.randn(8, 16), update_w_avg=True)         # move w_avg away from zero
    with torch.no_grad():
        a = G(torch.randn(2, 16), psi=0.0, noise_mode="const")
        b = G(torch.randn(2, 16), psi=0.0, noise_mode="const")
        c = G(torch.randn(2, 16), psi=0.5, noise_mode="const")
    assert torch.allclose(a, b) and torch.allclose(a[0], a[1])
    assert not torch.allclose(c[0], c[1])


def test_truncation_cutoff_only_touches_the_first_ws():
    G, _ = make_nets()
    z = torch.randn(2, 16)
    ws = G.mapping(z, psi=0.0, truncation_cutoff=3)
    w = G.mapping(z)
    assert torch.equal(ws[:, :3], G.mapping.w_avg.expand(2, 3, -1))
    assert torch.equal(ws[:, 3:], w[:, 3:])


def test_w_avg_is_an_ema_updated_only_when_asked():
    G, _ = make_nets(w_avg_beta=0.5)
    z = torch.randn(8, 16)
    G.train()
    G(z)
    assert torch.count_nonzero(G.mapping.w_avg) == 0
    G.eval()
    G(z, update_w_avg=True)
    assert torch.count_nonzero(G.mapping.w_avg) == 0
    G.train()
    G(z, update_w_avg=True)
    w = G.mapping(z)[:, 0]
    assert torch.allclose(G.mapping.w_avg, 0.5 * w.mean(0))


def test_style_mixing_changes_the_output():
    G, _ = make_nets()
    z, z2 = torch.randn(2, 16), torch.randn(2, 16)
    with torch.no_grad():
        plain = G(z, noise_mode="const")
        mixed = G(z, mix_z=z2, mix_cutoff=2, noise_mode="const")
        same = G(z, mix_z=z2, mix_cutoff=G.num_ws, noise_mode="const")
        other = G(z, mix_z=z2, mix_cutoff=0, noise_mode="const")
        per_sample = G(z, mix_z=z2, mix_cutoff=torch.tensor([2, G.num_ws]), noise_mode="const")
        alone = G(z2, noise_mode="const")
    assert not torch.allclose(plain, mixed)
    assert torch.allclose(plain, same, atol=1e-5)
    assert torch.allclose(other, alone, atol=1e-5)
    assert torch.allclose(per_sample[0], mixed[0], atol=1e-5) and torch.allclose(per_sample[1], plain[1], atol=1e-5)
    with pytest.raises(ValueError, match="mix_cutoff"):
        G(z, mix_z=z2)


def test_random_noise_comes_from_the_generator():
    G, _ = make_nets()
    with torch.no_grad():
        for p in G.parameters():
            if p.ndim == 0:          # noise strengths start at zero: make the noise visible
                p.fill_(0.5)
    z = torch.randn(2, 16)

    def run(seed: int) -> torch.Tensor:
        return G(z, noise_mode="random", generator=torch.Generator().manual_seed(seed))

    torch.manual_seed(123)
    a = run(7)
    torch.manual_seed(456)                       # the global RNG must not matter
    assert torch.equal(a, run(7))
    assert not torch.allclose(a, run(8))
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert not torch.allclose(G(z, noise_mode="const"), G(z, noise_mode="none"))
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="fixed")


def test_execution_options_do_not_change_the_maths():
    G, D = make_nets(c_dim=2)
    G2, D2 = make_nets(c_dim=2, fused_modconv=True, channels_last=True)
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    z, c = torch.randn(3, 16), torch.eye(2)[[0, 1, 1]]
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        assert torch.allclose(img, G2(z, c, noise_mode="const"), atol=1e-5)
        assert torch.allclose(D(img, c), D2(img, c), atol=1e-5)


def test_fp16_blocks_run_and_match_fp32(monkeypatch):
    # FP16 blocks switch on only on CUDA; force them on CPU to exercise the mixed-precision path.
    import training.discriminator as discriminator
    import training.generator as generator

    G, D = make_nets(resolution=32, c_dim=3, num_fp16_res=2, conv_clamp=256.0)
    G32, D32 = make_nets(resolution=32, c_dim=3, conv_clamp=256.0)
    G32.load_state_dict(G.state_dict())
    D32.load_state_dict(D.state_dict())
    half = lambda use_fp16, device: torch.float16 if use_fp16 else torch.float32  # noqa: E731
    monkeypatch.setattr(generator, "compute_dtype", half)
    monkeypatch.setattr(discriminator, "compute_dtype", half)
    assert [b.use_fp16 for b in G.synthesis.blocks] == [False, False, True, True]
    assert [b.use_fp16 for b in D.blocks] == [True, True, False]
    z, c = torch.randn(4, 16), torch.eye(3)[[0, 1, 2, 0]]
    img, img32 = G(z, c, noise_mode="const"), G32(z, c, noise_mode="const")
    assert img.dtype == torch.float32
    assert torch.allclose(img, img32, atol=0.05 * img32.abs().max().item())
    score, score32 = D(img32, c), D32(img32, c)
    assert torch.allclose(score, score32, atol=0.05 * score32.abs().max().item())
    (D(img, c).sum() + score.sum()).backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# -- shape errors -------------------------------------------------------------------------------

def test_shape_mismatches_raise_value_error_with_a_message():
    G, D = make_nets()
    with pytest.raises(ValueError, match=r"Generator z: expected shape \(\*, 16\), got \(2, 15\)"):
        G(torch.randn(2, 15))
    with pytest.raises(ValueError, match=r"Discriminator image: expected shape \(\*, 3, 16, 16\), got \(2, 3, 32, 32\)"):
        D(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="SynthesisNetwork ws"):
        G.synthesis(torch.randn(2, G.num_ws + 1, 16))
    with pytest.raises(ValueError, match="SynthesisBlock 8 input"):
        G.synthesis.blocks[1](torch.randn(2, 16, 8, 8), None, torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="Generator mix_z"):
        G(torch.randn(2, 16), mix_z=torch.randn(3, 16), mix_cutoff=1)


# -- layers against reference formulas ----------------------------------------------------------

def test_fast_resampling_matches_upfirdn2d():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    for f in (make_fir_filter(), torch.rand(4, 4)):     # the [1,3,3,1] filter and an asymmetric one
        assert torch.allclose(upsample2d(x, f), upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4), atol=1e-5)
        assert torch.allclose(downsample2d(x, f), upfirdn2d(x, f, down=2, padding=(1, 1, 1, 1)), atol=1e-5)
        for k in (1, 3):
            w = torch.randn(5, 3, k, k)
            p = (k + 1) // 2
            down_ref = upfirdn2d(F.conv2d(x, w, padding=p), f, down=2)
            up_ref = F.conv2d(upfirdn2d(x, f, up=2, padding=(p + 1, p, p + 1, p), gain=4), w.flip([2, 3]))
            assert torch.allclose(conv2d_resample(x, w, f, down=2), down_ref, atol=1e-4)
            assert torch.allclose(conv2d_resample(x, w, f, up=2), up_ref, atol=1e-4)


def test_upfirdn2d_keeps_a_constant_image_constant_inside():
    f = make_fir_filter()
    x = torch.ones(1, 1, 8, 8)
    up = upsample2d(x, f)
    assert up.shape == (1, 1, 16, 16) and torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    down = downsample2d(x, f)
    assert down.shape == (1, 1, 4, 4) and torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    cropped = upfirdn2d(x, f, padding=(-1, -1, -1, -1))         # negative padding crops: 6x6, then 3x3
    assert cropped.shape == (1, 1, 3, 3) and torch.allclose(cropped, torch.ones(1, 1, 3, 3))


def _modconv_reference(x, weight, styles, gain, demodulate, up, f):
    """Per-sample loop: w' = s w (Eq. 1), w'' = w' / sqrt(sum w'^2 + eps) (Eq. 3)."""
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n][None, :, None, None]
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        xn = x[n:n + 1]
        if up == 2:
            p = 2
            xn = upfirdn2d(xn, f, up=2, padding=(p + 1, p, p + 1, p), gain=4)
            out.append(F.conv2d(xn, w.flip([2, 3])) * gain)
        else:
            out.append(F.conv2d(xn, w, padding=w.shape[-1] // 2) * gain)
    return torch.cat(out)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_a_per_sample_reference(fused, up, demodulate):
    torch.manual_seed(0)
    f = make_fir_filter()
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    got = modulated_conv2d(x, weight, styles, weight_gain=0.3, gain=1.7, demodulate=demodulate, up=up,
                           resample_filter=f, fused=fused)
    ref = _modconv_reference(x, weight * 0.3, styles, 1.7, demodulate, up, f)
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_modulated_conv_fp16_prenormalisation_keeps_the_result():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(2, 8, 8, 8), torch.randn(6, 8, 3, 3), 50 * torch.randn(2, 8)
    ref = modulated_conv2d(x, weight, styles, fused=False)
    half = modulated_conv2d(x.half(), weight, styles, fused=False).float()
    assert torch.allclose(half, ref, atol=2e-2, rtol=2e-2)


def test_bias_act_clamp_and_gain():
    x, b = 100 * torch.randn(2, 3, 4, 4), torch.randn(3)
    ref = (F.leaky_relu(x + b[None, :, None, None], 0.2) * math.sqrt(2) * 0.5).clamp(-64, 64)
    assert torch.allclose(bias_act(x, b, act="lrelu", gain=0.5, clamp=64), ref)
    assert torch.allclose(bias_act(x.clone(), b, act="lrelu", gain=0.5, clamp=64, inplace=True), ref)
    with pytest.raises(ValueError, match="act"):
        bias_act(x, b, act="relu")


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


@pytest.mark.parametrize("batch", [2, 40])      # input-scaled and weight-scaled code paths
def test_equalized_linear_matches_its_formula(batch):
    torch.manual_seed(0)
    layer = EqualizedLinear(12, 8, bias_init=0.5, lr_mult=0.01, activation="lrelu")
    assert layer.bias is not None
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(batch, 12)
    ref = _lrelu(F.linear(x, layer.weight * 0.01 / math.sqrt(12), layer.bias * 0.01))
    assert torch.allclose(layer(x), ref, atol=1e-5)
    fresh = EqualizedLinear(12, 8, bias_init=0.5, lr_mult=0.01)
    assert torch.allclose(fresh(torch.zeros(batch, 12)), torch.full((batch, 8), 0.5))   # effective bias


@pytest.mark.parametrize(("batch", "size"), [(1, 16), (4, 2)])  # weight-scaled and output-scaled paths
@pytest.mark.parametrize("down", [1, 2])
def test_equalized_conv_matches_its_formula(batch, size, down):
    torch.manual_seed(0)
    conv = EqualizedConv2d(6, 5, 3, activation="lrelu", down=down, conv_clamp=1.0)
    assert conv.bias is not None
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(batch, 6, size, size)
    pre = F.conv2d(x, conv.weight / math.sqrt(6 * 9), conv.bias, padding=1 if down == 1 else 2)
    if down == 2:
        pre = upfirdn2d(pre, make_fir_filter(), down=2)
    ref = (_lrelu(pre) * 0.5).clamp(-0.5, 0.5)
    assert torch.allclose(conv(x, gain=0.5), ref, atol=1e-5)


@pytest.mark.parametrize("up", [1, 2])
def test_synthesis_layer_matches_its_formula(up):
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 6, w_dim=8, resolution=8, up=up)
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
        layer.bias.normal_()
    x, w = torch.randn(2, 4, 8 // up, 8 // up), torch.randn(2, 8)
    styles = layer.affine(w)
    conv = _modconv_reference(x, layer.weight, styles, 1.0, True, up, make_fir_filter())
    ref = _lrelu(conv + 0.7 * layer.noise_const + layer.bias[None, :, None, None])
    assert torch.allclose(layer(x, w, noise_mode="const"), ref, atol=1e-4)
    rgb = ToRGB(6, 3, w_dim=8)
    s = rgb.affine(w) / math.sqrt(6)
    ref_rgb = _modconv_reference(ref, rgb.weight, s, 1.0, False, 1, None) + rgb.bias[None, :, None, None]
    assert torch.allclose(rgb(ref, w), ref_rgb, atol=1e-4)


def test_minibatch_std_matches_a_direct_computation():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 3, 3)
    y = MinibatchStdLayer(group_size=3)(x)
    assert y.shape == (6, 5, 3, 3) and torch.equal(y[:, :4], x)
    for j in range(6):                                   # sample j is grouped with j +- 2, 4
        group = x[j % 2::2]
        expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(y[j, 4], expected.expand(3, 3), atol=1e-6)
    assert MinibatchStdLayer(group_size=4)(torch.randn(5, 4, 2, 2)).shape == (5, 5, 2, 2)


def test_repr_shows_shapes():
    G, D = build_networks(preset(64, **PEER))
    g, d = repr(G), repr(D)
    assert "256->128, k=3, res=8, up=2" in g and "num_ws=10" in g
    assert "32->64, k=3, down=2" in d and "in=(512, 4, 4)" in d
