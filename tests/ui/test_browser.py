"""The workbench in a real browser: `streamlit run` as a server, driven by Debian's chromium.

Skips when /usr/bin/chromium or Playwright is missing; set LIKENESS_REQUIRE_BROWSER=1 to make
that a failure instead.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from likeness.models import Role, Shoot, Shot
from likeness.workbench import Workbench
from samples.shoot import build_sample_shoot
from tests.factories.people import add_user, register_sitter
from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SITTER = "P0001"


def test_photographer_uploads_a_shoot_and_sees_its_contact_sheet(
    app_url: str, env_workbench: Workbench, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    wb = env_workbench
    add_user(wb, "ana", Role.photographer)
    register_sitter(wb, tmp_path, SITTER, signed_on=dt.date(2020, 1, 1), personal_data=True)
    # Taken today: the upload form's shoot date defaults to today, and the gate compares the two.
    shoot = build_sample_shoot(tmp_path / "card", sitter=SITTER, date=dt.date.today(), n_good=2, frame_size=(768, 512),
                               include_bad=False)
    frames = [shoot.path / relative for relative in shoot.good_frames]
    assert len(frames) == 2 and len({f.name for f in frames}) == 2

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            sign_in(page, app_url, "ana")

            page.get_by_text("Upload a shoot").click()
            page.locator("input[type=file]").first.set_input_files([str(f) for f in frames])
            for frame in frames:
                expect(page.get_by_text(frame.name, exact=True)).to_be_visible()
            page.get_by_label("Shoot name").fill("browser shoot")
            page.get_by_label("Sitter code").fill(SITTER)
            page.get_by_role("button", name="Ingest").click()

            summary = page.get_by_text("browser shoot: 2 files")
            expect(summary).to_be_visible(timeout=180_000)
            expect(summary).to_contain_text("2 accepted")
            expect(summary).to_contain_text("0 failed")

            images = page.locator("[data-testid=stImage] img")
            expect(images.nth(3)).to_be_visible(timeout=60_000)  # two previews, two face crops
            # Every image decodes (a broken one never does; a slow one gets the time it needs).
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                ".every(i => i.complete && i.naturalWidth > 0)", timeout=60_000,
            )
            assert images.count() >= 4
            # Each frame's status as stored (shot QA may reject one of the two) is what the sheet shows.
            with wb.db.unit_of_work() as session:
                stored_statuses = session.scalars(
                    select(Shot.status).join(Shoot).where(Shoot.name == "browser shoot")
                ).all()
            for status in set(stored_statuses):
                expect(page.get_by_text(status, exact=True)).to_have_count(stored_statuses.count(status))
            expect(page.get_by_text(f"{SITTER}/{frames[0].name}", exact=False)).to_be_visible()
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    with wb.db.unit_of_work() as session:
        stored = session.scalar(select(Shoot).where(Shoot.name == "browser shoot"))
        assert stored is not None and stored.photographer == "ana"
        statuses = session.scalars(select(Shot.status).where(Shot.shoot_id == stored.id)).all()
        assert len(statuses) == 2 and set(statuses) <= {"accepted", "rejected"}
