"""Quality of a stored checkpoint on demand: FID and KID against its run's own dataset.

`evaluate_checkpoint` loads the checkpoint's G_ema from its blob and the dataset the run trained
on (`TrainingRun.dataset_path`, opened with the run's use_labels, max_size and xflip, and checked
against the run's dataset fingerprint), computes FID and KID (training.metrics.fid_kid) and
merges the values into the checkpoint's metrics in one short transaction: the numbers under
`metrics` (where the training loop puts the values it computes at snapshots, so the Training
page and `registry list` read one place), and how they were computed under
`quality.<metric>` ({extractor, num_real, num_gen, kid_subset_size, kid_subsets,
dataset_fingerprint, evaluated_at}). Other keys are kept.

The features come from Inception-v3 (LIKENESS_INCEPTION_WEIGHTS; a clear ConfigError when it
is not set) unless an extractor is passed, such as `RandomConvFeatures` for offline use.

Tainted checkpoints are refused (ConsentViolation): evaluating one means reading the run's
dataset again, which holds the faces of a person whose release was revoked, and nothing may be
processed from those faces any more. A checkpoint tainted while it is being evaluated gets no
values stored.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select

from likeness.errors import ConsentViolation, InvalidInput, NotFound
from likeness.models import Checkpoint, TrainingRun, utcnow
from likeness.workbench import Workbench
from training.checkpoint import load_snapshot
from training.dataset import ImageFolderDataset
from training.generator import Generator
from training.metrics.features import FeatureExtractor, inception_from_settings
from training.metrics.fid_kid import DEFAULT_NUM_GEN, DEFAULT_SUBSETS, MAX_SUBSET_SIZE, FidKid, Progress, fid_kid
from training.networks import NetworkConfig, build_networks
from training.runs import checkpoint_file

__all__ = ["CheckpointQuality", "RunData", "evaluate_checkpoint", "open_run_dataset", "run_data"]

log = logging.getLogger(__name__)

QUALITY_KEY = "quality"         # Checkpoint.metrics[QUALITY_KEY][metric] = how it was computed
VALUES_KEY = "metrics"          # Checkpoint.metrics[VALUES_KEY][key] = value (as the loop records them)


@dataclasses.dataclass(frozen=True)
class CheckpointQuality:
    """What `evaluate_checkpoint` computed and stored."""

    checkpoint_id: int
    result: FidKid
    values: dict[str, float]            # the keys merged into Checkpoint.metrics["metrics"]
    seconds: float                      # wall time of the evaluation


@dataclasses.dataclass(frozen=True)
class RunData:
    """Where a checkpoint's run read its data, and how (what `open_run_dataset` needs)."""

    checkpoint_id: int
    run_id: int
    dataset_path: str
    dataset_fingerprint: str | None
    run_dir: str
    config: dict[str, Any]


def evaluate_checkpoint(
    workbench: Workbench,
    checkpoint_id: int,
    *,
    extractor: FeatureExtractor | None = None,  # None: Inception-v3 from LIKENESS_INCEPTION_WEIGHTS
    num_gen: int = DEFAULT_NUM_GEN,      # generated images
    device: str = "cpu",                 # where G and the default extractor run
    batch: int = 32,                     # images per forward pass
    subsets: int = DEFAULT_SUBSETS,      # KID subsets
    max_subset_size: int = MAX_SUBSET_SIZE,  # KID subset size at most (and at most the smaller set)
    progress: Progress | None = None,    # (done, total) images, real then generated
) -> CheckpointQuality:
    """FID and KID of a checkpoint against its run's dataset, stored on the checkpoint.

    NotFound for an unknown checkpoint or a dataset that is gone, ConsentViolation for a tainted
    checkpoint, InvalidInput when the dataset changed since the run read it, ConfigError when
    no extractor is passed and the Inception weights are not configured.
    """
    started = time.perf_counter()
    target = run_data(workbench, checkpoint_id)
    features = extractor if extractor is not None else inception_from_settings(workbench.settings, device=device)
    dataset = open_run_dataset(target)
    try:
        with tempfile.TemporaryDirectory(prefix="likeness-quality-") as scratch:
            G = _load_generator(checkpoint_file(workbench, checkpoint_id, scratch=Path(scratch)), device)
        run_dir = Path(target.run_dir)
        with torch.random.fork_rng(devices=[]):
            result = fid_kid(G, dataset, features, num_gen=num_gen, device=device, batch=batch,
                             cache_dir=run_dir if run_dir.is_dir() else None, subsets=subsets,
                             max_subset_size=max_subset_size, progress=progress)
    finally:
        dataset.close()
    values = result.values()
    name = f"fid_kid{result.key_suffix}"
    record = {**result.record(), "dataset_fingerprint": target.dataset_fingerprint,
              "evaluated_at": utcnow().isoformat(timespec="seconds")}
    with workbench.db.unit_of_work() as session:
        checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.id == checkpoint_id).with_for_update())
        if checkpoint is None:
            raise NotFound(f"checkpoint #{checkpoint_id} was deleted while it was evaluated")
        if checkpoint.tainted:
            raise _tainted(checkpoint_id)
        merged = dict(checkpoint.metrics or {})
        merged[VALUES_KEY] = {**dict(merged.get(VALUES_KEY) or {}), **values}
        merged[QUALITY_KEY] = {**dict(merged.get(QUALITY_KEY) or {}), name: record}
        checkpoint.metrics = merged
    seconds = time.perf_counter() - started
    log.info("checkpoint #%d: %s in %.1f s (%s)", checkpoint_id,
             "  ".join(f"{k} {v:.4g}" for k, v in values.items()), seconds, result.extractor)
    return CheckpointQuality(checkpoint_id=checkpoint_id, result=result, values=values, seconds=seconds)


def _tainted(checkpoint_id: int) -> ConsentViolation:
    return ConsentViolation(
        f"checkpoint #{checkpoint_id} is tainted: a release behind its training data was revoked, so its "
        "dataset may not be read to evaluate it", hint="evaluate a checkpoint trained without that data")


def run_data(workbench: Workbench, checkpoint_id: int) -> RunData:
    """The data behind a checkpoint; NotFound for an unknown one, ConsentViolation for a tainted one."""
    with workbench.db.unit_of_work() as session:
        row = session.execute(
            select(Checkpoint, TrainingRun).join(TrainingRun, Checkpoint.run_id == TrainingRun.id)
            .where(Checkpoint.id == checkpoint_id)).first()
        if row is None:
            raise NotFound(f"no checkpoint #{checkpoint_id}", hint="`likeness train checkpoints` lists them")
        checkpoint, run = row
        if checkpoint.tainted:
            raise _tainted(checkpoint_id)
        return RunData(checkpoint_id=checkpoint.id, run_id=run.id, dataset_path=run.dataset_path,
                       dataset_fingerprint=run.dataset_fingerprint, run_dir=run.run_dir,
                       config=dict(run.config or {}))


def open_run_dataset(target: RunData) -> ImageFolderDataset:
    """The run's dataset as the run read it (the caller closes it); NotFound when it is gone,
    InvalidInput when it changed since the run read it."""
    path = Path(target.dataset_path)
    if not path.exists():
        raise NotFound(f"the dataset of training run #{target.run_id}, {path}, does not exist",
                       hint="FID/KID compare against the run's own data: restore or re-export that snapshot there")
    config = target.config
    max_size = config.get("max_size")
    dataset = ImageFolderDataset(path, use_labels=bool(config.get("use_labels", True)),
                                 max_size=int(max_size) if max_size is not None else None,
                                 xflip=bool(config.get("xflip", False)))
    if target.dataset_fingerprint is not None and dataset.fingerprint() != target.dataset_fingerprint:
        dataset.close()
        raise InvalidInput(f"the dataset at {path} is not the one training run #{target.run_id} trained on "
                           f"(fingerprint {dataset.fingerprint()[:12]}…, the run recorded "
                           f"{target.dataset_fingerprint[:12]}…)",
                           hint="restore that dataset snapshot at its path; FID/KID against other data would mislead")
    return dataset


def _load_generator(path: Path, device: str) -> Generator:
    state = load_snapshot(path, map_location=device)
    network = NetworkConfig.from_dict(state["network_config"])
    with torch.random.fork_rng(devices=[]):     # building draws initial weights from the global RNG
        G, _ = build_networks(network)
    try:
        G.load_state_dict(state["G_ema"])
    except RuntimeError as exc:
        raise InvalidInput(f"{path}: G_ema does not fit its network config ({exc})") from exc
    return G.to(device).eval().requires_grad_(False)
