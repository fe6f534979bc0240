"""The Label Studio project for our faces: create it, keep its config in step with the taxonomy.

The project row in our database remembers which server and project id hold our tasks. Running
setup again regenerates the config; when the taxonomy changed, the project is updated in place
(tasks and annotations stay), and values that left the taxonomy but still appear in annotations
are kept as retired choices so Label Studio accepts the new config.

The project reads images from one local-files storage: the served folder of pushed faces'
images (`labeling.served`). Setup re-points a project made when the storage was the whole blob
store, so Label Studio no longer hands out blobs nobody pushed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling import served
from labeling.client import LabelStudioClient, LabelStudioError
from labeling.label_config import build_label_config, config_sha256
from labeling.predictions import model_version
from labeling.taxonomy import Taxonomy
from likeness.errors import NotFound
from likeness.models import Label, LabelProject, LabelState

log = logging.getLogger(__name__)

PROJECT_TITLE = "likeness faces"


@dataclass(frozen=True)
class ProjectSettings:
    overlap: int            # annotators per task on the overlap sample
    overlap_percent: int    # share of tasks in that sample
    files_root: Path        # the server's local-files document root: the served folder, as seen from here
    blob_root: str | None   # the blob store's folder, which must lie apart from it (None: not local)


@dataclass(frozen=True)
class SetupResult:
    project_id: int
    ls_project_id: int
    created: bool
    config_changed: bool
    retired: dict[str, list[str]]


def current_project(*, session: Session, server_url: str) -> LabelProject:
    project = session.scalars(select(LabelProject).where(LabelProject.server_url == server_url)
                              .order_by(LabelProject.id.desc())).first()
    if project is None:
        raise NotFound(f"no labeling project on {server_url}", hint="run `likeness label setup`")
    return project


def retired_values(*, session: Session, taxonomy: Taxonomy) -> dict[str, set[str]]:
    """Values that annotations use but the taxonomy no longer lists, per attribute."""
    rows = session.execute(select(Label.attribute, Label.value).where(
        Label.source == "annotation", Label.state == LabelState.current, Label.value.is_not(None)).distinct())
    retired: dict[str, set[str]] = {}
    for attribute, value in rows:
        if value is None:
            continue  # excluded by the query already; the column itself is nullable
        if attribute in taxonomy.by_name and not taxonomy.knows(attribute, value):
            retired.setdefault(attribute, set()).add(value)
    return retired


def setup_project(*, session: Session, client: LabelStudioClient, taxonomy: Taxonomy,
                  settings: ProjectSettings) -> SetupResult:
    if settings.blob_root is not None:
        served.check_apart(settings.files_root, settings.blob_root)
    storage = served.prepare(settings.files_root)
    retired = retired_values(session=session, taxonomy=taxonomy)
    config = build_label_config(taxonomy, retired)
    digest = config_sha256(config)
    sdk = client.sdk
    fields = dict(label_config=config, maximum_annotations=settings.overlap,
                  overlap_cohort_percentage=settings.overlap_percent, show_overlap_first=True,
                  model_version=model_version(), show_collab_predictions=True)
    project = session.scalars(select(LabelProject).where(LabelProject.server_url == client.url)
                              .order_by(LabelProject.id.desc())).first()
    created = project is None
    if project is None:
        remote = client.call("create the project", sdk.projects.create, title=PROJECT_TITLE,
                             description="Perceived attributes of accepted, released faces.", **fields)
        if remote.id is None:
            raise LabelStudioError(f"Label Studio at {client.url} created the project but returned no id")
        project = LabelProject(server_url=client.url, ls_project_id=remote.id, title=PROJECT_TITLE,
                               config_sha256=digest)
        session.add(project)
        session.flush()
        _connect_files(client, remote.id, storage)
        changed = True
    else:
        changed = project.config_sha256 != digest
        client.call("update the project", sdk.projects.update, project.ls_project_id,
                    **(fields if changed else {k: v for k, v in fields.items() if k != "label_config"}))
        project.config_sha256 = digest
        _connect_files(client, project.ls_project_id, storage)
    log.info("labeling project %s on %s (%s)", project.ls_project_id, client.url,
             "created" if created else "config updated" if changed else "unchanged")
    return SetupResult(project.id, project.ls_project_id, created, changed,
                       {k: sorted(v) for k, v in retired.items()})


STORAGE_TITLE = "likeness faces"


def _connect_files(client: LabelStudioClient, ls_project_id: int, storage: Path) -> None:
    """Make the served folder the project's only local-files storage: keep it when it is there,
    else re-point an older storage (the blob store, another root) at it, and drop any others."""
    path = str(storage)
    local = client.sdk.import_storage.local
    storages = client.call("list the project's storages", local.list, project=ls_project_id)
    keep = next((s for s in storages if (s.path or "").rstrip("/") == path), None)
    if keep is None and storages:
        keep = storages[0]
        if keep.id is None:
            raise LabelStudioError(f"Label Studio at {client.url} lists a storage without an id")
        log.info("re-pointing local-files storage %s of project %s from %s to %s", keep.id, ls_project_id, keep.path, path)
        client.call("re-point the files storage", local.update, keep.id, path=path, project=ls_project_id,
                    use_blob_urls=True, title=STORAGE_TITLE)
    for other in storages:
        if other is not keep and other.id is not None:
            log.info("removing local-files storage %s (%s) of project %s", other.id, other.path, ls_project_id)
            client.call("remove a files storage", local.delete, other.id)
    if keep is None:
        client.call("connect the served images", local.create, project=ls_project_id, path=path, use_blob_urls=True,
                    title=STORAGE_TITLE, description="images of pushed faces only; tasks are pushed by likeness, never synced from here")
