"""A snapshot spec: what a dataset snapshot must contain, read from TOML and checked against the
taxonomy, with every error naming the key.

    size = 1000                 # faces in the snapshot (train + validation)
    resolution = 256            # side of the exported PNGs (a power of two)
    seed = 0
    tolerance = 0.02            # each quota may miss its share by this much (a share of `size`)
    max_person_share = 0.1      # no person above this share of the snapshot
    validation_share = 0.1      # share of faces held out for validation, whole people at a time
    label_attributes = ["age_band", "expression"]   # the conditioning label vector

    [filters]
    shot_qa = "passed"          # "passed" (every check passed) or "any" (accepted shots)
    labels = { usable = "yes" } # consensus values a face must have
    shoots = ["2026-11 studio A"]
    captured_from = 2026-01-01
    captured_to = 2026-12-31

    [quotas.age_band]           # shares of `size`, summing to 1
    adult = 0.5
    child = 0.25
    senior = 0.25
    [quotas.skin_tone]          # an ordinal attribute takes bands "lo-hi" (inclusive)
    "1-3" = 0.3
    "4-7" = 0.4
    "*" = 0.3                   # every value not named

    [[joint]]                   # a share for a combination of values
    where = { age_band = "senior", skin_tone = "8-10" }
    share = 0.05

Values not named in a quota (and not covered by "*") get a share of 0: such faces are left out.
A quota on `self.KEY` counts the sitter's own statement from the admin-only intake; only an
admin may build such a spec, and it never reaches an export or a label vector.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labeling.taxonomy import TAXONOMY, Taxonomy
from likeness.errors import InvalidInput

SELF_PREFIX = "self."
REST = "*"
SHARE_SUM_SLACK = 1e-6
QA_FILTERS = ("passed", "any")


class SpecError(InvalidInput):
    """A spec cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Cell:
    """Faces whose `attribute` takes one of `values` (a quota value, band or the rest)."""

    attribute: str
    name: str                      # as written in the spec: "senior", "8-10" or "*"
    values: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.attribute}={self.name}"


@dataclass(frozen=True)
class Quota:
    """A target share of the snapshot for a cell, or for a joint combination of cells."""

    cells: tuple[Cell, ...]
    share: float

    @property
    def key(self) -> str:
        return " × ".join(c.describe() for c in self.cells)

    @property
    def joint(self) -> bool:
        return len(self.cells) > 1


@dataclass(frozen=True)
class Filters:
    shot_qa: str = "passed"
    labels: Mapping[str, str] = field(default_factory=dict)
    shoots: tuple[str, ...] = ()
    captured_from: dt.date | None = None
    captured_to: dt.date | None = None


@dataclass(frozen=True)
class Spec:
    size: int
    resolution: int
    seed: int
    tolerance: float
    max_person_share: float
    validation_share: float
    label_attributes: tuple[str, ...]
    filters: Filters
    quotas: tuple[Quota, ...]
    name: str | None = None

    @property
    def attributes(self) -> tuple[str, ...]:
        """Every attribute a face needs a value for: quota, filter and label attributes."""
        names = [c.attribute for q in self.quotas for c in q.cells] + list(self.label_attributes)
        return tuple(dict.fromkeys(n for n in names if not n.startswith(SELF_PREFIX)))

    @property
    def self_identified(self) -> tuple[str, ...]:
        """The intake keys quotas use (admin only)."""
        return tuple(dict.fromkeys(c.attribute[len(SELF_PREFIX):] for q in self.quotas for c in q.cells
                                   if c.attribute.startswith(SELF_PREFIX)))

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready form, the same for equal specs however they were written."""
        data = asdict(self)
        data["filters"]["labels"] = dict(sorted(self.filters.labels.items()))
        for key in ("captured_from", "captured_to"):
            value = data["filters"][key]
            data["filters"][key] = value.isoformat() if value else None
        return data

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()


# ---- Reading. ---------------------------------------------------------------------------------

_TOP_KEYS = {"name", "size", "resolution", "seed", "tolerance", "max_person_share", "validation_share",
             "label_attributes", "filters", "quotas", "joint"}
_FILTER_KEYS = {"shot_qa", "labels", "shoots", "captured_from", "captured_to"}


def load_spec(path: Path, *, taxonomy: Taxonomy = TAXONOMY) -> Spec:
    """Read a spec file; SpecError naming the file and key for anything wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc})") from exc
    return parse_spec(text, where=str(path), taxonomy=taxonomy)


def parse_spec(text: str, *, where: str = "spec", taxonomy: Taxonomy = TAXONOMY) -> Spec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where}: not valid TOML ({exc})") from exc
    return spec_from_dict(data, where=where, taxonomy=taxonomy)


def spec_from_dict(data: Mapping[str, Any], *, where: str = "spec", taxonomy: Taxonomy = TAXONOMY) -> Spec:
    reader = _Reader(where, taxonomy)
    return reader.spec(data)


class _Reader:
    def __init__(self, where: str, taxonomy: Taxonomy) -> None:
        self.where = where
        self.taxonomy = taxonomy

    def fail(self, key: str, message: str, hint: str | None = None) -> SpecError:
        return SpecError(f"{self.where}: {key}: {message}", hint=hint)

    def spec(self, data: Mapping[str, Any]) -> Spec:
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise self.fail(unknown[0], "unknown key", hint=f"known keys: {', '.join(sorted(_TOP_KEYS))}")
        size = self.integer(data, "size", required=True, low=1)
        resolution = self.integer(data, "resolution", default=256, low=4)
        if resolution & (resolution - 1):
            raise self.fail("resolution", f"{resolution} is not a power of two", hint="use 64, 128, 256, 512 or 1024")
        label_attributes = tuple(self.string_list(data, "label_attributes"))
        for i, name in enumerate(label_attributes):
            self.attribute(f"label_attributes[{i}]", name, allow_self=False)
        if len(set(label_attributes)) != len(label_attributes):
            raise self.fail("label_attributes", "names an attribute twice")
        quotas = [*self.marginals(data.get("quotas", {})), *self.joints(data.get("joint", []))]
        title = data.get("name")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise self.fail("name", "must be a non-empty string")
        tolerance = self.share(data, "tolerance", default=0.0)
        self.feasible(quotas, size, tolerance)
        return Spec(
            size=size, resolution=resolution, seed=self.integer(data, "seed", default=0, low=0),
            tolerance=tolerance,
            max_person_share=self.share(data, "max_person_share", default=1.0, positive=True),
            validation_share=self.share(data, "validation_share", default=0.0, below_one=True),
            label_attributes=label_attributes, filters=self.filters(data.get("filters", {})),
            quotas=tuple(quotas), name=title.strip() if isinstance(title, str) else None,
        )

    # -- scalars --

    def integer(self, data: Mapping[str, Any], key: str, *, required: bool = False, default: int = 0, low: int = 0) -> int:
        if key not in data:
            if required:
                raise self.fail(key, "is required")
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, got {value!r}")
        if value < low:
            raise self.fail(key, f"must be at least {low}, got {value}")
        return value

    def share(self, data: Mapping[str, Any], key: str, *, default: float, positive: bool = False,
              below_one: bool = False) -> float:
        if key not in data:
            return default
        return self.share_value(key, data[key], positive=positive, below_one=below_one)

    def share_value(self, key: str, value: Any, *, positive: bool = False, below_one: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a share between 0 and 1, got {value!r}")
        value = float(value)
        if not 0.0 <= value <= 1.0 or (positive and value == 0.0) or (below_one and value >= 1.0):
            bounds = "above 0 and at most 1" if positive else "0 or more and below 1" if below_one else "between 0 and 1"
            raise self.fail(key, f"must be {bounds}, got {value}")
        return value

    def string_list(self, data: Mapping[str, Any], key: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"must be a list of names, got {value!r}")
        return value

    def date(self, data: Mapping[str, Any], key: str) -> dt.date | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(f"filters.{key}", f"must be a date (YYYY-MM-DD), got {value!r}")

    # -- attributes and values --

    def attribute(self, key: str, name: str, *, allow_self: bool = True) -> None:
        if name.startswith(SELF_PREFIX):
            if not allow_self:
                raise self.fail(key, f"{name} is a self-identified statement: it may set a quota but never a label")
            if not name[len(SELF_PREFIX):]:
                raise self.fail(key, "names no intake key after 'self.'")
            return
        if name not in self.taxonomy.by_name:
            raise self.fail(key, f"unknown attribute {name!r}",
                            hint=f"known: {', '.join(self.taxonomy.by_name)}, or self.KEY for an intake statement")

    def cell(self, key: str, attribute: str, name: str) -> Cell:
        """A quota value: a taxonomy value, a band "lo-hi" of an ordinal attribute, or "*"."""
        if attribute.startswith(SELF_PREFIX):
            return Cell(attribute, name, () if name == REST else (name,))
        taxon = self.taxonomy.by_name[attribute]
        values = taxon.values()
        if name == REST:
            return Cell(attribute, name, ())
        if name in values:
            return Cell(attribute, name, (name,))
        if "-" in name and taxon.ordinal:
            low, _, high = name.partition("-")
            if low in values and high in values and values.index(low) <= values.index(high):
                return Cell(attribute, name, tuple(values[values.index(low):values.index(high) + 1]))
        band = " or a band lo-hi" if taxon.ordinal else ""
        raise self.fail(key, f"unknown value {name!r} of {attribute}", hint=f"use one of {', '.join(values)}{band}, or *")

    def marginals(self, quotas: Any) -> list[Quota]:
        if not isinstance(quotas, Mapping):
            raise self.fail("quotas", "must be a table of attributes")
        out: list[Quota] = []
        for attribute, shares in quotas.items():
            key = f"quotas.{attribute}"
            self.attribute(key, attribute)
            if not isinstance(shares, Mapping) or not shares:
                raise self.fail(key, "must be a table of value = share")
            cells = [(self.cell(f"{key}.{name}", attribute, name), self.share_value(f"{key}.{name}", share))
                     for name, share in shares.items()]
            seen: dict[str, str] = {}
            for cell, _ in cells:
                for value in cell.values:
                    if value in seen:
                        raise self.fail(f"{key}.{cell.name}", f"{value} is counted in {seen[value]} too")
                    seen[value] = cell.name
            total = sum(share for _, share in cells)
            if abs(total - 1.0) > SHARE_SUM_SLACK:
                raise self.fail(key, f"shares sum to {total:g}, not 1", hint='add the rest as "*" = share')
            rest = [cell for cell, _ in cells if cell.name == REST]
            if rest and not attribute.startswith(SELF_PREFIX):
                # The rest is every taxonomy value no other cell names.
                named = set(seen)
                others = tuple(v for v in self.taxonomy.by_name[attribute].values() if v not in named)
                cells = [(Cell(attribute, REST, others) if c.name == REST else c, s) for c, s in cells]
            out += [Quota((cell,), share) for cell, share in cells]
        return out

    def joints(self, joints: Any) -> list[Quota]:
        if not isinstance(joints, list):
            raise self.fail("joint", "must be an array of tables ([[joint]])")
        out: list[Quota] = []
        for i, joint in enumerate(joints):
            key = f"joint[{i}]"
            if not isinstance(joint, Mapping) or set(joint) != {"where", "share"}:
                raise self.fail(key, "needs exactly `where = {attribute = value, ...}` and `share`")
            where = joint["where"]
            if not isinstance(where, Mapping) or len(where) < 2:
                raise self.fail(f"{key}.where", "must name at least two attributes")
            cells = []
            for attribute, name in where.items():
                self.attribute(f"{key}.where.{attribute}", attribute)
                if not isinstance(name, str) or name == REST:
                    raise self.fail(f"{key}.where.{attribute}", f"must be a value or a band, got {name!r}")
                cells.append(self.cell(f"{key}.where.{attribute}", attribute, name))
            out.append(Quota(tuple(cells), self.share_value(f"{key}.share", joint["share"])))
        return out

    def feasible(self, quotas: list[Quota], size: int, tolerance: float) -> None:
        """Quotas no pool could meet: a fractional count with no tolerance, or a joint cell asking
        for more than one of its marginal cells allows."""
        marginal = {(q.cells[0].attribute, q.cells[0].name): q for q in quotas if not q.joint}
        for quota in quotas:
            target = quota.share * size
            if tolerance == 0 and abs(target - round(target)) > 1e-9:
                raise self.fail(f"quota {quota.key}", f"{quota.share:g} of {size} is {target:g} faces, not a whole number, "
                                "and tolerance is 0", hint="set a tolerance, or a size that makes every share whole")
            if not quota.joint:
                continue
            for cell in quota.cells:
                outer = marginal.get((cell.attribute, cell.name))
                if outer is not None and quota.share > outer.share + tolerance + SHARE_SUM_SLACK:
                    raise self.fail(f"joint {quota.key}", f"share {quota.share:g} is more than quotas.{cell.attribute}."
                                    f"{cell.name} allows ({outer.share:g})")

    def filters(self, data: Any) -> Filters:
        if not isinstance(data, Mapping):
            raise self.fail("filters", "must be a table")
        unknown = sorted(set(data) - _FILTER_KEYS)
        if unknown:
            raise self.fail(f"filters.{unknown[0]}", "unknown key", hint=f"known keys: {', '.join(sorted(_FILTER_KEYS))}")
        shot_qa = data.get("shot_qa", "passed")
        if shot_qa not in QA_FILTERS:
            raise self.fail("filters.shot_qa", f"must be one of {', '.join(QA_FILTERS)}, got {shot_qa!r}")
        labels = data.get("labels", {})
        if not isinstance(labels, Mapping):
            raise self.fail("filters.labels", "must be a table of attribute = value")
        for attribute, value in labels.items():
            self.attribute(f"filters.labels.{attribute}", attribute, allow_self=False)
            if not isinstance(value, str) or not self.taxonomy.knows(attribute, value):
                values = ", ".join(self.taxonomy.by_name[attribute].values())
                raise self.fail(f"filters.labels.{attribute}", f"unknown value {value!r}", hint=f"use one of {values}")
        shoots = tuple(self.string_list(data, "shoots"))
        captured_from, captured_to = self.date(data, "captured_from"), self.date(data, "captured_to")
        if captured_from and captured_to and captured_from > captured_to:
            raise self.fail("filters.captured_to", f"{captured_to} is before captured_from {captured_from}")
        return Filters(shot_qa=shot_qa, labels=dict(labels), shoots=shoots,
                       captured_from=captured_from, captured_to=captured_to)
