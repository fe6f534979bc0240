"""The consent and face gate that decides each shot's status, at ingest and on recheck."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ingest.releases import ReleaseState, release_status
from likeness import audit
from likeness.models import Person, Shot, ShotStatus

log = logging.getLogger(__name__)

_CONSENT_REASON = {
    ReleaseState.missing: "no_release",
    ReleaseState.expired: "release_expired",
    ReleaseState.revoked: "release_revoked",
    ReleaseState.minor_without_guardian: "minor_without_guardian",
}


@dataclass(frozen=True)
class ConsentVerdict:
    status: ShotStatus
    reason: str | None
    detail: str | None


def classify(*, sitter_code: str | None, person: Person | None, capture_date: dt.date, face_count: int) -> ConsentVerdict:
    """Accepted only with a known sitter, a valid ai_training release and exactly one face."""
    if sitter_code is None:
        return ConsentVerdict(ShotStatus.quarantined, "unknown_sitter", "no sitter folder or frames.csv entry names this frame")
    if person is None:
        return ConsentVerdict(ShotStatus.quarantined, "unknown_sitter", f"sitter {sitter_code} is not registered (`likeness person add`)")
    consent = release_status(person, capture_date, "ai_training")
    if not consent.valid:
        return ConsentVerdict(ShotStatus.quarantined, _CONSENT_REASON[consent.state], consent.detail)
    if face_count == 0:
        return ConsentVerdict(ShotStatus.quarantined, "no_face", "no face found")
    if face_count > 1:
        return ConsentVerdict(ShotStatus.quarantined, "several_faces", f"{face_count} faces found")
    return ConsentVerdict(ShotStatus.accepted, None, None)


@dataclass
class RecheckResult:
    examined: int = 0
    accepted: int = 0
    quarantined: int = 0


def recheck(
    *, session: Session, actor: str, shoot_id: int | None = None, person_code: str | None = None
) -> RecheckResult:
    """Re-apply the gate to stored shots (no decoding): after a release or person is added,
    revoked, or a sitter registered. Shots rejected by QA stay rejected."""
    query = select(Shot).where(Shot.status != ShotStatus.rejected)
    if shoot_id is not None:
        query = query.where(Shot.shoot_id == shoot_id)
    if person_code is not None:
        query = query.where(Shot.sitter_code == person_code)
    people = {
        p.code: p
        for p in session.scalars(select(Person).options(selectinload(Person.releases), selectinload(Person.personal)))
    }
    result = RecheckResult()
    for shot in session.scalars(query):
        result.examined += 1
        person = people.get(shot.sitter_code) if shot.sitter_code else None
        verdict = classify(
            sitter_code=shot.sitter_code, person=person, capture_date=shot.capture_date, face_count=shot.face_count
        )
        if (verdict.status, verdict.reason) != (shot.status, shot.reason):
            audit.record(
                session=session, actor=actor, action="shot.status", subject_type="shot", subject_id=shot.id,
                before=[shot.status, shot.reason], after=[verdict.status, verdict.reason],
            )
            shot.status, shot.reason, shot.reason_detail = verdict.status, verdict.reason, verdict.detail
            shot.person_id = person.id if person else None
            if verdict.status is ShotStatus.accepted:
                result.accepted += 1
            else:
                result.quarantined += 1
    session.flush()
    return result
