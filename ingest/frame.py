"""One frame, start to finish, in a worker process: store the original, decode once, measure,
align, store the preview and crops. Pure with respect to the database: results go back to the
coordinator, which writes them."""

from __future__ import annotations

import io
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from faces.align import align_face, ffhq_quad
from faces.detect import FaceFinding, find_faces
from faces.plausibility import check_face
from ingest.decode import DecodedFrame, FrameError, decode_frame, make_preview, pixel_limit
from ingest.exif import CameraMetadata
from likeness.blobstore import BlobStore

log = logging.getLogger(__name__)
T = TypeVar("T")

CROP_PNG_COMPRESSION = 1  # fast; crops are lossless either way


@dataclass(frozen=True)
class FrameJob:
    path: Path
    relative_path: str
    sha256: str
    blob_url: str
    align_size: int
    preview_size: int
    max_pixels: int
    # The shot is stored already but some of its derived blobs (preview, crops) or its original
    # are missing: decode again to put them back; the coordinator updates the rows, adds none.
    restore: bool = False


@dataclass
class FaceRecord:
    finding: dict[str, Any]
    quad: list[list[float]]
    crop_sha256: str
    crop_size: int


@dataclass
class FrameResult:
    job: FrameJob
    file_format: str
    file_size: int
    width: int
    height: int
    orientation: int
    metadata: CameraMetadata
    white_balance: list[float] | None
    preview_sha256: str
    preview_source: str
    faces: list[FaceRecord] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    # Detections that failed the human-face plausibility check (faces.plausibility): not faces,
    # so not in ``faces``; why, as "detection N is not a human face: measure = value (needs
    # low..high); ...", else None.
    not_human_detail: str | None = None


@dataclass
class FrameFailure:
    job: FrameJob
    kind: str
    reason: str
    peak_rss_mb: float = 0.0


@lru_cache(maxsize=4)
def worker_blobs(url: str) -> BlobStore:
    """The blob store at ``url``, opened once per worker process."""
    return BlobStore(url)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def process_frame(job: FrameJob) -> FrameResult | FrameFailure:
    """Never raises for a bad file: every problem becomes a FrameFailure with its reason."""
    return guarded(_process, job)


def guarded(work: Callable[[FrameJob], T], job: FrameJob) -> T | FrameFailure:
    """``work(job)`` under the job's pixel limit, a bad file's error turned into a FrameFailure."""
    try:
        with pixel_limit(job.max_pixels):
            return work(job)
    except FrameError as error:
        return FrameFailure(job, error.kind, error.reason, peak_rss_mb())
    except MemoryError:
        return FrameFailure(job, "too_large", "not enough memory to decode this frame", peak_rss_mb())


def _process(job: FrameJob) -> FrameResult:
    blobs = worker_blobs(job.blob_url)
    decoded = decode_frame(job.path, max_pixels=job.max_pixels)
    # The original is stored only once it is known to decode: a failed file leaves no blob.
    blobs.put_file(job.path, job.sha256)
    preview, preview_source = preview_of(decoded, job.preview_size)
    findings, not_human = human_faces(decoded.rgb)
    faces = [_store_face(blobs, decoded.rgb, finding, job.align_size) for finding in findings]
    height, width = decoded.rgb.shape[:2]
    return FrameResult(
        job=job, file_format=decoded.file_format, file_size=job.path.stat().st_size, width=width, height=height,
        orientation=decoded.orientation, metadata=decoded.metadata, white_balance=decoded.white_balance,
        preview_sha256=blobs.put_bytes(preview), preview_source=preview_source, faces=faces, peak_rss_mb=peak_rss_mb(),
        not_human_detail="; ".join(not_human) or None,
    )


def preview_of(decoded: DecodedFrame, long_edge: int) -> tuple[bytes, str]:
    """The frame's JPEG preview and where it came from: the camera's embedded one, else the decode."""
    if decoded.preview is not None:
        return make_preview(decoded.preview, long_edge), decoded.preview_source or "embedded"
    return make_preview(Image.fromarray(decoded.rgb), long_edge), "decoded"


def human_faces(rgb: np.ndarray) -> tuple[list[FaceFinding], list[str]]:
    """The detections that pass the human-face plausibility check, and why each other one failed."""
    faces, not_human = [], []
    for index, finding in enumerate(find_faces(rgb)):
        plausibility = check_face(rgb, finding.landmarks)
        if plausibility.passed:
            faces.append(finding)
        else:
            not_human.append(f"detection {index + 1} is not a human face: {plausibility.describe()}")
    return faces, not_human


def aligned_crop(rgb: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The FFHQ quad of a face and its aligned crop of side ``size``."""
    quad = ffhq_quad(landmarks)
    return quad, align_face(rgb, quad, size)


def _store_face(blobs: BlobStore, rgb: np.ndarray, finding: FaceFinding, size: int) -> FaceRecord:
    quad, crop = aligned_crop(rgb, finding.landmarks, size)
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="PNG", compress_level=CROP_PNG_COMPRESSION)
    return FaceRecord(
        finding=finding.to_json(), quad=np.round(quad, 2).tolist(), crop_sha256=blobs.put_bytes(buffer.getvalue()),
        crop_size=size,
    )
