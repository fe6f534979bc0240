"""The human-face plausibility check on real faces, real non-faces and made-up look-alikes.

Real human faces: the shared faces/open, closed and crossed photos and the astronaut sample shoot.
Real non-human images: the shared faces/none photos and scikit-image's bundled images (the colour
wheel is one the face detector takes for a face). Made-up look-alikes, since no public-domain
set of them ships with anything we use: they are SYNTHETIC, built here from shared photos or
drawn with PIL (``synthetic_lookalikes``): cartoon faces, grey stone statues, halftone prints on
paper and oil paintings.

``-s`` prints the measures of every face and the false-accept and false-reject rates.
"""

from __future__ import annotations

import functools
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageOps
from sqlalchemy import func, select

from faces.detect import find_faces
from faces.plausibility import RANGES, Measure, Plausibility, check_face, frame_chroma
from likeness.workbench import Workbench


@functools.cache
def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    rgb.flags.writeable = False
    return rgb


def _human_paths(testdata_dir: Path) -> list[Path]:
    paths = sorted(p for label in ("open", "closed", "crossed") for p in (testdata_dir / "faces" / label).iterdir()
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(paths) >= 19
    return paths


# --- Synthetic look-alikes ------------------------------------------------------------------------


def cartoon(*, skin: tuple[int, int, int] = (236, 188, 150), background: tuple[int, int, int] = (200, 220, 240),
            hair: bool = False, size: int = 512) -> np.ndarray:
    """A drawn face: an oval head, eyes with irises and pupils, brows, a nose line and a smile."""
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    s = size / 512
    if hair:
        draw.ellipse([100 * s, 50 * s, 412 * s, 250 * s], fill=(90, 60, 30))
    draw.ellipse([116 * s, 76 * s, 396 * s, 436 * s], fill=skin, outline=(60, 40, 30), width=max(1, int(4 * s)))
    for cx in (196, 316):
        draw.ellipse([(cx - 34) * s, 200 * s, (cx + 34) * s, 244 * s], fill=(255, 255, 255), outline=(30, 30, 30),
                     width=max(1, int(3 * s)))
        draw.ellipse([(cx - 14) * s, 208 * s, (cx + 14) * s, 236 * s], fill=(60, 40, 20))
        draw.ellipse([(cx - 6) * s, 216 * s, (cx + 6) * s, 228 * s], fill=(0, 0, 0))
        draw.arc([(cx - 40) * s, 170 * s, (cx + 40) * s, 200 * s], 200, 340, fill=(60, 40, 30), width=max(1, int(6 * s)))
    draw.line([256 * s, 240 * s, 240 * s, 310 * s, 262 * s, 312 * s], fill=(150, 100, 80), width=max(1, int(4 * s)))
    draw.arc([196 * s, 300 * s, 316 * s, 380 * s], 20, 160, fill=(160, 40, 40), width=max(1, int(8 * s)))
    return np.asarray(image)


def statue(rgb: np.ndarray) -> np.ndarray:
    """The person turned to smooth grey stone (desaturated, flattened, contrast lowered), in the
    photo's own colour surroundings: a statue photographed where it stands."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    smooth: np.ndarray = cv2.bilateralFilter(grey, 9, 40, 9)
    grey = 150.0 + 0.55 * (smooth - smooth.mean())
    stone = np.clip(np.stack([grey * 1.02, grey, grey * 0.95], axis=-1), 0, 255)
    found = find_faces(np.ascontiguousarray(rgb))
    assert found, "statue() needs a photo with a face"
    mask: np.ndarray = np.zeros(rgb.shape[:2], np.uint8)
    for face in found:
        hull: np.ndarray = cv2.convexHull(face.landmarks[:, :2].astype(np.int32))
        cv2.fillConvexPoly(mask, hull, (255,))
        x0, y0, x1, y1 = face.box
        grow = int(0.25 * max(x1 - x0, y1 - y0)) | 1
        mask = cv2.dilate(mask, np.ones((grow, grow), np.uint8))
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 3.0)[..., None]
    return np.clip(alpha * stone + (1 - alpha) * rgb, 0, 255).astype(np.uint8)


def halftone_print(rgb: np.ndarray, *, cell: int = 5, border: int = 40) -> np.ndarray:
    """The photo printed with a rotated dot screen per channel, on cream paper with a margin."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for channel, angle in enumerate((15.0, 75.0, 0.0)):
        t = math.radians(angle)
        u = (xx * math.cos(t) + yy * math.sin(t)) % cell - cell / 2
        v = (-xx * math.sin(t) + yy * math.cos(t)) % cell - cell / 2
        r = np.sqrt(u * u + v * v) / (cell / 2 * math.sqrt(2))
        ink = 1.0 - rgb[..., channel] / 255.0
        out[..., channel] = np.where(r < np.sqrt(ink), 40.0, 245.0)
    blurred: np.ndarray = cv2.GaussianBlur(out, (0, 0), 0.6)
    paper = np.full((h + 2 * border, w + 2 * border, 3), (242, 238, 225), np.float32)
    paper[border:border + h, border:border + w] = blurred
    return np.clip(paper, 0, 255).astype(np.uint8)


def oil_painting(rgb: np.ndarray) -> np.ndarray:
    """Brush strokes about a 60th of the short edge, with quantised tones (OpenCV's oil filter)."""
    size = max(5, min(rgb.shape[:2]) // 60)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    return np.ascontiguousarray(cv2.xphoto.oilPainting(bgr, size, 1)[..., ::-1])


def synthetic_lookalikes(testdata_dir: Path) -> dict[str, np.ndarray]:
    faces = testdata_dir / "faces" / "open"
    astronaut = _load(faces / "astronaut_eileen_collins.png")
    obama = _load(faces / "obama_official_portrait_2012.jpg")
    selfie = _load(faces / "selfie_open_eyes.jpg")
    return {
        "cartoon_skin": cartoon(), "cartoon_hair": cartoon(hair=True),
        "cartoon_yellow": cartoon(skin=(250, 220, 40), background=(255, 255, 255)),
        "statue_astronaut": statue(astronaut), "statue_obama": statue(obama), "statue_selfie": statue(selfie),
        "print_astronaut": halftone_print(astronaut), "print_obama": halftone_print(obama, cell=6),
        "print_selfie": halftone_print(selfie),
        "painting_astronaut": oil_painting(astronaut), "painting_obama": oil_painting(obama),
        "painting_selfie": oil_painting(selfie),
    }


def real_non_human(testdata_dir: Path) -> dict[str, np.ndarray]:
    from skimage import data as skdata

    images = {f"none/{p.name}": _load(p) for p in sorted((testdata_dir / "faces" / "none").iterdir())}
    for name in ("chelsea", "coffee", "rocket", "horse", "colorwheel", "brick", "clock", "coins", "logo"):
        image = np.asarray(getattr(skdata, name)())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.dtype != np.uint8:
            image = (255 * (image.astype(np.float64) / image.max())).astype(np.uint8)
        images[f"skimage/{name}"] = np.ascontiguousarray(image[..., :3])
    return images


def _check_all(images: dict[str, np.ndarray]) -> dict[str, list[Plausibility]]:
    return {key: [check_face(rgb, f.landmarks) for f in find_faces(rgb)] for key, rgb in images.items()}


def _report(title: str, results: dict[str, list[Plausibility]]) -> None:
    print(f"\n{title}")
    print(f"{'image':42s}" + " ".join(f"{n[:10]:>11s}" for n in RANGES))
    for key, found in results.items():
        shown: list[Plausibility | None] = list(found) or [None]
        for p in shown:
            cells = ("  (no face)" if p is None else
                     " ".join(f"{m.value:10.3f}{'*' if not m.passed else ' '}" for m in p.measures))
            print(f"{key[:42]:42s}{cells}")


# --- Unit checks of the measures ------------------------------------------------------------------


def test_measure_passes_inside_its_range_only() -> None:
    assert Measure("m", 0.5, 0.1, 0.9).passed
    assert not Measure("m", 0.95, 0.1, 0.9).passed
    assert not Measure("m", float("nan"), 0.1, 0.9).passed
    assert Measure("m", 0.95, 0.1, 0.9, applies=False).passed


def test_failing_face_names_measure_value_and_threshold(testdata_dir: Path) -> None:
    drawn = cartoon()
    found = find_faces(drawn)
    assert len(found) == 1  # the detector takes the drawing for a face: the reason for this check
    result = check_face(drawn, found[0].landmarks)
    assert not result.passed
    assert "skin_texture" in {m.name for m in result.failed}
    texture = next(m for m in result.failed if m.name == "skin_texture")
    assert f"skin_texture = {texture.value:.3g} (needs {texture.threshold})" in result.describe()
    payload = result.to_json()
    assert payload["passed"] is False and {c["name"] for c in payload["checks"]} == set(RANGES)


def test_monochrome_frame_skips_colour_measures_only(testdata_dir: Path) -> None:
    rgb = _load(testdata_dir / "faces/open/astronaut_eileen_collins.png")
    grey = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert frame_chroma(grey) < 1.0 < frame_chroma(rgb)
    result = check_face(grey, find_faces(grey)[0].landmarks)
    skipped = {m.name for m in result.measures if not m.applies}
    assert skipped == {"skin_chroma", "skin_hue"}


def test_geometry_of_a_broken_mesh_fails(testdata_dir: Path) -> None:
    rgb = _load(testdata_dir / "faces/open/astronaut_eileen_collins.png")
    pts = find_faces(rgb)[0].landmarks.copy()
    pts[468] = pts[468] + [0.0, 40.0, 0.0]  # right iris moved down onto the cheek
    failed = {m.name for m in check_face(rgb, pts).failed}
    assert "iris_offset" in failed


# --- Rates over the whole sets --------------------------------------------------------------------


def test_every_shared_human_face_is_plausible(testdata_dir: Path) -> None:
    results = _check_all({f"{p.parent.name}/{p.name}": _load(p) for p in _human_paths(testdata_dir)})
    _report("human faces (shared test data)", results)
    faces = [(key, p) for key, found in results.items() for p in found]
    rejected = [(key, p.describe()) for key, p in faces if not p.passed]
    print(f"false-reject rate: {len(rejected)}/{len(faces)} faces in {len(results)} images")
    assert all(results.values()), [k for k, v in results.items() if not v]
    assert rejected == []


def test_no_non_human_image_yields_a_plausible_face(testdata_dir: Path) -> None:
    images = {**real_non_human(testdata_dir), **{f"synthetic/{k}": v for k, v in synthetic_lookalikes(testdata_dir).items()}}
    results = _check_all(images)
    _report("non-human images (real, and synthetic look-alikes)", results)
    accepted = sorted(key for key, found in results.items() if any(p.passed for p in found))
    detected = sum(1 for found in results.values() if found)
    print(f"false-accept rate: {len(accepted)}/{len(results)} images "
          f"({detected} of them hold something the detector takes for a face)")
    assert accepted == []
    # The check must matter: the detector alone takes look-alikes of every class for faces.
    for kind in ("cartoon", "statue", "print", "painting"):
        assert any(found for key, found in results.items() if key.startswith(f"synthetic/{kind}")), kind
    assert results["skimage/colorwheel"], "the detector no longer sees a face in the colour wheel"


def test_every_sample_shoot_frame_is_plausible(tmp_path: Path) -> None:
    from ingest.decode import decode_frame
    from samples.shoot import build_sample_shoot

    shoot = build_sample_shoot(tmp_path / "shoot", n_good=8, include_bad=False)
    results = _check_all({rel: decode_frame(shoot.path / rel, max_pixels=50_000_000).rgb for rel in shoot.good_frames})
    _report("human faces (astronaut sample shoot, every framing, exposure and white balance)", results)
    assert all(len(found) == 1 for found in results.values()), results
    assert [(key, p.describe()) for key, found in results.items() for p in found if not p.passed] == []


# --- Through the real ingest of a shoot folder -----------------------------------------------------


def test_ingest_accepts_human_faces_and_quarantines_look_alikes(workbench: Workbench, testdata_dir: Path,
                                                                tmp_path: Path) -> None:
    from ingest import api
    from likeness.models import Face, Shot, ShotStatus
    from tests.factories.people import register_sitter
    from tests.factories.shoots import write_shoot_toml

    shoot = tmp_path / "lookalike-shoot"
    write_shoot_toml(shoot, name="lookalikes", sitters=["P0001"])
    sitter = shoot / "P0001"
    sitter.mkdir()
    humans = [p for p in _human_paths(testdata_dir) if "two_people" not in p.name]  # two faces: several_faces
    for path in humans:
        shutil.copy(path, sitter / f"human_{path.parent.name}_{path.name}")
    lookalikes = {**synthetic_lookalikes(testdata_dir), "colorwheel": real_non_human(testdata_dir)["skimage/colorwheel"]}
    for name, rgb in lookalikes.items():
        Image.fromarray(rgb).save(sitter / f"fake_{name}.png")
    register_sitter(workbench, tmp_path)
    api.ingest_folder(workbench=workbench, path=shoot, actor="test", workers=0)
    with workbench.db.unit_of_work() as session:
        rows = {Path(r.relative_path).name: r for r in session.execute(
            select(Shot.relative_path, Shot.status, Shot.reason, Shot.reason_detail, Shot.face_count))}
        faces_of_fakes = session.scalar(
            select(func.count()).select_from(Face).join(Shot).where(Shot.relative_path.like("%fake_%")))
    fakes = {name: row for name, row in rows.items() if name.startswith("fake_")}
    real = {name: row for name, row in rows.items() if name.startswith("human_")}
    assert len(fakes) == len(lookalikes) and len(real) == len(humans)
    assert [n for n, r in fakes.items() if r.status is ShotStatus.accepted] == []
    assert all(r.reason == "no_face" and r.face_count == 0 for r in fakes.values()), fakes
    assert faces_of_fakes == 0  # no face rows, so no crops for review or datasets
    # Where the detector saw something, the detail names the failing measure, value and range.
    cartoon_detail = fakes["fake_cartoon_skin.png"].reason_detail
    assert "is not a human face" in cartoon_detail and "skin_texture = " in cartoon_detail
    assert "(needs 0.12..5)" in cartoon_detail
    # Every human frame keeps its one face; some JPEGs' cameras dated them years before the shoot,
    # which quarantines them for the date alone.
    assert {n: r.face_count for n, r in real.items() if r.face_count != 1} == {}
    assert {n: r.reason for n, r in real.items()
            if r.status is not ShotStatus.accepted and r.reason != "capture_date_mismatch"} == {}
    assert sum(r.status is ShotStatus.accepted for r in real.values()) >= 10
