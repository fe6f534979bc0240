"""The StyleGAN2 generator: mapping network (with label embedding and a tracked mean w for
truncation), synthesis layers and blocks with per-layer noise and skip-connected RGB outputs,
and the generator with truncation (psi) and style mixing. Karras et al. 2019 (StyleGAN,
StyleGAN2) and 2020 (ADA); facts only, written from the papers.

No randomness is drawn inside `forward` except per-layer noise in `noise_mode="random"`, which
comes from the `generator` argument (or torch's default generator when it is None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypedDict, cast

import torch
from torch import nn

from training.layers import (
    LRELU_GAIN,
    NOISE_MODES,
    EqualizedLinear,
    _along_dim1,
    _finish_act,
    bias_act,
    check_shape,
    compute_dtype,
    make_fir_filter,
    modulated_conv2d,
    upsample2d,
)

# ---- Mapping network (StyleGAN 8-layer MLP; ADA: label embedding concatenated with z). --------

def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (StyleGAN's input normalisation of z)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (and label c) -> w, broadcast to `num_ws` copies, with truncation towards the mean w.

    `w_avg` is an exponential moving average of w, updated only when asked
    (`update_w_avg=True` in training mode), and is what truncation (psi) pulls towards.
    """

    w_avg: torch.Tensor                 # buffer (only when w_avg_beta is not None)

    def __init__(
        self,
        z_dim: int,                     # latent size (0: labels only, as in the D's label mapping)
        c_dim: int,                     # label size (0: unconditional)
        w_dim: int,                     # output (intermediate latent) size
        *,
        num_ws: int | None,             # copies of w to broadcast (None: return (N, w_dim))
        num_layers: int = 8,            # depth of the MLP
        layer_features: int | None = None,  # hidden width (None: w_dim)
        embed_features: int | None = None,  # label-embedding width (None: w_dim)
        lr_mult: float = 0.01,          # learning-rate multiplier of the MLP layers
        w_avg_beta: float | None = 0.995,  # EMA decay of w_avg (None: do not track)
    ) -> None:
        super().__init__()
        if z_dim + c_dim <= 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        if num_layers < 1:
            raise ValueError(f"MappingNetwork: num_layers must be >= 1, got {num_layers}")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if embed_features is None else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        self.embed = EqualizedLinear(c_dim, embed_features) if c_dim > 0 else None
        widths = [z_dim + (embed_features if c_dim > 0 else 0)] + [layer_features] * (num_layers - 1) + [w_dim]
        self.layers = nn.Sequential(*[
            EqualizedLinear(widths[j], widths[j + 1], lr_mult=lr_mult, activation="lrelu")
            for j in range(num_layers)
        ])
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def embed_latents(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        """The MLP alone: (N, z_dim), (N, c_dim) -> (N, w_dim)."""
        parts = []
        n: int | None = None            # batch size, once z has fixed it
        if self.z_dim > 0:
            if z is None:
                raise ValueError(f"MappingNetwork: z of shape (N, {self.z_dim}) is required")
            check_shape(z, (None, self.z_dim), "MappingNetwork z")
            parts.append(normalize_2nd_moment(z.float()))
            n = z.shape[0]
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"MappingNetwork: labels c of shape (N, {self.c_dim}) are required (c_dim > 0)")
            check_shape(c, (n, self.c_dim), "MappingNetwork labels c")
            assert self.embed is not None  # built whenever c_dim > 0
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        elif c is not None and c.numel() > 0:
            raise ValueError(f"MappingNetwork: got labels of shape {tuple(c.shape)} but c_dim=0 "
                             "(pass c=None or an (N, 0) tensor)")
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self.layers(x)

    @torch.no_grad()
    def track_w_avg(self, w: torch.Tensor) -> None:
        """w_avg <- beta * w_avg + (1 - beta) * mean(w)."""
        if self.w_avg_beta is None:
            raise ValueError("MappingNetwork was built without w_avg tracking (w_avg_beta=None)")
        self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

    def broadcast(self, w: torch.Tensor, *, psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
        """(N, w_dim) -> (N, num_ws, w_dim), truncated towards w_avg: w' = w_avg + psi (w - w_avg)."""
        if self.num_ws is None:
            if psi != 1:
                raise ValueError("MappingNetwork: truncation needs num_ws (this mapping returns plain w)")
            return w
        ws = w[:, None, :].expand(-1, self.num_ws, -1)
        if psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("MappingNetwork: truncation needs w_avg (built with w_avg_beta=None)")
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            if not 0 <= cut <= self.num_ws:
                raise ValueError(f"truncation_cutoff must be in [0, {self.num_ws}], got {truncation_cutoff}")
            trunc = self.w_avg.lerp(ws[:, :cut], psi)
            ws = torch.cat([trunc, ws[:, cut:]], dim=1) if cut < self.num_ws else trunc
        return ws

    def forward(
        self,
        z: torch.Tensor | None,         # (N, z_dim) latents
        c: torch.Tensor | None = None,  # (N, c_dim) labels (one-hot or soft)
        *,
        psi: float = 1.0,               # truncation strength (1: none, 0: every w = w_avg)
        truncation_cutoff: int | None = None,  # truncate only the first this many ws (None: all)
        update_w_avg: bool = False,     # update the w_avg EMA (only in training mode)
    ) -> torch.Tensor:
        w = self.embed_latents(z, c)
        if update_w_avg and self.training:
            self.track_w_avg(w)
        return self.broadcast(w, psi=psi, truncation_cutoff=truncation_cutoff)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"layers={self.num_layers}")


# ---- Synthesis (StyleGAN2 Fig. 2d/7): modulated conv, noise, bias, lrelu; skip-connected RGB. --

class SynthesisLayer(nn.Module):
    """Affine(w) -> styles; modulated/demodulated 3x3 conv (optionally 2x up); noise; bias; lrelu."""

    resample_filter: torch.Tensor       # buffer: 2-D low-pass filter for up=2
    noise_const: torch.Tensor           # buffer (only with use_noise): the "const" noise image

    def __init__(
        self,
        in_channels: int,               # input channels
        out_channels: int,              # output channels
        *,
        w_dim: int,                     # size of w
        resolution: int,                # output resolution (for the constant noise buffer)
        kernel_size: int = 3,           # conv kernel size
        up: int = 1,                    # 1, or 2 to upsample 2x before the conv
        use_noise: bool = True,         # per-pixel noise with a learned strength
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # low-pass taps for up=2
        conv_clamp: float | None = None,  # clamp outputs to +-conv_clamp (None: no clamp)
        fused_modconv: bool = False,    # grouped-conv modulation (see modulated_conv2d)
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or up not in (1, 2):
            raise ValueError(f"SynthesisLayer: need an odd kernel_size and up in (1, 2), got {kernel_size}, {up}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.fused_modconv = fused_modconv
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("resample_filter", make_fir_filter(resample_filter), persistent=False)
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "random",
                generator: torch.Generator | None = None, gain: float = 1.0) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        n = x.shape[0]
        in_res = self.resolution // self.up
        check_shape(x, (n, self.in_channels, in_res, in_res), f"{type(self).__name__} input")
        check_shape(w, (n, self.w_dim), f"{type(self).__name__} w")
        styles = self.affine(w)
        # Fold every constant gain into the demodulation scale, so that after the conv only
        # noise, bias and the activation touch the activations: act_gain * (conv + noise + b).
        act_gain = LRELU_GAIN * gain
        y = modulated_conv2d(x, self.weight, styles, weight_gain=self.weight_gain, gain=act_gain, up=self.up,
                             resample_filter=self.resample_filter, fused=self.fused_modconv)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "const":
                noise = self.noise_const.to(y.dtype)
            else:
                noise = torch.randn([n, 1, self.resolution, self.resolution], generator=generator,
                                    device=y.device, dtype=torch.float32).to(y.dtype)
            y = y.add_(noise * (self.noise_strength.to(y.dtype) * act_gain))
        y = y.add_(_along_dim1(self.bias * act_gain, y))
        return _finish_act(y, "lrelu", None if self.conv_clamp is None else self.conv_clamp * gain)

    def extra_repr(self) -> str:
        k = self.weight.shape[-1]
        return (f"{self.in_channels}->{self.out_channels}, k={k}, res={self.resolution}, up={self.up}, "
                f"noise={self.use_noise}, w_dim={self.w_dim}, fused={self.fused_modconv}")


class ToRGB(nn.Module):
    """Affine(w) -> styles; modulated 1x1 conv without demodulation; bias (StyleGAN2 skip G)."""

    def __init__(
        self,
        in_channels: int,               # feature channels
        out_channels: int,              # image channels
        *,
        w_dim: int,                     # size of w
        conv_clamp: float | None = None,  # clamp outputs to +-conv_clamp (None: no clamp)
        fused_modconv: bool = False,    # grouped-conv modulation (see modulated_conv2d)
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.fused_modconv = fused_modconv
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, self.in_channels, None, None), "ToRGB input")
        check_shape(w, (x.shape[0], self.w_dim), "ToRGB w")
        y = modulated_conv2d(x, self.weight, self.affine(w), weight_gain=self.weight_gain, demodulate=False,
                             fused=self.fused_modconv)
        return bias_act(y, self.bias, clamp=self.conv_clamp, inplace=True)

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, k=1, demodulate=False, w_dim={self.w_dim}"


class _LayerKwargs(TypedDict):
    """The keyword arguments a SynthesisBlock passes to both of its SynthesisLayers."""

    w_dim: int
    resolution: int
    resample_filter: Sequence[float]
    conv_clamp: float | None
    fused_modconv: bool


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: [const | up-conv] + conv, and an RGB output.

    Takes `ws` of shape (N, num_conv + 1, w_dim): one w per conv, plus one for ToRGB (the
    ToRGB w is shared with the next block's first conv, as in StyleGAN2).
    """

    resample_filter: torch.Tensor       # buffer: 2-D low-pass filter for upsampling img

    def __init__(
        self,
        in_channels: int,               # channels from the previous block (0: constant input)
        out_channels: int,              # channels of this block
        *,
        w_dim: int,                     # size of w
        resolution: int,                # output resolution of this block
        img_channels: int,              # image channels of the RGB output
        use_fp16: bool = False,         # compute in FP16 when on CUDA (ADA mixed precision)
        channels_last: bool = False,    # run convs in channels_last memory format
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # low-pass taps for up/downsampling
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
        fused_modconv: bool = False,    # grouped-conv modulation (see modulated_conv2d)
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.use_fp16 = use_fp16
        self.channels_last = channels_last
        self.register_buffer("resample_filter", make_fir_filter(resample_filter), persistent=False)
        layer_kwargs: _LayerKwargs = {"w_dim": w_dim, "resolution": resolution, "resample_filter": resample_filter,
                                      "conv_clamp": conv_clamp, "fused_modconv": fused_modconv}
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.torgb = ToRGB(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                           fused_modconv=fused_modconv)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, *,
                noise_mode: str = "random", generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape(ws, (None, self.num_conv + 1, self.w_dim), f"SynthesisBlock {self.resolution} ws")
        n = ws.shape[0]
        dtype = compute_dtype(self.use_fp16, ws.device)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        half = self.resolution // 2
        if self.conv0 is None:
            x = self.const.to(dtype=dtype)[None].expand(n, -1, -1, -1).contiguous(memory_format=fmt)
            x = self.conv1(x, ws[:, 0], noise_mode=noise_mode, generator=generator)
        else:
            check_shape(x, (n, self.in_channels, half, half), f"SynthesisBlock {self.resolution} input")
            assert x is not None  # check_shape raises on anything but a tensor
            x = x.to(dtype=dtype, memory_format=fmt)
            x = self.conv0(x, ws[:, 0], noise_mode=noise_mode, generator=generator)
            x = self.conv1(x, ws[:, 1], noise_mode=noise_mode, generator=generator)
        y = self.torgb(x, ws[:, -1]).to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if img is None:
            img = y
        else:
            check_shape(img, (n, self.img_channels, half, half), f"SynthesisBlock {self.resolution} img")
            img = upsample2d(img, self.resample_filter).add_(y)
        return x, img

    def extra_repr(self) -> str:
        return (f"{self.in_channels}->{self.out_channels}, res={self.resolution}, "
                f"fp16={self.use_fp16}, channels_last={self.channels_last}")


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, img_channels, R, R), StyleGAN2 skip architecture."""

    def __init__(
        self,
        *,
        w_dim: int,                     # size of w
        img_resolution: int,            # output resolution R (power of two >= 4)
        img_channels: int,              # image channels
        channels: dict[int, int],       # feature channels per resolution 4..R
        num_fp16_res: int = 0,          # the highest this many resolutions use FP16 on CUDA
        channels_last: bool = False,    # run convs in channels_last memory format
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
        fused_modconv: bool = False,    # grouped-conv modulation (see modulated_conv2d)
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.resolutions = [2 ** k for k in range(2, int(math.log2(img_resolution)) + 1)]
        missing = [r for r in self.resolutions if r not in channels]
        if missing:
            raise ValueError(f"SynthesisNetwork: no channel count for resolutions {missing}")
        fp16_from = max(2 ** (len(self.resolutions) + 2 - num_fp16_res), 8) if num_fp16_res > 0 else None
        blocks = []
        for r in self.resolutions:
            blocks.append(SynthesisBlock(
                channels[r // 2] if r > 4 else 0, channels[r], w_dim=w_dim, resolution=r,
                img_channels=img_channels, use_fp16=fp16_from is not None and r >= fp16_from,
                channels_last=channels_last, conv_clamp=conv_clamp, fused_modconv=fused_modconv))
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(b.num_conv for b in blocks) + 1

    def forward(self, ws: torch.Tensor, *, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        check_shape(ws, (None, self.num_ws, self.w_dim), "SynthesisNetwork ws")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x: torch.Tensor | None = None
        img: torch.Tensor | None = None
        idx = 0
        for block in cast(Iterable[SynthesisBlock], self.blocks):
            x, img = block(x, img, ws[:, idx: idx + block.num_conv + 1], noise_mode=noise_mode,
                           generator=generator)
            idx += block.num_conv
        return cast(torch.Tensor, img)  # set by every block; None only without blocks (R < 4)

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, out=({self.img_channels}, {self.img_resolution}, {self.img_resolution})"


# ---- Generator (StyleGAN2): mapping + synthesis; truncation (psi) and style mixing. -----------

class Generator(nn.Module):
    """z, c -> image. See `forward` for truncation, style mixing and the noise options."""

    def __init__(
        self,
        *,
        z_dim: int,                     # latent size
        c_dim: int,                     # label size (0: unconditional)
        w_dim: int,                     # intermediate latent size
        img_resolution: int,            # output resolution
        img_channels: int,              # output channels
        channels: dict[int, int],       # feature channels per resolution 4..R
        mapping_layers: int = 8,        # depth of the mapping MLP
        mapping_width: int | None = None,  # hidden width of the mapping MLP (None: w_dim)
        mapping_lr_mult: float = 0.01,  # learning-rate multiplier of the mapping MLP
        w_avg_beta: float = 0.995,      # EMA decay of the tracked mean w
        num_fp16_res: int = 0,          # the highest this many resolutions use FP16 on CUDA
        channels_last: bool = False,    # run convs in channels_last memory format
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
        fused_modconv: bool = False,    # grouped-conv modulation (see modulated_conv2d)
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, channels=channels,
            num_fp16_res=num_fp16_res, channels_last=channels_last, conv_clamp=conv_clamp,
            fused_modconv=fused_modconv)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, c_dim, w_dim, num_ws=self.num_ws, num_layers=mapping_layers,
            layer_features=mapping_width, lr_mult=mapping_lr_mult, w_avg_beta=w_avg_beta)

    def forward(
        self,
        z: torch.Tensor,                # (N, z_dim) latents
        c: torch.Tensor | None = None,  # (N, c_dim) labels; None when c_dim == 0
        *,
        psi: float = 1.0,               # truncation towards w_avg (1: off, 0: the mean image)
        truncation_cutoff: int | None = None,  # truncate only ws[:, :cutoff] (None: all)
        mix_z: torch.Tensor | None = None,  # (N, z_dim) second latents for style mixing
        mix_cutoff: int | torch.Tensor | None = None,  # ws[:, cutoff:] come from mix_z; int or (N,)
        noise_mode: str = "random",     # "random" (from `generator`), "const" (buffers) or "none"
        generator: torch.Generator | None = None,  # source of the random noise (None: torch default)
        update_w_avg: bool = False,     # update the w_avg EMA from z (training mode only)
    ) -> torch.Tensor:
        """Generate images (N, img_channels, R, R), roughly in [-1, 1].

        Style mixing: with `mix_z`, ws[:, mix_cutoff:] come from mix_z (same labels c), so the
        coarse styles come from z and the fine ones from mix_z. The caller draws the cutoff (an int
        for the batch, or one per sample) from its own generator; nothing random is drawn here
        apart from the noise. Truncation is applied to both latents; w_avg is updated from z only.
        """
        check_shape(z, (None, self.z_dim), "Generator z")
        n = z.shape[0]
        if mix_z is None:
            ws = self.mapping(z, c, psi=psi, truncation_cutoff=truncation_cutoff,
                              update_w_avg=update_w_avg)
        else:
            check_shape(mix_z, (n, self.z_dim), "Generator mix_z")
            if mix_cutoff is None:
                raise ValueError("Generator: style mixing needs mix_cutoff (an int or an (N,) tensor)")
            c2 = None if c is None else torch.cat([c, c])
            w = self.mapping.embed_latents(torch.cat([z, mix_z]), c2)   # one MLP pass for both
            if update_w_avg and self.training:
                self.mapping.track_w_avg(w[:n])
            ws_all = self.mapping.broadcast(w, psi=psi, truncation_cutoff=truncation_cutoff)
            ws = self.mix_styles(ws_all[:n], ws_all[n:], mix_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, generator=generator)

    def mix_styles(self, ws: torch.Tensor, ws_mix: torch.Tensor, cutoff: int | torch.Tensor) -> torch.Tensor:
        """ws[:, :cutoff] from `ws`, the rest from `ws_mix` (cutoff an int or an (N,) tensor)."""
        if isinstance(cutoff, torch.Tensor) and cutoff.ndim == 1:
            check_shape(cutoff, (ws.shape[0],), "Generator mix_cutoff")
            keep = torch.arange(self.num_ws, device=ws.device)[None, :] < cutoff.to(ws.device)[:, None]
            return torch.where(keep[:, :, None], ws, ws_mix)
        cut = int(cutoff)
        if not 0 <= cut <= self.num_ws:
            raise ValueError(f"Generator: mix_cutoff must be in [0, {self.num_ws}], got {cut}")
        return torch.cat([ws[:, :cut], ws_mix[:, cut:]], dim=1)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"out=({self.img_channels}, {self.img_resolution}, {self.img_resolution})")
