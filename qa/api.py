"""The QA stage's public API: shot QA, the consistency report, the review queue and its reads."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from faces.detect import FaceFinding, mesh_aligned_face
from ingest import api as ingest_api
from likeness.blobstore import BlobStore
from likeness.errors import NotFound
from likeness.models import Face, Person, Shoot, Shot, ShotStatus
from qa.eyes import EyeState, classify_face
from qa.review import (
    ReviewStats,
    ReviewVerdict,
    cast_vote,
    enqueue,
    next_items,
    retract_vote,
    review_stats,
    verdict_of,
)
from qa.review_reads import ReviewCard, ReviewProgress, my_votes, review_cards, review_measures, review_progress
from qa.shot_qa import Check, FrameTone, ShotQaThresholds, face_window, measure_shot, sharpness, summarise

__all__ = [
    "FaceImageQa", "QaResult", "qa_face_image", "ReviewStats", "ReviewVerdict", "cast_vote", "consistency_report", "enqueue", "next_items",
    "retract_vote", "review_stats", "run_shot_qa", "verdict_of",
    "ReviewCard", "ReviewProgress", "my_votes", "review_cards", "review_measures", "review_progress",
]

log = logging.getLogger(__name__)


@dataclass
class QaResult:
    shots: int = 0
    passed: int = 0
    rejected: int = 0
    restored: int = 0
    queued_faces: int = 0  # faces reviewers can see: those of frames whose consent holds


def _image(blobs: BlobStore, sha256: str) -> np.ndarray:
    with blobs.open(sha256) as handle:
        image = Image.open(io.BytesIO(handle.read()))
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))  # crops and previews are RGB already


def finding_of(face: Face) -> FaceFinding:
    """The stored face as the detector sees it (no image decode needed)."""
    return FaceFinding.from_json(
        {
            "box": face.box, "score": face.score, "landmarks": face.landmarks, "yaw": face.yaw, "pitch": face.pitch,
            "roll": face.roll, "ear_right": face.ear_right, "ear_left": face.ear_left,
            "iris_right": face.iris_right, "iris_left": face.iris_left,
        }
    )


def _reference_tone(*, session: Session, blobs: BlobStore, shoot: Shoot) -> FrameTone | None:
    if not shoot.reference_frame:
        return None
    reference = session.scalar(
        select(Shot).where(Shot.shoot_id == shoot.id, Shot.relative_path == shoot.reference_frame)
    )
    if reference is None or reference.preview_sha256 is None:
        return None
    return FrameTone.of(_image(blobs, reference.preview_sha256))


def run_shot_qa(
    *, session: Session, blobs: BlobStore, shoot_id: int | None = None, actor: str,
    thresholds: ShotQaThresholds = ShotQaThresholds(),
) -> QaResult:
    """Measure every shot (of one shoot, or all) and store the checks; the status follows from
    consent then QA (``ingest.api.update_status``): failures are rejected, shots that pass again
    restored. Faces of accepted shots are queued for review with the eye detector's flag."""
    result = QaResult()
    shoots = session.scalars(select(Shoot) if shoot_id is None else select(Shoot).where(Shoot.id == shoot_id)).all()
    if shoot_id is not None and not shoots:
        raise NotFound(f"no shoot #{shoot_id}")
    for shoot in shoots:
        reference = _reference_tone(session=session, blobs=blobs, shoot=shoot)
        shots = session.scalars(
            select(Shot).where(Shot.shoot_id == shoot.id).options(selectinload(Shot.faces)).order_by(Shot.id)
        ).all()
        # Each crop is decoded once: its small face window serves the session median and the checks.
        windows = {
            s.id: face_window(_image(blobs, s.faces[0].crop_sha256), crop_upscale(s.faces[0]))
            for s in shots if s.faces and s.faces[0].crop_sha256
        }
        median = _shoot_sharpness(list(windows.values()))
        codes = {s.sitter_code for s in shots} - {None}
        people = {p.code: p for p in session.scalars(
            select(Person).where(Person.code.in_(codes)).options(selectinload(Person.releases), selectinload(Person.personal))
        )}
        for shot in shots:
            _qa_one(session=session, blobs=blobs, shot=shot, shoot=shoot, window=windows.get(shot.id),
                    reference=reference, shoot_sharpness=median, thresholds=thresholds, result=result,
                    person=people.get(shot.sitter_code) if shot.sitter_code else None, actor=actor)
    session.flush()
    return result


MIN_FACES_FOR_MEDIAN = 3


def crop_upscale(face: Face) -> float:
    """How much the aligned crop enlarged the face: crop side over the quad's side in the frame."""
    return upscale_of(face.crop_size, face.quad)


def upscale_of(crop_size: int, quad: Any) -> float:
    """Crop side over the side of the face quad it was aligned from (both in the same pixels)."""
    corners = np.asarray(quad, dtype=np.float64)
    side = float(np.linalg.norm(corners[3] - corners[0]))
    return crop_size / side if side > 0 else 1.0


def _shoot_sharpness(windows: list[np.ndarray]) -> float | None:
    """The shoot's median face sharpness: what this sitter under this light looks like in focus."""
    values = [sharpness(window) for window in windows]
    return float(np.median(values)) if len(values) >= MIN_FACES_FOR_MEDIAN else None


def _qa_one(
    *, session: Session, blobs: BlobStore, shot: Shot, shoot: Shoot, window: np.ndarray | None,
    reference: FrameTone | None, shoot_sharpness: float | None, thresholds: ShotQaThresholds, result: QaResult,
    person: Person | None, actor: str,
) -> None:
    if shot.preview_sha256 is None:
        return
    face = shot.faces[0] if shot.faces else None
    eyes = verdict = None
    if face is not None:
        verdict = classify_face(finding_of(face), image_size=(shot.width, shot.height))
        eyes = verdict.to_json()
        face.qa = {**(face.qa or {}), "eyes": eyes}
    checks = measure_shot(
        face=window,
        preview=_image(blobs, shot.preview_sha256),
        pose=(face.yaw, face.pitch, face.roll) if face is not None else None,
        eyes=eyes, reference=reference, shoot_sharpness=shoot_sharpness, thresholds=thresholds,
        crop_upscale=crop_upscale(face) if face is not None and face.crop_sha256 else None,
    )
    shot.qa = summarise(checks)
    result.shots += 1
    result.passed += bool(shot.qa["passed"])
    before = ingest_api.update_status(session=session, shot=shot, person=person, shoot_date=shoot.shoot_date, actor=actor)
    if before is not None and shot.status is ShotStatus.rejected:
        result.rejected += 1
    elif before is ShotStatus.rejected:
        result.restored += 1
    # Every measured face is indexed for review; reviewers see it only while its frame's consent
    # holds (qa.review.reviewable), so a release added or revoked later shows or withdraws it.
    if face is not None and verdict is not None and face.crop_sha256:
        flagged = verdict.state not in (EyeState.open, EyeState.undetermined)
        enqueue(
            session=session, image_sha256=face.crop_sha256, source="shot", face_id=face.id,
            flag=verdict.state.value if flagged else None,
            flag_confidence=verdict.confidence if flagged else None, measures=eyes,
        )
        result.queued_faces += shot.status is not ShotStatus.quarantined  # what reviewers see now


@dataclass(frozen=True)
class FaceImageQa:
    """QA of an image framed around one face: the eye verdict and the face-level checks."""

    found: bool
    eyes: dict | None
    checks: list[dict]

    @property
    def flag(self) -> str | None:
        state = (self.eyes or {}).get("state")
        return state if state not in (None, "open", "undetermined") else None


def qa_face_image(rgb: np.ndarray) -> FaceImageQa:
    """Eye state and face checks for an aligned crop or a generated face: one mesh pass, whose
    measures (pose, eye openness, iris) the eye detector and the pose checks read as they are."""
    finding = mesh_aligned_face(rgb)
    if finding is None:
        return FaceImageQa(False, None, [])
    eyes = classify_face(finding, image_size=(rgb.shape[1], rgb.shape[0])).to_json()
    checks = measure_shot(
        face=face_window(rgb), preview=rgb, pose=(finding.yaw, finding.pitch, finding.roll), eyes=eyes, reference=None
    )
    return FaceImageQa(True, eyes, [check_json(c) for c in checks])


def check_json(check: Check) -> dict:
    """A check as plain JSON types: ``asdict`` without its deep copy (every field is a scalar)."""
    return {name: getattr(check, name) for name in _CHECK_FIELDS}


_CHECK_FIELDS = tuple(f.name for f in fields(Check))


def consistency_report(*, session: Session, shoot_id: int) -> bytes:
    """A PNG plot of drift across the session: exposure and white balance against the reference
    frame, face sharpness, frame by frame in capture order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shoot = session.get(Shoot, shoot_id)
    if shoot is None:
        raise NotFound(f"no shoot #{shoot_id}")
    shots = session.scalars(
        select(Shot).where(Shot.shoot_id == shoot_id).order_by(Shot.captured_at, Shot.relative_path)
    ).all()
    series: dict[str, list[float | None]] = {"exposure_shift": [], "white_balance_shift": [], "sharpness": []}
    labels = []
    for shot in shots:
        checks = {c["name"]: c for c in (shot.qa or {}).get("checks", [])}
        labels.append(shot.relative_path.rsplit("/", 1)[-1])
        for name in series:
            value = checks.get(name, {}).get("value")
            series[name].append(value if isinstance(value, (int, float)) else None)
    figure, axes = plt.subplots(3, 1, figsize=(max(6, len(shots) * 0.4), 7), sharex=True)
    units = {"exposure_shift": "stops", "white_balance_shift": "log2 chroma", "sharpness": "Laplacian var"}
    for axis, (name, values) in zip(axes, series.items()):
        xs = [i for i, v in enumerate(values) if v is not None]
        axis.plot(xs, [values[i] for i in xs], marker="o")
        axis.set_ylabel(f"{name}\n({units[name]})", fontsize=8)
        axis.grid(alpha=0.3)
    axes[-1].set_xticks(range(len(labels)), labels, rotation=60, fontsize=7, ha="right")
    figure.suptitle(f"{shoot.name}: drift across the session")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
