"""Image measures of an aligned face from its pixels and FaceMesh landmarks: framing, left/right
symmetry, dark blotches on the skin and smeared background. Each is one number, higher is worse.

Measures are taken on the image scaled to ``FRAME`` pixels (an aligned face is framed the same at
any resolution), so the numbers do not depend on the generator's output size; the skin is read on
a view halved again (``DETAIL``), which holds the blotches' scales. The skin and background
measures are relative: a face's blotch is judged against that face's own skin texture, a smeared
patch against the image's own other background patches, so that faces with more shading or a
busier backdrop are not flagged for it.
"""

from __future__ import annotations

import cv2
import numpy as np

from faces.align import ffhq_quad
from faces.landmarks import CHIN, FOREHEAD, LEFT_EYE, LEFT_IRIS, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, RIGHT_EYE, RIGHT_IRIS
from faces.plausibility import FACE_SIDES, NOSE_TIP

FRAME = 256
EYE_PATCH = (48, 32)  # (w, h) of the canonical eye patch; the corners land on its middle row
_OUTER, _INNER = (8.0, 16.0), (40.0, 16.0)
# Regions kept off the skin mask: eyes and brows, nose, mouth (FaceMesh indices).
_BROWS_EYES = ((70, 63, 105, 66, 107, 133, 145, 153, 33), (300, 293, 334, 296, 336, 362, 374, 380, 263))
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
FOREHEAD_MID = 151  # mid-forehead, between the brows and the hairline
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
    """How different the two eye regions look once mirrored onto each other (size is normalised
    away by the mirroring: :func:`iris_asymmetry` measures it)."""
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


def face_mask(pts: np.ndarray, grow: float = 1.0, side: int = FRAME) -> np.ndarray:
    """The face oval (grown about its centre) on a ``side`` x ``side`` grid; ``pts`` in FRAME pixels."""
    mask = np.zeros((side, side), np.uint8)
    _poly(mask, pts * (side / FRAME), FACE_OVAL, 1, grow)
    return mask


def skin_mask(pts: np.ndarray, side: int = FRAME) -> np.ndarray:
    """Bare skin under the mesh, on a ``side`` x ``side`` grid: the face oval (less its rim above
    the eyes), less eyes and brows, nose and nostrils, mouth and its corners, and the top of the
    forehead (where the hairline or a fringe lies): cheeks, forehead and chin, where a dark blob
    is not a feature."""
    p = pts * (side / FRAME)
    # Above the eye line the oval is shrunk (a fringe or the hairline lies there); below it the
    # whole oval counts, so that the outer cheeks and the chin are read too.
    mask = face_mask(pts, 0.92, side)
    up = p[FOREHEAD] - p[CHIN]
    up /= max(float(np.linalg.norm(up)), 1e-6)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    eye_line = (p[RIGHT_EYE[0]] + p[LEFT_EYE[3]]) / 2  # the outer corners
    below = (xx - eye_line[0]) * up[0] + (yy - eye_line[1]) * up[1] < 0
    mask[below] = face_mask(pts, 1.0, side)[below]
    for region in _BROWS_EYES:
        _poly(mask, p, region, 0, 1.25)
    _poly(mask, p, _NOSE, 0, 1.25)
    _poly(mask, p, _MOUTH, 0, 1.5)
    reach = 0.4 * float((p[FOREHEAD] - p[FOREHEAD_MID]) @ up)
    mask[(xx - p[FOREHEAD_MID, 0]) * up[0] + (yy - p[FOREHEAD_MID, 1]) * up[1] > reach] = 0
    return mask


def _masked_blur(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` over the mask alone (normalised convolution)."""
    m = mask.astype(np.float32)
    num = cv2.GaussianBlur(values * m, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    return num / np.maximum(den, 1e-3)


DETAIL = FRAME // 2  # side of the view the skin is read on
# Blob scales, in eye gaps (eye centre to eye centre): skin blotches of about a tenth to a fifth
# of the eye gap across, read with Gaussians about their own size.
CRATER_SCALES = (0.05, 0.075)


def _eye_gap(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[list(LEFT_EYE)].mean(0) - pts[list(RIGHT_EYE)].mean(0)))


def crater_depth(lab: np.ndarray, pts: np.ndarray) -> float:
    """How many robust standard deviations of this face's own skin texture its darkest soft blob
    stands out by. The blob response is the smaller principal curvature of the log lightness,
    smoothed over the skin mask alone at each crater scale: large for a dark spot, small for the
    dark side of an edge or a fold (one curvature only). It is z-scored against its median and
    MAD over the skin, so smooth and textured or shaded skin are each judged by their own."""
    mask = skin_mask(pts, DETAIL)
    if int(mask.sum()) < 100:
        raise ValueError("too little skin under the mesh")
    light = cv2.resize(lab[..., 0], (DETAIL, DETAIL), interpolation=cv2.INTER_AREA)
    light = np.log(light + 5.0) * 50.0  # shading is a gain: in log lightness it is an offset
    inner = cv2.erode(mask, np.ones((7, 7), np.uint8)) > 0
    if int(inner.sum()) < 50:
        raise ValueError("too little skin under the mesh")
    gap = _eye_gap(pts) * DETAIL / FRAME
    best = 0.0
    for scale in CRATER_SCALES:
        smooth = _masked_blur(light, mask, max(1.0, scale * gap))
        xx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3)
        yy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3)
        xy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3)
        response = ((xx + yy) / 2 - np.sqrt(((xx - yy) / 2) ** 2 + xy**2))[inner]
        median = float(np.median(response))
        spread = 1.4826 * float(np.median(np.abs(response - median))) + 1e-6
        best = max(best, (float(response.max()) - median) / spread)
    return best


SMEAR_CELL = 40        # background cell side: about half a smeared patch (a quarter to a third of the frame)
_FLOOR = 0.5           # detail energy (squared lightness steps) that keeps the logs finite
_TEXTURE_FLOOR = 2.0   # mean squared gradient below which a background cell is flat
# Weight of the least sharp cell's outright blur against its shortfall from the median cell: the
# one of 0.1-0.4 that catches most train smears at the train good faces' 95th percentile (0.3).
SMEAR_BLUR_WEIGHT = 0.3


def _box_means(integral: np.ndarray, cell: int, step: int) -> np.ndarray:
    """Means of cell x cell boxes at ``step`` strides from an integral image."""
    n = (integral.shape[0] - 1 - cell) // step + 1
    y = np.arange(n) * step
    a = integral[np.ix_(y, y)]
    b = integral[np.ix_(y, y + cell)]
    c = integral[np.ix_(y + cell, y)]
    d = integral[np.ix_(y + cell, y + cell)]
    return np.asarray((d - b - c + a) / (cell * cell))


def background_smear(lab: np.ndarray, pts: np.ndarray) -> float:
    """The textured background patch whose fine detail is most lost. Each cell (SMEAR_CELL
    pixels, half-cell steps, wholly outside the grown face oval) with some structure (mean squared
    gradient of the lightly blurred lightness over _TEXTURE_FLOOR) has a sharpness: the log of its
    fine detail (|Laplacian| squared) over that gradient energy. A smear keeps a patch's streaks
    (gradient energy) but wipes its finest steps, on hair as on a backdrop; flat cells are left
    out, since smearing them changes nothing and a plain wall would otherwise be compared with
    itself. The measure is how far below the median cell the least sharp one lies, plus
    SMEAR_BLUR_WEIGHT times how blurred that cell is outright (minus its sharpness, where that is
    below 0). A smear is both; hair in focus in front of a finely grained wall is only less sharp
    than the wall. The outright blur weighs less, since a backdrop out of focus is blurred
    everywhere and only the shortfall tells a smeared patch of it."""
    light = lab[..., 0]
    back = (1 - face_mask(pts, 1.3)).astype(np.float32)
    smooth = cv2.GaussianBlur(light, (0, 0), 1.0)
    gradient = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) ** 2 + cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) ** 2
    fine = cv2.Laplacian(light, cv2.CV_32F, ksize=3) ** 2
    step = SMEAR_CELL // 2
    energy = _box_means(cv2.integral(gradient), SMEAR_CELL, step)
    textured = (_box_means(cv2.integral(back), SMEAR_CELL, step) > 0.95) & (energy > _TEXTURE_FLOOR)
    if int(textured.sum()) < 2:
        return 0.0
    sharp = (np.log(_box_means(cv2.integral(fine), SMEAR_CELL, step) + _FLOOR) - np.log(energy + _FLOOR))[textured]
    least = float(sharp.min())
    return float(np.median(sharp)) - least + SMEAR_BLUR_WEIGHT * max(0.0, -least)


def _eye_shape(pts: np.ndarray, eye: tuple[int, ...], iris: int) -> tuple[float, float, float]:
    """Width (corner to corner), height (mean lid gap) and iris diameter of one eye."""
    p = pts[list(eye)]
    ring = pts[iris + 1:iris + 5]
    width = float(np.linalg.norm(p[0] - p[3]))
    height = float(np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / 2
    diameter = float(np.linalg.norm(ring[0] - ring[2]) + np.linalg.norm(ring[1] - ring[3])) / 2
    return width, height, diameter


def _iris_colour(lab: np.ndarray, pts: np.ndarray, eye: tuple[int, ...], iris: int, diameter: float) -> np.ndarray:
    """Mean Lab of the iris disc (its inner part, less the pupil's edge) where the lids leave it."""
    c = pts[iris]
    r = max(1.5, 0.4 * diameter)
    x0, y0 = max(0, int(c[0] - r)), max(0, int(c[1] - r))
    x1, y1 = min(lab.shape[1], int(c[0] + r) + 2), min(lab.shape[0], int(c[1] + r) + 2)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("iris off the image")
    yy, xx = np.mgrid[y0:y1, x0:x1]
    disc = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r * r
    lids = np.zeros(disc.shape, np.uint8)
    cv2.fillPoly(lids, [np.round(pts[list(eye)] - [x0, y0]).astype(np.int32)], (1,))
    seen = disc & (lids > 0)
    pick = seen if seen.sum() >= 3 else disc
    if not pick.any():
        raise ValueError("iris off the image")
    return np.asarray(lab[y0:y1, x0:x1][pick].mean(axis=0))


def iris_asymmetry(lab: np.ndarray, pts: np.ndarray) -> dict[str, float]:
    """What the mirrored comparison normalises away: the eyes' sizes (|log| ratio right over left
    of the iris diameter, and of the lid gap over the eye width) and the irises' colours (CIELAB
    lightness difference and a*b* distance of the two iris discs)."""
    (rw, rh, rd), (lw, lh, ld) = _eye_shape(pts, RIGHT_EYE, RIGHT_IRIS), _eye_shape(pts, LEFT_EYE, LEFT_IRIS)
    if min(rw, lw, rd, ld) < 1.0:
        raise ValueError("degenerate eye landmarks")
    right, left = _iris_colour(lab, pts, RIGHT_EYE, RIGHT_IRIS, rd), _iris_colour(lab, pts, LEFT_EYE, LEFT_IRIS, ld)
    return {"iris_size": abs(float(np.log(rd / ld))),
            "opening": abs(float(np.log((rh + 1.0) / rw) - np.log((lh + 1.0) / lw))),
            "iris_lightness": abs(float(right[0] - left[0])),
            "iris_colour": float(np.linalg.norm(right[1:] - left[1:]))}


# The full lid contours (FaceMesh indices), corner to corner along the upper lid and back.
RIGHT_LIDS = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_LIDS = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)


def eye_flatness(lab: np.ndarray, pts: np.ndarray) -> float:
    """How flat the eyes look: the face's median skin lightness over the spread (5th to 95th
    percentile) of lightness inside the lid contours, mean of the two eyes. An open eye holds a
    dark iris and bright sclera (a wide spread); a shut lid is skin with a lash line, whatever
    the mesh makes of its landmarks, so a closed eye is read from its pixels, not its shape."""
    light = lab[..., 0]
    skin = skin_mask(pts, DETAIL) > 0
    if int(skin.sum()) < 50:
        raise ValueError("too little skin under the mesh")
    reference = float(np.median(cv2.resize(light, (DETAIL, DETAIL), interpolation=cv2.INTER_AREA)[skin]))
    spreads = []
    for lids in (RIGHT_LIDS, LEFT_LIDS):
        inside = np.zeros(light.shape, np.uint8)
        cv2.fillPoly(inside, [np.round(pts[list(lids)]).astype(np.int32)], (1,))
        values = light[inside > 0]
        if len(values) < 10:
            raise ValueError("eye too small to read")
        low, high = np.percentile(values, (5, 95))
        spreads.append(float(high - low))
    return reference / max(float(np.mean(spreads)), 1.0)
