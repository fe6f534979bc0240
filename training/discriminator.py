"""The StyleGAN2 residual discriminator with minibatch standard deviation and projection
conditioning (Karras et al. 2019 Fig. 7c; ProGAN §3; Miyato & Koyama 2018). Facts only, written
from the papers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from training.generator import MappingNetwork
from training.layers import EqualizedConv2d, EqualizedLinear, check_shape, compute_dtype

# ---- Residual discriminator (StyleGAN2 Fig. 7c): two 3x3 convs + 1x1 skip, scaled by sqrt(1/2). -

class DiscriminatorBlock(nn.Module):
    """[fromRGB] -> conv 3x3 -> conv 3x3 down 2, plus a 1x1 down-2 skip; sum times sqrt(1/2)."""

    def __init__(
        self,
        in_channels: int,               # input channels (0: first block, reads the image)
        tmp_channels: int,              # channels at this resolution
        out_channels: int,              # channels after downsampling
        *,
        resolution: int,                # input resolution of this block
        img_channels: int,              # image channels (for fromRGB)
        use_fp16: bool = False,         # compute in FP16 when on CUDA (ADA mixed precision)
        channels_last: bool = False,    # run convs in channels_last memory format
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # low-pass taps for downsampling
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
    ) -> None:
        super().__init__()
        self.in_channels, self.tmp_channels, self.out_channels = in_channels, tmp_channels, out_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.use_fp16 = use_fp16
        self.channels_last = channels_last
        self.fromrgb = (EqualizedConv2d(img_channels, tmp_channels, 1, activation="lrelu",
                                        resample_filter=resample_filter, conv_clamp=conv_clamp)
                        if in_channels == 0 else None)
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3, activation="lrelu",
                                     resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, activation="lrelu", down=2,
                                     resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = EqualizedConv2d(tmp_channels, out_channels, 1, bias=False, down=2,
                                    resample_filter=resample_filter, conv_clamp=conv_clamp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        in_ch = self.img_channels if self.fromrgb is not None else self.in_channels
        check_shape(x, (None, in_ch, r, r), f"DiscriminatorBlock {r} input")
        dtype = compute_dtype(self.use_fp16, x.device)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.to(dtype=dtype, memory_format=fmt)
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y.add_(x)

    def extra_repr(self) -> str:
        return (f"{self.in_channels or self.img_channels}->{self.tmp_channels}->{self.out_channels}, "
                f"res={self.resolution}->{self.resolution // 2}, fp16={self.use_fp16}")


# ---- Minibatch standard deviation (ProGAN §3): std over groups of samples as extra channels. ---

class MinibatchStdLayer(nn.Module):
    """Append the mean std-dev over groups of `group_size` samples as `num_channels` feature maps.

    Sample j belongs to group j % (N // G). When N is not a multiple of `group_size`, the
    largest divisor of N below it is used (so odd evaluation batches still work).
    """

    def __init__(
        self,
        group_size: int,                # samples per group (ADA default 4)
        num_channels: int = 1,          # statistics channels appended
    ) -> None:
        super().__init__()
        if group_size < 1 or num_channels < 1:
            raise ValueError(f"MinibatchStdLayer: group_size and num_channels must be >= 1, "
                             f"got {group_size}, {num_channels}")
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, None, None, None), "MinibatchStdLayer input")
        n, c, h, w = x.shape
        if c % self.num_channels:
            raise ValueError(f"MinibatchStdLayer: {c} channels do not split into {self.num_channels} groups")
        g = next(d for d in range(min(self.group_size, n), 0, -1) if n % d == 0)
        f = self.num_channels
        y = x.float().reshape(g, n // g, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)        # variance over the group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])            # (N/G, F): mean std per group
        y = y.reshape(1, n // g, f, 1, 1).expand(g, -1, -1, h, w).reshape(n, f, h, w)
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


# ---- Discriminator epilogue (StyleGAN2 + projection conditioning, Miyato & Koyama 2018). ------

class DiscriminatorEpilogue(nn.Module):
    """4x4 features -> mbstd -> conv -> fc -> score, or a projection onto the label embedding."""

    def __init__(
        self,
        in_channels: int,               # channels at the final resolution
        *,
        cmap_dim: int,                  # label-embedding size (0: unconditional, one score)
        resolution: int = 4,            # final resolution
        mbstd_group: int = 4,           # minibatch-std group size
        mbstd_channels: int = 1,        # minibatch-std channels
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(mbstd_group, mbstd_channels)
        self.conv = EqualizedConv2d(in_channels + mbstd_channels, in_channels, 3, activation="lrelu",
                                    conv_clamp=conv_clamp)
        self.fc = EqualizedLinear(in_channels * resolution * resolution, in_channels, activation="lrelu")
        self.out = EqualizedLinear(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        r = self.resolution
        check_shape(x, (None, self.in_channels, r, r), "DiscriminatorEpilogue input")
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        x = self.conv(self.mbstd(x))
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:
            if cmap is None:
                raise ValueError("DiscriminatorEpilogue: cmap is required when cmap_dim > 0")
            check_shape(cmap, (x.shape[0], self.cmap_dim), "DiscriminatorEpilogue cmap")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1.0 / math.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"in=({self.in_channels}, {self.resolution}, {self.resolution}), cmap_dim={self.cmap_dim}"


class Discriminator(nn.Module):
    """image (N, C, R, R), labels (N, c_dim) -> score (N, 1); residual StyleGAN2 D."""

    def __init__(
        self,
        *,
        c_dim: int,                     # label size (0: unconditional)
        img_resolution: int,            # input resolution R (power of two >= 8)
        img_channels: int,              # input channels
        channels: dict[int, int],       # feature channels per resolution R..4
        mapping_layers: int = 8,        # depth of the label-mapping MLP (when c_dim > 0)
        mapping_lr_mult: float = 0.01,  # learning-rate multiplier of the label mapping
        cmap_dim: int | None = None,    # label-embedding size (None: channels[4])
        mbstd_group: int = 4,           # minibatch-std group size
        mbstd_channels: int = 1,        # minibatch-std channels
        num_fp16_res: int = 0,          # the highest this many resolutions use FP16 on CUDA
        channels_last: bool = False,    # run convs in channels_last memory format
        conv_clamp: float | None = None,  # clamp conv outputs to +-conv_clamp
    ) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.resolutions = [2 ** k for k in range(int(math.log2(img_resolution)), 2, -1)]
        missing = [r for r in self.resolutions + [4] if r not in channels]
        if missing:
            raise ValueError(f"Discriminator: no channel count for resolutions {missing}")
        fp16_from = (max(2 ** (len(self.resolutions) + 3 - num_fp16_res), 8)
                     if num_fp16_res > 0 else None)
        self.blocks = nn.ModuleList([
            DiscriminatorBlock(
                0 if r == img_resolution else channels[r], channels[r], channels[r // 2],
                resolution=r, img_channels=img_channels,
                use_fp16=fp16_from is not None and r >= fp16_from,
                channels_last=channels_last, conv_clamp=conv_clamp)
            for r in self.resolutions
        ])
        self.cmap_dim = (channels[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
        self.mapping = (MappingNetwork(0, c_dim, self.cmap_dim, num_ws=None, num_layers=mapping_layers,
                                       lr_mult=mapping_lr_mult, w_avg_beta=None)
                        if c_dim > 0 else None)
        self.epilogue = DiscriminatorEpilogue(channels[4], cmap_dim=self.cmap_dim, mbstd_group=mbstd_group,
                                              mbstd_channels=mbstd_channels, conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        r = self.img_resolution
        check_shape(img, (None, self.img_channels, r, r), "Discriminator image")
        x = img
        for block in self.blocks:
            x = block(x)
        cmap = None
        if self.mapping is None and c is not None and c.numel() > 0:
            raise ValueError(f"Discriminator: got labels of shape {tuple(c.shape)} but c_dim=0 "
                             "(pass c=None or an (N, 0) tensor)")
        if self.mapping is not None:
            if c is None:
                raise ValueError(f"Discriminator: labels c of shape (N, {self.c_dim}) are required (c_dim > 0)")
            check_shape(c, (img.shape[0], self.c_dim), "Discriminator labels c")
            cmap = self.mapping(None, c)
        return self.epilogue(x, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, in=({self.img_channels}, {self.img_resolution}, {self.img_resolution})"
