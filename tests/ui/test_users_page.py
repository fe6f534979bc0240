"""The Users page through AppTest: admins add users, reset passwords, deactivate, change roles."""

from __future__ import annotations

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from likeness.models import AuditEvent, Role
from likeness.users import authenticate
from likeness.workbench import Workbench
from tests.factories.app import sign_in, start, titles
from tests.factories.people import add_user


def _admin_on_users(workbench: Workbench) -> AppTest:
    add_user(workbench, "root", Role.admin)
    at = sign_in(start(), "root")
    at.switch_page("ui/pages/users.py").run()
    assert not at.exception
    assert titles(at) == ["Users"]
    return at


def test_only_admins_see_the_users_page(env_workbench: Workbench) -> None:
    add_user(env_workbench, "ana", Role.reviewer)
    at = sign_in(start(), "ana")
    at.switch_page("ui/pages/users.py").run()
    assert "Users" not in titles(at)
    assert not at.dataframe


def test_admins_add_a_user(env_workbench: Workbench) -> None:
    at = _admin_on_users(env_workbench)
    at.text_input(key="user_name").input("bo")
    at.selectbox(key="user_role").set_value("labeler")
    at.text_input(key="user_password").input("long enough")
    at.text_input(key="user_password_again").input("not the same")
    at.button(key="add_user_submit").click().run()
    assert [e.value for e in at.error] == ["the two passwords differ: type the same password twice"]
    at.text_input(key="user_name").input("bo")
    at.selectbox(key="user_role").set_value("labeler")
    at.text_input(key="user_password").input("long enough")
    at.text_input(key="user_password_again").input("long enough")
    at.button(key="add_user_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == ["User bo added as labeler."]
    assert list(at.dataframe[0].value["username"]) == ["bo", "root"]
    with env_workbench.db.unit_of_work() as session:
        signed_in = authenticate(session=session, username="bo", password="long enough")
        assert signed_in is not None and signed_in.role is Role.labeler
        assert session.scalar(select(AuditEvent.actor).where(AuditEvent.subject_id == str(signed_in.user_id))) == "root"


def test_admins_reset_a_password_and_change_a_role(env_workbench: Workbench) -> None:
    add_user(env_workbench, "ana", Role.photographer)
    at = _admin_on_users(env_workbench)
    at.selectbox(key="reset_user").set_value("ana")
    at.text_input(key="reset_password").input("brand new password")
    at.text_input(key="reset_password_again").input("brand new password")
    at.button(key="reset_submit").click().run()
    assert [s.value for s in at.success] == ["Password of ana reset."]
    at.selectbox(key="role_user").set_value("ana")
    at.selectbox(key="role_new").set_value("reviewer")
    at.button(key="role_submit").click().run()
    assert not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == ["User ana is now reviewer."]
    assert list(at.dataframe[0].value["role"]) == ["reviewer", "admin"]
    with env_workbench.db.unit_of_work() as session:
        signed_in = authenticate(session=session, username="ana", password="brand new password")
        assert signed_in is not None and signed_in.role is Role.reviewer
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "root").order_by(AuditEvent.id)))
    assert actions == ["user.reset_password", "user.role"]


def test_a_user_deactivated_on_the_page_is_signed_out_and_can_be_reactivated(env_workbench: Workbench) -> None:
    add_user(env_workbench, "ana", Role.labeler)
    ana = sign_in(start(), "ana")
    assert "Signed in as" in ana.sidebar.caption[0].value
    at = _admin_on_users(env_workbench)
    at.selectbox(key="access_user").set_value("ana")
    at.button(key="deactivate_submit").click().run()
    assert [s.value for s in at.success] == ["User ana deactivated."]
    assert list(at.dataframe[0].value["active"]) == [False, True]
    ana.run()
    assert not ana.sidebar.caption, "a deactivated user is signed out on the next rerun"
    at.selectbox(key="access_user").set_value("root")
    at.button(key="deactivate_submit").click().run()
    assert [e.value for e in at.error] == ["cannot deactivate root: it is the last active admin (make another admin first)"]
    at.selectbox(key="access_user").set_value("ana")
    at.button(key="activate_submit").click().run()
    assert [s.value for s in at.success] == ["User ana reactivated."]
    with env_workbench.db.unit_of_work() as session:
        assert authenticate(session=session, username="ana", password="correct horse battery") is not None
