"""Run the automatic checks on generated images and store them on their rows.

Each image's PNG is read from the blob store and its conditioning label decoded through its
checkpoint's snapshot encoding; ``GeneratedImage.checks`` is merged (entries of other checks,
such as the discriminator's, stay) and ``GeneratedImage.attributes`` replaced, a batch of rows
per transaction with one set-based update. The face models stay loaded for the whole call.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select, update

from labeling.encoding import encoding_from_json
from likeness.models import Checkpoint, DatasetSnapshot, GeneratedImage, TrainingRun
from likeness.progress import ProgressFn
from likeness.workbench import Workbench
from qa.eyes import load_thresholds
from qa.generated.checks import check_face
from qa.generated.labels import decode_label

BATCH = 64


@dataclass
class CheckSummary:
    checked: int = 0
    flagged: dict[str, int] = field(default_factory=dict)  # check -> images it flagged
    mismatched: int = 0                                    # images with an attribute contradicting the label
    no_face: int = 0

    def describe(self) -> str:
        """One line, the same wherever faces are checked (`likeness faces check`, `likeness generate`)."""
        flagged = ", ".join(f"{name} {count}" for name, count in sorted(self.flagged.items())) or "none"
        return (f"checked {self.checked} generated image(s): {self.no_face} without a face, "
                f"{self.mismatched} contradicting their label; flagged: {flagged}")


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _rows(session: Any, ids: Sequence[int]) -> list[Any]:
    return list(session.execute(
        select(GeneratedImage.id, GeneratedImage.image_sha256, GeneratedImage.label, GeneratedImage.checks,
               DatasetSnapshot.label_encoding)
        .join(Checkpoint, Checkpoint.id == GeneratedImage.checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .outerjoin(DatasetSnapshot, DatasetSnapshot.id == TrainingRun.snapshot_id)
        .where(GeneratedImage.id.in_(ids)).order_by(GeneratedImage.id)))


def check_images(workbench: Workbench, image_ids: Sequence[int], *, progress: ProgressFn | None = None) -> CheckSummary:
    """Check every image in ``image_ids`` and store the results; ids without a row are skipped."""
    summary = CheckSummary()
    eye_thresholds = load_thresholds()
    ids = list(dict.fromkeys(image_ids))
    for start in range(0, len(ids), BATCH):
        with workbench.db.unit_of_work() as session:
            rows = _rows(session, ids[start:start + BATCH])
        updates = []
        for row in rows:
            slots = encoding_from_json(row.label_encoding) if row.label_encoding else []
            result = check_face(_decode(workbench.blobs.read_bytes(row.image_sha256)),
                                label_attributes=decode_label(row.label, slots), eye_thresholds=eye_thresholds)
            updates.append({"id": row.id, "checks": {**(row.checks or {}), **result.checks},
                            "attributes": result.attributes_json()})
            summary.checked += 1
            summary.no_face += result.checks["face_found"]["flagged"]
            summary.mismatched += bool(result.mismatch)
            for name in result.flagged:
                summary.flagged[name] = summary.flagged.get(name, 0) + 1
        if updates:
            with workbench.db.unit_of_work() as session:
                session.execute(update(GeneratedImage), updates)  # bulk update by primary key
        if progress is not None:
            progress(summary.checked, len(ids), "generated images checked")
    return summary
