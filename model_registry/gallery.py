"""The gallery of generated faces: the approved, untainted ones, filtered by what they show.

A face is approved when the learned filter accepted it, or when reviewers voted it up (more
thumbs up than down) and the filter did not reject it; a face of a tainted checkpoint never is.
Filters read the face's attributes (qa.generated): the conditioning label's values (age band,
gender presentation, expression, head pose, …) and the Monk skin tone measured under the face
mesh. Every filter is a condition in SQL, on both databases, so a page of a 100,000-face gallery
reads one page of rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from likeness.models import Checkpoint, GeneratedImage, Review, ReviewItem, Thumb

LABELLED = ("age_band", "gender_presentation", "expression", "head_pose")   # offered as filters when faces carry them
PAGE = 48


@dataclasses.dataclass(frozen=True)
class GalleryFilter:
    labels: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)   # attribute -> any of these values
    monk: tuple[int, int] | None = None        # measured Monk tone, inclusive
    checkpoints: Sequence[int] = ()            # any of these; empty: all
    matching_label: bool = False               # only faces whose measurements agree with their label


@dataclasses.dataclass(frozen=True)
class GalleryFace:
    image_id: int
    image_sha256: str
    checkpoint_id: int
    seed: int
    psi: float
    label: dict[str, str]
    measured: dict[str, Any]
    mismatch: list[str]
    approved_by: str                           # "the filter" or "reviewers"


def _label(name: str) -> Any:
    return GeneratedImage.attributes[("label", name)].as_string()


def approved() -> ColumnElement[bool]:
    """Accepted by the filter, or voted up by reviewers and not rejected by the filter; never
    from a tainted checkpoint."""
    up = func.sum(case((Review.thumb == Thumb.up, 1), else_=-1))
    voted_up = (select(ReviewItem.image_sha256).join(Review, Review.item_id == ReviewItem.id)
                .group_by(ReviewItem.image_sha256).having(up > 0))
    clean = GeneratedImage.checkpoint_id.in_(select(Checkpoint.id).where(Checkpoint.tainted.is_(False)))
    return and_(clean, or_(GeneratedImage.decision == "accept",
                           and_(func.coalesce(GeneratedImage.decision, "") != "reject",
                                GeneratedImage.image_sha256.in_(voted_up))))


def _where(chosen: GalleryFilter) -> list[ColumnElement[bool]]:
    where = [approved()]
    for name, values in chosen.labels.items():
        if values:
            where.append(_label(name).in_(list(values)))
    if chosen.monk is not None:
        tone = GeneratedImage.attributes[("measured", "monk_tone")].as_integer()
        where.append(tone.between(*chosen.monk))
    if chosen.checkpoints:
        where.append(GeneratedImage.checkpoint_id.in_(list(chosen.checkpoints)))
    if chosen.matching_label:
        where.append(func.coalesce(func.json_array_length(GeneratedImage.attributes[("mismatch",)]), 0) == 0)
    return where


def count(session: Session, chosen: GalleryFilter) -> int:
    return session.scalar(select(func.count()).select_from(GeneratedImage).where(*_where(chosen))) or 0


def faces(session: Session, chosen: GalleryFilter, *, limit: int = PAGE, offset: int = 0) -> list[GalleryFace]:
    """One page of approved faces that pass the filter, newest first."""
    rows = session.scalars(select(GeneratedImage).where(*_where(chosen))
                           .order_by(GeneratedImage.id.desc()).limit(limit).offset(offset)).all()
    return [_face(r) for r in rows]


def ids(session: Session, chosen: GalleryFilter) -> list[int]:
    return list(session.scalars(select(GeneratedImage.id).where(*_where(chosen)).order_by(GeneratedImage.id)))


def _face(row: GeneratedImage) -> GalleryFace:
    attributes = row.attributes or {}
    return GalleryFace(image_id=row.id, image_sha256=row.image_sha256, checkpoint_id=row.checkpoint_id, seed=row.seed,
                       psi=row.psi, label=dict(attributes.get("label") or {}), measured=dict(attributes.get("measured") or {}),
                       mismatch=list(attributes.get("mismatch") or []),
                       approved_by="the filter" if row.decision == "accept" else "reviewers")


def choices(session: Session) -> dict[str, list[str]]:
    """The label values the approved faces carry, per filterable attribute (for the page's menus)."""
    found: dict[str, list[str]] = {}
    for name in LABELLED:
        values = session.scalars(select(_label(name)).where(approved(), _label(name).is_not(None)).distinct()).all()
        if values:
            found[name] = sorted(str(v) for v in values)
    return found


def checkpoint_ids(session: Session) -> list[int]:
    """The checkpoints approved faces came from."""
    return list(session.scalars(select(GeneratedImage.checkpoint_id).where(approved()).distinct()
                                .order_by(GeneratedImage.checkpoint_id)))


def by_ids(session: Session, image_ids: Sequence[int]) -> list[GalleryFace]:
    rows = {r.id: r for r in session.scalars(select(GeneratedImage).where(GeneratedImage.id.in_(set(image_ids))))}
    return [_face(rows[i]) for i in image_ids if i in rows]
