"""Users: workbench accounts and their roles. Admins only.

Add an account, reset its password, deactivate or reactivate it, change its role: the same
functions as `likeness user ...`, each audited under the admin's name. A deactivated user or a
changed role takes effect on that user's next page load (the app re-reads the role every rerun)."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from likeness import users
from likeness.errors import InvalidInput
from likeness.models import Role
from ui._common import guard, plain, require_role, workbench

ROLES = [r.value for r in Role]
COLUMNS = {"username": "User", "role": "Role", "active": "Active"}

user = require_role(Role.admin)
wb = workbench()
st.title("Users")
table = st.container()  # filled last, so it already shows what the forms below just wrote


def _password_fields(key: str) -> tuple[str, str]:
    left, right = st.columns(2)
    password = left.text_input("Password", type="password", key=f"{key}_password")
    again = right.text_input("Password again", type="password", key=f"{key}_password_again")
    return password, again


def _same(password: str, again: str) -> str:
    if password != again:
        raise InvalidInput("the two passwords differ: type the same password twice")
    return password


with guard(stop=True), wb.db.unit_of_work() as session:
    accounts = {u.username: u for u in users.list_users(session=session)}
add_tab, password_tab, access_tab, role_tab = st.tabs(["Add a user", "Reset a password", "Deactivate or reactivate", "Change a role"])

with add_tab, st.form("add_user", clear_on_submit=True):
    left, right = st.columns(2)
    username = left.text_input("Username", key="user_name")
    role = right.selectbox("Role", ROLES, index=None, key="user_role")
    password, password_again = _password_fields("user")
    if st.form_submit_button("Add user", type="primary", key="add_user_submit"):
        with guard():
            if role is None:
                raise InvalidInput("choose the new user's role")
            with wb.db.unit_of_work() as session:
                created = users.create_user(
                    session=session, username=username, password=_same(password, password_again), role=role,
                    actor=user.username,
                ).username
            st.success(f"User {plain(created)} added as {role}.")

with password_tab, st.form("reset_password", clear_on_submit=True):
    reset_name = st.selectbox("User", list(accounts), index=None, key="reset_user")
    new_password, new_password_again = _password_fields("reset")
    if st.form_submit_button("Reset password", key="reset_submit"):
        with guard():
            if reset_name is None:
                raise InvalidInput("choose the user whose password to reset")
            with wb.db.unit_of_work() as session:
                users.reset_password(
                    session=session, username=reset_name, password=_same(new_password, new_password_again),
                    actor=user.username,
                )
            st.success(f"Password of {plain(reset_name)} reset.")

with access_tab, st.form("user_access"):
    access_name = st.selectbox(
        "User", list(accounts), index=None, key="access_user",
        format_func=lambda name: name if accounts[name].active else f"{name} (deactivated)",
    )
    left, right = st.columns(2)
    deactivate = left.form_submit_button("Deactivate", key="deactivate_submit")
    reactivate = right.form_submit_button("Reactivate", key="activate_submit")
    if deactivate or reactivate:
        with guard():
            if access_name is None:
                raise InvalidInput("choose the user to deactivate or reactivate")
            with wb.db.unit_of_work() as session:
                users.set_active(session=session, username=access_name, active=reactivate, actor=user.username)
            st.success(f"User {plain(access_name)} {'reactivated' if reactivate else 'deactivated'}.")

with role_tab, st.form("user_role_change"):
    left, right = st.columns(2)
    role_name = left.selectbox("User", list(accounts), index=None, key="role_user")
    new_role = right.selectbox("New role", ROLES, index=None, key="role_new")
    if st.form_submit_button("Change role", key="role_submit"):
        with guard():
            if role_name is None or new_role is None:
                raise InvalidInput("choose the user and the new role")
            with wb.db.unit_of_work() as session:
                changed = users.set_role(session=session, username=role_name, role=new_role, actor=user.username)
            st.success(f"User {plain(changed.username)} is now {changed.role.value}.")

with table, guard(stop=True):
    with wb.db.unit_of_work() as session:
        listed = users.list_users(session=session)
    st.dataframe([{**asdict(u), "role": u.role.value} for u in listed], hide_index=True, column_config=COLUMNS,
                 width="stretch")
