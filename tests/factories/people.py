"""Sitters with releases, and workbench users."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from likeness.models import Role, User
from likeness.users import create_user
from likeness.workbench import Workbench
from samples.releases import register_sitter as register_sample_sitter

SHOOT_DATE = dt.date(2026, 11, 20)
EARLY_RELEASE = dt.date(2020, 1, 1)  # signed long before any shoot
PASSWORD = "correct horse battery"
# The personal data an admin sees for a sitter registered with personal_data=True.
LEGAL_NAME = "Wilhelmina Quarrington"
EMAIL = "wilhelmina@example.org"
BIRTHDAY = dt.date(1990, 5, 17)


def register_sitter(
    workbench: Workbench, tmp_path: Path, code: str = "P0001", *, release: bool = True,
    signed_on: dt.date = SHOOT_DATE, personal_data: bool = False,
) -> None:
    """A sitter, with an ai_training release signed on ``signed_on`` unless ``release`` is False;
    ``personal_data`` records :data:`LEGAL_NAME`, :data:`BIRTHDAY` and :data:`EMAIL`."""
    with workbench.db.unit_of_work() as session:
        register_sample_sitter(
            session=session, blobs=workbench.blobs, code=code, document_dir=tmp_path,
            legal_name=LEGAL_NAME if personal_data else None,
            date_of_birth=BIRTHDAY if personal_data else dt.date(1990, 1, 1),
            email=EMAIL if personal_data else None,
            release_signed_on=signed_on if release else None, actor="test",
        )


def add_user(workbench: Workbench, username: str, role: Role, password: str = PASSWORD) -> None:
    with workbench.db.unit_of_work() as session:
        create_user(session=session, username=username, password=password, role=role, actor="test")


def user_id(workbench: Workbench, username: str) -> int:
    with workbench.db.unit_of_work() as session:
        found = session.scalar(select(User.id).where(User.username == username))
    assert found is not None, f"no user {username}"
    return found
