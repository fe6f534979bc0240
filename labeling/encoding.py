"""The conditioning label vector of a snapshot: the chosen attributes, concatenated.

A categorical attribute takes one slot per value (one-hot). An ordinal attribute (age band, Monk
skin tone, hair length) takes one slot: its value's position scaled to 0..1 (child 0, senior 1;
Monk 1 is 0, Monk 10 is 1), so neighbouring values get neighbouring labels. The encoding is stored
with the snapshot and written into the export's manifest; `likeness generate --label
age_band=senior,expression=smile` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from labeling.taxonomy import TAXONOMY, Taxonomy
from likeness.errors import InvalidInput


@dataclass(frozen=True)
class Slot:
    attribute: str
    kind: str                      # "one_hot" or "ordinal"
    values: tuple[str, ...]
    offset: int
    width: int


def label_encoding(attributes: Sequence[str], taxonomy: Taxonomy = TAXONOMY) -> list[Slot]:
    slots, offset = [], 0
    for name in attributes:
        taxon = taxonomy.by_name[name]
        width = 1 if taxon.ordinal else len(taxon.choices)
        slots.append(Slot(name, "ordinal" if taxon.ordinal else "one_hot", tuple(taxon.values()), offset, width))
        offset += width
    return slots


def encoding_to_json(slots: Sequence[Slot]) -> list[dict[str, Any]]:
    return [{**asdict(s), "values": list(s.values)} for s in slots]


def encoding_from_json(data: Sequence[Mapping[str, Any]]) -> list[Slot]:
    return [Slot(d["attribute"], d["kind"], tuple(d["values"]), int(d["offset"]), int(d["width"])) for d in data]


def encode(values: Mapping[str, str], slots: Sequence[Slot]) -> list[float]:
    """The label vector of one face; InvalidInput for a missing or unknown value."""
    vector = [0.0] * sum(s.width for s in slots)
    for slot in slots:
        value = values.get(slot.attribute)
        if value not in slot.values:
            known = ", ".join(slot.values)
            raise InvalidInput(f"label: {slot.attribute}={value!r} is not one of {known}" if value is not None
                               else f"label: no value for {slot.attribute}", hint=f"give {slot.attribute}=one of {known}")
        index = slot.values.index(value)
        if slot.kind == "ordinal":
            vector[slot.offset] = index / max(len(slot.values) - 1, 1)
        else:
            vector[slot.offset + index] = 1.0
    return vector


def parse_label(text: str, slots: Sequence[Slot]) -> list[float]:
    """`age_band=senior,expression=smile` → the label vector (every encoded attribute is needed)."""
    values: dict[str, str] = {}
    known = {s.attribute for s in slots}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise InvalidInput(f"label: {part!r} is not attribute=value", hint="e.g. age_band=senior,expression=smile")
        if name not in known:
            raise InvalidInput(f"label: {name} is not part of this model's label",
                               hint=f"its label has {', '.join(s.attribute for s in slots) or 'no attributes'}")
        if name in values:
            raise InvalidInput(f"label: {name} is given twice")
        values[name] = value
    missing = [s.attribute for s in slots if s.attribute not in values]
    if missing:
        raise InvalidInput(f"label: no value for {', '.join(missing)}", hint="give every attribute of the model's label")
    return encode(values, slots)
