"""Train and validation by person: nobody's faces on both sides.

Whole people go to validation until it holds about `validation_share` of the faces, chosen (a
small integer program over people) so that each quota cell is split in the same proportion as
far as the people allow.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pulp

from likeness.models import Split
from training.snapshots.pool import Candidate
from training.snapshots.spec import Spec

SIZE_WEIGHT = 10.0          # per face away from the validation size
CELL_WEIGHT = 1.0           # per face away from a cell's proportional validation count


@dataclass(frozen=True)
class SplitResult:
    split: dict[int, Split]        # face id → train or val
    validation_people: list[str]
    train_people: list[str]
    leaked_people: list[str]       # in both: always empty, and checked
    note: str | None = None

    def report(self, chosen: list[Candidate], spec: Spec) -> dict[str, Any]:
        val = sum(1 for s in self.split.values() if s is Split.val)
        cells = {}
        for quota in spec.quotas:
            inside = [c for c in chosen if all(c.attributes.get(x.attribute) in x.values for x in quota.cells)]
            cells[quota.key] = {"train": sum(1 for c in inside if self.split[c.face_id] is Split.train),
                                "val": sum(1 for c in inside if self.split[c.face_id] is Split.val)}
        return {"train": len(self.split) - val, "val": val, "validation_people": self.validation_people,
                "train_people": len(self.train_people), "leaked_people": self.leaked_people, "cells": cells,
                "note": self.note}


def split_by_person(chosen: list[Candidate], spec: Spec) -> SplitResult:
    by_person: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in chosen:
        by_person[candidate.person_code].append(candidate)
    people = sorted(by_person)
    want = spec.validation_share * len(chosen)
    note = None
    if spec.validation_share == 0 or not chosen:
        val_people: set[str] = set()
    elif len(people) < 2:
        val_people, note = set(), "validation needs at least two people: every face is in train"
    else:
        val_people = _choose(by_person, people, want, spec)
        if len(val_people) == len(people):   # a tiny pool with a large share: keep someone to train on
            val_people.discard(people[-1])
    split = {c.face_id: Split.val if c.person_code in val_people else Split.train for c in chosen}
    train_people = sorted({c.person_code for c in chosen if split[c.face_id] is Split.train})
    validation = sorted({c.person_code for c in chosen if split[c.face_id] is Split.val})
    leaked = sorted(set(train_people) & set(validation))
    return SplitResult(split, validation, train_people, leaked, note)


def _choose(by_person: dict[str, list[Candidate]], people: list[str], want: float, spec: Spec) -> set[str]:
    problem = pulp.LpProblem("split", pulp.LpMinimize)
    pick = {p: problem.add_variable(f"v{i}", cat="Binary") for i, p in enumerate(people)}
    over, under = problem.add_variable("over", 0), problem.add_variable("under", 0)
    problem += pulp.lpSum(pick[p] * len(by_person[p]) for p in people) - want == over - under
    objective: list[Any] = [SIZE_WEIGHT * (over + under)]
    # Faces per person and quota cell, counted once over each person's distinct attribute values.
    per_person = {p: Counter(tuple(sorted(c.attributes.items())) for c in by_person[p]) for p in people}
    for i, quota in enumerate(spec.quotas):
        counts = {p: sum(n for values, n in per_person[p].items()
                         if all(dict(values).get(x.attribute) in x.values for x in quota.cells))
                  for p in people}
        total = sum(counts.values())
        if not total:
            continue
        above, below = problem.add_variable(f"a{i}", 0), problem.add_variable(f"b{i}", 0)
        problem += pulp.lpSum(pick[p] * counts[p] for p in people) - spec.validation_share * total == above - below
        objective.append(CELL_WEIGHT * (above + below))
    problem += pulp.lpSum(pick.values()) >= 1
    problem += pulp.lpSum(objective)
    problem.solve(pulp.PULP_CBC_CMD(msg=False, threads=1, timeLimit=60))
    return {p for p in people if (pick[p].value() or 0) > 0.5}
