"""A review queue of real face photographs, and the votes stored for it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps
from sqlalchemy import select

from likeness.models import Review, User
from likeness.workbench import Workbench
from pipeline.api import ingest_and_check
from tests.factories.people import register_sitter
from tests.factories.shoots import write_shoot_toml

FACE_LABELS = ("crossed", "closed", "open")


def write_face_shoot(testdata_dir: Path, folder: Path, *, per_label: int | None = None, variants: int = 1) -> Path:
    """A shoot folder of real face photos (one sitter). With `variants` > 1 each photo comes again
    mirrored and smaller, so every frame is an image of its own (the queue is keyed by content)."""
    write_shoot_toml(folder, name=folder.name, sitters=["P0001"])
    (folder / "P0001").mkdir()
    for label in FACE_LABELS:
        for source in sorted((testdata_dir / "faces" / label).iterdir())[:per_label]:
            with Image.open(source) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
            for variant in range(variants):
                frame = ImageOps.mirror(image) if variant % 2 else image
                scale = 1.0 - 0.15 * (variant // 2)
                if scale != 1.0:
                    frame = frame.resize((round(frame.width * scale), round(frame.height * scale)))
                frame.save(folder / "P0001" / f"{label}_{source.stem}_{variant}.jpg", quality=92)
    return folder


def queue_faces(workbench: Workbench, folder: Path, tmp_path: Path) -> int:
    """Ingest the face shoot and run shot QA, which queues each face with the eye detector's flag."""
    register_sitter(workbench, tmp_path)
    checked = ingest_and_check(workbench=workbench, path=folder, actor="test").qa
    assert checked is not None and checked.queued_faces >= 3
    return checked.queued_faces


def votes_of(workbench: Workbench, username: str) -> dict[int, tuple[str, list[str]]]:
    """The reviewer's votes as stored: item id -> (thumb, reasons)."""
    with workbench.db.unit_of_work() as session:
        return {
            item_id: (thumb, list(reasons))
            for item_id, thumb, reasons in session.execute(
                select(Review.item_id, Review.thumb, Review.reasons)
                .join(User, User.id == Review.reviewer_id)
                .where(User.username == username)
            )
        }
