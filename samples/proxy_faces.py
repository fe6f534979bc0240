"""A proxy benchmark for the automatic checks on generated faces: real aligned face crops, good
as they are, and copies with artifacts made by code, labelled good or bad by construction.

A GAN trained on a CPU here does not make real faces, so the checks are measured on real
photographs instead: the shared test faces (``faces/open``, ``faces/closed``) and the portrait
bundled with scikit-image, aligned with the project's aligner and jittered (shift, scale,
rotation, mirror) and relit (brightness, contrast, white balance, light falling off to one side),
so that each source gives faces that differ the way photographs of one person do. The artifacts, each drawn with a seeded RNG:

- ``crater``: a dark blotch with soft edges on the skin (cheek, forehead, chin);
- ``smear``: a background patch smeared along one direction, feathered into its surroundings;
- ``closed_eye``: both eye regions replaced by the eyes of a closed-eyed face;
- ``mismatched_eyes``: one eye taken from another face, or its iris recoloured;
- ``misaligned``: the crop shifted, turned or scaled well off the aligner's framing;
- ``no_face``: a crop of a photograph with no face in it.

An artifact that would change too little to be seen (a smear over a plain patch, an iris the
lids hide) is drawn again, and left out if it never shows: it would be a good face labelled bad.

Items are split by source: the photographs of one person (or one shoot) are all on one side, and
an artifact's donor (the closed or mismatched eye) comes from the same side as the face it goes
into. Thresholds are calibrated on the ``train`` side; figures are reported on ``held_out``.
Each item also names its photograph (crops of one shot share one), so that calibration inside
the train side can fold by photograph: the train side holds too few people to fold by person.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.harness import testdata_dir
from faces.align import align_face, ffhq_quad
from faces.detect import find_faces
from faces.landmarks import LEFT_EYE, LEFT_IRIS, RIGHT_EYE, RIGHT_IRIS
from qa.generated.pixels import FRAME, face_mask

SIZE = FRAME  # the checks' own working size: no resampling between the two
ARTIFACTS = ("crater", "smear", "closed_eye", "mismatched_eyes", "misaligned", "no_face")

# File under the test data's faces/ -> source id. Photographs of one person or one shoot share an
# id, so that no person is on both sides of the split (two_people and biden_oval_office are crops
# of one photograph; the selfie pair is one person in one setting; the averted gaze is Obama, eyes
# open and looking aside, a good face).
SOURCES: dict[str, str] = {
    "open/obama_official_portrait_2012.jpg": "obama_biden",
    "open/biden_oval_office.jpg": "obama_biden",
    "open/two_people_obama_biden.jpg": "obama_biden",
    "open/grace_hopper_128px.jpg": "grace_hopper",
    "crossed/obama_averted_gaze.jpg": "obama_biden",
    "open/lin_manuel_miranda.png": "lin_manuel_miranda",
    "open/curie_lab_exif_orientation_6.jpg": "curie",
    "open/selfie_open_eyes.jpg": "selfie",
    "closed/selfie_closed_eyes.jpg": "selfie",
    **{f"closed/cew_closed_eye_{n}.jpg": f"cew_{n}" for n in ("0030", "0161", "0172", "0267", "0271", "0288", "0957")},
    "closed/cew_closed_eye_1786_glasses.jpg": "cew_1786",
    "none/cat_chelsea.png": "cat_chelsea",
    "none/coffee.png": "coffee",
    "none/el_torcal_rocks.jpg": "el_torcal_rocks",
    "none/horse_silhouette.png": "horse_silhouette",
    "none/prairie_falcon.jpg": "prairie_falcon",
}
ASTRONAUT = "eileen_collins"  # skimage.data.astronaut(); faces/open holds the same photograph
# Photographs that are crops of one shot: one photograph for folding.
SAME_SHOT = {"open/biden_oval_office.jpg": "open/two_people_obama_biden.jpg"}
HELD_OUT = frozenset({ASTRONAUT, "lin_manuel_miranda", "selfie", "cew_0030", "cew_0267", "cew_0957", "coffee",
                      "horse_silhouette"})

# Faces narrower than this (landmark extent, source pixels) are left out: too few pixels to align
# at SIZE. Grace Hopper's 128 px portrait (a 47 px face) is just above it, a blurry but real face.
MIN_FACE_PX = 40

# An artifact counts once it changes this many pixels by more than VISIBLE_STEP (R+G+B): an 8x8
# patch of a 256 px crop, about half an iris the lids leave open; drawn again up to REDRAWS times.
MIN_VISIBLE_PX = 64
VISIBLE_STEP = 30
REDRAWS = 5

# Skin landmarks a crater is centred on: both cheeks, the forehead, the chin.
CRATER_POINTS = (205, 425, 50, 280, 151, 199)


@dataclass(frozen=True, eq=False)
class ProxyItem:
    image: np.ndarray = field(repr=False)  # SIZE x SIZE x 3 uint8 RGB
    source: str  # the photograph (or person) it came from
    artifact: str  # "none" for a good item, else one of ARTIFACTS
    split: str  # "train" or "held_out"
    photo: str = ""  # the photograph it was cropped from (crops of one shot share one)

    @property
    def good(self) -> bool:
        return self.artifact == "none"


@dataclass(frozen=True, eq=False)
class _Face:
    source: str
    photo: str
    rgb: np.ndarray = field(repr=False)
    landmarks: np.ndarray = field(repr=False)  # (478, 3) in rgb pixels
    closed: bool


def split_of(source: str) -> str:
    return "held_out" if source in HELD_OUT else "train"


@functools.cache
def _sources(root: Path) -> tuple[list[_Face], list[tuple[str, np.ndarray]]]:
    """Every face of the source photographs, and the face-free photographs."""
    from qa.eyes import load_upright

    faces: list[_Face] = []
    empty: list[tuple[str, np.ndarray]] = []
    images = []
    try:
        from skimage import data

        images.append((ASTRONAUT, ASTRONAUT, data.astronaut(), False))
    except ImportError:  # scikit-image missing: the test data's copy of the portrait stands in
        images.append((ASTRONAUT, ASTRONAUT, load_upright(root / "faces" / "open" / "astronaut_eileen_collins.png"), False))
    for name, source in SOURCES.items():
        path = root / "faces" / name
        if path.is_file():
            images.append((source, SAME_SHOT.get(name, name), load_upright(path),
                           name.startswith("closed/") or name.startswith("none/")))
    for source, photo, rgb, flag in images:
        if source in {s for n, s in SOURCES.items() if n.startswith("none/")}:
            empty.append((source, rgb))
            continue
        for finding in find_faces(rgb):
            if finding.box[2] - finding.box[0] >= MIN_FACE_PX:
                faces.append(_Face(source, photo, rgb, np.asarray(finding.landmarks, np.float64), closed=flag))
    return faces, empty


def _jitter(rng: np.random.Generator, quad: np.ndarray, *, shift: float, turn: float, scale: float) -> np.ndarray:
    centre = quad.mean(axis=0)
    angle = np.deg2rad(rng.uniform(-turn, turn))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    side = float(np.linalg.norm(quad[3] - quad[0]))
    offset = rng.uniform(-shift, shift, 2) * side
    return (quad - centre) @ rotation.T * rng.uniform(1 - scale, 1 + scale) + centre + offset


@dataclass(frozen=True)
class Light:
    """A relighting of a crop: overall gain, a gamma (contrast), a white balance (per-channel gains)
    and a light falling off linearly to one side (``fall`` of the gain lost across the crop)."""

    gain: float = 1.0
    gamma: float = 1.0
    balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fall: float = 0.0
    angle: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Light:
        balance = np.exp(rng.normal(0.0, 0.05, 3))
        return cls(gain=float(rng.uniform(0.8, 1.15)), gamma=float(rng.uniform(0.85, 1.2)),
                   balance=(float(balance[0]), float(balance[1]), float(balance[2])),
                   fall=float(rng.uniform(0.0, 0.35)) if rng.random() < 0.6 else 0.0,
                   angle=float(rng.uniform(0.0, 2 * np.pi)))

    def apply(self, crop: np.ndarray) -> np.ndarray:
        if self == Light():
            return crop
        rgb = (crop.astype(np.float32) / 255.0) ** self.gamma * 255.0
        gain = np.asarray(self.balance, np.float32) * self.gain
        if self.fall:
            yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE - 0.5
            ramp = (xx * np.cos(self.angle) + yy * np.sin(self.angle)) * self.fall  # -fall/2 .. fall/2 across
            rgb *= (1.0 - ramp)[..., None]
        return np.clip(rgb * gain + 0.5, 0, 255).astype(np.uint8)


def _crop(face: _Face, quad: np.ndarray, *, flip: bool, light: Light | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The aligned crop of ``quad``, relit, and the face's landmarks (x, y) in its pixels."""
    crop = align_face(face.rgb, quad, SIZE)
    matrix = cv2.getAffineTransform(quad[:3].astype(np.float32),
                                    np.array([[0, 0], [0, SIZE], [SIZE, SIZE]], np.float32))
    pts = face.landmarks[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    if light is not None:
        crop = light.apply(crop)
    if flip:
        crop = np.ascontiguousarray(crop[:, ::-1])
        pts = np.column_stack([SIZE - pts[:, 0], pts[:, 1]])
    return crop, pts


def _feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma), 0.0, 1.0)[..., None]


def _blend(base: np.ndarray, top: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = base.astype(np.float32) * (1 - alpha) + top.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _crater(rng: np.random.Generator, crop: np.ndarray, pts: np.ndarray) -> np.ndarray:
    eye_gap = float(np.linalg.norm(pts[list(LEFT_EYE)].mean(0) - pts[list(RIGHT_EYE)].mean(0)))
    centre = pts[int(rng.choice(CRATER_POINTS))] + rng.uniform(-0.05, 0.05, 2) * eye_gap
    radius = rng.uniform(0.10, 0.18) * eye_gap
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    d2 = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / radius**2
    dip = np.exp(-d2 * 1.5)[..., None]  # soft edge: a Gaussian dip, no hard rim
    depth = rng.uniform(0.45, 0.7)
    tint = np.array([1.0, 0.9, 0.85])  # slightly brown, as blotches in GAN skin are
    return np.clip(crop.astype(np.float32) * (1 - depth * dip * tint), 0, 255).astype(np.uint8)


def _smear(rng: np.random.Generator, crop: np.ndarray, pts: np.ndarray) -> np.ndarray:
    face = face_mask(pts, 1.25)
    side = int(rng.uniform(0.24, 0.34) * SIZE)
    # A patch that lies (almost) wholly in the background, drawn among every such place (a grid of
    # eighth-patch steps); where there is none, the place least on the face.
    spots = [(x, y) for y in range(0, SIZE - side + 1, max(1, side // 8)) for x in range(0, SIZE - side + 1, max(1, side // 8))]
    cover = np.array([face[y:y + side, x:x + side].mean() for x, y in spots])
    free = np.flatnonzero(cover < 0.05)
    x, y = spots[int(rng.choice(free)) if len(free) else int(cover.argmin())]
    length = int(rng.uniform(0.08, 0.14) * SIZE) | 1
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    angle = rng.uniform(0, 180)
    kernel = np.asarray(cv2.warpAffine(kernel, cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0),
                            (length, length)), np.float32)
    kernel /= kernel.sum()
    smeared = cv2.filter2D(cv2.GaussianBlur(crop, (0, 0), 2.0), -1, kernel, borderType=cv2.BORDER_REFLECT)
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[y:y + side, x:x + side] = 1.0
    alpha = _feather(mask, side * 0.08) * (1 - _feather(face, 3.0))
    return _blend(crop, smeared, alpha)


def _eye_region(pts: np.ndarray, eye: tuple[int, ...], grow: float = 1.0) -> np.ndarray:
    p = pts[list(eye)]
    centre = p.mean(axis=0)
    width = float(np.linalg.norm(p[0] - p[3]))
    mask = np.zeros((SIZE, SIZE), np.float32)
    axes = (max(2, int(width * 0.75 * grow)), max(2, int(width * 0.5 * grow)))
    angle = float(np.degrees(np.arctan2(*(p[3] - p[0])[::-1])))
    cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))), axes, angle, 0, 360, (1.0,), -1)
    return mask


def _sides(pts: np.ndarray) -> list[tuple[int, ...]]:
    """The two eyes' landmark indices, image left first (a mirrored crop swaps them)."""
    eyes = [RIGHT_EYE, LEFT_EYE]
    return sorted(eyes, key=lambda e: float(pts[list(e), 0].mean()))


def _paste_eye(base: np.ndarray, base_pts: np.ndarray, base_eye: tuple[int, ...], donor: np.ndarray,
               donor_pts: np.ndarray, donor_eye: tuple[int, ...], *, scale: float = 1.0) -> np.ndarray:
    """The donor's eye warped onto the base's (similarity on the eye contour), colour-matched."""
    src, dst = donor_pts[list(donor_eye)].astype(np.float32), base_pts[list(base_eye)].astype(np.float32)
    if scale != 1.0:
        c = dst.mean(axis=0)
        dst = (dst - c) * scale + c
    matrix, _ = cv2.estimateAffinePartial2D(src, dst)
    if matrix is None:
        return base
    warped = cv2.warpAffine(donor, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    region = _eye_region(base_pts, base_eye, 1.1 * scale) > 0
    if region.sum() > 8:
        # Match the donor's colour to the base around the eye, so the seam is not the giveaway.
        b, w = base[region].astype(np.float32), warped[region].astype(np.float32)
        warped = np.clip((warped.astype(np.float32) - w.mean(0)) / (w.std(0) + 1e-3) * b.std(0) + b.mean(0),
                         0, 255).astype(np.uint8)
    alpha = _feather(_eye_region(base_pts, base_eye, 1.1 * scale), 2.5)
    return _blend(base, warped, alpha)


def _recolour_iris(rng: np.random.Generator, crop: np.ndarray, pts: np.ndarray, eye: tuple[int, ...]) -> np.ndarray:
    iris = RIGHT_IRIS if eye == RIGHT_EYE else LEFT_IRIS
    ring = pts[iris + 1:iris + 5]
    radius = float(np.linalg.norm(ring[0] - ring[2]) + np.linalg.norm(ring[1] - ring[3])) / 4
    mask = np.zeros((SIZE, SIZE), np.float32)
    cv2.circle(mask, (int(round(pts[iris, 0])), int(round(pts[iris, 1]))), max(2, int(radius * 1.1)), (1.0,), -1)
    mask *= _eye_region(pts, eye, 0.9)  # only what the lids leave visible
    colours = np.array([[90, 160, 230], [110, 200, 120], [230, 230, 235], [200, 60, 40]], np.float32)
    colour = colours[int(rng.integers(len(colours)))]
    grey = crop.astype(np.float32).mean(axis=2, keepdims=True) / 128.0
    tinted = np.clip(grey * colour, 0, 255)
    return _blend(crop, tinted, _feather(mask, 1.0) * 0.9)


def _mismatch(rng: np.random.Generator, crop: np.ndarray, pts: np.ndarray, others: list[_Face]) -> np.ndarray:
    """One eye taken from another face (smaller or larger), or its iris recoloured."""
    side = int(rng.integers(2))
    eye = _sides(pts)[side]
    if others and rng.random() < 0.5:
        other = others[int(rng.integers(len(others)))]
        other_crop, other_pts = _crop(other, ffhq_quad(other.landmarks), flip=bool(rng.random() < 0.5))
        return _paste_eye(crop, pts, eye, other_crop, other_pts, _sides(other_pts)[side],
                          scale=float(rng.choice([0.75, 1.3])))
    return _recolour_iris(rng, crop, pts, eye)


def visible(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether an artifact changed enough of the crop for a reviewer to see it: at least
    MIN_VISIBLE_PX pixels by more than VISIBLE_STEP (summed over R, G and B)."""
    change = np.abs(after.astype(np.int16) - before.astype(np.int16)).sum(axis=2)
    return int((change > VISIBLE_STEP).sum()) >= MIN_VISIBLE_PX


def _visibly(rng: np.random.Generator, crop: np.ndarray, pts: np.ndarray, draw: Callable[..., np.ndarray],
             *extra: Any) -> np.ndarray | None:
    """``draw(rng, crop, pts, *extra)``, drawn again until it can be seen (a smear over a plain patch, a
    recoloured iris the lids hide): a bad face no reviewer could tell from the good one is not
    bad. Redraws use streams spawned from ``rng``, so the items drawn after it stay the same.
    None when no draw shows."""
    image = draw(rng, crop, pts, *extra)
    for child in rng.spawn(REDRAWS):
        if visible(crop, image):
            return image
        image = draw(child, crop, pts, *extra)
    return image if visible(crop, image) else None


def _items_for(rng: np.random.Generator, face: _Face, donors: list[_Face], others: list[_Face],
               count: int) -> Iterator[tuple[str, np.ndarray]]:
    quad0 = ffhq_quad(face.landmarks)
    for _ in range(count):
        flip, light = bool(rng.random() < 0.5), Light.draw(rng)
        quad = _jitter(rng, quad0, shift=0.02, turn=3.0, scale=0.03)
        crop, pts = _crop(face, quad, flip=flip, light=light)
        yield "none", crop
        drawn = {"crater": _visibly(rng, crop, pts, _crater), "smear": _visibly(rng, crop, pts, _smear)}
        donor = donors[int(rng.integers(len(donors)))]
        donor_crop, donor_pts = _crop(donor, ffhq_quad(donor.landmarks), flip=False)
        closed = crop
        for base_eye, donor_eye in zip(_sides(pts), _sides(donor_pts), strict=True):
            closed = _paste_eye(closed, pts, base_eye, donor_crop, donor_pts, donor_eye)
        drawn["closed_eye"] = closed
        drawn["mismatched_eyes"] = _visibly(rng, crop, pts, _mismatch, others)
        yield from ((artifact, image) for artifact, image in drawn.items() if image is not None)
        far = quad0.copy()
        kind = int(rng.integers(3))
        side_px = float(np.linalg.norm(quad0[3] - quad0[0]))
        if kind == 0:  # shifted
            angle = rng.uniform(0, 2 * np.pi)
            far = far + np.array([np.cos(angle), np.sin(angle)]) * rng.uniform(0.12, 0.2) * side_px
        elif kind == 1:  # turned
            a = np.deg2rad(rng.choice([-1, 1]) * rng.uniform(18, 30))
            c = far.mean(axis=0)
            far = (far - c) @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + c
        else:  # scaled
            c = far.mean(axis=0)
            far = (far - c) * float(rng.choice([rng.uniform(0.6, 0.72), rng.uniform(1.4, 1.6)])) + c
        yield "misaligned", _crop(face, far, flip=flip, light=light)[0]


def _empty_crops(rng: np.random.Generator, rgb: np.ndarray, count: int) -> Iterator[np.ndarray]:
    h, w = rgb.shape[:2]
    for _ in range(count):
        side = int(rng.uniform(0.5, 1.0) * min(h, w))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        yield cv2.resize(np.ascontiguousarray(rgb[y:y + side, x:x + side]), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def build_proxy_set(*, per_face: int = 8, per_empty: int = 6, seed: int = 0,
                    root: Path | None = None) -> list[ProxyItem]:
    """Every proxy item, deterministic for a seed: ``per_face`` jittered crops of each open-eyed
    face, each as it is and with every face artifact, and ``per_empty`` crops of each face-free
    photograph. Raises FileNotFoundError when the test data is missing."""
    root = root or testdata_dir()
    if not (root / "labels.csv").is_file():
        raise FileNotFoundError(f"test data not found at {root} (set LIKENESS_TESTDATA)")
    faces, empty = _sources(root)
    items: list[ProxyItem] = []
    for index, face in enumerate(faces):
        if face.closed:
            continue
        split = split_of(face.source)
        donors = [f for f in faces if f.closed and split_of(f.source) == split and f.source != face.source]
        others = [f for f in faces if not f.closed and split_of(f.source) == split and f.source != face.source]
        rng = np.random.default_rng([seed, index])
        for artifact, image in _items_for(rng, face, donors, others, per_face):
            items.append(ProxyItem(image, face.source, artifact, split, face.photo))
    for index, (source, rgb) in enumerate(empty):
        rng = np.random.default_rng([seed, 1000 + index])
        items += [ProxyItem(crop, source, "no_face", split_of(source), source) for crop in _empty_crops(rng, rgb, per_empty)]
    return items
