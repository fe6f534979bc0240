"""StyleGAN2 building blocks in plain PyTorch: shape checks, FIR resampling, bias + activation,
equalized-learning-rate layers and the modulated convolution.

Written from the papers (facts only): Karras et al. 2018 (ProGAN: equalized learning rate),
2019 (StyleGAN2: modulation/demodulation, Eq. 1-3; the [1, 3, 3, 1] low-pass filter around every
resampling) and 2020 (ADA: conv outputs clamped to +-256 under mixed precision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment at 1 through leaky ReLU
NOISE_MODES = ("random", "const", "none")


# ---- Shape checks: every block validates its inputs and raises ValueError (not assert). -------

def check_shape(tensor: object, expected: Sequence[int | None], what: str) -> None:
    """Raise ValueError unless `tensor` has len(expected) dims and every non-None size matches."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{what}: expected a tensor, got {type(tensor).__name__}")
    shape = tuple(tensor.shape)
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{what}: expected shape {want}, got {shape}")


def compute_dtype(use_fp16: bool, device: torch.device) -> torch.dtype:
    """FP16 for blocks flagged by `num_fp16_res`, on CUDA only; FP32 everywhere else."""
    return torch.float16 if use_fp16 and device.type == "cuda" else torch.float32


def _channels(resolutions: Sequence[int], base: int, cap: int) -> dict[int, int]:
    """Width table: channels at resolution r = min(base // r, cap)."""
    return {r: min(base // r, cap) for r in resolutions}


# ---- FIR resampling (StyleGAN [1,3,3,1] low-pass; upfirdn = upsample, FIR filter, downsample). -

def make_fir_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """Separable 2-D low-pass filter: outer product of `taps`, normalised to sum to 1."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"FIR taps must be a non-empty 1-D sequence, got {list(taps)!r}")
    f2 = torch.outer(f, f)
    return f2 / f2.sum()


def _depthwise(x: torch.Tensor, f: torch.Tensor, *, stride: int, padding: int,
               transpose: bool = False) -> torch.Tensor:
    """Apply the 2-D filter `f` to every channel of `x` with one grouped (depthwise) conv."""
    c = x.shape[1]
    w = f.to(dtype=x.dtype)[None, None].expand(c, 1, *f.shape)
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=c)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=c)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, *, up: int = 1, down: int = 1,
              padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Reference resampler: zero-insertion upsample, pad, FIR filter, keep every `down`-th pixel.

    `f` is a 2-D filter applied as a true convolution (flipped); `padding` is
    (left, right, top, bottom) on the upsampled image and may be negative (crops).
    `gain` multiplies the filter, e.g. `up ** 2` to keep the mean after upsampling.
    Built from reshape, pad and a depthwise conv2d; the layers use faster equivalents
    (`upsample2d`, `downsample2d`, `conv2d_resample`) whose equality the tests check.
    """
    check_shape(x, (None, None, None, None), "upfirdn2d input")
    check_shape(f, (None, None), "upfirdn2d filter")
    if up < 1 or down < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1, got up={up}, down={down}")
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = (int(p) for p in padding)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    return _depthwise(x, f.flip([0, 1]) * gain, stride=down, padding=0)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsample with an even-length FIR filter `f` (gain 4).

    Equals upfirdn2d(x, f, up=2, padding=(p0, p1, p0, p1), gain=4) with p0 = fh // 2,
    p1 = fh // 2 - 1: a stride-2 transposed depthwise conv does the zero insertion and the
    filtering in one go, without materialising the zero-inserted image.
    """
    fh = f.shape[0]
    if fh % 2:
        raise ValueError(f"upsample2d: filter length must be even, got {fh}")
    return _depthwise(x, f * 4, stride=2, padding=(fh - 2) // 2, transpose=True)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x downsample with FIR filter `f`: upfirdn2d(x, f, down=2, padding=(p,)*4), p = fh // 2 - 1."""
    p = (f.shape[0] - 2) // 2
    return _depthwise(x, f.flip([0, 1]), stride=2, padding=p)


def conv2d_resample(x: torch.Tensor, weight: torch.Tensor, f: torch.Tensor, *, up: int = 1,
                    down: int = 1, groups: int = 1, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Conv2d with "same" padding, optionally with 2x FIR upsampling or downsampling.

    Semantics (`k` = odd kernel size, `f` = 4x4 filter, p = (k + 1) // 2); filter and conv
    both act on the zero-padded input, so the two can run in either order:
      up=1, down=1: conv2d(x, weight, padding=k // 2)
      down=2:       upfirdn2d(conv2d(x, weight, padding=p), f, down=2)
      up=2:         conv2d(upfirdn2d(x, f, up=2, padding=(p + 1, p, p + 1, p), gain=4), weight.flip)
    i.e. the upsampling conv applies `weight` as a true (transposed) convolution. Both are
    computed the cheap way round, with the conv on the low-resolution grid: blur then strided
    conv, or strided transposed conv then blur. `bias` (up=1 only) is added inside the conv.
    """
    k = weight.shape[-1]
    if bias is not None and up != 1:
        raise ValueError("conv2d_resample: bias is only supported without upsampling")
    if up == 1 and down == 1:
        return F.conv2d(x, weight, bias, padding=k // 2, groups=groups)
    if f.shape != (4, 4):
        raise ValueError(f"conv2d_resample: expected a 4x4 resampling filter, got {tuple(f.shape)}")
    if down == 2 and up == 1:
        if k == 1:
            return F.conv2d(downsample2d(x, f), weight, bias, groups=groups)
        x = _depthwise(x, f.flip([0, 1]), stride=1, padding=(k + 1) // 2)
        return F.conv2d(x, weight, bias, stride=2, groups=groups)
    if up == 2 and down == 1:
        if k == 1:
            return F.conv2d(upsample2d(x, f), weight, groups=groups)
        # conv_transpose2d wants (in, out/groups, k, k); per group swap in/out.
        o, i = weight.shape[0] // groups, weight.shape[1]
        wt = weight.reshape(groups, o, i, k, k).transpose(1, 2).reshape(groups * i, o, k, k)
        x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
        return _depthwise(x, f.flip([0, 1]) * 4, stride=1, padding=(5 - k) // 2)
    raise ValueError(f"conv2d_resample: supports up=2 or down=2 (not both), got up={up}, down={down}")


# ---- Bias + activation (ProGAN/StyleGAN: leaky ReLU 0.2 with gain sqrt(2); ADA: clamp +-256). -

def bias_act(x: torch.Tensor, bias: torch.Tensor | None, *, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None, inplace: bool = False) -> torch.Tensor:
    """Add `bias` along dim 1, then activation, times `gain` (x sqrt(2) for lrelu), then clamp.

    With `inplace=True`, `x` must be a fresh intermediate that autograd does not need (a conv or
    matmul output); it is then updated in place to avoid copies.
    """
    _check_activation(act, "bias_act")
    if not inplace:
        x = x.clone() if bias is None else x + _along_dim1(bias, x)
    elif bias is not None:
        x = x.add_(_along_dim1(bias, x))
    g = gain * (LRELU_GAIN if act == "lrelu" else 1.0)
    if g != 1.0:
        x = x.mul_(g)
    if act == "lrelu":
        if clamp is not None:
            # clamp(lrelu(x), -c, c) == lrelu(clamp(x, -c / slope, c)) since lrelu is monotone.
            x = x.clamp_(-clamp / LRELU_SLOPE, clamp)
        return F.leaky_relu_(x, LRELU_SLOPE)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp)
    return x


def _check_activation(act: str, owner: str) -> None:
    if act not in ("linear", "lrelu"):
        raise ValueError(f"{owner}: activation must be 'linear' or 'lrelu', got {act!r}")


def _finish_act(y: torch.Tensor, act: str, clamp: float | None) -> torch.Tensor:
    """In place: clamp to +-clamp and apply the (gain-free) activation; gains already applied."""
    if act == "lrelu":
        if clamp is not None:
            y = y.clamp_(-clamp / LRELU_SLOPE, clamp)   # == clamp(lrelu(y), -clamp, clamp)
        return F.leaky_relu_(y, LRELU_SLOPE)
    return y.clamp_(-clamp, clamp) if clamp is not None else y


def _along_dim1(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).reshape([1, -1] + [1] * (like.ndim - 2))


# ---- Equalized learning rate (ProGAN): weights ~ N(0, 1), scaled at run time by 1/sqrt(fan_in).

class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized learning rate and an optional lr multiplier."""

    def __init__(
        self,
        in_features: int,               # input width
        out_features: int,              # output width
        *,
        bias: bool = True,              # learn a bias
        bias_init: float = 0.0,         # initial (effective) bias value
        lr_mult: float = 1.0,           # learning-rate multiplier (0.01 in the mapping network)
        activation: str = "linear",     # "linear" or "lrelu"
    ) -> None:
        super().__init__()
        _check_activation(activation, type(self).__name__)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.lr_mult = lr_mult
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mult)
        self.bias = nn.Parameter(torch.full([out_features], bias_init / lr_mult)) if bias else None
        self.weight_gain = lr_mult / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, self.in_features), "EqualizedLinear input")
        w = self.weight.to(x.dtype)
        # Scale whichever of input and weight is smaller (the input, for batches < out_features).
        act_gain = LRELU_GAIN if self.activation == "lrelu" else 1.0
        g = self.weight_gain * act_gain
        alpha = g
        if x.shape[0] < self.out_features:
            x, alpha = x * g, 1.0
        if self.bias is None:
            y = torch.mm(x, w.t())
            y = y.mul_(alpha) if alpha != 1.0 else y
        else:
            y = torch.addmm(self.bias.to(x.dtype), x, w.t(), beta=self.lr_mult * act_gain, alpha=alpha)
        # The lrelu gain is already folded in above: lrelu(g * a) == g * lrelu(a) for g > 0.
        return F.leaky_relu_(y, LRELU_SLOPE) if self.activation == "lrelu" else y

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, act={self.activation}, "
                f"lr_mult={self.lr_mult:g}")


class EqualizedConv2d(nn.Module):
    """Conv2d with equalized learning rate, optional 2x FIR downsampling, bias, activation, clamp."""

    resample_filter: torch.Tensor       # buffer: 2-D low-pass filter for down=2

    def __init__(
        self,
        in_channels: int,               # input channels
        out_channels: int,              # output channels
        kernel_size: int,               # odd kernel size; padding keeps the size ("same")
        *,
        bias: bool = True,              # learn a bias
        activation: str = "linear",     # "linear" or "lrelu"
        down: int = 1,                  # 1, or 2 for FIR-filtered 2x downsampling
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # low-pass taps used when down=2
        conv_clamp: float | None = None,  # clamp outputs to +-conv_clamp (None: no clamp)
    ) -> None:
        super().__init__()
        _check_activation(activation, type(self).__name__)
        if kernel_size % 2 != 1:
            raise ValueError(f"EqualizedConv2d: kernel_size must be odd, got {kernel_size}")
        if down not in (1, 2):
            raise ValueError(f"EqualizedConv2d: down must be 1 or 2, got {down}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.activation = activation
        self.down = down
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("resample_filter", make_fir_filter(resample_filter), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        check_shape(x, (None, self.in_channels, None, None), f"{type(self).__name__} input")
        act_gain = (LRELU_GAIN if self.activation == "lrelu" else 1.0) * gain
        g = self.weight_gain * act_gain           # total multiplier of conv(x, weight)
        w = self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype) * act_gain
        out_numel = x.shape[0] * self.out_channels * (x.shape[2] // self.down) * (x.shape[3] // self.down)
        if w.numel() <= out_numel:                 # scale the weight: cheaper than the output
            y = conv2d_resample(x, w * g, self.resample_filter, down=self.down, bias=b)
        else:                                      # scale the output: cheaper than the weight
            y = conv2d_resample(x, w, self.resample_filter, down=self.down,
                                bias=None if b is None else b / g).mul_(g)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return _finish_act(y, self.activation, clamp)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}->{self.out_channels}, k={self.kernel_size}, down={self.down}, "
                f"act={self.activation}, bias={self.bias is not None}, clamp={self.conv_clamp}")


# ---- Modulated convolution (StyleGAN2 Eq. 1-3): w' = s * w, w'' = w' / sqrt(sum w'^2 + eps). ---

def modulated_conv2d(
    x: torch.Tensor,                    # (N, I, H, W) activations
    weight: torch.Tensor,               # (O, I, k, k) shared weight
    styles: torch.Tensor,               # (N, I) per-sample scales s
    *,
    weight_gain: float = 1.0,           # constant multiplier of the weight (equalized lr)
    gain: float = 1.0,                  # constant multiplier of the output (after demodulation)
    demodulate: bool = True,            # StyleGAN2 Eq. 3
    up: int = 1,                        # 1, or 2 for the upsampling conv
    resample_filter: torch.Tensor | None = None,  # 4x4 FIR filter, needed for up=2
    fused: bool = False,                # one grouped conv with per-sample weights
) -> torch.Tensor:
    """Per-sample modulated (and demodulated) convolution, no Python loop over the batch.

    Computes gain * conv(x, w'') with w'' = g s w / sqrt(sum (g s w)^2 + 1e-8) per sample and
    output channel (g = weight_gain; without demodulation w'' = g s w). fused=True builds the
    per-sample weights and runs one grouped convolution with groups=N (the batch as one
    sample of N*I channels). fused=False scales the activations by s, runs one ordinary conv
    with the shared weight and scales the output by gain g / sqrt(...): the same layer, usually
    faster on CPU, where ordinary convs are better optimised than grouped ones.
    Returns a fresh tensor that callers may update in place.
    """
    n, i, h, w_ = x.shape
    o, _, kh, kw = weight.shape
    check_shape(weight, (None, i, None, None), "modulated_conv2d weight")
    check_shape(styles, (n, i), "modulated_conv2d styles")
    f = resample_filter if resample_filter is not None else torch.empty(0)
    # Styles and demodulation coefficients are small (N x I, N x O): always computed in FP32.
    styles = styles.float()
    weight = weight.float()
    if x.dtype == torch.float16 and demodulate:
        # ADA mixed precision: pre-normalise so FP16 activations stay in range; demodulation
        # divides any constant factor back out, so the pre-normalisation replaces weight_gain.
        weight = weight * (1.0 / math.sqrt(i * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        weight_gain = 1.0
    if demodulate:
        # sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 (sum_k w_oik^2): an (N, I) x (I, O) product.
        sumsq = styles.square() @ weight.square().sum(dim=[2, 3]).t()
        out_scale = ((sumsq * weight_gain ** 2 + 1e-8).rsqrt() * (weight_gain * gain)).to(x.dtype)  # (N, O)
    else:
        styles = styles * (weight_gain * gain)
        out_scale = None
    styles = styles.to(x.dtype)
    weight = weight.to(x.dtype)
    if fused:
        coef = styles[:, None, :] if out_scale is None else styles[:, None, :] * out_scale[:, :, None]
        wn = (weight[None] * coef[..., None, None]).reshape(n * o, i, kh, kw)
        y = conv2d_resample(x.reshape(1, n * i, h, w_), wn, f, up=up, groups=n)
        return y.reshape(n, o, y.shape[2], y.shape[3])
    y = conv2d_resample(x * styles[:, :, None, None], weight, f, up=up)
    if out_scale is not None:
        y = y.mul_(out_scale[:, :, None, None])
    return y
