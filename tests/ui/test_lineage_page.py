"""The Lineage page through AppTest, on both databases, and once in a real Chromium: who sees it,
the chain from a sitter and from a generated image, a bad id, and the runs a revocation leaves to
retrain."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from likeness.models import GeneratedImage, Release, Role
from likeness.workbench import Workbench
from model_registry import taint
from model_registry.lineage import lineage
from samples.lineage_pool import PipelineRows
from tests.factories import app
from tests.factories.app import titles
from tests.factories.people import add_user
from tests.model_registry.test_lineage import write

PAGE = "ui/pages/lineage.py"


def open_page(wb: Workbench, role: Role = Role.admin) -> AppTest:
    return app.open_page(wb, PAGE, role)


def tables(at: AppTest) -> list[dict[str, int]]:
    """Each levels table on the page as {level: count}, in page order (up before down)."""
    return [dict(zip(frame.value["level"], frame.value["count"], strict=True))
            for frame in at.dataframe if "level" in frame.value.columns]


def revoke_first_release(wb: Workbench) -> int:
    with wb.db.unit_of_work() as session:
        release_id = session.scalar(select(Release.id).order_by(Release.id).limit(1))
        assert release_id is not None
        taint.revoke(session, release_id, "withdrawn by email", "test")
    return release_id


@pytest.mark.parametrize("role", [Role.labeler, Role.reviewer, Role.photographer])
def test_only_admins_get_the_page(env_workbench: Workbench, role: Role) -> None:
    write(env_workbench)
    at = open_page(env_workbench, role)
    assert "Lineage" not in titles(at)
    assert not any(s.key == "lineage_kind" for s in at.selectbox)


def test_an_admin_follows_a_sitter_down_and_an_image_up(env_workbench: Workbench) -> None:
    rows: PipelineRows = write(env_workbench)
    at = open_page(env_workbench)
    assert titles(at) == ["Lineage"]
    assert at.selectbox(key="lineage_ref").value == "P0000"
    with env_workbench.db.unit_of_work() as session:
        expected = lineage(session, "person", "P0000")
    [down] = tables(at)
    assert down == {level.name: level.count for level in expected.down}
    assert down["images"] == 6 and down["runs"] == 3
    assert any("No tainted runs" in c.value for c in at.caption)

    with env_workbench.db.unit_of_work() as session:
        sha = session.scalar(select(GeneratedImage.image_sha256).where(GeneratedImage.id == rows.images[0]))
    assert sha is not None
    at.selectbox(key="lineage_kind").select("image").run()
    at.text_input(key="lineage_ref").input(sha[:12]).run()
    assert not at.exception, at.exception
    up, = tables(at)
    assert up["people"] == 2 and up["snapshots"] == 1     # snapshot 0 holds P0000 and P0001
    assert at.query_params["kind"] == ["image"] and at.query_params["ref"] == [sha[:12]]

    at.selectbox(key="lineage_kind").select("checkpoint").run()
    at.text_input(key="lineage_ref").input("999").run()
    assert any("no checkpoint #999" in e.value.replace("\\", "") for e in at.error)
    assert tables(at) == []


def test_after_a_revocation_the_page_shows_the_taint_and_the_runs_to_retrain(env_workbench: Workbench) -> None:
    rows = write(env_workbench)
    release_id = revoke_first_release(env_workbench)
    at = open_page(env_workbench)
    frame = next(f.value for f in at.dataframe if "level" in f.value.columns)
    flagged = dict(zip(frame["level"], frame["flagged"], strict=True))
    assert flagged["runs"] == "3 tainted" and flagged["images"] == "6 tainted" and flagged["shots"] == "5 quarantined"
    plan = next(f.value for f in at.dataframe if "leave out" in f.value.columns)
    assert len(plan) == 3 and set(plan["leave out"]) == {"P0000"}
    assert list(plan["run"])[0] == f"#{rows.runs[0]} pipeline run 0"

    at.selectbox(key="lineage_kind").select("checkpoint").run()
    at.text_input(key="lineage_ref").input(str(rows.checkpoints[0])).run()
    assert any(f"tainted by release #{release_id} (P0000): withdrawn by email" in e.value.replace("\\", "") for e in at.error)


@pytest.mark.browser
def test_a_bookmarked_lineage_opens_in_chromium(env_workbench: Workbench, app_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, wait_until_idle
    from tests.ui.browser_support import sign_in as browser_sign_in

    rows = write(env_workbench)
    revoke_first_release(env_workbench)
    add_user(env_workbench, "boss", Role.admin)
    with env_workbench.db.unit_of_work() as session:
        sha = session.scalar(select(GeneratedImage.image_sha256).where(GeneratedImage.id == rows.images[0]))
    assert sha is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            browser_sign_in(page, f"{app_url}/lineage?kind=image&ref={sha[:12]}", "boss", heading="Lineage")
            expect(page.get_by_text(f"generated image {sha[:12]}")).to_be_visible(timeout=60_000)
            wait_until_idle(page)
            expect(page.get_by_text("tainted by release #1 (P0000)").first).to_be_visible()
            expect(page.get_by_text("Runs to retrain")).to_be_visible()
            expect(page.get_by_text("3 tainted runs:")).to_be_visible()
        finally:
            browser.close()
