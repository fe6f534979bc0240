"""Building a snapshot: pool → selection → person split → label vectors → one stored row set.

The snapshot is named by the SHA-256 of its canonical spec and member list, so the same spec on
the same data gives the same snapshot (a second build finds it and stores nothing). Everything is
written in the caller's one transaction: a build killed half-way leaves no snapshot row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from labeling.encoding import encode, encoding_to_json, label_encoding
from likeness import audit
from likeness.errors import InvalidInput
from likeness.models import DatasetSnapshot, SnapshotMember
from likeness.progress import ProgressFn
from training.snapshots.pool import eligible_pool
from training.snapshots.select import Selection, Shortfall, select_faces
from training.snapshots.spec import Spec
from training.snapshots.split import split_by_person

HASH_VERSION = "likeness-snapshot-v1"
STEPS = ("pool", "select", "split", "store")


@dataclass(frozen=True)
class BuildResult:
    snapshot_id: int
    sha256: str
    created: bool                  # False: an identical snapshot existed already
    report: dict[str, Any]
    shortfall: list[Shortfall]


def snapshot_hash(spec: Spec, members: list[tuple[int, str, str, list[float]]]) -> str:
    """SHA-256 over the canonical spec and the (face, crop, split, label) of each member in order."""
    document = {"version": HASH_VERSION, "spec": spec.canonical(), "members": members}
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_snapshot(*, session: Session, spec: Spec, spec_text: str, today: dt.date, actor: str, admin: bool,
                   progress: ProgressFn | None = None) -> BuildResult:
    timings: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 3)
        if progress is not None:
            progress(STEPS.index(name) + 1, len(STEPS), name)

    started = time.perf_counter()
    pool = eligible_pool(session=session, spec=spec, today=today, admin=admin)
    if spec.size > len(pool.candidates):
        raise InvalidInput(f"size {spec.size} is larger than the eligible pool ({len(pool.candidates)} faces)",
                           hint="lower the size, widen the filters, or label and release more faces; "
                                f"left out: {_describe(pool.excluded)}")
    step("pool", started)

    started = time.perf_counter()
    selection = select_faces(pool.candidates, spec, released_people=pool.released_people)
    step("select", started)

    started = time.perf_counter()
    split = split_by_person(selection.chosen, spec)
    slots = label_encoding(spec.label_attributes)
    members = [(c, split.split[c.face_id], encode(c.attributes, slots)) for c in selection.chosen]
    sha256 = snapshot_hash(spec, [(c.face_id, c.crop_sha256, str(s), label) for c, s, label in members])
    step("split", started)

    started = time.perf_counter()
    report = _report(pool.report(), selection, split.report(selection.chosen, spec), timings)
    existing = session.scalar(select(DatasetSnapshot.id).where(DatasetSnapshot.sha256 == sha256))
    if existing is not None:
        step("store", started)
        return BuildResult(existing, sha256, False, report, selection.shortfall)
    snapshot = DatasetSnapshot(
        sha256=sha256, name=spec.name, spec=spec.canonical(), spec_text=spec_text, size=len(members),
        resolution=spec.resolution, label_encoding=encoding_to_json(slots), report=report, built_on=today,
        built_by=actor,
    )
    session.add(snapshot)
    session.flush()
    session.execute(insert(SnapshotMember), [
        {"snapshot_id": snapshot.id, "position": i, "face_id": c.face_id, "shot_id": c.shot_id,
         "person_id": c.person_id, "release_id": c.release_id, "crop_sha256": c.crop_sha256, "split": s,
         "label": label, "attributes": {k: v for k, v in c.attributes.items() if not k.startswith("self.")}}
        for i, (c, s, label) in enumerate(members)
    ])
    audit.record(session=session, actor=actor, action="dataset.build", subject_type="dataset_snapshot",
                 subject_id=snapshot.id, sha256=sha256, size=len(members), shortfall=len(selection.shortfall))
    step("store", started)
    report["timings"] = timings
    snapshot.report = report
    return BuildResult(snapshot.id, sha256, True, report, selection.shortfall)


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "nothing"


def _report(pool: dict[str, Any], selection: Selection, split: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    return {
        "pool": pool,
        "size": len(selection.chosen),
        "size_missing": selection.size_missing,
        "cells": [c.as_dict() for c in selection.cells],
        "shortfall": [s.as_dict() for s in selection.shortfall],
        "worst_deviation": round(selection.worst_deviation, 6),
        "people": selection.people,
        "split": split,
        "solver": {"status": selection.status, "seconds": round(selection.solve_s, 3), "groups": selection.groups},
        "timings": timings,
    }
