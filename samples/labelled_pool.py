"""A labelled, released pool of faces written straight into the real schema, for dataset
snapshot tests and the snapshot benchmark (tens of thousands of faces in seconds).

Each sitter gets a release (signed, revoked, expired, a minor with or without a guardian, or
none), one accepted shot per face with a passing shot QA record, a small distinct crop PNG in the
blob store, and one annotator's labels: the sitter's own person-level values plus frame-level
values (expression, head pose ...) cycled from the plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import cycle

from PIL import Image
from sqlalchemy import insert
from sqlalchemy.orm import Session

from likeness.blobstore import BlobStore
from likeness.models import Face, Label, LabelState, Person, PersonalData, Release, Shoot, Shot, ShotStatus

SHOOT_DATE = dt.date(2026, 6, 1)
RELEASE_KINDS = ("signed", "revoked", "expired", "none", "minor_no_guardian", "minor_guardian")
CROP_SIDE = 32


@dataclass(frozen=True)
class SitterPlan:
    code: str
    faces: int
    person: Mapping[str, str]                                  # age_band, skin_tone ... the same on every face
    frames: Mapping[str, Sequence[str]] = field(default_factory=dict)  # attribute → values cycled over the faces
    release: str = "signed"
    self_identified: Mapping[str, str] = field(default_factory=dict)
    shoots: int = 1                                            # faces spread over this many shoots


def crop_png(index: int, side: int = CROP_SIDE) -> bytes:
    """A small, distinct, valid PNG for face number `index`."""
    colour = ((index * 37) % 256, (index * 91) % 256, (index * 53 + 17) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def add_pool(session: Session, blobs: BlobStore | None, sitters: Sequence[SitterPlan], *, shoot_date: dt.date = SHOOT_DATE,
             annotator: str = "annotator-1", distinct_crops: bool = True) -> dict[str, list[int]]:
    """Write the pool; returns each sitter's face ids. With `blobs` None (the benchmark) the crop
    hashes are recorded without files; with `distinct_crops` False every face shares one crop."""
    shoots: dict[int, int] = {}
    faces_of: dict[str, list[int]] = {}
    next_face = 0
    shared_crop = blobs.put_bytes(crop_png(0)) if blobs is not None and not distinct_crops else None
    for plan in sitters:
        person = Person(code=plan.code)
        session.add(person)
        session.flush()
        _release(session, person, plan.release, shoot_date)
        if plan.self_identified or plan.release.startswith("minor"):
            dob = shoot_date.replace(year=shoot_date.year - 10) if plan.release.startswith("minor") else None
            session.add(PersonalData(person_id=person.id, legal_name=f"Sitter {plan.code}", date_of_birth=dob,
                                     self_identified=dict(plan.self_identified)))
        shots, faces, labels = [], [], []
        frame_values = {a: cycle(v) for a, v in plan.frames.items()}
        for i in range(plan.faces):
            shoot_index = i % plan.shoots
            if shoot_index not in shoots:
                shoot = Shoot(name=f"pool shoot {shoot_index + 1}", shoot_date=shoot_date + dt.timedelta(days=shoot_index))
                session.add(shoot)
                session.flush()
                shoots[shoot_index] = shoot.id
            index = next_face
            next_face += 1
            if blobs is None:
                crop = hashlib.sha256(f"crop {index}".encode()).hexdigest()
            else:
                crop = shared_crop or blobs.put_bytes(crop_png(index))
            shots.append({
                "sha256": hashlib.sha256(f"shot {plan.code} {i}".encode()).hexdigest(), "shoot_id": shoots[shoot_index],
                "person_id": person.id, "sitter_code": plan.code, "relative_path": f"{plan.code}/{i:05d}.dng",
                "file_format": "dng", "file_size": 1, "width": 3072, "height": 2048,
                "capture_date": shoot_date + dt.timedelta(days=shoot_index), "status": ShotStatus.accepted,
                "face_count": 1, "qa": _qa(index), "exif": {},
            })
            faces.append({"crop": crop})
            values = {**plan.person, **{a: next(v) for a, v in frame_values.items()}}
            labels.append(values)
        shot_ids = list(session.scalars(insert(Shot).returning(Shot.id, sort_by_parameter_order=True), shots))
        face_rows = [{"shot_id": sid, "face_index": 0, "box": [0, 0, 1, 1], "score": 0.99, "landmarks": [], "quad": [],
                      "crop_size": CROP_SIDE, "crop_sha256": f["crop"], "qa": {}} for sid, f in zip(shot_ids, faces)]
        face_ids = list(session.scalars(insert(Face).returning(Face.id, sort_by_parameter_order=True), face_rows))
        session.execute(insert(Label), [
            {"face_id": fid, "attribute": a, "value": v, "known": True, "source": "annotation", "annotator": annotator,
             "state": LabelState.current}
            for fid, values in zip(face_ids, labels) for a, v in values.items()])
        faces_of[plan.code] = face_ids
    return faces_of


def _qa(index: int) -> dict[str, object]:
    """A passing shot QA record whose sharpness and face luma vary from face to face."""
    return {"version": 1, "passed": True, "failed": [], "checks": [
        {"name": "sharpness", "value": 50.0 + (index * 7919) % 100, "threshold": ">= 10", "passed": True},
        {"name": "face_luma", "value": 90.0 + (index * 104729) % 80, "threshold": "40..220", "passed": True}]}


def _release(session: Session, person: Person, kind: str, shoot_date: dt.date) -> None:
    if kind not in RELEASE_KINDS:
        raise ValueError(f"release kind {kind!r} is not one of {RELEASE_KINDS}")
    if kind == "none":
        return
    signed = shoot_date - dt.timedelta(days=30)
    session.add(Release(
        person_id=person.id, document_sha256=hashlib.sha256(f"release {person.code}".encode()).hexdigest(),
        document_name=f"{person.code}.pdf", document_type="application/pdf", signed_on=signed,
        expires_on=shoot_date + dt.timedelta(days=60) if kind == "expired" else None, scopes=["ai_training"],
        guardian_name="A. Guardian" if kind == "minor_guardian" else None,
        revoked_on=shoot_date + dt.timedelta(days=90) if kind == "revoked" else None,
        revoked_reason="withdrawn" if kind == "revoked" else None,
    ))
    session.flush()
