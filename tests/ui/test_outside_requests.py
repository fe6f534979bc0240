"""A studio tool on 127.0.0.1 asks nothing of other hosts: every page, for every role, in a real
browser, with each request the page makes recorded."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from likeness.models import Role
from likeness.workbench import Workbench
from tests.factories.people import add_user
from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, sign_in, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every page a role can open (the sidebar's links), Shoots being the default page "".
EXPECTED_PAGES = {
    Role.photographer: {"", "capture", "faces"},
    Role.labeler: {"", "labeling", "faces"},
    Role.reviewer: {"", "review", "faces"},
    Role.admin: {"", "labeling", "review", "capture", "people", "users", "datasets", "training", "lineage", "faces"},
}


def test_no_page_requests_anything_from_another_host(app_url: str, env_workbench: Workbench) -> None:
    from playwright.sync_api import Request, sync_playwright

    own = urlsplit(app_url).netloc
    for role in Role:
        add_user(env_workbench, role.value, role)
    outside: list[str] = []
    seen: set[str] = set()

    def record(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        seen.add(parts.netloc)
        if parts.netloc != own:
            outside.append(f"{request.resource_type} {request.url}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        for role in Role:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", record)
            page = context.new_page()
            sign_in(page, app_url, role.value)
            links = page.locator('[data-testid="stSidebarNav"] a')
            # (With a single page Streamlit shows no page links.)
            paths = {urlsplit(links.nth(i).get_attribute("href") or "").path.strip("/") for i in range(links.count())} or {""}
            assert paths == EXPECTED_PAGES[role], role
            for path in sorted(paths):
                page.goto(f"{app_url}/{path}")  # signed in by the cookie: a fresh session per page
                page.get_by_text("Signed in as").wait_for(timeout=60_000)
                wait_until_idle(page)
                page.wait_for_load_state("networkidle")
            context.close()
        browser.close()

    assert own in seen  # the recorder saw the app's own requests
    assert outside == []
