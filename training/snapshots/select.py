"""Choosing the snapshot: every quota at once, as an integer program (PuLP with its CBC solver).

Faces of one person with the same values of every quota attribute are interchangeable as far as
the quotas and the person cap go, so the program decides how many to take from each such group
(thousands of integers instead of tens of thousands of binaries); inside a group the sharpest,
best-exposed faces are taken first, spread over the person's shoots.

Objective, in order of weight: (1) the full size, when the pool allows; (2) the fewest faces outside
any quota's tolerance band, short or over; (3) every count as close to its exact target as the
band allows; (4) no one person dominating (the largest person count); (5) quality. A tiny seeded
jitter breaks ties between equal groups, so equal seeds give equal snapshots.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pulp

from training.snapshots.pool import PERSON_LEVEL, Candidate
from training.snapshots.spec import Quota, Spec

SIZE_MISSING = 10000.0  # per face missing from the size: a customer's order is filled first
OUTSIDE_BAND = 1000.0   # per face outside a quota's band
OFF_TARGET = 1.0        # per face away from a quota's exact target, inside its band
DOMINANCE = 0.01        # per face of the largest person's count
QUALITY = 0.001         # per face, times its group's mean quality (0..1)
SOLVER_TIME_LIMIT_S = 120


@dataclass(frozen=True)
class CellResult:
    """One quota, as asked and as met."""

    key: str                       # "age_band=senior" or "age_band=senior × skin_tone=8-10"
    where: dict[str, list[str]]    # attribute → the values that count
    share: float
    target: float                  # share × size
    low: int                       # the tolerance band, in faces
    high: int
    achieved: int
    joint: bool

    @property
    def missing(self) -> int:
        return max(0, self.low - self.achieved)

    @property
    def excess(self) -> int:
        return max(0, self.achieved - self.high)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "where": self.where, "share": self.share, "target": round(self.target, 3),
                "low": self.low, "high": self.high, "achieved": self.achieved, "joint": self.joint,
                "missing": self.missing, "excess": self.excess}


@dataclass(frozen=True)
class Shortfall:
    """A quota the pool cannot meet: how many more faces it needs and who could sit for them."""

    key: str
    where: dict[str, list[str]]
    missing: int
    sitters: list[str]             # released people whose person-level attributes fit the cell

    def describe(self) -> str:
        who = ", ".join(self.sitters[:8]) + (" …" if len(self.sitters) > 8 else "") if self.sitters else "no released sitter fits"
        return f"needs {self.missing} more: {self.key} (could sit: {who})"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "where": self.where, "missing": self.missing, "sitters": self.sitters}


@dataclass
class Selection:
    chosen: list[Candidate]
    cells: list[CellResult]
    shortfall: list[Shortfall]
    size_missing: int              # faces short of the spec's size
    status: str                    # the solver's verdict
    solve_s: float
    groups: int
    people: dict[str, int] = field(default_factory=dict)   # person code → faces chosen

    @property
    def worst_deviation(self) -> float:
        """The largest distance of any quota from its target, as a share of the size."""
        size = max(len(self.chosen), 1)
        return max((abs(c.achieved - c.target) / size for c in self.cells), default=0.0)


def band(target: float, tolerance_faces: float) -> tuple[int, int]:
    """Whole-face bounds of a target ± tolerance; a fractional target with no tolerance rounds both ways."""
    low, high = math.ceil(target - tolerance_faces - 1e-9), math.floor(target + tolerance_faces + 1e-9)
    if low > high:
        low, high = math.floor(target), math.ceil(target)
    return max(low, 0), high


def quota_terms(problem: Any, i: int, count: Any, target: float, tolerance_faces: float, objective: list[Any]) -> tuple[int, int]:
    """Quota `i`'s constraints on `count`: misses outside its band weigh OUTSIDE_BAND per face,
    distance from the exact target OFF_TARGET (added to `objective`); returns the band."""
    low, high = band(target, tolerance_faces)
    under, over = problem.add_variable(f"under{i}", 0), problem.add_variable(f"over{i}", 0)
    above, below = problem.add_variable(f"above{i}", 0), problem.add_variable(f"below{i}", 0)
    problem += count + under >= low
    problem += count - over <= high
    problem += count - target == above - below
    objective += [OUTSIDE_BAND * (under + over), OFF_TARGET * (above + below)]
    return low, high


def _in_cell(attributes: dict[str, str], quota: Quota) -> bool:
    return all(attributes.get(c.attribute) in c.values for c in quota.cells)


def _selectable(attributes: dict[str, str], marginal_attributes: dict[str, set[str]]) -> bool:
    """A face whose value of a quota attribute no quota cell names has a share of 0."""
    return all(attributes.get(a) in named for a, named in marginal_attributes.items())


def select_faces(candidates: list[Candidate], spec: Spec, *, released_people: dict[str, dict[str, str]] | None = None) -> Selection:
    size = spec.size
    marginal: dict[str, set[str]] = defaultdict(set)
    for quota in spec.quotas:
        if not quota.joint:
            marginal[quota.cells[0].attribute].update(quota.cells[0].values)
    quota_attributes = sorted({c.attribute for q in spec.quotas for c in q.cells})

    groups: dict[tuple[Any, ...], list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if _selectable(candidate.attributes, marginal):
            key = (candidate.person_id, *(candidate.attributes.get(a, "") for a in quota_attributes))
            groups[key].append(candidate)
    keys = sorted(groups)
    jitter = random.Random(spec.seed)
    for key in keys:
        groups[key].sort(key=lambda c: (-c.quality, c.face_id))

    started = time.perf_counter()
    problem = pulp.LpProblem("snapshot", pulp.LpMinimize)
    take = {key: problem.add_variable(f"n{i}", 0, len(groups[key]), cat="Integer") for i, key in enumerate(keys)}
    size_short = problem.add_variable("size_short", 0)
    problem += pulp.lpSum(take.values()) + size_short == size
    objective: list[Any] = [SIZE_MISSING * size_short]

    bands = []
    for i, quota in enumerate(spec.quotas):
        members = [take[k] for k in keys if _in_cell(groups[k][0].attributes, quota)]
        bands.append(quota_terms(problem, i, pulp.lpSum(members), quota.share * size, spec.tolerance * size, objective))

    per_person: dict[Any, list[Any]] = defaultdict(list)
    for key in keys:
        per_person[key[0]].append(take[key])
    cap = math.floor(spec.max_person_share * size + 1e-9)
    largest = problem.add_variable("largest_person", 0)
    for counts in per_person.values():
        problem += pulp.lpSum(counts) <= largest
        if spec.max_person_share < 1.0:
            problem += pulp.lpSum(counts) <= cap
    objective.append(DOMINANCE * largest)
    # Mean quality of a group's best faces stands in for the quality of whatever is taken from it.
    objective.append(-QUALITY * pulp.lpSum(
        take[k] * (sum(c.quality for c in groups[k]) / len(groups[k]) + 1e-3 * jitter.random()) for k in keys))
    problem += pulp.lpSum(objective)
    problem.solve(pulp.PULP_CBC_CMD(msg=False, threads=1, timeLimit=SOLVER_TIME_LIMIT_S))
    solve_s = time.perf_counter() - started
    status = pulp.LpStatus[problem.status]

    chosen: list[Candidate] = []
    for key in keys:
        n = int(round(take[key].value() or 0))
        chosen += _spread(groups[key], n)
    chosen.sort(key=lambda c: c.face_id)

    cells = []
    for quota, (low, high) in zip(spec.quotas, bands):
        achieved = sum(1 for c in chosen if _in_cell(c.attributes, quota))
        cells.append(CellResult(
            key=quota.key, where={c.attribute: list(c.values) for c in quota.cells}, share=quota.share,
            target=quota.share * size, low=low, high=high, achieved=achieved, joint=quota.joint))
    people: dict[str, int] = defaultdict(int)
    for c in chosen:
        people[c.person_code] += 1
    shortfall = [_shortfall(cell, released_people or {}, people, cap if spec.max_person_share < 1.0 else None)
                 for cell in cells if cell.missing]
    return Selection(chosen=chosen, cells=cells, shortfall=shortfall, size_missing=size - len(chosen),
                     status=status, solve_s=solve_s, groups=len(keys), people=dict(sorted(people.items())))


def _spread(faces: list[Candidate], n: int) -> list[Candidate]:
    """The best `n` faces of a group, taking in turn from each shoot (best shoot first) so that one
    session does not fill the group alone."""
    by_shoot: dict[int, list[Candidate]] = defaultdict(list)
    for face in faces:                      # already best first
        by_shoot[face.shoot_id].append(face)
    queues = sorted(by_shoot.values(), key=lambda q: (-q[0].quality, q[0].face_id))
    out: list[Candidate] = []
    while len(out) < n and queues:
        for queue in list(queues):
            if len(out) == n:
                break
            out.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
    return out


def _shortfall(cell: CellResult, released: dict[str, dict[str, str]], chosen: dict[str, int], cap: int | None) -> Shortfall:
    """Who could fill the cell at the next shoot: released sitters whose person-level values (age
    band, skin tone ...) fall in the cell, and who are not at the person cap already."""
    sitters = []
    for code, values in released.items():
        if cap is not None and chosen.get(code, 0) >= cap:
            continue
        fits = all(values.get(attribute) in allowed for attribute, allowed in cell.where.items()
                   if attribute in PERSON_LEVEL or attribute.startswith("self."))
        if fits:
            sitters.append(code)
    return Shortfall(cell.key, cell.where, cell.missing, sitters)
