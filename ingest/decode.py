"""Decode a frame once: RAW through LibRaw (rawpy), JPEG/TIFF/PNG through Pillow, orientation
honoured, with a preview taken from the embedded JPEG where the camera wrote one.

LibRaw reports damage by printing to stderr from C ("<path>: Unexpected end of file") and
exifread by a bare log line ("File format not recognized."): both are caught while a file is
read and attached to it, in the FrameError reason when the file fails, else in a log record that
names the file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rawpy
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from ingest.exif import CameraMetadata, fill_from_libraw
from ingest.exif import read_exif as _read_exif
from likeness import logs

log = logging.getLogger(__name__)

RASTER_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
# The same LibRaw settings everywhere (ingest and its benchmark floor): camera white balance,
# no automatic brightening (exposure must stay comparable across a session), 8-bit output,
# LibRaw's default AHD demosaic.
RAW_POSTPROCESS: dict[str, Any] = {"use_camera_wb": True, "no_auto_bright": True, "output_bps": 8}
PREVIEW_QUALITY = 85
# A half-size decode is taken only from frames this large: its image (a quarter of the pixels,
# 2 MP and more) still shows a face at a resolution the face mesh and shot QA measure as well.
HALF_SIZE_MIN_PIXELS = 8_000_000
EMPTY_REASON = "the file is empty (0 bytes)"

# LibRaw's flip codes -> the PIL transpose that makes the picture upright.
_FLIP_TRANSPOSE = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


class FrameError(Exception):
    """A file that cannot become a shot; `kind` is a short code, the message says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass
class DecodedFrame:
    rgb: np.ndarray  # H x W x 3 uint8, upright
    file_format: str
    orientation: int
    metadata: CameraMetadata
    white_balance: list[float] | None
    preview: Image.Image | None  # embedded preview, upright, or None
    preview_source: str | None
    scale: int = 1  # frame pixels per pixel of ``rgb``: 2 for a RAW decoded at half size


class _LibRaw:
    """What LibRaw printed while one file was read, without the path it prefixes (the file is
    named by whoever reports it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []

    @contextlib.contextmanager
    def calls(self) -> Iterator[None]:
        captured = logs.Captured()
        try:
            with logs.native_stderr() as captured:
                yield
        finally:
            prefix = f"{self.path}: "
            self.messages += [line.removeprefix(prefix).strip() for line in captured.lines]

    def reason(self, reason: str) -> str:
        """``reason`` with LibRaw's own words, where it said anything."""
        return f"{reason}; LibRaw: {'; '.join(self.messages)}" if self.messages else reason

    def warn(self) -> None:
        """For a file that decoded all the same."""
        if self.messages:
            log.warning("%s: LibRaw: %s", self.path, "; ".join(self.messages))


class _ExifreadNotes(logging.Filter):
    """exifread's log records made in this thread while a file is read, kept off the console
    (exifread does not say which file it means) and logged again naming it."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        self.messages.append(record.getMessage())
        return False


def read_exif(path: Path) -> CameraMetadata:
    """:func:`ingest.exif.read_exif`, with exifread's notes on the file logged naming it (at
    INFO: a file without EXIF is a normal file)."""
    notes = _ExifreadNotes()
    logger = logging.getLogger("exifread")
    logger.addFilter(notes)
    try:
        return _read_exif(path)
    finally:
        logger.removeFilter(notes)
        for message in notes.messages:
            log.info("%s: no EXIF read (exifread: %s)", path, message)


def decode_frame(path: Path, *, max_pixels: int, half_size: bool = False) -> DecodedFrame:
    """Decode `path` fully; raises FrameError with a clear reason for anything unusable.
    ``half_size``: a RAW of HALF_SIZE_MIN_PIXELS or more is decoded at half its width and height
    (each 2x2 block of sensor pixels becomes one, no demosaic: about five times faster), with
    every check a full decode makes; smaller RAWs and rasters are decoded as they are."""
    size = _checked_size(path)
    if path.suffix.lower() in RASTER_EXTENSIONS:
        return _decode_raster(path, max_pixels=max_pixels)
    try:
        return _decode_raw(path, max_pixels=max_pixels, file_size=size, half_size=half_size)
    except FrameError:
        # A RAW container that LibRaw refuses stays refused (Pillow would read only its preview);
        # anything else may be a misnamed JPEG or PNG and deserves a try.
        if _looks_like_raw(path):
            raise
    return _decode_raster(path, max_pixels=max_pixels)


# Leading bytes of RAW containers: TIFF (DNG, NEF, CR2, ARW, PEF...), Canon CIFF, Fujifilm,
# Olympus, Panasonic, Minolta, Sigma; ISO-BMFF (CR3) has "ftyp" at offset 4.
_RAW_MAGIC = (b"II*\x00", b"MM\x00*", b"II\x1a\x00\x00\x00HEAPCCDR", b"FUJIFILM", b"IIRO", b"IIRS", b"MMOR",
              b"IIU\x00", b"\x00MRM", b"FOVb")


def _looks_like_raw(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(16)
    return head.startswith(_RAW_MAGIC) or head[4:8] == b"ftyp"


def _checked_size(path: Path) -> int:
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise FrameError("unreadable", "permission denied") from None
    except OSError as exc:
        raise FrameError("unreadable", exc.strerror or str(exc)) from None
    if size == 0:
        raise FrameError("empty", EMPTY_REASON)
    return size


def _check_tiff_extent(path: Path, file_size: int) -> None:
    """TIFF-based RAWs (DNG, NEF, CR2, ARW...) say where their data ends: a shorter file was cut.
    LibRaw would otherwise decode the missing part as black without complaint."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic not in (b"II*\x00", b"MM\x00*"):
        return
    try:
        with tifffile.TiffFile(path) as tif:
            pages = list(tif.pages)
            for page in list(pages):
                pages.extend(_subifd_pages(tif, page))
            end = max(
                (off + count for page in pages for off, count in zip(page.dataoffsets, page.databytecounts)),
                default=0,
            )
    except Exception as exc:  # a broken IFD chain is itself a sign of a cut or damaged file
        raise FrameError("corrupt", f"the TIFF structure is damaged ({exc})") from None
    if end > file_size:
        raise FrameError("truncated", f"the file ends at byte {file_size:,} but its image data runs to byte {end:,}")


def _subifd_pages(tif: tifffile.TiffFile, page: tifffile.TiffPage | tifffile.TiffFrame) -> list[tifffile.TiffPage]:
    offsets = getattr(page, "subifds", None) or ()
    result = []
    for offset in offsets:
        tif.filehandle.seek(offset)
        result.append(tifffile.TiffPage(tif, index=0))
    return result


def _decode_raw(path: Path, *, max_pixels: int, file_size: int, half_size: bool = False) -> DecodedFrame:
    _check_tiff_extent(path, file_size)
    libraw = _LibRaw(path)
    try:
        with libraw.calls():
            raw = rawpy.imread(str(path))
            raw.unpack()  # imread only reads headers; unsupported or cut data shows up here
    except rawpy.LibRawFileUnsupportedError:
        raise FrameError("unsupported_format", libraw.reason(
            "LibRaw cannot decode this file (a format it does not support, or a RAW cut short)")) from None
    except rawpy.LibRawIOError as exc:
        raise FrameError("truncated", libraw.reason(
            f"the file is truncated or unreadable ({_libraw_message(exc)})")) from None
    except rawpy.LibRawError as exc:
        raise FrameError("corrupt", libraw.reason(f"LibRaw rejected the file: {_libraw_message(exc)}")) from None
    with raw:
        sizes = raw.sizes
        pixels = int(sizes.width) * int(sizes.height)
        if pixels <= 0:
            raise FrameError("corrupt", libraw.reason("LibRaw found no image data"))
        if pixels > max_pixels:
            raise too_large(int(sizes.width), int(sizes.height), max_pixels)
        metadata = read_exif(path)
        try:
            with libraw.calls():
                metadata = fill_from_libraw(metadata, path, raw)
                preview = _embedded_preview(raw, sizes.flip, (sizes.width, sizes.height))
                half_size = half_size and pixels >= HALF_SIZE_MIN_PIXELS
                rgb = raw.postprocess(half_size=half_size, **RAW_POSTPROCESS)
        except rawpy.LibRawError as exc:
            kind = "truncated" if isinstance(exc, (rawpy.LibRawIOError, rawpy.LibRawDataError)) else "corrupt"
            raise FrameError(kind, libraw.reason(f"decoding failed: {_libraw_message(exc)}")) from None
        wb = [round(float(v), 4) for v in raw.camera_whitebalance[:3]]
        fmt = path.suffix.lstrip(".").upper() or "RAW"
        metadata.orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), metadata.orientation)
    libraw.warn()
    return DecodedFrame(rgb, fmt, metadata.orientation, metadata, wb, preview, "embedded" if preview else None,
                        scale=2 if half_size else 1)


def _embedded_preview(raw: rawpy.RawPy, flip: int, size: tuple[int, int]) -> Image.Image | None:
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError, rawpy.LibRawError):
        return None
    try:
        image: Image.Image
        if thumb.format == rawpy.ThumbFormat.JPEG:
            image = Image.open(io.BytesIO(bytes(thumb.data)))
            image.load()
        else:
            image = Image.fromarray(np.asarray(thumb.data))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    # Some cameras store the thumbnail unrotated; LibRaw's flip applies to both.
    if flip in _FLIP_TRANSPOSE:
        image = image.transpose(_FLIP_TRANSPOSE[flip])
    width, height = size if flip not in (5, 6) else (size[1], size[0])
    if abs(image.width / image.height - width / height) > 0.1:
        # A preview with another aspect (a letterboxed one) would misrepresent the frame.
        return None
    return image.convert("RGB")


def too_large(width: int, height: int, max_pixels: int) -> FrameError:
    return FrameError(
        "too_large",
        f"{width}x{height} ({width * height:,} pixels) exceeds the pixel limit of {max_pixels:,} (LIKENESS_MAX_PIXELS)",
    )


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's decompression-bomb guard at ``max_pixels`` inside the block (None: off). A worker
    runs each frame under LIKENESS_MAX_PIXELS, so Pillow's own guard agrees with ours for
    everything it opens there (embedded previews too); the previous value comes back after."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _decode_raster(path: Path, *, max_pixels: int) -> DecodedFrame:
    try:
        # Opening reads the header alone; our limit decides right after, with our own message,
        # so Pillow's guard must not answer first with its own number.
        with pixel_limit(None):
            image = Image.open(path)
        with image:
            if image.width * image.height > max_pixels:
                raise too_large(image.width, image.height, max_pixels)
            fmt = image.format or path.suffix.lstrip(".").upper()
            exif_orientation = image.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except FrameError:
        raise
    except UnidentifiedImageError:
        raise FrameError("not_an_image", "not an image or RAW file that LibRaw or Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise FrameError("truncated", f"the image data is truncated or corrupt ({exc})") from None
    metadata = read_exif(path)
    metadata.orientation = int(exif_orientation) if exif_orientation in range(1, 9) else 1
    return DecodedFrame(np.asarray(upright), fmt, metadata.orientation, metadata, None, None, None)


def make_preview(image: Image.Image, long_edge: int) -> bytes:
    """A JPEG preview no longer than `long_edge` on its long side."""
    image = image.copy()
    image.thumbnail((long_edge, long_edge), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=PREVIEW_QUALITY, optimize=False)
    return buffer.getvalue()


def quick_preview(path: Path, long_edge: int) -> bytes | None:
    """The preview alone, fast: the embedded JPEG, else a half-size decode (for contact sheets)."""
    libraw = _LibRaw(path)
    try:
        with libraw.calls(), rawpy.imread(str(path)) as raw:
            preview = _embedded_preview(raw, raw.sizes.flip, (raw.sizes.width, raw.sizes.height))
            if preview is None:
                preview = Image.fromarray(raw.postprocess(half_size=True, **RAW_POSTPROCESS))
        libraw.warn()
    except rawpy.LibRawError:
        libraw.warn()
        try:
            with Image.open(path) as image:
                preview = ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, UnidentifiedImageError):
            return None
    return make_preview(preview, long_edge)


def _libraw_message(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
