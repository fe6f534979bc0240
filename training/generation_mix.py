"""Conditional generation to a target mix of labels, written as a dataset snapshot spec.

The spec's quotas ([quotas.X] shares and [[joint]] cells; training.snapshots.spec) say what
share of the faces each label value gets; `size` is the number of faces unless another n is
given. The faces are spread over label cells: one cell per combination of values of the
checkpoint's label attributes (its snapshot's encoding). How many faces each cell gets is a
small integer program solved with PuLP/CBC, the solver the snapshots use, with their tolerance
bands (`band`) and weights: first every quota inside its band, then every quota as near its
exact target as it can be, and last each cell as near its share under independence (the
product of its values' shares; a band or "*" cell splits its share evenly over its values, an
attribute without a quota over all of its values), in total and at the worst cell, so no
combination is starved or piled up.

Each cell's faces take the seeds offset + 0 .. count - 1, where the offset comes from the hash
of the cell's label: the same spec and n always ask for the same recipes, so a rerun resumes
(training.generate skips what exists), and a larger n extends every cell's seeds.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any

import pulp

from labeling.encoding import Slot, encode
from likeness.errors import InvalidInput
from likeness.workbench import Workbench
from training.generate import MAX_SEED, MAX_SEEDS_PER_CALL, label_key
from training.snapshots.api import checkpoint_encoding
from training.snapshots.select import quota_terms
from training.snapshots.spec import SELF_PREFIX, Quota, Spec

SPREAD = 0.01                 # per face away from a cell's share under independence (below OFF_TARGET)
MAX_CELLS = 20_000            # label combinations one mix may span
SOLVER_TIME_LIMIT_S = 60


@dataclasses.dataclass(frozen=True)
class MixCell:
    """The faces of one label combination."""

    values: tuple[tuple[str, str], ...]  # (attribute, value), in the label's attribute order
    label: tuple[float, ...]             # the encoded label vector
    count: int
    seeds: range

    def describe(self) -> str:
        return ",".join(f"{a}={v}" for a, v in self.values)


@dataclasses.dataclass(frozen=True)
class QuotaCount:
    """A quota of the spec and what the allocation gives it."""

    key: str
    target: float
    low: int
    high: int
    allocated: int

    @property
    def met(self) -> bool:
        return self.low <= self.allocated <= self.high


@dataclasses.dataclass(frozen=True)
class Mix:
    cells: tuple[MixCell, ...]           # cells with at least one face
    quotas: tuple[QuotaCount, ...]
    status: str                          # the solver's status ("Optimal")

    @property
    def total(self) -> int:
        return sum(cell.count for cell in self.cells)


def checkpoint_slots(workbench: Workbench, checkpoint_id: int) -> list[Slot]:
    """The label encoding of the snapshot the checkpoint was trained on."""
    slots, run_name = checkpoint_encoding(workbench, checkpoint_id)
    if slots is None:
        raise InvalidInput(f"checkpoint #{checkpoint_id} (run {run_name}) has no attribute labels: a mix of labels "
                           "needs a checkpoint trained on a labelled dataset snapshot")
    return slots


def allocate(spec: Spec, slots: Sequence[Slot], *, n: int | None = None) -> Mix:
    """Spread n faces (default: the spec's size) over the label cells of `slots` to meet the quotas."""
    total = spec.size if n is None else n
    if total < 1:
        raise InvalidInput(f"a mix needs at least one face, got {total}")
    values = _allowed_values(spec, slots)
    combos = list(itertools.product(*(values[s.attribute] for s in slots)))
    if len(combos) > MAX_CELLS:
        raise InvalidInput(f"the mix spans {len(combos):,} label combinations (at most {MAX_CELLS:,})",
                           hint="give quotas that leave out values, or a model with fewer label attributes")
    attributes = [s.attribute for s in slots]
    priors = _value_shares(spec, slots, values)
    expected = [total * math.prod(priors[a][v] for a, v in zip(attributes, combo)) for combo in combos]

    problem = pulp.LpProblem("mix", pulp.LpMinimize)
    take = [problem.add_variable(f"n{i}", 0, total, cat="Integer") for i in range(len(combos))]
    problem += pulp.lpSum(take) == total
    objective: list[Any] = []
    bands = []
    for i, quota in enumerate(spec.quotas):
        members = [take[k] for k, combo in enumerate(combos) if _in(quota, dict(zip(attributes, combo)))]
        bands.append(quota_terms(problem, i, pulp.lpSum(members), quota.share * total, spec.tolerance * total, objective))
    worst = problem.add_variable("worst", 0)   # the largest miss: L1 alone would pile the rest on one cell
    for k, want in enumerate(expected):
        more, less = problem.add_variable(f"more{k}", 0), problem.add_variable(f"less{k}", 0)
        problem += take[k] - want == more - less
        problem += more <= worst
        problem += less <= worst
        objective.append(SPREAD * (more + less))
    objective.append(SPREAD * len(combos) * worst)
    problem += pulp.lpSum(objective)
    problem.solve(pulp.PULP_CBC_CMD(msg=False, threads=1, timeLimit=SOLVER_TIME_LIMIT_S))
    counts = [int(round(x.value() or 0)) for x in take]

    cells = []
    for combo, count in zip(combos, counts):
        if count:
            pairs = tuple(zip(attributes, combo))
            label = tuple(encode(dict(pairs), slots))
            cells.append(MixCell(values=pairs, label=label, count=count, seeds=cell_seeds(label, count)))
    quotas = tuple(
        QuotaCount(key=quota.key, target=quota.share * total, low=low, high=high,
                   allocated=sum(c.count for c in cells if _in(quota, dict(c.values))))
        for quota, (low, high) in zip(spec.quotas, bands))
    return Mix(cells=tuple(cells), quotas=quotas, status=pulp.LpStatus[problem.status])


def cell_seeds(label: Sequence[float], count: int) -> range:
    """The seeds of a cell: a fixed offset per label (its hash), so cells draw different latents."""
    if count > MAX_SEEDS_PER_CALL:
        raise InvalidInput(f"{count:,} faces for one label; one call takes at most {MAX_SEEDS_PER_CALL:,}")
    offset = int(label_key(list(label))[:12], 16) % (MAX_SEED + 1 - MAX_SEEDS_PER_CALL)
    return range(offset, offset + count)


def _in(quota: Quota, values: dict[str, str]) -> bool:
    return all(values.get(c.attribute) in c.values for c in quota.cells)


def _allowed_values(spec: Spec, slots: Sequence[Slot]) -> dict[str, tuple[str, ...]]:
    """Each label attribute's values that may get faces: those a marginal quota gives a share."""
    encoded = {s.attribute for s in slots}
    for quota in spec.quotas:
        for cell in quota.cells:
            if cell.attribute.startswith(SELF_PREFIX):
                raise InvalidInput(f"quota {quota.key}: self-identified attributes are not model labels",
                                   hint="a mix can only ask for the attributes of the model's label")
            if cell.attribute not in encoded:
                raise InvalidInput(f"quota {quota.key}: {cell.attribute} is not part of this model's label",
                                   hint=f"its label has {', '.join(s.attribute for s in slots)}")
    allowed = {}
    for slot in slots:
        shared = {v for q in spec.quotas if not q.joint and q.share > 0
                  for c in q.cells if c.attribute == slot.attribute for v in c.values}
        marginal = any(not q.joint and q.cells[0].attribute == slot.attribute for q in spec.quotas)
        allowed[slot.attribute] = tuple(v for v in slot.values if v in shared) if marginal else slot.values
    return allowed


def _value_shares(spec: Spec, slots: Sequence[Slot],
                  values: dict[str, tuple[str, ...]]) -> dict[str, dict[str, float]]:
    """Each allowed value's share under independence: its marginal cell's share split evenly."""
    shares: dict[str, dict[str, float]] = {}
    for slot in slots:
        allowed = values[slot.attribute]
        own = {v: 1.0 / len(allowed) for v in allowed}
        for quota in spec.quotas:
            cell = quota.cells[0]
            if not quota.joint and cell.attribute == slot.attribute:
                inside = [v for v in cell.values if v in own]
                for v in inside:
                    own[v] = quota.share / len(inside)
        shares[slot.attribute] = own
    return shares

