"""Eye state of a face from its 478 FaceMesh landmarks: open, half-closed, closed, crossed or
looking away, with a confidence and the measures behind the call.

Openness is the eye aspect ratio (EAR, Soukupová & Čech 2016) of each eye, measured after the
landmarks are rotated into the face's own frame, so that a turned or tilted head does not
shorten one eye. Gaze comes from the iris centre between the eye corners, turned into an angle
with a simple eyeball model that accounts for head yaw; the two eyes' angles give the gaze
direction (their mean) and their misalignment (their difference: strabismus).

Every threshold of the decision lives in ``qa/eye_thresholds.json`` (written by
:mod:`qa.calibrate`, which says which numbers are calibrated on labelled faces and which are
priors); this module keeps only the sanity limits that tell a broken mesh from a face. Input
that cannot be measured gives :attr:`EyeState.undetermined` with the reason, never an
exception and never a silent ``open``.

No verdict claims more than the pixels support. Sizes are judged in *source* pixels (the image
the landmarks came from, before an aligned crop enlarged it): below ``min_eye_px`` the lids are
not judged, below ``min_gaze_eye_px`` eye width or ``min_iris_px`` iris diameter the gaze is not
judged, and the state is ``undetermined`` with the reason, never ``closed``, ``crossed`` or a
plain ``open``. Above them, ``crossed`` (and ``looking_away``) must also clear the landmark
noise at that size: ``|vergence| > vergence_deg + noise_k * vergence_noise_deg(eye_px)``,
where the noise model ``sqrt(floor**2 + (scale / eye_px)**2)`` is fitted by :mod:`qa.calibrate`
on jittered copies of the labelled faces; a reading inside the noise band is ``undetermined``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from faces.detect import FaceFinding, find_faces
from faces.landmarks import CHIN, EYE_POINTS, FOREHEAD, N_LANDMARKS
from faces.measures import face_geometry
from likeness.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

THRESHOLDS_PATH = Path(__file__).with_name("eye_thresholds.json")
THRESHOLDS_FORMAT = 2  # 2: noise model and size support sections
# Eye width over the distance between the eye centres is about 0.45 in a frontal face; far
# outside this range the mesh has collapsed or is not a face.
_EYE_WIDTH_RANGE = (0.15, 1.0)
# Lid points off the corner line, over the eye width: FaceMesh keeps even tightly shut eyes
# above 0.02, so a flat eye is a broken mesh, not a closed one.
_MIN_EYE_HEIGHT = 0.005


class EyeState(StrEnum):
    open = "open"
    half_closed = "half_closed"
    closed = "closed"
    crossed = "crossed"
    looking_away = "looking_away"
    undetermined = "undetermined"


# Image-level verdict = the face with the highest severity. Shut eyes ruin a frame outright;
# strabismus and half-shut lids nearly always do; a sideways glance may be intended. A face the
# detector cannot read outranks "open": nobody has checked it yet.
SEVERITY: dict[EyeState, int] = {
    EyeState.closed: 5, EyeState.crossed: 4, EyeState.half_closed: 3, EyeState.looking_away: 2,
    EyeState.undetermined: 1, EyeState.open: 0,
}


@dataclass(frozen=True)
class EyeThresholds:
    """The detector's numbers; see ``qa/eye_thresholds.json`` and :mod:`qa.calibrate`."""

    # Calibrated on labelled faces.
    ear_closed: float  # openness below this: closed
    ear_open: float  # openness at or above this: open (in between: half-closed)
    vergence_deg: float  # |misalignment of the two eyes| at or above this: crossed
    gaze_deg: float  # |gaze off the camera axis| at or above this: looking away
    iris_baseline: float  # iris position (0 outer .. 1 inner corner) of an eye looking ahead
    # Priors: anatomy, measurement limits and the confidence scale.
    eye_width_over_iris_radius: float  # palpebral fissure ~30 mm / iris-plane radius ~10 mm
    corner_depth_over_iris_radius: float  # eye-corner midpoint sits ~4 mm in front of the eyeball centre
    both_eyes_max_yaw_deg: float  # beyond this the far eye is foreshortened and half hidden by the nose
    max_yaw_deg: float  # beyond this (near profile) no eye is measurable
    max_pitch_deg: float  # beyond this the lids are seen edge-on
    min_eye_px: float  # narrower eyes (source pixels): lids are one or two pixels, nothing to measure
    ear_softness: float  # EAR distance from a threshold that gives confidence ~0.73
    angle_softness_deg: float  # the same for gaze and misalignment angles
    noise_k: float  # a call must clear its threshold by this many noise deviations
    # Noise model, fitted on jittered labelled faces: sqrt(floor**2 + (scale / eye_px)**2) degrees.
    vergence_noise_floor_deg: float
    vergence_noise_scale_deg_px: float
    gaze_noise_floor_deg: float
    gaze_noise_scale_deg_px: float
    openness_noise_floor: float  # the same model for the eye aspect ratio
    openness_noise_scale_px: float
    # Size support, derived from the noise model (source pixels).
    min_gaze_eye_px: float  # narrower eyes: gaze and alignment are not judged (undetermined)
    min_iris_px: float  # iris diameter under this: the same
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def vergence_noise_deg(self, eye_px: float) -> float:
        """Landmark noise of the vergence angle (one deviation, degrees) for an eye this wide."""
        return _noise(self.vergence_noise_floor_deg, self.vergence_noise_scale_deg_px, eye_px)

    def gaze_noise_deg(self, eye_px: float) -> float:
        """The same for the gaze angle."""
        return _noise(self.gaze_noise_floor_deg, self.gaze_noise_scale_deg_px, eye_px)

    def openness_noise(self, eye_px: float) -> float:
        """The same for the eye aspect ratio."""
        return _noise(self.openness_noise_floor, self.openness_noise_scale_px, eye_px)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EyeThresholds:
        if data.get("format") != THRESHOLDS_FORMAT:
            raise ValueError(f"unknown thresholds format {data.get('format')!r}")
        values = {**data["calibrated"], **data["noise"], **data["support"], **data["priors"]}
        names = {f.name for f in fields(cls)} - {"provenance"}
        if missing := names - values.keys():
            raise ValueError(f"missing {sorted(missing)}")
        return cls(**{n: float(values[n]) for n in names}, provenance=dict(data.get("provenance", {})))

    def to_json(self) -> dict[str, Any]:
        values = {k: v for k, v in asdict(self).items() if k != "provenance"}
        sections = {"calibrated": CALIBRATED, "noise": NOISE, "support": SUPPORT}
        placed = {k for names in sections.values() for k in names}
        return {
            "format": THRESHOLDS_FORMAT,
            **{section: {k: values[k] for k in names} for section, names in sections.items()},
            "priors": {k: v for k, v in values.items() if k not in placed},
            "provenance": self.provenance,
        }


CALIBRATED = ("ear_closed", "ear_open", "vergence_deg", "gaze_deg", "iris_baseline")
NOISE = ("vergence_noise_floor_deg", "vergence_noise_scale_deg_px", "gaze_noise_floor_deg", "gaze_noise_scale_deg_px",
         "openness_noise_floor", "openness_noise_scale_px")
SUPPORT = ("min_gaze_eye_px", "min_iris_px")


def _noise(floor: float, scale: float, eye_px: float) -> float:
    return math.hypot(floor, scale / eye_px) if eye_px > 0 else math.inf


def load_thresholds(path: Path | str | None = None) -> EyeThresholds:
    """Thresholds from ``path`` (default: the calibrated ``qa/eye_thresholds.json``)."""
    path = Path(path) if path is not None else THRESHOLDS_PATH
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)  # a rewritten file is read again
    except OSError:
        stamp = (-1, -1)
    return _load_thresholds(path, stamp)


@functools.lru_cache(maxsize=8)
def _load_thresholds(path: Path, stamp: tuple[int, int]) -> EyeThresholds:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"eye thresholds file {path} not found",
                       hint="regenerate it with `likeness qa calibrate-eyes LABELS.csv`") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"eye thresholds file {path} cannot be read: {exc}") from exc
    try:
        return EyeThresholds.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"eye thresholds file {path} is malformed: {exc}",
                           hint="regenerate it with `likeness qa calibrate-eyes LABELS.csv`") from exc


@dataclass(frozen=True)
class EyeMeasures:
    """What the verdict rests on. Angles in degrees; ``nan`` where a measure was not taken.

    ``ear_*`` is the eye aspect ratio on the image, ``ear_*_corrected`` the same after rotating
    the landmarks into the face frame (head yaw, pitch and roll removed); ``openness`` is their
    visibility-weighted mean. ``iris_*``: 0 outer corner, 1 inner corner. ``vergence`` is
    ``iris_right + iris_left - 1`` (negative: eyes turned out, exotropia; positive: turned in,
    esotropia; about ``2 * iris_baseline - 1`` for parallel eyes) and ``conjugate`` is
    ``iris_right - iris_left`` (both eyes the same way; positive towards the image right).
    ``gaze_deg`` is the gaze direction off the camera axis, positive towards the image right;
    ``vergence_deg`` the misalignment, with the sign of ``vergence``. ``eye_px``: the narrower
    eye's width, ``iris_px`` the smaller iris diameter, both in source pixels (image pixels
    divided by the crop's upscale, see :func:`classify_face`). Head pose as in
    :class:`faces.FaceFinding`.
    """

    ear_right: float
    ear_left: float
    ear_right_corrected: float
    ear_left_corrected: float
    openness: float
    iris_right: float
    iris_left: float
    vergence: float
    conjugate: float
    gaze_deg: float
    vergence_deg: float
    eye_px: float
    yaw: float
    pitch: float
    roll: float
    iris_px: float = math.nan

    def to_json(self) -> dict[str, float | None]:
        # Field by field: asdict's deep copy costs more than the rest of the verdict.
        return {k: None if math.isnan(v) else round(v, 4) for k in _MEASURE_FIELDS for v in [getattr(self, k)]}


_MEASURE_FIELDS = tuple(f.name for f in fields(EyeMeasures))


@dataclass(frozen=True)
class EyeVerdict:
    """One face's eye state. ``confidence`` is in [0, 1] (0 when undetermined); ``reason`` says
    why the state is not a plain ``open``, or what was left unjudged."""

    state: EyeState
    confidence: float
    measures: EyeMeasures | None
    reason: str | None = None
    box: tuple[float, float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value, "confidence": round(self.confidence, 4), "reason": self.reason,
            "measures": self.measures.to_json() if self.measures is not None else None,
            "box": [round(v, 2) for v in self.box] if self.box is not None else None,
        }


class Unmeasurable(ValueError):
    """The landmarks do not allow the eyes to be measured; the message says why."""


# --- Measuring -----------------------------------------------------------------------------------


def gaze_angles(iris_right: float, iris_left: float, yaw: float, *, thresholds: EyeThresholds,
                use_right: bool = True, use_left: bool = True) -> tuple[float, float]:
    """(gaze, vergence) in degrees from iris positions, with the eyeball model of the thresholds.

    The iris sits ``R`` in front of the eyeball centre and the corner midpoint ``c`` in front of
    it, so with head direction ``h`` and gaze ``g`` (camera frame) the iris shows an offset
    ``s = (R sin g - c sin h) / (W cos h)`` eye widths from the corners' centre. Solved for g.
    """
    k, c = thresholds.eye_width_over_iris_radius, thresholds.corner_depth_over_iris_radius
    h = math.radians(-yaw)  # image-x sense: positive when the nose points to the image right
    offsets = {"right": iris_right - thresholds.iris_baseline, "left": thresholds.iris_baseline - iris_left}
    angles = {
        eye: math.degrees(math.asin(max(-1.0, min(1.0, k * s * math.cos(h) + c * math.sin(h)))))
        for eye, s in offsets.items() if (use_right if eye == "right" else use_left)
    }
    if len(angles) == 2:
        return (angles["right"] + angles["left"]) / 2.0, angles["right"] - angles["left"]
    return (next(iter(angles.values())) if angles else math.nan), math.nan


def measure_face(finding: FaceFinding, *, image_size: tuple[int, int] | None = None,
                 thresholds: EyeThresholds | None = None) -> EyeMeasures:
    """Measures of one face from its landmarks alone (the finding's stored measures are not
    trusted: they may come from old JSON). The mesh pass's :class:`faces.measures.FaceGeometry`
    is used when the finding carries one taken from these very landmarks; otherwise they are
    measured here, the same way. ``image_size`` is (width, height) of the image the landmarks
    are in. Raises :class:`Unmeasurable` with the reason."""
    t = thresholds or load_thresholds()
    raw = finding.landmarks
    if raw is None or np.ndim(raw) != 2 or np.shape(raw)[0] < N_LANDMARKS or np.shape(raw)[1] < 3:
        raise Unmeasurable(f"missing landmarks: expected ({N_LANDMARKS}, 3), got {np.shape(raw)}")
    pts = np.asarray(raw, dtype=np.float64)[:N_LANDMARKS, :3]
    needed = pts[_NEEDED]  # the eye points first, then forehead, chin and the iris contours
    if not np.isfinite(needed[:_N_CHECKED]).all():
        raise Unmeasurable("eye or head landmarks are not finite (NaN or infinite)")
    if image_size is not None:
        w, h = image_size
        eyes = needed[: len(EYE_POINTS), :2]
        if eyes.min() < 0 or eyes[:, 0].max() > w or eyes[:, 1].max() > h:
            raise Unmeasurable(f"eye landmarks fall outside the {w}x{h} image: the frame cuts the face")
    g = finding.geometry
    if g is None or not g.measures(raw):
        g = face_geometry(pts)
    widths = [g.eye_width_right, g.eye_width_left]
    if min(widths) <= 1e-6:
        raise Unmeasurable("zero-width eye: its corner landmarks coincide")
    for name, height, width in (("right", g.eye_height_right, widths[0]), ("left", g.eye_height_left, widths[1])):
        if height < _MIN_EYE_HEIGHT * width:
            raise Unmeasurable(f"zero-area {name} eye: its landmarks lie on one line")
    if g.axes is None:
        raise Unmeasurable("head pose undefined: the face landmarks are degenerate")
    # Eye widths in the face's own frame (the face seen from straight ahead) over the eye spacing.
    between = g.eye_spacing
    for name, frontal_width in (("right", g.eye_width_right_frontal), ("left", g.eye_width_left_frontal)):
        ratio = frontal_width / between if between > 0 else 0.0
        if not _EYE_WIDTH_RANGE[0] <= ratio <= _EYE_WIDTH_RANGE[1]:
            raise Unmeasurable(f"{name} eye is {ratio:.2f} of the eye spacing wide: the mesh is not a plausible face")

    yaw, pitch, roll = g.yaw, g.pitch, g.roll
    ear_r, ear_l = g.ear_right, g.ear_left
    cor_r, cor_l = g.ear_right_frontal, g.ear_left_frontal
    iris_r, iris_l = g.iris_right, g.iris_left
    values = (yaw, pitch, roll, ear_r, ear_l, cor_r, cor_l, iris_r, iris_l)
    if not all(math.isfinite(v) for v in values):
        raise Unmeasurable("a measure is undefined (NaN): degenerate eye or head geometry")

    # Past both_eyes_max_yaw only the near eye counts: yaw > 0 turns the subject's left eye
    # (image right) towards the camera.
    both = abs(yaw) <= t.both_eyes_max_yaw_deg
    use_right, use_left = both or yaw < 0, both or yaw > 0
    used = [c for c, u in ((cor_r, use_right), (cor_l, use_left)) if u]
    gaze, vergence_deg = gaze_angles(iris_r, iris_l, yaw, thresholds=t, use_right=use_right, use_left=use_left)
    return EyeMeasures(
        ear_right=ear_r, ear_left=ear_l, ear_right_corrected=cor_r, ear_left_corrected=cor_l,
        openness=sum(used) / len(used), iris_right=iris_r, iris_left=iris_l,
        vergence=iris_r + iris_l - 1.0, conjugate=iris_r - iris_l, gaze_deg=gaze, vergence_deg=vergence_deg,
        eye_px=min(w for w, u in zip(widths, (use_right, use_left)) if u), yaw=yaw, pitch=pitch, roll=roll,
        iris_px=_iris_px(needed[_N_CHECKED:, :2].tolist(), use_right, use_left),
    )


# Iris contour landmarks (FaceMesh with iris): right 469-472, left 474-477, each pair opposite.
_IRIS_CONTOURS = (469, 471, 470, 472, 474, 476, 475, 477)
# The rows measure_face reads, in one gather: those that must be finite, then the iris contours.
_N_CHECKED = len(EYE_POINTS) + 2
_NEEDED = np.array([*EYE_POINTS, FOREHEAD, CHIN, *_IRIS_CONTOURS])


def _iris_px(contours: list[list[float]], use_right: bool, use_left: bool) -> float:
    """The smaller used iris diameter in image pixels (mean of its two contour chords); nan if
    the contour is not finite. ``contours``: (x, y) of the _IRIS_CONTOURS points, in order."""
    sizes = []
    for start, used in ((0, use_right), (4, use_left)):
        if used:
            a, b, c, d = contours[start : start + 4]
            sizes.append((math.hypot(a[0] - b[0], a[1] - b[1]) + math.hypot(c[0] - d[0], c[1] - d[1])) / 2.0)
    size = min(sizes) if sizes else math.nan
    return size if math.isfinite(size) else math.nan


# --- Deciding ------------------------------------------------------------------------------------


def _sure(margin: float, softness: float) -> float:
    """Logistic confidence of a call ``margin`` beyond its threshold: 0.5 on the line."""
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, margin / softness))))


def _decide(m: EyeMeasures, t: EyeThresholds) -> tuple[EyeState, float, str | None]:
    if abs(m.yaw) > t.max_yaw_deg:
        return EyeState.undetermined, 0.0, f"head turned {m.yaw:+.0f} degrees: eyes not visible enough"
    if abs(m.pitch) > t.max_pitch_deg:
        return EyeState.undetermined, 0.0, f"head pitched {m.pitch:+.0f} degrees: lids seen edge-on"
    if m.eye_px < t.min_eye_px:
        return EyeState.undetermined, 0.0, f"eye {m.eye_px:.0f} px wide: too small to measure the eyelids"
    both_eyes = abs(m.yaw) <= t.both_eyes_max_yaw_deg
    # Small or turned faces are measured less precisely.
    reliability = min(1.0, m.eye_px / (3.0 * t.min_eye_px)) * (1.0 if both_eyes else 0.8)
    ear, ang = t.ear_softness, t.angle_softness_deg
    lo, hi = sorted((m.ear_right_corrected, m.ear_left_corrected))

    # A lid verdict must clear its thresholds by the landmark noise at this size.
    band = t.noise_k * t.openness_noise(m.eye_px)
    near = min(abs(m.openness - t.ear_closed), abs(m.openness - t.ear_open))
    if near < band:
        return (EyeState.undetermined, 0.0,
                f"eye {m.eye_px:.0f} px wide: too small to judge the eyelids (eye aspect ratio {m.openness:.3f} "
                f"is within landmark noise {band:.3f} of a threshold)")
    if m.openness < t.ear_closed:
        return (EyeState.closed, reliability * _sure(t.ear_closed - m.openness, ear),
                f"eye aspect ratio {m.openness:.3f} < {t.ear_closed:.3f}")
    if m.openness < t.ear_open:
        margin = min(m.openness - t.ear_closed, t.ear_open - m.openness)
        return (EyeState.half_closed, reliability * _sure(margin, ear),
                f"eye aspect ratio {m.openness:.3f} between {t.ear_closed:.3f} and {t.ear_open:.3f}")
    if both_eyes and lo < t.ear_closed:
        # One eye shut while the other is open (a wink, or a blink caught half way).
        return (EyeState.half_closed, reliability * _sure(min(t.ear_closed - lo, hi - t.ear_open), ear),
                f"one eye closed: eye aspect ratios {lo:.3f} and {hi:.3f}")
    sure_open = _sure(m.openness - t.ear_open, ear)
    # The lids are open: the rest of the verdict is about gaze, which needs more pixels.
    if m.eye_px < t.min_gaze_eye_px:
        return EyeState.undetermined, 0.0, f"eye {m.eye_px:.0f} px wide: too small to judge gaze"
    if not m.iris_px >= t.min_iris_px:  # nan (no iris contour) included
        iris = "no iris contour" if math.isnan(m.iris_px) else f"iris {m.iris_px:.0f} px across"
        return EyeState.undetermined, 0.0, f"{iris}: too small to judge gaze"
    if math.isfinite(m.vergence_deg) and abs(m.vergence_deg) >= t.vergence_deg:
        needed = t.vergence_deg + t.noise_k * t.vergence_noise_deg(m.eye_px)
        gaze_needed = t.gaze_deg + t.noise_k * t.gaze_noise_deg(m.eye_px)
        if abs(m.vergence_deg) <= needed and abs(m.gaze_deg) > gaze_needed:
            # Not surely misaligned, but surely turned to one side together (a strong sideways
            # glance inflates the vergence reading): the supported verdict is the glance.
            side = "image right" if m.gaze_deg > 0 else "image left"
            return (EyeState.looking_away, reliability * min(sure_open, _sure(abs(m.gaze_deg) - gaze_needed, ang), 0.5),
                    f"gaze {abs(m.gaze_deg):.0f} degrees towards the {side}; misalignment {abs(m.vergence_deg):.0f} "
                    f"degrees is within landmark noise")
        if abs(m.vergence_deg) <= needed:
            return (EyeState.undetermined, 0.0,
                    f"eye {m.eye_px:.0f} px wide: too small to judge gaze (misalignment {abs(m.vergence_deg):.0f} "
                    f"degrees is within landmark noise; crossed needs over {needed:.0f})")
        kind = "turned out (exotropia)" if m.vergence_deg < 0 else "turned in (esotropia)"
        return (EyeState.crossed, reliability * min(sure_open, _sure(abs(m.vergence_deg) - needed, ang)),
                f"eyes misaligned by {abs(m.vergence_deg):.0f} degrees, {kind}")
    parallel = _sure(t.vergence_deg - abs(m.vergence_deg), ang) if math.isfinite(m.vergence_deg) else 1.0
    if abs(m.gaze_deg) >= t.gaze_deg:
        needed = t.gaze_deg + t.noise_k * t.gaze_noise_deg(m.eye_px)
        if abs(m.gaze_deg) <= needed:
            return (EyeState.undetermined, 0.0,
                    f"eye {m.eye_px:.0f} px wide: too small to judge gaze (gaze {abs(m.gaze_deg):.0f} degrees "
                    f"is within landmark noise; looking away needs over {needed:.0f})")
        side = "image right" if m.gaze_deg > 0 else "image left"
        return (EyeState.looking_away,
                reliability * min(sure_open, parallel, _sure(abs(m.gaze_deg) - needed, ang)),
                f"gaze {abs(m.gaze_deg):.0f} degrees towards the {side}")
    confidence = reliability * min(sure_open, parallel, _sure(t.gaze_deg - abs(m.gaze_deg), ang))
    note = None if both_eyes else "alignment not judged: one eye hidden by the turned head"
    return EyeState.open, confidence, note


def classify_face(finding: FaceFinding, *, image_size: tuple[int, int] | None = None,
                  thresholds: EyeThresholds | None = None, upscale: float = 1.0) -> EyeVerdict:
    """The eye state of one face. ``image_size`` (width, height) enables the check that the
    frame does not cut the eyes. ``upscale``: how much the image the landmarks are in enlarged
    its source (an aligned crop: crop side over the face quad's side in the frame, see
    ``qa.api.crop_upscale``); eye and iris sizes are judged in source pixels, since enlarging
    adds no detail. Never raises for bad landmarks: gives ``undetermined``."""
    t = thresholds or load_thresholds()
    box = _box(finding.box)
    try:
        measures = measure_face(finding, image_size=image_size, thresholds=t)
    except Unmeasurable as exc:
        log.debug("face %s undetermined: %s", box, exc)
        return EyeVerdict(EyeState.undetermined, 0.0, None, str(exc), box)
    measures = in_source_pixels(measures, upscale)
    state, confidence, reason = _decide(measures, t)
    return EyeVerdict(state, round(confidence, 4), measures, reason, box)


def in_source_pixels(measures: EyeMeasures, upscale: float) -> EyeMeasures:
    """Measures with the eye and iris sizes divided by ``upscale`` (values of 1 or less, and
    non-finite ones, leave them as they are: a shrunk crop keeps its source's detail)."""
    if not math.isfinite(upscale) or upscale <= 1.0:
        return measures
    return replace(measures, eye_px=measures.eye_px / upscale, iris_px=measures.iris_px / upscale)


def _box(box: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if box is None or len(box) != 4:
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    return x0, y0, x1, y1


def classify_image(rgb: np.ndarray, *, thresholds: EyeThresholds | None = None,
                   max_faces: int = 5) -> list[EyeVerdict]:
    """One verdict per face found in an upright HxWx3 uint8 RGB image, largest face first."""
    t = thresholds or load_thresholds()
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    return [classify_face(f, image_size=size, thresholds=t) for f in find_faces(rgb, max_faces=max_faces)]


def image_verdict(verdicts: Iterable[EyeVerdict]) -> EyeState | None:
    """The worst face's state by :data:`SEVERITY`; None when there is no face."""
    states = [v.state for v in verdicts]
    return max(states, key=SEVERITY.__getitem__) if states else None


def load_upright(path: Path | str) -> np.ndarray:
    """An image file as upright HxWx3 uint8 RGB pixels (EXIF orientation applied)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise NotFound(f"image {path} not found")
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"image {path} cannot be decoded: {exc}",
                           hint="pass a JPEG, PNG or TIFF; decode RAW files through ingest first") from exc
    return np.ascontiguousarray(np.asarray(upright, dtype=np.uint8))


def worst(verdicts: Sequence[EyeVerdict]) -> EyeVerdict | None:
    """The verdict that sets :func:`image_verdict` (the most confident among equals)."""
    return max(verdicts, key=lambda v: (SEVERITY[v.state], v.confidence), default=None)
