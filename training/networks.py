"""StyleGAN2-ADA generator and discriminator, written from the papers in plain PyTorch.

Sources (facts only: architecture, equations, hyperparameters):

* Karras et al. 2019, "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2):
  weight modulation/demodulation (Eq. 1-3), the skip generator and residual discriminator
  (Fig. 7), constant input, per-layer noise and bias after demodulation (Fig. 2).
* Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data" (ADA):
  label conditioning (embedding concatenated with z; projection discriminator), mapping
  lr multiplier 0.01, mixed precision with conv outputs clamped to +-256.
* Karras et al. 2018 (ProGAN): equalized learning rate and minibatch standard deviation;
  Karras et al. 2019 (StyleGAN): mapping network, truncation in W, style mixing, and the
  [1, 3, 3, 1] low-pass filter used around every resampling.

The code builds up from the bottom: `training/layers.py` (shape checks, FIR resampling,
primitive layers, modulated convolution), `training/generator.py` (mapping network, synthesis
layers and blocks, generator), `training/discriminator.py`, and here `NetworkConfig`, `preset()`
and `build_networks()`.

Everything runs on CPU in float32. Blocks flagged for FP16 (`num_fp16_res`) switch to half
precision only on CUDA. No randomness is drawn inside `forward` except per-layer noise in
`noise_mode="random"`, which comes from the `generator` argument (or torch's default
generator when it is None).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypedDict

from training.discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStdLayer
from training.generator import Generator, MappingNetwork, SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGB
from training.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    _channels,
    bias_act,
    check_shape,
    conv2d_resample,
    downsample2d,
    make_fir_filter,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)

__all__ = [
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "EqualizedConv2d",
    "EqualizedLinear",
    "Generator",
    "MappingNetwork",
    "MinibatchStdLayer",
    "NetworkConfig",
    "PRESET_RESOLUTIONS",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGB",
    "bias_act",
    "build_networks",
    "check_shape",
    "conv2d_resample",
    "downsample2d",
    "make_fir_filter",
    "modulated_conv2d",
    "preset",
    "upfirdn2d",
    "upsample2d",
]


# ---- Configuration, presets (widths as in the ADA paper configs) and construction. ------------

PRESET_RESOLUTIONS = (32, 64, 128, 256, 512, 1024)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild G and D (with their state_dicts) from JSON.

    Widths: channels at resolution r = min(channel_base // r, channel_max), for G over
    4..resolution and for D over resolution..4. `g_channel_base`/`g_channel_max` and
    `d_channel_base`/`d_channel_max` override the shared values for one network.

    The peer benchmark configuration (bench; 64x64, z = w = 512, 8 mapping layers,
    G widths 4:256 8:128 16:64 32:32 64:16, D widths 64:32 32:64 16:128 8:256 4:512) is

        preset(64, z_dim=512, w_dim=512, mapping_layers=8, channel_max=512,
               g_channel_base=1024, d_channel_base=2048)

    (1024 // 4 = 256 ... 1024 // 64 = 16 for G; 2048 // 64 = 32 ... 2048 // 4 = 512 for D).
    """

    resolution: int                     # image size R (power of two >= 8; presets: 32..1024)
    z_dim: int = 512                    # latent size
    w_dim: int = 512                    # intermediate latent size
    c_dim: int = 0                      # label size (0: unconditional)
    mapping_layers: int = 8             # mapping MLP depth (also D's label mapping)
    mapping_width: int | None = None    # G mapping hidden width (None: w_dim; D uses cmap_dim)
    mapping_lr_mult: float = 0.01       # mapping learning-rate multiplier
    w_avg_beta: float = 0.995           # EMA decay of the mean w used for truncation
    channel_base: int = 32768           # width numerator: channels(r) = min(base // r, max)
    channel_max: int = 512              # width cap
    g_channel_base: int | None = None   # G-only override of channel_base
    g_channel_max: int | None = None    # G-only override of channel_max
    d_channel_base: int | None = None   # D-only override of channel_base
    d_channel_max: int | None = None    # D-only override of channel_max
    img_channels: int = 3               # image channels
    mbstd_group: int = 4                # minibatch-std group size
    mbstd_channels: int = 1             # minibatch-std channels
    cmap_dim: int | None = None         # D's label-embedding size (None: D's 4x4 width)
    conv_clamp: float | None = None     # clamp conv outputs (ADA uses 256 with FP16)
    num_fp16_res: int = 0               # highest resolutions run in FP16 on CUDA (ADA: 4)
    channels_last: bool = False         # channels_last memory format for the convs (speed only)
    fused_modconv: bool = False         # grouped-conv modulation (speed only, same maths; on CPU
                                        # the non-fused form measured ~1.8x faster at 64x64)

    def __post_init__(self) -> None:
        r = self.resolution
        if not isinstance(r, int) or r < 8 or r & (r - 1):
            raise ValueError(f"NetworkConfig.resolution must be a power of two >= 8, got {r!r}")
        positive = {"w_dim": self.w_dim, "mapping_layers": self.mapping_layers,
                    "img_channels": self.img_channels, "mbstd_group": self.mbstd_group,
                    "mbstd_channels": self.mbstd_channels, "channel_base": self.channel_base,
                    "channel_max": self.channel_max}
        for name in ("mapping_width", "g_channel_base", "g_channel_max", "d_channel_base",
                     "d_channel_max", "cmap_dim"):
            if getattr(self, name) is not None:
                positive[name] = getattr(self, name)
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NetworkConfig.{name} must be a positive int, got {value!r}")
        if self.z_dim < 0 or self.c_dim < 0 or self.z_dim + self.c_dim == 0:
            raise ValueError(f"NetworkConfig: need z_dim >= 0, c_dim >= 0 and z_dim + c_dim > 0, "
                             f"got z_dim={self.z_dim}, c_dim={self.c_dim}")
        if self.num_fp16_res < 0:
            raise ValueError(f"NetworkConfig.num_fp16_res must be >= 0, got {self.num_fp16_res}")
        if self.conv_clamp is not None and self.conv_clamp <= 0:
            raise ValueError(f"NetworkConfig.conv_clamp must be None or > 0, got {self.conv_clamp}")
        for name, table in (("G", self.g_channels()), ("D", self.d_channels())):
            narrow = {res: ch for res, ch in table.items() if ch < 1}
            if narrow:
                raise ValueError(f"NetworkConfig: {name} channel base too small, widths {narrow} "
                                 "(raise channel_base)")

    def g_channels(self) -> dict[int, int]:
        """Generator widths {resolution: channels} for 4..resolution."""
        base = self.channel_base if self.g_channel_base is None else self.g_channel_base
        cap = self.channel_max if self.g_channel_max is None else self.g_channel_max
        return _channels(_resolutions(self.resolution), base, cap)

    def d_channels(self) -> dict[int, int]:
        """Discriminator widths {resolution: channels} for resolution..4."""
        base = self.channel_base if self.d_channel_base is None else self.d_channel_base
        cap = self.channel_max if self.d_channel_max is None else self.d_channel_max
        return _channels(_resolutions(self.resolution)[::-1], base, cap)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"NetworkConfig: unknown keys {unknown}")
        return cls(**data)


def _resolutions(resolution: int) -> list[int]:
    return [2 ** k for k in range(2, int(math.log2(resolution)) + 1)]


# Width defaults per preset. >= 256 follows the ADA paper512/paper1024 configs (32768, 512);
# 128 uses half that base (ADA's paper256/auto setting); 64 and 32 narrow further so that the
# low-resolution presets stay cheap on CPU (the widest layer is 256 channels).
_PRESET_WIDTHS = {
    32: (4096, 256),     # G 4..16: 256, 32: 128
    64: (8192, 256),     # 4..32: 256, 64: 128
    128: (16384, 512),   # 4..32: 512, 64: 256, 128: 128
    256: (32768, 512),   # 4..64: 512, 128: 256, 256: 128
    512: (32768, 512),   # ... 512: 64
    1024: (32768, 512),  # ... 1024: 32
}


def preset(resolution: int, **overrides) -> NetworkConfig:
    """Default `NetworkConfig` for a resolution in PRESET_RESOLUTIONS; keyword overrides win.

    Defaults: z = w = 512, 8 mapping layers with lr multiplier 0.01, minibatch-std group 4,
    no clamp and FP32 (set num_fp16_res=4, conv_clamp=256 for ADA-style GPU training),
    channel base/max from the table above. The peer benchmark networks are
    preset(64, channel_max=512, g_channel_base=1024, d_channel_base=2048); see NetworkConfig.
    """
    if resolution not in _PRESET_WIDTHS:
        raise ValueError(f"preset: resolution must be one of {PRESET_RESOLUTIONS}, got {resolution!r}")
    base, cap = _PRESET_WIDTHS[resolution]
    fields = {f.name for f in dataclasses.fields(NetworkConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"preset: unknown NetworkConfig fields {unknown}")
    values: dict[str, Any] = {"resolution": resolution, "channel_base": base, "channel_max": cap}
    values.update(overrides)
    return NetworkConfig(**values)


class _CommonKwargs(TypedDict):
    """The keyword arguments G and D are both built with."""

    img_resolution: int
    img_channels: int
    conv_clamp: float | None
    num_fp16_res: int
    channels_last: bool


def build_networks(cfg: NetworkConfig) -> tuple[Generator, Discriminator]:
    """Construct (G, D) for `cfg`; parameters are drawn from torch's default generator."""
    common: _CommonKwargs = {"img_resolution": cfg.resolution, "img_channels": cfg.img_channels,
                             "conv_clamp": cfg.conv_clamp, "num_fp16_res": cfg.num_fp16_res,
                             "channels_last": cfg.channels_last}
    G = Generator(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, channels=cfg.g_channels(),
                  mapping_layers=cfg.mapping_layers, mapping_width=cfg.mapping_width,
                  mapping_lr_mult=cfg.mapping_lr_mult, w_avg_beta=cfg.w_avg_beta,
                  fused_modconv=cfg.fused_modconv, **common)
    D = Discriminator(c_dim=cfg.c_dim, channels=cfg.d_channels(), mapping_layers=cfg.mapping_layers,
                      mapping_lr_mult=cfg.mapping_lr_mult, cmap_dim=cfg.cmap_dim,
                      mbstd_group=cfg.mbstd_group, mbstd_channels=cfg.mbstd_channels, **common)
    return G, D
