"""What every page shares: the workbench, the signed-in user, role checks and error display."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import re
from collections.abc import Iterator

import streamlit as st
from PIL import Image, ImageOps
from pydantic import ValidationError

from likeness import signin
from likeness.blobstore import BlobStore
from likeness.config import Settings
from likeness.errors import ConfigError, IntegrityProblem, LikenessError
from likeness.models import Role
from likeness.users import SignedIn
from likeness.workbench import Workbench

log = logging.getLogger(__name__)

USER_KEY = "user"
# The sign-in session row (likeness.signin) behind USER_KEY, and what the browser's cookie
# still needs: ("set", ticket) after a sign-in, ("drop", "") after a sign-out.
SESSION_KEY = "signin_session"
COOKIE_JOB_KEY = "signin_cookie_job"
# Roles that may upload shoots; everyone signed in may look at contact sheets.
UPLOADERS = (Role.photographer, Role.admin)


def init_state() -> None:
    """Per-user state, set once per browser session. Only plain values live here, never ORM rows."""
    st.session_state.setdefault(USER_KEY, None)
    st.session_state.setdefault(SESSION_KEY, None)


# -- shared resources ------------------------------------------------------------------------

def _close(workbench: Workbench) -> None:
    workbench.close()


@st.cache_resource(show_spinner=False, max_entries=4, on_release=_close)
def _open_workbench(settings_json: str) -> Workbench:
    # Engine, session factory and blob store are thread-safe and shared by every browser session.
    workbench = Workbench.open(Settings.model_validate_json(settings_json))
    try:
        workbench.db.require_current()
    except BaseException:
        workbench.close()
        raise
    return workbench


def workbench() -> Workbench:
    """The workbench for the current LIKENESS_* settings, opened once per process and shared."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"LIKENESS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
    # Keyed by the settings, so a changed environment (another database) gets its own handles.
    return _open_workbench(settings.model_dump_json())


@st.cache_data(show_spinner=False, max_entries=1024)
def thumbnail(blob_url: str, sha256: str, size: tuple[int, int], *, pad: bool = False) -> str:
    """A JPEG of a stored image fitted into `size` (scaled down, or up with Lanczos when it is
    smaller), as a data: URL ready for st.image. With `pad`
    it is centred on a white canvas of exactly `size`, so the cells of a grid line up.

    Blobs never change, so (store, hash, size) is a safe cache key. The image is inlined rather
    than handed to Streamlit's /media route: with starlette 1.10 that route answers JPEG and PNG
    requests with HTTP 500 (Streamlit 1.60's gzip responder never sends the response start).
    """
    out = io.BytesIO()
    with BlobStore(blob_url).open(sha256) as handle:
        try:
            with Image.open(handle) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
                if image.width < size[0] and image.height < size[1]:
                    # Small images (32 px generated faces) are scaled up to fill the cell, not shown as specks.
                    image = ImageOps.contain(image, size, method=Image.Resampling.LANCZOS)
                else:
                    image.thumbnail(size, Image.Resampling.LANCZOS)
                if pad:
                    canvas = Image.new("RGB", size, "white")
                    canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
                    image = canvas
                image.save(out, format="JPEG", quality=85)
        except (OSError, Image.DecompressionBombError) as exc:
            raise IntegrityProblem(f"blob {sha256[:12]}… is not a readable image: {exc}", hint="run `likeness doctor`") from None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


_MARKDOWN_SPECIALS = re.compile(r"[\\`*_{}\[\]()<>#+\-.!|~$:]")


def plain(text: str) -> str:
    """`text` escaped for st.markdown and st.caption: file and shoot names are not markup
    (a `$` would start LaTeX, a `*` emphasis)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\g<0>", text)


# -- errors ----------------------------------------------------------------------------------

@contextlib.contextmanager
def guard(*, stop: bool = False) -> Iterator[None]:
    """Show a LikenessError as one error line; with `stop`, end the page there."""
    try:
        yield
    except LikenessError as exc:
        log.info("shown to the user: %s", exc)
        st.error(" ".join(str(exc).split()), icon=":material/error:")
        if stop:
            st.stop()


# -- who is signed in ------------------------------------------------------------------------

def current_user() -> SignedIn | None:
    user = st.session_state.get(USER_KEY)
    return user if isinstance(user, SignedIn) else None


def session_cookie() -> str | None:
    """The sign-in cookie this browser sent when the session opened (HTTP-only: scripts in the
    page cannot read it, the server can), or None."""
    token = st.context.cookies.get(signin.SESSION_COOKIE)
    return token if isinstance(token, str) and token else None  # AppTest's context holds no real cookies


def client_address() -> str:
    """The browser's address for the sign-in throttle; "localhost" for 127.0.0.1 and ::1."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "localhost"


def sign_in(user: SignedIn, session_id: int | None = None, *, ticket: str | None = None) -> None:
    """Sign `user` in for this browser session; `session_id` is their sign-in session row, and a
    `ticket` is traded for the HTTP-only cookie that keeps them signed in across reloads."""
    st.session_state[USER_KEY] = user
    if session_id is not None:
        st.session_state[SESSION_KEY] = session_id
    if ticket is not None:
        st.session_state[COOKIE_JOB_KEY] = ("set", ticket)


def sign_out() -> None:
    """End the sign-in session (its cookie signs nobody in from now on) and forget this user."""
    session_id = st.session_state.get(SESSION_KEY)
    token = session_cookie()
    if session_id is not None or token:
        with guard(), workbench().db.unit_of_work() as session:
            signin.end(session=session, session_id=session_id, token=token)
    # Drop everything the last user left behind (selections, summaries, form values).
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    init_state()
    st.session_state[COOKIE_JOB_KEY] = ("drop", "")


def require_role(*roles: Role) -> SignedIn:
    """The signed-in user if their role is one of `roles`; otherwise the page stops here."""
    user = current_user()
    if user is None or user.role not in roles:
        st.error("This page is not available to your role.", icon=":material/block:")
        st.stop()
    return user
