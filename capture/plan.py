"""Shoot plans: slots of sitter × pose × expression × lighting × count, written by hand (TOML) or
generated from a snapshot spec's shortfall, stored on the shoot's row (``Shoot.plan``).

    shoot = "2026-11-20-studio-a"     # a hand-written plan (likeness capture plan make --from-file)
    date = 2026-11-20
    [[slot]]
    sitter = "P0042"
    pose = "frontal"                  # a head_pose value of the taxonomy
    expression = "smile"              # an expression value, or "any"
    lighting = "butterfly-soft"       # optional
    count = 3

Slots are stored as in shoot.toml's ``plan`` (strings throughout), so a stored plan can be pasted
into a manifest and a manifest's plan read back here.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ingest.people import normalise_code
from ingest.releases import release_status
from labeling.taxonomy import TAXONOMY
from likeness import audit
from likeness.errors import InvalidInput
from likeness.models import Person, Shoot
from training.snapshots.select import Shortfall

ANY = "any"
DEFAULT_POSE = "frontal"
MAX_SLOTS = 10_000  # shoot.toml's limit too
MAX_COUNT = 1_000
_SLOT_KEYS = {"sitter", "pose", "expression", "lighting", "count", "cell"}


@dataclass(frozen=True)
class PlanSlot:
    sitter: str
    pose: str
    expression: str
    count: int
    lighting: str | None = None
    cell: str | None = None  # the snapshot quota this slot fills, when generated from a spec

    def describe(self) -> str:
        parts = [self.sitter, self.pose, self.expression if self.expression != ANY else "any expression"]
        if self.lighting:
            parts.append(self.lighting)
        return f"{' × '.join(parts)} × {self.count}"

    def as_stored(self) -> dict[str, str]:
        stored = {"sitter": self.sitter, "pose": self.pose, "expression": self.expression, "count": str(self.count)}
        if self.lighting:
            stored["lighting"] = self.lighting
        if self.cell:
            stored["cell"] = self.cell
        return stored


@dataclass(frozen=True)
class Unfillable:
    """A shortfall cell no sitter released on the planned date can fill."""

    cell: str
    missing: int
    why: str


@dataclass(frozen=True)
class Plan:
    shoot: str
    date: dt.date
    slots: list[PlanSlot]
    unfillable: list[Unfillable]

    @property
    def frames(self) -> int:
        return sum(slot.count for slot in self.slots)


def _choices(attribute: str) -> set[str]:
    return set(TAXONOMY.by_name[attribute].values())


def slot_from_dict(data: Any, *, where: str) -> PlanSlot:
    """A slot from TOML or a stored plan; InvalidInput naming ``where`` and the key otherwise."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: a slot must be a table of sitter, pose, expression, lighting, count")
    unknown = sorted(set(data) - _SLOT_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r}", hint=f"known keys: {', '.join(sorted(_SLOT_KEYS))}")
    if not data.get("sitter"):
        raise InvalidInput(f"{where}: sitter is missing")
    try:
        sitter = normalise_code(str(data["sitter"]))
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", hint=exc.hint) from None
    pose = str(data.get("pose", DEFAULT_POSE))
    if pose not in _choices("head_pose"):
        raise InvalidInput(f"{where}: pose {pose!r} is not a head pose",
                           hint=f"one of {', '.join(sorted(_choices('head_pose')))}")
    expression = str(data.get("expression", ANY))
    if expression != ANY and expression not in _choices("expression"):
        raise InvalidInput(f"{where}: expression {expression!r} is not an expression",
                           hint=f"one of {', '.join(sorted(_choices('expression')))} or {ANY}")
    raw_count = data.get("count", 1)
    try:
        count = int(raw_count)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: count {raw_count!r} is not a whole number") from None
    if not 1 <= count <= MAX_COUNT or isinstance(raw_count, float | bool):
        raise InvalidInput(f"{where}: count must be a whole number from 1 to {MAX_COUNT}")
    lighting = data.get("lighting")
    return PlanSlot(sitter, pose, expression, count, str(lighting) if lighting else None,
                    str(data["cell"]) if data.get("cell") else None)


def slots_from_stored(stored: list[Any] | None, *, where: str) -> list[PlanSlot]:
    return [slot_from_dict(item, where=f"{where} slot {i + 1}") for i, item in enumerate(stored or [])]


def read_plan_file(path: Path) -> Plan:
    """A hand-written plan (see the module docstring)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the plan ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"shoot", "date", "slot"})
    if unknown:
        raise InvalidInput(f"{path}: unknown key {unknown[0]!r}", hint="known keys: shoot, date, slot")
    shoot, date, slots = data.get("shoot"), data.get("date"), data.get("slot", [])
    if not isinstance(shoot, str) or not shoot.strip():
        raise InvalidInput(f"{path}: shoot (the shoot's name) is missing")
    if not isinstance(date, dt.date) or isinstance(date, dt.datetime):
        raise InvalidInput(f"{path}: date is missing or not a date (write it as 2026-11-20)")
    if not isinstance(slots, list) or not slots:
        raise InvalidInput(f"{path}: the plan has no [[slot]]")
    if len(slots) > MAX_SLOTS:
        raise InvalidInput(f"{path}: {len(slots)} slots is more than the limit of {MAX_SLOTS}")
    return Plan(shoot.strip(), date, [slot_from_dict(s, where=f"{path} slot {i + 1}") for i, s in enumerate(slots)], [])


def _first(where: dict[str, list[str]], attribute: str, default: str) -> str:
    values = where.get(attribute) or []
    return values[0] if values else default


def plan_from_shortfall(
    shortfall: list[Shortfall], *, people: dict[str, Person], shoot: str, date: dt.date, lighting: str | None = None,
) -> Plan:
    """Slots that fill each missing quota cell: its frames spread over the sitters who fit it and
    whose release covers a capture on ``date``; pose and expression from the cell's frame-level
    attributes (frontal and any expression when the cell does not say)."""
    slots: list[PlanSlot] = []
    unfillable: list[Unfillable] = []
    for cell in shortfall:
        fit = [code for code in cell.sitters if code in people]
        released = [code for code in fit if release_status(people[code], date).valid]
        if not released:
            why = (f"no released sitter fits {cell.key}" if not fit
                   else f"no release of {', '.join(fit[:5])} covers {date}")
            unfillable.append(Unfillable(cell.key, cell.missing, why))
            continue
        pose = _first(cell.where, "head_pose", DEFAULT_POSE)
        expression = _first(cell.where, "expression", ANY)
        per_sitter = math.ceil(cell.missing / len(released))
        left = cell.missing
        for code in released:
            if left <= 0:
                break
            count = min(per_sitter, left)
            slots.append(PlanSlot(code, pose, expression, count, lighting, cell.key))
            left -= count
    return Plan(shoot, date, slots, unfillable)


def shortfall_of_spec(session: Session, spec_path: Path, *, today: dt.date, admin: bool) -> list[Shortfall]:
    """The quota cells the current pool cannot fill for the spec at ``spec_path``: the pool and the
    selection as a build makes them, without storing a snapshot (and with a pool smaller than the
    spec's size, which a build refuses)."""
    from training.snapshots.pool import eligible_pool
    from training.snapshots.select import select_faces
    from training.snapshots.spec import load_spec

    spec = load_spec(spec_path)
    pool = eligible_pool(session=session, spec=spec, today=today, admin=admin)
    return select_faces(pool.candidates, spec, released_people=pool.released_people).shortfall


def people_by_code(session: Session, codes: set[str]) -> dict[str, Person]:
    query = select(Person).where(Person.code.in_(codes)).options(selectinload(Person.releases), selectinload(Person.personal))
    return {p.code: p for p in session.scalars(query)}


def store_plan(session: Session, plan: Plan, *, actor: str) -> int:
    """Put the plan on the shoot's row (created when the shoot is not stored yet); the shoot's id.
    A later ingest of the shoot keeps it unless its shoot.toml carries a plan of its own."""
    shoot = session.scalar(select(Shoot).where(Shoot.name == plan.shoot))
    if shoot is None:
        shoot = Shoot(name=plan.shoot, shoot_date=plan.date, sitters=sorted({s.sitter for s in plan.slots}))
        session.add(shoot)
    elif shoot.shoot_date != plan.date:
        raise InvalidInput(f"shoot {plan.shoot} is stored with date {shoot.shoot_date}, not {plan.date}",
                           hint="plan it under another shoot name, or give the stored date")
    shoot.plan = [slot.as_stored() for slot in plan.slots]
    session.flush()
    audit.record(session=session, actor=actor, action="shoot.plan", subject_type="shoot", subject_id=shoot.id,
                 slots=len(plan.slots), frames=plan.frames)
    return shoot.id
