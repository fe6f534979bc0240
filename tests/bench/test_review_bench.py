"""bench.review's round on the Review page: every keyboard decision is recorded, with the reason
its artifact calls for."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bench import review
from likeness.models import ReviewItem
from likeness.workbench import Workbench
from tests.factories.review import votes_of
from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, app_url, sign_in  # noqa: F401 (app_url: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_round_records_each_decision_with_its_artifacts_reason(
    app_url: str,  # noqa: F811 (the fixture imported above)
    env_workbench: Workbench, testdata_dir: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    seeded = review.seed_faces(env_workbench, per_face=2)
    waiting = seeded["waiting"]
    # Every held-out face is decided by the filter or waits; the train side's are voted on.
    assert seeded["accepted"] + seeded["rejected"] + len(waiting) == seeded["held_out"] and len(waiting) > 4
    with env_workbench.db.unit_of_work() as session:
        queued = set(session.scalars(select(ReviewItem.id)))
    assert set(waiting) <= queued
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        try:
            sign_in(page, app_url, review.REVIEWER, review.PASSWORD)
            seconds = review.page_round(page, app_url, env_workbench, waiting, 4)
        finally:
            browser.close()
    assert len(seconds) == 4 and all(s > 0 for s in seconds)
    votes = votes_of(env_workbench, review.REVIEWER)
    assert len(votes) == 4
    for item_id, (thumb, reasons) in votes.items():
        artifact = waiting[item_id]
        assert (thumb, reasons) == (("up", []) if artifact == "none" else ("down", [review.REASON_OF[artifact]]))
