"""The likeness workbench: a router that offers each role its pages (`likeness app` starts it)."""

from __future__ import annotations

import streamlit as st

from likeness import users
from likeness.models import Role
from ui._common import current_user, guard, init_state, plain, sign_in, sign_out, workbench


def main() -> None:
    st.set_page_config(page_title="likeness", page_icon=":material/photo_camera:", layout="wide")
    init_state()
    with guard(stop=True):
        wb = workbench()

    user = current_user()
    if user is not None:
        # Re-read the role on every rerun: a deactivated account or a changed role takes effect at once.
        with guard(stop=True), wb.db.unit_of_work() as session:
            role = users.active_role(session=session, user_id=user.user_id)
        if role is None:
            sign_out()
            user = None
        elif role is not user.role:
            user = type(user)(user_id=user.user_id, username=user.username, role=role)
            sign_in(user)

    login = st.Page("ui/pages/login.py", title="Sign in", icon=":material/login:")
    shoots = st.Page("ui/pages/shoots.py", title="Shoots", icon=":material/photo_library:", default=True)
    people = st.Page("ui/pages/people.py", title="People", icon=":material/badge:")
    review = st.Page("ui/pages/review.py", title="Review", icon=":material/thumbs_up_down:")
    labeling = st.Page("ui/pages/labeling.py", title="Labeling", icon=":material/label:")
    training = st.Page("ui/pages/training.py", title="Training", icon=":material/model_training:")

    pages = {"": [login]} if user is None else {"Studio": [shoots]}
    if user is not None and user.role in (Role.labeler, Role.admin):
        pages["Labeling"] = [labeling]
    if user is not None and user.role in (Role.reviewer, Role.admin):
        pages["Review"] = [review]
    if user is not None and user.role is Role.admin:
        pages["Admin"] = [people, training]
    if user is not None:
        with st.sidebar:
            st.caption(f"Signed in as **{plain(user.username)}** ({user.role.value})")
            st.button("Sign out", key="sign_out", on_click=sign_out, icon=":material/logout:")

    st.navigation(pages).run()


# Streamlit runs this file as __main__; ingest worker processes (multiprocessing "spawn") import
# it again as __mp_main__, and must not build the app or open the database there.
if __name__ == "__main__":
    main()
