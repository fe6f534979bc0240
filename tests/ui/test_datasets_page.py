"""The Datasets page through AppTest, on both databases, and once in a real Chromium: who sees it,
building the example spec on a seeded pool, the balance, shortfall and split, consent check, export."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from ingest import api as ingest_api
from likeness.models import Person, Release, Role
from likeness.workbench import Workbench
from samples.labelled_pool import SitterPlan, add_pool
from tests.factories import app
from tests.factories.app import titles
from tests.factories.people import add_user
from training.snapshots import api

PAGE = "ui/pages/datasets.py"
AGES = ("adult", "senior", "child", "young_adult", "adult")


def seed_pool(workbench: Workbench, *, senior_smiles: bool = True) -> None:
    """Ten released sitters over the age bands, faces cycling expressions, all usable. Without
    `senior_smiles` the seniors never smile: the example spec's joint cell falls short."""
    sitters = []
    for i in range(10):
        senior = AGES[i % 5] == "senior"
        expressions = ["neutral", "smile"] if senior_smiles or not senior else ["neutral", "grin"]
        sitters.append(SitterPlan(code=f"P{i:04d}", faces=24, person={"age_band": AGES[i % 5], "skin_tone": str(1 + i)},
                                  frames={"expression": expressions, "usable": ["yes"]}))
    with workbench.db.unit_of_work() as session:
        add_pool(session, workbench.blobs, sitters)


def open_page(wb: Workbench, role: Role = Role.admin) -> AppTest:
    return app.open_page(wb, PAGE, role)


def spec_text(at: AppTest) -> str:
    return at.text_area(key="datasets_spec").value or ""


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [e.value for e in at.success] + [e.value for e in at.warning]
                     + [e.value for e in at.error]).replace("\\", "").replace("**", "")


@pytest.mark.parametrize("role", [Role.labeler, Role.photographer])
def test_only_admins_get_the_page(env_workbench: Workbench, role: Role) -> None:
    seed_pool(env_workbench)
    at = open_page(env_workbench, role)
    assert "Datasets" not in titles(at)
    assert not any(t.key == "datasets_spec" for t in at.text_area)
    assert not any(b.key == "datasets_build" for b in at.button)


def test_an_admin_builds_the_example_spec_and_exports_it(env_workbench: Workbench) -> None:
    seed_pool(env_workbench)
    at = open_page(env_workbench)
    assert titles(at) == ["Datasets"]
    assert 'name = "balanced portraits"' in spec_text(at)
    assert any("No snapshots yet" in c.value for c in at.caption)

    at.button(key="datasets_build").click().run()
    assert not at.exception, at.exception
    [summary] = api.snapshots(env_workbench)
    assert summary.built_by == "someone" and summary.size == 100
    shown = texts(at)
    assert f"Built snapshot #{summary.id} {summary.sha256}" in shown
    assert "Balance: 6 of 6 quota cells within their band" in shown
    assert "No shortfall" in shown and "; 0 people in both" in shown
    balance = at.dataframe[1].value   # [0] is the list of snapshots
    assert list(balance["cell"]) == ["age_band=adult", "age_band=senior", "age_band=*", "expression=smile",
                                     "expression=*", "age_band=senior × expression=smile"]
    assert set(balance["ok"]) == {"✓"} and balance["achieved"].sum() == 100 + 100 + 15
    assert len(at.image) == 1   # the balance plot

    at.button(key="datasets_check").click().run()
    assert any("still covers training" in s.value for s in at.success)

    at.selectbox(key="datasets_split").set_value("all").run()
    at.button(key="datasets_export_button").click().run()
    assert not at.exception, at.exception
    [zip_path] = (env_workbench.settings.data_dir / "exports").glob("*.zip")
    assert zip_path.name.startswith(f"snapshot-{summary.id}-{summary.sha256[:12]}-all-")
    with zipfile.ZipFile(zip_path) as archive:
        assert json.loads(archive.read("manifest.json"))["snapshot"]["sha256"] == summary.sha256
    assert any(f"Exported 100 all image(s) to {zip_path}" in s.value.replace("\\", "") for s in at.success)
    assert at.get("download_button")

    at.button(key="datasets_build").click().run()   # the same spec on the same data: the same snapshot
    assert "An identical snapshot exists already: snapshot #1" in texts(at) and len(api.snapshots(env_workbench)) == 1


def test_a_bad_spec_and_a_revoked_release_are_shown(env_workbench: Workbench) -> None:
    seed_pool(env_workbench)
    at = open_page(env_workbench)
    at.text_area(key="datasets_spec").input(spec_text(at).replace("adult = 0.4", "adult = 0.3"))
    at.button(key="datasets_build").click().run()
    assert not at.exception, at.exception
    assert any("spec: quotas.age_band: shares sum to 0.9, not 1" in e.value for e in at.error)
    assert not api.snapshots(env_workbench)

    at.text_area(key="datasets_spec").input(spec_text(at).replace("adult = 0.3", "adult = 0.4"))
    at.button(key="datasets_build").click().run()
    [summary] = api.snapshots(env_workbench)
    member = sorted(summary.report["people"])[0]
    with env_workbench.db.unit_of_work() as session:
        release_id = session.scalar(select(Release.id).join(Person).where(Person.code == member))
        assert release_id is not None
        ingest_api.revoke_release(session=session, release_id=release_id, reason="withdrawn", actor="test")
    at.button(key="datasets_check").click().run()
    assert not at.exception, at.exception
    assert any("no longer covered by a release" in e.value for e in at.error)
    problems = at.dataframe[-1].value
    assert member in list(problems["person"]) and release_id in list(problems["release"])


@pytest.mark.browser
def test_building_from_the_page_shows_the_shortfall(env_workbench: Workbench, app_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, wait_until_idle
    from tests.ui.browser_support import sign_in as browser_sign_in

    seed_pool(env_workbench, senior_smiles=False)
    add_user(env_workbench, "boss", Role.admin)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            browser_sign_in(page, f"{app_url}/datasets", "boss", heading="Datasets")
            expect(page.get_by_text("No snapshots yet.")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Build").click()
            # The seniors never smile: the joint cell gets none of its 15 (band 10..20).
            expect(page.get_by_text(re.compile(r"needs 10 more: age_band=senior × expression=smile \(could sit: "))
                   ).to_be_visible(timeout=120_000)
            wait_until_idle(page)
            expect(page.get_by_text("Balance: 5 of 6 quota cells within their band")).to_be_visible()
            expect(page.get_by_text("0 people in both")).to_be_visible()
            expect(page.get_by_text("target vs achieved per cell")).to_be_visible()
            plot = page.locator('img[src^="data:image/png"]')
            expect(plot).to_have_count(1)
            assert plot.evaluate("img => img.complete && img.naturalWidth > 0"), "the balance plot did not decode"
        finally:
            browser.close()
    [summary] = api.snapshots(env_workbench)
    assert summary.shortfall == 1 and summary.built_by == "boss"
