"""The Label Studio project for our faces: create it, keep its config in step with the taxonomy.

The project row in our database remembers which server and project id hold our tasks. Running
setup again regenerates the config; when the taxonomy changed, the project is updated in place
(tasks and annotations stay), and values that left the taxonomy but still appear in annotations
are kept as retired choices so Label Studio accepts the new config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.client import LabelStudioClient, LabelStudioError
from labeling.label_config import build_label_config, config_sha256
from labeling.predictions import model_version
from labeling.taxonomy import Taxonomy
from likeness.errors import ConfigError, NotFound
from likeness.models import Label, LabelProject, LabelState

log = logging.getLogger(__name__)

PROJECT_TITLE = "likeness faces"


@dataclass(frozen=True)
class ProjectSettings:
    overlap: int            # annotators per task on the overlap sample
    overlap_percent: int    # share of tasks in that sample
    files_root: Path        # the server's local-files document root (holds the blob store)
    blob_root: Path         # the blob store, connected as the project's local-files storage


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
        _connect_files(client, remote.id, settings.blob_root)
        changed = True
    else:
        changed = project.config_sha256 != digest
        client.call("update the project", sdk.projects.update, project.ls_project_id,
                    **(fields if changed else {k: v for k, v in fields.items() if k != "label_config"}))
        project.config_sha256 = digest
    log.info("labeling project %s on %s (%s)", project.ls_project_id, client.url,
             "created" if created else "config updated" if changed else "unchanged")
    return SetupResult(project.id, project.ls_project_id, created, changed,
                       {k: sorted(v) for k, v in retired.items()})


def _connect_files(client: LabelStudioClient, ls_project_id: int, root: Path) -> None:
    """Let the project read our blob store in place (Label Studio's local-files storage)."""
    if not root.is_dir():
        raise ConfigError(f"the blob store {root} is not a local folder Label Studio can serve",
                          hint="label with a local blob store (LIKENESS_BLOB_URL)")
    client.call("connect the blob store", client.sdk.import_storage.local.create, project=ls_project_id,
                path=str(root), use_blob_urls=True, title="likeness blob store",
                description="read in place; tasks are pushed by likeness, never synced from here")
