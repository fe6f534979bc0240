"""Lineage as data: from each person's release to every generated face, and back.

The chain is person → releases → shots → faces → dataset snapshots → training runs → checkpoints
→ generated images, with runs fine-tuned from (or resumed from) another run's checkpoint
(`training_runs.parent_checkpoint_id`) hanging under that checkpoint. `lineage(session, kind,
ref)` answers for one node, in both directions: what it came from (up) and what was made from it
(down), level by level, each with a count, how many of them are flagged (tainted, quarantined,
revoked) and the first few of them.

Every level is one set-based query (sub-selects and a recursive CTE for fine-tuning), whatever
the size: no per-row loops, so a person with 400 shots whose faces reach 100,000 generated
images answers in a few tens of milliseconds.

Which nodes belong to which:
- a release covers its person's shots captured between its signing and its expiry, and the
  snapshot members built on it (`dataset_snapshot_members.release_id`);
- a snapshot comes from its members' faces, shots, people and releases;
- a run comes from its snapshot and, when fine-tuned, from its parent checkpoint (recursively);
- a checkpoint from its run; an image from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from likeness.errors import InvalidInput, NotFound
from likeness.models import (
    Checkpoint,
    DatasetSnapshot,
    Face,
    GeneratedImage,
    Person,
    Release,
    Shot,
    ShotStatus,
    SnapshotMember,
    TrainingRun,
)

SHOWN = 10  # items named per level; the count is always complete
MIN_SHA_PREFIX = 6


class Kind(enum.StrEnum):
    person = "person"
    release = "release"
    shot = "shot"
    snapshot = "snapshot"
    checkpoint = "checkpoint"
    image = "image"


LEVELS = ("people", "releases", "shots", "faces", "snapshots", "runs", "checkpoints", "images")


@dataclasses.dataclass(frozen=True)
class Level:
    name: str                  # one of LEVELS
    count: int
    shown: list[str]           # the first SHOWN of them, oldest first
    flagged: int = 0           # how many carry `flag`
    flag: str = ""             # "tainted", "quarantined", "revoked", or "" when the level has none
                               # (images: tainted means from a tainted checkpoint)

    def describe(self) -> str:
        more = f" …(+{self.count - len(self.shown)})" if self.count > len(self.shown) else ""
        flagged = f" ({self.flagged} {self.flag})" if self.flag and self.flagged else ""
        return f"{self.name}: {self.count}{flagged}" + (f"  {', '.join(self.shown)}{more}" if self.shown else "")


@dataclasses.dataclass(frozen=True)
class Lineage:
    kind: Kind
    subject: str               # "person P0042", "checkpoint #12 (run tiny, kimg 4)"
    flags: list[str]           # the subject's own state: "tainted by release #3 (P0042): withdrawn"
    up: list[Level]            # what it came from, from the people down
    down: list[Level]          # what was made from it, down to the images

    def level(self, direction: str, name: str) -> Level | None:
        for level in self.up if direction == "up" else self.down:
            if level.name == name:
                return level
        return None

    def count(self, direction: str, name: str) -> int:
        level = self.level(direction, name)
        return 0 if level is None else level.count

    def lines(self) -> list[str]:
        out = [f"{self.subject}" + "".join(f"\n  {flag}" for flag in self.flags)]
        out.append("up (what it came from):" if self.up else "up: nothing (the start of the chain)")
        out += [f"  {level.describe()}" for level in self.up]
        out.append("down (what was made from it):" if self.down else "down: nothing (the end of the chain)")
        out += [f"  {level.describe()}" for level in self.down]
        return out


IdSet = Select[Any]  # a SELECT of one id column


# ---- The fine-tuning edge. --------------------------------------------------------------------------

def _runs_down(seed: IdSet) -> IdSet:
    """The runs in `seed` and every run fine-tuned from one of their checkpoints, recursively."""
    runs = seed.cte("runs_down", recursive=True)
    child = TrainingRun.__table__.alias("child")
    step = (select(child.c.id)
            .join(Checkpoint, Checkpoint.id == child.c.parent_checkpoint_id)
            .join(runs, runs.c[0] == Checkpoint.run_id))
    return select(runs.union(step).c[0])


def _runs_fine_tuned_from(checkpoints: IdSet) -> IdSet:
    return _runs_down(select(TrainingRun.id).where(TrainingRun.parent_checkpoint_id.in_(checkpoints)))


def _checkpoints_up(seed: IdSet) -> IdSet:
    """The checkpoints in `seed` and those their runs were fine-tuned from, recursively."""
    found = seed.cte("checkpoints_up", recursive=True)
    step = (select(TrainingRun.parent_checkpoint_id)
            .join(Checkpoint, Checkpoint.run_id == TrainingRun.id)
            .join(found, found.c[0] == Checkpoint.id)
            .where(TrainingRun.parent_checkpoint_id.is_not(None)))
    return select(found.union(step).c[0])


# ---- Downstream sets (shared by every kind). -------------------------------------------------------

def snapshots_of_members(where: ColumnElement[bool]) -> IdSet:
    return select(SnapshotMember.snapshot_id).where(where).distinct()


def runs_of_snapshots(snapshots: IdSet) -> IdSet:
    """Runs trained on these snapshots and every run fine-tuned from theirs."""
    return _runs_down(select(TrainingRun.id).where(TrainingRun.snapshot_id.in_(snapshots)))


def checkpoints_of_runs(runs: IdSet) -> IdSet:
    return select(Checkpoint.id).where(Checkpoint.run_id.in_(runs))


def images_of_checkpoints(checkpoints: IdSet) -> ColumnElement[bool]:
    """The images of these checkpoints, as a condition on generated_images: its checkpoint index
    answers it directly, where `id IN (a select of 100,000 ids)` would build the set first."""
    return GeneratedImage.checkpoint_id.in_(checkpoints)


def descendants_of_person(person_id: int) -> dict[str, Any]:
    """What was made from a person's faces: snapshots, runs, checkpoints (id sets) and images (a
    condition on generated_images)."""
    snapshots = snapshots_of_members(SnapshotMember.person_id == person_id)
    runs = runs_of_snapshots(snapshots)
    checkpoints = checkpoints_of_runs(runs)
    return {"snapshots": snapshots, "runs": runs, "checkpoints": checkpoints, "images": images_of_checkpoints(checkpoints)}


# ---- Counting one level. ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _LevelColumns:
    model: Any
    label: Any                                  # the column a shown item is named by
    name: Callable[[Any], str]
    flag: str = ""
    flagged: Callable[[], ColumnElement[bool]] | None = None


def _number(value: Any) -> str:
    return f"#{value}"


def _sha12(value: Any) -> str:
    return str(value)[:12]


_COLUMNS = {
    "people": _LevelColumns(Person, Person.code, str),
    "releases": _LevelColumns(Release, Release.id, _number, "revoked", lambda: Release.revoked_on.is_not(None)),
    "shots": _LevelColumns(Shot, Shot.sha256, _sha12, "quarantined", lambda: Shot.status == ShotStatus.quarantined),
    "faces": _LevelColumns(Face, Face.id, _number),
    "snapshots": _LevelColumns(DatasetSnapshot, DatasetSnapshot.id, _number, "tainted", lambda: DatasetSnapshot.tainted.is_(True)),
    "runs": _LevelColumns(TrainingRun, TrainingRun.name, str, "tainted", lambda: TrainingRun.tainted.is_(True)),
    "checkpoints": _LevelColumns(Checkpoint, Checkpoint.id, _number, "tainted", lambda: Checkpoint.tainted.is_(True)),
    "images": _LevelColumns(GeneratedImage, GeneratedImage.image_sha256, _sha12, "tainted", None),
}


def _level(session: Session, name: str, ids: IdSet | ColumnElement[bool], *, limit: int) -> Level:
    """One level (an id set, or a condition on the level's table): its count and flagged count
    (one query), and the first `limit` names (another)."""
    columns = _COLUMNS[name]
    where = columns.model.id.in_(ids) if isinstance(ids, Select) else ids
    if name == "images":
        # An image is tainted when its checkpoint is: one pass over the checkpoint index counts
        # the images per checkpoint (a join to read the flag would touch 100,000 rows).
        per_checkpoint = dict(session.execute(select(GeneratedImage.checkpoint_id, func.count()).where(where)
                                              .group_by(GeneratedImage.checkpoint_id)).all())
        tainted = set(session.scalars(select(Checkpoint.id).where(Checkpoint.id.in_(per_checkpoint),
                                                                  Checkpoint.tainted.is_(True))))
        count = sum(per_checkpoint.values())
        n_flagged = sum(n for checkpoint_id, n in per_checkpoint.items() if checkpoint_id in tainted)
    else:
        flagged = (func.coalesce(func.sum(case((columns.flagged(), 1), else_=0)), 0) if columns.flagged is not None
                   else literal(0))
        count, n_flagged = session.execute(select(func.count(), flagged).select_from(columns.model).where(where)).one()
    shown = session.scalars(select(columns.label).where(where).order_by(columns.model.id).limit(limit)).all()
    return Level(name=name, count=int(count or 0), shown=[columns.name(v) for v in shown], flagged=int(n_flagged or 0),
                 flag=columns.flag)


def _levels(session: Session, sets: list[tuple[str, Any]], limit: int) -> list[Level]:
    return [_level(session, name, ids, limit=limit) for name, ids in sets]


# ---- Resolving what the user named. ----------------------------------------------------------------

def _sha_prefix(text: str, what: str) -> str:
    prefix = text.strip().lower()
    if len(prefix) < MIN_SHA_PREFIX or any(ch not in "0123456789abcdef" for ch in prefix):
        raise InvalidInput(f"{what} {text!r} is not a SHA-256 (or a prefix of at least {MIN_SHA_PREFIX} hex digits)")
    return prefix


def _prefix_match(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` starts with the hex `prefix`, as a range an index can serve (hex digits sort below 'g')."""
    return column == prefix if len(prefix) == 64 else and_(column >= prefix, column < prefix + "g")


def _int_id(ref: str, what: str) -> int:
    text = str(ref).strip().lstrip("#")
    if not text.isdigit():
        raise InvalidInput(f"{what} {ref!r} is not a number")
    return int(text)


def _resolve_person(session: Session, ref: str) -> Person:
    from ingest.people import normalise_code
    person = session.scalar(select(Person).where(Person.code == normalise_code(ref)))
    if person is None:
        raise NotFound(f"no person with code {ref.strip().upper()}", hint="`likeness person list` shows the sitters")
    return person


def _resolve_shot(session: Session, ref: str) -> Shot:
    prefix = _sha_prefix(ref, "shot")
    shots = session.scalars(select(Shot).where(_prefix_match(Shot.sha256, prefix)).limit(2)).all()
    if not shots:
        raise NotFound(f"no shot with SHA-256 {prefix}")
    if len(shots) > 1:
        raise InvalidInput(f"shot {prefix!r} is ambiguous (several shots start with it)", hint="give more of the hash")
    return shots[0]


def _resolve_images(session: Session, ref: str) -> tuple[str, list[int]]:
    prefix = _sha_prefix(ref, "image")
    rows = session.execute(select(GeneratedImage.image_sha256, GeneratedImage.id)
                           .where(_prefix_match(GeneratedImage.image_sha256, prefix)).order_by(GeneratedImage.id)).all()
    if not rows:
        raise NotFound(f"no generated image with SHA-256 {prefix}")
    if len({sha for sha, _ in rows}) > 1:
        raise InvalidInput(f"image {prefix!r} is ambiguous (several images start with it)", hint="give more of the hash")
    return rows[0][0], [image_id for _, image_id in rows]


def _taint_flags(taint: list[Any] | None, tainted: bool) -> list[str]:
    flags = [f"tainted by release #{t.get('release_id')} ({t.get('person')}): {t.get('reason')}"
             for t in (taint or []) if isinstance(t, dict)]
    return flags or (["tainted"] if tainted else [])


# ---- The lineage of each kind. ---------------------------------------------------------------------

def lineage(session: Session, kind: Kind | str, ref: str | int, *, limit: int = SHOWN) -> Lineage:
    """The chain up and down from one node. NotFound for an unknown one, InvalidInput for a
    malformed reference."""
    try:
        kind = Kind(kind)
    except ValueError:
        raise InvalidInput(f"no lineage for {kind!r}", hint=f"one of {', '.join(k.value for k in Kind)}") from None
    return _BUILDERS[kind](session, str(ref), limit)


def _person(session: Session, ref: str, limit: int) -> Lineage:
    person = _resolve_person(session, ref)
    shots = select(Shot.id).where(Shot.person_id == person.id)
    down = descendants_of_person(person.id)
    sets = [("releases", select(Release.id).where(Release.person_id == person.id)), ("shots", shots),
            ("faces", select(Face.id).where(Face.shot_id.in_(shots))), *down.items()]
    return Lineage(Kind.person, f"person {person.code}", [], [], _levels(session, sets, limit))


def _covered_by(release: Release) -> ColumnElement[bool]:
    """The person's shots a release covers by date: captured on or after the signing, not after the expiry."""
    window = [Shot.person_id == release.person_id, Shot.capture_date >= release.signed_on]
    if release.expires_on is not None:
        window.append(Shot.capture_date <= release.expires_on)
    return and_(*window)


def _release(session: Session, ref: str, limit: int) -> Lineage:
    release_id = _int_id(ref, "release")
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release #{release_id}", hint="`likeness release list` shows them")
    members = SnapshotMember.release_id == release.id
    shots = select(Shot.id).where(or_(_covered_by(release), Shot.id.in_(select(SnapshotMember.shot_id).where(members))))
    snapshots = snapshots_of_members(members)
    runs = runs_of_snapshots(snapshots)
    checkpoints = checkpoints_of_runs(runs)
    code = session.scalar(select(Person.code).where(Person.id == release.person_id))
    flags = [f"revoked on {release.revoked_on}: {release.revoked_reason}"] if release.revoked_on else []
    up = _levels(session, [("people", select(Person.id).where(Person.id == release.person_id))], limit)
    down = _levels(session, [("shots", shots), ("faces", select(Face.id).where(Face.shot_id.in_(shots))),
                             ("snapshots", snapshots), ("runs", runs), ("checkpoints", checkpoints),
                             ("images", images_of_checkpoints(checkpoints))], limit)
    return Lineage(Kind.release, f"release #{release.id} of {code} (signed {release.signed_on})", flags, up, down)


def _shot(session: Session, ref: str, limit: int) -> Lineage:
    shot = _resolve_shot(session, ref)
    members = SnapshotMember.shot_id == shot.id
    window = [Release.person_id == shot.person_id, Release.signed_on <= shot.capture_date,
              or_(Release.expires_on.is_(None), Release.expires_on >= shot.capture_date)]
    releases = select(Release.id).where(or_(and_(*window), Release.id.in_(select(SnapshotMember.release_id).where(members))))
    snapshots = snapshots_of_members(members)
    runs = runs_of_snapshots(snapshots)
    checkpoints = checkpoints_of_runs(runs)
    flags = [f"{shot.status}" + (f": {shot.reason}" if shot.reason else "")]
    up = _levels(session, [("people", select(Person.id).where(Person.id == shot.person_id)), ("releases", releases)], limit)
    down = _levels(session, [("faces", select(Face.id).where(Face.shot_id == shot.id)), ("snapshots", snapshots),
                             ("runs", runs), ("checkpoints", checkpoints), ("images", images_of_checkpoints(checkpoints))], limit)
    return Lineage(Kind.shot, f"shot {shot.sha256[:12]} ({shot.relative_path})", flags, up, down)


def _members_up(where: ColumnElement[bool]) -> list[tuple[str, IdSet]]:
    return [("people", select(SnapshotMember.person_id).where(where)),
            ("releases", select(SnapshotMember.release_id).where(where)),
            ("shots", select(SnapshotMember.shot_id).where(where)),
            ("faces", select(SnapshotMember.face_id).where(where, SnapshotMember.face_id.is_not(None)))]


def _snapshot(session: Session, ref: str, limit: int) -> Lineage:
    from training.snapshots.api import find_snapshot_id
    snapshot = session.get_one(DatasetSnapshot, find_snapshot_id(session, ref))
    runs = runs_of_snapshots(select(DatasetSnapshot.id).where(DatasetSnapshot.id == snapshot.id))
    checkpoints = checkpoints_of_runs(runs)
    up = _levels(session, _members_up(SnapshotMember.snapshot_id == snapshot.id), limit)
    down = _levels(session, [("runs", runs), ("checkpoints", checkpoints), ("images", images_of_checkpoints(checkpoints))], limit)
    name = f" {snapshot.name!r}" if snapshot.name else ""
    return Lineage(Kind.snapshot, f"dataset snapshot #{snapshot.id}{name} ({snapshot.sha256[:12]})",
                   _taint_flags(snapshot.taint, snapshot.tainted), up, down)


def _up_from_checkpoints(session: Session, seed: IdSet, limit: int, *, include_seed: bool) -> list[Level]:
    """Everything above some checkpoints: their runs (and the runs and checkpoints they were
    fine-tuned from), those runs' snapshots and the snapshots' members."""
    checkpoints = _checkpoints_up(seed)
    runs = select(Checkpoint.run_id).where(Checkpoint.id.in_(checkpoints))
    snapshots = select(TrainingRun.snapshot_id).where(TrainingRun.id.in_(runs), TrainingRun.snapshot_id.is_not(None))
    ancestors = checkpoints if include_seed else select(Checkpoint.id).where(Checkpoint.id.in_(checkpoints),
                                                                             Checkpoint.id.not_in(seed))
    sets = [*_members_up(SnapshotMember.snapshot_id.in_(snapshots)), ("snapshots", snapshots), ("runs", runs),
            ("checkpoints", ancestors)]
    return _levels(session, sets, limit)


def _checkpoint(session: Session, ref: str, limit: int) -> Lineage:
    checkpoint_id = _int_id(ref, "checkpoint")
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise NotFound(f"no checkpoint #{checkpoint_id}", hint="`likeness train checkpoints` lists them")
    run_name = session.scalar(select(TrainingRun.name).where(TrainingRun.id == checkpoint.run_id))
    seed = select(Checkpoint.id).where(Checkpoint.id == checkpoint.id)
    up = _up_from_checkpoints(session, seed, limit, include_seed=False)
    runs = _runs_fine_tuned_from(seed)
    checkpoints = checkpoints_of_runs(runs)
    images = or_(GeneratedImage.checkpoint_id == checkpoint.id, images_of_checkpoints(checkpoints))
    down = _levels(session, [("runs", runs), ("checkpoints", checkpoints), ("images", images)], limit)
    flags = _taint_flags(checkpoint.taint, checkpoint.tainted)
    return Lineage(Kind.checkpoint, f"checkpoint #{checkpoint.id} (run {run_name}, kimg {checkpoint.kimg:g})", flags, up, down)


def _image(session: Session, ref: str, limit: int) -> Lineage:
    sha, image_ids = _resolve_images(session, ref)
    seed = select(GeneratedImage.checkpoint_id).where(GeneratedImage.id.in_(image_ids))
    up = _up_from_checkpoints(session, seed, limit, include_seed=True)
    rows = session.scalars(select(GeneratedImage).where(GeneratedImage.id.in_(image_ids))).all()
    checkpoints = session.scalars(select(Checkpoint).where(Checkpoint.id.in_({r.checkpoint_id for r in rows}))).all()
    flags = [flag for checkpoint in checkpoints for flag in _taint_flags(checkpoint.taint, checkpoint.tainted)]
    recipes = ", ".join(f"#{r.id} seed {r.seed} psi {r.psi:g}" for r in rows[:limit])
    return Lineage(Kind.image, f"generated image {sha[:12]} ({recipes})", list(dict.fromkeys(flags)), up, [])


_BUILDERS = {Kind.person: _person, Kind.release: _release, Kind.shot: _shot, Kind.snapshot: _snapshot,
             Kind.checkpoint: _checkpoint, Kind.image: _image}
