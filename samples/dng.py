"""Write Bayer DNG files from ordinary sRGB photographs.

The studio simulator and the test-suite need camera RAW files that go through
the same decoders as real captures (LibRaw via rawpy, exifread), so this
module renders a photograph into a genuine CFA mosaic and stores it with the
structure real cameras use:

* IFD0 is a reduced-resolution JPEG preview (``NewSubfileType = 1``) carrying
  the camera-level tags (Make, Model, Orientation, DNG colour tags, EXIF
  pointer).
* A SubIFD holds the full-resolution RGGB raw (``NewSubfileType = 0``,
  ``PhotometricInterpretation = CFA``), uncompressed 16-bit containers holding
  14-bit data above a black level.
* An EXIF IFD holds capture settings (DateTimeOriginal, ISO, exposure, ...).

The TIFF container is assembled directly rather than through tifffile because
tifffile cannot write an EXIF sub-IFD, which exifread needs to report
``EXIF DateTimeOriginal`` and friends.

Colour model: the camera's native space is linear sRGB, so ``ColorMatrix1`` is
the XYZ(D65) -> linear-sRGB matrix. The scene is divided by the as-shot white
balance multipliers before mosaicking, and ``AsShotNeutral`` records their
reciprocal, so a decoder applying the camera white balance restores the
original colours.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from likeness.files import atomic_output

__all__ = ["write_dng", "BLACK_LEVEL", "WHITE_LEVEL", "MAX_SIDE", "MIN_SIDE"]

BLACK_LEVEL = 512
WHITE_LEVEL = 16383  # 14-bit sensor
MAX_SIDE = 6000  # a 24 MP body, either way up
MIN_SIDE = 32  # LibRaw refuses frames smaller than ~22 px

VALID_ORIENTATIONS = (1, 3, 6, 8)

# XYZ (D65) -> linear sRGB (IEC 61966-2-1).
_XYZ_TO_SRGB = (
    (3.2404542, -1.5371385, -0.4985314),
    (-0.9692660, 1.8760108, 0.0415560),
    (0.0556434, -0.2040259, 1.0572252),
)

# TIFF field types.
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL = 1, 2, 3, 4, 5
_UNDEFINED, _SRATIONAL = 7, 10

# Tags used below.
_NEW_SUBFILE_TYPE = 254
_IMAGE_WIDTH = 256
_IMAGE_LENGTH = 257
_BITS_PER_SAMPLE = 258
_COMPRESSION = 259
_PHOTOMETRIC = 262
_MAKE = 271
_MODEL = 272
_STRIP_OFFSETS = 273
_ORIENTATION = 274
_SAMPLES_PER_PIXEL = 277
_ROWS_PER_STRIP = 278
_STRIP_BYTE_COUNTS = 279
_PLANAR_CONFIG = 284
_SOFTWARE = 305
_DATETIME = 306
_SUB_IFDS = 330
_YCBCR_SUBSAMPLING = 530
_YCBCR_POSITIONING = 531
_REFERENCE_BLACK_WHITE = 532
_CFA_REPEAT_PATTERN_DIM = 33421
_CFA_PATTERN = 33422
_EXPOSURE_TIME = 33434
_F_NUMBER = 33437
_EXIF_IFD = 34665
_EXPOSURE_PROGRAM = 34850
_ISO = 34855
_EXIF_VERSION = 36864
_DATETIME_ORIGINAL = 36867
_DATETIME_DIGITIZED = 36868
_OFFSET_TIME = 36880
_OFFSET_TIME_ORIGINAL = 36881
_FOCAL_LENGTH = 37386
_BODY_SERIAL = 42033
_DNG_VERSION = 50706
_DNG_BACKWARD_VERSION = 50707
_UNIQUE_CAMERA_MODEL = 50708
_CFA_PLANE_COLOR = 50710
_CFA_LAYOUT = 50711
_BLACK_LEVEL_REPEAT_DIM = 50713
_BLACK_LEVEL = 50714
_WHITE_LEVEL = 50717
_DEFAULT_CROP_ORIGIN = 50719
_DEFAULT_CROP_SIZE = 50720
_COLOR_MATRIX_1 = 50721
_AS_SHOT_NEUTRAL = 50728
_CAMERA_SERIAL = 50735
_CALIBRATION_ILLUMINANT_1 = 50778
_PREVIEW_COLOR_SPACE = 50970

_ILLUMINANT_D65 = 21


# ---------------------------------------------------------------------------
# Minimal little-endian TIFF serialisation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    tag: int
    type: int
    count: int
    data: bytes  # packed little-endian value(s)


def _shorts(tag: int, *values: int) -> _Entry:
    return _Entry(tag, _SHORT, len(values), struct.pack(f"<{len(values)}H", *values))


def _longs(tag: int, *values: int) -> _Entry:
    return _Entry(tag, _LONG, len(values), struct.pack(f"<{len(values)}I", *values))


def _bytes(tag: int, *values: int) -> _Entry:
    return _Entry(tag, _BYTE, len(values), bytes(values))


def _undefined(tag: int, data: bytes) -> _Entry:
    return _Entry(tag, _UNDEFINED, len(data), data)


def _ascii(tag: int, text: str) -> _Entry:
    raw = text.encode("ascii", "replace") + b"\x00"
    return _Entry(tag, _ASCII, len(raw), raw)


def _rationals(tag: int, *values: float | tuple[int, int], signed: bool = False) -> _Entry:
    packed = b""
    for value in values:
        if isinstance(value, tuple):
            num, den = value
        else:
            frac = Fraction(value).limit_denominator(1_000_000)
            num, den = frac.numerator, frac.denominator
        packed += struct.pack("<ii" if signed else "<II", num, den)
    return _Entry(tag, _SRATIONAL if signed else _RATIONAL, len(values), packed)


def _ifd_size(entries: list[_Entry]) -> int:
    size = 2 + 12 * len(entries) + 4
    for e in entries:
        if len(e.data) > 4:
            size += len(e.data) + (len(e.data) & 1)
    return size


def _serialise_ifd(entries: list[_Entry], offset: int, next_ifd: int = 0) -> bytes:
    """Serialise an IFD placed at ``offset``; overflow values follow the entry table."""
    entries = sorted(entries, key=lambda e: e.tag)
    tags = [e.tag for e in entries]
    assert len(set(tags)) == len(tags), "duplicate TIFF tag"
    table = bytearray(struct.pack("<H", len(entries)))
    overflow = bytearray()
    overflow_start = offset + 2 + 12 * len(entries) + 4
    for e in entries:
        table += struct.pack("<HHI", e.tag, e.type, e.count)
        if len(e.data) <= 4:
            table += e.data.ljust(4, b"\x00")
        else:
            table += struct.pack("<I", overflow_start + len(overflow))
            overflow += e.data
            if len(e.data) & 1:
                overflow += b"\x00"  # keep values word-aligned
    table += struct.pack("<I", next_ifd)
    out = bytes(table + overflow)
    assert len(out) == _ifd_size(entries)
    return out


# ---------------------------------------------------------------------------
# Pixel pipeline
# ---------------------------------------------------------------------------

_SRGB_CODES = np.arange(256, dtype=np.float64) / 255.0
_SRGB_TO_LINEAR = np.where(
    _SRGB_CODES <= 0.04045, _SRGB_CODES / 12.92, ((_SRGB_CODES + 0.055) / 1.055) ** 2.4
)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _channel_luts(exposure_ev: float, multipliers: np.ndarray) -> list[np.ndarray]:
    """Per-channel uint8 sRGB code -> raw DN lookup tables.

    Every step (linearise, expose, undo white balance, scale to the sensor
    range, add black, clip) is per channel and per code value, so a 256-entry
    table replaces all per-pixel float arithmetic.
    """
    gain = 2.0 ** exposure_ev
    span = WHITE_LEVEL - BLACK_LEVEL
    luts = []
    for mult in multipliers:
        signal = _SRGB_TO_LINEAR * gain / mult
        dn = np.clip(np.rint(BLACK_LEVEL + signal * span), BLACK_LEVEL, WHITE_LEVEL)
        luts.append(dn.astype(np.uint16))
    return luts


def _mosaic_rggb(rgb: np.ndarray, luts: list[np.ndarray]) -> np.ndarray:
    h, w, _ = rgb.shape
    cfa = np.empty((h, w), dtype="<u2")
    lut_r, lut_g, lut_b = luts
    cfa[0::2, 0::2] = lut_r[rgb[0::2, 0::2, 0]]
    cfa[0::2, 1::2] = lut_g[rgb[0::2, 1::2, 1]]
    cfa[1::2, 0::2] = lut_g[rgb[1::2, 0::2, 1]]
    cfa[1::2, 1::2] = lut_b[rgb[1::2, 1::2, 2]]
    return cfa


def _preview_jpeg(rgb: np.ndarray, long_edge: int, exposure_ev: float) -> tuple[bytes, int, int]:
    """Camera-style preview: the developed (white-balanced, exposed) frame as JPEG."""
    h, w, _ = rgb.shape
    scale = min(1.0, long_edge / max(h, w))
    pw, ph = max(1, round(w * scale)), max(1, round(h * scale))
    img = Image.fromarray(rgb)
    if (pw, ph) != (w, h):
        img = img.resize((pw, ph), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if exposure_ev != 0.0:
        lut = np.rint(_linear_to_srgb(_SRGB_TO_LINEAR * 2.0 ** exposure_ev) * 255.0).astype(np.uint8)
        img = Image.fromarray(lut[np.asarray(img)])
    buf = io.BytesIO()
    # 4:2:0 matches the YCbCrSubSampling tag written for the preview IFD.
    img.save(buf, format="JPEG", quality=90, subsampling=2)
    return buf.getvalue(), pw, ph


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _validate_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"rgb must be a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 sRGB, got dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    # Bayer quads need even dimensions; drop a trailing row/column.
    h, w = h - (h & 1), w - (w & 1)
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"image too small for a raw frame: {w}x{h} (minimum {MIN_SIDE}x{MIN_SIDE})")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"image too large: {w}x{h} (maximum {MAX_SIDE} px per side)")
    return rgb[:h, :w]


def _validate_text(name: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be ASCII (TIFF ASCII field): {value!r}") from None
    return value


def _as_float(name: str, value: float, *, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or (positive and number <= 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return number


def _as_ratio(name: str, value: tuple[int, int]) -> tuple[int, int]:
    try:
        num, den = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (numerator, denominator) pair, got {value!r}") from None
    if num <= 0 or den <= 0:
        raise ValueError(f"{name} must be positive, got {num}/{den}")
    return num, den


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def write_dng(
    path: Path,
    rgb: np.ndarray,
    *,
    make: str = "Likeness",
    model: str = "Studio Simulator",
    white_balance: tuple[float, float, float] = (2.0, 1.0, 1.5),
    exposure_ev: float = 0.0,
    orientation: int = 1,
    capture_time: datetime | None = None,
    iso: int = 100,
    exposure_time: tuple[int, int] = (1, 125),
    f_number: float = 8.0,
    focal_length: float = 85.0,
    serial: str | None = None,
    preview_size: int | None = 1024,
) -> None:
    """Render an sRGB photograph as an RGGB Bayer DNG at ``path``.

    ``white_balance`` are the as-shot camera multipliers (R, G, B): the scene
    is divided by them before mosaicking, so decoding with the camera white
    balance restores the original colours. ``exposure_ev`` brightens or darkens
    the scene (highlights clip at the sensor white level). ``orientation`` is
    the TIFF/EXIF orientation tag; pixels are stored as given. Odd widths or
    heights are cropped by one pixel to keep whole Bayer quads.
    """
    path = Path(path)
    rgb = _validate_rgb(rgb)
    h, w = rgb.shape[:2]

    make = _validate_text("make", make)
    model = _validate_text("model", model)
    if serial is not None:
        serial = _validate_text("serial", serial)
    try:
        multipliers = np.array([float(v) for v in white_balance], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"white_balance must be three numbers, got {white_balance!r}") from None
    if multipliers.shape != (3,) or not np.all(np.isfinite(multipliers)) or np.any(multipliers <= 0):
        raise ValueError(f"white_balance must be three positive finite numbers, got {white_balance!r}")
    exposure_ev = _as_float("exposure_ev", exposure_ev)
    if abs(exposure_ev) > 10:
        raise ValueError(f"exposure_ev must be within [-10, 10], got {exposure_ev!r}")
    if orientation not in VALID_ORIENTATIONS:
        raise ValueError(f"orientation must be one of {VALID_ORIENTATIONS}, got {orientation!r}")
    if capture_time is not None and not isinstance(capture_time, datetime):
        raise ValueError(f"capture_time must be a datetime, got {type(capture_time).__name__}")
    if isinstance(iso, bool) or not isinstance(iso, (int, np.integer)) or not 1 <= iso <= 65535:
        raise ValueError(f"iso must be an integer in [1, 65535], got {iso!r}")
    exposure_time = _as_ratio("exposure_time", exposure_time)
    f_number = _as_float("f_number", f_number, positive=True)
    focal_length = _as_float("focal_length", focal_length, positive=True)
    if preview_size is not None and (not isinstance(preview_size, (int, np.integer)) or preview_size < 16):
        raise ValueError(f"preview_size must be None or an integer >= 16, got {preview_size!r}")

    # LibRaw scales so the smallest multiplier is 1; normalising the same way
    # keeps an unexposed white at or below the sensor white level.
    multipliers = multipliers / multipliers.min()
    neutral = 1.0 / multipliers
    neutral = neutral / neutral.max()

    cfa = _mosaic_rggb(rgb, _channel_luts(exposure_ev, multipliers))
    raw_bytes = cfa.data.cast("B")

    preview = None
    if preview_size is not None:
        preview = _preview_jpeg(rgb, int(preview_size), exposure_ev)

    when = capture_time or datetime.now()
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    unique_model = f"{make} {model}"

    # --- EXIF IFD ---------------------------------------------------------
    exif_entries = [
        _rationals(_EXPOSURE_TIME, exposure_time),
        _rationals(_F_NUMBER, float(f_number)),
        _shorts(_EXPOSURE_PROGRAM, 1),  # manual, as in a studio
        _shorts(_ISO, int(iso)),
        _undefined(_EXIF_VERSION, b"0231"),
        _ascii(_DATETIME_ORIGINAL, stamp),
        _ascii(_DATETIME_DIGITIZED, stamp),
        _rationals(_FOCAL_LENGTH, float(focal_length)),
    ]
    offset = when.utcoffset() if when.tzinfo is not None else None
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        tz_text = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        exif_entries += [_ascii(_OFFSET_TIME, tz_text), _ascii(_OFFSET_TIME_ORIGINAL, tz_text)]
    if serial is not None:
        exif_entries.append(_ascii(_BODY_SERIAL, serial))

    # --- raw image tags ---------------------------------------------------
    # Strip offsets/lengths are fixed-size fields, so every IFD's size is
    # known before the final offsets are.
    def raw_tags(strip_offset: int) -> list[_Entry]:
        return [
            _longs(_NEW_SUBFILE_TYPE, 0),
            _longs(_IMAGE_WIDTH, w),
            _longs(_IMAGE_LENGTH, h),
            _shorts(_BITS_PER_SAMPLE, 16),
            _shorts(_COMPRESSION, 1),
            _shorts(_PHOTOMETRIC, 32803),
            _longs(_STRIP_OFFSETS, strip_offset),
            _shorts(_ORIENTATION, orientation),
            _shorts(_SAMPLES_PER_PIXEL, 1),
            _longs(_ROWS_PER_STRIP, h),
            _longs(_STRIP_BYTE_COUNTS, len(raw_bytes)),
            _shorts(_PLANAR_CONFIG, 1),
            _shorts(_CFA_REPEAT_PATTERN_DIM, 2, 2),
            _bytes(_CFA_PATTERN, 0, 1, 1, 2),  # RGGB
            _bytes(_CFA_PLANE_COLOR, 0, 1, 2),
            _shorts(_CFA_LAYOUT, 1),
            _shorts(_BLACK_LEVEL_REPEAT_DIM, 1, 1),
            _longs(_BLACK_LEVEL, BLACK_LEVEL),
            _longs(_WHITE_LEVEL, WHITE_LEVEL),
            _longs(_DEFAULT_CROP_ORIGIN, 0, 0),
            _longs(_DEFAULT_CROP_SIZE, w, h),
        ]

    # --- camera-level tags (always in IFD0; Orientation comes with the image
    # tags of whichever image IFD0 holds) -----------------------------------
    def camera_tags(exif_ifd: int) -> list[_Entry]:
        entries = [
            _ascii(_MAKE, make),
            _ascii(_MODEL, model),
            _ascii(_SOFTWARE, "Likeness DNG writer"),
            _ascii(_DATETIME, stamp),
            _longs(_EXIF_IFD, exif_ifd),
            _bytes(_DNG_VERSION, 1, 4, 0, 0),
            _bytes(_DNG_BACKWARD_VERSION, 1, 1, 0, 0),
            _ascii(_UNIQUE_CAMERA_MODEL, unique_model),
            _rationals(_COLOR_MATRIX_1, *(v for row in _XYZ_TO_SRGB for v in row), signed=True),
            _rationals(_AS_SHOT_NEUTRAL, *(float(v) for v in neutral)),
            _shorts(_CALIBRATION_ILLUMINANT_1, _ILLUMINANT_D65),
        ]
        if serial is not None:
            entries.append(_ascii(_CAMERA_SERIAL, serial))
        return entries

    def preview_tags(strip_offset: int, sub_ifd: int) -> list[_Entry]:
        assert preview is not None
        jpeg, pw, ph = preview
        return [
            _longs(_NEW_SUBFILE_TYPE, 1),
            _longs(_IMAGE_WIDTH, pw),
            _longs(_IMAGE_LENGTH, ph),
            _shorts(_BITS_PER_SAMPLE, 8, 8, 8),
            _shorts(_COMPRESSION, 7),
            _shorts(_PHOTOMETRIC, 6),  # YCbCr JPEG
            _longs(_STRIP_OFFSETS, strip_offset),
            _shorts(_ORIENTATION, orientation),
            _shorts(_SAMPLES_PER_PIXEL, 3),
            _longs(_ROWS_PER_STRIP, ph),
            _longs(_STRIP_BYTE_COUNTS, len(jpeg)),
            _shorts(_PLANAR_CONFIG, 1),
            _longs(_SUB_IFDS, sub_ifd),
            _shorts(_YCBCR_SUBSAMPLING, 2, 2),
            _shorts(_YCBCR_POSITIONING, 1),
            _rationals(_REFERENCE_BLACK_WHITE, 0, 255, 128, 255, 128, 255),
            _longs(_PREVIEW_COLOR_SPACE, 2),  # sRGB
        ]

    # Layout, metadata first as cameras do (a truncated copy keeps its headers):
    #   with preview:    header | IFD0 (preview) | SubIFD (raw) | EXIF | JPEG | raw
    #   without preview: header | IFD0 (raw) | EXIF | raw
    off_ifd0 = 8
    header = b"II" + struct.pack("<HI", 42, off_ifd0)
    if preview is not None:
        jpeg = preview[0]
        off_sub = off_ifd0 + _ifd_size(camera_tags(0) + preview_tags(0, 0))
        off_exif = off_sub + _ifd_size(raw_tags(0))
        off_preview = off_exif + _ifd_size(exif_entries)
        off_raw = off_preview + len(jpeg)
        off_raw += off_raw & 1
        blobs = [
            _serialise_ifd(camera_tags(off_exif) + preview_tags(off_preview, off_sub), off_ifd0),
            _serialise_ifd(raw_tags(off_raw), off_sub),
            _serialise_ifd(exif_entries, off_exif),
            jpeg,
        ]
    else:
        off_exif = off_ifd0 + _ifd_size(camera_tags(0) + raw_tags(0))
        off_raw = off_exif + _ifd_size(exif_entries)
        off_raw += off_raw & 1
        blobs = [
            _serialise_ifd(camera_tags(off_exif) + raw_tags(off_raw), off_ifd0),
            _serialise_ifd(exif_entries, off_exif),
        ]

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as fh:
        fh.write(header)
        for blob in blobs:
            fh.write(blob)
        if fh.tell() < off_raw:
            fh.write(b"\x00" * (off_raw - fh.tell()))
        fh.write(raw_bytes)
