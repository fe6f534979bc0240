"""Coverage of a shoot's plan: which slots its usable frames fill, and which frames to reshoot.

A frame fills a slot when it is accepted (consent holds, one face, shot QA passed or not run yet),
its sitter is the slot's, and its measured head pose is the slot's pose. Expression is not
measured at capture: a frame counts for the first open slot of its sitter and pose, in plan order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from capture.plan import PlanSlot, slots_from_stored
from likeness.errors import NotFound
from likeness.models import Shoot, Shot, ShotStatus

FRONTAL_YAW = 15.0  # degrees either side of straight on
PROFILE_YAW = 55.0  # beyond this the far eye is hidden
TILT_PITCH = 15.0


def pose_of(yaw: float | None, pitch: float | None) -> str | None:
    """The taxonomy's head_pose for a measured pose; yaw > 0 is the subject turning to their own
    right (faces.detect), which the taxonomy calls right."""
    if yaw is None or pitch is None or yaw != yaw or pitch != pitch:  # nan: not measurable
        return None
    if abs(yaw) <= FRONTAL_YAW:
        if pitch > TILT_PITCH:
            return "up"
        if pitch < -TILT_PITCH:
            return "down"
        return "frontal"
    side = "right" if yaw > 0 else "left"
    return f"{'profile' if abs(yaw) > PROFILE_YAW else 'three_quarter'}_{side}"


@dataclass
class SlotCoverage:
    slot: PlanSlot
    frames: list[str] = field(default_factory=list)  # relative paths of the frames that fill it

    @property
    def filled(self) -> int:
        return min(len(self.frames), self.slot.count)

    @property
    def done(self) -> bool:
        return len(self.frames) >= self.slot.count


@dataclass(frozen=True)
class Reshoot:
    relative_path: str
    sitter: str | None
    reason: str
    detail: str | None


@dataclass
class Coverage:
    shoot: str
    slots: list[SlotCoverage]
    unplanned: list[str]  # usable frames that fill no slot
    reshoot: list[Reshoot]
    frames: int

    @property
    def planned(self) -> int:
        return sum(s.slot.count for s in self.slots)

    @property
    def filled(self) -> int:
        return sum(s.filled for s in self.slots)

    def as_dict(self) -> dict:
        return {
            "shoot": self.shoot, "frames": self.frames, "planned": self.planned, "filled": self.filled,
            "slots": [{**s.slot.as_stored(), "filled": s.filled, "frames": s.frames} for s in self.slots],
            "unplanned": self.unplanned,
            "reshoot": [r.__dict__ for r in self.reshoot],
        }


def usable(shot: Shot) -> bool:
    return shot.status is ShotStatus.accepted and (shot.qa is None or shot.qa.get("passed") is not False)


def fill(slots: list[SlotCoverage], sitter: str | None, pose: str | None, relative: str) -> SlotCoverage | None:
    """Put the frame into the first open slot of its sitter and pose; the slot, or None."""
    for entry in slots:
        if entry.slot.sitter == sitter and entry.slot.pose == pose and not entry.done:
            entry.frames.append(relative)
            return entry
    return None


def unfill(slots: list[SlotCoverage], relative: str) -> None:
    """Take the frame out of whichever slot it filled."""
    for entry in slots:
        if relative in entry.frames:
            entry.frames.remove(relative)


def coverage(session: Session, shoot_name: str) -> Coverage:
    shoot = session.scalar(select(Shoot).where(Shoot.name == shoot_name))
    if shoot is None:
        raise NotFound(f"no shoot named {shoot_name}", hint="`likeness capture plan` or an ingest stores one")
    slots = [SlotCoverage(slot) for slot in slots_from_stored(shoot.plan, where=f"the plan of shoot {shoot_name}")]
    shots = session.scalars(
        select(Shot).where(Shot.shoot_id == shoot.id).options(selectinload(Shot.faces)).order_by(Shot.id)
    ).all()
    unplanned, reshoot = [], []
    for shot in shots:
        if not usable(shot):
            reshoot.append(Reshoot(shot.relative_path, shot.sitter_code, shot.reason or "not usable", shot.reason_detail))
            continue
        face = shot.faces[0] if shot.faces else None
        pose = pose_of(face.yaw, face.pitch) if face is not None else None
        if fill(slots, shot.sitter_code, pose, shot.relative_path) is None:
            unplanned.append(shot.relative_path)
    return Coverage(shoot.name, slots, unplanned, reshoot, len(shots))
