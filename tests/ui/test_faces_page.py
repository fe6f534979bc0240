"""The Faces page through AppTest, on both databases, and once in a real Chromium: every role sees
the approved faces, the filters narrow them, and only admins export (signed files in a zip with
the attributes CSV)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from likeness.models import Role
from likeness.workbench import Workbench
from tests.factories import app
from tests.factories.app import titles
from tests.factories.people import add_user
from tests.model_registry.test_gallery import seed_gallery

PAGE = "ui/pages/faces.py"


def open_page(wb: Workbench, role: Role) -> AppTest:
    return app.open_page(wb, PAGE, role, username=f"a-{role.value}")


def matching(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "faces** match" in m.value).replace("**", "")


@pytest.mark.parametrize("role", [Role.photographer, Role.labeler, Role.reviewer])
def test_every_role_sees_the_approved_faces_and_only_admins_export(env_workbench: Workbench, role: Role) -> None:
    truth = seed_gallery(env_workbench)
    at = open_page(env_workbench, role)
    assert titles(at) == ["Faces"]
    approved = [t for t in truth.values() if t["approved"]]
    assert matching(at).startswith(f"{len(approved)} faces match")
    assert len(at.image) == len(approved)
    assert not any(b.key == "faces_export_button" for b in at.button)

    at.multiselect(key="faces_age_band").select("senior").run()
    assert not at.exception, at.exception
    assert matching(at).startswith(f"{sum(1 for t in approved if t['age_band'] == 'senior')} faces match")
    at.slider(key="faces_monk").set_range(7, 10).run()
    both = sum(1 for t in approved if t["age_band"] == "senior" and t["monk"] == 8)
    assert matching(at).startswith(f"{both} faces match")


def test_an_admin_exports_what_the_filters_show(env_workbench: Workbench) -> None:
    truth = seed_gallery(env_workbench)
    at = open_page(env_workbench, Role.admin)
    at.multiselect(key="faces_age_band").select("adult").run()
    adults = sum(1 for t in truth.values() if t["approved"] and t["age_band"] == "adult")
    at.button(key="faces_export_button").click().run()
    assert not at.exception, at.exception
    assert any(f"Exported {adults} faces" in s.value for s in at.success)
    [archive] = (env_workbench.settings.data_dir / "exports").glob("faces-*.zip")
    with zipfile.ZipFile(archive) as bundle:
        names = bundle.namelist()
        assert "attributes.csv" in names and sum(n.endswith(".png") for n in names) == adults
        assert {line.split(",")[5] for line in bundle.read("attributes.csv").decode().splitlines()[1:]} == {"adult"}
    assert any(b.key == "faces_download" for b in at.get("download_button"))


@pytest.mark.browser
def test_the_gallery_renders_in_chromium(env_workbench: Workbench, app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, wait_until_idle
    from tests.ui.browser_support import sign_in as browser_sign_in

    truth = seed_gallery(env_workbench)
    add_user(env_workbench, "ana", Role.reviewer)
    approved = sum(1 for t in truth.values() if t["approved"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            browser_sign_in(page, f"{app_url}/faces", "ana", heading="Faces")
            expect(page.get_by_text(f"{approved} faces match")).to_be_visible(timeout=60_000)
            wait_until_idle(page)
            faces = page.locator('[data-testid="stMain"] img[src^="data:image/jpeg"]')
            expect(faces).to_have_count(approved)
            assert faces.first.evaluate("img => img.complete && img.naturalWidth > 0"), "a face did not decode"
        finally:
            browser.close()
