"""The labeling stage's public API: the server, the project, push, pull, progress and agreement.

The CLI (`likeness label …`) and the Labeling page call these and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labeling import server
from labeling.client import LabelStudioClient
from labeling.consensus import Agreement, Consensus, agreement, consensus
from labeling.project import ProjectSettings, SetupResult, current_project, setup_project
from labeling.pull import PullResult, pull_labels
from labeling.push import PushResult, push_faces
from labeling.server import Connection, ServerStatus
from labeling.taxonomy import TAXONOMY, Taxonomy
from likeness.models import Face, Label, LabelProject, LabelState, LabelTask, Shoot, Shot
from likeness.workbench import Workbench

__all__ = [
    "Agreement", "Connection", "Consensus", "PullResult", "PushResult", "ServerStatus", "SetupResult",
    "TAXONOMY", "Taxonomy", "agreement_report", "client", "connection", "disagreements", "progress", "project",
    "project_url", "pull", "push", "serve", "setup", "status", "stop", "task_url",
]


def serve(wb: Workbench) -> Connection:
    return server.start(wb.settings, wb.blobs.root)


def stop(wb: Workbench) -> bool:
    return server.stop(wb.settings)


def status(wb: Workbench) -> ServerStatus:
    return server.status(wb.settings)


def connection(wb: Workbench) -> Connection:
    """The Label Studio we use, from settings (no request is made)."""
    return server.resolve_connection(wb.settings)


def client(wb: Workbench) -> LabelStudioClient:
    return LabelStudioClient(connection(wb))


def project(session: Session, server_url: str) -> LabelProject:
    return current_project(session, server_url)


def _project_settings(wb: Workbench) -> ProjectSettings:
    return ProjectSettings(overlap=wb.settings.label_overlap, overlap_percent=wb.settings.label_overlap_percent,
                           files_root=server.files_root(wb.settings, wb.blobs.root),
                           blob_root=Path(wb.blobs.root))


def setup(wb: Workbench, taxonomy: Taxonomy = TAXONOMY) -> SetupResult:
    ls = client(wb)
    with wb.db.unit_of_work() as session:
        return setup_project(session, ls, taxonomy, _project_settings(wb))


def _project_id(wb: Workbench, ls: LabelStudioClient) -> int:
    with wb.db.unit_of_work() as session:
        return current_project(session, ls.url).id


def push(wb: Workbench, *, shoot: str | None = None, progress=None) -> PushResult:
    ls = client(wb)
    return push_faces(wb.db, wb.blobs, ls, _project_id(wb, ls), files_root=_project_settings(wb).files_root,
                      shoot=shoot, batch_size=wb.settings.label_push_batch, progress=progress)


def pull(wb: Workbench, taxonomy: Taxonomy = TAXONOMY, *, progress=None, after_page=None) -> PullResult:
    ls = client(wb)
    return pull_labels(wb.db, ls, _project_id(wb, ls), taxonomy, progress=progress, after_page=after_page)


def project_url(server_url: str, ls_project_id: int) -> str:
    return f"{server_url}/projects/{ls_project_id}/data"


def task_url(server_url: str, ls_project_id: int, ls_task_id: int) -> str:
    """Opens the task in Label Studio's labeling view."""
    return f"{server_url}/projects/{ls_project_id}/data?task={ls_task_id}"


@dataclass(frozen=True)
class ShootProgress:
    shoot: str
    pushed: int
    annotated: int                      # faces with at least one current annotation
    by_attribute: dict[str, int]        # faces with a value for the attribute


def progress(session: Session, taxonomy: Taxonomy = TAXONOMY) -> list[ShootProgress]:
    pushed = dict(session.execute(
        select(Shoot.name, func.count(LabelTask.id)).join(Shot, Shot.shoot_id == Shoot.id)
        .join(Face, Face.shot_id == Shot.id).join(LabelTask, LabelTask.face_id == Face.id)
        .where(LabelTask.ls_task_id.is_not(None)).group_by(Shoot.name)).all())
    labelled = session.execute(
        select(Shoot.name, Label.attribute, func.count(func.distinct(Label.face_id)))
        .join(Face, Face.id == Label.face_id).join(Shot, Shot.id == Face.shot_id).join(Shoot, Shoot.id == Shot.shoot_id)
        .where(Label.source == "annotation", Label.state == LabelState.current.value)
        .group_by(Shoot.name, Label.attribute)).all()
    annotated = dict(session.execute(
        select(Shoot.name, func.count(func.distinct(Label.face_id)))
        .join(Face, Face.id == Label.face_id).join(Shot, Shot.id == Face.shot_id).join(Shoot, Shoot.id == Shot.shoot_id)
        .where(Label.source == "annotation", Label.state == LabelState.current.value)
        .group_by(Shoot.name)).all())
    per_attribute: dict[str, dict[str, int]] = defaultdict(dict)
    for shoot, attribute, count in labelled:
        if attribute in taxonomy.by_name:
            per_attribute[shoot][attribute] = count
    return [ShootProgress(name, count, annotated.get(name, 0),
                          {a.name: per_attribute[name].get(a.name, 0) for a in taxonomy.attributes})
            for name, count in sorted(pushed.items())]


def agreement_report(session: Session, taxonomy: Taxonomy = TAXONOMY) -> list[Agreement]:
    return agreement(session, taxonomy)


@dataclass(frozen=True)
class Disagreement:
    consensus: Consensus
    ls_task_id: int | None


def disagreements(session: Session) -> list[Disagreement]:
    """Faces whose annotators disagree on an attribute, ties first."""
    split = [c for c in consensus(session) if len(c.votes) > 1]
    tasks = dict(session.execute(select(LabelTask.face_id, LabelTask.ls_task_id).where(
        LabelTask.face_id.in_([c.face_id for c in split]))).all()) if split else {}
    split.sort(key=lambda c: (not c.tied, c.face_id, c.attribute))
    return [Disagreement(c, tasks.get(c.face_id)) for c in split]
