from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from likeness.db import Database
from likeness.errors import ConfigError, ServiceUnavailable
from likeness.models import Person, Shoot, Shot
from likeness.workbench import Workbench


def test_migration_creates_every_table(workbench: Workbench) -> None:
    tables = set(inspect(workbench.db.engine).get_table_names())
    assert {"people", "personal_data", "releases", "shoots", "shots", "faces", "users", "audit_events"} <= tables
    assert workbench.db.current_revision() == workbench.db.head_revision()


def test_empty_database_is_refused_with_the_fix(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(ConfigError, match="likeness db upgrade"):
        db.require_current()
    db.upgrade()
    db.require_current()
    db.close()


def test_unreachable_server_is_a_clear_error() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ServiceUnavailable, match="127.0.0.1"):
        db.require_current()


def _shot(shoot: Shoot, sha: str, status: str = "accepted") -> Shot:
    return Shot(
        sha256=sha, shoot_id=shoot.id, relative_path="a.dng", file_format="DNG", file_size=1, width=1, height=1,
        capture_date=shoot.shoot_date, status=status,
    )


def test_constraints_hold_on_both_databases(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        shoot = Shoot(name="s", shoot_date=dt.date(2026, 1, 1))
        session.add(shoot)
        session.flush()
        session.add(_shot(shoot, "a" * 64))
    with pytest.raises(IntegrityError):
        with workbench.db.unit_of_work() as session:
            shoot = cast(Shoot, session.scalar(select(Shoot)))
            session.add(_shot(shoot, "a" * 64))  # the same content twice
    with pytest.raises(StatementError, match="'maybe' is not a valid ShotStatus"):
        with workbench.db.unit_of_work() as session:
            shoot = cast(Shoot, session.scalar(select(Shoot)))
            session.add(_shot(shoot, "b" * 64, status="maybe"))  # refused by the column type
    with pytest.raises(IntegrityError, match="ck_shots_status"):
        with workbench.db.unit_of_work() as session:
            # A writer that bypasses the ORM is refused by the database's own CHECK constraint.
            shoot = cast(Shoot, session.scalar(select(Shoot)))
            session.execute(text(
                "INSERT INTO shots (sha256, shoot_id, relative_path, file_format, file_size, width, height, orientation,"
                " capture_date, exif, face_count, qa, status, created_at, updated_at) VALUES (:sha, :shoot, 'a.dng', 'DNG',"
                " 1, 1, 1, 1, :day, '{}', 0, '{}', 'maybe', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ), {"sha": "b" * 64, "shoot": shoot.id, "day": shoot.shoot_date})
    with pytest.raises(IntegrityError):
        with workbench.db.unit_of_work() as session:
            session.add_all([Person(code="P1"), Person(code="P1")])
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(Shot.sha256)) == "a" * 64
