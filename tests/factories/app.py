"""The workbench app under Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from likeness.models import Role
from likeness.workbench import Workbench
from tests.factories.people import PASSWORD, add_user

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "streamlit_app.py")


def start(timeout: float = 30) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    assert not at.exception
    return at


def sign_in(at: AppTest, username: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()
    assert not at.exception, at.exception
    return at


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def open_page(wb: Workbench, page: str, role: Role = Role.admin, username: str = "someone") -> AppTest:
    """A new user of `role`, signed in, on `page` (a path under ui/pages/)."""
    add_user(wb, username, role)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    sign_in(at, username)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at
