"""The thumbs-down review queue: items (any image blob with a face), one vote per reviewer per
item, verdicts by majority, and agreement between reviewers per defect reason."""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from likeness.errors import InvalidInput, NotFound
from likeness.models import (
    Checkpoint,
    DefectReason,
    Face,
    GeneratedImage,
    Review,
    ReviewItem,
    Shot,
    ShotStatus,
    Thumb,
    User,
    utcnow,
)
from qa.agreement import fleiss_kappa


def reviewable() -> ColumnElement[bool]:
    """Items reviewers may see: generated faces not tainted, and faces of frames whose consent
    holds. A frame quarantined (no valid release, unknown sitter…) is withdrawn, and comes back if
    consent does; frames rejected by shot QA stay, since reviewers confirm the detector's
    rejections. A generated face of a checkpoint tainted by a revoked release is withdrawn until
    an admin clears the taint; one the learned filter decided (qa.filter) leaves the queue, its
    decision and reason kept on the image."""
    consented = select(Face.id).join(Shot, Shot.id == Face.shot_id).where(Shot.status != ShotStatus.quarantined)
    withdrawn = (select(GeneratedImage.image_sha256).join(Checkpoint, Checkpoint.id == GeneratedImage.checkpoint_id)
                 .where(or_(Checkpoint.tainted.is_(True), GeneratedImage.decision.is_not(None))))
    return or_(and_(ReviewItem.face_id.is_(None), ReviewItem.image_sha256.not_in(withdrawn)),
               ReviewItem.face_id.in_(consented))


class ReviewVerdict(enum.StrEnum):
    up = "up"
    down = "down"
    tied = "tied"
    unreviewed = "unreviewed"


def enqueue(
    *,
    session: Session,
    image_sha256: str,
    source: str,
    face_id: int | None = None,
    flag: str | None = None,
    flag_confidence: float | None = None,
    measures: dict[str, Any] | None = None,
) -> ReviewItem:
    """Queue an image once (by content); re-queuing refreshes the detector's flag."""
    item = session.scalar(select(ReviewItem).where(ReviewItem.image_sha256 == image_sha256))
    if item is None:
        item = ReviewItem(image_sha256=image_sha256, source=source, face_id=face_id)
        session.add(item)
    item.flag, item.flag_confidence, item.measures = flag, flag_confidence, measures or {}
    # Flagged items first, the detector's surest first among them.
    item.priority = (1.0 + (flag_confidence or 0.0)) if flag else 0.0
    session.flush()
    return item


def _check_vote(thumb: Thumb | str, reasons: Sequence[str]) -> tuple[Thumb, list[str]]:
    try:
        thumb = Thumb(thumb)
        chosen = sorted({DefectReason(r).value for r in reasons})
    except ValueError as exc:
        valid = ", ".join(r.value for r in DefectReason)
        raise InvalidInput(f"not a vote: {exc}", hint=f"thumb is up or down; reasons are {valid}") from None
    if thumb is Thumb.down and not chosen:
        raise InvalidInput("a thumbs-down needs at least one defect reason")
    if thumb is Thumb.up and chosen:
        raise InvalidInput("a thumbs-up takes no defect reasons")
    return thumb, chosen


def cast_vote(
    *, session: Session, item_id: int, reviewer_id: int, thumb: Thumb | str, reasons: Sequence[str] = (), note: str | None = None
) -> None:
    """Record or replace this reviewer's vote on the item, atomically (safe under concurrency)."""
    thumb, chosen = _check_vote(thumb, reasons)
    if session.get(ReviewItem, item_id) is None:
        raise NotFound(f"no review item #{item_id}")
    if session.scalar(select(ReviewItem.id).where(ReviewItem.id == item_id, reviewable())) is None:
        raise InvalidInput(f"review item #{item_id} was withdrawn: its sitter holds no valid release, or a release "
                           "behind the generated face was revoked")
    if session.get(User, reviewer_id) is None:
        raise NotFound(f"no user #{reviewer_id}")
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"item_id": item_id, "reviewer_id": reviewer_id, "thumb": thumb.value, "reasons": chosen, "note": note}
    now = utcnow()
    statement = insert(Review).values(**values, created_at=now, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=["item_id", "reviewer_id"],
        set_={"thumb": thumb.value, "reasons": chosen, "note": note, "updated_at": now},
    )
    session.execute(statement)


def retract_vote(*, session: Session, item_id: int, reviewer_id: int) -> bool:
    """Undo: remove this reviewer's vote on the item. True when there was one."""
    result = session.execute(delete(Review).where(Review.item_id == item_id, Review.reviewer_id == reviewer_id))
    assert isinstance(result, CursorResult)  # a DELETE gives a cursor result
    return bool(result.rowcount)


def next_items(*, session: Session, reviewer_id: int, limit: int = 48, source: str | None = None) -> list[ReviewItem]:
    """Items this reviewer has not voted on: flagged first, then the least reviewed, oldest first.
    With ``source`` ("shot" or "generated") only the items that came from there."""
    mine = select(Review.item_id).where(Review.reviewer_id == reviewer_id)
    votes = select(Review.item_id, func.count().label("n")).group_by(Review.item_id).subquery()
    query = (
        select(ReviewItem)
        .outerjoin(votes, votes.c.item_id == ReviewItem.id)
        .where(ReviewItem.id.not_in(mine), reviewable())
        .order_by(ReviewItem.priority.desc(), func.coalesce(votes.c.n, 0), ReviewItem.id)
        .limit(limit)
    )
    if source is not None:
        query = query.where(ReviewItem.source == source)
    return list(session.scalars(query))


def verdict_of(thumbs: Iterable[str]) -> ReviewVerdict:
    counts = Counter(thumbs)
    if not counts:
        return ReviewVerdict.unreviewed
    if counts[Thumb.down] == counts[Thumb.up]:
        return ReviewVerdict.tied
    return ReviewVerdict.down if counts[Thumb.down] > counts[Thumb.up] else ReviewVerdict.up


@dataclass
class ReviewStats:
    items: int = 0
    reviewed_items: int = 0
    votes: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    reason_counts: dict[str, int] = field(default_factory=dict)
    # Fleiss' kappa per reason (did this reviewer give that reason?) over items seen by 2+ reviewers.
    agreement: dict[str, float | None] = field(default_factory=dict)
    thumb_agreement: float | None = None
    multi_reviewed_items: int = 0
    flagged_items: int = 0
    flagged_confirmed: int = 0  # flagged items whose verdict is down


def review_stats(*, session: Session) -> ReviewStats:
    stats = ReviewStats()
    items = dict(session.execute(select(ReviewItem.id, ReviewItem.flag).where(reviewable())).all())
    stats.items = len(items)
    stats.flagged_items = sum(1 for flag in items.values() if flag)
    by_item: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
    for item_id, thumb, reasons in session.execute(
        select(Review.item_id, Review.thumb, Review.reasons).where(Review.item_id.in_(items))
    ):
        by_item[item_id].append((thumb, list(reasons or [])))
    stats.votes = sum(len(v) for v in by_item.values())
    stats.reviewed_items = len(by_item)
    verdicts = Counter(verdict_of(t for t, _ in votes).value for votes in by_item.values())
    verdicts[ReviewVerdict.unreviewed.value] = stats.items - stats.reviewed_items
    stats.verdicts = dict(verdicts)
    stats.reason_counts = dict(Counter(r for votes in by_item.values() for _, reasons in votes for r in reasons))
    stats.flagged_confirmed = sum(
        1 for item_id, votes in by_item.items() if items.get(item_id) and verdict_of(t for t, _ in votes) is ReviewVerdict.down
    )
    shared = [votes for votes in by_item.values() if len(votes) >= 2]
    stats.multi_reviewed_items = len(shared)
    stats.thumb_agreement = fleiss_kappa([[sum(t == "up" for t, _ in v), sum(t == "down" for t, _ in v)] for v in shared])
    for reason in DefectReason:
        rows = [[sum(reason.value not in r for _, r in v), sum(reason.value in r for _, r in v)] for v in shared]
        stats.agreement[reason.value] = fleiss_kappa(rows)
    return stats
