"""Consistency between rows and blobs: orphan blobs, rows whose blob is missing, stale temp files."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Column, Table, delete, select, update
from sqlalchemy.orm import Session

from likeness import audit
from likeness.blobstore import BlobStore
from likeness.models import Base

log = logging.getLogger(__name__)

# Blobs younger than this may belong to an ingest that has not committed its rows yet.
DEFAULT_GRACE_S = 3600.0


@dataclass(frozen=True)
class MissingBlob:
    table: str
    row_id: object
    column: str
    sha256: str
    required: bool


@dataclass
class DoctorReport:
    blobs_stored: int = 0
    blobs_referenced: int = 0
    orphan_blobs: list[str] = field(default_factory=list)
    missing: list[MissingBlob] = field(default_factory=list)
    stale_temp_files: list[Path] = field(default_factory=list)
    deleted_blobs: list[str] = field(default_factory=list)
    deleted_rows: list[MissingBlob] = field(default_factory=list)
    cleared_refs: list[MissingBlob] = field(default_factory=list)
    kept_young_orphans: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not (self.orphan_blobs or self.missing or self.stale_temp_files)


def blob_columns() -> list[tuple[Table, Column]]:
    """Every column in the schema that names a blob (marked with info={'blob': ...})."""
    return [
        (table, column)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.info.get("blob")
    ]


def check(*, session: Session, blobs: BlobStore) -> DoctorReport:
    stored = set(blobs.iter_hashes())
    report = DoctorReport(blobs_stored=len(stored))
    referenced: set[str] = set()
    for table, column in blob_columns():
        (pk,) = table.primary_key.columns
        for row_id, sha in session.execute(select(pk, column).where(column.is_not(None))):
            referenced.add(sha)
            if sha not in stored:
                required = column.info["blob"] == "required"
                report.missing.append(MissingBlob(table.name, row_id, column.name, sha, required))
    report.blobs_referenced = len(referenced)
    report.orphan_blobs = sorted(stored - referenced)
    report.stale_temp_files = blobs.stale_temp_files(older_than_s=60.0)
    return report


def repair(
    *, session: Session, blobs: BlobStore, report: DoctorReport, actor: str, grace_s: float = DEFAULT_GRACE_S
) -> DoctorReport:
    """Delete orphan blobs older than `grace_s` and stale temp files; for rows whose blob is gone,
    delete the row when the blob is required or clear the reference when it is optional (a preview
    or a crop). Either way, ingesting the source folder again restores it: a deleted shot is stored
    anew, a shot with a cleared or missing preview or crop is decoded again to put them back."""
    now = time.time()
    tables = {table.name: table for table, _ in blob_columns()}
    for item in report.missing:
        table = tables[item.table]
        (pk,) = table.primary_key.columns
        if item.required:
            session.execute(delete(table).where(pk == item.row_id))
            report.deleted_rows.append(item)
        else:
            session.execute(update(table).where(pk == item.row_id).values({item.column: None}))
            report.cleared_refs.append(item)
        audit.record(
            session=session, actor=actor, action="doctor.missing_blob", subject_type=item.table, subject_id=item.row_id,
            column=item.column, sha256=item.sha256, row_deleted=item.required,
        )
    session.flush()
    for sha in report.orphan_blobs:
        modified = blobs.modified_at(sha)
        if modified is not None and now - modified < grace_s:
            report.kept_young_orphans.append(sha)
            continue
        blobs.delete(sha)
        report.deleted_blobs.append(sha)
    for temp in report.stale_temp_files:
        temp.unlink(missing_ok=True)
    if report.deleted_blobs:
        audit.record(
            session=session, actor=actor, action="doctor.orphans_deleted", subject_type="blobstore",
            subject_id=blobs.url, count=len(report.deleted_blobs),
        )
    log.info("doctor repaired %d rows and deleted %d blobs", len(report.missing), len(report.deleted_blobs))
    return report
