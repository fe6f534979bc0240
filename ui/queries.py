"""Read-only queries behind the pages. Each takes a session and returns plain frozen dataclasses,
so nothing tied to a session outlives the unit of work that loaded it."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ingest.api import release_status
from likeness.models import (
    Face, IngestFailure, Person, Release, Review, ReviewItem, Role, Scope, Shoot, Shot, ShotStatus, Thumb, User,
)


def active_role(session: Session, user_id: int) -> Role | None:
    """The user's role now, or None when the account is gone or deactivated."""
    role = session.scalar(select(User.role).where(User.id == user_id, User.active.is_(True)))
    return Role(role) if role is not None else None


# -- shoots ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShootRow:
    id: int
    name: str
    shoot_date: dt.date
    studio: str | None
    photographer: str | None
    counts: dict[str, int] = field(default_factory=dict)  # status -> shots
    failed: int = 0

    @property
    def shots(self) -> int:
        return sum(self.counts.values())

    def label(self) -> str:
        parts = [f"{self.counts.get(s.value, 0)} {s.value}" for s in ShotStatus if self.counts.get(s.value)]
        if self.failed:
            parts.append(f"{self.failed} failed")
        return f"{self.name} · {self.shoot_date} · {', '.join(parts) or 'no frames'}"


def list_shoots(session: Session) -> list[ShootRow]:
    """Every shoot, newest first, with its shots counted per status and its failed files."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for shoot_id, status, n in session.execute(
        select(Shot.shoot_id, Shot.status, func.count()).group_by(Shot.shoot_id, Shot.status)
    ):
        counts[shoot_id][status] = n
    failed = {
        shoot_id: n
        for shoot_id, n in session.execute(
            select(IngestFailure.shoot_id, func.count()).group_by(IngestFailure.shoot_id)
        )
    }
    return [
        ShootRow(
            id=s.id, name=s.name, shoot_date=s.shoot_date, studio=s.studio, photographer=s.photographer,
            counts=counts.get(s.id, {}), failed=failed.get(s.id, 0),
        )
        for s in session.scalars(select(Shoot).order_by(Shoot.shoot_date.desc(), Shoot.name))
    ]


@dataclass(frozen=True)
class FaceCard:
    crop_sha256: str | None
    ear_right: float | None
    ear_left: float | None
    iris_right: float | None
    iris_left: float | None
    yaw: float | None
    pitch: float | None
    roll: float | None


@dataclass(frozen=True)
class ShotCard:
    id: int
    relative_path: str
    sitter_code: str | None
    status: str
    reason: str | None
    reason_detail: str | None
    preview_sha256: str | None
    width: int
    height: int
    qa: dict | None
    faces: tuple[FaceCard, ...] = ()


def shoot_uses_folder(session: Session, folder: Path) -> bool:
    """Whether a stored shoot was ingested from `folder` (its source_path)."""
    source = str(folder.resolve())
    return session.scalar(select(func.count()).select_from(Shoot).where(Shoot.source_path == source)) > 0


def count_shots(session: Session, shoot_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Shot).where(Shot.shoot_id == shoot_id)) or 0


def contact_sheet(session: Session, shoot_id: int, *, offset: int = 0, limit: int = 24) -> list[ShotCard]:
    """One page of a shoot's shots in file order, with the measures of their faces."""
    shots = session.execute(
        select(
            Shot.id, Shot.relative_path, Shot.sitter_code, Shot.status, Shot.reason, Shot.reason_detail,
            Shot.preview_sha256, Shot.width, Shot.height, Shot.qa,
        )
        .where(Shot.shoot_id == shoot_id)
        .order_by(Shot.relative_path, Shot.id)
        .offset(offset)
        .limit(limit)
    ).all()
    faces: dict[int, list[FaceCard]] = defaultdict(list)
    if shots:
        # Columns only: the 478 landmarks per face are not needed here.
        for row in session.execute(
            select(
                Face.shot_id, Face.crop_sha256, Face.ear_right, Face.ear_left, Face.iris_right, Face.iris_left,
                Face.yaw, Face.pitch, Face.roll,
            )
            .where(Face.shot_id.in_([s.id for s in shots]))
            .order_by(Face.shot_id, Face.face_index)
        ):
            faces[row.shot_id].append(FaceCard(*row[1:]))
    return [ShotCard(*shot, faces=tuple(faces.get(shot.id, ()))) for shot in shots]


@dataclass(frozen=True)
class FailureRow:
    relative_path: str
    kind: str
    reason: str


def ingest_failures(session: Session, shoot_id: int) -> list[FailureRow]:
    return [
        FailureRow(*row)
        for row in session.execute(
            select(IngestFailure.relative_path, IngestFailure.kind, IngestFailure.reason)
            .where(IngestFailure.shoot_id == shoot_id)
            .order_by(IngestFailure.relative_path)
        )
    ]


# -- people (admin only: these rows carry personal data) -------------------------------------

@dataclass(frozen=True)
class PersonRow:
    code: str
    legal_name: str | None
    date_of_birth: dt.date | None
    email: str | None
    phone: str | None
    releases: int
    ai_training_today: str


def people_with_personal_data(session: Session, *, today: dt.date) -> list[PersonRow]:
    """Every sitter with their personal data and whether a release covers ai_training today."""
    rows = []
    for person in session.scalars(
        select(Person).options(selectinload(Person.releases), selectinload(Person.personal)).order_by(Person.code)
    ):
        status = release_status(person, today, Scope.ai_training)
        personal = person.personal
        rows.append(
            PersonRow(
                code=person.code,
                legal_name=personal.legal_name if personal else None,
                date_of_birth=personal.date_of_birth if personal else None,
                email=personal.email if personal else None,
                phone=personal.phone if personal else None,
                releases=len(person.releases),
                ai_training_today=status.state.value if status.valid else f"{status.state.value}: {status.detail}",
            )
        )
    return rows


def person_codes(session: Session) -> list[str]:
    return list(session.scalars(select(Person.code).order_by(Person.code)))


@dataclass(frozen=True)
class ReleaseRow:
    id: int
    person: str
    signed_on: dt.date
    expires_on: dt.date | None
    scopes: str
    guardian: str | None
    witness: str | None
    document: str
    revoked_on: dt.date | None
    revoked_reason: str | None

    def label(self) -> str:
        return f"#{self.id} · {self.person} · signed {self.signed_on} · {self.scopes}"


def list_releases(session: Session) -> list[ReleaseRow]:
    return [
        ReleaseRow(
            id=r.id, person=code, signed_on=r.signed_on, expires_on=r.expires_on, scopes=", ".join(r.scopes or []),
            guardian=r.guardian_name, witness=r.witness_name, document=f"{r.document_name} ({r.document_type})",
            revoked_on=r.revoked_on, revoked_reason=r.revoked_reason,
        )
        for r, code in session.execute(
            select(Release, Person.code).join(Person, Release.person_id == Person.id).order_by(Person.code, Release.id)
        )
    ]


# -- review ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReviewCard:
    """One face in the review grid: what the thumbnail and its badge need (no measures)."""

    id: int
    image_sha256: str
    flag: str | None
    flag_confidence: float | None


def review_cards(session: Session, item_ids: list[int]) -> list[ReviewCard]:
    """The items in the order given; ids that no longer exist are left out."""
    if not item_ids:
        return []
    rows = {
        row.id: ReviewCard(*row)
        for row in session.execute(
            select(ReviewItem.id, ReviewItem.image_sha256, ReviewItem.flag, ReviewItem.flag_confidence)
            .where(ReviewItem.id.in_(item_ids))
        )
    }
    return [rows[i] for i in item_ids if i in rows]


def review_measures(session: Session, item_id: int) -> dict:
    """The detector's verdict stored with the item (state, confidence, reason, measures)."""
    return session.scalar(select(ReviewItem.measures).where(ReviewItem.id == item_id)) or {}


def my_votes(session: Session, reviewer_id: int, item_ids: list[int]) -> dict[int, tuple[str, tuple[str, ...]]]:
    """This reviewer's votes on the given items: item id -> (thumb, reasons)."""
    if not item_ids:
        return {}
    return {
        item_id: (thumb, tuple(reasons or ()))
        for item_id, thumb, reasons in session.execute(
            select(Review.item_id, Review.thumb, Review.reasons)
            .where(Review.reviewer_id == reviewer_id, Review.item_id.in_(item_ids))
        )
    }


@dataclass(frozen=True)
class ReviewProgress:
    items: int
    reviewed: int  # items this reviewer has voted on
    up: int
    down: int
    reasons: dict[str, int] = field(default_factory=dict)  # this reviewer's thumbs-down reasons


def review_progress(session: Session, reviewer_id: int) -> ReviewProgress:
    """Counted on every key press, so the thumbs are counted in SQL and only thumbs-down rows are read."""
    items = session.scalar(select(func.count()).select_from(ReviewItem)) or 0
    thumbs = dict(
        session.execute(
            select(Review.thumb, func.count()).where(Review.reviewer_id == reviewer_id).group_by(Review.thumb)
        ).all()
    )
    reasons: dict[str, int] = defaultdict(int)
    for given in session.scalars(
        select(Review.reasons).where(Review.reviewer_id == reviewer_id, Review.thumb == Thumb.down.value)
    ):
        for reason in given or ():
            reasons[reason] += 1
    up, down = thumbs.get(Thumb.up.value, 0), thumbs.get(Thumb.down.value, 0)
    return ReviewProgress(items=items, reviewed=up + down, up=up, down=down, reasons=dict(reasons))
