"""The registry's reads: checkpoints with their run, version, aliases, quality and taint.

A checkpoint's version is its place in its run (1 for the first snapshot). Quality is what
training/quality.py (or the training loop's metrics at snapshots) stored under
`Checkpoint.metrics["metrics"]`: FID and KID with Inception-v3 (`fid`, `kid`, `kid_std`), or, when
only those exist, with our offline RandomConvFeatures (`fid_randconv`, ...), which are not
comparable to published FID and say so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from likeness.errors import NotFound
from likeness.models import Checkpoint, CheckpointAlias, DatasetSnapshot, TrainingRun
from model_registry.aliases import AliasChange, history, resolve

__all__ = ["CheckpointDetail", "Quality", "RegistryEntry", "checkpoint_detail", "list_checkpoints", "quality"]

VALUES_KEY = "metrics"                  # where training/quality.py and the loop put metric values
SUFFIXES = ("", "_randconv")            # Inception first, then the offline extractor


@dataclasses.dataclass(frozen=True)
class Quality:
    """FID and KID of a checkpoint, with the extractor that computed them."""

    fid: float | None
    kid: float | None
    kid_std: float | None
    extractor: str                      # "inception" or "randconv"

    def short(self) -> str:
        """`FID 12.3  KID 0.0123±0.0004` (with `(randconv)` for the offline extractor)."""
        parts = []
        if self.fid is not None:
            parts.append(f"FID {self.fid:.4g}")
        if self.kid is not None:
            parts.append(f"KID {self.kid:.4g}" + (f"±{self.kid_std:.2g}" if self.kid_std is not None else ""))
        return "  ".join(parts) + ("" if self.extractor == "inception" else f" ({self.extractor})")


@dataclasses.dataclass(frozen=True)
class RegistryEntry:
    id: int
    run_id: int
    run_name: str
    version: int                        # 1-based place in its run, by kimg
    kimg: float
    aliases: tuple[str, ...]
    quality: Quality | None             # None: no FID/KID stored
    tainted: bool
    taint: list[Any]                    # [{release_id, person, reason, at}]
    file_sha256: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class CheckpointDetail:
    """One checkpoint as `likeness registry show` prints it."""

    entry: RegistryEntry
    metrics: dict[str, Any]             # everything stored on it (losses, metric values, how computed)
    snapshot_id: int | None             # the run's dataset snapshot
    snapshot_sha256: str | None
    external: bool                      # the run trained on outside data
    parent_checkpoint_id: int | None    # the checkpoint its run was resumed or fine-tuned from
    history: list[AliasChange]          # alias changes to and from it, newest first


def quality(metrics: dict[str, Any] | None) -> Quality | None:
    """FID/KID stored in a checkpoint's metrics, Inception values first; None when there are none."""
    values = dict((metrics or {}).get(VALUES_KEY) or {})
    for suffix in SUFFIXES:
        fid, kid = _number(values.get(f"fid{suffix}")), _number(values.get(f"kid{suffix}"))
        if fid is not None or kid is not None:
            return Quality(fid=fid, kid=kid, kid_std=_number(values.get(f"kid_std{suffix}")),
                           extractor=suffix.removeprefix("_") or "inception")
    return None


def list_checkpoints(*, session: Session, run_name: str | None = None, alias_only: bool = False) -> list[RegistryEntry]:
    """Every checkpoint (of one run, by name; or only those holding an alias), by run then kimg.
    NotFound for an unknown run."""
    version = func.row_number().over(partition_by=Checkpoint.run_id, order_by=(Checkpoint.kimg, Checkpoint.id))
    numbered = (select(Checkpoint.id.label("id"), version.label("version")).subquery())
    query = (select(Checkpoint, TrainingRun.name, numbered.c.version)
             .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
             .join(numbered, numbered.c.id == Checkpoint.id)
             .order_by(TrainingRun.id, Checkpoint.kimg, Checkpoint.id))
    if run_name is not None:
        if session.scalar(select(TrainingRun.id).where(TrainingRun.name == run_name)) is None:
            raise NotFound(f"no training run named {run_name!r}", hint="`likeness train status` lists the runs")
        query = query.where(TrainingRun.name == run_name)
    aliases = _aliases(session)
    entries = [_entry(checkpoint, name, version, aliases.get(checkpoint.id, ()))
               for checkpoint, name, version in session.execute(query)]
    return [e for e in entries if e.aliases] if alias_only else entries


def checkpoint_detail(*, session: Session, ref: str) -> CheckpointDetail:
    """The checkpoint `ref` names (an id or an alias), with its run's data and its alias history."""
    checkpoint_id = resolve(session=session, ref=ref)
    checkpoint = session.get_one(Checkpoint, checkpoint_id)
    run = session.get_one(TrainingRun, checkpoint.run_id)
    version = session.scalar(select(func.count()).select_from(Checkpoint).where(
        Checkpoint.run_id == checkpoint.run_id, Checkpoint.kimg <= checkpoint.kimg)) or 1
    snapshot_sha = (session.scalar(select(DatasetSnapshot.sha256).where(DatasetSnapshot.id == run.snapshot_id))
                    if run.snapshot_id is not None else None)
    entry = _entry(checkpoint, run.name, version, _aliases(session, checkpoint_id).get(checkpoint_id, ()))
    return CheckpointDetail(entry=entry, metrics=dict(checkpoint.metrics or {}), snapshot_id=run.snapshot_id,
                            snapshot_sha256=snapshot_sha, external=run.external,
                            parent_checkpoint_id=run.parent_checkpoint_id,
                            history=history(session=session, checkpoint_id=checkpoint_id))


def _aliases(session: Session, checkpoint_id: int | None = None) -> dict[int, tuple[str, ...]]:
    query = select(CheckpointAlias.checkpoint_id, CheckpointAlias.name).order_by(CheckpointAlias.name)
    if checkpoint_id is not None:
        query = query.where(CheckpointAlias.checkpoint_id == checkpoint_id)
    found: dict[int, list[str]] = {}
    for owner, name in session.execute(query):
        found.setdefault(owner, []).append(name)
    return {owner: tuple(names) for owner, names in found.items()}


def _entry(checkpoint: Checkpoint, run_name: str, version: int, aliases: tuple[str, ...]) -> RegistryEntry:
    return RegistryEntry(id=checkpoint.id, run_id=checkpoint.run_id, run_name=run_name, version=int(version),
                         kimg=checkpoint.kimg, aliases=aliases, quality=quality(checkpoint.metrics),
                         tainted=checkpoint.tainted, taint=list(checkpoint.taint or []),
                         file_sha256=checkpoint.file_sha256, created_at=checkpoint.created_at)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
