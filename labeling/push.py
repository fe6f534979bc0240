"""Push faces to Label Studio as tasks, with our detectors' predictions, exactly once.

Only accepted shots whose sitter holds a valid AI-training release on the capture date are
pushed (the consent rule is the ingest stage's `release_status`). Each batch is first written as
intent rows (LabelTask without a task id) and committed, then imported, then confirmed with the
ids Label Studio returned. A push killed between import and confirmation leaves intent rows; the
next push looks those faces up in Label Studio by the face id in the task data and adopts the
tasks it finds, so nothing is pushed twice.

Label Studio reads a face's images from the served folder (`labeling.served`), never from the
blob store: each batch puts its crops and previews there before it is imported. Every push also
brings that folder in step with the database (images of pushed faces whose frame is no longer
accepted, or whose release no longer holds, are taken out; missing ones are put back) and moves
tasks pushed with blob-store URLs onto served ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import selectinload

from ingest import api as ingest_api
from labeling import served
from labeling.client import LabelStudioClient, task_pages
from labeling.label_config import CROP, PREVIEW
from labeling.predictions import Predicted, as_prediction, model_version, predict
from likeness.blobstore import BlobStore
from likeness.db import Database
from likeness.errors import NotFound
from likeness.models import Face, Label, LabelProject, LabelTask, Shot, ShotStatus
from likeness.progress import ProgressFn

log = logging.getLogger(__name__)


@dataclass
class PushResult:
    pushed: int = 0
    already: int = 0
    adopted: int = 0                                   # tasks found after an interrupted push
    withheld: dict[str, int] = field(default_factory=dict)  # reason → faces not pushed
    withdrawn: int = 0                                 # images taken out of the served folder
    migrated: int = 0                                  # tasks moved onto served image URLs


def _withheld_reason(shot: Shot) -> str | None:
    """Why a shot's faces may not be labelled (None: they may)."""
    if shot.status != ShotStatus.accepted:
        return f"shot {shot.status}"
    if shot.person is None:
        return "no sitter"
    if not ingest_api.release_status(shot.person, shot.capture_date).valid:
        return "no valid release"
    return None


def _images(face: Face) -> dict[str, str]:
    """The image blobs a face's task shows: its crop, and its frame's preview (else the crop again)."""
    if face.crop_sha256 is None:
        raise ValueError(f"face {face.id} has no crop to label")  # _eligible pushes only faces with one
    return {CROP: face.crop_sha256, PREVIEW: face.shot.preview_sha256 or face.crop_sha256}


def _eligible(*, db: Database, project_id: int, shoot_id: int | None, result: PushResult) -> list[int]:
    """Face ids to push: accepted, released, with a crop, not yet in the project."""
    with db.unit_of_work() as session:
        pushed = select(LabelTask.face_id).where(LabelTask.project_id == project_id)
        query = (select(Face).join(Shot).where(Face.crop_sha256.is_not(None), Face.id.not_in(pushed))
                 .options(selectinload(Face.shot).selectinload(Shot.person)).order_by(Face.id))
        if shoot_id is not None:
            query = query.where(Shot.shoot_id == shoot_id)
        faces = session.scalars(query).all()
        result.already = session.query(LabelTask).filter(LabelTask.project_id == project_id).count()
        ids = []
        for face in faces:
            reason = _withheld_reason(face.shot)
            if reason is None:
                ids.append(face.id)
            else:
                result.withheld[reason] = result.withheld.get(reason, 0) + 1
        return ids


def _sync_served(*, db: Database, blobs: BlobStore, client: LabelStudioClient, project: LabelProject,
                 files_root: Path, result: PushResult) -> None:
    """Serve the images of the project's pushed faces that may still be labelled, withdraw the
    others', and point tasks that still carry other image URLs (blob-store paths) at served ones."""
    with db.unit_of_work() as session:
        faces = session.scalars(select(Face).join(LabelTask, LabelTask.face_id == Face.id)
                                .where(LabelTask.project_id == project.id, Face.crop_sha256.is_not(None))
                                .options(selectinload(Face.shot).selectinload(Shot.person))).all()
        tasks = dict(session.execute(select(LabelTask.ls_task_id, LabelTask.face_id).where(
            LabelTask.project_id == project.id, LabelTask.ls_task_id.is_not(None))).all())
        images = {face.id: _images(face) for face in faces}
        allowed = {face.id for face in faces if _withheld_reason(face.shot) is None}
    keep = {sha for face_id in allowed for sha in images[face_id].values()}
    for sha in sorted(keep):
        served.serve(blobs, files_root, sha)
    for sha in sorted({sha for shas in images.values() for sha in shas.values()} - keep):
        result.withdrawn += served.withdraw(files_root, sha)
    if result.withdrawn:
        log.info("withdrew %d images of faces that may no longer be labelled", result.withdrawn)
    for page in task_pages(client, "list tasks", project=project.ls_project_id, page_size=1000, fields="task_only"):
        for task in page:
            face_id = tasks.get(task["id"])
            if face_id not in images:
                continue
            data: dict[str, Any] = dict(task.get("data") or {})
            urls = {key: served.file_url(sha) for key, sha in images[face_id].items()}
            if all(data.get(key) == url for key, url in urls.items()):
                continue
            client.call("move a task onto served images", client.sdk.tasks.update, str(task["id"]), data=data | urls)
            result.migrated += 1
    if result.migrated:
        log.info("moved %d tasks of project %s onto served image URLs", result.migrated, project.ls_project_id)


def _adopt_unconfirmed(*, db: Database, client: LabelStudioClient, project: LabelProject,
                       result: PushResult) -> None:
    """Resolve intent rows left by an interrupted push: adopt the tasks that were created."""
    with db.unit_of_work() as session:
        pending = {t.face_id: t for t in session.scalars(select(LabelTask).where(
            LabelTask.project_id == project.id, LabelTask.ls_task_id.is_(None)))}
        if not pending:
            return
        found: dict[int, int] = {}
        for tasks in task_pages(client, "list tasks", project=project.ls_project_id, page_size=1000,
                                fields="task_only"):
            for task in tasks:
                face_id = (task.get("data") or {}).get("face_id")
                if face_id in pending:
                    found[face_id] = task["id"]
        for face_id, row in pending.items():
            if face_id in found:
                row.ls_task_id = found[face_id]
                result.adopted += 1
            else:
                session.delete(row)
        log.info("interrupted push: adopted %d tasks, %d faces will be pushed again",
                 result.adopted, len(pending) - result.adopted)


def push_faces(*, db: Database, blobs: BlobStore, client: LabelStudioClient, project_id: int,
               files_root: Path, shoot: str | None = None, batch_size: int = 1000,
               progress: ProgressFn | None = None) -> PushResult:
    result = PushResult()
    with db.unit_of_work() as session:
        project = session.get(LabelProject, project_id)
        if project is None:
            raise NotFound(f"no labeling project {project_id}", hint="run `likeness label setup`")
        shoot_id = ingest_api.shoot_id_by_name(session=session, name=shoot) if shoot else None
        session.expunge(project)
    _adopt_unconfirmed(db=db, client=client, project=project, result=result)
    _sync_served(db=db, blobs=blobs, client=client, project=project, files_root=files_root, result=result)
    face_ids = _eligible(db=db, project_id=project.id, shoot_id=shoot_id, result=result)
    version = model_version()
    for start in range(0, len(face_ids), batch_size):
        batch = face_ids[start:start + batch_size]
        with db.unit_of_work() as session:
            faces = session.scalars(select(Face).where(Face.id.in_(batch)).order_by(Face.id)
                                    .options(selectinload(Face.shot).selectinload(Shot.shoot))).all()
            predicted = {face.id: predict(face) for face in faces}
            for face in faces:
                for sha in set(_images(face).values()):
                    served.serve(blobs, files_root, sha)
            tasks = [task_payload(face, blobs, files_root, predicted[face.id], version) for face in faces]
            ordered = [face.id for face in faces]
            session.execute(insert(LabelTask), [{"project_id": project.id, "face_id": f} for f in ordered])
        response = client.call("import tasks", client.sdk.projects.import_tasks, project.ls_project_id,
                               request=tasks, return_task_ids=True)
        # The SDK's response model omits task_ids, which the server sends with return_task_ids=True
        # (the model keeps unknown fields as attributes).
        task_ids = list(response.task_ids or [])  # type: ignore[attr-defined]
        if len(task_ids) != len(ordered):
            raise RuntimeError(f"Label Studio returned {len(task_ids)} task ids for {len(ordered)} tasks")
        _confirm(db=db, project_id=project.id, face_ids=ordered, task_ids=task_ids, predicted=predicted,
                 version=version)
        result.pushed += len(ordered)
        if progress:
            progress(result.pushed, len(face_ids), "")
    return result


def _confirm(*, db: Database, project_id: int, face_ids: list[int], task_ids: list[int],
             predicted: dict[int, list[Predicted]], version: str) -> None:
    """Record the task ids Label Studio gave (in import order) and our predictions as labels."""
    with db.unit_of_work() as session:
        row_ids = dict(session.execute(select(LabelTask.face_id, LabelTask.id).where(
            LabelTask.project_id == project_id, LabelTask.face_id.in_(face_ids))).all())
        session.execute(update(LabelTask), [{"id": row_ids[f], "ls_task_id": t} for f, t in zip(face_ids, task_ids)])
        labels = [{"face_id": f, "attribute": p.attribute, "value": p.value, "source": "prediction",
                   "annotator": version, "ls_task_id": t, "raw": {"score": p.score}}
                  for f, t in zip(face_ids, task_ids) for p in predicted[f]]
        if labels:
            session.execute(insert(Label), labels)


def task_payload(face: Face, blobs: BlobStore, files_root: Path, predicted: list[Predicted], version: str) -> dict:
    """The task JSON for a face: its images as URLs into the served folder, its ids, our prediction.

    Only builds the JSON: push puts the images into the served folder (`labeling.served.serve`).
    """
    shot = face.shot
    data: dict[str, Any] = {"face_id": face.id, "shot_id": shot.id, "shoot": shot.shoot.name, "sitter": shot.sitter_code}
    # The config shows both images, so Label Studio requires both keys: no preview, show the crop.
    data |= {key: served.file_url(sha) for key, sha in _images(face).items()}
    task: dict = {"data": data}
    if predicted:
        task["predictions"] = [as_prediction(predicted, version)]
    return task
