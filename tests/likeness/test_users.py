from __future__ import annotations

import pytest
from sqlalchemy import select

from likeness.errors import InvalidInput
from likeness.models import AuditEvent, Role, User
from likeness.users import authenticate, create_user
from likeness.workbench import Workbench


def test_users_sign_in_with_hashed_passwords(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        create_user(session=session, username="ana", password="correct horse", role="photographer")
    with workbench.db.unit_of_work() as session:
        stored = session.scalar(select(User).where(User.username == "ana"))
        assert stored is not None and "correct horse" not in stored.password_hash
        assert stored.password_hash.startswith("$argon2id$")
        signed_in = authenticate(session=session, username="ana", password="correct horse")
        assert signed_in is not None and signed_in.role is Role.photographer
        assert authenticate(session=session, username="ana", password="wrong horse!") is None
        assert authenticate(session=session, username="nobody", password="correct horse") is None
        assert session.scalar(select(AuditEvent.action)) == "user.create"


def test_bad_users_are_refused(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        create_user(session=session, username="ana", password="long enough", role=Role.admin)
        with pytest.raises(InvalidInput, match="already exists"):
            create_user(session=session, username="ana", password="long enough", role=Role.admin)
        with pytest.raises(InvalidInput, match="unknown role"):
            create_user(session=session, username="bo", password="long enough", role="boss")
        with pytest.raises(InvalidInput, match="shorter"):
            create_user(session=session, username="bo", password="short", role="labeler")
