"""Attributes measured on a generated face, and where they contradict its conditioning label.

Only what an offline measurement can honestly judge is compared: skin tone (Monk scale, from skin
pixels under the mesh), smile and open mouth (from the landmarks), head pose and eye state. Age,
gender presentation, hair and the rest are left to people.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from faces.detect import FaceFinding
from faces.landmarks import MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER
from faces.plausibility import SKIN_PATCH_RADIUS, SKIN_POINTS
from qa.eyes import EyeState
from qa.generated import thresholds as T
from qa.generated.pixels import lab

# The Monk Skin Tone scale's published sRGB reference colours, Monk 1 (lightest) to 10.
MONK_HEX = ("f6ede4", "f3e7db", "f7ead0", "eadaba", "d7bd96", "a07e56", "825c43", "604134", "3a312a", "292420")
UPPER_LIP, LOWER_LIP = 13, 14  # inner lip midpoints


def _monk_lab() -> np.ndarray:
    rgb = np.array([[[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in MONK_HEX]], np.uint8)
    return lab(rgb)[0]


MONK_LAB = _monk_lab()


def monk_tone(lab_image: np.ndarray, pts: np.ndarray) -> int | None:
    """The Monk tone (1-10) nearest in CIELAB to the median skin colour of the cheeks and the
    forehead (the patches faces.plausibility reads), or None without skin to read."""
    eye_gap = float(np.linalg.norm(pts[473] - pts[468]))
    radius = max(2, int(round(SKIN_PATCH_RADIUS * eye_gap)))
    mask = np.zeros(lab_image.shape[:2], np.uint8)
    for index in SKIN_POINTS.values():
        cv2.circle(mask, (int(round(pts[index, 0])), int(round(pts[index, 1]))), radius, (1,), -1)
    if mask.sum() < 8:
        return None
    skin = np.median(lab_image[mask > 0], axis=0)
    return int(np.argmin(np.linalg.norm(MONK_LAB - skin, axis=1))) + 1


def mouth(pts: np.ndarray) -> tuple[float, float]:
    """(smile, open): how far the mouth corners sit above the inner lips' midpoint, and the gap
    between the inner lips, both over the mouth width (measured across the eye line's normal)."""
    right, left = pts[MOUTH_RIGHT_CORNER, :2], pts[MOUTH_LEFT_CORNER, :2]
    width = float(np.linalg.norm(left - right))
    if not width > 1e-6:
        return math.nan, math.nan
    across = (left - right) / width
    down = np.array([-across[1], across[0]])  # image y grows downwards
    centre = (pts[UPPER_LIP, :2] + pts[LOWER_LIP, :2]) / 2
    lift = float((centre - (right + left) / 2) @ down) / width
    gap = float(np.linalg.norm(pts[LOWER_LIP, :2] - pts[UPPER_LIP, :2])) / width
    return lift, gap


def measure(finding: FaceFinding, lab_image: np.ndarray, pts: np.ndarray, eyes: EyeState) -> dict[str, object]:
    """Every measured attribute; ``pts`` are the landmarks in ``lab_image`` pixels."""
    smile, gap = mouth(pts)
    return {
        "monk_tone": monk_tone(lab_image, pts),
        "smile": None if math.isnan(smile) else round(smile, 4),
        "mouth_open": None if math.isnan(gap) else round(gap, 4),
        "yaw": _deg(finding.yaw), "pitch": _deg(finding.pitch), "roll": _deg(finding.roll),
        "eyes": eyes.value,
    }


def _deg(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 2)


# expression label -> (needs a smile, needs an open mouth); None: not judged on that count.
EXPRESSION = {"neutral": (False, False), "smile": (True, None), "grin": (True, None), "laugh": (True, True),
              "surprise": (None, True)}
# head pose label -> (yaw range, pitch range) in degrees; yaw > 0: the sitter turns to their right.
POSE = {
    "frontal": ((-T.FRONTAL_DEG, T.FRONTAL_DEG), (-T.FRONTAL_DEG, T.FRONTAL_DEG)),
    "three_quarter_right": ((T.FRONTAL_DEG, T.PROFILE_DEG), (-90.0, 90.0)),
    "three_quarter_left": ((-T.PROFILE_DEG, -T.FRONTAL_DEG), (-90.0, 90.0)),
    "profile_right": ((T.PROFILE_DEG, 90.0), (-90.0, 90.0)),
    "profile_left": ((-90.0, -T.PROFILE_DEG), (-90.0, 90.0)),
    "up": ((-90.0, 90.0), (T.UP_DOWN_DEG, 90.0)),
    "down": ((-90.0, 90.0), (-90.0, -T.UP_DOWN_DEG)),
}


def mismatches(label: Mapping[str, str], measured: Mapping[str, object]) -> list[str]:
    """The label's attributes that the measurements contradict."""
    found = []
    tone, want = measured.get("monk_tone"), label.get("skin_tone")
    if isinstance(tone, int) and want is not None and want.isdigit() and abs(tone - int(want)) > T.SKIN_TONE_TOLERANCE:
        found.append("skin_tone")
    smile, gap = measured.get("smile"), measured.get("mouth_open")
    rule = EXPRESSION.get(label.get("expression", ""))
    if rule is not None and isinstance(smile, float) and isinstance(gap, float):
        needs_smile, needs_open = rule
        if (needs_smile is not None and needs_smile != (smile > T.SMILE_LIFT)) or \
                (needs_open is not None and needs_open != (gap > T.MOUTH_OPEN)):
            found.append("expression")
    pose = POSE.get(label.get("head_pose", ""))
    yaw, pitch = measured.get("yaw"), measured.get("pitch")
    if pose is not None and isinstance(yaw, float) and isinstance(pitch, float):
        (y0, y1), (p0, p1) = pose
        m = T.POSE_MARGIN_DEG
        if not (y0 - m <= yaw <= y1 + m and p0 - m <= pitch <= p1 + m):
            found.append("head_pose")
    eyes, want_eyes = measured.get("eyes"), label.get("eyes")
    if want_eyes is not None and eyes not in (None, EyeState.undetermined.value) and eyes != want_eyes:
        found.append("eyes")
    return found
