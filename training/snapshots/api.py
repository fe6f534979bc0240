"""What the CLI, the Datasets page and training call: build, list, show, check and export snapshots.

Each function opens its own unit of work. A snapshot is named by its id or by a prefix of its
SHA-256 (at least 6 characters).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ingest.releases import release_status
from labeling.encoding import Slot, encoding_from_json, parse_label
from likeness.errors import ConsentViolation, InvalidInput, NotFound
from likeness.models import Checkpoint, DatasetSnapshot, Person, Shot, SnapshotMember, Split, TrainingRun
from likeness.progress import ProgressFn
from likeness.workbench import Workbench
from training.snapshots.build import BuildResult, build_snapshot
from training.snapshots.export import ExportResult, export_snapshot, read_manifest
from training.snapshots.select import Shortfall
from training.snapshots.spec import Spec, SpecError, load_spec, parse_spec

__all__ = [
    "BuildResult", "ConsentProblem", "ExportResult", "Shortfall", "SnapshotSummary", "Spec", "SpecError", "TrainingExport",
    "build", "check_consent", "export", "find_snapshot_id", "label_for_checkpoint", "label_slots", "load_spec",
    "parse_label", "parse_spec", "read_manifest", "require_consent", "snapshot_detail", "snapshots", "training_export",
]

MIN_PREFIX = 6


@dataclass(frozen=True)
class SnapshotSummary:
    id: int
    sha256: str
    name: str | None
    size: int
    train: int
    val: int
    resolution: int
    built_on: dt.date
    built_by: str
    created_at: dt.datetime
    shortfall: int                 # quota cells short of their band
    tainted: bool
    report: dict[str, Any]
    spec_text: str
    label_encoding: list[Any]


@dataclass(frozen=True)
class ConsentProblem:
    """A member whose release no longer covers it."""

    person: str
    release_id: int | None
    faces: int
    detail: str

    def describe(self) -> str:
        return f"{self.person}: {self.detail} ({self.faces} face(s))"


def build(workbench: Workbench, spec_text: str, *, actor: str, admin: bool, where: str = "spec",
          today: dt.date | None = None, progress: ProgressFn | None = None) -> BuildResult:
    """Build (or find) the snapshot `spec_text` asks for; SpecError, NotFound or InvalidInput when it cannot."""
    spec = parse_spec(spec_text, where=where)
    with workbench.db.unit_of_work() as session:
        return build_snapshot(session=session, spec=spec, spec_text=spec_text, today=today or dt.date.today(),
                              actor=actor, admin=admin, progress=progress)


def find_snapshot_id(session: Session, ref: str | int) -> int:
    text = str(ref).strip().lower()
    if text.isdigit() and len(text) < MIN_PREFIX:
        found = session.scalar(select(DatasetSnapshot.id).where(DatasetSnapshot.id == int(text)))
    elif len(text) >= MIN_PREFIX and all(ch in "0123456789abcdef" for ch in text):
        ids = session.scalars(select(DatasetSnapshot.id).where(DatasetSnapshot.sha256.startswith(text))).all()
        if len(ids) > 1:
            raise NotFound(f"dataset snapshot {text!r} is ambiguous ({len(ids)} match)", hint="give more of the hash")
        found = ids[0] if ids else None
        if found is None and text.isdigit():
            found = session.scalar(select(DatasetSnapshot.id).where(DatasetSnapshot.id == int(text)))
    else:
        found = None
    if found is None:
        raise NotFound(f"no dataset snapshot {ref!r}", hint="`likeness dataset list` shows the snapshots")
    return int(found)


def snapshots(workbench: Workbench) -> list[SnapshotSummary]:
    """Every snapshot, newest first."""
    with workbench.db.unit_of_work() as session:
        return _summaries(session, None)


def snapshot_detail(workbench: Workbench, ref: str | int) -> SnapshotSummary:
    with workbench.db.unit_of_work() as session:
        return _summaries(session, find_snapshot_id(session, ref))[0]


def _summaries(session: Session, snapshot_id: int | None) -> list[SnapshotSummary]:
    query = select(DatasetSnapshot).order_by(DatasetSnapshot.id.desc())
    if snapshot_id is not None:
        query = query.where(DatasetSnapshot.id == snapshot_id)
    rows = list(session.scalars(query))
    counts: dict[tuple[int, Split], int] = {}
    if rows:
        split_query = (select(SnapshotMember.snapshot_id, SnapshotMember.split, func.count())
                       .where(SnapshotMember.snapshot_id.in_([r.id for r in rows]))
                       .group_by(SnapshotMember.snapshot_id, SnapshotMember.split))
        counts = {(sid, split): n for sid, split, n in session.execute(split_query)}
    return [SnapshotSummary(
        id=r.id, sha256=r.sha256, name=r.name, size=r.size, train=counts.get((r.id, Split.train), 0),
        val=counts.get((r.id, Split.val), 0), resolution=r.resolution, built_on=r.built_on, built_by=r.built_by,
        created_at=r.created_at, shortfall=len(r.report.get("shortfall", [])), tainted=r.tainted, report=r.report,
        spec_text=r.spec_text, label_encoding=r.label_encoding) for r in rows]


def check_consent(session: Session, snapshot_id: int, *, today: dt.date, split: Split | None = None) -> list[ConsentProblem]:
    """Members whose sitter no longer holds a release covering their capture today (revoked,
    expired, a minor's guardian missing): the one rule, `release_status(..., still_on=today)`."""
    query = (select(SnapshotMember.person_id, Shot.capture_date, func.count())
             .join(Shot, Shot.id == SnapshotMember.shot_id)
             .where(SnapshotMember.snapshot_id == snapshot_id)
             .group_by(SnapshotMember.person_id, Shot.capture_date))
    if split is not None:
        query = query.where(SnapshotMember.split == split)
    groups = session.execute(query).all()
    people = {p.id: p for p in session.scalars(
        select(Person).where(Person.id.in_({g[0] for g in groups}))
        .options(selectinload(Person.releases), selectinload(Person.personal)))}
    problems: dict[tuple[str, int | None, str], int] = defaultdict(int)
    for person_id, capture_date, faces in groups:
        verdict = release_status(people[person_id], capture_date, still_on=today)
        if not verdict.valid:
            problems[(people[person_id].code, verdict.release_id, verdict.detail)] += faces
    return [ConsentProblem(code, rid, n, detail) for (code, rid, detail), n in sorted(problems.items())]


def require_consent(session: Session, snapshot_id: int, *, today: dt.date, split: Split | None = Split.train) -> None:
    """ConsentViolation naming each person and release when any member is no longer covered."""
    problems = check_consent(session, snapshot_id, today=today, split=split)
    if problems:
        listed = "; ".join(p.describe() for p in problems[:5]) + (" …" if len(problems) > 5 else "")
        raise ConsentViolation(f"dataset snapshot #{snapshot_id} has faces whose release no longer covers training: "
                               f"{listed}", hint="build a new snapshot; `likeness dataset check` lists them all")


def export(workbench: Workbench, ref: str | int, dest: Path, *, split: str = "train", today: dt.date | None = None,
           progress: ProgressFn | None = None) -> ExportResult:
    """Write the snapshot as NVIDIA's dataset format; refused when a member's consent has lapsed."""
    with workbench.db.unit_of_work() as session:
        snapshot_id = find_snapshot_id(session, ref)
        require_consent(session, snapshot_id, today=today or dt.date.today(),
                        split=None if split == "all" else Split(split) if split in ("train", "val") else None)
        snapshot = session.get_one(DatasetSnapshot, snapshot_id)
        return export_snapshot(session=session, blobs=workbench.blobs, snapshot=snapshot, dest=Path(dest), split=split,
                               progress=progress)


def label_slots(encoding: list[Any]) -> list[Slot]:
    return encoding_from_json(encoding)


@dataclass(frozen=True)
class TrainingExport:
    path: Path
    snapshot_id: int
    run_name: str                  # a default name for a run on it


def training_export(workbench: Workbench, ref: str | int, *, today: dt.date | None = None) -> TrainingExport:
    """The snapshot's train split as a dataset zip under data/datasets/, exported on first use
    (consent is checked whether it is exported now or was before)."""
    today = today or dt.date.today()
    with workbench.db.unit_of_work() as session:
        snapshot_id = find_snapshot_id(session, ref)
        snapshot = session.get_one(DatasetSnapshot, snapshot_id)
        sha256, name = snapshot.sha256, snapshot.name
        require_consent(session, snapshot_id, today=today)
    path = workbench.settings.data_dir / "datasets" / f"{sha256[:16]}-train.zip"
    if path.exists() and read_manifest(path)["snapshot"]["sha256"] != sha256:
        raise InvalidInput(f"{path}: holds another snapshot's export", hint="delete it; it is rebuilt on demand")
    if not path.exists():
        export(workbench, snapshot_id, path, split="train", today=today)
    return TrainingExport(path, snapshot_id, _run_name(name, snapshot_id))


def _run_name(name: str | None, snapshot_id: int) -> str:
    base = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in (name or "")).strip("-")
    return base or f"snapshot-{snapshot_id}"


def checkpoint_encoding(workbench: Workbench, checkpoint_id: int) -> tuple[list[Slot] | None, str]:
    """The label encoding of the snapshot the checkpoint learned from (None when its run had no
    labelled snapshot) and the run's name. NotFound for an unknown checkpoint."""
    with workbench.db.unit_of_work() as session:
        found = session.execute(
            select(DatasetSnapshot.label_encoding, TrainingRun.name)
            .select_from(Checkpoint).join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
            .outerjoin(DatasetSnapshot, DatasetSnapshot.id == TrainingRun.snapshot_id)
            .where(Checkpoint.id == checkpoint_id)).first()
    if found is None:
        raise NotFound(f"no checkpoint #{checkpoint_id}", hint="`likeness train checkpoints` lists them")
    encoding, run_name = found
    return (encoding_from_json(encoding) if encoding else None), run_name


def label_for_checkpoint(workbench: Workbench, checkpoint_id: int, text: str) -> list[float]:
    """`age_band=senior,expression=smile` as the label vector of the snapshot the checkpoint learned from."""
    slots, run_name = checkpoint_encoding(workbench, checkpoint_id)
    if slots is None:
        raise InvalidInput(f"checkpoint #{checkpoint_id} (run {run_name}) has no attribute label encoding: it was not "
                           "trained on a labelled dataset snapshot", hint="give the label as a JSON list or class index")
    return parse_label(text, slots)
