"""A generated image's conditioning label read back as attributes, through the label encoding of
the snapshot its checkpoint learned from (:mod:`labeling.encoding`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labeling.encoding import Slot


def decode_label(label: Any, slots: Sequence[Slot]) -> dict[str, str]:
    """``{attribute: value}`` of a label vector; {} for a class index, no label or no encoding.
    One-hot slots give their largest value's choice, ordinal ones the nearest step."""
    width = sum(s.width for s in slots)
    if not slots or not isinstance(label, list) or len(label) != width:
        return {}
    values: dict[str, str] = {}
    for slot in slots:
        part = [float(v) for v in label[slot.offset:slot.offset + slot.width]]
        if slot.kind == "ordinal":
            step = round(min(max(part[0], 0.0), 1.0) * (len(slot.values) - 1))
            values[slot.attribute] = slot.values[step]
        else:
            values[slot.attribute] = slot.values[max(range(len(part)), key=part.__getitem__)]
    return values
