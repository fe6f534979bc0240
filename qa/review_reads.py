"""Read-only queries behind the review grid: cards, stored verdicts, a reviewer's votes and
progress, as frozen dataclasses from column-only selects."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from likeness.models import GeneratedImage, Review, ReviewItem, Thumb
from qa.review import reviewable

# -- review ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReviewCard:
    """One face in the review grid: what the thumbnail and its badge need (no measures)."""

    id: int
    image_sha256: str
    flag: str | None
    flag_confidence: float | None


def review_cards(*, session: Session, item_ids: list[int]) -> list[ReviewCard]:
    """The items in the order given; ids that no longer exist or were withdrawn are left out."""
    if not item_ids:
        return []
    rows = {
        row.id: ReviewCard(*row)
        for row in session.execute(
            select(ReviewItem.id, ReviewItem.image_sha256, ReviewItem.flag, ReviewItem.flag_confidence)
            .where(ReviewItem.id.in_(item_ids), reviewable())
        )
    }
    return [rows[i] for i in item_ids if i in rows]


def review_measures(*, session: Session, item_id: int) -> dict:
    """The detector's verdict stored with the item (state, confidence, reason, measures); for a
    generated face also its automatic checks and the learned filter's score ("checks",
    "filter_score")."""
    row = session.execute(select(ReviewItem.measures, ReviewItem.image_sha256, ReviewItem.face_id)
                          .where(ReviewItem.id == item_id)).one_or_none()
    if row is None:
        return {}
    found = dict(row.measures or {})
    if row.face_id is None:
        image = session.execute(select(GeneratedImage.checks, GeneratedImage.decision_score)
                                .where(GeneratedImage.image_sha256 == row.image_sha256).limit(1)).one_or_none()
        if image is not None and (image.checks or image.decision_score is not None):
            found.update(checks=dict(image.checks or {}), filter_score=image.decision_score)
    return found


def my_votes(*, session: Session, reviewer_id: int, item_ids: list[int]) -> dict[int, tuple[str, tuple[str, ...]]]:
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


def review_progress(*, session: Session, reviewer_id: int) -> ReviewProgress:
    """Counted on every key press, so the thumbs are counted in SQL and only thumbs-down rows are read."""
    items = session.scalar(select(func.count()).select_from(ReviewItem).where(reviewable())) or 0
    visible = select(ReviewItem.id).where(reviewable())
    mine = (Review.reviewer_id == reviewer_id, Review.item_id.in_(visible))
    thumbs = dict(session.execute(select(Review.thumb, func.count()).where(*mine).group_by(Review.thumb)).all())
    reasons: dict[str, int] = defaultdict(int)
    for given in session.scalars(select(Review.reasons).where(*mine, Review.thumb == Thumb.down)):
        for reason in given or ():
            reasons[reason] += 1
    up, down = thumbs.get(Thumb.up, 0), thumbs.get(Thumb.down, 0)
    return ReviewProgress(items=items, reviewed=up + down, up=up, down=down, reasons=dict(reasons))


def votes_version(*, session: Session) -> tuple[int, int, int, str]:
    """A cheap fingerprint of every vote and of the reviewable queue: (items, votes, last change).
    It changes with each vote cast, replaced or retracted and with each item withdrawn, so a
    cache keyed by it is never stale and costs one small aggregate per rerun."""
    items, ids = session.execute(
        select(func.count(), func.coalesce(func.sum(ReviewItem.id), 0)).select_from(ReviewItem).where(reviewable())
    ).one()
    votes, last = session.execute(select(func.count(), func.max(Review.updated_at)).select_from(Review)).one()
    return items or 0, int(ids or 0), votes or 0, str(last)
