"""FID and KID between the run's images and images from G_ema.

Both compare feature vectors (training.metrics.features) of the real images (every image the
run trains on, mirrored copies included when the run mirrors) and of `num_gen` generated ones:

- FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the two sets,
  |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)). tr((S_r S_g)^(1/2)) is taken as the sum of
  the square roots of the eigenvalues of S_r^(1/2) S_g S_r^(1/2), which is symmetric, so it stays
  real and exact when the covariances are singular (fewer images than features, which is the
  rule with studio datasets and 2048 Inception features).
- KID (Bińkowski et al. 2018): the unbiased estimate of the squared MMD with the kernel
  k(x, y) = (x.y / D + 1)^3, averaged over `subsets` random subsets of `subset_size` images of
  each set (without replacement); `kid_std` is the sample standard deviation over them. KID is
  unbiased, so it is the one to read with a small dataset. The subset size is at most the size
  of the smaller set; when both sets are that size every subset is the whole set and kid_std
  is 0.

Latents (and labels, drawn from the dataset's labels, for a conditional G) come from a fixed
seed and the noise is the trained constant, so two snapshots are scored on the same latents.
The real features are cached in the run folder, keyed by the dataset fingerprint, the mirror
setting and the extractor identity. The work is split over the training processes.

Metrics (training.metrics registry), after `register_metrics()`, each on DEFAULT_NUM_GEN (10,000)
generated images against every dataset image:

- `fid_kid`: Inception-v3 from LIKENESS_INCEPTION_WEIGHTS (ConfigError when it is not set);
  reports `fid`, `kid`, `kid_std`, `fid_kid_num_gen`, `fid_kid_num_real`.
- `fid_kid_randconv`: our own RandomConvFeatures, for offline use; the same keys with
  `_randconv` after them (`fid_randconv`, ..., `fid_kid_num_real_randconv`). Not comparable to
  published FID.

Registration is explicit (no import side effect): call `register_metrics()` before starting a
run that lists these names. `fid_kid_metric(...)` builds one with another extractor or count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from likeness.config import Settings
from likeness.errors import InvalidInput
from likeness.files import write_bytes_atomic
from training import metrics
from training.dataset import ImageFolderDataset
from training.distributed import Processes
from training.generator import Generator
from training.metrics import MetricContext
from training.metrics.features import FeatureExtractor, RandomConvFeatures, inception_from_settings

__all__ = [
    "DEFAULT_NUM_GEN", "FidKid", "FidKidMetric", "check_ready", "fid_from_features", "fid_kid",
    "METRIC_NAMES", "feature_cache_key", "fid_kid_metric", "generated_features", "kid_from_features", "kid_subset_size", "real_features",
    "register_metrics", "to_uint8",
]

log = logging.getLogger(__name__)

DEFAULT_NUM_GEN = 10_000        # generated images per evaluation
DEFAULT_SUBSETS = 100           # KID subsets
MAX_SUBSET_SIZE = 1000          # KID subset size at most (and at most the smaller set)
LATENT_SEED = 0                 # latents and labels of the generated images
KID_SEED = 0                    # the subsets KID draws
CACHE_PREFIX = "fid-kid-real-"  # real features cached in the run folder: fid-kid-real-<key>.npy

Progress = Callable[[int, int], None]   # (images done, images in all) on this process


# ---- FID and KID from features. -------------------------------------------------------------

def _check_features(real: np.ndarray, fake: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be [N, D] with one D, got {real.shape} and {fake.shape}")
    if min(len(real), len(fake)) < need:
        raise InvalidInput(f"FID/KID need at least {need} images in each set, got {len(real)} real and "
                           f"{len(fake)} generated", hint="use a larger dataset or generate more images")
    return real, fake


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((s1 s2)^(1/2)) for symmetric positive semi-definite s1, s2."""
    values, vectors = np.linalg.eigh(s1)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root @ s2 @ root
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets [N, D] (N >= 2 each)."""
    real, fake = _check_features(real, fake, 2)
    mu_r, mu_g = real.mean(axis=0), fake.mean(axis=0)
    s_r, s_g = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    s_r, s_g = np.atleast_2d(s_r), np.atleast_2d(s_g)
    value = float(np.square(mu_r - mu_g).sum() + np.trace(s_r) + np.trace(s_g) - 2 * _trace_sqrt_product(s_r, s_g))
    return max(value, 0.0)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    m = x.shape[0]
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid_subset_size(num_real: int, num_gen: int, max_subset_size: int = MAX_SUBSET_SIZE) -> int:
    """The subset size KID uses: `max_subset_size`, but never more than the smaller set."""
    return min(num_real, num_gen, max_subset_size)


def kid_from_features(real: np.ndarray, fake: np.ndarray, *, subsets: int = DEFAULT_SUBSETS,
                      max_subset_size: int = MAX_SUBSET_SIZE, seed: int = KID_SEED) -> tuple[float, float]:
    """KID (mean, std over subsets) between two feature sets [N, D]; see the module docstring."""
    real, fake = _check_features(real, fake, 2)
    if subsets < 1 or max_subset_size < 2:
        raise ValueError(f"KID needs subsets >= 1 and max_subset_size >= 2, got {subsets} and {max_subset_size}")
    m = kid_subset_size(len(real), len(fake), max_subset_size)
    rng = np.random.default_rng(seed)
    values = np.array([
        _mmd2_unbiased(fake[rng.choice(len(fake), m, replace=False)], real[rng.choice(len(real), m, replace=False)])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std(ddof=1)) if subsets > 1 else 0.0


# ---- Features of the real and the generated images. -------------------------------------------

def _gather(rows: dict[int, np.ndarray], total: int, dim: int, procs: Processes | None) -> np.ndarray:
    """Every process's rows (index -> feature vector) as one [total, dim] array on every process."""
    if procs is None or procs.world_size == 1:
        return np.stack([rows[i] for i in range(total)]) if total else np.zeros([0, dim])
    full = torch.zeros([total, dim], dtype=torch.float64, device=procs.device)
    if rows:
        index = sorted(rows)
        full[index] = torch.from_numpy(np.stack([rows[i] for i in index])).to(procs.device)
    return procs.sum(full).cpu().numpy()


def _my_batches(total: int, batch: int, procs: Processes | None) -> Iterator[list[int]]:
    """This process's share of 0..total-1 (every world_size-th index), in batches."""
    rank, world = (0, 1) if procs is None else (procs.rank, procs.world_size)
    mine = list(range(rank, total, world))
    for start in range(0, len(mine), batch):
        yield mine[start:start + batch]


def _features_of(extractor: FeatureExtractor, images: torch.Tensor) -> np.ndarray:
    features = np.asarray(extractor(images), dtype=np.float64)
    if features.shape != (images.shape[0], extractor.dim):
        raise ValueError(f"{extractor.identity} gave features {features.shape} for {images.shape[0]} images, "
                         f"not [{images.shape[0]}, {extractor.dim}]")
    return features


def feature_cache_key(dataset: ImageFolderDataset, extractor: FeatureExtractor) -> str:
    """A name for cached features of `dataset` under `extractor`: its content, flips, size and the
    extractor's identity (other caches of the same real set, such as the realism radii, use it too)."""
    parts = f"{dataset.fingerprint()}|xflip={int(dataset.xflip)}|n={len(dataset)}|{extractor.identity}"
    return hashlib.sha256(parts.encode()).hexdigest()[:24]


def _read_cache(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        cached = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable FID/KID cache %s: %s", path, exc)
        return None
    if cached.shape != shape or cached.dtype != np.float64:
        log.warning("ignoring FID/KID cache %s: %s %s, expected float64 %s", path, cached.dtype, cached.shape, shape)
        return None
    return cached


def real_features(dataset: ImageFolderDataset, extractor: FeatureExtractor, *, batch: int = 32,
                  procs: Processes | None = None, cache_dir: Path | None = None,
                  progress: Progress | None = None) -> np.ndarray:
    """Features [len(dataset), D] of every dataset image, from `cache_dir` when cached there."""
    cache = None if cache_dir is None else Path(cache_dir) / f"{CACHE_PREFIX}{feature_cache_key(dataset, extractor)}.npy"
    cached = None if cache is None else _read_cache(cache, (len(dataset), extractor.dim))
    # Every process must take the same path (the computation below is collective).
    missing = cached is None if procs is None else procs.any(cached is None)
    if cached is not None and not missing:
        return cached
    rows: dict[int, np.ndarray] = {}
    done = 0
    for index in _my_batches(len(dataset), batch, procs):
        images = torch.stack([dataset[i][0] for i in index])
        rows.update(zip(index, _features_of(extractor, images)))
        done += len(index)
        if progress is not None:
            progress(done, len(dataset))
    features = _gather(rows, len(dataset), extractor.dim, procs)
    if cache is not None and (procs is None or procs.is_main):
        buffer = io.BytesIO()
        np.save(buffer, features, allow_pickle=False)
        write_bytes_atomic(cache, buffer.getvalue())
    return features


def _latents(num_gen: int, z_dim: int, dataset: ImageFolderDataset, c_dim: int,
             seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn([num_gen, z_dim], generator=rng)
    if c_dim == 0:
        return z, None
    if dataset.label_dim != c_dim:
        raise InvalidInput(f"G takes {c_dim} label values but the dataset {dataset.path} has {dataset.label_dim}",
                           hint="evaluate against the dataset the run trained on")
    picks = torch.randint(len(dataset), [num_gen], generator=rng)
    return z, torch.stack([dataset.get_label(int(i)) for i in picks])


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """G's output (roughly [-1, 1]) as uint8 pixels, rounded as the PNGs we write are."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def generated_features(G: Generator, extractor: FeatureExtractor, *, num_gen: int, dataset: ImageFolderDataset,
                       device: torch.device, batch: int = 32, procs: Processes | None = None,
                       seed: int = LATENT_SEED, progress: Progress | None = None) -> np.ndarray:
    """Features [num_gen, D] of G's images for latents drawn from `seed` (noise: the constant)."""
    if num_gen < 2:
        raise InvalidInput(f"FID/KID need at least 2 generated images, got num_gen={num_gen}")
    z_all, c_all = _latents(num_gen, G.z_dim, dataset, G.c_dim, seed)
    rows: dict[int, np.ndarray] = {}
    done = 0
    with torch.no_grad():
        for index in _my_batches(num_gen, batch, procs):
            z = z_all[index].to(device)
            c = None if c_all is None else c_all[index].to(device)
            images = to_uint8(G(z, c, noise_mode="const"))
            rows.update(zip(index, _features_of(extractor, images)))
            done += len(index)
            if progress is not None:
                progress(done, num_gen)
    return _gather(rows, num_gen, extractor.dim, procs)


# ---- One evaluation. ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FidKid:
    """FID and KID of one generator against one dataset, with how they were computed."""

    fid: float
    kid: float
    kid_std: float
    num_real: int
    num_gen: int
    subset_size: int
    subsets: int
    extractor: str          # FeatureExtractor.identity
    key_suffix: str         # FeatureExtractor.key_suffix

    def values(self) -> dict[str, float]:
        """The metric values by key, as the registry reports them (see the module docstring)."""
        s = self.key_suffix
        return {f"fid{s}": self.fid, f"kid{s}": self.kid, f"kid_std{s}": self.kid_std,
                f"fid_kid_num_gen{s}": float(self.num_gen), f"fid_kid_num_real{s}": float(self.num_real)}

    def record(self) -> dict[str, object]:
        """How the values were computed, for a checkpoint's metrics."""
        return {"extractor": self.extractor, "num_real": self.num_real, "num_gen": self.num_gen,
                "kid_subset_size": self.subset_size, "kid_subsets": self.subsets}


def fid_kid(
    G: Generator,
    dataset: ImageFolderDataset,
    extractor: FeatureExtractor,
    *,
    num_gen: int = DEFAULT_NUM_GEN,      # generated images
    device: torch.device | str = "cpu",  # where G lives
    batch: int = 32,                     # images per forward pass
    procs: Processes | None = None,      # split the work over the training processes
    cache_dir: Path | None = None,       # cache the real features here (the run folder)
    subsets: int = DEFAULT_SUBSETS,      # KID subsets
    max_subset_size: int = MAX_SUBSET_SIZE,  # KID subset size at most
    progress: Progress | None = None,    # (done, total) images over both sets, this process
) -> FidKid:
    """FID and KID of G's images against `dataset`'s, in `extractor`'s features."""
    if len(dataset) < 2:
        raise InvalidInput(f"FID/KID need at least 2 real images; {dataset.path} holds {len(dataset)}")
    total = len(dataset) + num_gen

    def step(offset: int) -> Progress | None:
        if progress is None:
            return None
        report = progress
        return lambda done, _n: report(offset + done, total)

    real = real_features(dataset, extractor, batch=batch, procs=procs, cache_dir=cache_dir, progress=step(0))
    fake = generated_features(G, extractor, num_gen=num_gen, dataset=dataset, device=torch.device(device),
                              batch=batch, procs=procs, progress=step(len(dataset)))
    kid, kid_std = kid_from_features(real, fake, subsets=subsets, max_subset_size=max_subset_size)
    return FidKid(fid=fid_from_features(real, fake), kid=kid, kid_std=kid_std, num_real=len(real),
                  num_gen=len(fake), subset_size=kid_subset_size(len(real), len(fake), max_subset_size),
                  subsets=subsets, extractor=extractor.identity, key_suffix=extractor.key_suffix)


# ---- Metrics for the training loop. ------------------------------------------------------------

ExtractorSource = FeatureExtractor | Callable[[torch.device], FeatureExtractor]


class FidKidMetric:
    """A training.metrics Metric: FID and KID of G_ema against the run's dataset at a snapshot."""

    def __init__(self, extractor: ExtractorSource, *, num_gen: int = DEFAULT_NUM_GEN,
                 subsets: int = DEFAULT_SUBSETS, max_subset_size: int = MAX_SUBSET_SIZE) -> None:
        self.extractor = extractor
        self.num_gen = num_gen
        self.subsets = subsets
        self.max_subset_size = max_subset_size

    def feature_extractor(self, device: torch.device) -> FeatureExtractor:
        """The extractor on `device` (ConfigError when it cannot be had, e.g. no Inception file)."""
        if isinstance(self.extractor, FeatureExtractor):
            return self.extractor
        return self.extractor(device)

    def __call__(self, G_ema: Generator, context: MetricContext) -> dict[str, float]:
        result = fid_kid(G_ema, context.dataset, self.feature_extractor(context.device), num_gen=self.num_gen,
                         device=context.device, batch=context.batch_gpu, procs=context.procs,
                         cache_dir=context.run_dir, subsets=self.subsets, max_subset_size=self.max_subset_size)
        return result.values()


def fid_kid_metric(extractor: ExtractorSource, *, num_gen: int = DEFAULT_NUM_GEN, subsets: int = DEFAULT_SUBSETS,
                   max_subset_size: int = MAX_SUBSET_SIZE) -> FidKidMetric:
    """A FID/KID metric with this extractor (or a function of the device giving one); register it
    with `training.metrics.register(name)(fid_kid_metric(...))`."""
    return FidKidMetric(extractor, num_gen=num_gen, subsets=subsets, max_subset_size=max_subset_size)


def _inception(settings: Settings | None) -> Callable[[torch.device], FeatureExtractor]:
    def load(device: torch.device) -> FeatureExtractor:
        return inception_from_settings(settings, device=device)
    return load


def _randconv(device: torch.device) -> FeatureExtractor:
    return RandomConvFeatures(device=device)


METRIC_NAMES = ("fid_kid", "fid_kid_randconv")


def register_metrics(settings: Settings | None = None, *, num_gen: int = DEFAULT_NUM_GEN) -> None:
    """Register `fid_kid` (Inception from `settings`, default: the LIKENESS_* environment) and
    `fid_kid_randconv`; registering again replaces what an earlier call registered."""
    for name, source in zip(METRIC_NAMES, (_inception(settings), _randconv), strict=True):
        if name in metrics.names():
            if not isinstance(metrics.get(name), FidKidMetric):
                raise ValueError(f"a metric named {name!r} is registered already")
            metrics.unregister(name)
        metrics.register(name)(fid_kid_metric(source, num_gen=num_gen))


def check_ready(wanted: Iterable[str], *, device: torch.device | str = "cpu") -> None:
    """Load the extractor of every FID/KID metric in `wanted`, so a missing Inception file stops a
    run before its first step rather than at its first snapshot (ConfigError)."""
    for name in wanted:
        if name in metrics.names():
            metric = metrics.get(name)
            if isinstance(metric, FidKidMetric):
                metric.feature_extractor(torch.device(device))
