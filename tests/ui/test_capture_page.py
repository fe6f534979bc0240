"""The Capture page through AppTest, on both databases, and once in a real Chromium: who gets it,
and a real watcher's verdicts, thumbnails, alerts and plan coverage on the page; in the browser a
frame dropped into the watched folder shows with its verdict without a reload."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from capture.plan import Plan, PlanSlot, store_plan
from likeness.models import Role
from likeness.workbench import Workbench
from tests.capture.conftest import FAST, SHOOT, Running, frames, make_hot_folder  # noqa: F401 (frames: a fixture)
from tests.factories import app
from tests.factories.app import titles
from tests.factories.people import add_user

PAGE = "ui/pages/capture.py"


def open_page(wb: Workbench, role: Role = Role.admin) -> AppTest:
    return app.open_page(wb, PAGE, role)


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [e.value for e in at.error] + [e.value for e in at.info]
                     + [c.value for c in at.caption]).replace("\\", "").replace("**", "")


@pytest.mark.parametrize("role", [Role.labeler, Role.photographer])
def test_the_page_is_for_photographers_and_admins(env_workbench: Workbench, role: Role) -> None:
    at = open_page(env_workbench, role)
    if role is Role.labeler:
        assert "Capture" not in titles(at)  # not offered: the default page instead
        return
    assert titles(at) == ["Capture"]
    assert "No shoots stored yet." in texts(at)


def test_verdicts_thumbnails_alerts_and_coverage_of_a_watched_shoot(
    env_workbench: Workbench, tmp_path: Path, frames: dict[str, Path],  # noqa: F811
) -> None:
    folder = make_hot_folder(env_workbench, tmp_path)
    running = Running(env_workbench, folder, FAST)
    shutil.copy(frames["open_a"], folder / "P0001" / "a.png")
    good = running.wait_verdict("P0001/a.png")
    shutil.copy(frames["closed"], folder / "P0001" / "closed.jpg")
    running.wait_verdict("P0001/closed.jpg")
    running.stop()
    with env_workbench.db.unit_of_work() as session:
        store_plan(session, Plan(SHOOT, dt.date.today(), [PlanSlot("P0001", good["pose"], "any", 2)], []), actor="test")

    at = open_page(env_workbench, Role.photographer)
    assert titles(at) == ["Capture"]
    shown = texts(at)
    assert "2 frames judged, 1 to look at" in shown
    assert "P0001: eyes closed — reshoot" in shown and "P0001: ok" in shown
    assert any("P0001: eyes closed — reshoot [P0001/closed.jpg]" in e.value.replace("\\", "") for e in at.error)
    assert len(at.image) >= 2  # the two previews (the drift plot is a chart, not an image)
    assert "Frames to reshoot: 1" in shown and "P0001/closed.jpg · P0001: eyes closed — reshoot" in shown
    [bar] = at.get("progress")
    assert "1 of 2 planned frames filled · 2 frames stored" in bar.proto.text


@pytest.mark.browser
def test_a_dropped_frame_shows_with_its_verdict_without_a_reload(
    env_workbench: Workbench, app_url: str, tmp_path: Path, frames: dict[str, Path],  # noqa: F811
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS
    from tests.ui.browser_support import sign_in as browser_sign_in

    folder = make_hot_folder(env_workbench, tmp_path)
    add_user(env_workbench, "phil", Role.photographer)
    running = Running(env_workbench, folder, FAST)  # stores the shoot at start
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                browser_sign_in(page, f"{app_url}/capture", "phil", heading="Capture")
                expect(page.get_by_text("No frames judged yet")).to_be_visible(timeout=60_000)
                shutil.copy(frames["closed"], folder / "P0001" / "closed.jpg")
                expect(page.get_by_text("P0001: eyes closed — reshoot", exact=True)).to_be_visible(timeout=180_000)
                expect(page.get_by_text("1 frame judged")).to_be_visible()
                preview = page.locator('img[src^="data:image/jpeg"]').first
                expect(preview).to_be_visible()
                assert preview.evaluate("img => img.complete && img.naturalWidth > 0"), "the preview did not decode"
            finally:
                browser.close()
    finally:
        running.stop()


def test_a_frame_judged_on_its_first_look_shows_before_it_is_stored(
    env_workbench: Workbench, tmp_path: Path, frames: dict[str, Path],  # noqa: F811
) -> None:
    from capture.look import Look, first_look
    from capture.watch import Watcher
    from ingest.coordinator import IngestSummary

    folder = make_hot_folder(env_workbench, tmp_path)
    (folder / "P0099").mkdir()  # a folder the shoot does not list: no release covers its frames
    shutil.copy(frames["closed"], folder / "P0001" / "closed.jpg")
    shutil.copy(frames["open_a"], folder / "P0099" / "x.png")
    watcher = Watcher(env_workbench, folder, SHOOT, options=FAST)
    try:
        for frame in (folder / "P0001" / "closed.jpg", folder / "P0099" / "x.png"):
            staged = watcher.feeder.stage(frame)
            job = watcher.feeder.plan(staged, IngestSummary(shoot=SHOOT, shoot_id=watcher.feeder.shoot_id))
            assert job is not None
            look = first_look(job)
            assert isinstance(look, Look), look
            with env_workbench.db.unit_of_work() as session:
                person = watcher.feeder.person(session, staged.sitter)
                verdict = watcher.judge.first_look(session, look, staged.relative_path, staged.sitter, person)
            watcher._report(verdict)  # what the watcher reports the moment the look is in
    finally:
        watcher.feeder.close()

    at = open_page(env_workbench, Role.photographer)
    shown = texts(at)
    assert "2 frames judged" in shown and "P0001: eyes closed — reshoot" in shown
    assert "preview withheld" in shown  # the unlisted sitter's frame, to a photographer
    assert len(at.image) == 1  # the closed-eye frame's preview, from its first look: nothing is stored yet
    admin_view = app.open_page(env_workbench, PAGE, Role.admin, username="ada")
    assert len(admin_view.image) == 2 and "preview withheld" not in texts(admin_view)
