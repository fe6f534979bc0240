"""The labeling stage's public API: the server, the project, push, pull, progress and agreement.

The CLI (`likeness label …`) and the Labeling page call these and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labeling import server
from labeling.client import LabelStudioClient
from labeling.consensus import Agreement, Consensus, agreement, consensus, consensus_values
from labeling.project import ProjectSettings, SetupResult, current_project, setup_project
from labeling.pull import PullResult, pull_labels
from labeling.push import PushResult, push_faces
from labeling.server import Connection, ServerStatus
from labeling.taxonomy import TAXONOMY, Taxonomy
from likeness.models import Face, Label, LabelProject, LabelState, LabelTask, Shoot, Shot
from likeness.progress import ProgressFn
from likeness.workbench import Workbench

__all__ = [
    "Agreement", "Connection", "Consensus", "PullResult", "PushResult", "ServerStatus", "SetupResult",
    "TAXONOMY", "Taxonomy", "agreement_report", "client", "connection", "consensus", "consensus_values", "disagreements", "progress", "project",
    "project_url", "pull", "push", "serve", "setup", "status", "stop", "task_url",
]


def serve(*, workbench: Workbench) -> Connection:
    return server.start(workbench.settings, _local_blob_root(workbench=workbench))


def stop(*, workbench: Workbench) -> bool:
    return server.stop(workbench.settings)


def status(*, workbench: Workbench) -> ServerStatus:
    return server.status(workbench.settings)


def connection(*, workbench: Workbench) -> Connection:
    """The Label Studio we use, from settings (no request is made)."""
    return server.resolve_connection(workbench.settings)


def client(*, workbench: Workbench) -> LabelStudioClient:
    return LabelStudioClient(connection(workbench=workbench))


def project(*, session: Session, server_url: str) -> LabelProject:
    return current_project(session=session, server_url=server_url)


def _local_blob_root(*, workbench: Workbench) -> str | None:
    """The blob store's folder, which the served folder must stay apart from (None: not local)."""
    return workbench.blobs.root if workbench.blobs.is_local else None


def _project_settings(*, workbench: Workbench) -> ProjectSettings:
    settings = workbench.settings
    return ProjectSettings(overlap=settings.label_overlap, overlap_percent=settings.label_overlap_percent,
                           files_root=server.files_root(settings),
                           blob_root=_local_blob_root(workbench=workbench))


def setup(*, workbench: Workbench, taxonomy: Taxonomy = TAXONOMY) -> SetupResult:
    ls = client(workbench=workbench)
    with workbench.db.unit_of_work() as session:
        return setup_project(session=session, client=ls, taxonomy=taxonomy,
                             settings=_project_settings(workbench=workbench))


def _project_id(*, workbench: Workbench, ls: LabelStudioClient) -> int:
    with workbench.db.unit_of_work() as session:
        return current_project(session=session, server_url=ls.url).id


def push(*, workbench: Workbench, shoot: str | None = None, progress: ProgressFn | None = None) -> PushResult:
    """Push the accepted, released faces not yet in the project; `progress(pushed, eligible, "")`
    after each batch."""
    ls = client(workbench=workbench)
    return push_faces(db=workbench.db, blobs=workbench.blobs, client=ls,
                      project_id=_project_id(workbench=workbench, ls=ls),
                      files_root=_project_settings(workbench=workbench).files_root, shoot=shoot,
                      batch_size=workbench.settings.label_push_batch, progress=progress)


def pull(*, workbench: Workbench, taxonomy: Taxonomy = TAXONOMY, progress: ProgressFn | None = None,
         after_page: Callable[[int], None] | None = None) -> PullResult:
    """Pull new, edited and deleted annotations; `progress(tasks_read, total, "")` after each page
    (total 0 when it is not known up front)."""
    ls = client(workbench=workbench)
    return pull_labels(db=workbench.db, client=ls, project_id=_project_id(workbench=workbench, ls=ls),
                       taxonomy=taxonomy, progress=progress, after_page=after_page)


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


def progress(*, session: Session, taxonomy: Taxonomy = TAXONOMY) -> list[ShootProgress]:
    pushed = dict(session.execute(
        select(Shoot.name, func.count(LabelTask.id)).join(Shot, Shot.shoot_id == Shoot.id)
        .join(Face, Face.shot_id == Shot.id).join(LabelTask, LabelTask.face_id == Face.id)
        .where(LabelTask.ls_task_id.is_not(None)).group_by(Shoot.name)).all())
    labelled = session.execute(
        select(Shoot.name, Label.attribute, func.count(func.distinct(Label.face_id)))
        .join(Face, Face.id == Label.face_id).join(Shot, Shot.id == Face.shot_id).join(Shoot, Shoot.id == Shot.shoot_id)
        .where(Label.source == "annotation", Label.state == LabelState.current)
        .group_by(Shoot.name, Label.attribute)).all()
    annotated = dict(session.execute(
        select(Shoot.name, func.count(func.distinct(Label.face_id)))
        .join(Face, Face.id == Label.face_id).join(Shot, Shot.id == Face.shot_id).join(Shoot, Shoot.id == Shot.shoot_id)
        .where(Label.source == "annotation", Label.state == LabelState.current)
        .group_by(Shoot.name)).all())
    per_attribute: dict[str, dict[str, int]] = defaultdict(dict)
    for shoot, attribute, count in labelled:
        if attribute in taxonomy.by_name:
            per_attribute[shoot][attribute] = count
    return [ShootProgress(name, count, annotated.get(name, 0),
                          {a.name: per_attribute[name].get(a.name, 0) for a in taxonomy.attributes})
            for name, count in sorted(pushed.items())]


def agreement_report(*, session: Session, taxonomy: Taxonomy = TAXONOMY) -> list[Agreement]:
    return agreement(session=session, taxonomy=taxonomy)


@dataclass(frozen=True)
class Disagreement:
    consensus: Consensus
    ls_task_id: int | None


def disagreements(*, session: Session) -> list[Disagreement]:
    """Faces whose annotators disagree on an attribute, ties first."""
    split = [c for c in consensus(session=session) if len(c.votes) > 1]
    tasks = dict(session.execute(select(LabelTask.face_id, LabelTask.ls_task_id).where(
        LabelTask.face_id.in_([c.face_id for c in split]))).all()) if split else {}
    split.sort(key=lambda c: (not c.tied, c.face_id, c.attribute))
    return [Disagreement(c, tasks.get(c.face_id)) for c in split]
