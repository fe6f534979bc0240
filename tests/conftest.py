"""Shared fixtures: test data, both databases (SQLite and a real PostgreSQL), workbenches."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text

from likeness.config import Settings
from likeness.db import Database
from likeness.workbench import Workbench
from samples.shoot import SampleShoot, build_sample_shoot
from tests.postgres_server import PostgresServer, find_pg_bin

REPO_ROOT = Path(__file__).resolve().parent.parent


def _required(flag: str) -> bool:
    return os.environ.get(flag, "") == "1"


def skip_or_fail(reason: str, flag: str) -> NoReturn:
    """Skip, unless `flag` is set (CI), where a missing dependency is a failure."""
    if _required(flag):
        pytest.fail(f"{reason} ({flag}=1)")
    pytest.skip(f"{reason}; set {flag}=1 to make this a failure")


@pytest.fixture(scope="session")
def testdata_dir() -> Path:
    path = Path(os.environ.get("LIKENESS_TESTDATA", REPO_ROOT.parent / "shared" / "testdata"))
    if not (path / "labels.csv").is_file():
        skip_or_fail(f"test data not found at {path} (set LIKENESS_TESTDATA)", "LIKENESS_REQUIRE_TESTDATA")
    return path


# -- databases ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    given = os.environ.get("LIKENESS_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        skip_or_fail("PostgreSQL binaries not installed (Debian package postgresql)", "LIKENESS_REQUIRE_POSTGRES")
    server = PostgresServer(bin_dir).start()
    try:
        yield server.url()
    finally:
        server.stop()


def _swap_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """A database migrated once with Alembic; each test copies it (CREATE DATABASE … TEMPLATE)."""
    name = f"likeness_template_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(_swap_database(postgres_admin_url, name))
    db.upgrade()
    db.close()
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.close()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database per test, on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "likeness.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("postgres_template")
    name = f"likeness_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _swap_database(admin_url, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- workbenches --------------------------------------------------------------------------------

def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "blob_url": str(tmp_path / "blobs"),
        "workers": 0,
        "align_size": 256,
        "preview_size": 512,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def workbench(tmp_path: Path, database_url: str) -> Iterator[Workbench]:
    with Workbench.open(make_settings(tmp_path, database_url)) as wb:
        yield wb


@pytest.fixture
def env_workbench(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workbench]:
    """The same workbench, also exported through LIKENESS_* variables (for CLI and app runs)."""
    settings = make_settings(tmp_path, database_url)
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LIKENESS_DATABASE_URL", database_url)
    monkeypatch.setenv("LIKENESS_BLOB_URL", str(settings.blob_url))
    monkeypatch.setenv("LIKENESS_WORKERS", "0")
    monkeypatch.setenv("LIKENESS_ALIGN_SIZE", "256")
    monkeypatch.setenv("LIKENESS_PREVIEW_SIZE", "512")
    with Workbench.open(settings) as wb:
        yield wb


# -- sample data --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sample_shoot_template(tmp_path_factory: pytest.TempPathFactory) -> SampleShoot:
    return build_sample_shoot(tmp_path_factory.mktemp("shoot") / "demo-shoot", n_good=4, frame_size=(768, 512))


@pytest.fixture
def sample_shoot(sample_shoot_template: SampleShoot) -> SampleShoot:
    return sample_shoot_template


# -- a trained StyleGAN snapshot ----------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, run folder) of one tiny 16x16 training step, trained once for the session."""
    from tests.training.conftest import make_dataset, tiny_config
    from training.loop import train

    root = tmp_path_factory.mktemp("tiny-run")
    prepared = make_dataset(root)
    train(tiny_config(prepared.dest, root / "run", total_kimg=0.004), resume=None)
    return prepared.dest, root / "run"


@pytest.fixture
def checkpoint_id(workbench: Workbench, tiny_trained_run: tuple[Path, Path], tmp_path: Path) -> int:
    """The session's tiny trained snapshot recorded as a checkpoint of a run (resuming a finished
    run records it, no steps)."""
    from sqlalchemy import select

    from likeness.models import Checkpoint
    from tests.training.conftest import tiny_config
    from training.runs import start_run

    data, run = tiny_trained_run
    shutil.copytree(run, tmp_path / "run")
    run_id = start_run(workbench, tiny_config(data, tmp_path / "run", total_kimg=0.004), resume="auto", external=True)
    with workbench.db.unit_of_work() as session:
        found = session.scalar(select(Checkpoint.id).where(Checkpoint.run_id == run_id))
        assert found is not None
        return found
