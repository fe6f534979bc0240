"""The data folder, the SQLite database and the blob store are their owner's alone: they hold
personal data, password hashes and photographs of people."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from likeness.config import Settings
from likeness.db import Database
from likeness.workbench import Workbench


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what most systems give a login shell
    try:
        yield
    finally:
        os.umask(previous)


def test_data_folder_and_database_are_created_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, database_url=None, blob_url=None, workers=0)
    with Workbench.open(settings) as workbench:
        workbench.db.upgrade()
        with workbench.db.unit_of_work() as session:
            session.execute(text("CREATE TABLE scratch (x INTEGER)"))
            session.execute(text("INSERT INTO scratch VALUES (1)"))
        database = data / "likeness.db"
        assert _mode(data) == 0o700
        assert _mode(database) == 0o600
        side_files = [data / f"likeness.db{suffix}" for suffix in ("-wal", "-shm")]
        assert all(path.exists() for path in side_files)  # WAL mode, a connection still open
        assert [_mode(path) for path in side_files] == [0o600, 0o600]
        sha = workbench.blobs.put_bytes(b"a photograph")
        assert _mode(data / "blobs") == 0o700
        assert _mode(workbench.blobs.local_path(sha)) == 0o600
        assert _mode(workbench.blobs.local_path(sha).parent) == 0o700


def test_a_wider_existing_database_is_narrowed(tmp_path: Path) -> None:
    database = tmp_path / "likeness.db"
    Database(f"sqlite:///{database}").close()
    with_wal = tmp_path / "likeness.db-wal"
    with_wal.write_bytes(b"")
    os.chmod(database, 0o644)
    os.chmod(with_wal, 0o666)
    db = Database(f"sqlite:///{database}")
    try:
        assert _mode(database) == 0o600 and _mode(with_wal) == 0o600
    finally:
        db.close()


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    db = Database(f"sqlite:///{shared / 'likeness.db'}")
    db.upgrade()
    db.close()
    assert _mode(shared) == 0o755  # not ours to change
    assert _mode(shared / "likeness.db") == 0o600
