"""A first look at a frame, in its own warm worker, so the verdict reaches the photographer
before the full ingest has finished: a RAW decoded at half size (every check of a full decode,
at a fifth of its time), the frame's preview, the faces that pass the plausibility check, and
each face's window for sharpness and exposure: the same size and region the full ingest's crop
gives (softer where the face spans fewer half-size pixels than the crop has).

Nothing here is a record: the full ingest of the same file (capture.feed) stores the shot, and
its verdict confirms or revises this one. Only the preview is stored now (content-addressed,
the full ingest's own bytes whenever the camera embedded one), for the Capture page to show.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from faces.detect import FaceFinding
from ingest.decode import decode_frame
from ingest.frame import FrameFailure, FrameJob, aligned_crop, guarded, human_faces, preview_of, worker_blobs
from qa.api import upscale_of
from qa.shot_qa import face_window


@dataclass
class LookFace:
    finding: FaceFinding  # in pixels of the decoded image (half the frame's, for a RAW)
    window: np.ndarray  # the face window shot QA measures sharpness and exposure on
    upscale: float  # the full ingest's crop side over the face's side in the frame


@dataclass
class Look:
    sha256: str
    image_size: tuple[int, int]  # (width, height) of the decoded image the findings are in
    captured_at: dt.datetime | None
    preview: bytes
    preview_sha256: str
    faces: list[LookFace] = field(default_factory=list)
    not_human_detail: str | None = None


def first_look(job: FrameJob) -> Look | FrameFailure:
    """Never raises for a bad file: the full ingest reports it, with the same reason."""
    return guarded(_look, job)


def _look(job: FrameJob) -> Look:
    decoded = decode_frame(job.path, max_pixels=job.max_pixels, half_size=True)
    preview, _source = preview_of(decoded, job.preview_size)
    findings, not_human = human_faces(decoded.rgb)
    faces = []
    for finding in findings:
        quad, crop = aligned_crop(decoded.rgb, finding.landmarks, job.align_size)
        upscale = upscale_of(job.align_size, quad) / decoded.scale  # as the full-size crop will have it
        faces.append(LookFace(finding, face_window(crop, upscale), upscale))
    height, width = decoded.rgb.shape[:2]
    return Look(job.sha256, (width, height), decoded.metadata.captured_at, preview,
                worker_blobs(job.blob_url).put_bytes(preview), faces, "; ".join(not_human) or None)
