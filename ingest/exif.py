"""Camera metadata: EXIF through exifread, with LibRaw's own parser where exifread finds nothing
(CIFF .CRW, some Kodak and CinemaDNG files carry no TIFF-style Make/Model)."""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import exifread

log = logging.getLogger(__name__)

# Tags kept verbatim in Shot.exif: enough to audit a frame without the maker notes' noise.
_KEPT_PREFIXES = ("Image ", "EXIF ", "GPS ")
_MAX_VALUE_LEN = 200


@dataclass
class CameraMetadata:
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    serial: str | None = None
    iso: float | None = None
    shutter_s: float | None = None
    aperture: float | None = None
    focal_length_mm: float | None = None
    captured_at: dt.datetime | None = None
    orientation: int = 1
    tags: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    try:
        first = value.values[0] if hasattr(value, "values") and isinstance(value.values, list) else value
        number = float(Fraction(str(first))) if not isinstance(first, (int, float)) else float(first)
    except (ValueError, ZeroDivisionError, IndexError, TypeError):
        return None
    return number if number > 0 else None


def _text(value: Any) -> str | None:
    text = str(value).strip().strip("\x00").strip() if value is not None else ""
    return text or None


def _datetime(value: Any) -> dt.datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        return dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def read_exif(path: Path) -> CameraMetadata:
    """EXIF from the file; never raises (a file without EXIF just has no metadata)."""
    meta = CameraMetadata()
    try:
        with open(path, "rb") as handle:
            tags = exifread.process_file(handle, details=False)
    except Exception as exc:  # exifread raises a zoo of errors on odd files
        log.info("exifread could not parse %s: %s", path, exc)
        return meta
    meta.tags = {
        key: str(value)[:_MAX_VALUE_LEN]
        for key, value in tags.items()
        if key.startswith(_KEPT_PREFIXES) and "Thumbnail" not in key and key != "EXIF MakerNote"
    }
    meta.make = _text(tags.get("Image Make"))
    meta.model = _text(tags.get("Image Model"))
    meta.lens = _text(tags.get("EXIF LensModel"))
    meta.serial = _text(tags.get("EXIF BodySerialNumber") or tags.get("Image CameraSerialNumber"))
    meta.iso = _number(tags.get("EXIF ISOSpeedRatings") or tags.get("EXIF PhotographicSensitivity"))
    meta.shutter_s = _number(tags.get("EXIF ExposureTime"))
    meta.aperture = _number(tags.get("EXIF FNumber"))
    meta.focal_length_mm = _number(tags.get("EXIF FocalLength"))
    meta.captured_at = _datetime(tags.get("EXIF DateTimeOriginal") or tags.get("Image DateTime"))
    orientation = tags.get("Image Orientation")
    if orientation is not None and orientation.values and orientation.values[0] in range(1, 9):
        meta.orientation = int(orientation.values[0])
    return meta


def fill_from_libraw(meta: CameraMetadata, path: Path, raw: Any) -> CameraMetadata:
    """Fill what EXIF lacked from LibRaw (make/model through its C API, the rest from rawpy)."""
    if not (meta.make and meta.model):
        make, model = libraw_identity(path)
        meta.make = meta.make or make
        meta.model = meta.model or model
    other = getattr(raw, "other", None)
    if other is not None:
        meta.iso = meta.iso or (other.iso_speed or None)
        meta.shutter_s = meta.shutter_s or (other.shutter_speed or None)
        meta.aperture = meta.aperture or (other.aperture or None)
        meta.focal_length_mm = meta.focal_length_mm or (other.focal_length or None)
        if meta.captured_at is None and other.timestamp and other.timestamp.year > 1970:
            meta.captured_at = other.timestamp
    lens = getattr(raw, "lens", None)
    if lens is not None and not meta.lens:
        meta.lens = _text(lens.model)
    return meta


class _IParams(ctypes.Structure):
    # The leading fields of LibRaw's libraw_iparams_t (libraw_types.h).
    _fields_ = [
        ("guard", ctypes.c_char * 4),
        ("make", ctypes.c_char * 64),
        ("model", ctypes.c_char * 64),
    ]


@lru_cache(maxsize=1)
def _libraw() -> ctypes.CDLL | None:
    import rawpy

    candidate = os.path.join(os.path.dirname(rawpy.__file__), "libraw_r.so")
    try:
        lib = ctypes.CDLL(candidate)
    except OSError:
        return None
    lib.libraw_init.restype = ctypes.c_void_p
    lib.libraw_init.argtypes = [ctypes.c_uint]
    lib.libraw_open_file.restype = ctypes.c_int
    lib.libraw_open_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.libraw_get_iparams.restype = ctypes.POINTER(_IParams)
    lib.libraw_get_iparams.argtypes = [ctypes.c_void_p]
    lib.libraw_close.argtypes = [ctypes.c_void_p]
    return lib


def libraw_identity(path: Path) -> tuple[str | None, str | None]:
    """Make and model as LibRaw identifies them (rawpy does not expose these)."""
    lib = _libraw()
    if lib is None:
        return None, None
    handle = lib.libraw_init(0)
    if not handle:
        return None, None
    try:
        if lib.libraw_open_file(handle, os.fsencode(path)) != 0:
            return None, None
        params = lib.libraw_get_iparams(handle).contents
        return _text(params.make.decode(errors="replace")), _text(params.model.decode(errors="replace"))
    finally:
        lib.libraw_close(handle)
