"""Delivering a balanced set of generated faces: a snapshot spec's quotas met from the gallery.

`deliver(workbench, spec, folder)` takes the approved, untainted faces whose measurements agree
with their label (model_registry.gallery), chooses `spec.size` of them so every quota is met at
once with the same integer program as dataset snapshots (training.snapshots.select), writes
them with Content Credentials (model_registry.export) and an `attributes.csv` beside them, and
says what is missing as what to generate next ("generate 120 more: age_band=senior × skin_tone=9").

A face's values are its conditioning label's, except the skin tone, which is the Monk tone
measured under its face mesh. The spec's `filters` (shot QA, labels of real frames) and its person
cap speak of photographs and do not apply; the checkpoint stands in for the person, so the
solver spreads the set over checkpoints.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path

from likeness.files import write_bytes_atomic
from likeness.workbench import Workbench
from model_registry import gallery
from model_registry.export import ExportResult, export_generated
from training.snapshots.pool import Candidate
from training.snapshots.select import CellResult, select_faces
from training.snapshots.spec import Spec

CSV_NAME = "attributes.csv"


@dataclasses.dataclass(frozen=True)
class Delivery:
    export: ExportResult
    cells: list[CellResult]
    missing: list[str]           # "generate N more: cell", one per quota the gallery cannot meet
    size_missing: int
    pool: int                    # approved faces the choice was made from
    csv: Path

    def lines(self) -> list[str]:
        written = len(self.export.written)
        out = [f"{written} faces written to {self.export.folder} with Content Credentials (from {self.pool} approved); "
               f"attributes in {self.csv.name}"]
        out += [f"  {c.key}: {c.achieved} (band {c.low}..{c.high})" for c in self.cells]
        out += [f"  {m}" for m in self.missing] or ["  every quota met"]
        if self.size_missing:
            out.append(f"  {self.size_missing} short of the spec's size")
        return out


def _values(face: gallery.GalleryFace) -> dict[str, str]:
    values = {k: str(v) for k, v in face.label.items()}
    tone = face.measured.get("monk_tone")
    if isinstance(tone, int):
        values["skin_tone"] = str(tone)
    return values


def deliver(workbench: Workbench, spec: Spec, folder: Path) -> Delivery:
    with workbench.db.unit_of_work() as session:
        chosen_filter = gallery.GalleryFilter(matching_label=True)
        pool = gallery.faces(session, chosen_filter, limit=gallery.count(session, chosen_filter) or 1)
    today = dt.date.today()
    by_id = {face.image_id: face for face in pool}
    candidates = [Candidate(face_id=f.image_id, shot_id=0, person_id=f.checkpoint_id, person_code=f"checkpoint #{f.checkpoint_id}",
                            release_id=0, shoot_id=f.checkpoint_id, crop_sha256=f.image_sha256, capture_date=today,
                            quality=1.0, attributes=_values(f)) for f in pool]
    selection = select_faces(candidates, dataclasses.replace(spec, max_person_share=1.0))
    export, csv_path = export_faces(workbench, [by_id[c.face_id] for c in selection.chosen], folder)
    missing = [f"generate {cell.missing} more: {cell.key}" for cell in selection.cells if cell.missing]
    return Delivery(export=export, cells=selection.cells, missing=missing, size_missing=selection.size_missing,
                    pool=len(pool), csv=csv_path)


def export_faces(workbench: Workbench, faces: list[gallery.GalleryFace], folder: Path) -> tuple[ExportResult, Path]:
    """The faces signed into `folder`, with `attributes.csv`: one row per written file with its
    recipe and the values quotas count (label values, the measured skin tone)."""
    export = export_generated(workbench, [f.image_id for f in faces], folder)
    names = {path.name.split("-")[-1].removesuffix(".png"): path.name for path in export.written}
    attributes = sorted({a for f in faces for a in _values(f)})
    written = [f for f in faces if f.image_sha256[:12] in names]
    return export, _write_csv(folder, written, names, attributes)


def _write_csv(folder: Path, faces: list[gallery.GalleryFace], names: dict[str, str], attributes: list[str]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "image_sha256", "checkpoint", "seed", "psi", *attributes])
    for face in faces:
        values = _values(face)
        writer.writerow([names.get(face.image_sha256[:12], ""), face.image_sha256, face.checkpoint_id, face.seed,
                         face.psi, *(values.get(a, "") for a in attributes)])
    return write_bytes_atomic(Path(folder) / CSV_NAME, buffer.getvalue().encode())
