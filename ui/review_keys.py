"""The Review page's reason keys, apart from the page so that code that drives the page (the
review benchmark) can read them without running it."""

from __future__ import annotations

from likeness.models import DefectReason

REASON_KEYS = {
    "1": DefectReason.closed_eyes, "2": DefectReason.crossed_eyes, "3": DefectReason.crater,
    "4": DefectReason.background, "5": DefectReason.ears, "6": DefectReason.headwear, "7": DefectReason.collar,
    "8": DefectReason.teeth, "9": DefectReason.hands, "0": DefectReason.asymmetry, "o": DefectReason.other,
}
KEY_OF_REASON = {reason.value: key for key, reason in REASON_KEYS.items()}
