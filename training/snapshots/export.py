"""Exporting a snapshot in NVIDIA's dataset format, which `training.dataset` reads too.

An uncompressed zip of PNGs at the snapshot's resolution (00000/img00000000.png ...), a
`dataset.json` with the label vectors (or `"labels": null` for an unconditional snapshot) and a
`manifest.json`: the snapshot hash, its spec, the label encoding, and for every image the face and
release it came from and its split. No personal data: no names, no self-identified statements.
Written beside the target and renamed into place.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from likeness.blobstore import BlobStore
from likeness.errors import InvalidInput
from likeness.models import DatasetSnapshot, SnapshotMember, Split
from likeness.progress import ProgressFn
from training.dataset import PreparedDataset, output_name, write_dataset

MANIFEST_FILE = "manifest.json"
SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    images: int
    split: str
    fingerprint: str               # equals ImageFolderDataset(path).fingerprint()


def export_snapshot(*, session: Session, blobs: BlobStore, snapshot: DatasetSnapshot, dest: Path, split: str = "train",
                    progress: ProgressFn | None = None) -> ExportResult:
    if split not in SPLITS:
        raise InvalidInput(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if snapshot.tainted:
        reasons = "; ".join(str(t.get("reason", "")) for t in snapshot.taint) or "a release was revoked"
        raise InvalidInput(f"dataset snapshot #{snapshot.id} is tainted ({reasons}): it cannot be exported",
                           hint="build a new snapshot from the same spec")
    query = select(SnapshotMember).where(SnapshotMember.snapshot_id == snapshot.id).order_by(SnapshotMember.position)
    if split != "all":
        query = query.where(SnapshotMember.split == Split(split))
    members = list(session.scalars(query))
    if not members:
        raise InvalidInput(f"dataset snapshot #{snapshot.id} has no {split} faces to export")
    missing = [m.crop_sha256 for m in members if not blobs.exists(m.crop_sha256)]
    if missing:
        raise InvalidInput(f"dataset snapshot #{snapshot.id}: {len(missing)} crop(s) are missing from the blob store, "
                           f"first {missing[0]}", hint="`likeness doctor` finds and explains missing blobs")
    labelled = bool(snapshot.label_encoding)
    manifest = _manifest(snapshot, members, split)
    prepared: PreparedDataset = write_dataset(
        [(f"face {m.face_id}", _opener(blobs, m.crop_sha256)) for m in members], dest,
        resolution=snapshot.resolution, labels=[tuple(float(x) for x in m.label) for m in members] if labelled else None,
        extra_files={MANIFEST_FILE: json.dumps(manifest, indent=1, sort_keys=True).encode()}, progress=progress,
    )
    return ExportResult(prepared.dest, prepared.count, split, prepared.fingerprint)


def _opener(blobs: BlobStore, sha256: str) -> Callable[[], BinaryIO]:
    return lambda: blobs.open(sha256)


def _manifest(snapshot: DatasetSnapshot, members: list[SnapshotMember], split: str) -> dict[str, Any]:
    spec = dict(snapshot.spec)
    return {
        "format": "likeness-snapshot-export-1",
        "snapshot": {"id": snapshot.id, "sha256": snapshot.sha256, "name": snapshot.name,
                     "built_on": snapshot.built_on.isoformat(), "size": snapshot.size, "resolution": snapshot.resolution},
        "spec": spec,
        "label_encoding": snapshot.label_encoding,
        "split": split,
        "images": [{"file": output_name(i), "face_id": m.face_id, "release_id": m.release_id,
                    "split": str(m.split)} for i, m in enumerate(members)],
    }


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of an exported snapshot (a zip or a folder); InvalidInput when it has none."""
    path = Path(path)
    try:
        if path.is_dir():
            data = (path / MANIFEST_FILE).read_bytes()
        else:
            with zipfile.ZipFile(path) as archive:
                data = archive.read(MANIFEST_FILE)
        manifest = json.loads(data)
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: no readable {MANIFEST_FILE} ({exc})",
                           hint="export the snapshot with `likeness dataset export`") from exc
    if not isinstance(manifest, dict) or "snapshot" not in manifest:
        raise InvalidInput(f"{path}: {MANIFEST_FILE} is not a snapshot manifest")
    return manifest
