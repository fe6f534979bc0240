"""Sign in with a workbench account (`likeness user add` creates them)."""

from __future__ import annotations

import streamlit as st

from likeness.users import authenticate
from ui._common import guard, sign_in, workbench

_, middle, _ = st.columns([1, 2, 1])  # a narrow form in the wide layout
middle.title("likeness")
middle.caption("Studio capture, ingest and labeling workbench")

with middle.form("login"):
    username = st.text_input("Username", key="login_username", autocomplete="username")
    password = st.text_input("Password", key="login_password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Sign in", type="primary", key="login_submit")

if submitted:
    with middle, guard():
        with workbench().db.unit_of_work() as session:
            user = authenticate(session=session, username=username, password=password)
        if user is None:
            # Never say which of the two was wrong.
            st.error("Wrong username or password.", icon=":material/error:")
        else:
            sign_in(user)
            st.rerun()  # outside the unit of work: the rerun exception would roll it back
