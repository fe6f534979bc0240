"""Revocation that propagates: a revoked release taints everything made from its sitter's faces.

`revoke(session, release_id, reason, actor)` revokes the release through
`ingest.people.revoke_release` (which quarantines the frames it no longer covers) and then, in the
same transaction, marks every dataset snapshot holding a face of that person, every run trained on
one of them (and every run fine-tuned from their checkpoints, recursively) and those runs'
checkpoints as tainted, appending {release_id, person, reason, at} to each row's `taint`. Three
set-based UPDATEs, whatever the size; the caller's transaction commits all of it or none. An image
generated from a tainted checkpoint is tainted with it (it holds nothing else of anyone), so the
images are counted, not written: at seed scale that is 100 checkpoint rows instead of 100,000
image rows.

Nothing untaints by itself: a new release for the same sitter quarantines nothing again and
releases the frames, but what was trained while consent was withdrawn stays tainted until an
admin calls `clear_taint` (audited), which also refuses while a snapshot behind the taint still
holds a face whose release does not cover it today.

`retrain_plan` lists the tainted runs with the people to leave out: the runs that must be
trained again on a snapshot built without them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from sqlalchemy import JSON, ColumnElement, Integer, Select, String, bindparam, case, cast, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from ingest import gate
from ingest.people import revoke_release
from likeness import audit
from likeness.errors import ConsentViolation, InvalidInput, NotFound
from likeness.models import Checkpoint, DatasetSnapshot, GeneratedImage, Person, Release, TrainingRun, utcnow
from model_registry.lineage import descendants_of_person

TAINTABLE: dict[str, Any] = {"snapshots": DatasetSnapshot, "runs": TrainingRun, "checkpoints": Checkpoint}


@dataclasses.dataclass(frozen=True)
class RetrainItem:
    """A tainted run: trained (or fine-tuned) on faces whose release was revoked."""

    run_id: int
    run: str
    status: str
    snapshot_id: int | None
    snapshot: str | None               # the snapshot's name
    parent_checkpoint_id: int | None   # fine-tuned from this checkpoint
    people: list[str]                  # whose faces must be left out
    releases: list[int]
    reasons: list[str]
    checkpoints: int                   # its tainted checkpoints
    images: int                        # images generated from them

    def describe(self) -> str:
        source = f"snapshot #{self.snapshot_id}" + (f" {self.snapshot!r}" if self.snapshot else "") \
            if self.snapshot_id is not None else "no snapshot"
        parent = f", fine-tuned from checkpoint #{self.parent_checkpoint_id}" if self.parent_checkpoint_id else ""
        return (f"run #{self.run_id} {self.run} ({self.status}, {source}{parent}): retrain without "
                f"{', '.join(self.people)}; {self.checkpoints} checkpoints and {self.images} images tainted")


@dataclasses.dataclass(frozen=True)
class TaintResult:
    release_id: int
    person: str
    reason: str
    at: str
    recheck: gate.RecheckResult
    snapshots: list[int]
    runs: list[int]
    checkpoints: list[int]
    images: int
    retrain: list[RetrainItem]

    def describe(self) -> str:
        def ids(values: list[int]) -> str:
            shown = ", ".join(f"#{v}" for v in values[:10])
            return f" ({shown}{' …' if len(values) > 10 else ''})" if values else ""
        return (f"{self.recheck.describe()}; tainted: {len(self.snapshots)} snapshots{ids(self.snapshots)}, "
                f"{len(self.runs)} runs{ids(self.runs)}, {len(self.checkpoints)} checkpoints{ids(self.checkpoints)}, "
                f"{self.images} generated images")

    def lines(self) -> list[str]:
        plan = [f"  {item.describe()}" for item in self.retrain]
        return [f"release #{self.release_id} of {self.person} revoked; {self.describe()}",
                *(["runs to retrain without " + self.person + ":", *plan] if plan else ["no runs to retrain"])]


# ---- Appending to and removing from the taint lists, set-based, on both databases. -----------------

EMPTY: ColumnElement[Any] = literal_column("'[]'")


def _appended(column: Any, dialect: str) -> ColumnElement[Any]:
    """The taint list with :taint_entry (a JSON object, as text) appended."""
    entry = bindparam("taint_entry", type_=String)
    if dialect == "postgresql":
        return cast(cast(column, JSONB).op("||")(func.jsonb_build_array(cast(entry, JSONB))), JSON)
    return func.json_insert(column, "$[#]", func.json(entry))


def _without_release(column: Any, dialect: str) -> ColumnElement[Any]:
    """The taint list without the entries of release :release_id (an empty list when none is left)."""
    release = bindparam("release_id", type_=Integer)
    if dialect == "postgresql":
        elements = func.json_array_elements(column).table_valued("value").alias("entry")
        return (select(func.coalesce(func.json_agg(elements.c.value), cast(EMPTY, JSON)))
                .where(func.coalesce(cast(elements.c.value.op("->>")("release_id"), Integer), -1) != release)
                .scalar_subquery())
    elements = func.json_each(column).table_valued("value").alias("entry")
    return (select(func.json_group_array(func.json(elements.c.value)))
            .where(func.coalesce(func.json_extract(elements.c.value, "$.release_id"), -1) != release)
            .scalar_subquery())


def _mentions_release(column: Any, dialect: str) -> ColumnElement[bool]:
    """Whether the taint list holds an entry of release :release_id."""
    release = bindparam("release_id", type_=Integer)
    if dialect == "postgresql":
        return cast(column, JSONB).op("@>")(func.jsonb_build_array(func.jsonb_build_object("release_id", release)))
    elements = func.json_each(column).table_valued("value").alias("entry")
    return select(elements.c.value).where(func.json_extract(elements.c.value, "$.release_id") == release).exists()


# ---- Revocation. -----------------------------------------------------------------------------------

def revoke(session: Session, release_id: int, reason: str, actor: str, *, revoked_on: dt.date | None = None) -> TaintResult:
    """Revoke the release, quarantine its frames and taint everything made from its sitter's
    faces, in the caller's transaction. NotFound for an unknown release, InvalidInput for one
    revoked already or an empty reason (nothing is written then)."""
    recheck = revoke_release(session=session, release_id=release_id, reason=reason, revoked_on=revoked_on, actor=actor)
    release = session.get_one(Release, release_id)
    code = session.scalar(select(Person.code).where(Person.id == release.person_id))
    at = utcnow().isoformat(timespec="seconds")
    entry = json.dumps({"release_id": release_id, "person": code, "reason": reason.strip(), "at": at})
    dialect = session.get_bind().dialect.name
    sets = descendants_of_person(release.person_id)
    marked: dict[str, list[int]] = {}
    for name, model in TAINTABLE.items():
        table = model.__table__
        statement = (update(table).where(table.c.id.in_(sets[name]))
                     .values(tainted=True, taint=_appended(table.c.taint, dialect)).returning(table.c.id))
        marked[name] = sorted(session.connection().execute(statement, {"taint_entry": entry}).scalars())
    images = session.scalar(select(func.count()).select_from(GeneratedImage)
                            .where(GeneratedImage.checkpoint_id.in_(marked["checkpoints"]))) or 0
    audit.record(session=session, actor=actor, action="release.taint", subject_type="release", subject_id=release_id,
                 person=code, reason=reason.strip(), snapshots=marked["snapshots"], runs=marked["runs"],
                 checkpoints=len(marked["checkpoints"]), images=images)
    session.flush()
    return TaintResult(release_id=release_id, person=code or "", reason=reason.strip(), at=at, recheck=recheck,
                       snapshots=marked["snapshots"], runs=marked["runs"], checkpoints=marked["checkpoints"],
                       images=images, retrain=retrain_plan(session, run_ids=marked["runs"]))


# ---- The retrain plan. -----------------------------------------------------------------------------

def retrain_plan(session: Session, *, run_ids: list[int] | None = None) -> list[RetrainItem]:
    """Every tainted run (or those of `run_ids`), oldest first, with the people to leave out and
    what of it is tainted. Three queries, whatever the number of runs."""
    query: Select[Any] = (select(TrainingRun.id, TrainingRun.name, TrainingRun.status, TrainingRun.snapshot_id,
                                 DatasetSnapshot.name, TrainingRun.parent_checkpoint_id, TrainingRun.taint)
                          .outerjoin(DatasetSnapshot, DatasetSnapshot.id == TrainingRun.snapshot_id)
                          .where(TrainingRun.tainted.is_(True)).order_by(TrainingRun.id))
    if run_ids is not None:
        query = query.where(TrainingRun.id.in_(run_ids))
    runs = session.execute(query).all()
    if not runs:
        return []
    ids = [r[0] for r in runs]
    tainted = case((Checkpoint.tainted.is_(True), 1), else_=0)
    checkpoints: dict[int, int] = dict(session.execute(select(Checkpoint.run_id, func.sum(tainted))
                                       .where(Checkpoint.run_id.in_(ids)).group_by(Checkpoint.run_id)).all())
    images: dict[int, int] = dict(session.execute(select(Checkpoint.run_id, func.count())
                                  .join(GeneratedImage, GeneratedImage.checkpoint_id == Checkpoint.id)
                                  .where(Checkpoint.run_id.in_(ids), Checkpoint.tainted.is_(True))
                                  .group_by(Checkpoint.run_id)).all())
    plan = []
    for run_id, name, status, snapshot_id, snapshot_name, parent, taint in runs:
        entries = [t for t in taint or [] if isinstance(t, dict)]
        plan.append(RetrainItem(
            run_id=run_id, run=name, status=str(status), snapshot_id=snapshot_id, snapshot=snapshot_name,
            parent_checkpoint_id=parent, people=sorted({str(t.get("person")) for t in entries}),
            releases=sorted({int(t["release_id"]) for t in entries if "release_id" in t}),
            reasons=list(dict.fromkeys(str(t.get("reason")) for t in entries)),
            checkpoints=int(checkpoints.get(run_id) or 0), images=int(images.get(run_id) or 0)))
    return plan


# ---- Clearing a taint: explicit, admin only, audited. ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClearResult:
    release_id: int
    person: str
    cleared: dict[str, int]            # rows that lost this release's entry, per level
    untainted: dict[str, int]          # of them, rows left with no taint at all
    images: int                        # generated by the checkpoints left with no taint

    def describe(self) -> str:
        parts = ", ".join(f"{n} {name}" for name, n in self.cleared.items())
        still = sum(self.cleared.values()) - sum(self.untainted.values())
        return (f"taint of release #{self.release_id} ({self.person}) cleared from {parts}"
                + (f" ({self.images} generated images with them)" if self.images else "")
                + (f"; {still} stay tainted by other releases" if still else ""))


def clear_taint(session: Session, release_id: int, *, reason: str, actor: str, admin: bool,
                today: dt.date | None = None) -> ClearResult:
    """Remove release #`release_id`'s entries from every taint list, and the taint flag where no
    entry is left. Admins only; refused while a snapshot behind the taint still holds a face its
    release does not cover today (a new release for the sitter has to be recorded first)."""
    if not admin:
        raise ConsentViolation("only an admin may clear a taint")
    if not reason.strip():
        raise InvalidInput("clearing a taint needs a reason")
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release #{release_id}", hint="`likeness release list` shows them")
    code = session.scalar(select(Person.code).where(Person.id == release.person_id)) or ""
    dialect = session.get_bind().dialect.name
    params = {"release_id": release_id}
    snapshot_ids = list(session.scalars(select(DatasetSnapshot.id).where(
        DatasetSnapshot.tainted.is_(True), _mentions_release(DatasetSnapshot.__table__.c.taint, dialect)), params))
    if not snapshot_ids and not session.scalar(select(func.count()).select_from(Checkpoint).where(
            _mentions_release(Checkpoint.__table__.c.taint, dialect)), params):
        raise InvalidInput(f"nothing is tainted by release #{release_id}")
    from training.snapshots.api import check_consent
    problems = [p for sid in snapshot_ids for p in check_consent(session, sid, today=today or dt.date.today())]
    if problems:
        listed = "; ".join(p.describe() for p in problems[:3]) + (" …" if len(problems) > 3 else "")
        raise ConsentViolation(f"the taint of release #{release_id} cannot be cleared: {listed}",
                               hint=f"record a new release for {code} covering those frames first")
    cleared: dict[str, int] = {}
    untainted: dict[str, int] = {}
    freed: list[int] = []              # checkpoints left with no taint: their images are free again
    for name, model in TAINTABLE.items():
        column = model.__table__.c.taint
        kept = _without_release(column, dialect)
        statement = (update(model).where(_mentions_release(column, dialect))
                     .values(taint=kept, tainted=func.json_array_length(kept) > 0)
                     .returning(model.id, model.tainted).execution_options(synchronize_session=False))
        still = session.execute(statement, params).all()
        cleared[name], untainted[name] = len(still), sum(1 for _id, t in still if not t)
        if name == "checkpoints":
            freed = [row_id for row_id, t in still if not t]
    images = session.scalar(select(func.count()).select_from(GeneratedImage)
                            .where(GeneratedImage.checkpoint_id.in_(freed))) or 0
    audit.record(session=session, actor=actor, action="release.taint.clear", subject_type="release",
                 subject_id=release_id, person=code, reason=reason.strip(), cleared=cleared, images=images)
    session.flush()
    return ClearResult(release_id=release_id, person=code, cleared=cleared, untainted=untainted, images=images)
