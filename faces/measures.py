"""Geometric measures of a face from its FaceMesh landmarks: head pose, eye openness, iris
position. Pure functions of the landmark array, in the pixels of the image it came from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from faces.landmarks import (
    CHIN,
    FOREHEAD,
    LEFT_EYE,
    LEFT_EYE_CORNERS,
    LEFT_IRIS,
    RIGHT_EYE,
    RIGHT_EYE_CORNERS,
    RIGHT_IRIS,
)

# FaceMesh puts the chin a little deeper than the hairline point: on level frontal portraits
# the raw forehead-to-chin angle reads about 6 degrees chin-down.
PITCH_BIAS_DEG = 6.0


def ratio(num: float, den: float) -> float:
    """num / den, or nan when the denominator is (near) zero or either side is not finite."""
    return num / den if den > 1e-9 and math.isfinite(num) and math.isfinite(den) else float("nan")


def eye_aspect_ratio(pts: np.ndarray, idx: tuple[int, ...]) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|) on the image plane, for landmark indices p1..p6."""
    p1, p2, p3, p4, p5, p6 = (pts[i, :2].astype(np.float64) for i in idx)
    vertical = np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)
    return ratio(float(vertical), 2.0 * float(np.linalg.norm(p1 - p4)))


def iris_position(pts: np.ndarray, iris: int, outer: int, inner: int) -> float:
    """Iris centre projected on the outer->inner corner axis: 0 at the outer corner, 1 at the inner."""
    a, b, c = (pts[i, :2].astype(np.float64) for i in (outer, inner, iris))
    axis = b - a
    return ratio(float(np.dot(c - a, axis)), float(np.dot(axis, axis)))


def eye_width(pts: np.ndarray, idx: tuple[int, ...]) -> float:
    """Distance between an eye's corners (p1, p4) on the image plane."""
    return float(np.linalg.norm(pts[idx[0], :2].astype(np.float64) - pts[idx[3], :2].astype(np.float64)))


def eye_height(pts: np.ndarray, idx: tuple[int, ...]) -> float:
    """Largest distance of an eye's p1..p6 points from its corner line p1-p4 (image plane)."""
    eye = pts[list(idx), :2].astype(np.float64)
    axis = eye[3] - eye[0]
    normal = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
    return float(np.abs((eye - eye[0]) @ normal).max())


def face_axes(pts: np.ndarray) -> np.ndarray | None:
    """Rotation whose columns are the face's right, down and forward axes in image coordinates,
    from the eye corners and the forehead-to-chin line; None when the landmarks are degenerate.
    ``pts @ face_axes(pts)`` shows the face from straight ahead."""
    p = pts.astype(np.float64)
    across = (p[LEFT_EYE[3]] - p[RIGHT_EYE[0]]) + (p[LEFT_EYE[0]] - p[RIGHT_EYE[3]])  # towards image right
    return _axes(across, p[CHIN] - p[FOREHEAD])


def _axes(across: np.ndarray, down: np.ndarray) -> np.ndarray | None:
    with np.errstate(divide="ignore", invalid="ignore"):
        x = across / np.linalg.norm(across)
        down = down - np.dot(down, x) * x
        y = down / np.linalg.norm(down)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    return np.stack([x, y, np.cross(x, y)], axis=1)  # z: into the scene for a frontal face


def head_pose(pts: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees (see :class:`faces.FaceFinding`) from the face's own axes."""
    return _pose(face_axes(pts))


def _pose(r: np.ndarray | None) -> tuple[float, float, float]:
    if r is None:
        return (float("nan"),) * 3
    # Columns are the face axes in camera coordinates; decompose as Rz(roll) Ry(yaw) Rx(pitch).
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -float(r[2, 0])))))
    pitch = -math.degrees(math.atan2(r[2, 1], r[2, 2])) + PITCH_BIAS_DEG
    pitch = (pitch + 180.0) % 360.0 - 180.0
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll


# The landmarks every eye and pose measure reads, gathered once: each eye's p1..p6 (rows 0-5 the
# right eye, 6-11 the left), the irises, forehead and chin; _AT gives a landmark's row.
_GATHER = (*RIGHT_EYE, *LEFT_EYE, RIGHT_IRIS, LEFT_IRIS, FOREHEAD, CHIN)
_AT = {index: row for row, index in reversed(list(enumerate(_GATHER)))}
_GATHER_ROWS = np.array(_GATHER, np.intp)


@dataclass(frozen=True, eq=False)
class FaceGeometry:
    """Every eye and pose measure of one face, taken in one pass over its landmarks: the numbers
    of :func:`head_pose`, :func:`eye_aspect_ratio`, :func:`iris_position`, :func:`eye_width` and
    :func:`eye_height`, and ``*_frontal`` the same after rotating the landmarks into the face's
    own frame (:func:`face_axes`), where ``eye_spacing`` is the distance between the eye centres.
    ``axes`` is None, and the pose and frontal measures nan, when the landmarks are degenerate;
    any other measure whose geometry is degenerate is nan."""

    source: np.ndarray = field(repr=False)  # a copy of the landmarks measured
    axes: np.ndarray | None = field(repr=False)
    yaw: float
    pitch: float
    roll: float
    ear_right: float
    ear_left: float
    ear_right_frontal: float
    ear_left_frontal: float
    iris_right: float
    iris_left: float
    eye_width_right: float
    eye_width_left: float
    eye_height_right: float
    eye_height_left: float
    eye_width_right_frontal: float
    eye_width_left_frontal: float
    eye_spacing: float

    def measures(self, landmarks: np.ndarray | None) -> bool:
        """Whether these are the measures of ``landmarks`` (values equal to the ones measured)."""
        return landmarks is not None and np.array_equal(self.source, landmarks)


_NAN = float("nan")
Point = list[float]


def _ear(e: list[Point]) -> tuple[float, float]:
    """Eye aspect ratio and corner distance of p1..p6 on the plane of their first two coordinates."""
    vertical = math.hypot(e[1][0] - e[5][0], e[1][1] - e[5][1]) + math.hypot(e[2][0] - e[4][0], e[2][1] - e[4][1])
    width = math.hypot(e[0][0] - e[3][0], e[0][1] - e[3][1])
    return ratio(vertical, 2.0 * width), width


def _height(e: list[Point]) -> float:
    ax, ay = e[3][0] - e[0][0], e[3][1] - e[0][1]
    norm = math.hypot(ax, ay)
    if not norm > 0.0:
        return _NAN
    return max(abs((q[0] - e[0][0]) * -ay + (q[1] - e[0][1]) * ax) for q in e) / norm


def _iris(outer: Point, inner: Point, iris: Point) -> float:
    ax, ay = inner[0] - outer[0], inner[1] - outer[1]
    return ratio((iris[0] - outer[0]) * ax + (iris[1] - outer[1]) * ay, ax * ax + ay * ay)


def _unit(v: Point) -> Point | None:
    norm = math.hypot(*v)
    if not (norm > 0.0 and math.isfinite(norm)):
        return None
    unit = [c / norm for c in v]
    return unit if all(math.isfinite(c) for c in unit) else None


def face_geometry(pts: np.ndarray) -> FaceGeometry:
    """All of :class:`FaceGeometry` from a (478, 3) landmark array, reading only the points it
    needs (landmarks elsewhere may be anything). Plain float arithmetic on those few points: the
    mesh pass measures every face, and a dozen small numpy calls would cost more than the rest."""
    p: list[Point] = np.asarray(pts).take(_GATHER_ROWS, axis=0)[:, :3].astype(np.float64).tolist()
    right, left = p[0:6], p[6:12]
    ear_r, width_r = _ear(right)
    ear_l, width_l = _ear(left)
    at = _AT
    iris_r = _iris(p[at[RIGHT_EYE_CORNERS[0]]], p[at[RIGHT_EYE_CORNERS[1]]], p[at[RIGHT_IRIS]])
    iris_l = _iris(p[at[LEFT_EYE_CORNERS[0]]], p[at[LEFT_EYE_CORNERS[1]]], p[at[LEFT_IRIS]])

    # face_axes: x across the eyes towards the image right, y forehead to chin made orthogonal.
    r0, r3, l0, l3 = p[at[RIGHT_EYE[0]]], p[at[RIGHT_EYE[3]]], p[at[LEFT_EYE[0]]], p[at[LEFT_EYE[3]]]
    x = _unit([(l3[i] - r0[i]) + (l0[i] - r3[i]) for i in range(3)])
    down = [p[at[CHIN]][i] - p[at[FOREHEAD]][i] for i in range(3)]
    y = None
    if x is not None:
        along = sum(down[i] * x[i] for i in range(3))
        y = _unit([down[i] - along * x[i] for i in range(3)])
    axes: np.ndarray | None = None
    yaw = pitch = roll = _NAN
    frontal_r = frontal_l = width_fr = width_fl = spacing = _NAN
    if x is not None and y is not None:
        z = [x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]]
        axes = np.array([x, y, z]).T  # columns: the face's axes in image coordinates
        yaw, pitch, roll = _pose(axes)
        frontal = [[q[0] * x[0] + q[1] * x[1] + q[2] * x[2], q[0] * y[0] + q[1] * y[1] + q[2] * y[2]] for q in p[:12]]
        (frontal_r, width_fr), (frontal_l, width_fl) = _ear(frontal[0:6]), _ear(frontal[6:12])
        centre_r = [sum(q[i] for q in frontal[0:6]) / 6.0 for i in range(2)]
        centre_l = [sum(q[i] for q in frontal[6:12]) / 6.0 for i in range(2)]
        spacing = math.hypot(centre_r[0] - centre_l[0], centre_r[1] - centre_l[1])
    return FaceGeometry(
        source=np.array(pts, copy=True), axes=axes, yaw=yaw, pitch=pitch, roll=roll, ear_right=ear_r, ear_left=ear_l,
        ear_right_frontal=frontal_r, ear_left_frontal=frontal_l, iris_right=iris_r, iris_left=iris_l,
        eye_width_right=width_r, eye_width_left=width_l, eye_height_right=_height(right), eye_height_left=_height(left),
        eye_width_right_frontal=width_fr, eye_width_left_frontal=width_fl, eye_spacing=spacing,
    )
