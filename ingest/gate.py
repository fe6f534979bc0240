"""The consent and face gate that decides each shot's status, at ingest and on recheck."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ingest.releases import ReleaseState, release_status
from likeness import audit
from likeness.errors import InvalidInput
from likeness.models import Person, Shoot, Shot, ShotStatus

log = logging.getLogger(__name__)

_CONSENT_REASON = {
    ReleaseState.missing: "no_release",
    ReleaseState.expired: "release_expired",
    ReleaseState.revoked: "release_revoked",
    ReleaseState.minor_without_guardian: "minor_without_guardian",
}


# Camera clocks drift and are left on another time zone; beyond this the frame's own date and
# the manifest's disagree and an admin decides which is right.
CAPTURE_DATE_TOLERANCE = dt.timedelta(days=1)
# A shoot dated after tomorrow (any time zone) cannot have happened yet.
MAX_SHOOT_DATE_AHEAD = dt.timedelta(days=1)
QA_REASON_PREFIX = "qa_"
# Quarantine reasons that mean the sitter's consent does not cover the frame: its pixels are
# shown to admins only.
FACE_REASONS = frozenset({"no_face", "several_faces"})
CONSENT_REASONS = frozenset({*_CONSENT_REASON.values(), "unknown_sitter", "capture_date_mismatch"})


@dataclass(frozen=True)
class ConsentVerdict:
    """A shot's status and why: the one place both consent and shot QA decide it."""

    status: ShotStatus
    reason: str | None
    detail: str | None


def check_shoot_date(shoot_date: dt.date, *, source: str, today: dt.date | None = None) -> None:
    """Refuse a shoot dated in the future: releases are judged against capture dates."""
    today = today or dt.date.today()
    if shoot_date > today + MAX_SHOOT_DATE_AHEAD:
        raise InvalidInput(f"{source}: the shoot date {shoot_date} is in the future (today is {today})",
                           hint="put the day the frames were taken in shoot.toml")


def capture_date(captured_at: dt.datetime | None, shoot_date: dt.date) -> dt.date:
    """The frame's own date when the camera recorded one, else the shoot's."""
    return captured_at.date() if captured_at is not None else shoot_date


def classify(
    *, sitter_code: str | None, person: Person | None, capture_date: dt.date, face_count: int,
    shoot_date: dt.date | None = None,
) -> ConsentVerdict:
    """Accepted only with a known sitter, a capture date that agrees with the shoot's, a valid
    ai_training release on that date (and on the shoot's, when the two differ) and one face."""
    if sitter_code is None:
        return ConsentVerdict(ShotStatus.quarantined, "unknown_sitter", "no sitter folder or frames.csv entry names this frame")
    if person is None:
        return ConsentVerdict(ShotStatus.quarantined, "unknown_sitter", f"sitter {sitter_code} is not registered (`likeness person add`)")
    dates = [capture_date]
    if shoot_date is not None and shoot_date != capture_date:
        if abs(capture_date - shoot_date) > CAPTURE_DATE_TOLERANCE:
            return ConsentVerdict(ShotStatus.quarantined, "capture_date_mismatch",
                                  f"the camera recorded {capture_date} but shoot.toml says {shoot_date} "
                                  f"(more than {CAPTURE_DATE_TOLERANCE.days} day apart)")
        dates.append(shoot_date)
    for day in dates:
        consent = release_status(person, day, "ai_training")
        if not consent.valid:
            return ConsentVerdict(ShotStatus.quarantined, _CONSENT_REASON[consent.state], consent.detail)
    if face_count == 0:
        return ConsentVerdict(ShotStatus.quarantined, "no_face", "no face found")
    if face_count > 1:
        return ConsentVerdict(ShotStatus.quarantined, "several_faces", f"{face_count} faces found")
    return ConsentVerdict(ShotStatus.accepted, None, None)


def with_qa(consent: ConsentVerdict, qa: dict[str, Any] | None) -> ConsentVerdict:
    """Consent first, then shot QA: a frame that may be used but failed a check is rejected."""
    if consent.status is not ShotStatus.accepted or not qa or qa.get("passed") is not False:
        return consent
    failed = [c for c in qa.get("checks", []) if c.get("passed") is False]
    if not failed:
        return consent
    detail = "; ".join(f"{c['name']} = {c['value']} (needs {c['threshold']})" for c in failed)
    return ConsentVerdict(ShotStatus.rejected, QA_REASON_PREFIX + failed[0]["name"], detail)


@dataclass
class RecheckResult:
    """What a recheck changed: shots that moved to each status, and quarantined shots whose
    reason changed (say, no face and now also no release)."""

    examined: int = 0
    accepted: int = 0
    quarantined: int = 0
    rejected: int = 0
    reason_changed: int = 0

    def describe(self) -> str:
        parts = [f"{self.accepted} now accepted", f"{self.quarantined} newly quarantined",
                 f"{self.rejected} now rejected by QA"]
        if self.reason_changed:
            parts.append(f"{self.reason_changed} already quarantined with a new reason")
        return f"{self.examined} frames examined: {', '.join(parts)}"

    def count(self, before: ShotStatus, after: ShotStatus) -> None:
        if before is after:
            self.reason_changed += 1
        elif after is ShotStatus.accepted:
            self.accepted += 1
        elif after is ShotStatus.quarantined:
            self.quarantined += 1
        else:
            self.rejected += 1


def update_status(
    *, session: Session, shot: Shot, person: Person | None, shoot_date: dt.date, actor: str
) -> ShotStatus | None:
    """Derive the shot's status from its sitter's releases and its stored QA and write it, with an
    audit event; returns the status it had before when status or reason changed, else None."""
    verdict = with_qa(
        classify(sitter_code=shot.sitter_code, person=person, face_count=shot.face_count, shoot_date=shoot_date,
                 capture_date=capture_date(shot.captured_at, shoot_date)),
        shot.qa,
    )
    shot.person_id = person.id if person else None
    shot.capture_date = capture_date(shot.captured_at, shoot_date)
    if (verdict.status, verdict.reason) == (shot.status, shot.reason):
        if verdict.reason not in FACE_REASONS:  # the detection's own detail (what it refused) stays
            shot.reason_detail = verdict.detail
        return None
    before = shot.status
    audit.record(
        session=session, actor=actor, action="shot.status", subject_type="shot", subject_id=shot.id,
        before=[shot.status, shot.reason], after=[verdict.status, verdict.reason],
    )
    shot.status, shot.reason, shot.reason_detail = verdict.status, verdict.reason, verdict.detail
    return before


def recheck(
    *, session: Session, actor: str, shoot_id: int | None = None, person_code: str | None = None
) -> RecheckResult:
    """Re-derive stored shots' status (no decoding) after a release or person is added or
    revoked; QA verdicts already stored still count."""
    query = select(Shot)
    if shoot_id is not None:
        query = query.where(Shot.shoot_id == shoot_id)
    if person_code is not None:
        query = query.where(Shot.sitter_code == person_code)
    people = {
        p.code: p
        for p in session.scalars(select(Person).options(selectinload(Person.releases), selectinload(Person.personal)))
    }
    shoot_dates: dict[int, dt.date] = dict(session.execute(select(Shoot.id, Shoot.shoot_date)).all())
    result = RecheckResult()
    for shot in session.scalars(query):
        result.examined += 1
        person = people.get(shot.sitter_code) if shot.sitter_code else None
        before = update_status(session=session, shot=shot, person=person, shoot_date=shoot_dates[shot.shoot_id],
                               actor=actor)
        if before is not None:
            result.count(before, shot.status)
    session.flush()
    return result
