"""The attribute taxonomy labelers tag: the one source for the Label Studio config and for pulls.

Attributes are perceived, never asked: ethnicity is not here on purpose (it comes only from the
sitter's own statement on the release intake). Left and right are the sitter's own, as for the
head-pose angles measured at ingest (yaw > 0: the sitter turns to their own right).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Choice:
    value: str   # what annotations store
    title: str   # what labelers see


@dataclass(frozen=True)
class Attribute:
    name: str
    title: str
    choices: tuple[Choice, ...]
    ordinal: bool = False             # ordered values (agreement uses the ordinal metric)
    shown_when: tuple[str, str] | None = None  # (attribute, value) that must be chosen first
    required: bool = True

    def values(self) -> list[str]:
        return [c.value for c in self.choices]


@dataclass(frozen=True)
class Taxonomy:
    attributes: tuple[Attribute, ...]
    version: str = "1"
    by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {a.name: a for a in self.attributes})
        if len(self.by_name) != len(self.attributes):
            raise ValueError("taxonomy: attribute names must be unique")
        for attribute in self.attributes:
            if len(set(attribute.values())) != len(attribute.choices):
                raise ValueError(f"taxonomy: {attribute.name} repeats a value")

    def knows(self, attribute: str, value: str) -> bool:
        return attribute in self.by_name and value in self.by_name[attribute].values()

    def sha256(self) -> str:
        """Changes whenever an attribute, a value or a title changes."""
        payload = [[a.name, a.title, [[c.value, c.title] for c in a.choices], a.ordinal, a.shown_when]
                   for a in self.attributes]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _choices(*pairs: str) -> tuple[Choice, ...]:
    """("value", "Title", "value", "Title", ...) → choices."""
    return tuple(Choice(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2))


TAXONOMY = Taxonomy((
    Attribute("age_band", "Age (perceived)", _choices(
        "child", "Child 0–12", "teen", "Teen 13–17", "young_adult", "Young adult 18–29",
        "adult", "Adult 30–59", "senior", "Senior 60+"), ordinal=True),
    Attribute("gender_presentation", "Gender presentation", _choices(
        "feminine", "Feminine", "masculine", "Masculine", "androgynous", "Androgynous")),
    Attribute("skin_tone", "Skin tone (Monk scale)", tuple(
        Choice(str(n), f"Monk {n}") for n in range(1, 11)), ordinal=True),
    Attribute("expression", "Expression", _choices(
        "neutral", "Neutral", "smile", "Smile", "grin", "Broad grin with teeth", "laugh", "Laugh",
        "surprise", "Surprise", "sad", "Sad", "angry", "Angry")),
    Attribute("head_pose", "Head pose", _choices(
        "frontal", "Frontal", "three_quarter_left", "Three-quarter left", "three_quarter_right",
        "Three-quarter right", "profile_left", "Profile left", "profile_right", "Profile right",
        "up", "Up", "down", "Down")),
    Attribute("eyes", "Eyes", _choices(
        "open", "Open", "half_closed", "Half-closed", "closed", "Closed", "crossed", "Crossed",
        "looking_away", "Looking away")),
    Attribute("eyewear", "Eyewear", _choices("none", "None", "glasses", "Glasses", "sunglasses", "Sunglasses")),
    Attribute("headwear", "Headwear", _choices(
        "none", "None", "hat", "Hat or cap", "headscarf", "Headscarf", "other", "Other")),
    Attribute("facial_hair", "Facial hair", _choices(
        "none", "None", "stubble", "Stubble", "moustache", "Moustache", "beard", "Beard")),
    Attribute("hair_length", "Hair length", _choices(
        "bald", "Bald or shaved", "short", "Short", "medium", "Medium", "long", "Long"), ordinal=True),
    Attribute("hair_colour", "Hair colour", _choices(
        "black", "Black", "brown", "Brown", "blonde", "Blonde", "red", "Red", "grey", "Grey or white",
        "other", "Dyed or other")),
    Attribute("usable", "Usable for training", _choices("yes", "Yes", "no", "No")),
    Attribute("unusable_reason", "Why not usable", _choices(
        "blurred", "Blurred", "occluded", "Face occluded", "cut_off", "Face cut off", "lighting",
        "Bad lighting", "not_a_face", "Not a face", "other", "Other"),
        shown_when=("usable", "no"), required=False),
))
