"""Dataset snapshots, training runs, checkpoints and generated images written straight into the
real schema over faces already there, for the lineage tests and the lineage benchmark (100,000
generated images in seconds). Nothing is trained: the rows say what a pipeline would have made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, column, func, insert, select, table, update
from sqlalchemy.orm import Session

from likeness.models import (
    Checkpoint,
    DatasetSnapshot,
    Face,
    GeneratedImage,
    Release,
    RunStatus,
    Shot,
    SnapshotMember,
    Split,
    TrainingRun,
)

BUILT_ON = dt.date(2026, 7, 1)


@dataclass(frozen=True)
class PipelinePlan:
    snapshots: Sequence[Sequence[int]]                 # per snapshot: the positions in `faces` it holds
    runs: Sequence[tuple[int | None, int | None]]      # per run: (snapshot index or None for external data,
                                                       #           index of the checkpoint it was fine-tuned from)
    checkpoints: Sequence[int]                         # per checkpoint: the index of its run
    images: Sequence[int]                              # per generated image: the index of its checkpoint


@dataclass(frozen=True)
class PipelineRows:
    snapshots: list[int]
    runs: list[int]
    checkpoints: list[int]
    images: list[int]


def _sha(*parts: object) -> str:
    return hashlib.sha256(" ".join(map(str, parts)).encode()).hexdigest()


def write_pipeline(session: Session, faces: Sequence[int], plan: PipelinePlan, *, tag: str = "pipeline") -> PipelineRows:
    """Write the plan's rows over the face ids `faces` (each face's sitter needs a release: the
    member records the oldest). A run's parent checkpoint must belong to an earlier run."""
    for run_index, (_snapshot, parent) in enumerate(plan.runs):
        if parent is not None and plan.checkpoints[parent] >= run_index:
            raise ValueError(f"run {run_index} is fine-tuned from a checkpoint of a later run")
    face_rows = {row.id: row for row in session.execute(
        select(Face.id, Face.shot_id, Face.crop_sha256, Shot.person_id, func.min(Release.id).label("release_id"))
        .join(Shot, Shot.id == Face.shot_id).join(Release, Release.person_id == Shot.person_id)
        .where(Face.id.in_(set(faces))).group_by(Face.id, Face.shot_id, Face.crop_sha256, Shot.person_id))}
    missing = [f for f in faces if f not in face_rows]
    if missing:
        raise ValueError(f"faces without a sitter holding a release: {missing[:5]}")

    snapshots = list(session.scalars(insert(DatasetSnapshot).returning(DatasetSnapshot.id, sort_by_parameter_order=True), [
        {"sha256": _sha(tag, "snapshot", i), "name": f"{tag} snapshot {i}", "spec": {}, "spec_text": "",
         "size": len(members), "resolution": 64, "label_encoding": [], "report": {}, "built_on": BUILT_ON,
         "built_by": "sample", "tainted": False, "taint": []}
        for i, members in enumerate(plan.snapshots)])) if plan.snapshots else []
    member_rows = []
    for snapshot_id, members in zip(snapshots, plan.snapshots):
        for position, index in enumerate(members):
            face = face_rows[faces[index]]
            member_rows.append({
                "snapshot_id": snapshot_id, "position": position, "face_id": face.id, "shot_id": face.shot_id,
                "person_id": face.person_id, "release_id": face.release_id, "crop_sha256": face.crop_sha256 or _sha("crop", face.id),
                "split": Split.val if position % 10 == 9 else Split.train, "label": [], "attributes": {}})
    if member_rows:
        session.execute(insert(SnapshotMember), member_rows)

    runs = list(session.scalars(insert(TrainingRun).returning(TrainingRun.id, sort_by_parameter_order=True), [
        {"name": f"{tag} run {i}", "status": RunStatus.finished, "config": {}, "dataset_path": f"/datasets/{tag}-{i}.zip",
         "run_dir": f"/runs/{tag}-{i}", "total_kimg": 1.0, "kimg": 1.0,
         "snapshot_id": None if snapshot is None else snapshots[snapshot], "external": snapshot is None,
         "tainted": False, "taint": []}
        for i, (snapshot, _parent) in enumerate(plan.runs)])) if plan.runs else []
    seen: dict[int, int] = {}
    checkpoint_rows = []
    for i, run_index in enumerate(plan.checkpoints):
        kimg = seen[run_index] = seen.get(run_index, 0) + 1
        checkpoint_rows.append({"run_id": runs[run_index], "kimg": float(kimg), "file_sha256": _sha(tag, "checkpoint", i),
                                "file_name": f"network-snapshot-{kimg:06d}.pkl", "metrics": {}, "tainted": False, "taint": []})
    checkpoints = list(session.scalars(insert(Checkpoint).returning(Checkpoint.id, sort_by_parameter_order=True),
                                       checkpoint_rows)) if checkpoint_rows else []
    parents = [{"run": runs[i], "parent": checkpoints[parent]} for i, (_s, parent) in enumerate(plan.runs) if parent is not None]
    if parents:
        runs_table = table("training_runs", column("id"), column("parent_checkpoint_id"))
        session.connection().execute(update(runs_table).where(runs_table.c.id == bindparam("run"))
                                     .values(parent_checkpoint_id=bindparam("parent")), parents)

    seeds: dict[int, int] = {}
    image_rows: list[dict[str, object]] = []
    for i, checkpoint_index in enumerate(plan.images):
        seed = seeds[checkpoint_index] = seeds.get(checkpoint_index, -1) + 1
        image_rows.append({"checkpoint_id": checkpoints[checkpoint_index], "seed": seed, "psi": 0.7, "label": None,
                           "label_key": "", "noise_mode": "const", "image_sha256": _sha(tag, "image", i)})
    images = list(session.scalars(insert(GeneratedImage).returning(GeneratedImage.id, sort_by_parameter_order=True),
                                  image_rows)) if image_rows else []
    session.flush()
    return PipelineRows(snapshots=snapshots, runs=runs, checkpoints=checkpoints, images=images)
