"""The Label Studio labeling config, generated from the taxonomy (never edited by hand).

The labeler sees the aligned face crop with the choices beside it and the full preview below
for context; every choice has a hotkey (Monk skin tones on the digits, the rest mnemonic).
Values that were retired from the taxonomy but still appear in annotations stay in the config,
marked retired, so Label Studio accepts the change and old annotations keep their meaning.
"""

from __future__ import annotations

import hashlib
import string
from xml.sax.saxutils import quoteattr

from labeling.taxonomy import Attribute, Taxonomy

# Object names in the config; the task data fields carry the same names.
CROP = "crop"
PREVIEW = "preview"

_PLAIN_KEYS = [*string.ascii_lowercase, *string.digits]


def assign_hotkeys(taxonomy: Taxonomy) -> dict[tuple[str, str], str]:
    """A unique key per (attribute, value): digits for ordered 10-point scales, else the first
    free letter of the title, then shift+letter, then any free key."""
    taken: set[str] = set()
    keys: dict[tuple[str, str], str] = {}

    def take(key: str) -> str:
        taken.add(key)
        return key

    for attribute in taxonomy.attributes:
        if len(attribute.choices) == 10 and attribute.ordinal:
            digits = [*string.digits[1:], "0"]
            if not taken & set(digits):
                for choice, key in zip(attribute.choices, digits):
                    keys[(attribute.name, choice.value)] = take(key)
    for attribute in taxonomy.attributes:
        for choice in attribute.choices:
            if (attribute.name, choice.value) in keys:
                continue
            letters = [ch for ch in choice.title.lower() if ch in string.ascii_lowercase]
            candidates = [*letters, *(f"shift+{ch}" for ch in letters), *_PLAIN_KEYS,
                          *(f"shift+{ch}" for ch in _PLAIN_KEYS)]
            key = next((k for k in candidates if k not in taken), None)
            if key is None:
                raise ValueError(f"taxonomy has more choices than hotkeys ({len(keys)})")
            keys[(attribute.name, choice.value)] = take(key)
    return keys


def _choices_xml(attribute: Attribute, hotkeys: dict[tuple[str, str], str], retired: set[str]) -> str:
    visible = ""
    if attribute.shown_when:
        tag, value = attribute.shown_when
        visible = f' visibleWhen="choice-selected" whenTagName={quoteattr(tag)} whenChoiceValue={quoteattr(value)}'
    required = ' required="true"' if attribute.required else ""
    lines = [f'    <Header value={quoteattr(attribute.title)} size="6"/>',
             f'    <Choices name={quoteattr(attribute.name)} toName="{CROP}" choice="single-radio" '
             f'showInline="true"{required}{visible}>']
    for choice in attribute.choices:
        hotkey = hotkeys[(attribute.name, choice.value)]
        lines.append(f'      <Choice value={quoteattr(choice.value)} html={quoteattr(_escape(choice.title))} '
                     f'hotkey={quoteattr(hotkey)}/>')
    for value in sorted(retired):
        lines.append(f'      <Choice value={quoteattr(value)} html={quoteattr(_escape(value + " (retired)"))}/>')
    lines.append("    </Choices>")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_label_config(taxonomy: Taxonomy, retired: dict[str, set[str]] | None = None) -> str:
    """The XML config for `taxonomy`; `retired` keeps values still used by annotations."""
    retired = retired or {}
    hotkeys = assign_hotkeys(taxonomy)
    controls = "\n".join(_choices_xml(a, hotkeys, retired.get(a.name, set())) for a in taxonomy.attributes)
    return (
        "<View>\n"
        '  <View style="display: flex; gap: 1.5em; align-items: flex-start">\n'
        f'    <View style="flex: 0 0 420px"><Image name="{CROP}" value="${CROP}" maxWidth="420px"/></View>\n'
        f'    <View style="flex: 1">\n{controls}\n    </View>\n'
        "  </View>\n"
        '  <Header value="Whole frame" size="6"/>\n'
        f'  <Image name="{PREVIEW}" value="${PREVIEW}" maxWidth="900px"/>\n'
        f"  <!-- taxonomy {taxonomy.sha256()[:16]} -->\n"
        "</View>\n"
    )


def config_sha256(config: str) -> str:
    return hashlib.sha256(config.encode()).hexdigest()
