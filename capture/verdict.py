"""The verdict on one frame while the sitter is still in the chair: shot QA measured on the
frame's first look (capture.look) and again on the frame just stored (against the session so
far), its status from consent then QA, the plan slot it fills, and what to tell the
photographer in plain words.

The checks and the status rule are shot QA's own (qa.shot_qa, ingest.gate): only the session
median of sharpness is the one of the frames so far. Closing the session runs shot QA over the
whole shoot, which makes every record what a batch ingest gives.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from capture.coverage import SlotCoverage, fill, pose_of, unfill, usable
from capture.look import Look
from capture.plan import slots_from_stored
from ingest.gate import capture_date, classify, update_status, with_qa
from likeness.blobstore import BlobStore
from likeness.models import Person, Shoot, Shot, ShotStatus
from qa.api import crop_upscale, finding_of
from qa.eyes import classify_face
from qa.shot_qa import FrameTone, face_window, measure_shot, sharpness, summarise

MIN_FACES_FOR_MEDIAN = 3  # as shot QA: below this a session median says nothing

_EYES = {"closed": "eyes closed", "half_closed": "eyes half closed", "crossed": "eyes crossed"}
_CONSENT = {
    "no_release": "no signed release on file — do not use these frames until one is signed",
    "release_expired": "the release has expired — a new one must be signed",
    "release_revoked": "the release was revoked — stop the session",
    "minor_without_guardian": "a minor without a guardian's signature — stop the session",
}


def _image(blobs: BlobStore, sha256: str) -> np.ndarray:
    with blobs.open(sha256) as handle:
        return _decoded(handle.read())


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def plain_words(shot: Shot | _Unstored) -> str | None:
    """Why the frame needs attention, as the photographer would say it; None for a good frame."""
    reason, detail = shot.reason, shot.reason_detail or ""
    if reason is None:
        return None
    if reason == "unknown_sitter":
        if shot.sitter_code is None:
            folder = shot.relative_path.split("/", 1)[0] if "/" in shot.relative_path else None
            where = f"folder {folder} is not a sitter of this shoot" if folder else "no sitter folder names this frame"
            return f"{where} (add the code to sitters in shoot.toml) — frame quarantined"
        return f"sitter {shot.sitter_code} is not registered (`likeness person add`) — frame quarantined"
    if reason in _CONSENT:
        return _CONSENT[reason]
    if reason == "capture_date_mismatch":
        return f"the camera clock is far off the shoot date ({detail}) — set the camera clock"
    if reason == "no_face":
        return "no face found — reshoot"
    if reason == "several_faces":
        return f"{shot.face_count} faces in the frame — reshoot with the sitter alone"
    checks = {c["name"]: c for c in (shot.qa or {}).get("checks", [])}
    if reason == "qa_eyes":
        state = str(checks.get("eyes", {}).get("value"))
        return f"{_EYES.get(state, state.replace('_', ' '))} — reshoot"
    if reason == "qa_sharpness":
        return "out of focus or blurred — reshoot"
    if reason == "qa_exposure_shift":
        return f"exposure drifted {checks['exposure_shift']['value']} stops from the grey card — check the lights"
    if reason == "qa_white_balance_shift":
        return "white balance drifted from the grey card — check the lights and the camera's white balance"
    if reason in ("qa_head_yaw", "qa_head_pitch", "qa_head_roll"):
        return f"head turned or tilted too far ({reason.removeprefix('qa_head_')} {checks[reason[3:]]['value']}°) — reshoot"
    if reason in ("qa_clipped_highlights", "qa_clipped_shadows", "qa_face_luma"):
        return f"face badly exposed ({reason.removeprefix('qa_').replace('_', ' ')}) — reshoot"
    if reason == "qa_face_resolution":
        return "face too small in the frame — move closer"
    return f"{reason.replace('_', ' ')} — reshoot"


@dataclass
class FrameVerdict:
    relative_path: str
    sitter: str | None
    status: str
    reason: str | None
    words: str | None  # None: a good frame
    shot_id: int | None  # None: judged on its first look, not stored yet
    pose: str | None = None
    eyes: str | None = None
    slot: str | None = None  # the plan slot it fills
    notes: list[str] = field(default_factory=list)  # remarks that do not call a reshoot
    preview_sha256: str | None = None
    stage: str = "stored"  # "look": the first look's verdict; "stored": the stored shot's

    def same_call(self, other: FrameVerdict) -> bool:
        """Whether the photographer is told the same thing (status and reason)."""
        return (self.status, self.reason) == (other.status, other.reason)

    def line(self) -> str:
        who = self.sitter or "?"
        if self.words:
            return f"{who}: {self.words} [{self.relative_path}]"
        fills = f", fills {self.slot}" if self.slot else ""
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{who}: ok{fills}{notes} [{self.relative_path}]"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Unstored:
    """What plain_words reads of a shot, for a frame judged on its first look (not stored yet)."""

    relative_path: str
    sitter_code: str | None
    reason: str | None
    reason_detail: str | None
    face_count: int
    qa: dict[str, Any] | None


class LiveJudge:
    """Shot QA frame by frame for one shoot, keeping the session's sharpness and plan state.

    A frame is judged twice: on its first look (capture.look, before it is stored) and once the
    full ingest has stored it. Both run the same checks and the same consent-then-QA rule; the
    second is the record, and it takes the first one's place in the plan."""

    def __init__(self, session: Session, blobs: BlobStore, shoot_id: int) -> None:
        self.blobs = blobs
        self.shoot_id = shoot_id
        self.sharpness: dict[str, float] = {}  # by content hash
        # First looks measure sharpness on a half-size decode, which reads lower than the stored
        # crop (2x2 binning softens): they are compared with first looks only.
        self.look_sharpness: dict[str, float] = {}
        self.reference: FrameTone | None = None
        shoot = session.get(Shoot, shoot_id)
        assert shoot is not None
        self.slots = [SlotCoverage(s) for s in slots_from_stored(shoot.plan, where=f"the plan of shoot {shoot.name}")]
        for shot in session.scalars(select(Shot).where(Shot.shoot_id == shoot_id)
                                    .options(selectinload(Shot.faces)).order_by(Shot.id)):
            self._remember(shot)
            if usable(shot):
                face = shot.faces[0] if shot.faces else None
                fill(self.slots, shot.sitter_code, pose_of(face.yaw, face.pitch) if face else None, shot.relative_path)

    def _remember(self, shot: Shot) -> np.ndarray | None:
        if not shot.faces or not shot.faces[0].crop_sha256:
            self.sharpness.pop(shot.sha256, None)
            return None
        window = face_window(_image(self.blobs, shot.faces[0].crop_sha256), crop_upscale(shot.faces[0]))
        self.sharpness[shot.sha256] = sharpness(window)
        return window

    @staticmethod
    def _median(values: dict[str, float]) -> float | None:
        return float(np.median(list(values.values()))) if len(values) >= MIN_FACES_FOR_MEDIAN else None

    def _reference(self, session: Session, shoot: Shoot) -> FrameTone | None:
        if self.reference is None and shoot.reference_frame:
            ref = session.scalar(select(Shot).where(Shot.shoot_id == shoot.id, Shot.relative_path == shoot.reference_frame))
            if ref is not None and ref.preview_sha256:
                self.reference = FrameTone.of(_image(self.blobs, ref.preview_sha256))
        return self.reference

    def _shoot(self, session: Session) -> Shoot:
        shoot = session.get(Shoot, self.shoot_id)
        assert shoot is not None
        return shoot

    def first_look(self, session: Session, look: Look, relative: str, sitter: str | None,
                   person: Person | None) -> FrameVerdict:
        """The verdict on a frame not stored yet, from its first look."""
        shoot = self._shoot(session)
        face = look.faces[0] if look.faces else None
        eyes = None
        if face is not None:
            self.look_sharpness[look.sha256] = sharpness(face.window)
            eyes = classify_face(face.finding, image_size=look.image_size).to_json()
        else:
            self.look_sharpness.pop(look.sha256, None)
        pose = (face.finding.yaw, face.finding.pitch, face.finding.roll) if face is not None else None
        qa = summarise(measure_shot(
            face=face.window if face is not None else None, preview=_decoded(look.preview), pose=pose, eyes=eyes,
            reference=self._reference(session, shoot), shoot_sharpness=self._median(self.look_sharpness),
            crop_upscale=face.upscale if face is not None else None,
        ))
        decided = with_qa(classify(sitter_code=sitter, person=person, face_count=len(look.faces),
                                   capture_date=capture_date(look.captured_at, shoot.shoot_date),
                                   shoot_date=shoot.shoot_date), qa)
        words = plain_words(_Unstored(relative, sitter, decided.reason, decided.detail, len(look.faces), qa))
        verdict = FrameVerdict(relative, sitter, str(decided.status.value), decided.reason, words, None,
                               pose=pose_of(*pose[:2]) if pose else None, eyes=(eyes or {}).get("state"),
                               preview_sha256=look.preview_sha256, stage="look")
        return self._place(verdict, eyes, accepted=decided.status is ShotStatus.accepted)

    def judge(self, session: Session, shot: Shot, person: Person | None, actor: str) -> FrameVerdict:
        """The verdict on a stored shot, written to it: status, reason and shot QA."""
        shoot = self._shoot(session)
        face = shot.faces[0] if shot.faces else None
        window = self._remember(shot)
        median = self._median(self.sharpness)
        eyes = None
        if face is not None:
            eyes = classify_face(finding_of(face), image_size=(shot.width, shot.height)).to_json()
            face.qa = {**(face.qa or {}), "eyes": eyes}
        if shot.preview_sha256 is not None:
            checks = measure_shot(
                face=window, preview=_image(self.blobs, shot.preview_sha256),
                pose=(face.yaw, face.pitch, face.roll) if face is not None else None, eyes=eyes,
                reference=self._reference(session, shoot), shoot_sharpness=median,
                crop_upscale=crop_upscale(face) if face is not None and face.crop_sha256 else None,
            )
            shot.qa = summarise(checks)
            update_status(session=session, shot=shot, person=person, shoot_date=shoot.shoot_date, actor=actor)
        unfill(self.slots, shot.relative_path)  # its first look's place, if it had one
        pose = pose_of(face.yaw, face.pitch) if face is not None else None
        verdict = FrameVerdict(shot.relative_path, shot.sitter_code, str(shot.status.value), shot.reason,
                               plain_words(shot), shot.id, pose=pose, eyes=(eyes or {}).get("state"),
                               preview_sha256=shot.preview_sha256)
        return self._place(verdict, eyes, accepted=shot.status is ShotStatus.accepted)

    def _place(self, verdict: FrameVerdict, eyes: dict[str, Any] | None, *, accepted: bool) -> FrameVerdict:
        """Notes that call no reshoot, and the plan slot an accepted frame fills."""
        if eyes and eyes.get("state") == "looking_away":
            verdict.notes.append("looking away from the camera")
        if accepted:
            slot = fill(self.slots, verdict.sitter, verdict.pose, verdict.relative_path)
            if slot is not None:
                verdict.slot = f"{slot.slot.describe()} ({len(slot.frames)}/{slot.slot.count})"
            elif any(s.slot.sitter == verdict.sitter and not s.done for s in self.slots):
                wanted = sorted({s.slot.pose for s in self.slots if s.slot.sitter == verdict.sitter and not s.done})
                verdict.notes.append(f"pose {verdict.pose or 'unknown'} fills no open slot; the plan wants {', '.join(wanted)}")
        return verdict
