"""Build a demo shoot folder of real DNG captures from a real portrait.

The portrait is ``skimage.data.astronaut()`` (Eileen Collins, bundled with
scikit-image). Each good frame re-frames it the way a session in the studio
would vary: different face position and size on a studio-grey backdrop,
exposure between -1 and +1 EV, different as-shot white balance, and a portrait
(camera rotated) frame stored with ``Orientation = 6``. Optional "bad" files
exercise the ingest's failure paths.

Layout::

    <dest>/shoot.toml
    <dest>/<sitter>/frame_NN.dng ...
    <dest>/unsorted/frame_NN.dng        # mapped (or not) by frames.csv
    <dest>/frames.csv                   # file,sitter
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from samples.dng import write_dng

__all__ = ["SampleShoot", "build_sample_shoot", "render_portrait_frame"]

MAKE = "Likeness"
MODEL = "Studio Simulator"
SERIAL = "LKS-000142"
CAMERA = f"{MAKE} {MODEL}"
UNSORTED_DIR = "unsorted"

# Face box in astronaut() pixels as found by a face detector (x, y, w, h), and
# a looser head box (hair, chin, ears) that must stay inside every frame.
_FACE_BOX = (174.0, 68.0, 104.0, 104.0)
_HEAD_BOX = (150.0, 20.0, 160.0, 215.0)

_BACKDROP_GREY = 118  # mid studio grey, sRGB code value

_SITTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

# Per-frame variation: (face centre x, y as fractions of the displayed frame,
# face width as a fraction of the frame's short edge, exposure EV, white
# balance multipliers, orientation). Cycled when more frames are requested.
_GOOD_PLANS: tuple[tuple[float, float, float, float, tuple[float, float, float], int], ...] = (
    (0.50, 0.42, 0.28, 0.0, (2.0, 1.0, 1.5), 1),
    (0.33, 0.45, 0.22, -0.7, (1.7, 1.0, 1.9), 1),
    (0.50, 0.38, 0.30, 0.4, (2.2, 1.0, 1.4), 6),
    (0.64, 0.47, 0.38, 1.0, (2.4, 1.0, 1.3), 1),
    (0.42, 0.40, 0.20, -1.0, (1.9, 1.0, 1.6), 1),
    (0.58, 0.52, 0.33, 0.3, (2.1, 1.0, 1.45), 1),
    (0.50, 0.45, 0.25, -0.4, (1.8, 1.0, 1.75), 6),
    (0.36, 0.40, 0.30, 0.6, (2.05, 1.0, 1.55), 1),
)


@dataclass(frozen=True)
class SampleShoot:
    """What :func:`build_sample_shoot` wrote; all paths relative to ``path`` (POSIX style)."""

    path: Path
    good_frames: list[str] = field(default_factory=list)
    no_face_frames: list[str] = field(default_factory=list)
    bad_files: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    unknown_sitter_frames: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _backdrop(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Studio paper backdrop: soft vertical fall-off plus a little grain."""
    yy = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    level = _BACKDROP_GREY * (1.05 - 0.12 * (xx**2 + 0.6 * yy**2))
    grain = rng.normal(0.0, 1.5, size=(height, width)).astype(np.float32)
    grey = np.clip(level + grain, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def render_portrait_frame(
    portrait: np.ndarray,
    size: tuple[int, int],
    *,
    face_centre: tuple[float, float],
    face_width: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Place a scaled ``portrait`` (astronaut) on a grey backdrop.

    ``size`` is the displayed (width, height); ``face_centre`` the wanted face
    centre as fractions of it; ``face_width`` the detector-box width as a
    fraction of the short edge. Both are adjusted as needed so the whole head
    stays in frame.
    """
    width, height = size
    fx, fy, fw, fh = _FACE_BOX
    hx, hy, hw, hh = _HEAD_BOX
    scale = face_width * min(width, height) / fw
    # The head must fit with a small margin.
    margin = 0.03 * min(width, height)
    scale = min(scale, (width - 2 * margin) / hw, (height - 2 * margin) / hh)

    face_cx, face_cy = fx + fw / 2, fy + fh / 2
    cx, cy = face_centre[0] * width, face_centre[1] * height
    # Head box in frame coordinates is [cx + (hx - face_cx) * s, ...]; clamp
    # the face centre so that box lies inside the margins.
    cx = float(np.clip(cx, margin - (hx - face_cx) * scale, width - margin - (hx + hw - face_cx) * scale))
    cy = float(np.clip(cy, margin - (hy - face_cy) * scale, height - margin - (hy + hh - face_cy) * scale))

    # Portrait's top-left corner in frame coordinates.
    left, top = cx - face_cx * scale, cy - face_cy * scale
    ph, pw = portrait.shape[:2]
    x0, y0 = max(0, int(np.ceil(left))), max(0, int(np.ceil(top)))
    x1, y1 = min(width, int(np.floor(left + pw * scale))), min(height, int(np.floor(top + ph * scale)))

    frame = _backdrop(width, height, rng)
    if x1 > x0 and y1 > y0:
        box = ((x0 - left) / scale, (y0 - top) / scale, (x1 - left) / scale, (y1 - top) / scale)
        patch = Image.fromarray(portrait).resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=box)
        frame[y0:y1, x0:x1] = np.asarray(patch)
    return frame


def _render_cover(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale-and-crop ``image`` to fill ``size`` (width, height)."""
    width, height = size
    ih, iw = image.shape[:2]
    scale = max(width / iw, height / ih)
    bw, bh = width / scale, height / scale
    bx, by = (iw - bw) / 2, (ih - bh) / 2
    out = Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS, box=(bx, by, bx + bw, by + bh))
    return np.asarray(out)


def _to_stored(display: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as the sensor records them, given how they should be displayed."""
    if orientation == 1:
        return display
    if orientation == 6:  # displayed = stored rotated 90 degrees clockwise
        return np.ascontiguousarray(np.rot90(display, k=1))
    if orientation == 8:
        return np.ascontiguousarray(np.rot90(display, k=-1))
    if orientation == 3:
        return np.ascontiguousarray(np.rot90(display, k=2))
    raise ValueError(f"unsupported orientation {orientation}")


# ---------------------------------------------------------------------------
# Shoot folder
# ---------------------------------------------------------------------------


def _shoot_toml(*, name: str, shoot_date: date, sitter: str, reference_frame: str | None) -> str:
    lines = [
        f'name = "{name}"',
        f"date = {shoot_date.isoformat()}",
        'studio = "Studio A"',
        'photographer = "demo"',
        f'camera = "{CAMERA}"',
        'lighting_preset = "butterfly-soft"',
        f'sitters = ["{sitter}"]',
    ]
    if reference_frame is not None:
        lines.append(f'reference_frame = "{reference_frame}"')
    return "\n".join(lines) + "\n"


def build_sample_shoot(
    dest: Path,
    *,
    sitter: str = "P0001",
    date: date = date(2026, 11, 20),
    n_good: int = 6,
    frame_size: tuple[int, int] = (1536, 1024),
    include_bad: bool = True,
    seed: int = 0,
) -> SampleShoot:
    """Write a demo shoot under ``dest`` and describe what is in it.

    ``frame_size`` is the sensor (width, height) of every frame; portrait
    frames are stored at that size with ``Orientation = 6``. ``good_frames``
    has ``n_good`` entries; when there are at least two, the last one lives in
    ``unsorted/`` and is assigned to the sitter by ``frames.csv``.
    With ``include_bad`` the shoot also gets a truncated DNG, an empty file,
    a text file named ``.dng``, a no-face frame, a byte-identical duplicate
    and an ``unsorted/`` frame that nothing assigns to a sitter.
    """
    from skimage import data as skdata  # imported lazily: only the demo needs the sample images

    dest = Path(dest)
    if not isinstance(sitter, str) or not _SITTER_RE.match(sitter) or sitter == UNSORTED_DIR:
        raise ValueError(f"invalid sitter code {sitter!r}: use letters, digits, '-' or '_'")
    if not isinstance(n_good, int) or n_good < 1:
        raise ValueError(f"n_good must be a positive integer, got {n_good!r}")
    try:
        width, height = (int(v) for v in frame_size)
    except (TypeError, ValueError):
        raise ValueError(f"frame_size must be (width, height), got {frame_size!r}") from None
    if width < 128 or height < 128 or width > 6000 or height > 6000:
        raise ValueError(f"frame_size must be between 128 and 6000 px per side, got {width}x{height}")
    if width % 2 or height % 2:
        raise ValueError(f"frame_size must be even (whole Bayer quads), got {width}x{height}")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"destination is not empty: {dest}")

    rng = np.random.default_rng(seed)
    portrait = skdata.astronaut()
    sitter_dir = dest / sitter
    sitter_dir.mkdir(parents=True, exist_ok=True)

    clock = datetime.combine(date, time(10, 0, 0))
    frame_no = 0

    def next_name(folder: str) -> str:
        nonlocal frame_no
        frame_no += 1
        return f"{folder}/frame_{frame_no:02d}.dng"

    def next_time() -> datetime:
        nonlocal clock
        clock += timedelta(seconds=int(rng.integers(4, 40)))
        return clock

    def write_portrait(rel: str, plan_index: int, jitter: bool = True) -> None:
        cx, cy, fwidth, ev, wb, orientation = _GOOD_PLANS[plan_index % len(_GOOD_PLANS)]
        if jitter and plan_index > 0:
            cx += float(rng.uniform(-0.04, 0.04))
            cy += float(rng.uniform(-0.03, 0.03))
            fwidth *= float(rng.uniform(0.92, 1.08))
            ev = float(np.clip(ev + rng.uniform(-0.1, 0.1), -1.0, 1.0))
            wb = (float(wb[0] * rng.uniform(0.96, 1.04)), wb[1], float(wb[2] * rng.uniform(0.96, 1.04)))
        display_size = (height, width) if orientation in (6, 8) else (width, height)
        display = render_portrait_frame(
            portrait, display_size, face_centre=(cx, cy), face_width=fwidth, rng=rng
        )
        write_dng(
            dest / rel,
            _to_stored(display, orientation),
            make=MAKE,
            model=MODEL,
            white_balance=wb,
            exposure_ev=ev,
            orientation=orientation,
            capture_time=next_time(),
            iso=int(rng.choice([100, 100, 200])),
            exposure_time=(1, int(rng.choice([125, 160, 200]))),
            f_number=float(rng.choice([5.6, 8.0, 11.0])),
            focal_length=85.0,
            serial=SERIAL,
        )

    good: list[str] = []
    no_face: list[str] = []
    bad: dict[str, str] = {}
    duplicates: list[str] = []
    unknown: list[str] = []
    mapping: list[tuple[str, str]] = []

    n_in_folder = n_good - 1 if n_good >= 2 else n_good
    for i in range(n_in_folder):
        rel = next_name(sitter)
        write_portrait(rel, i)
        good.append(rel)

    if include_bad:
        # A test shot of the set dressing: decodes, but nobody in it.
        rel = next_name(sitter)
        write_dng(
            dest / rel,
            _render_cover(skdata.coffee(), (width, height)),
            make=MAKE,
            model=MODEL,
            white_balance=(1.9, 1.0, 1.6),
            capture_time=next_time(),
            serial=SERIAL,
        )
        no_face.append(rel)

        # A copy interrupted part-way: headers intact, pixel data cut short.
        rel = next_name(sitter)
        write_portrait(rel, n_in_folder)
        blob = (dest / rel).read_bytes()
        (dest / rel).write_bytes(blob[: int(len(blob) * 0.4)])
        bad[rel] = "truncated"

        rel = f"{sitter}/empty.dng"
        (dest / rel).write_bytes(b"")
        bad[rel] = "empty"

        rel = f"{sitter}/notes.dng"
        (dest / rel).write_text(
            "Shoot notes\n- key light 45 deg camera left, soft box\n- re-shoot P0001 if eyes closed\n",
            encoding="utf-8",
        )
        bad[rel] = "not_an_image"

        # A card copied twice: same bytes, new name.
        source = good[1] if len(good) > 1 else good[0]
        rel = source[: -len(".dng")] + "_copy.dng"
        shutil.copyfile(dest / source, dest / rel)
        duplicates.append(rel)

    if n_good >= 2:
        (dest / UNSORTED_DIR).mkdir(exist_ok=True)
        rel = next_name(UNSORTED_DIR)
        write_portrait(rel, n_in_folder + 1)
        good.append(rel)
        mapping.append((rel, sitter))

    if include_bad:
        (dest / UNSORTED_DIR).mkdir(exist_ok=True)
        rel = next_name(UNSORTED_DIR)
        write_portrait(rel, n_in_folder + 2)
        unknown.append(rel)

    if mapping:
        with open(dest / "frames.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "sitter"])
            writer.writerows(mapping)

    (dest / "shoot.toml").write_text(
        _shoot_toml(name="demo-shoot", shoot_date=date, sitter=sitter, reference_frame=good[0]),
        encoding="utf-8",
    )

    return SampleShoot(
        path=dest,
        good_frames=good,
        no_face_frames=no_face,
        bad_files=bad,
        duplicates=duplicates,
        unknown_sitter_frames=unknown,
    )


# ---------------------------------------------------------------------------
# Release documents
# ---------------------------------------------------------------------------
