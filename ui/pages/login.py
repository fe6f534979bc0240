"""Sign in with a workbench account (`likeness user add` creates them)."""

from __future__ import annotations

import streamlit as st

from likeness import signin
from ui._common import client_address, guard, sign_in, workbench

_, middle, _ = st.columns([1, 2, 1])  # a narrow form in the wide layout
middle.title("likeness")
middle.caption("Studio capture, ingest and labeling workbench")

with middle.form("login"):
    username = st.text_input("Username", key="login_username", autocomplete="username")
    password = st.text_input("Password", key="login_password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Sign in", type="primary", key="login_submit")

if submitted:
    with middle, guard():
        wb = workbench()
        # Throttled per account and per client address; every failure is audited.
        with wb.db.unit_of_work() as session:
            outcome = signin.attempt(session=session, username=username, password=password, client=client_address())
            started = (signin.start(session=session, user=outcome.user, hours=wb.settings.session_hours)
                       if outcome.user is not None else None)
        if outcome.user is None or started is None:
            st.error(outcome.message, icon=":material/error:")
        else:
            sign_in(outcome.user, started.session_id, ticket=started.ticket)
            st.rerun()  # outside the unit of work: the rerun exception would roll it back
