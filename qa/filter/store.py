"""The filter in the database: trained on reviewers' votes, versioned, and applied to generated faces.

- `train` learns a new version from every generated face with a clear verdict (more thumbs up
  than down is good, more down than up is bad; ties teach nothing), stores the model as a blob
  and its thresholds and held-out figures on a `face_filters` row, and makes it the active
  version (audited).
- `decide` runs the active version over generated faces nobody has voted on: a confident call
  sets `decision` (accept or reject), its score, reason and the version on the image, and the
  face leaves the review queue (qa.review.reviewable); the rest stay for people, the most
  uncertain first (their review priority).
- `evaluate` measures a version on the votes cast after it was trained.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from typing import Any

import joblib
import numpy as np
from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from likeness import audit
from likeness.errors import InvalidInput, NotFound
from likeness.models import Checkpoint, FaceFilter, GeneratedImage, Review, ReviewItem, Thumb
from likeness.workbench import Workbench
from qa.filter import features, model
from qa.filter.model import Evaluation, Thresholds

GENERATED = "generated"   # the review queue's source for generated faces
BATCH = 500
UNCERTAIN_PRIORITY = 0.5  # below a detector's flag (>= 1), above unscored items (0)
Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class Vote:
    image_id: int
    image_sha256: str
    checks: dict[str, Any]
    good: bool
    reasons: list[str]


@dataclasses.dataclass(frozen=True)
class FilterVersion:
    id: int
    version: int
    active: bool
    created_by: str
    features: list[str]
    thresholds: Thresholds
    metrics: dict[str, Any]

    def describe(self) -> str:
        t = self.thresholds.as_dict()
        test = self.metrics.get("test", {})
        return (f"filter v{self.version}{' (active)' if self.active else ''}: reject at p(good) <= "
                f"{_num(t['reject'])}{self._why_never('reject')}, accept at p(good) >= {_num(t['accept'])}"
                f"{self._why_never('accept')}; learned from {self.metrics.get('votes', 0)} votes by "
                f"{self.created_by}; held out: coverage {test.get('coverage', 0.0):.1%}, accept precision "
                f"{_share(test.get('accept_precision'))}, reject precision {_share(test.get('reject_precision'))}")

    def _why_never(self, side: str) -> str:
        """For a side that decides nothing, how sure it could be at best (versions trained before
        this was recorded say nothing)."""
        found = self.metrics.get("reach", {}).get(side)
        if self.thresholds.as_dict()[side] is not None or not found:
            return ""
        return f" ({model.Reach(**found).describe(self.metrics.get('target_precision', model.TARGET_PRECISION))})"


def _num(value: float | None) -> str:
    return "never" if value is None else f"{value:.3f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _version(row: FaceFilter) -> FilterVersion:
    return FilterVersion(id=row.id, version=row.version, active=row.active, created_by=row.created_by,
                         features=list(row.features), thresholds=Thresholds.from_dict(row.thresholds),
                         metrics=dict(row.metrics))


# ---- Votes. -----------------------------------------------------------------------------------------

def votes(session: Session, *, after_review_id: int = 0) -> list[Vote]:
    """Generated faces with a clear verdict, oldest first. With `after_review_id`, only faces
    with a vote after it (judged on all their votes)."""
    up = func.sum(case((Review.thumb == Thumb.up, 1), else_=0))
    down = func.sum(case((Review.thumb == Thumb.down, 1), else_=0))
    tallies = (select(ReviewItem.image_sha256, up.label("up"), down.label("down"), func.max(Review.id).label("last"))
               .join(Review, Review.item_id == ReviewItem.id)
               .where(ReviewItem.source == GENERATED).group_by(ReviewItem.image_sha256).subquery())
    rows = session.execute(select(GeneratedImage.id, GeneratedImage.image_sha256, GeneratedImage.checks,
                                  tallies.c.up, tallies.c.down)
                           .join(tallies, tallies.c.image_sha256 == GeneratedImage.image_sha256)
                           .where(tallies.c.last > after_review_id, tallies.c.up != tallies.c.down)
                           .order_by(GeneratedImage.id)).all()
    why = _reasons(session, [r.image_sha256 for r in rows])
    return [Vote(image_id=r.id, image_sha256=r.image_sha256, checks=dict(r.checks or {}), good=r.up > r.down,
                 reasons=why.get(r.image_sha256, [])) for r in rows]


def _reasons(session: Session, shas: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {}
    for sha, reasons in session.execute(select(ReviewItem.image_sha256, Review.reasons)
                                        .join(Review, Review.item_id == ReviewItem.id)
                                        .where(ReviewItem.image_sha256.in_(set(shas)))):
        found.setdefault(sha, set()).update(reasons or [])
    return {sha: sorted(r) for sha, r in found.items()}


def _matrix(workbench: Workbench, names: Sequence[str], items: Sequence[tuple[dict[str, Any], str]]) -> np.ndarray:
    """Feature rows for (checks, image SHA-256) pairs, the pixels read from the blob store."""
    return features.matrix(names, ((checks, features.decode_png(workbench.blobs.read_bytes(sha))) for checks, sha in items))


# ---- Training. --------------------------------------------------------------------------------------

def train(workbench: Workbench, *, actor: str, seed: int = 0, activate: bool = True,
          target: float = model.TARGET_PRECISION) -> FilterVersion:
    """A new filter version from every clear verdict so far; InvalidInput when the votes cannot
    teach one (too few, or all alike)."""
    with workbench.db.unit_of_work() as session:
        found = votes(session)
        last_review = session.scalar(select(func.max(Review.id))) or 0
    names = features.feature_names(v.checks for v in found)
    x = _matrix(workbench, names, [(v.checks, v.image_sha256) for v in found])
    try:
        trained = model.fit(x, np.asarray([v.good for v in found]), names, seed=seed, target=target)
    except ValueError as exc:
        raise InvalidInput(f"cannot train the filter: {exc}",
                           hint="vote on more generated faces in the Review page or with `likeness review vote`") from None
    buffer = io.BytesIO()
    joblib.dump(trained.model, buffer)
    model_sha = workbench.blobs.put_bytes(buffer.getvalue())
    metrics = {"votes": len(found), "good": sum(v.good for v in found), "last_review_id": last_review, "seed": seed,
               "target_precision": target, "sizes": trained.sizes, "calibration": trained.calibration.as_dict(),
               "test": trained.test.as_dict(),
               "reach": {side: dataclasses.asdict(r) for side, r in trained.reach.items()}}
    with workbench.db.unit_of_work() as session:
        version = (session.scalar(select(func.max(FaceFilter.version))) or 0) + 1
        if activate:
            session.execute(update(FaceFilter).values(active=False))
        row = FaceFilter(version=version, model_sha256=model_sha, features=names, thresholds=trained.thresholds.as_dict(),
                         metrics=metrics, active=activate, created_by=actor)
        session.add(row)
        session.flush()
        audit.record(session=session, actor=actor, action="filter.train", subject_type="face_filter", subject_id=row.id,
                     version=version, votes=len(found), active=activate, thresholds=row.thresholds, test=metrics["test"])
        return _version(row)


def filters(workbench: Workbench) -> list[FilterVersion]:
    with workbench.db.unit_of_work() as session:
        return [_version(r) for r in session.scalars(select(FaceFilter).order_by(FaceFilter.version))]


def _find(session: Session, version: int | None) -> FaceFilter:
    query = select(FaceFilter).where(FaceFilter.active.is_(True)) if version is None else \
        select(FaceFilter).where(FaceFilter.version == version)
    row = session.scalar(query)
    if row is None:
        raise NotFound("no active filter" if version is None else f"no filter v{version}",
                       hint="`likeness filter train` learns one from the reviewers' votes")
    return row


def image_ids_of_checkpoint(workbench: Workbench, checkpoint_id: int) -> list[int]:
    with workbench.db.unit_of_work() as session:
        if session.get(Checkpoint, checkpoint_id) is None:
            raise NotFound(f"no checkpoint #{checkpoint_id}", hint="`likeness registry list` lists them")
        return list(session.scalars(select(GeneratedImage.id).where(GeneratedImage.checkpoint_id == checkpoint_id)))


# ---- Deciding. --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DecideResult:
    version: int
    scored: int
    accepted: int
    rejected: int

    @property
    def undecided(self) -> int:
        return self.scored - self.accepted - self.rejected

    def describe(self) -> str:
        share = (self.accepted + self.rejected) / self.scored if self.scored else 0.0
        return (f"filter v{self.version} scored {self.scored} faces: {self.accepted} accepted, {self.rejected} rejected "
                f"({share:.0%} decided); {self.undecided} left for reviewers, the most uncertain first")


def decide(workbench: Workbench, *, image_ids: Sequence[int] | None = None, version: int | None = None,
           redecide: bool = False, progress: Progress | None = None) -> DecideResult:
    """Score generated faces nobody has voted on with the active filter (or `version`) and decide
    the confident ones. Faces the filter decided before are left alone unless `redecide`;
    faces of tainted checkpoints are skipped (they are withheld anyway)."""
    with workbench.db.unit_of_work() as session:
        row = _find(session, version)
        version_id, number = row.id, row.version
        names, thresholds = list(row.features), Thresholds.from_dict(row.thresholds)
        trained = joblib.load(io.BytesIO(workbench.blobs.read_bytes(row.model_sha256)))
        voted = select(ReviewItem.image_sha256).join(Review, Review.item_id == ReviewItem.id)
        query = (select(GeneratedImage.id, GeneratedImage.checks, GeneratedImage.image_sha256)
                 .join(Checkpoint, Checkpoint.id == GeneratedImage.checkpoint_id)
                 .where(Checkpoint.tainted.is_(False), GeneratedImage.image_sha256.not_in(voted))
                 .order_by(GeneratedImage.id))
        if image_ids is not None:
            query = query.where(GeneratedImage.id.in_(set(image_ids)))
        if not redecide:
            query = query.where(GeneratedImage.decision.is_(None))
        todo = session.execute(query).all()
    accepted = rejected = 0
    for start in range(0, len(todo), BATCH):
        batch = todo[start:start + BATCH]
        p = model.probability_good(trained, _matrix(workbench, names, [(r.checks or {}, r.image_sha256) for r in batch]))
        decided = [(r, float(score), thresholds.decide(float(score))) for r, score in zip(batch, p, strict=True)]
        accepted += sum(1 for _r, _s, d in decided if d == "accept")
        rejected += sum(1 for _r, _s, d in decided if d == "reject")
        with workbench.db.unit_of_work() as session:
            session.execute(update(GeneratedImage), [
                {"id": r.id, "decision": d, "decision_score": score, "filter_id": version_id,
                 "decision_reason": _reason(number, score, d, thresholds)} for r, score, d in decided])
            # The undecided wait for people, the most uncertain first (after a detector's flags).
            waiting = [{"sha": r.image_sha256, "priority": UNCERTAIN_PRIORITY * (1 - abs(2 * score - 1))}
                       for r, score, d in decided if d is None]
            if waiting:
                items: Any = ReviewItem.__table__
                session.connection().execute(update(items).where(items.c.image_sha256 == bindparam("sha"), items.c.flag.is_(None))
                                             .values(priority=bindparam("priority")), waiting)
        if progress is not None:
            progress(min(start + BATCH, len(todo)), len(todo))
    return DecideResult(version=number, scored=len(todo), accepted=accepted, rejected=rejected)


def _reason(version: int, score: float, decision: str | None, thresholds: Thresholds) -> str | None:
    if decision == "accept":
        return f"filter v{version}: p(good) {score:.3f} >= {thresholds.accept:.3f}"
    if decision == "reject":
        return f"filter v{version}: p(good) {score:.3f} <= {thresholds.reject:.3f}"
    return None


# ---- Evaluating. ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FilterEvaluation:
    version: FilterVersion
    held_out: dict[str, Any]          # the figures measured when it was trained
    since: Evaluation                 # on the verdicts given after it was trained

    def lines(self) -> list[str]:
        test = self.held_out
        return [self.version.describe(),
                f"  at training, on {test.get('items', 0)} held-out votes: coverage {test.get('coverage', 0.0):.1%}",
                f"  on the votes since: {self.since.describe()}" if self.since.items else
                "  no verdicts given since it was trained"]


def evaluate(workbench: Workbench, *, version: int | None = None) -> FilterEvaluation:
    """A version's held-out figures from training, and its decisions measured on every verdict
    reviewers have given since (faces it never saw)."""
    with workbench.db.unit_of_work() as session:
        row = _find(session, version)
        found = votes(session, after_review_id=int(row.metrics.get("last_review_id", 0)))
        current = _version(row)
        trained = joblib.load(io.BytesIO(workbench.blobs.read_bytes(row.model_sha256)))
    x = _matrix(workbench, current.features, [(v.checks, v.image_sha256) for v in found])
    p = model.probability_good(trained, x)
    since = model.evaluate(p, np.asarray([v.good for v in found], dtype=np.int64), current.thresholds)
    return FilterEvaluation(version=current, held_out=dict(current.metrics.get("test", {})), since=since)
