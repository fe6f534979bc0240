"""The Training page through AppTest, on both databases: runs, curves, samples, generation (scored,
checked and decided by the learned filter), start form."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar, cast

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from likeness.models import Checkpoint, CheckpointAlias, FaceFilter, GeneratedImage, ReviewItem, Role
from likeness.workbench import Workbench
from qa.review import reviewable
from samples.labelled_pool import SitterPlan, add_pool
from tests.factories import app
from tests.factories.app import titles
from tests.factories.people import add_user
from tests.training.conftest import make_dataset, tiny_config, tiny_process_args
from training import api
from training import generated_scores as scores
from training.api import start_run
from training.snapshots import api as snapshots_api

PAGE = "ui/pages/training.py"

T = TypeVar("T")


def _noted(log: list[T], entry: T) -> bool:
    """Append `entry` to `log` inside a lambda; falsy, so `_noted(...) or value` yields value."""
    log.append(entry)
    return False



@pytest.fixture
def recorded_run(env_workbench: Workbench, tiny_trained_run: tuple[Path, Path], tmp_path: Path) -> int:
    """The trained run recorded as "tiny" with its checkpoint (resuming a finished run adds no steps)."""
    data, run = tiny_trained_run
    shutil.copytree(run, tmp_path / "tiny")
    return start_run(env_workbench, tiny_config(data, tmp_path / "tiny", total_kimg=0.004), resume="auto", external=True)


def open_page(wb: Workbench, role: Role = Role.admin) -> AppTest:
    return app.open_page(wb, PAGE, role)


def generated(wb: Workbench) -> int:
    with wb.db.unit_of_work() as session:
        return cast(int, session.scalar(select(func.count()).select_from(GeneratedImage)))


def stored(wb: Workbench) -> list[tuple[dict[str, object], str | None]]:
    """(checks, the filter's decision) of every generated image, by id."""
    with wb.db.unit_of_work() as session:
        return [(row.checks or {}, row.decision) for row in session.execute(
            select(GeneratedImage.checks, GeneratedImage.decision).order_by(GeneratedImage.id))]


def test_admin_follows_a_run_and_generates_from_its_checkpoint(env_workbench: Workbench, recorded_run: int) -> None:
    at = open_page(env_workbench)
    assert titles(at) == ["Training"]
    table = at.dataframe[0].value
    assert list(table["run"]) == ["tiny"] and list(table["status"]) == ["finished"]
    assert table["kimg"][0] == "0.004 / 0.004"
    losses, augment = (chart.proto.spec for chart in at.get("vega_lite_chart"))
    assert '"kimg"' in losses and '"augment p"' in augment
    assert len(at.image) == 1  # the latest sample grid
    assert "kimg 0.004" in at.image[0].proto.imgs[0].caption

    at.number_input(key="training_first_seed").set_value(5)
    at.number_input(key="training_count").set_value(2)
    at.button(key="training_generate_submit").click().run()
    assert not at.exception, at.exception
    assert generated(env_workbench) == 2
    assert len(at.image) == 1 + 2
    assert [image.proto.imgs[0].caption for image in at.image[1:]] == ["seed 5", "seed 6"]
    assert any("queued for review" in s.value for s in at.success)
    # Scored, checked and (with no filter yet) left to reviewers, as `likeness generate` does it.
    [summary] = [info.value.replace("\\", "") for info in at.info]   # markup escapes removed
    assert summary.startswith("scored 2 images: ") and "checked 2 generated image(s): " in summary
    assert "no learned filter yet" in summary
    assert all({"face_found", scores.DISCRIMINATOR, scores.REALISM} <= set(checks) for checks, _ in stored(env_workbench))

    with env_workbench.db.unit_of_work() as session:   # a release behind the run is revoked meanwhile
        session.execute(update(Checkpoint).where(Checkpoint.run_id == recorded_run).values(tainted=True))
    at.run()
    assert not at.exception, at.exception
    assert len(at.image) == 1   # the sample grid only: the tainted faces are no longer shown
    assert any("2 of these images are withheld" in w.value and "tainted" in w.value for w in at.warning)


def test_the_active_filter_decides_the_faces_the_page_generates(env_workbench: Workbench, recorded_run: int) -> None:
    wb = env_workbench
    classifier = LogisticRegression().fit(np.array([[-1.0], [1.0]]), np.array([0, 1]))
    buffer = io.BytesIO()
    joblib.dump(classifier, buffer)
    with wb.db.unit_of_work() as session:     # sure of every face: each p(good) is at least 0
        session.add(FaceFilter(version=1, model_sha256=wb.blobs.put_bytes(buffer.getvalue()),
                               features=[f"{scores.DISCRIMINATOR}.value"], thresholds={"reject": None, "accept": 0.0},
                               metrics={}, active=True, created_by="test"))
    at = open_page(wb)
    at.number_input(key="training_count").set_value(3)
    at.button(key="training_generate_submit").click().run()
    assert not at.exception, at.exception
    [summary] = [info.value.replace("\\", "") for info in at.info]
    assert "checked 3 generated image(s): " in summary and "filter v1 scored 3 faces: 3 accepted, 0 rejected" in summary
    assert [decision for _, decision in stored(wb)] == ["accept"] * 3
    with wb.db.unit_of_work() as session:     # decided faces leave the review queue
        assert not session.scalars(select(ReviewItem.id).where(reviewable())).all()


def test_generating_without_scores_or_checks_leaves_the_faces_to_reviewers(env_workbench: Workbench,
                                                                           recorded_run: int) -> None:
    at = open_page(env_workbench)
    at.number_input(key="training_count").set_value(2)
    at.checkbox(key="training_score").uncheck()
    at.checkbox(key="training_checks").uncheck()
    at.button(key="training_generate_submit").click().run()
    assert not at.exception, at.exception
    assert generated(env_workbench) == 2 and not at.info
    assert stored(env_workbench) == [({}, None), ({}, None)]


def test_the_checkpoint_table_shows_aliases_and_stored_quality(env_workbench: Workbench, recorded_run: int) -> None:
    with env_workbench.db.unit_of_work() as session:
        checkpoint = session.scalars(select(Checkpoint).where(Checkpoint.run_id == recorded_run)).one()
        checkpoint.metrics = {**checkpoint.metrics, "metrics": {"fid": 12.5, "kid": 0.0125, "kid_std": 0.001}}
        session.add(CheckpointAlias(name="production", checkpoint_id=checkpoint.id, set_by="tester"))
        checkpoint_id = checkpoint.id
    at = open_page(env_workbench)
    table = next(d.value for d in at.dataframe if "FID" in d.value.columns)
    assert list(table["#"]) == [checkpoint_id] and list(table["aliases"]) == ["production"]
    assert list(table["FID"]) == [12.5] and list(table["KID"]) == [0.0125]
    assert list(table["features"]) == ["inception"] and list(table["tainted"]) == [""]


def test_a_tainted_checkpoint_is_refused(env_workbench: Workbench, recorded_run: int) -> None:
    with env_workbench.db.unit_of_work() as session:
        session.execute(update(Checkpoint).where(Checkpoint.run_id == recorded_run).values(tainted=True))
    at = open_page(env_workbench)
    at.number_input(key="training_count").set_value(1)
    at.button(key="training_generate_submit").click().run()
    assert not at.exception, at.exception
    assert any("tainted" in e.value for e in at.error)
    assert generated(env_workbench) == 0


def test_starting_a_run_launches_the_cli_in_its_own_process(env_workbench: Workbench, recorded_run: int,
                                                            tiny_trained_run: tuple[Path, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, **_: _noted(started, args) or SimpleNamespace(pid=4242))
    at = open_page(env_workbench)
    at.text_input(key="training_dataset").input(str(tiny_trained_run[0]))
    at.text_input(key="training_name").input("tiny")
    at.button(key="training_start_submit").click().run()
    assert any("exists already" in e.value for e in at.error) and not started

    at.text_input(key="training_name").input("second")
    at.number_input(key="training_kimg").set_value(0.5)
    at.button(key="training_start_submit").click().run()
    assert not at.exception, at.exception
    run_dir = env_workbench.settings.data_dir / "runs" / "second"
    assert started == [[sys.executable, "-m", "likeness.cli", "train", "run",
                        str(tiny_trained_run[0]), "--external", "--out", str(run_dir), "--name", "second", "--kimg", "0.5",
                        "--batch", "32", "--snapshot-kimg", "200"]]


def test_the_start_form_trains_on_a_chosen_snapshot(env_workbench: Workbench, monkeypatch: pytest.MonkeyPatch) -> None:
    sitters = [SitterPlan(code=f"P{i:04d}", faces=6, person={"age_band": "adult"}) for i in range(3)]
    with env_workbench.db.unit_of_work() as session:
        add_pool(session, env_workbench.blobs, sitters)
    built = snapshots_api.build(env_workbench, 'name = "studio"\nsize = 12\nresolution = 16\n', actor="test", admin=True)
    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, **_: _noted(started, args) or SimpleNamespace(pid=4242))
    at = open_page(env_workbench)
    [choice] = [o for o in at.selectbox(key="training_source").options if o.startswith(f"#{built.snapshot_id} studio")]
    at.selectbox(key="training_source").set_value(choice)
    at.button(key="training_start_submit").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    run_dir = env_workbench.settings.data_dir / "runs" / f"snapshot-{built.snapshot_id}"
    assert started == [[sys.executable, "-m", "likeness.cli", "train", "run", "--dataset", str(built.snapshot_id),
                        "--out", str(run_dir), "--name", f"snapshot-{built.snapshot_id}", "--kimg", "25000",
                        "--batch", "32", "--snapshot-kimg", "200"]]


def test_a_labeler_does_not_get_the_page(env_workbench: Workbench, recorded_run: int) -> None:
    at = open_page(env_workbench, Role.labeler)
    assert "Training" not in titles(at)
    assert not at.dataframe and not at.image


def test_the_start_form_names_the_device_and_estimates_the_time(env_workbench: Workbench, tmp_path: Path,
                                                                tiny_trained_run: tuple[Path, Path]) -> None:
    start_run(env_workbench, tiny_config(tiny_trained_run[0], tmp_path / "tiny"), external=True)   # a run that trained here
    at = open_page(env_workbench)
    assert any(c.value.startswith("Trains on CPU") for c in at.caption)
    at.text_input(key="training_dataset").input(str(tiny_trained_run[0]))
    at.number_input(key="training_kimg").set_value(100.0)
    at.number_input(key="training_batch").set_value(4)   # as the recorded tiny run: its speed is known
    at.button(key="training_estimate_submit").click().run()
    assert not at.exception, at.exception
    [info] = at.info
    shown = info.value.replace("\\", "")     # as the page shows it, markup escapes removed
    assert "estimated time: " in shown and "for 100 kimg at " in shown and " s/kimg" in shown
    assert "the speed of run tiny on this machine" in shown and shown.startswith("On CPU")


@pytest.mark.browser
@pytest.mark.slow
def test_a_live_run_shows_its_progress_and_stops_from_the_page(
        env_workbench: Workbench, app_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS
    from tests.ui.browser_support import sign_in as browser_sign_in

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    prepared = make_dataset(tmp_path / "set")
    started = api.start_run_process(workbench=env_workbench, dataset=prepared.dest, external=True, name="live", kimg=1000, batch=4,
                                    snapshot_kimg=1000, extra_args=tiny_process_args(tmp_path))
    add_user(env_workbench, "boss", Role.admin)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            browser_sign_in(page, app_url, "boss")
            page.goto(f"{app_url}/training")
            expect(page.get_by_role("heading", name="Training")).to_be_visible(timeout=60_000)
            # The progress line appears and moves on by itself: nobody presses Refresh.
            line = page.get_by_text(re.compile(r"live running: kimg \d+\.\d{3} / 1000"))
            expect(line).to_be_visible(timeout=240_000)
            expect(line).to_contain_text("img/s", timeout=60_000)
            first = line.inner_text()
            expect(line).not_to_have_text(first, timeout=120_000)
            expect(page.get_by_text("device: CPU (1 thread)")).to_be_visible(timeout=60_000)   # the log, live

            # In the page, not the header's own "Stop" that Streamlit shows while a script runs.
            page.get_by_test_id("stMain").get_by_role("button", name="Stop").click()
            expect(page.get_by_text("Asked run live to stop")).to_be_visible(timeout=60_000)
            expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=240_000)
        finally:
            browser.close()
    [summary] = api.run_summaries(env_workbench)
    assert summary.status == "stopped" and summary.checkpoints == 1 and summary.kimg > 0
    deadline = time.monotonic() + 60
    while Path(f"/proc/{started.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{started.pid}").exists(), "the stopped run's process was not reaped"
