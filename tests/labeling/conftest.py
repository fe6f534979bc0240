"""A real Label Studio for the labeling tests: one server per test run (session-scoped), one project per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labeling import server
from likeness.config import Settings
from likeness.errors import LikenessError
from likeness.workbench import Workbench
from tests.conftest import REPO_ROOT, make_settings, skip_or_fail
from tests.labeling.support import LabelStudioServer
from tests.postgres_server import _free_port


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    home = tmp_path_factory.mktemp("labelstudio")
    blob_root = home / "files" / "blobs"
    blob_root.mkdir(parents=True)
    venv = Path(os.environ.get("LIKENESS_LABEL_STUDIO_VENV", REPO_ROOT / ".venv-labelstudio"))
    settings = Settings(data_dir=home / "data", blob_url=str(blob_root), label_studio_port=_free_port(),
                        label_studio_venv=venv)
    try:
        server.start(settings, str(blob_root))
    except LikenessError as exc:
        skip_or_fail(f"Label Studio could not be started: {exc}", "LIKENESS_REQUIRE_LABEL_STUDIO")
    try:
        yield LabelStudioServer(settings, blob_root)
    finally:
        server.stop(settings)


@pytest.fixture
def lwb(tmp_path: Path, database_url: str, label_studio: LabelStudioServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Workbench]:
    """A workbench that uses the test run's Label Studio as an existing server (URL + token, and
    its served folder as the files root), also exported through LIKENESS_* variables for CLI and
    app runs."""
    connection = label_studio.connection
    values: dict[str, Any] = dict(data_dir=tmp_path / "data", database_url=database_url, blob_url=str(label_studio.blob_root),
                  label_studio_url=connection.url, label_studio_token=connection.token,
                  label_studio_files_root=server.files_root(label_studio.settings))
    for name, value in values.items():
        monkeypatch.setenv(f"LIKENESS_{name.upper()}", str(value))
    with Workbench.open(make_settings(tmp_path, **values)) as wb:
        yield wb
