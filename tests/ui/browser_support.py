"""What the browser tests share: `streamlit run` as a server on the test's database, Debian's
chromium, and signing in through the login form.

The `app_url` fixture skips when /usr/bin/chromium or Playwright is missing; set
LIKENESS_REQUIRE_BROWSER=1 to make that a failure instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from likeness.workbench import Workbench
from tests.conftest import skip_or_fail
from tests.factories.people import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit did not answer on {url} within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def app_url(env_workbench: Workbench, tmp_path: Path) -> Iterator[str]:
    """The app served on a free localhost port, on the test's database (LIKENESS_* from the env)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} not found (Debian package chromium)", "LIKENESS_REQUIRE_BROWSER")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("the playwright package is not installed", "LIKENESS_REQUIRE_BROWSER")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.port", str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    env = {**os.environ, "LIKENESS_WORKERS": "0"}
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def wait_until_idle(page: Page, timeout_ms: float = 120_000) -> None:
    """Until the app's script run has finished (Streamlit marks its root with the run state)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout_ms)


def sign_in(page: Page, url: str, username: str, password: str = PASSWORD, *, heading: str = "Shoots") -> None:
    """Open the app at `url` and sign in; returns once the page with `heading` (the default
    page, Shoots, or the page `url` names) has finished."""
    from playwright.sync_api import expect

    page.goto(url)
    # The first script run of a fresh server imports the face and training stacks: slow on a busy machine.
    expect(page.get_by_role("textbox", name="Username")).to_be_visible(timeout=120_000)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=60_000)
    wait_until_idle(page)
