"""Read-only queries on shoots, shots, sitters and releases for the CLI and the pages. Each
takes a session and returns plain frozen dataclasses, so nothing tied to a session outlives the
unit of work that loaded it; column-only selects where whole rows are not needed."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, selectinload

from ingest.gate import CONSENT_REASONS
from ingest.people import EXPIRY_WARNING_DAYS, normalise_code
from ingest.releases import release_status
from likeness.errors import InvalidInput
from likeness.models import Face, IngestFailure, Person, PersonalData, Release, Scope, Shoot, Shot, ShotStatus

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


def list_shoots(*, session: Session) -> list[ShootRow]:
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
    withheld: bool = False  # consent does not cover it: shown to admins only, pixels withheld from others
    # Camera settings from EXIF (None where the file did not record them).
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    iso: float | None = None
    shutter_s: float | None = None
    aperture: float | None = None
    focal_length_mm: float | None = None
    captured_at: dt.datetime | None = None

    @property
    def camera(self) -> str | None:
        """Make and model, without the make repeated when the model already starts with it."""
        make, model = (self.make or "").strip(), (self.model or "").strip()
        if model.lower().startswith(make.lower()):
            make = ""
        return " ".join(p for p in (make, model) if p) or None

    def exposure(self) -> str | None:
        """ISO, shutter and aperture as a photographer writes them: ISO 100 · 1/125 s · f/2.8 · 85 mm."""
        parts = []
        if self.iso:
            parts.append(f"ISO {self.iso:g}")
        if self.shutter_s:
            parts.append(f"1/{1 / self.shutter_s:.0f} s" if self.shutter_s < 0.5 else f"{self.shutter_s:g} s")
        if self.aperture:
            parts.append(f"f/{self.aperture:g}")
        if self.focal_length_mm:
            parts.append(f"{self.focal_length_mm:g} mm")
        return " · ".join(parts) or None


NO_SITTER = ""  # the sitter filter's value for frames that no folder or row assigns
SORTS = {  # contact-sheet orders: name -> what the page shows
    "file": "file name",
    "captured": "capture time",
    "status": "status",
    "sitter": "sitter",
}


@dataclass(frozen=True)
class SheetFilter:
    """Which shots of a shoot the contact sheet shows, and in what order. Empty means all."""

    statuses: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    sitters: tuple[str, ...] = ()  # NO_SITTER for frames without a sitter
    relative_paths: tuple[str, ...] = ()
    sort: str = "file"


@dataclass(frozen=True)
class SheetFacets:
    """The statuses, reasons and sitters a shoot's shots have: what the filters offer."""

    statuses: tuple[str, ...]
    reasons: tuple[str, ...]
    sitters: tuple[str, ...]


def sheet_facets(*, session: Session, shoot_id: int) -> SheetFacets:
    rows = session.execute(
        select(Shot.status, Shot.reason, Shot.sitter_code).where(Shot.shoot_id == shoot_id).distinct()
    ).all()
    return SheetFacets(
        statuses=tuple(s.value for s in ShotStatus if any(r.status is s for r in rows)),
        reasons=tuple(sorted({r.reason for r in rows if r.reason})),
        sitters=tuple(sorted({r.sitter_code or NO_SITTER for r in rows})),
    )


def _filtered(query: Any, shoot_id: int, where: SheetFilter) -> Any:
    query = query.where(Shot.shoot_id == shoot_id)
    if where.statuses:
        query = query.where(Shot.status.in_([ShotStatus(s) for s in where.statuses]))
    if where.reasons:
        query = query.where(Shot.reason.in_(where.reasons))
    if where.sitters:
        named = [s for s in where.sitters if s != NO_SITTER]
        condition: ColumnElement[bool] = Shot.sitter_code.in_(named)
        if NO_SITTER in where.sitters:
            condition = or_(condition, Shot.sitter_code.is_(None))
        query = query.where(condition)
    if where.relative_paths:
        query = query.where(Shot.relative_path.in_(where.relative_paths))
    return query


def shoot_uses_folder(*, session: Session, folder: Path) -> bool:
    """Whether a stored shoot was ingested from `folder` (its source_path)."""
    source = str(folder.resolve())
    return (session.scalar(select(func.count()).select_from(Shoot).where(Shoot.source_path == source)) or 0) > 0


def count_shots(*, session: Session, shoot_id: int, where: SheetFilter = SheetFilter()) -> int:
    """How many of the shoot's shots the filter lets through."""
    return session.scalar(_filtered(select(func.count()).select_from(Shot), shoot_id, where)) or 0


def _order(sort: str) -> list[Any]:
    if sort not in SORTS:
        raise InvalidInput(f"the contact sheet cannot be sorted by {sort!r}", hint=f"sort by {', '.join(SORTS)}")
    orders: dict[str, list[Any]] = {
        "file": [],
        "captured": [Shot.captured_at.is_(None), Shot.captured_at],
        "status": [Shot.status, Shot.reason],
        "sitter": [Shot.sitter_code.is_(None), Shot.sitter_code],
    }
    return [*orders[sort], Shot.relative_path, Shot.id]


def contact_sheet(
    *, session: Session, shoot_id: int, offset: int = 0, limit: int = 24, show_unreleased: bool = False,
    where: SheetFilter = SheetFilter(),
) -> list[ShotCard]:
    """One page of a shoot's shots (file order unless ``where.sort`` says otherwise, only those
    ``where`` lets through), with the measures of their faces and the camera's EXIF settings.
    Frames whose sitter's consent does not cover them come without preview or crops unless
    ``show_unreleased`` (admins), and are marked ``withheld`` either way."""
    shots = session.execute(
        _filtered(
            select(
                Shot.id, Shot.relative_path, Shot.sitter_code, Shot.status, Shot.reason, Shot.reason_detail,
                Shot.preview_sha256, Shot.width, Shot.height, Shot.qa, Shot.make, Shot.model, Shot.lens, Shot.iso,
                Shot.shutter_s, Shot.aperture, Shot.focal_length_mm, Shot.captured_at,
            ),
            shoot_id, where,
        )
        .order_by(*_order(where.sort))
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
    cards = []
    for shot in shots:
        withheld = shot.status is ShotStatus.quarantined and shot.reason in CONSENT_REASONS
        card = ShotCard(**shot._mapping, faces=tuple(faces.get(shot.id, ())), withheld=withheld)
        if withheld and not show_unreleased:
            card = replace(card, preview_sha256=None, faces=tuple(replace(f, crop_sha256=None) for f in card.faces))
        cards.append(card)
    return cards


@dataclass(frozen=True)
class FailureRow:
    relative_path: str
    kind: str
    reason: str


def ingest_failures(*, session: Session, shoot_id: int) -> list[FailureRow]:
    return [
        FailureRow(*row)
        for row in session.execute(
            select(IngestFailure.relative_path, IngestFailure.kind, IngestFailure.reason)
            .where(IngestFailure.shoot_id == shoot_id)
            .order_by(IngestFailure.relative_path)
        )
    ]


# -- people ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonRow:
    """A sitter and whether a release covers ``ai_training`` today. The personal fields are
    filled only when asked for (admins)."""

    code: str
    releases: int
    ai_training_today: str  # the release state, with its detail when it is not valid
    legal_name: str | None = None
    date_of_birth: dt.date | None = None
    email: str | None = None
    phone: str | None = None


def list_people(
    *, session: Session, today: dt.date, personal_data: bool = False, search: str | None = None
) -> list[PersonRow]:
    """Every sitter by code with their release count and today's ``ai_training`` status;
    ``personal_data`` adds the admin-only fields. ``search`` keeps the sitters whose code (and,
    with ``personal_data``, legal name or email) contains it, ignoring case."""
    query = select(Person).options(selectinload(Person.releases)).order_by(Person.code)
    if personal_data:
        query = query.options(selectinload(Person.personal))
    term = (search or "").strip().lower()
    if term:
        matches = [func.lower(Person.code).contains(term, autoescape=True)]
        if personal_data:
            query = query.outerjoin(PersonalData, PersonalData.person_id == Person.id)
            matches += [
                func.lower(PersonalData.legal_name).contains(term, autoescape=True),
                func.lower(PersonalData.email).contains(term, autoescape=True),
            ]
        query = query.where(or_(*matches))
    rows = []
    for person in session.scalars(query):
        status = release_status(person, today, Scope.ai_training)
        personal = person.personal if personal_data else None
        rows.append(
            PersonRow(
                code=person.code,
                releases=len(person.releases),
                ai_training_today=status.state.value if status.valid else f"{status.state.value}: {status.detail}",
                legal_name=personal.legal_name if personal else None,
                date_of_birth=personal.date_of_birth if personal else None,
                email=personal.email if personal else None,
                phone=personal.phone if personal else None,
            )
        )
    return rows


def person_codes(*, session: Session) -> list[str]:
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

    def expiry_warning(self, today: dt.date, within_days: int = EXPIRY_WARNING_DAYS) -> str | None:
        """'… expired on …' or '… expires on … (in N days)' for an unrevoked release that has run
        out or will within ``within_days``; None otherwise."""
        if self.revoked_on is not None or self.expires_on is None:
            return None
        if self.expires_on < today:
            return f"release #{self.id} of {self.person} expired on {self.expires_on}"
        days = (self.expires_on - today).days
        if days <= within_days:
            when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
            return f"release #{self.id} of {self.person} expires on {self.expires_on} ({when})"
        return None


def list_releases(*, session: Session, person_code: str | None = None) -> list[ReleaseRow]:
    """Releases by sitter code and id; only one sitter's with ``person_code``."""
    query = select(Release, Person.code).join(Person, Release.person_id == Person.id).order_by(Person.code, Release.id)
    if person_code is not None:
        query = query.where(Person.code == normalise_code(person_code))
    return [
        ReleaseRow(
            id=r.id, person=code, signed_on=r.signed_on, expires_on=r.expires_on, scopes=", ".join(r.scopes or []),
            guardian=r.guardian_name, witness=r.witness_name, document=f"{r.document_name} ({r.document_type})",
            revoked_on=r.revoked_on, revoked_reason=r.revoked_reason,
        )
        for r, code in session.execute(query)
    ]
