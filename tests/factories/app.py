"""The workbench app under Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.factories.people import PASSWORD

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
