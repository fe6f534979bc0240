"""Image measures of an aligned face from its pixels and FaceMesh landmarks: framing, left/right
symmetry, dark blotches on the skin and smeared background. Each is one number, higher is worse.

Measures are taken on the image scaled to ``FRAME`` pixels (an aligned face is framed the same at
any resolution), so the numbers do not depend on the generator's output size.
"""

from __future__ import annotations

import cv2
import numpy as np

from faces.align import ffhq_quad
from faces.landmarks import LEFT_EYE, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, RIGHT_EYE
from faces.plausibility import FACE_SIDES, NOSE_TIP

FRAME = 256
EYE_PATCH = (48, 32)  # (w, h) of the canonical eye patch; the corners land on its middle row
_OUTER, _INNER = (8.0, 16.0), (40.0, 16.0)
# Regions kept off the skin mask: eyes and brows, nose, mouth (FaceMesh indices).
_BROWS_EYES = ((70, 63, 105, 66, 107, 133, 145, 153, 33), (300, 293, 334, 296, 336, 362, 374, 380, 263))
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
_NOSE = (168, 193, 245, 114, 129, 98, 2, 327, 358, 343, 465, 417)
_MOUTH = (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91, 57, 287)


def scaled(rgb: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image at FRAME x FRAME and the landmarks (x, y) in its pixels."""
    h, w = rgb.shape[:2]
    if (h, w) == (FRAME, FRAME):
        return rgb, np.asarray(pts, np.float64)[:, :2]
    small = cv2.resize(rgb, (FRAME, FRAME), interpolation=cv2.INTER_AREA if min(h, w) > FRAME else cv2.INTER_LINEAR)
    return small, np.asarray(pts, np.float64)[:, :2] * [FRAME / w, FRAME / h]


def alignment_offset(pts: np.ndarray, side: float) -> float:
    """Mean distance of the eye centres, nose tip and mouth centre from where the aligner
    (:func:`faces.align.ffhq_quad`) would put them in a crop of this image, in crop sides."""
    quad = ffhq_quad(pts)
    dst = np.array([[0, 0], [0, side], [side, side]], np.float32)
    matrix = cv2.getAffineTransform(quad[:3].astype(np.float32), dst)
    xy = np.asarray(pts, np.float64)[:, :2]
    keys = np.stack([xy[list(RIGHT_EYE)].mean(0), xy[list(LEFT_EYE)].mean(0), xy[NOSE_TIP],
                     (xy[MOUTH_RIGHT_CORNER] + xy[MOUTH_LEFT_CORNER]) / 2])
    framed = keys @ matrix[:, :2].T + matrix[:, 2]
    return float(np.linalg.norm(framed - keys, axis=1).mean() / side)


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB with L in 0..100 and a*, b* centred on 0."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def _patch(lab: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The eye between ``outer`` and ``inner`` corner resampled with the outer corner on the left:
    the two eyes come out mirrored onto each other."""
    src = np.array([outer, inner], np.float32)
    dst = np.array([_OUTER, _INNER], np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(src, dst)
    if matrix is None:
        raise ValueError("degenerate eye corners")
    return cv2.warpAffine(lab, matrix, EYE_PATCH, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of z-scored lightness plus the colour difference (a*b*, in units
    of 20 CIELAB steps, 95th percentile of a smoothed map): shape and colour both count."""
    za = (a[..., 0] - a[..., 0].mean()) / (a[..., 0].std() + 1.0)
    zb = (b[..., 0] - b[..., 0].mean()) / (b[..., 0].std() + 1.0)
    colour = cv2.GaussianBlur(np.linalg.norm(a[..., 1:] - b[..., 1:], axis=-1), (0, 0), 2.0)
    return float(np.abs(za - zb).mean() + np.percentile(colour, 95) / 20.0)


def eye_asymmetry(lab: np.ndarray, pts: np.ndarray) -> float:
    """How different the two eye regions look once mirrored onto each other."""
    right = _patch(lab, pts[RIGHT_EYE[0]], pts[RIGHT_EYE[3]])
    left = _patch(lab, pts[LEFT_EYE[3]], pts[LEFT_EYE[0]])
    return _difference(right, left)


def side_asymmetry(lab: np.ndarray, pts: np.ndarray) -> float:
    """The same for the regions beside the cheekbones (ears, hair, what lies behind), mirrored
    about the face's midline: each side's patch runs outwards from its outline point."""
    a, b = pts[FACE_SIDES[0]], pts[FACE_SIDES[1]]
    width = float(np.linalg.norm(b - a))
    out = (a - b) / max(width, 1e-6)
    # Outline point to a point a third of the face width further out, as the patch's corner axis.
    left_patch = _patch(lab, a + out * width * 0.33, a)
    right_patch = _patch(lab, b - out * width * 0.33, b)
    return _difference(left_patch, right_patch)


def _poly(mask: np.ndarray, pts: np.ndarray, idx: tuple[int, ...], value: int, grow: float = 1.0) -> None:
    hull = cv2.convexHull(pts[list(idx)].astype(np.float32)).reshape(-1, 2)
    centre = hull.mean(axis=0)
    cv2.fillPoly(mask, [np.round((hull - centre) * grow + centre).astype(np.int32)], (value,))


def face_mask(pts: np.ndarray, grow: float = 1.0) -> np.ndarray:
    mask = np.zeros((FRAME, FRAME), np.uint8)
    _poly(mask, pts, FACE_OVAL, 1, grow)
    return mask


def skin_mask(pts: np.ndarray) -> np.ndarray:
    """Skin under the mesh: the face oval less eyes and brows, nose and mouth, and its rim."""
    mask = face_mask(pts, 0.92)
    for region in (*_BROWS_EYES, _NOSE, _MOUTH):
        _poly(mask, pts, region, 0, 1.25)
    return mask


def _masked_blur(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` over the mask alone (normalised convolution)."""
    m = mask.astype(np.float32)
    num = cv2.GaussianBlur(values * m, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    return num / np.maximum(den, 1e-3)


def crater_depth(lab: np.ndarray, pts: np.ndarray) -> float:
    """The darkest soft blob on the skin: lightness of its surroundings minus its own, as a
    difference of Gaussians over the skin mask alone, over the skin's median lightness."""
    mask = skin_mask(pts)
    if mask.sum() < 200:
        raise ValueError("too little skin under the mesh")
    eye_gap = float(np.linalg.norm(pts[list(LEFT_EYE)].mean(0) - pts[list(RIGHT_EYE)].mean(0)))
    light = lab[..., 0]
    near = _masked_blur(light, mask, max(1.0, 0.06 * eye_gap))
    around = _masked_blur(light, mask, max(2.0, 0.3 * eye_gap))
    inner = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    median = float(np.median(light[mask > 0]))
    return float((around - near)[inner].max() / max(median, 1.0)) if inner.any() else 0.0


CELL = 32


def background_smear(lab: np.ndarray, pts: np.ndarray) -> float:
    """Loss of fine detail in a background patch: log of the median over the least detail energy
    of the background cells (|Laplacian| squared, cells of CELL pixels at half-cell steps)."""
    back = 1 - face_mask(pts, 1.3)
    detail = cv2.Laplacian(lab[..., 0], cv2.CV_32F, ksize=3) ** 2
    energies = []
    for y in range(0, FRAME - CELL + 1, CELL // 2):
        for x in range(0, FRAME - CELL + 1, CELL // 2):
            if back[y:y + CELL, x:x + CELL].mean() > 0.95:
                energies.append(float(detail[y:y + CELL, x:x + CELL].mean()))
    if len(energies) < 4:
        return 0.0
    e = np.array(energies) + 1e-3
    return float(np.log(np.median(e) / e.min()))
