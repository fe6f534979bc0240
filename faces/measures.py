"""Geometric measures of a face from its FaceMesh landmarks: head pose, eye openness, iris
position. Pure functions of the landmark array, in the pixels of the image it came from."""

from __future__ import annotations

import math

import numpy as np

from faces.landmarks import CHIN, FOREHEAD, LEFT_EYE, RIGHT_EYE

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
    down = p[CHIN] - p[FOREHEAD]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = across / np.linalg.norm(across)
        down = down - np.dot(down, x) * x
        y = down / np.linalg.norm(down)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    return np.stack([x, y, np.cross(x, y)], axis=1)  # z: into the scene for a frontal face


def head_pose(pts: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees (see :class:`faces.FaceFinding`) from the face's own axes."""
    r = face_axes(pts)
    if r is None:
        return (float("nan"),) * 3
    # Columns are the face axes in camera coordinates; decompose as Rz(roll) Ry(yaw) Rx(pitch).
    yaw = math.degrees(math.asin(float(np.clip(-r[2, 0], -1.0, 1.0))))
    pitch = -math.degrees(math.atan2(r[2, 1], r[2, 2])) + PITCH_BIAS_DEG
    pitch = (pitch + 180.0) % 360.0 - 180.0
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll
