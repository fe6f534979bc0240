"""The likeness workbench: a router that offers each role its pages (`likeness app` starts it).

`streamlit run streamlit_app.py` finds the `app` (an st.App) at the bottom, serves it with
uvicorn and runs this file as the script of every browser session. The App adds two small routes
to Streamlit's own server (likeness.signin): Streamlit has no API to set an HTTP-only cookie from
a script, so the page trades a one-time ticket for the sign-in cookie there.
"""

from __future__ import annotations

import json

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from likeness import signin
from likeness.models import Role
from ui._common import (
    COOKIE_JOB_KEY,
    SESSION_KEY,
    current_user,
    guard,
    init_state,
    plain,
    session_cookie,
    sign_in,
    sign_out,
    workbench,
)

# url path -> (file, title, icon). The same paths exist while signed out and show the sign-in
# form, so a reload or a bookmarked URL lands on its page after signing in, not on "Page not found".
PAGES = {
    "shoots": ("ui/pages/shoots.py", "Shoots", ":material/photo_library:"),
    "capture": ("ui/pages/capture.py", "Capture", ":material/camera:"),
    "people": ("ui/pages/people.py", "People", ":material/badge:"),
    "users": ("ui/pages/users.py", "Users", ":material/manage_accounts:"),
    "review": ("ui/pages/review.py", "Review", ":material/thumbs_up_down:"),
    "labeling": ("ui/pages/labeling.py", "Labeling", ":material/label:"),
    "training": ("ui/pages/training.py", "Training", ":material/model_training:"),
    "datasets": ("ui/pages/datasets.py", "Datasets", ":material/dataset:"),
    "lineage": ("ui/pages/lineage.py", "Lineage", ":material/account_tree:"),
    "faces": ("ui/pages/faces.py", "Faces", ":material/face:"),
}
LOGIN = "ui/pages/login.py"


def _base_path() -> str:
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def _cookie_job() -> None:
    """Set or drop the sign-in cookie through the app's own routes (see likeness.signin)."""
    job = st.session_state.pop(COOKIE_JOB_KEY, None)
    if not job:
        return
    kind, ticket = job
    route = signin.SESSION_ROUTE if kind == "set" else signin.SIGNOUT_ROUTE
    url = json.dumps(_base_path() + route)
    # keepalive: a reload or a link followed at once does not cancel the request.
    st.html(
        f"<script>fetch({url}, {{method: 'POST', body: {json.dumps(ticket)}, credentials: 'same-origin', keepalive: true}});</script>",
        unsafe_allow_javascript=True,
    )


def _signed_in_user() -> None:
    """Bring the session's user up to date: from the cookie after a reload, and re-checked on
    every rerun (signed out elsewhere, expired, deactivated, or a changed role takes effect at once)."""
    wb = workbench()
    user = current_user()
    with wb.db.unit_of_work() as session:
        if user is None:
            token = session_cookie()
            resumed = signin.resume_token(session=session, token=token) if token else None
            if resumed is not None:
                sign_in(*resumed)
            return
        session_id = st.session_state.get(SESSION_KEY)
        fresh = signin.resume(session=session, session_id=session_id) if session_id is not None else None
    if fresh is None:
        sign_out()
    elif fresh != user:
        sign_in(fresh)


def main() -> None:
    # An emoji, not a :material: icon: Streamlit fetches those favicons from fonts.gstatic.com.
    st.set_page_config(page_title="likeness", page_icon="📷", layout="wide")
    init_state()
    with guard(stop=True):
        workbench()
        _signed_in_user()
    user = current_user()
    _cookie_job()

    if user is None:
        # Every page's URL shows the sign-in form; after signing in the same URL is that page.
        # (Streamlit keys a page by its url_path, so the rerun after signing in keeps it.)
        st.navigation([st.Page(LOGIN, title="Sign in", icon=":material/login:", url_path=path, default=path == "shoots")
                       for path in PAGES], position="hidden").run()
        return

    def page(path: str) -> StreamlitPage:
        file, title, icon = PAGES[path]
        return st.Page(file, title=title, icon=icon, url_path=path, default=path == "shoots")

    pages = {"Studio": [page("shoots")], "Outputs": [page("faces")]}
    if user.role in (Role.photographer, Role.admin):
        pages["Studio"].append(page("capture"))
    if user.role in (Role.labeler, Role.admin):
        pages["Labeling"] = [page("labeling")]
    if user.role in (Role.reviewer, Role.admin):
        pages["Review"] = [page("review")]
    if user.role is Role.admin:
        pages["Admin"] = [page("people"), page("users"), page("datasets"), page("training"), page("lineage")]
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.username)}** ({user.role.value})")
        st.button("Sign out", key="sign_out", on_click=sign_out, icon=":material/logout:")

    st.navigation(pages).run()


# Streamlit runs this file as __main__ for every browser session. `streamlit run` and uvicorn
# import it as a module to find `app`; ingest worker processes (multiprocessing "spawn") import
# it as __mp_main__, and must neither build the app nor open the database there.
if __name__ == "__main__":
    main()
elif __name__ != "__mp_main__":
    app = st.App(__file__, routes=signin.routes(base_path=str(st.get_option("server.baseUrlPath") or "")))
