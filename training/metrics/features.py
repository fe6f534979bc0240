"""Feature networks for FID and KID: images in, one feature vector per image out.

A `FeatureExtractor` takes uint8 images [N, 3, H, W] (any H, W; one channel is repeated to
three) and returns float64 features [N, D] as a numpy array. Its `identity` names the network
and its weights, so statistics cached for one extractor are never read for another, and its
`key_suffix` is added to the metric names it produces ("" for Inception, so "fid" always means
the published Inception-v3 FID).

Two extractors:

- `InceptionFeatures`: the standard Inception-v3 pool features (2048), from a TorchScript file
  named by the LIKENESS_INCEPTION_WEIGHTS setting, such as NVIDIA's inception-2015-12-05.pt.
  The network is called as `net(images_uint8_NCHW, return_features=True)` and resizes the
  images to 299x299 itself. None ships with the workbench and none can be downloaded here, so
  `inception_from_settings` says clearly what to set when the file is missing or unusable.
- `RandomConvFeatures`: a small network of our own with fixed random weights (seeded), for
  tests and offline comparisons between checkpoints of one run. Deterministic, cheap on a CPU,
  and NOT comparable to published FID/KID values (its metric names carry "_randconv").
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from likeness.config import Settings
from likeness.errors import ConfigError

__all__ = ["FeatureExtractor", "InceptionFeatures", "RandomConvFeatures", "as_rgb_uint8", "inception_from_settings"]

INCEPTION_DIM = 2048
_SETTING = "LIKENESS_INCEPTION_WEIGHTS"
_NEEDS = f"FID/KID need {_SETTING}"
_HINT = (f"set {_SETTING} to a TorchScript Inception-v3 feature network (e.g. NVIDIA's inception-2015-12-05.pt, "
         "called as net(images, return_features=True)); none ships with the workbench")


@runtime_checkable
class FeatureExtractor(Protocol):
    """uint8 images [N, 3, H, W] -> float64 features [N, dim]."""

    identity: str       # network and weights, e.g. "inception-v3:<sha256 of the file>"; keys caches
    dim: int            # D, the length of one feature vector
    key_suffix: str     # added to the metric names: "" for Inception, "_randconv" for ours

    def __call__(self, images: torch.Tensor) -> np.ndarray: ...


def as_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """Check a batch of images and give it three channels (grey is repeated)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"feature extractors take uint8 images [N, 3, H, W], got {images.dtype} "
                         f"{tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


# ---- Inception-v3 from a local TorchScript file. -----------------------------------------------

class InceptionFeatures:
    """The 2048 pool features of a TorchScript Inception-v3 (see the module docstring)."""

    key_suffix = ""

    def __init__(self, net: torch.jit.ScriptModule, *, identity: str, device: torch.device, dim: int) -> None:
        self.net = net
        self.identity = identity
        self.device = device
        self.dim = dim

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        features = self.net(as_rgb_uint8(images).to(self.device), return_features=True)
        return features.detach().to("cpu", torch.float64).numpy()

    def __repr__(self) -> str:
        return f"InceptionFeatures({self.identity}, dim={self.dim}, device={self.device})"


def inception_from_settings(settings: Settings | None = None, *,
                            device: str | torch.device = "cpu") -> InceptionFeatures:
    """The Inception network named by `settings.inception_weights`, on `device`.

    ConfigError, naming the setting and the path, when the setting is unset, the file is
    missing, it is not a TorchScript file, or it does not give [N, D] features for
    `net(images, return_features=True)`. Loaded once per file content and device.
    """
    settings = settings or Settings()
    path = settings.inception_weights
    if path is None:
        raise ConfigError(f"{_NEEDS}: the setting is not set, and none ships with the workbench", hint=_HINT)
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{_NEEDS}: {path} does not exist; none ships with the workbench", hint=_HINT)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"{_NEEDS}: cannot read {path} ({exc})", hint=_HINT) from exc
    return _load_inception(str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(torch.device(device)))


@functools.lru_cache(maxsize=4)
def _load_inception(path: str, size: int, mtime_ns: int, device: str) -> InceptionFeatures:
    """Load and probe the TorchScript file (size and mtime key the cache, so a changed file reloads)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        with warnings.catch_warnings():     # the published weights are TorchScript, deprecated or not
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=DeprecationWarning)
            net = torch.jit.load(path, map_location=device)
    except (OSError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{_NEEDS}: {path} is not a loadable TorchScript file ({first}); "
                          "none ships with the workbench", hint=_HINT) from exc
    net.eval()
    probe = torch.zeros([2, 3, 64, 64], dtype=torch.uint8, device=device)
    try:
        with torch.no_grad():
            out = net(probe, return_features=True)
    except Exception as exc:  # TorchScript raises its own error types for a wrong signature
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{_NEEDS}: {path} loads, but net(images, return_features=True) fails ({first})",
                          hint=_HINT) from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2 or not out.is_floating_point():
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{_NEEDS}: {path} gives {shape} for 2 images, not [2, D] features",
                          hint=_HINT)
    digest = hashlib.sha256(data).hexdigest()
    return InceptionFeatures(net, identity=f"inception-v3:{digest}", device=torch.device(device),
                             dim=int(out.shape[1]))


# ---- A small extractor of our own. ----------------------------------------------------------------

class RandomConvFeatures:
    """Fixed random convolutions (seeded) over a 64x64 copy of each image, pooled per layer.

    Three stride-2 3x3 convolutions (3 -> 16 -> 32 -> 64 channels, ReLU), each layer's output
    averaged over space, plus the mean and standard deviation of each colour channel: 118
    features. Differences in colour, contrast, edges and texture move them, which is what the
    tests and quick offline comparisons need. The values are not comparable to Inception FID.
    """

    key_suffix = "_randconv"
    SIZE = 64
    CHANNELS = (16, 32, 64)

    def __init__(self, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        rng = torch.Generator().manual_seed(seed)
        weights, c_in = [], 3
        for c_out in self.CHANNELS:
            w = torch.randn([c_out, c_in, 3, 3], generator=rng, dtype=torch.float64) / (c_in * 9) ** 0.5
            weights.append(w)
            c_in = c_out
        self.weights = [w.to(self.device) for w in weights]
        self.dim = 6 + sum(self.CHANNELS)
        self.identity = f"randconv-v1:seed{seed}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = as_rgb_uint8(images).to(self.device, torch.float64) / 127.5 - 1
        x = F.interpolate(x, size=(self.SIZE, self.SIZE), mode="bilinear", align_corners=False, antialias=True)
        parts = [x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)]
        for w in self.weights:
            x = F.relu(F.conv2d(x, w, stride=2, padding=1))
            parts.append(x.mean(dim=(2, 3)))
        return torch.cat(parts, dim=1).cpu().numpy()

    def __repr__(self) -> str:
        return f"RandomConvFeatures({self.identity}, dim={self.dim})"

