"""Pull annotations from Label Studio into Label rows, incrementally and exactly once.

Label Studio bumps a task's `updated_at` whenever one of its annotations is created, edited or
deleted. A pull first reads the newest `updated_at` in the project (its end mark), then lists
every task changed since our cursor with just its annotations' ids and times, page by page in
task-id order (ids never move, so a task changed during the pull is read again at worst, never
skipped), fetches the full results of the tasks with a new or edited annotation through the
export API, and applies each page in its own transaction. The first pull (no cursor) exports the
whole project at once. Applying is idempotent: an annotation already stored with the same `updated_at` is
left alone, an edited one supersedes its rows, a deleted (or cancelled) one retracts them. The
cursor moves to the end mark only after the last page commits, so a pull stopped anywhere (server
down, timeout, killed process) is simply repeated by the next one: nothing lost, nothing doubled.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.client import LabelStudioClient, export_tasks, task_pages
from labeling.taxonomy import Taxonomy
from likeness.db import Database
from likeness.errors import NotFound
from likeness.models import Label, LabelProject, LabelState, LabelTask, utcnow
from likeness.progress import ProgressFn

log = logging.getLogger(__name__)

LS_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the only datetime format Label Studio's filters accept


@dataclass
class PullResult:
    tasks_read: int = 0
    added: int = 0          # label rows from new annotations
    superseded: int = 0     # rows replaced by an edit
    retracted: int = 0      # rows of deleted or cancelled annotations
    unknown: list[dict[str, Any]] = field(default_factory=list)  # values the taxonomy does not know
    cursor: dt.datetime | None = None


@dataclass(frozen=True)
class _Annotation:
    id: int
    updated_at: dt.datetime
    annotator: str
    result: list[dict[str, Any]]


def _parse_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _newest_change(client: LabelStudioClient, ls_project_id: int) -> dt.datetime | None:
    listing = client.call("read the newest task", client.get_json, "api/tasks/", project=ls_project_id, page=1,
                          page_size=1, fields="task_only", query=json.dumps({"ordering": ["-tasks:updated_at"]}))
    newest = listing.get("tasks") or []
    return _parse_time(newest[0]["updated_at"]) if newest else None


def _changed_since(cursor: dt.datetime | None) -> list[dict[str, Any]]:
    if cursor is None:
        return []
    value = cursor.astimezone(dt.UTC).strftime(LS_TIME)
    return [{"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": value}]


def _users(client: LabelStudioClient) -> dict[int, str]:
    # The SDK types a user's id as optional; a user without one could not have annotated anything.
    return {u.id: (u.email or u.username or str(u.id)) for u in client.call("list users", client.sdk.users.list)
            if u.id is not None}


def _project(session: Session, project_id: int) -> LabelProject:
    project = session.get(LabelProject, project_id)
    if project is None:
        raise NotFound(f"no labeling project {project_id}", hint="run `likeness label setup`")
    return project


def pull_labels(*, db: Database, client: LabelStudioClient, project_id: int, taxonomy: Taxonomy,
                page_size: int = 1000, progress: ProgressFn | None = None,
                after_page: Callable[[int], None] | None = None) -> PullResult:
    """Bring our labels up to date with the project's annotations (see the module docstring).

    `progress(tasks_read, total, "")` runs after each page; total is known only for a first pull
    (one export of the whole project), 0 otherwise. `after_page(n)` runs after page n is
    committed (the tests use it to stop the server there).
    """
    with db.unit_of_work() as session:
        project = _project(session, project_id)
        ls_project_id, cursor = project.ls_project_id, _as_utc(project.pull_cursor)
    result = PullResult(cursor=cursor)
    end_mark = _newest_change(client, ls_project_id)
    if end_mark is None or (cursor is not None and end_mark <= cursor):
        return result
    users = _users(client)
    pages = _changed_tasks(db=db, client=client, project_id=project_id, ls_project_id=ls_project_id,
                           cursor=cursor, page_size=page_size)
    for number, (tasks, total) in enumerate(pages, start=1):
        with db.unit_of_work() as session:
            _apply_page(session=session, project_id=project_id, tasks=tasks, users=users, taxonomy=taxonomy,
                        result=result)
        result.tasks_read += len(tasks)
        if progress:
            progress(result.tasks_read, total, "")
        if after_page:
            after_page(number)
    with db.unit_of_work() as session:
        _project(session, project_id).pull_cursor = end_mark
    result.cursor = end_mark
    return result


def _changed_tasks(*, db: Database, client: LabelStudioClient, project_id: int, ls_project_id: int,
                   cursor: dt.datetime | None, page_size: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Pages of full task JSON for every task changed since `cursor`, each with the number of
    tasks to read in all (0 when that is not known).

    Without a cursor every task is new to us, so the project comes in one export (Label Studio's
    cheapest way to serialise tasks). Otherwise changed tasks are listed with just their
    annotations' ids and times, and only those with a new or edited annotation are exported.
    """
    if cursor is None:
        everything = client.call("export the project", client.get_json, f"api/projects/{ls_project_id}/export",
                                 exportType="JSON", download_all_tasks="true")
        everything.sort(key=lambda task: task["id"])
        for start in range(0, len(everything), page_size):
            yield everything[start:start + page_size], len(everything)
        return
    for listed in task_pages(client, "read changed tasks", project=ls_project_id, page_size=page_size,
                             fields="all", include="id,updated_at,annotations", filters=_changed_since(cursor)):
        with db.unit_of_work() as session:
            stored = _stored_times(session=session, project_id=project_id, task_ids=[task["id"] for task in listed])
        # Only tasks with a new or edited annotation need their results; deletions show in the listing.
        wanted = [t["id"] for t in listed if t["id"] in stored and _has_news(t, stored[t["id"]])]
        full = {task["id"]: task for task in export_tasks(client, ls_project_id, wanted)}
        yield [full.get(task["id"], task) for task in listed], 0


def _task_faces(*, session: Session, project_id: int, task_ids: list[int]) -> dict[int, int]:
    """Label Studio task id → our face id, for our tasks among `task_ids`."""
    rows = session.execute(select(LabelTask.ls_task_id, LabelTask.face_id).where(
        LabelTask.project_id == project_id, LabelTask.ls_task_id.in_(task_ids)))
    # The filter on ls_task_id leaves out unconfirmed tasks (no id yet).
    return {task_id: face_id for task_id, face_id in rows if task_id is not None}


def _stored_times(*, session: Session, project_id: int, task_ids: list[int]) -> dict[int, dict[int, dt.datetime | None]]:
    """For each of our tasks among `task_ids`: annotation id → the `updated_at` we hold."""
    known = _task_faces(session=session, project_id=project_id, task_ids=task_ids)
    out: dict[int, dict[int, dt.datetime | None]] = {task_id: {} for task_id in known}
    rows = session.execute(select(Label.ls_task_id, Label.ls_annotation_id, Label.ls_updated_at).where(
        Label.ls_task_id.in_(list(known)), Label.face_id.in_(list(known.values())), Label.source == "annotation",
        Label.state == LabelState.current).distinct())
    for task_id, annotation_id, updated_at in rows:
        if task_id is None or annotation_id is None:
            continue  # annotation rows always carry both ids (see _labels); the columns are nullable for predictions
        out[task_id][annotation_id] = _as_utc(updated_at)
    return out


def _has_news(task: dict[str, Any], stored: dict[int, dt.datetime | None]) -> bool:
    return any(stored.get(a["id"]) != _parse_time(a["updated_at"]) for a in task.get("annotations") or [])


def _annotations(task: dict[str, Any], users: dict[int, str]) -> dict[int, _Annotation]:
    out = {}
    for item in task.get("annotations") or []:
        if item.get("was_cancelled"):
            continue  # a skipped task carries no values: treated like a deleted annotation
        user = item.get("completed_by")
        user_id = user.get("id") if isinstance(user, dict) else user
        annotator = users.get(user_id, f"user {user_id}") if isinstance(user_id, int) else f"user {user_id}"
        out[item["id"]] = _Annotation(item["id"], _parse_time(item["updated_at"]), annotator, item.get("result") or [])
    return out


def _apply_page(*, session: Session, project_id: int, tasks: list[dict[str, Any]], users: dict[int, str],
                taxonomy: Taxonomy, result: PullResult) -> None:
    ids = [task["id"] for task in tasks]
    faces = _task_faces(session=session, project_id=project_id, task_ids=ids)
    stored: dict[int, dict[int, list[Label]]] = {}
    for row in session.scalars(select(Label).where(
            Label.ls_task_id.in_(ids), Label.face_id.in_(list(faces.values())), Label.source == "annotation",
            Label.state == LabelState.current)):
        if row.ls_task_id is None or row.ls_annotation_id is None:
            continue  # annotation rows always carry both ids (see _labels); the columns are nullable for predictions
        stored.setdefault(row.ls_task_id, {}).setdefault(row.ls_annotation_id, []).append(row)
    for task in tasks:
        if task["id"] not in faces:
            log.warning("task %s is not one we pushed; ignored", task["id"])
            continue
        _apply_task(session=session, face_id=faces[task["id"]], task=task, stored=stored.get(task["id"], {}),
                    users=users, taxonomy=taxonomy, result=result)


def _apply_task(*, session: Session, face_id: int, task: dict[str, Any], stored: dict[int, list[Label]],
                users: dict[int, str], taxonomy: Taxonomy, result: PullResult) -> None:
    remote = _annotations(task, users)
    now = utcnow()
    for annotation_id, rows in stored.items():
        annotation = remote.get(annotation_id)
        if annotation is not None and _same_time(rows[0].ls_updated_at, annotation.updated_at):
            continue
        state = LabelState.retracted if annotation is None else LabelState.superseded
        for row in rows:
            row.state, row.ended_at = state, now
        if state is LabelState.retracted:
            result.retracted += len(rows)
        else:
            result.superseded += len(rows)
    for annotation_id, annotation in remote.items():
        held = stored.get(annotation_id)
        if held and _same_time(held[0].ls_updated_at, annotation.updated_at):
            continue
        for label in _labels(face_id, task["id"], annotation, taxonomy):
            session.add(label)
            result.added += 1
            if not label.known:
                result.unknown.append({"task": task["id"], "annotation": annotation_id,
                                       "attribute": label.attribute, "value": label.value})


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _same_time(a: dt.datetime | None, b: dt.datetime) -> bool:
    return a is not None and _as_utc(a) == b


def _labels(face_id: int, task_id: int, annotation: _Annotation, taxonomy: Taxonomy) -> list[Label]:
    labels = []
    for item in annotation.result:
        attribute = item.get("from_name", "")
        values = (item.get("value") or {}).get("choices")
        common = dict(face_id=face_id, attribute=attribute[:40], source="annotation", annotator=annotation.annotator,
                      ls_task_id=task_id, ls_annotation_id=annotation.id, ls_updated_at=annotation.updated_at)
        if item.get("type") != "choices" or not isinstance(values, list) or len(values) != 1:
            labels.append(Label(value=None, known=False, raw=item, **common))
            continue
        value = str(values[0])
        known = taxonomy.knows(attribute, value)
        labels.append(Label(value=value[:80], known=known, raw=None if known else item, **common))
    if not labels:
        # An annotation with no values still counts as seen: a marker row keeps pulls idempotent.
        labels.append(Label(face_id=face_id, attribute="", value=None, known=True, source="annotation",
                            annotator=annotation.annotator, ls_task_id=task_id, ls_annotation_id=annotation.id,
                            ls_updated_at=annotation.updated_at))
    return labels
