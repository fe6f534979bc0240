"""The consent gate judges each frame on the date its camera recorded, not on the manifest's
word: a shoot dated in the future is refused, a frame dated far from its shoot is quarantined
for an admin to decide, and a frame taken after its release expired is not accepted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest import api
from ingest.gate import CAPTURE_DATE_TOLERANCE
from likeness.errors import InvalidInput
from likeness.models import Shot
from likeness.workbench import Workbench
from samples.releases import write_release_document
from samples.shoot import build_sample_shoot

SITTER = "P0001"


def _shoot(tmp_path: Path, *, camera_date: dt.date, manifest_date: dt.date) -> Path:
    """Frames whose EXIF says `camera_date`, in a shoot whose shoot.toml says `manifest_date`."""
    shoot = build_sample_shoot(tmp_path / "shoot", sitter=SITTER, date=camera_date, n_good=1,
                               frame_size=(512, 384), include_bad=False)
    manifest = shoot.path / "shoot.toml"
    manifest.write_text(manifest.read_text().replace(f"date = {camera_date}", f"date = {manifest_date}"))
    return shoot.path


def _release(workbench: Workbench, tmp_path: Path, *, signed: dt.date, expires: dt.date | None) -> None:
    document = write_release_document(tmp_path / "release.pdf", person_code=SITTER, signed_on=signed, scopes=["ai_training"])
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code=SITTER, actor="test")
        api.add_release(session=session, blobs=workbench.blobs, person_code=SITTER, document=document, signed_on=signed,
                        expires_on=expires, scopes=["ai_training"], actor="test")


def _statuses(workbench: Workbench) -> set[tuple[str, str | None]]:
    with workbench.db.unit_of_work() as session:
        return {(s.status.value, s.reason) for s in session.scalars(select(Shot))}


def test_a_frame_taken_after_its_release_expired_is_not_accepted(workbench: Workbench, tmp_path: Path) -> None:
    # The manifest claims the last day the release covers; the camera recorded the day after.
    _release(workbench, tmp_path, signed=dt.date(2026, 1, 1), expires=dt.date(2026, 11, 20))
    folder = _shoot(tmp_path, camera_date=dt.date(2026, 11, 21), manifest_date=dt.date(2026, 11, 20))
    api.ingest_folder(workbench=workbench, path=folder, actor="test")
    assert _statuses(workbench) == {("quarantined", "release_expired")}
    with workbench.db.unit_of_work() as session:
        assert {s.capture_date for s in session.scalars(select(Shot))} == {dt.date(2026, 11, 21)}


def test_a_camera_date_far_from_the_shoot_date_is_quarantined(workbench: Workbench, tmp_path: Path) -> None:
    _release(workbench, tmp_path, signed=dt.date(2026, 1, 1), expires=None)
    camera = dt.date(2026, 11, 20)
    folder = _shoot(tmp_path, camera_date=camera, manifest_date=camera - CAPTURE_DATE_TOLERANCE - dt.timedelta(days=1))
    api.ingest_folder(workbench=workbench, path=folder, actor="test")
    assert _statuses(workbench) == {("quarantined", "capture_date_mismatch")}
    with workbench.db.unit_of_work() as session:
        detail = session.scalars(select(Shot.reason_detail)).one()
    assert detail is not None and str(camera) in detail


def test_a_camera_clock_a_day_off_is_tolerated(workbench: Workbench, tmp_path: Path) -> None:
    _release(workbench, tmp_path, signed=dt.date(2026, 1, 1), expires=None)
    camera = dt.date(2026, 11, 20)
    folder = _shoot(tmp_path, camera_date=camera, manifest_date=camera + CAPTURE_DATE_TOLERANCE)
    summary = api.ingest_folder(workbench=workbench, path=folder, actor="test")
    assert len(summary.accepted) == 1


def test_a_release_signed_between_the_two_dates_does_not_cover_the_frame(workbench: Workbench, tmp_path: Path) -> None:
    # Within the tolerance both dates must be covered: the earlier one precedes the signature.
    _release(workbench, tmp_path, signed=dt.date(2026, 11, 20), expires=None)
    folder = _shoot(tmp_path, camera_date=dt.date(2026, 11, 19), manifest_date=dt.date(2026, 11, 20))
    api.ingest_folder(workbench=workbench, path=folder, actor="test")
    assert _statuses(workbench) == {("quarantined", "no_release")}


def test_a_shoot_dated_in_the_future_is_refused(workbench: Workbench, tmp_path: Path) -> None:
    _release(workbench, tmp_path, signed=dt.date(2026, 1, 1), expires=None)
    folder = _shoot(tmp_path, camera_date=dt.date(2026, 11, 20), manifest_date=dt.date(2099, 1, 1))
    with pytest.raises(InvalidInput, match=r"shoot\.toml: the shoot date 2099-01-01 is in the future"):
        api.ingest_folder(workbench=workbench, path=folder, actor="test")
    assert _statuses(workbench) == set()
