"""Ingest a shoot folder, then run shot QA on what was stored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest import api as ingest_api
from likeness.progress import ProgressFn
from likeness.workbench import Workbench
from qa import api as qa_api


@dataclass(frozen=True)
class IngestedShoot:
    """What :func:`ingest_and_check` did: the ingest's summary and, unless skipped, shot QA's."""

    ingest: ingest_api.IngestSummary
    qa: qa_api.QaResult | None


def ingest_and_check(
    *, workbench: Workbench, path: Path, actor: str, workers: int | None = None,
    progress: ProgressFn | None = None, run_qa: bool = True,
) -> IngestedShoot:
    """Ingest every frame of the shoot folder at ``path`` (idempotent, resumable), then run shot
    QA on that shoot in its own unit of work. A refused folder raises before anything is stored."""
    summary = ingest_api.ingest_folder(workbench=workbench, path=path, actor=actor, workers=workers, progress=progress)
    checked = None
    if run_qa:
        with workbench.db.unit_of_work() as session:
            checked = qa_api.run_shot_qa(session=session, blobs=workbench.blobs, shoot_id=summary.shoot_id, actor=actor)
    return IngestedShoot(ingest=summary, qa=checked)
