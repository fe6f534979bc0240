"""Pre-annotations from our own detectors, as Label Studio predictions.

Eye state comes from the QA stage's detector (stored on the face); head pose is binned from the
pose angles measured at ingest. One prediction per task carries both, under one model version
that changes whenever the eye thresholds or the binning rule change, so labelers' agreement with
each detector version can be told apart later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from labeling.label_config import CROP
from likeness.models import Face
from qa.eyes import THRESHOLDS_PATH

POSE_RULE = "pose-bins-1: |yaw|<15 frontal, <55 three-quarter, else profile; pitch ±15 up/down"
# The detector's states that name a taxonomy value ("undetermined" predicts nothing).
EYE_STATES = {"open", "half_closed", "closed", "crossed", "looking_away"}


def model_version() -> str:
    digest = hashlib.sha256(THRESHOLDS_PATH.read_bytes() + POSE_RULE.encode()).hexdigest()[:10]
    return f"likeness-detectors-{digest}"


@dataclass(frozen=True)
class Predicted:
    attribute: str
    value: str
    score: float


def head_pose_bin(yaw: float | None, pitch: float | None) -> str | None:
    """The taxonomy's head-pose value for the measured angles (degrees; yaw > 0 = own right)."""
    if yaw is None or pitch is None:
        return None
    side = "right" if yaw > 0 else "left"
    if abs(yaw) >= 55:
        return f"profile_{side}"
    if abs(yaw) >= 15:
        return f"three_quarter_{side}"
    if pitch >= 15:
        return "up"
    if pitch <= -15:
        return "down"
    return "frontal"


def predict(face: Face) -> list[Predicted]:
    out = []
    eyes = (face.qa or {}).get("eyes") or {}
    if eyes.get("state") in EYE_STATES:
        out.append(Predicted("eyes", eyes["state"], float(eyes.get("confidence") or 0.0)))
    pose = head_pose_bin(face.yaw, face.pitch)
    if pose is not None:
        out.append(Predicted("head_pose", pose, 1.0))
    return out


def as_prediction(predicted: list[Predicted], version: str) -> dict[str, Any]:
    """Label Studio's prediction JSON: one `choices` result per attribute."""
    return {
        "model_version": version,
        "score": min((p.score for p in predicted), default=0.0),
        "result": [{"from_name": p.attribute, "to_name": CROP, "type": "choices",
                    "value": {"choices": [p.value]}} for p in predicted],
    }
