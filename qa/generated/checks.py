"""The automatic checks on one generated face: a score per check with its threshold and whether
it is flagged, and the attributes measured against the conditioning label.

Each check is ``{"value": float | None, "threshold": float | None, "flagged": bool, "note": str}``;
a value is None where it could not be measured (no face, say), and such a check is not flagged
on its own account: ``face_found`` carries the verdict. Thresholds: :mod:`qa.generated.thresholds`.
The torch side adds its own entries ("discriminator", "realism") to the same dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faces.detect import MIN_IMAGE_EDGE, FaceFinding, mesh_aligned_face
from faces.plausibility import check_face as plausibility
from qa.eyes import EyeState, EyeThresholds, classify_face
from qa.generated import attributes
from qa.generated import pixels as px
from qa.generated import thresholds as T

# Undetermined eyes are flagged too: nothing has seen them open, so the face is not one to pass
# unseen (on the proxy set no good face reads undetermined, while many small shut-eyed ones do,
# their lids inside the landmark noise band).
FLAGGED_EYES = (EyeState.closed, EyeState.half_closed, EyeState.crossed, EyeState.undetermined)
IMAGE_CHECKS = ("alignment", "symmetry", "sides", "craters", "background", "eye_flatness")


def entry(value: float | None, threshold: float | None, flagged: bool, note: str = "") -> dict[str, Any]:
    clean = None if value is None or not math.isfinite(value) else round(float(value), 4)
    return {"value": clean, "threshold": threshold, "flagged": bool(flagged), "note": note}


def _above(value: float | None, threshold: float, what: str) -> dict[str, Any]:
    if value is None or not math.isfinite(value):
        return entry(None, threshold, False, f"{what} not measurable")
    flagged = value > threshold
    return entry(value, threshold, flagged, f"{what} {value:.3g} over {threshold:g}" if flagged else "")


@dataclass(frozen=True, eq=False)
class FaceChecks:
    checks: dict[str, dict[str, Any]]
    label: dict[str, str] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    mismatch: list[str] = field(default_factory=list)
    finding: FaceFinding | None = field(default=None, repr=False)

    @property
    def flagged(self) -> list[str]:
        return [name for name, check in self.checks.items() if check["flagged"]]

    def attributes_json(self) -> dict[str, Any]:
        return {"label": dict(self.label), "measured": dict(self.measured), "mismatch": list(self.mismatch)}


def _no_face(rgb: np.ndarray, label: dict[str, str]) -> FaceChecks:
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_IMAGE_EDGE:
        note = f"no face: the {w}x{h} image is too small to hold one (needs {MIN_IMAGE_EDGE} px or more)"
    else:
        note = f"no face found in the {w}x{h} image"
    checks = {"face_found": entry(0.0, T.FACE_FOUND, True, note)}
    for name in ("plausible", "eyes", *IMAGE_CHECKS):
        checks[name] = entry(None, None, False, "not measured: no face")
    return FaceChecks(checks, label=label, measured={}, mismatch=[])


def _measured(fn: Callable[[], float]) -> float | None:
    try:
        return fn()
    except ValueError:  # degenerate landmarks: the measure is not taken
        return None


def symmetry_parts(lab: np.ndarray, pts: np.ndarray) -> dict[str, float]:
    """Every measure of how the two eyes differ: the mirrored regions, the sizes, the irises."""
    return {"region": px.eye_asymmetry(lab, pts), **px.iris_asymmetry(lab, pts)}


def _measured_parts(fn: Callable[[], dict[str, float]]) -> dict[str, float] | None:
    try:
        return fn()
    except ValueError:  # degenerate landmarks: the measure is not taken
        return None


def _symmetry(parts: dict[str, float] | None) -> dict[str, Any]:
    """One entry for the eye measures: the largest of them in units of its own threshold, so
    that it is flagged (over 1) as soon as one of them is over its threshold."""
    if parts is None or not all(math.isfinite(v) for v in parts.values()):
        return entry(None, T.SYMMETRY, False, "eye asymmetry not measurable")
    scaled = {name: value / T.SYMMETRY_PARTS[name] for name, value in parts.items()}
    worst = max(scaled, key=lambda name: scaled[name])
    flagged = scaled[worst] > T.SYMMETRY
    note = f"eye asymmetry ({worst}) {parts[worst]:.3g} over {T.SYMMETRY_PARTS[worst]:g}" if flagged else ""
    return entry(scaled[worst], T.SYMMETRY, flagged, note)


def check_face(image: np.ndarray, *, label_attributes: Mapping[str, str] | None = None,
               eye_thresholds: EyeThresholds | None = None) -> FaceChecks:
    """Every image check of one generated face (HxWx3 uint8 RGB, framed around one face)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
    label = dict(label_attributes or {})
    rgb = np.ascontiguousarray(image)
    finding = mesh_aligned_face(rgb)
    if finding is None:
        return _no_face(rgb, label)
    return checks_of_finding(rgb, finding, label_attributes=label, eye_thresholds=eye_thresholds)


def checks_of_finding(rgb: np.ndarray, finding: FaceFinding, *, label_attributes: Mapping[str, str] | None = None,
                      eye_thresholds: EyeThresholds | None = None) -> FaceChecks:
    """The checks of a face already meshed (``finding`` in ``rgb``'s pixels)."""
    label = dict(label_attributes or {})
    h, w = rgb.shape[:2]
    checks: dict[str, dict[str, Any]] = {
        "face_found": entry(1.0, T.FACE_FOUND, False, "a face mesh fits the image"),
    }
    plausible = plausibility(rgb, finding.landmarks)
    failed = len(plausible.failed)
    checks["plausible"] = entry(float(failed), T.PLAUSIBLE, failed > T.PLAUSIBLE, plausible.describe())

    verdict = classify_face(finding, image_size=(w, h), thresholds=eye_thresholds)
    note = verdict.state.value + (f": {verdict.reason}" if verdict.reason else "")
    checks["eyes"] = entry(verdict.confidence, None, verdict.state in FLAGGED_EYES, note)

    small, pts = px.scaled(rgb, finding.landmarks)
    lab = px.lab(small)
    checks["alignment"] = _above(_measured(lambda: px.alignment_offset(pts, px.FRAME)), T.ALIGNMENT,
                                 "landmarks off the aligned framing by")
    checks["symmetry"] = _symmetry(_measured_parts(lambda: symmetry_parts(lab, pts)))
    checks["sides"] = _above(_measured(lambda: px.side_asymmetry(lab, pts)), T.SIDES, "side asymmetry")
    checks["craters"] = _above(_measured(lambda: px.crater_depth(lab, pts)), T.CRATERS, "dark skin blob")
    checks["background"] = _above(_measured(lambda: px.background_smear(lab, pts)), T.BACKGROUND,
                                  "background detail loss")
    checks["eye_flatness"] = _above(_measured(lambda: px.eye_flatness(lab, pts)), T.EYE_FLATNESS,
                                    "flat eye regions (shut lids?)")
    measured = attributes.measure(finding, lab, pts, verdict.state)
    return FaceChecks(checks, label=label, measured=measured, mismatch=attributes.mismatches(label, measured),
                      finding=finding)
