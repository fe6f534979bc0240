"""What the browser tests (and bench.review) share: `streamlit run` as a server on a workbench,
Debian's chromium, signing in through the login form, and reading the Review page's grid.

The `app_url` fixture skips when /usr/bin/chromium or Playwright is missing; set
LIKENESS_REQUIRE_BROWSER=1 to make that a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from likeness import signin
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
            raise RuntimeError(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serve_app(log: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`streamlit run` of the app on a free localhost port, on the workbench the LIKENESS_*
    variables of `env` (default: this process's) name; its output goes to `log`."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.port", str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env={**(env or os.environ), "LIKENESS_WORKERS": "0"},
                                  stdout=out, stderr=subprocess.STDOUT)
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


@pytest.fixture
def app_url(env_workbench: Workbench, tmp_path: Path) -> Iterator[str]:
    """The app served on a free localhost port, on the test's database (LIKENESS_* from the env)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} not found (Debian package chromium)", "LIKENESS_REQUIRE_BROWSER")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("the playwright package is not installed", "LIKENESS_REQUIRE_BROWSER")
    with serve_app(tmp_path / "streamlit.log") as url:
        yield url


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
    # Signed in for good once the page has traded its ticket for the cookie (a background
    # request): a page opened before then is a fresh, signed-out session.
    wait_for_session_cookie(page)


def wait_for_session_cookie(page: Page, timeout_s: float = 30.0) -> dict[str, object]:
    """The sign-in cookie of `page`'s browser context, once the sign-in has set it."""
    def cookies() -> list[dict[str, object]]:
        return [dict(c) for c in page.context.cookies() if c.get("name") == signin.SESSION_COOKIE]

    wait_until(lambda: bool(cookies()), timeout_s, what=f"a {signin.SESSION_COOKIE} cookie after signing in")
    return cookies()[0]


# The Review page's grid: the item ids of the faces on screen in grid order, and of the one drawn
# with the cursor's outline.
GRID_IDS_JS = "() => [...document.querySelectorAll('.lk-face')].map(e => Number(e.dataset.item))"
CURRENT_ID_JS = """() => { const outlined = [...document.querySelectorAll('.lk-face')]
    .filter(e => getComputedStyle(e).outlineColor === 'rgb(255, 75, 75)');
    return outlined.length === 1 ? Number(outlined[0].dataset.item) : null; }"""
IN_VIEW_JS = """id => { const r = document.querySelector(`.lk-face[data-item="${id}"]`).getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight; }"""
# performance.now() once `n` grid faces have decoded images: polled on every animation frame.
GRID_SHOWN_JS = """n => { const imgs = document.querySelectorAll('.lk-face img');
    return imgs.length >= n && [...imgs].every(i => i.complete && i.naturalWidth > 0) ? performance.now() : false; }"""


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0, *, what: str = "condition") -> float:
    """Seconds until `condition()` holds, polled every few milliseconds."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.005)
    return time.perf_counter() - start


def open_review(page: Page, faces: int) -> float:
    """Milliseconds, measured in the browser, from following the Review link to a grid of
    `faces` faces shown."""
    start = page.evaluate("performance.now()")
    page.get_by_role("link", name="Review").click()
    shown = page.wait_for_function(GRID_SHOWN_JS, arg=faces, polling="raf", timeout=60_000).json_value()
    return shown - start
