"""FFHQ-style face alignment from FaceMesh landmarks.

The quad follows the recipe published with the FFHQ dataset: an oriented square centred a
little below the eyes, sized from the eye distance and the eye-to-mouth distance, with its
top edge parallel to the eye line as corrected by the mouth direction.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from faces.landmarks import LEFT_EYE, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, RIGHT_EYE


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """Oriented crop quad (4, 2) in image pixels: top-left, bottom-left, bottom-right, top-right.

    ``landmarks`` is a FaceMesh array (468 or 478 points, x and y first) from :mod:`faces.detect`.
    """
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    # Six eye contour points each, like the 68-point scheme FFHQ was built on, rather than iris
    # centres: the crop must not move when the gaze does. Image left is the subject's right.
    eye_left = lm[list(RIGHT_EYE)].mean(axis=0)
    eye_right = lm[list(LEFT_EYE)].mean(axis=0)
    eye_avg = (eye_left + eye_right) / 2.0
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[MOUTH_RIGHT_CORNER] + lm[MOUTH_LEFT_CORNER]) / 2.0
    eye_to_mouth = mouth_avg - eye_avg

    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1.0, 1.0]
    norm = float(np.hypot(*x))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x /= norm
    x *= max(float(np.hypot(*eye_to_eye)) * 2.0, float(np.hypot(*eye_to_mouth)) * 1.8)
    y = np.flipud(x) * [-1.0, 1.0]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def align_face(rgb: np.ndarray, quad: np.ndarray, size: int = 1024) -> np.ndarray:
    """Resample the ``quad`` region of ``rgb`` to a ``size`` x ``size`` uint8 image.

    Only the quad's bounding box is read, so the cost does not grow with the frame. Where the
    quad leaves the frame the image is mirrored at its edge, as FFHQ does.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise TypeError(f"expected uint8 RGB, got {rgb.dtype}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    quad = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    if not np.isfinite(quad).all():
        raise ValueError("quad has non-finite corners")
    h, w = rgb.shape[:2]
    side = float(np.hypot(*(quad[3] - quad[0])))
    if side < 1e-6:
        raise ValueError("degenerate quad")

    # Bounding box of the quad, with a pixel of slack for the interpolation, clipped to the frame.
    x0 = max(0, int(math.floor(quad[:, 0].min())) - 1)
    y0 = max(0, int(math.floor(quad[:, 1].min())) - 1)
    x1 = min(w, int(math.ceil(quad[:, 0].max())) + 2)
    y1 = min(h, int(math.ceil(quad[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        # The quad lies wholly outside the frame: mirror from the nearest edge strip.
        x0, x1 = _nearest_span(quad[:, 0], w)
        y0, y1 = _nearest_span(quad[:, 1], h)
    region = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    src = quad - [x0, y0]

    # Box-filter large faces down to about the output scale first: the warp itself only
    # interpolates between neighbours and would alias.
    shrink = size / side
    if shrink < 0.8:
        rw = max(1, int(round(region.shape[1] * shrink)))
        rh = max(1, int(round(region.shape[0] * shrink)))
        sx, sy = rw / region.shape[1], rh / region.shape[0]
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        src = src * [sx, sy]

    # Pixel-edge coordinates (landmarks) to pixel-centre coordinates (OpenCV).
    src_pts = (src[:3] - 0.5).astype(np.float32)
    dst_pts = np.array([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]], np.float32)
    matrix = cv2.getAffineTransform(src_pts, dst_pts)
    border = cv2.BORDER_REFLECT if min(region.shape[:2]) > 1 else cv2.BORDER_REPLICATE
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)


def _nearest_span(coords: np.ndarray, extent: int) -> tuple[int, int]:
    lo = int(np.clip(math.floor(coords.min()), 0, extent - 1))
    hi = int(np.clip(math.ceil(coords.max()), lo + 1, extent))
    return lo, hi
