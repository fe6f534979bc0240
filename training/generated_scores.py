"""Two automatic checks of a generated face that come from its own checkpoint, stored on its row.

- `discriminator`: the checkpoint's D scores the image as training does (D(img, c), the PNG's
  pixels scaled to [-1, 1]). D's minibatch-std layer looks at a group of images, so each image
  is scored in a group with the same fixed mates, untruncated faces of the checkpoint itself
  (seeds from REFERENCE_SEED; for a conditional model with the labels of the first dataset
  images): an image's score never depends on which images it was scored with. The threshold is
  the REJECT_QUANTILE quantile of D's scores on a reference batch of REFERENCE_COUNT *generated*
  faces, not on the training images: a trained D puts nearly every generated face below nearly
  every real one, so a quantile of the real scores would flag almost everything, while the
  generated quantile flags the faces D finds least real among the checkpoint's own (rejection
  sampling). The reference batch is rendered at the image's own truncation psi and noise mode:
  truncated faces sit nearer the mean face and D scores them differently, so a threshold taken
  at another psi would flag too many or too few. Where the CPU has bfloat16 matrix units
  (AMX / AVX512-BF16, `scoring_dtype`), D runs in bfloat16 with channels-last convs, about three
  times faster than float32; its threshold and mates are computed the same way, and the note
  names the precision (the cache keeps one threshold per precision).
- `realism`: the realism score of Kynkäänniemi et al. 2019 (improved precision and recall,
  Sec. 5). Every training image of the checkpoint's run is a point in a feature space with a
  radius, the distance to its K-th nearest other training image; the half with the largest
  radii is dropped (outliers would swallow everything). A face's realism is the largest
  radius_i / distance(face, real_i) over the rest: at least 1 means it lies inside some real
  image's neighbourhood, and it is flagged below 1. Features come from Inception-v3 when
  LIKENESS_INCEPTION_WEIGHTS is set, else from our own RandomConvFeatures (the note names it).

What each checkpoint needs (the mates, a threshold per psi and noise mode; the real features and
radii, per dataset fingerprint and extractor) is computed once and cached under <data dir>/generated-scores,
so scoring 100,000 faces reads it once. `score_images` merges both entries into
GeneratedImage.checks, a batch per transaction, keeping every other check's entry. A tainted
checkpoint is refused: scoring reads its run's dataset, the faces behind a revoked release.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sqlalchemy import select

from likeness.blobstore import BlobStore
from likeness.errors import InvalidInput
from likeness.files import write_bytes_atomic
from likeness.models import Checkpoint, GeneratedImage
from likeness.workbench import Workbench
from training import generate as gen
from training import quality
from training.checkpoint import load_snapshot
from training.discriminator import Discriminator
from training.metrics.features import FeatureExtractor, RandomConvFeatures, inception_from_settings
from training.metrics.fid_kid import feature_cache_key, real_features
from training.networks import NetworkConfig, build_networks

__all__ = ["CheckpointScorer", "ScoreSummary", "d_features", "for_scoring", "load_scorer", "realism_scores",
           "score_images", "scoring_dtype", "unscored_images"]

log = logging.getLogger(__name__)

DISCRIMINATOR, REALISM = "discriminator", "realism"
REFERENCE_COUNT = 32            # generated faces D's threshold is taken over, at each psi
REFERENCE_SEED = 2**31 - 4096   # their seeds: REFERENCE_SEED + 0 .. REFERENCE_COUNT - 1
REJECT_QUANTILE = 0.1           # faces D scores below this quantile of the reference batch are flagged
K = 3                           # realism: a real image's radius is the distance to its K-th neighbour
REALISM_CAP = 1e6               # a face on a real image (distance 0) gets this, not infinity
BATCH = 32                      # images per forward pass and per transaction
CACHE_DIR = "generated-scores"

Progress = Callable[[int, int], None]   # (images scored, images in all)


@dataclasses.dataclass
class ScoreSummary:
    scored: int = 0
    flagged: dict[str, int] = dataclasses.field(default_factory=lambda: {DISCRIMINATOR: 0, REALISM: 0})


@dataclasses.dataclass
class CheckpointScorer:
    """Everything one checkpoint's faces are scored with, loaded once."""

    checkpoint_id: int
    loaded: gen.LoadedGenerator
    D: Discriminator
    mates: torch.Tensor                  # D block features of the fixed group mates [g - 1, C, 4, 4]
    mates_c: torch.Tensor | None         # their labels
    reference_labels: np.ndarray         # labels of the reference faces [REFERENCE_COUNT, c_dim]
    extractor: FeatureExtractor
    real: np.ndarray                     # kept real features [M, dim]
    radii: np.ndarray                    # their K-NN radii [M]
    thresholds: dict[tuple[float, str], float] = dataclasses.field(default_factory=dict)  # by (psi, noise mode)
    cache: Path | None = None            # file name prefix: thresholds are kept in <cache>-threshold-*.json
    dtype: torch.dtype = torch.float32   # D's compute precision (scoring_dtype()); mates must match it

    @torch.no_grad()
    def discriminator(self, images: torch.Tensor, c: torch.Tensor | None) -> np.ndarray:
        """D's score of each uint8 image [N, 3, R, R], each in a group with the fixed mates."""
        with _precision(self.dtype):
            return _d_scores(self.D, d_features(self.D, images, self.dtype), c, self.mates, self.mates_c)

    def realism(self, images: torch.Tensor) -> np.ndarray:
        return realism_scores(np.asarray(self.extractor(images), dtype=np.float64), self.real, self.radii)

    def threshold(self, psi: float, noise_mode: str = "const") -> float:
        """D's REJECT_QUANTILE quantile on REFERENCE_COUNT of the checkpoint's faces rendered at
        this psi and noise mode (computed once, then read from memory or the cache)."""
        key = (float(psi), noise_mode)
        if key not in self.thresholds:
            path = None if self.cache is None else Path(
                f"{self.cache}-threshold-psi{float(psi)!r}-{noise_mode}{_dtype_suffix(self.dtype)}.json")
            if path is not None and path.is_file():
                self.thresholds[key] = float(json.loads(path.read_text(encoding="utf-8"))["threshold"])
            else:
                self.thresholds[key] = self._reference_threshold(float(psi), noise_mode)
                if path is not None:
                    write_bytes_atomic(path, json.dumps({"threshold": self.thresholds[key]}).encode())
        return self.thresholds[key]

    def _reference_threshold(self, psi: float, noise_mode: str) -> float:
        c_dim = self.loaded.network.c_dim
        rendered = []
        for i in range(REFERENCE_COUNT):
            c = torch.from_numpy(self.reference_labels[i:i + 1]).float() if c_dim else None
            rendered += gen.render(self.loaded, [REFERENCE_SEED + i], psi=psi, c=c, noise_mode=noise_mode)
        images = _to_tensor(rendered, self.loaded.network.img_channels)
        c_all = torch.from_numpy(self.reference_labels).float() if c_dim else None
        return float(np.quantile(self.discriminator(images, c_all), REJECT_QUANTILE))

    def checks(self, images: torch.Tensor, c: torch.Tensor | None, *, psi: float,
               noise_mode: str = "const") -> list[dict[str, dict[str, Any]]]:
        """The two check entries of each image, all rendered at `psi` and `noise_mode`."""
        d, r = self.discriminator(images, c), self.realism(images)
        threshold = self.threshold(psi, noise_mode)
        d_note = (f"D of checkpoint #{self.checkpoint_id} in {_dtype_name(self.dtype)}; threshold: the "
                  f"{REJECT_QUANTILE:g} quantile of its scores on {REFERENCE_COUNT} of its own faces at psi {psi:g}, "
                  f"noise {noise_mode}")
        r_note = f"Kynkäänniemi et al. 2019 realism, k={K}, {self.extractor.identity} features of the run's images"
        return [{DISCRIMINATOR: {"value": float(dv), "threshold": threshold, "flagged": bool(dv < threshold),
                                 "note": d_note},
                 REALISM: {"value": float(rv), "threshold": 1.0, "flagged": bool(rv < 1.0), "note": r_note}}
                for dv, rv in zip(d, r)]


# ---- Realism (Kynkäänniemi et al. 2019, Sec. 5). --------------------------------------------------

def knn_radii(features: np.ndarray, k: int = K, *, chunk: int = 1024) -> np.ndarray:
    """Distance of each row to its k-th nearest other row, in chunks (memory O(chunk * N))."""
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64))
    if len(x) <= k:
        raise InvalidInput(f"realism needs more than {k} real images, the run has {len(x)}")
    radii = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)   # the 1st is the row itself, at 0
    return torch.cat(radii).numpy()


def prune(features: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The real points whose radius is at most the median (the paper drops the larger half)."""
    keep = radii <= np.median(radii)
    return features[keep], radii[keep]


def realism_scores(fake: np.ndarray, real: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """max_i radius_i / |fake - real_i| for each fake row, capped at REALISM_CAP."""
    d = torch.cdist(torch.from_numpy(np.ascontiguousarray(fake, dtype=np.float64)), torch.from_numpy(real))
    ratio = torch.from_numpy(radii)[None, :] / d.clamp_min(1e-12)
    return ratio.max(dim=1).values.clamp_max(REALISM_CAP).numpy()


# ---- The discriminator. -------------------------------------------------------------------------

def scoring_dtype() -> torch.dtype:
    """bfloat16 where oneDNN runs it natively on this CPU (there it is about 3x faster than
    float32 for D's convs; emulated it would be slower), else float32."""
    try:
        native = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):   # a torch build without the probe
        native = False
    return torch.bfloat16 if native else torch.float32


def for_scoring(D: Discriminator) -> Discriminator:
    """D in eval mode with channels-last convs (what oneDNN's bfloat16 kernels want): a copy used
    for scoring only, so the training layout is untouched elsewhere."""
    for block in D.blocks:
        setattr(block, "channels_last", True)   # noqa: B010 (blocks are typed as plain modules)
    return D.eval().requires_grad_(False)


def d_features(D: Discriminator, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """D's blocks (each image on its own) on uint8 images, scaled as training scales reals: what
    a group mate is kept as."""
    x = images.to(torch.float32) / 127.5 - 1
    with _precision(dtype):
        for block in D.blocks:
            x = block(x)
    return x


def _precision(dtype: torch.dtype) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_suffix(dtype: torch.dtype) -> str:
    return "" if dtype == torch.float32 else f"-{_dtype_name(dtype)}"


def _d_scores(D: Discriminator, x: torch.Tensor, c: torch.Tensor | None, mates: torch.Tensor,
              mates_c: torch.Tensor | None) -> np.ndarray:
    """D's epilogue on groups [image_i, mate_1 .. mate_g-1]: the mbstd layer groups sample j
    with the samples j + N*m, so the mates are laid out as N copies each after the images."""
    n = len(x)
    x_all = torch.cat([x, *(m.expand(n, -1, -1, -1) for m in mates)])
    cmap = None
    if D.mapping is not None:
        if c is None or mates_c is None:
            raise InvalidInput("a conditional discriminator needs the images' labels")
        c_all = torch.cat([c.expand(n, -1) if len(c) == 1 else c, *(m.expand(n, -1) for m in mates_c)])
        cmap = D.mapping(None, c_all)
    return D.epilogue(x_all, cmap)[:n, 0].double().numpy()


@functools.lru_cache(maxsize=2)
def _discriminator_from_blob(blob_url: str, sha256: str) -> Discriminator:
    """D rebuilt from a snapshot blob (content-addressed, so caching by hash is safe)."""
    blobs = BlobStore(blob_url)
    with tempfile.TemporaryDirectory() as scratch:
        path = blobs.local_path(sha256) if blobs.is_local else blobs.copy_to(sha256, Path(scratch) / "snapshot.pt")
        state = load_snapshot(path)
    with torch.random.fork_rng(devices=[]):     # building draws initial weights from the global RNG
        _, D = build_networks(NetworkConfig.from_dict(state["network_config"]))
    try:
        D.load_state_dict(state["D"])
    except RuntimeError as exc:
        raise InvalidInput(f"snapshot blob {sha256[:12]}…: D does not fit its network config ({exc})") from exc
    return for_scoring(D)


# ---- Loading a checkpoint's scorer, with its caches. -----------------------------------------------

def load_scorer(workbench: Workbench, checkpoint_id: int, *, extractor: FeatureExtractor | None = None,
                dtype: torch.dtype | None = None) -> CheckpointScorer:
    """The scorer of one checkpoint; ConsentViolation when it is tainted, NotFound when its run's
    dataset is gone, InvalidInput when that dataset changed since the run read it."""
    with workbench.db.unit_of_work() as session:
        file_sha = gen.recorded_checkpoint(checkpoint_id, session=session).file_sha256   # refuses a tainted one
    target = quality.run_data(workbench, checkpoint_id)
    if extractor is None:
        extractor = (inception_from_settings(workbench.settings) if workbench.settings.inception_weights is not None
                     else RandomConvFeatures())
    loaded = gen.load_generator(workbench, checkpoint_id)
    D = _discriminator_from_blob(workbench.blobs.url, file_sha)
    cache = workbench.settings.data_dir / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    dtype = scoring_dtype() if dtype is None else dtype
    dataset = quality.open_run_dataset(target)
    try:
        real, radii = _real_set(dataset, extractor, cache)
        mates = _mates(loaded, D, dataset, cache / f"mates-{file_sha[:24]}.npz", dtype)
    finally:
        dataset.close()
    return CheckpointScorer(checkpoint_id=checkpoint_id, loaded=loaded, D=D, extractor=extractor, real=real,
                            radii=radii, cache=cache / file_sha[:24], dtype=dtype, **mates)


def _real_set(dataset: Any, extractor: FeatureExtractor, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    features = real_features(dataset, extractor, cache_dir=cache)
    path = cache / f"realism-radii-k{K}-{feature_cache_key(dataset, extractor)}.npy"
    radii = None
    if path.is_file():
        radii = np.load(path, allow_pickle=False)
        radii = radii if radii.shape == (len(features),) else None
    if radii is None:
        radii = knn_radii(features)
        buffer = io.BytesIO()
        np.save(buffer, radii, allow_pickle=False)
        write_bytes_atomic(path, buffer.getvalue())
    return prune(features, radii)


def _mates(loaded: gen.LoadedGenerator, D: Discriminator, dataset: Any, path: Path, dtype: torch.dtype) -> dict[str, Any]:
    """The fixed group mates (the first reference faces, untruncated) and the reference labels."""
    mates_n = D.epilogue.mbstd.group_size - 1
    c_dim = loaded.network.c_dim
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            images, labels = torch.from_numpy(saved["images"]), saved["labels"]
    else:
        labels = (np.stack([dataset.get_label(i % len(dataset)).numpy() for i in range(REFERENCE_COUNT)])
                  if c_dim else np.zeros([REFERENCE_COUNT, 0], dtype=np.float32))
        rendered = []
        for i in range(mates_n):
            c = torch.from_numpy(labels[i:i + 1]).float() if c_dim else None
            rendered += gen.render(loaded, [REFERENCE_SEED + i], psi=1.0, c=c)
        images = _to_tensor(rendered, loaded.network.img_channels)
        buffer = io.BytesIO()
        np.savez(buffer, images=images.numpy(), labels=labels)
        write_bytes_atomic(path, buffer.getvalue())
    with torch.no_grad():
        mates = d_features(D, images, dtype)
    return {"mates": mates, "mates_c": torch.from_numpy(labels[:mates_n]).float() if c_dim else None,
            "reference_labels": labels}


def _to_tensor(rendered: Sequence[Image.Image], channels: int) -> torch.Tensor:
    """Rendered images as uint8 [N, C, R, R], as D reads a decoded PNG."""
    images = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in rendered])).permute(0, 3, 1, 2)
    return images[:, :channels].contiguous()


# ---- Scoring stored images. ------------------------------------------------------------------------

def score_images(workbench: Workbench, image_ids: Sequence[int], *, progress: Progress | None = None,
                 extractor: FeatureExtractor | None = None,
                 scorers: dict[int, CheckpointScorer] | None = None) -> ScoreSummary:
    """Write checks["discriminator"] and checks["realism"] of each image, keeping other entries.
    `scorers` (by checkpoint id) is reused and filled, so a caller scoring batch after batch
    loads each checkpoint's scorer once."""
    scorers = {} if scorers is None else scorers
    summary = ScoreSummary()
    ids = list(dict.fromkeys(image_ids))
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        with workbench.db.unit_of_work() as session:
            rows = session.execute(select(GeneratedImage.id, GeneratedImage.checkpoint_id, GeneratedImage.label,
                                          GeneratedImage.psi, GeneratedImage.noise_mode, GeneratedImage.image_sha256)
                                   .where(GeneratedImage.id.in_(chunk))).all()
        results: dict[int, dict[str, Any]] = {}
        for checkpoint_id, psi, noise_mode in sorted({(row.checkpoint_id, row.psi, row.noise_mode) for row in rows}):
            if checkpoint_id not in scorers:
                scorers[checkpoint_id] = load_scorer(workbench, checkpoint_id, extractor=extractor)
            scorer = scorers[checkpoint_id]
            mine = [row for row in rows if (row.checkpoint_id, row.psi, row.noise_mode) == (checkpoint_id, psi, noise_mode)]
            images = torch.stack([_decode(workbench.blobs.read_bytes(row.image_sha256), scorer) for row in mine])
            labels = [gen.label_tensor(scorer.loaded, _label(row.label)) for row in mine]
            c = torch.cat([t for t in labels if t is not None]) if scorer.loaded.network.c_dim else None
            results.update(zip((row.id for row in mine), scorer.checks(images, c, psi=psi, noise_mode=noise_mode)))
        with workbench.db.unit_of_work() as session:
            for tainted in {row.checkpoint_id for row in rows}:   # tainted meanwhile: nothing is stored
                gen.recorded_checkpoint(tainted, session=session)
            for image in session.scalars(select(GeneratedImage).where(GeneratedImage.id.in_(list(results)))
                                         .with_for_update()):
                image.checks = {**dict(image.checks or {}), **results[image.id]}
        summary.scored += len(results)
        for entry in results.values():
            for name in (DISCRIMINATOR, REALISM):
                summary.flagged[name] += int(entry[name]["flagged"])
        if progress is not None:
            progress(min(start + BATCH, len(ids)), len(ids))
    return summary


def unscored_images(workbench: Workbench, *, checkpoint_id: int | None = None) -> list[int]:
    """Ids of generated images lacking either score (of one checkpoint, or of every untainted one)."""
    with workbench.db.unit_of_work() as session:
        query = (select(GeneratedImage.id, GeneratedImage.checks)
                 .join(Checkpoint, Checkpoint.id == GeneratedImage.checkpoint_id)
                 .where(Checkpoint.tainted.is_(False)).order_by(GeneratedImage.id))
        if checkpoint_id is not None:
            query = query.where(GeneratedImage.checkpoint_id == checkpoint_id)
        return [image_id for image_id, checks in session.execute(query)
                if not (checks or {}).keys() >= {DISCRIMINATOR, REALISM}]


def _label(value: Any) -> gen.Label | None:
    return value if value is None or isinstance(value, int) else [float(v) for v in value]


def _decode(data: bytes, scorer: CheckpointScorer) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("L" if scorer.loaded.network.img_channels == 1 else "RGB"))
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def describe(summary: ScoreSummary) -> str:
    return (f"scored {summary.scored} images: {summary.flagged[DISCRIMINATOR]} below the discriminator's threshold, "
            f"{summary.flagged[REALISM]} outside every real neighbourhood (realism < 1)")

