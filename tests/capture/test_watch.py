"""The live hot folder with real frames written the ways cameras and copy tools write them: each
frame stored exactly once and never while incomplete, alerts in plain words, faults survived,
and the record the same as a batch ingest of the same folder."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from capture.watch import WatchOptions
from likeness.config import Settings
from likeness.models import IngestFailure, Shot
from likeness.workbench import Workbench
from pipeline.api import ingest_and_check
from tests.capture.conftest import SHOOT, write_chunked
from tests.cli_runner import run_cli
from tests.factories.people import EARLY_RELEASE, register_sitter


def stored(workbench: Workbench) -> list[Shot]:
    with workbench.db.unit_of_work() as session:
        shots = session.scalars(select(Shot).options(selectinload(Shot.faces)).order_by(Shot.relative_path)).all()
        session.expunge_all()
        return list(shots)


def paths(workbench: Workbench) -> Counter[str]:
    return Counter(shot.relative_path for shot in stored(workbench))


def test_every_way_of_writing_a_frame_is_taken_once_and_never_early(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch, tmp_path: Path
) -> None:
    running = watch()
    sitter = hot_folder / "P0001"

    # A camera writing in chunks with pauses: nothing is stored while the file is open.
    def not_yet() -> None:
        assert "P0001/a.png" not in paths(workbench)

    write_chunked(frames["open_a"], sitter / "a.png", between=not_yet)
    running.wait_verdict("P0001/a.png")

    # A copy tool: a temporary name, then a rename.
    shutil.copy(frames["open_b"], sitter / "b.png.part")
    os.rename(sitter / "b.png.part", sitter / "b.png")
    # Moved in from elsewhere on the same disk: no close event in the folder at all.
    outside = tmp_path / "card" / "closed.jpg"
    outside.parent.mkdir()
    shutil.copy(frames["closed"], outside)
    os.rename(outside, sitter / "closed.jpg")
    # Opened and closed twice: written in two sessions, then read by a viewer.
    data = frames["blurred"].read_bytes()
    with open(sitter / "blurred.jpg", "wb") as handle:
        handle.write(data[: len(data) // 2])
    with open(sitter / "blurred.jpg", "ab") as handle:
        handle.write(data[len(data) // 2 :])
    (sitter / "blurred.jpg").read_bytes()
    for name in ("b.png", "closed.jpg", "blurred.jpg"):
        running.wait_verdict(f"P0001/{name}")

    # The same content again under another name, and the same file closed once more: no second shot.
    shutil.copy(frames["open_a"], sitter / "a_again.png")
    with open(sitter / "a.png", "ab"):
        pass
    running.wait(
        "the repeated content to be seen", lambda: any("a_again.png" in e["message"] for e in running.events("info"))
    )
    running.stop()

    counts = paths(workbench)
    assert counts == Counter({"P0001/a.png": 1, "P0001/b.png": 1, "P0001/closed.jpg": 1, "P0001/blurred.jpg": 1})
    verdicts = Counter(e["path"] for e in running.events("verdict"))
    assert set(verdicts.values()) == {1}
    alerts = [e["message"] for e in running.events("alert")]
    assert any(m.startswith("P0001: eyes closed — reshoot") and "closed.jpg" in m for m in alerts), alerts
    assert any(m.startswith("P0001: out of focus or blurred — reshoot") and "blurred.jpg" in m for m in alerts), alerts
    assert not any("a.png" in m or "b.png" in m for m in alerts), alerts
    with workbench.db.unit_of_work() as session:
        assert session.scalars(select(IngestFailure)).all() == []


def test_faults_each_give_an_alert_and_the_watcher_goes_on(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch
) -> None:
    running = watch()
    # A transfer cut short: reported once it stays unchanged, recorded as a failure, no shot.
    shutil.copy(frames["truncated"], hot_folder / "P0001" / "cut.dng")
    alert = running.wait_alert("cut.dng")
    assert "cut short" in alert["message"] and alert["fault"] == "truncated"
    # A sitter folder the shoot does not list, and a camera whose clock is years off.
    (hot_folder / "P0099").mkdir()
    shutil.copy(frames["open_a"], hot_folder / "P0099" / "x.png")
    shutil.copy(frames["clock_off"], hot_folder / "P0001" / "clock.jpg")
    assert "folder P0099 is not a sitter of this shoot" in running.wait_alert("P0099/x.png")["message"]
    assert "camera clock is far off" in running.wait_alert("clock.jpg")["message"]
    # Deleted before it was read: written and removed within the quiet time.
    shutil.copy(frames["open_b"], hot_folder / "P0001" / "gone.png")
    (hot_folder / "P0001" / "gone.png").unlink()
    assert "deleted before it was read" in running.wait_alert("gone.png")["message"]
    # The folder vanishes (an unplugged drive) and comes back: the watcher waits and catches up.
    away = hot_folder.with_name("unplugged")
    os.rename(hot_folder, away)
    running.wait_alert("is gone")
    shutil.copy(frames["open_b"], away / "P0001" / "later.png")
    os.rename(away, hot_folder)
    running.wait_verdict("P0001/later.png")
    running.stop()

    counts = paths(workbench)
    assert counts == Counter({"P0099/x.png": 1, "P0001/clock.jpg": 1, "P0001/later.png": 1})
    reasons = {s.relative_path: s.reason for s in stored(workbench)}
    assert reasons["P0099/x.png"] == "unknown_sitter" and reasons["P0001/clock.jpg"] == "capture_date_mismatch"
    with workbench.db.unit_of_work() as session:
        failures = [(f.relative_path, f.kind) for f in session.scalars(select(IngestFailure))]
    assert failures == [("P0001/cut.dng", "truncated")]


def test_polling_takes_files_once_stable_and_decodable(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch
) -> None:
    running = watch(WatchOptions(poll=True, poll_interval_s=0.2, stable_s=0.6, give_up_s=30, workers=0))
    # Pauses longer than the stability time: the half-written DNG does not decode, so it waits.
    write_chunked(frames["raw"], hot_folder / "P0001" / "chart.dng", chunks=3, pause_s=1.5,
                  between=lambda: None)
    running.wait_verdict("P0001/chart.dng")
    running.stop()
    assert paths(workbench) == Counter({"P0001/chart.dng": 1})
    assert not running.events("alert") or all("chart.dng" not in e["message"] or "no face" in e["message"]
                                               for e in running.events("alert"))


def test_close_gives_the_record_of_a_batch_ingest(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch, tmp_path: Path,
    sqlite_template: Path, monkeypatch,
) -> None:
    running = watch()
    for name in ("open_a", "closed", "blurred", "open_b"):
        shutil.copy(frames[name], hot_folder / "P0001" / frames[name].name)
    for name in ("open_a", "closed", "blurred", "open_b"):
        running.wait_verdict(f"P0001/{frames[name].name}")
    running.stop()
    settings = workbench.settings
    for key, value in {"LIKENESS_DATA_DIR": settings.data_dir, "LIKENESS_DATABASE_URL": settings.resolved_database_url,
                       "LIKENESS_BLOB_URL": settings.resolved_blob_url, "LIKENESS_WORKERS": 0,
                       "LIKENESS_ALIGN_SIZE": settings.align_size, "LIKENESS_PREVIEW_SIZE": settings.preview_size}.items():
        monkeypatch.setenv(key, str(value))
    closed = run_cli("capture", "close", SHOOT)
    assert closed.exit_code == 0, closed.output
    assert "reshoot P0001/closed.jpg" in closed.output and "reshoot P0001/blurred.jpg" in closed.output

    batch_db = tmp_path / "batch.db"
    shutil.copy(sqlite_template, batch_db)
    batch_settings = Settings(data_dir=tmp_path / "batch", database_url=f"sqlite:///{batch_db}",
                              blob_url=str(tmp_path / "batch-blobs"), workers=0, align_size=settings.align_size,
                              preview_size=settings.preview_size)
    copy = tmp_path / "copy" / SHOOT
    shutil.copytree(hot_folder, copy)
    with Workbench.open(batch_settings) as batch:
        register_sitter(batch, tmp_path, signed_on=EARLY_RELEASE)
        ingest_and_check(workbench=batch, path=copy, actor="test")

        def record(wb: Workbench) -> dict[str, tuple]:
            return {s.relative_path: (s.sha256, s.status, s.reason, s.face_count, s.preview_sha256,
                                      [f.crop_sha256 for f in s.faces], s.qa) for s in stored(wb)}

        assert record(workbench) == record(batch)
