from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from likeness.errors import InvalidInput, NotFound
from likeness.models import AuditEvent, Role, User
from likeness.users import active_role, authenticate, create_user, list_users, reset_password, set_active, set_role
from likeness.workbench import Workbench
from tests.cli_runner import run_cli


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


# -- managing accounts ---------------------------------------------------------------------------

def _audit(session: Session) -> list[tuple[str, str, dict]]:
    return [(e.actor, e.action, e.details) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_admins_reset_passwords_and_change_roles_audited(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        create_user(session=session, username="root", password="long enough", role=Role.admin)
        create_user(session=session, username="ana", password="first password", role="photographer")
    with workbench.db.unit_of_work() as session:
        reset_password(session=session, username="ana", password="second password", actor="root")
        assert set_role(session=session, username="ana", role="reviewer", actor="root").role is Role.reviewer
    with workbench.db.unit_of_work() as session:
        assert authenticate(session=session, username="ana", password="first password") is None
        signed_in = authenticate(session=session, username="ana", password="second password")
        assert signed_in is not None and signed_in.role is Role.reviewer
        events = _audit(session)[2:]
        assert [(actor, action) for actor, action, _ in events] == [("root", "user.reset_password"), ("root", "user.role")]
        assert events[1][2] == {"username": "ana", "old_role": "photographer", "role": "reviewer"}
        assert not any("second password" in str(details) for _, _, details in events)
        with pytest.raises(InvalidInput, match="shorter"):
            reset_password(session=session, username="ana", password="short", actor="root")
        with pytest.raises(InvalidInput, match="already has the role reviewer"):
            set_role(session=session, username="ana", role=Role.reviewer, actor="root")
        with pytest.raises(InvalidInput, match="unknown role 'boss'"):
            set_role(session=session, username="ana", role="boss", actor="root")
        with pytest.raises(NotFound, match="no user 'nobody'"):
            reset_password(session=session, username="nobody", password="long enough", actor="root")


def test_deactivated_users_lose_access_until_reactivated(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        create_user(session=session, username="root", password="long enough", role=Role.admin)
        ana = create_user(session=session, username="ana", password="long enough", role="labeler")
        ana_id = ana.id
    with workbench.db.unit_of_work() as session:
        assert set_active(session=session, username="ana", active=False, actor="root").active is False
    with workbench.db.unit_of_work() as session:
        assert active_role(session=session, user_id=ana_id) is None  # what the app checks on each rerun
        assert authenticate(session=session, username="ana", password="long enough") is None
        assert [u.active for u in list_users(session=session)] == [False, True]
        with pytest.raises(InvalidInput, match="already deactivated"):
            set_active(session=session, username="ana", active=False, actor="root")
        set_active(session=session, username="ana", active=True, actor="root")
    with workbench.db.unit_of_work() as session:
        assert active_role(session=session, user_id=ana_id) is Role.labeler
        assert [action for _, action, _ in _audit(session)][2:] == ["user.deactivate", "user.activate"]


def test_the_last_active_admin_cannot_be_removed(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        create_user(session=session, username="root", password="long enough", role=Role.admin)
        with pytest.raises(InvalidInput, match="cannot deactivate root: it is the last active admin"):
            set_active(session=session, username="root", active=False, actor="root")
        with pytest.raises(InvalidInput, match="cannot change the role of root: it is the last active admin"):
            set_role(session=session, username="root", role="labeler", actor="root")
        create_user(session=session, username="second", password="long enough", role=Role.admin)
        set_role(session=session, username="root", role="labeler", actor="second")
        assert [(u.username, u.role) for u in list_users(session=session)] == [("root", Role.labeler), ("second", Role.admin)]


def test_user_commands_manage_accounts(env_workbench: Workbench) -> None:
    assert run_cli("user", "add", "root", "--role", "admin", input="long enough\nlong enough\n").exit_code == 0
    assert run_cli("user", "add", "ana", "--role", "labeler", input="first password\nfirst password\n").exit_code == 0
    reset = run_cli("user", "reset-password", "ana", input="second password\nsecond password\n")
    assert reset.exit_code == 0 and "password of ana reset" in reset.output
    role = run_cli("user", "role", "ana", "reviewer")
    assert role.exit_code == 0 and "user ana is now reviewer" in role.output
    assert "user ana deactivated" in run_cli("user", "deactivate", "ana").output
    listing = run_cli("user", "list").output
    assert any(line.split("│")[1:4] == [" ana      ", " reviewer ", " no     "] for line in listing.splitlines()), listing
    with env_workbench.db.unit_of_work() as session:
        assert authenticate(session=session, username="ana", password="second password") is None  # deactivated
    assert "user ana reactivated" in run_cli("user", "activate", "ana").output
    with env_workbench.db.unit_of_work() as session:
        signed_in = authenticate(session=session, username="ana", password="second password")
        assert signed_in is not None and signed_in.role is Role.reviewer
        actions = [(e.actor, e.action) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[2:] == [("cli", "user.reset_password"), ("cli", "user.role"), ("cli", "user.deactivate"), ("cli", "user.activate")]
    last_admin = run_cli("user", "deactivate", "root")
    assert last_admin.exit_code == 1
    assert last_admin.output.strip() == "error: cannot deactivate root: it is the last active admin (make another admin first)"
    missing = run_cli("user", "role", "nobody", "admin")
    assert missing.exit_code == 1 and missing.output.strip() == "error: no user 'nobody' (see `likeness user list`)"
