"""The review page in a real browser, driven by the keyboard alone: `streamlit run` as a server,
Debian's chromium through Playwright, a queue of real faces (ingest and shot QA).

Prints how long the 48-face grid takes to show after navigating to the page, and how long a key
press takes to reach the database and the grid. Skips when /usr/bin/chromium or Playwright is
missing; LIKENESS_REQUIRE_BROWSER=1 makes that a failure.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import cast

import pytest

from likeness.models import Role
from likeness.workbench import Workbench
from qa import api as qa_api
from tests.factories.people import add_user, user_id
from tests.factories.review import queue_faces, votes_of, write_face_shoot
from tests.ui.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CURRENT_ID_JS,
    GRID_IDS_JS,
    IN_VIEW_JS,
    open_review,
    sign_in,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GRID = 48
PER_ROW = 8
def test_a_reviewer_reviews_with_the_keyboard_and_votes_survive_a_reload(
    app_url: str,  # noqa: F811 (the fixture imported above)
    env_workbench: Workbench, testdata_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    wb = env_workbench
    queued = queue_faces(wb, write_face_shoot(testdata_dir, tmp_path / "faces", variants=3), tmp_path)
    assert queued >= GRID
    add_user(wb, "rita", Role.reviewer)
    reviewer = user_id(wb, "rita")
    with wb.db.unit_of_work() as session:
        batch = [i.id for i in qa_api.next_items(session=session, reviewer_id=reviewer, limit=GRID)]

    to_db: list[float] = []  # key press -> vote row committed
    to_grid: list[float] = []  # key press -> the cursor shown on the next face

    def press(page, key: str, *, votes: dict | None, then_on: int) -> None:  # noqa: ANN001
        start = time.perf_counter()
        page.keyboard.press(key)
        if votes is not None:
            wait_until(lambda: votes_of(wb, "rita") == votes)
            to_db.append(time.perf_counter() - start)
        wait_until(lambda: page.evaluate(CURRENT_ID_JS) == then_on)
        to_grid.append(time.perf_counter() - start)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.set_default_timeout(30_000)
        try:
            sign_in(page, app_url, "rita")
            cold_ms = open_review(page, GRID)
            assert page.evaluate(GRID_IDS_JS) == batch
            # The cursor's style arrives with the grid or just after it, on a busy machine.
            wait_until(lambda: page.evaluate(CURRENT_ID_JS) == batch[0])

            b = batch
            press(page, "u", votes={b[0]: ("up", [])}, then_on=b[1])
            press(page, "1", votes={b[0]: ("up", []), b[1]: ("down", ["closed_eyes"])}, then_on=b[2])
            press(page, "ArrowRight", votes=None, then_on=b[3])
            two = {b[0]: ("up", []), b[1]: ("down", ["closed_eyes"])}
            press(page, "2", votes={**two, b[3]: ("down", ["crossed_eyes"])}, then_on=b[4])
            press(page, "z", votes=two, then_on=b[3])
            page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
            assert votes_of(wb, "rita") == two

            # After a reload the reviewer is still signed in; the two voted faces are gone from the grid.
            page.goto(app_url)
            expect(page.get_by_role("heading", name="Shoots")).to_be_visible(timeout=60_000)
            assert page.get_by_role("textbox", name="Username").count() == 0
            warm_ms = open_review(page, GRID)
            shown = page.evaluate(GRID_IDS_JS)
            with wb.db.unit_of_work() as session:
                expected = [i.id for i in qa_api.next_items(session=session, reviewer_id=reviewer, limit=GRID)]
            assert shown == expected and len(shown) == GRID
            assert b[0] not in shown and b[1] not in shown and b[3] in shown

            # More decisions for the timing: thumbs up and every reason key in turn.
            votes = votes_of(wb, "rita")
            keys = ["u", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "o"] * 2
            reasons = {
                "u": None, "1": "closed_eyes", "2": "crossed_eyes", "3": "crater", "4": "background", "5": "ears",
                "6": "headwear", "7": "collar", "8": "teeth", "9": "hands", "0": "asymmetry", "o": "other",
            }
            for n, key in enumerate(keys):
                votes[shown[n]] = ("up", []) if reasons[key] is None else ("down", [cast(str, reasons[key])])
                press(page, key, votes=dict(votes), then_on=shown[n + 1])

            # The grid is taller than the window: moving down rows scrolls the current face into view.
            last_row = shown[len(keys) + 2 * PER_ROW]
            assert not page.evaluate(IN_VIEW_JS, last_row), "the window shows the whole grid: make it smaller"
            press(page, "ArrowDown", votes=None, then_on=shown[len(keys) + PER_ROW])
            press(page, "ArrowDown", votes=None, then_on=last_row)
            page.wait_for_function(IN_VIEW_JS, arg=last_row, timeout=5_000)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    db_ms = statistics.median(to_db) * 1000
    grid_ms = statistics.median(to_grid) * 1000
    with capsys.disabled():
        print(
            f"\nreview page ({wb.db.engine.dialect.name}): {GRID}-face grid shown {cold_ms:.0f} ms after navigation "
            f"(cold thumbnails), {warm_ms:.0f} ms (cached); key press -> vote row median {db_ms:.0f} ms, "
            f"-> grid updated median {grid_ms:.0f} ms over {len(to_grid)} presses "
            f"(at most {60_000 / grid_ms:.0f} decisions a minute by the page's own speed)"
        )


def test_a_revoked_release_withdraws_faces_from_a_reviewer_in_the_browser(
    app_url: str, env_workbench: Workbench, testdata_dir: Path, tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright
    from sqlalchemy import select

    from ingest import api as ingest_api
    from likeness.models import Release

    wb = env_workbench
    queued = queue_faces(wb, write_face_shoot(testdata_dir, tmp_path / "faces", per_label=1), tmp_path)
    add_user(wb, "rita", Role.reviewer)
    faces_js = "() => document.querySelectorAll('.lk-face img').length"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            sign_in(page, app_url, "rita")
            page.get_by_role("link", name="Review").click()
            page.wait_for_function(f"() => ({faces_js})() === {queued}")
            with wb.db.unit_of_work() as session:
                release = session.scalars(select(Release)).one()
                ingest_api.revoke_release(session=session, release_id=release.id, reason="withdrawn", actor="test")
            page.reload()
            page.get_by_role("link", name="Review").click()
            page.wait_for_function(f"() => ({faces_js})() === 0")
            assert page.get_by_text("Shoots").count() >= 1  # still signed in, the app still answers
        finally:
            browser.close()
