"""Is a detected face a live human face? Checks run on the 478-point mesh and on the pixels under it.

The detector's confidence only says that something face-like is there: cartoons, colour wheels,
statues and printed photos pass it. FaceMesh then always fits a human-shaped mesh, so geometry
alone catches only gross misfits (a mesh folded into a few pixels, an iris off the eye); the
pixels under the mesh catch the rest: a live face has skin of one colour on both cheeks and the
forehead, with the fine texture of skin under a camera, not the flat fill of a drawing or the
dot screen of a print.

Every measure is a plain number with the range real faces span (``RANGES``). The ranges come from
the real human faces in the shared test set (faces/open, faces/closed, faces/crossed) and the
astronaut sample shoot, widened by a margin; see the comment above ``RANGES`` for the observed
values. Measures are taken on an FFHQ-aligned crop of ``CROP_SIZE`` pixels, so they do not depend
on the frame's resolution, and in the face's own frame (``faces.measures.face_axes``), so they do
not depend on head pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faces.align import align_face, ffhq_quad
from faces.landmarks import LEFT_EYE, LEFT_IRIS, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, RIGHT_EYE, RIGHT_IRIS
from faces.measures import face_axes

CROP_SIZE = 256
# Skin patches (FaceMesh indices): subject's right cheek, left cheek, mid-forehead.
SKIN_POINTS = {"right_cheek": 205, "left_cheek": 425, "forehead": 151}
SKIN_PATCH_RADIUS = 0.14  # patch radius as a fraction of the eye distance in the crop
RIGHT_IRIS_RING, LEFT_IRIS_RING = (469, 470, 471, 472), (474, 475, 476, 477)
FACE_SIDES = (234, 454)  # outermost outline points at the cheekbones (image left, image right)
NOSE_TIP = 1
# Mirror pairs (subject's right, left) used for symmetry: eye corners, brows, mouth corners,
# nostrils, cheekbones, jaw.
MIRROR_PAIRS = ((33, 263), (133, 362), (70, 300), (105, 334), (61, 291), (98, 327), (234, 454), (93, 323),
                (132, 361), (58, 288), (172, 397))
MIDLINE = (10, 151, 9, 168, 6, 197, 195, 5, 4, 1, 2, 0, 17, 152)

# name -> (low, high); a face passes a measure when low <= value <= high. Derived from the real
# faces (29 faces: the 20 in faces/open, closed and crossed, both of two_people counted, and 8
# frames of the astronaut sample shoot; `python -m pytest tests/faces/test_plausibility.py -s`
# prints them), widened by a margin:
#   measure           observed on humans   range          what it says
#   eye_spacing       0.43 .. 0.51         0.36 .. 0.60   eye distance / cheekbone width
#   eye_mouth         0.84 .. 1.22         0.65 .. 1.50   eyes-to-mouth distance / eye distance
#   symmetry          0.02 .. 0.15         0 .. 0.25      worst mirror-pair offset / eye distance
#   nose_depth        1.31 .. 1.65         0.90 .. 2.20   nose tip in front of the cheekbones / eye distance
#   iris_size         0.31 .. 0.45         0.22 .. 0.60   iris diameter / eye width
#   iris_offset       0.02 .. 0.18         0 .. 0.25      iris centre outside the eye opening / eye width
#   skin_chroma       10.5 .. 47.8         7 .. 65        CIELAB chroma of the skin patches
#   skin_hue          28 .. 93             10 .. 110      CIELAB hue angle of the skin, degrees
#   skin_consistency  3.2 .. 19.5          0 .. 35        largest a*b* distance between cheeks and forehead
#   skin_texture      0.24 .. 3.16         0.12 .. 5.0    fine lightness detail in the skin patches
#   skin_flatness     0.00 .. 0.39         0 .. 0.46      skin pixels identical to their neighbour (frame pixels)
# skin_flatness has the least margin: smooth JPEG selfies reach 0.39, oil paintings start at 0.51.
# The warmest skin hue (93) is a sample-shoot frame with a strong as-shot white balance.
RANGES: dict[str, tuple[float, float]] = {
    "eye_spacing": (0.36, 0.60),
    "eye_mouth": (0.65, 1.50),
    "symmetry": (0.0, 0.25),
    "nose_depth": (0.90, 2.20),
    "iris_size": (0.22, 0.60),
    "iris_offset": (0.0, 0.25),
    "skin_chroma": (7.0, 65.0),
    "skin_hue": (10.0, 110.0),
    "skin_consistency": (0.0, 35.0),
    "skin_texture": (0.12, 5.0),
    "skin_flatness": (0.0, 0.46),
}
# A frame with no colour anywhere (a black-and-white photo) says nothing about skin colour: the
# colour measures are recorded but do not apply when the whole frame's mean CIELAB chroma is
# under this. Such a frame can then not be told from a grey statue in a grey frame.
MONOCHROME_CHROMA = 2.0
COLOUR_MEASURES = ("skin_chroma", "skin_hue")


@dataclass(frozen=True)
class Measure:
    name: str
    value: float
    low: float
    high: float
    applies: bool = True  # False: recorded only (colour measures of a monochrome frame)

    @property
    def passed(self) -> bool:
        return not self.applies or (math.isfinite(self.value) and self.low <= self.value <= self.high)

    @property
    def threshold(self) -> str:
        return f"{self.low:g}..{self.high:g}" if self.applies else "n/a (monochrome frame)"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": round(self.value, 4) if math.isfinite(self.value) else None,
                "threshold": self.threshold, "passed": self.passed}


@dataclass(frozen=True)
class Plausibility:
    measures: tuple[Measure, ...]

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.measures)

    @property
    def failed(self) -> list[Measure]:
        return [m for m in self.measures if not m.passed]

    def describe(self) -> str:
        """The failing measures as ``name = value (needs low..high)``, ``; ``-separated."""
        return "; ".join(f"{m.name} = {m.value:.3g} (needs {m.threshold})" for m in self.failed)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [m.to_json() for m in self.measures]}


def _frontal(pts: np.ndarray) -> np.ndarray | None:
    axes = face_axes(pts)
    return None if axes is None else pts.astype(np.float64) @ axes


def _geometry(pts: np.ndarray) -> dict[str, float]:
    nan = float("nan")
    f = _frontal(pts)
    if f is None:
        return dict.fromkeys(("eye_spacing", "eye_mouth", "symmetry", "nose_depth", "iris_size", "iris_offset"), nan)
    eye_r, eye_l = f[list(RIGHT_EYE)].mean(axis=0), f[list(LEFT_EYE)].mean(axis=0)
    interocular = float(np.linalg.norm((eye_l - eye_r)[:2]))
    if not interocular > 1e-6:
        return dict.fromkeys(("eye_spacing", "eye_mouth", "symmetry", "nose_depth", "iris_size", "iris_offset"), nan)
    width = float(abs(f[FACE_SIDES[1], 0] - f[FACE_SIDES[0], 0]))
    mouth = (f[MOUTH_RIGHT_CORNER] + f[MOUTH_LEFT_CORNER]) / 2.0
    eyes = (eye_r + eye_l) / 2.0
    # Symmetry: mirror pairs must sit at equal heights and equal distances from the midline.
    mid_x = float(np.median(f[list(MIDLINE), 0]))
    asym = [max(abs((f[r, 0] + f[left, 0]) / 2.0 - mid_x), abs(f[r, 1] - f[left, 1])) for r, left in MIRROR_PAIRS]
    cheeks_z = (f[FACE_SIDES[0], 2] + f[FACE_SIDES[1], 2]) / 2.0
    sizes, offsets = [], []
    for eye, iris, ring in ((RIGHT_EYE, RIGHT_IRIS, RIGHT_IRIS_RING), (LEFT_EYE, LEFT_IRIS, LEFT_IRIS_RING)):
        a, b = f[eye[0], :2], f[eye[3], :2]
        span = float(np.linalg.norm(b - a))
        if span <= 1e-6:
            return dict.fromkeys(("eye_spacing", "eye_mouth", "symmetry", "nose_depth", "iris_size", "iris_offset"), nan)
        ring_pts = f[list(ring), :2]
        diameter = float(np.linalg.norm(ring_pts[0] - ring_pts[2]) + np.linalg.norm(ring_pts[1] - ring_pts[3])) / 2.0
        sizes.append(diameter / span)
        # Iris centre off the eye: along the corner axis beyond a corner, or across it.
        axis = (b - a) / span
        rel = f[iris, :2] - a
        along = float(rel @ axis) / span
        across = abs(float(rel @ np.array([-axis[1], axis[0]]))) / span
        offsets.append(max(across, -along, along - 1.0, 0.0))
    return {
        "eye_spacing": interocular / width if width > 1e-6 else nan,
        "eye_mouth": float(np.linalg.norm((mouth - eyes)[:2])) / interocular,
        "symmetry": float(max(asym)) / interocular,
        "nose_depth": float(cheeks_z - f[NOSE_TIP, 2]) / interocular,
        "iris_size": float(np.mean(sizes)),
        "iris_offset": float(max(offsets)),
    }


def _to_crop(pts: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    src = np.asarray(quad[:3], np.float32)
    dst = np.array([[0, 0], [0, size], [size, size]], np.float32)
    matrix = cv2.getAffineTransform(src, dst)
    xy = pts[:, :2].astype(np.float64)
    return xy @ matrix[:, :2].T + matrix[:, 2]


def _skin(rgb: np.ndarray, pts: np.ndarray) -> dict[str, float]:
    nan = float("nan")
    keys = ("skin_chroma", "skin_hue", "skin_consistency", "skin_texture")
    try:
        quad = ffhq_quad(pts)
        crop = align_face(rgb, quad, CROP_SIZE)
    except ValueError:
        return dict.fromkeys(keys, nan)
    xy = _to_crop(pts, quad, CROP_SIZE)
    interocular = float(np.linalg.norm(xy[list(LEFT_EYE)].mean(axis=0) - xy[list(RIGHT_EYE)].mean(axis=0)))
    radius = max(2, int(round(SKIN_PATCH_RADIUS * interocular)))
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float64)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    lightness = lab[..., 0]
    detail = lightness - cv2.GaussianBlur(lightness, (0, 0), 2.0)
    yy, xx = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE]
    means, textures = [], []
    for index in SKIN_POINTS.values():
        cx, cy = xy[index]
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        if mask.sum() < 8:
            return dict.fromkeys(keys, nan)
        means.append(lab[mask].mean(axis=0))
        textures.append(float(detail[mask].std()))
    m = np.array(means)
    a, b = float(np.median(m[:, 1])), float(np.median(m[:, 2]))
    spread = max(float(np.linalg.norm((m[i] - m[j])[1:])) for i in range(3) for j in range(i + 1, 3))
    return {
        "skin_chroma": math.hypot(a, b),
        "skin_hue": math.degrees(math.atan2(b, a)),
        "skin_consistency": spread,
        "skin_texture": float(np.median(textures)),
    }


def _flatness(rgb: np.ndarray, pts: np.ndarray) -> float:
    """Median over the skin patches, in the frame's own pixels, of the fraction of pixels whose
    RGB equals their right neighbour's: drawings and paintings are flat fills, skin under a
    camera is not (sensor noise and its JPEG residue)."""
    interocular = float(np.linalg.norm(pts[list(LEFT_EYE), :2].mean(axis=0) - pts[list(RIGHT_EYE), :2].mean(axis=0)))
    r = max(3, int(SKIN_PATCH_RADIUS * interocular))
    h, w = rgb.shape[:2]
    fractions = []
    for index in SKIN_POINTS.values():
        cx, cy = (int(round(float(v))) for v in pts[index, :2])
        patch = rgb[max(0, cy - r):max(0, min(h, cy + r)), max(0, cx - r):max(0, min(w, cx + r))].astype(np.int16)
        if patch.shape[0] < 2 or patch.shape[1] < 2:
            continue
        fractions.append(float((np.abs(patch[:, 1:] - patch[:, :-1]).max(axis=-1) == 0).mean()))
    return float(np.median(fractions)) if fractions else float("nan")


def check_face(rgb: np.ndarray, landmarks: np.ndarray) -> Plausibility:
    """Measure the face whose FaceMesh ``landmarks`` (478, 3) lie in ``rgb`` (HxWx3 uint8)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    pts = np.asarray(landmarks, dtype=np.float64)
    values = {**_geometry(pts), **_skin(rgb, pts), "skin_flatness": _flatness(rgb, pts)}
    colour = frame_chroma(rgb) >= MONOCHROME_CHROMA
    return Plausibility(tuple(
        Measure(name, float(values.get(name, float("nan"))), *RANGES[name],
                applies=colour or name not in COLOUR_MEASURES)
        for name in RANGES
    ))


def frame_chroma(rgb: np.ndarray) -> float:
    """Mean CIELAB chroma of the whole frame (on a copy of at most 256 px)."""
    h, w = rgb.shape[:2]
    f = max(1, math.ceil(max(h, w) / 256))
    small = cv2.resize(rgb, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA) if f > 1 else rgb
    lab = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2LAB).astype(np.float64)
    return float(np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0).mean())
