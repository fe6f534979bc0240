"""The labeling config generated from the taxonomy (no server needed)."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from labeling.label_config import assign_hotkeys, build_label_config
from labeling.predictions import head_pose_bin
from labeling.taxonomy import TAXONOMY, Attribute, Choice, Taxonomy


def test_config_has_every_attribute_and_value_with_unique_hotkeys() -> None:
    root = ET.fromstring(build_label_config(TAXONOMY))
    choices = {c.get("name"): c for c in root.iter("Choices")}
    assert list(choices) == [a.name for a in TAXONOMY.attributes]
    keys = []
    for attribute in TAXONOMY.attributes:
        tag = choices[attribute.name]
        assert tag.get("toName") == "crop"
        assert [c.get("value") for c in tag.iter("Choice")] == attribute.values()
        keys += [c.get("hotkey") for c in tag.iter("Choice")]
    assert len(keys) == len(set(keys)) and all(keys)
    assert {i.get("name") for i in root.iter("Image")} == {"crop", "preview"}
    assert "ethnicity" not in build_label_config(TAXONOMY)


def test_monk_scale_sits_on_the_digits_and_reason_shows_only_when_unusable() -> None:
    keys = assign_hotkeys(TAXONOMY)
    assert [keys[("skin_tone", str(n))] for n in range(1, 11)] == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
    root = ET.fromstring(build_label_config(TAXONOMY))
    reason = next(c for c in root.iter("Choices") if c.get("name") == "unusable_reason")
    assert (reason.get("visibleWhen"), reason.get("whenTagName"), reason.get("whenChoiceValue")) == \
        ("choice-selected", "usable", "no")
    assert reason.get("required") is None


def test_retired_values_stay_in_the_config_and_the_digest_follows_the_taxonomy() -> None:
    root = ET.fromstring(build_label_config(TAXONOMY, {"eyewear": {"monocle"}}))
    eyewear = next(c for c in root.iter("Choices") if c.get("name") == "eyewear")
    assert "monocle" in [c.get("value") for c in eyewear.iter("Choice")]
    grown = Taxonomy(tuple(dataclasses.replace(a, choices=a.choices + (Choice("goggles", "Goggles"),))
                           if a.name == "eyewear" else a for a in TAXONOMY.attributes))
    assert grown.sha256() != TAXONOMY.sha256()
    assert build_label_config(grown) != build_label_config(TAXONOMY)


def test_taxonomy_refuses_repeated_names_and_values() -> None:
    with pytest.raises(ValueError, match="unique"):
        Taxonomy((Attribute("a", "A", (Choice("x", "X"),)), Attribute("a", "A", (Choice("y", "Y"),))))
    with pytest.raises(ValueError, match="repeats"):
        Taxonomy((Attribute("a", "A", (Choice("x", "X"), Choice("x", "X2"))),))


@pytest.mark.parametrize("yaw, pitch, expected", [
    (0, 0, "frontal"), (20, 0, "three_quarter_right"), (-20, 0, "three_quarter_left"),
    (70, 0, "profile_right"), (-60, 30, "profile_left"), (5, 25, "up"), (-5, -20, "down"), (None, 0, None),
])
def test_head_pose_bins(yaw: float | None, pitch: float, expected: str | None) -> None:
    assert head_pose_bin(yaw, pitch) == expected
