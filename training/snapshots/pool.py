"""The eligible pool: the faces a snapshot may contain, with their consensus attributes.

A face is eligible when its shot is accepted (and passed shot QA, when the spec asks), its crop
exists, it matches the spec's filters, and its sitter holds one release that covers
`ai_training` on the capture date and still does on the build date
(`ingest.releases.release_status(..., still_on=)`, the one consent rule). Attribute values come
from the labeling consensus: a face whose value is tied or missing for an attribute the spec
uses is left out and counted, never guessed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ingest.releases import ReleaseState, ReleaseStatus, release_status
from labeling.api import consensus_values
from likeness.errors import ConsentViolation, NotFound
from likeness.models import Face, Person, Shoot, Shot, ShotStatus
from training.snapshots.spec import SELF_PREFIX, Spec

# SQLite allows 32,766 bound parameters: larger pools read every label and filter here.
MAX_IN_LIST = 20_000


@dataclass(frozen=True)
class Candidate:
    face_id: int
    shot_id: int
    person_id: int
    person_code: str
    release_id: int
    shoot_id: int
    crop_sha256: str
    capture_date: dt.date
    quality: float                     # 0..1: sharper and better exposed is higher
    attributes: dict[str, str]         # consensus values (and self.KEY statements) the spec uses


@dataclass
class Pool:
    candidates: list[Candidate]
    excluded: dict[str, int] = field(default_factory=dict)     # reason → faces
    tied: dict[str, int] = field(default_factory=dict)         # attribute → faces with a tied consensus
    unlabelled: dict[str, int] = field(default_factory=dict)   # attribute → faces with no value
    # person code → their values of person-level attributes, for everyone released today
    released_people: dict[str, dict[str, str]] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {"eligible": len(self.candidates), "excluded": dict(sorted(self.excluded.items())),
                "tied": dict(sorted(self.tied.items())), "unlabelled": dict(sorted(self.unlabelled.items()))}


def eligible_pool(*, session: Session, spec: Spec, today: dt.date, admin: bool) -> Pool:
    """The faces `spec` may choose from on `today`. NotFound for a shoot the spec names that does not exist."""
    shoot_ids = _shoot_ids(session, spec.filters.shoots)
    rows = _accepted_faces(session, spec, shoot_ids)
    excluded: Counter[str] = Counter()
    people = _people(session, {row.person_id for row in rows})
    consent: dict[tuple[int, dt.date], ReleaseStatus] = {}
    consented = []
    qa_passed = spec.filters.shot_qa == "passed"
    for row in rows:
        key = (row.person_id, row.capture_date)
        verdict = consent.get(key)
        if verdict is None:
            verdict = consent[key] = release_status(people[row.person_id], row.capture_date, still_on=today)
        if verdict.state is not ReleaseState.valid:
            excluded[f"consent: {verdict.state}"] += 1
            continue
        if qa_passed and not (row.qa or {}).get("passed"):
            excluded["shot QA not passed"] += 1
            continue
        consented.append((row, verdict.release_id))

    attributes_used = spec.attributes        # a property: computed once here, not per face
    self_identified = spec.self_identified
    label_filters = list(spec.filters.labels.items())
    needed = set(attributes_used) | set(spec.filters.labels)
    values = _consensus_values(session, [row.face_id for row, _ in consented], needed)
    tied: Counter[str] = Counter()
    unlabelled: Counter[str] = Counter()
    quality = _quality([row.qa for row, _ in consented])
    statements: dict[int, dict[str, str]] = {}
    no_values: dict[str, str | None] = {}
    candidates = []
    for (row, release_id), score in zip(consented, quality):
        face_values = values.get(row.face_id, no_values)
        if any(face_values.get(a) != v for a, v in label_filters):
            excluded["label filter"] += 1
            continue
        missing = [a for a in attributes_used if face_values.get(a) is None]
        if missing:
            for attribute in missing:
                (tied if attribute in face_values else unlabelled)[attribute] += 1
            excluded["attribute tied or unlabelled"] += 1
            continue
        attributes = {a: str(face_values[a]) for a in attributes_used}
        if self_identified:
            statement = statements.get(row.person_id)
            if statement is None:
                statement = statements[row.person_id] = _self_identified(people[row.person_id], admin=admin)
            for intake_key in self_identified:
                if intake_key not in statement:
                    unlabelled[SELF_PREFIX + intake_key] += 1
            attributes.update({SELF_PREFIX + k: statement[k] for k in self_identified if k in statement})
            if any(SELF_PREFIX + k not in attributes for k in self_identified):
                excluded["no self-identified statement"] += 1
                continue
        candidates.append(Candidate(
            face_id=row.face_id, shot_id=row.shot_id, person_id=row.person_id, person_code=people[row.person_id].code,
            release_id=int(release_id or 0), shoot_id=row.shoot_id, crop_sha256=row.crop_sha256,
            capture_date=row.capture_date, quality=score, attributes=attributes,
        ))
    face_people = {row.face_id: row.person_id for row, _ in consented}
    return Pool(candidates, dict(excluded), dict(tied), dict(unlabelled),
                _released_people(session, people, values, today, spec, face_people))


class _Row(NamedTuple):
    face_id: int
    shot_id: int
    person_id: int
    shoot_id: int
    crop_sha256: str
    capture_date: dt.date
    qa: dict[str, Any]


def _shoot_ids(session: Session, names: Iterable[str]) -> list[int] | None:
    names = list(names)
    if not names:
        return None
    found = dict(session.execute(select(Shoot.name, Shoot.id).where(Shoot.name.in_(names))).all())
    unknown = [n for n in names if n not in found]
    if unknown:
        raise NotFound(f"filters.shoots: no shoot named {unknown[0]!r}", hint="`likeness ingest` lists the shoots it knows")
    return [found[n] for n in names]


def _accepted_faces(session: Session, spec: Spec, shoot_ids: list[int] | None) -> list[_Row]:
    query = (select(Face.id, Face.shot_id, Shot.person_id, Shot.shoot_id, Face.crop_sha256, Shot.capture_date, Shot.qa)
             .join(Shot, Shot.id == Face.shot_id)
             .where(Shot.status == ShotStatus.accepted, Shot.person_id.is_not(None), Face.crop_sha256.is_not(None))
             .order_by(Face.id))
    if shoot_ids is not None:
        query = query.where(Shot.shoot_id.in_(shoot_ids))
    if spec.filters.captured_from is not None:
        query = query.where(Shot.capture_date >= spec.filters.captured_from)
    if spec.filters.captured_to is not None:
        query = query.where(Shot.capture_date <= spec.filters.captured_to)
    return [_Row(*row) for row in session.execute(query)]


def _people(session: Session, ids: set[int]) -> dict[int, Person]:
    query = select(Person).options(selectinload(Person.releases), selectinload(Person.personal))
    if len(ids) <= MAX_IN_LIST:
        query = query.where(Person.id.in_(ids))
    return {p.id: p for p in session.scalars(query)}


def _consensus_values(session: Session, face_ids: list[int], attributes: set[str]) -> dict[int, dict[str, str | None]]:
    """face → attribute → consensus value (None when tied)."""
    if len(face_ids) <= MAX_IN_LIST:
        return consensus_values(session=session, attributes=attributes, face_ids=face_ids)
    wanted = set(face_ids)
    found = consensus_values(session=session, attributes=attributes)
    return {face_id: values for face_id, values in found.items() if face_id in wanted}


def _quality(qas: list[dict[str, Any] | None]) -> list[float]:
    """Sharpness as a rank within the pool (units differ between cameras and sizes), blended with
    how close the face's mean luma is to mid-grey."""
    sharp = np.array([_check_value(qa, "sharpness", 0.0) for qa in qas], dtype=float)
    luma = np.array([_check_value(qa, "face_luma", 128.0) for qa in qas], dtype=float)
    if not len(sharp):
        return []
    ranks = sharp.argsort().argsort() / max(len(sharp) - 1, 1)
    exposure = 1.0 - np.clip(np.abs(luma - 128.0) / 128.0, 0.0, 1.0)
    return [round(float(q), 6) for q in 0.7 * ranks + 0.3 * exposure]


def _check_value(qa: dict[str, Any] | None, name: str, default: float) -> float:
    for check in (qa or {}).get("checks", []):
        if check.get("name") == name and isinstance(check.get("value"), int | float):
            return float(check["value"])
    return default


def _self_identified(person: Person, *, admin: bool) -> dict[str, str]:
    if not admin:
        raise ConsentViolation("a quota on a self-identified statement needs the admin role",
                               hint="ask an admin to build this snapshot")
    statement = person.personal.self_identified if person.personal is not None else {}
    return {str(k): str(v) for k, v in (statement or {}).items() if v not in (None, "")}


# Attributes of the person rather than of the frame: the capture stage can ask for a smile at the
# next shoot, not for another age band.
PERSON_LEVEL = frozenset({"age_band", "gender_presentation", "skin_tone", "facial_hair", "hair_length", "hair_colour"})


def _released_people(session: Session, people: dict[int, Person], values: dict[int, dict[str, str | None]],
                     today: dt.date, spec: Spec, face_people: dict[int, int]) -> dict[str, dict[str, str]]:
    """Everyone whose release covers a capture today, with the majority of their faces' values of
    the person-level attributes the spec uses (who could fill a shortfall at the next shoot)."""
    everyone = {p.id: p for p in session.scalars(
        select(Person).options(selectinload(Person.releases), selectinload(Person.personal)))}
    everyone.update(people)
    person_attributes = [a for a in spec.attributes if a in PERSON_LEVEL]
    votes: dict[int, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for face_id, face_values in values.items():
        person_id = face_people.get(face_id)
        for attribute in person_attributes:
            value = face_values.get(attribute)
            if person_id is not None and value is not None:
                votes[person_id][attribute][value] += 1
    out = {}
    for person in sorted(everyone.values(), key=lambda p: p.code):
        if not release_status(person, today).valid:
            continue
        majority = {a: counts.most_common(1)[0][0] for a, counts in votes.get(person.id, {}).items()}
        if spec.self_identified and person.personal is not None:
            majority.update({SELF_PREFIX + str(k): str(v) for k, v in (person.personal.self_identified or {}).items()})
        out[person.code] = majority
    return out
