"""Re-ingesting puts back what `likeness doctor --repair` dropped or what went missing from the
blob store; and how files that cannot become shots are reported before dedupe and decode."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from PIL import Image
from sqlalchemy import select

import ingest.coordinator
from ingest import api
from ingest.decode import FrameError, decode_frame, pixel_limit
from ingest.frame import FrameFailure, FrameJob, FrameResult, process_frame
from likeness import doctor
from likeness.models import Face, Shot
from likeness.workbench import Workbench
from samples.shoot import build_sample_shoot
from tests.conftest import make_settings
from tests.factories.people import register_sitter
from tests.factories.shoots import write_shoot_toml


def _blob_file(workbench: Workbench, sha: str) -> Path:
    return workbench.blobs.local_path(sha)


def test_reingest_restores_missing_previews_and_crops(
    workbench: Workbench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shoot = build_sample_shoot(tmp_path / "shoot", n_good=3, frame_size=(512, 384), include_bad=False)
    register_sitter(workbench, tmp_path)
    first = api.ingest_folder(workbench=workbench, path=shoot.path, actor="test")
    assert first.ok and len(first.accepted) == 3
    cropped, previewed, untouched = shoot.good_frames
    with workbench.db.unit_of_work() as session:
        shots = {s.relative_path: s for s in session.scalars(select(Shot))}
        crop = cast(str, shots[cropped].faces[0].crop_sha256)
        preview = cast(str, shots[previewed].preview_sha256)
        original = shots[untouched].sha256
    _blob_file(workbench, crop).unlink()  # lost, then dropped by the doctor
    with workbench.db.unit_of_work() as session:
        report = doctor.check(session=session, blobs=workbench.blobs)
        doctor.repair(session=session, blobs=workbench.blobs, report=report, actor="test")
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(Face.crop_sha256).join(Shot).where(Shot.relative_path == cropped)) is None
    _blob_file(workbench, preview).unlink()  # lost, the row still names it

    decoded: list[str] = []

    def counting(job: FrameJob) -> FrameResult | FrameFailure:
        decoded.append(job.relative_path)
        return process_frame(job)

    monkeypatch.setattr(ingest.coordinator, "process_frame", counting)
    again = api.ingest_folder(workbench=workbench, path=shoot.path, actor="test")
    assert again.ok and again.accepted == [] and sorted(again.already_stored) == sorted(shoot.good_frames)
    assert sorted(decoded) == sorted([cropped, previewed])  # only the frames that missed a blob
    assert workbench.blobs.exists(crop) and workbench.blobs.exists(preview) and workbench.blobs.exists(original)
    with workbench.db.unit_of_work() as session:
        shots = {s.relative_path: s for s in session.scalars(select(Shot))}
        assert shots[cropped].faces[0].crop_sha256 == crop
        assert shots[previewed].preview_sha256 == preview
        report = doctor.check(session=session, blobs=workbench.blobs)
    assert report.healthy, report

    decoded.clear()
    third = api.ingest_folder(workbench=workbench, path=shoot.path, actor="test")
    assert third.ok and decoded == []  # complete again: nothing decoded


def test_reingest_restores_a_missing_original(workbench: Workbench, tmp_path: Path) -> None:
    shoot = build_sample_shoot(tmp_path / "shoot", n_good=1, frame_size=(512, 384), include_bad=False)
    register_sitter(workbench, tmp_path)
    api.ingest_folder(workbench=workbench, path=shoot.path, actor="test")
    with workbench.db.unit_of_work() as session:
        original = cast(str, session.scalar(select(Shot.sha256)))
    _blob_file(workbench, original).unlink()
    again = api.ingest_folder(workbench=workbench, path=shoot.path, actor="test")
    assert again.ok and again.already_stored == shoot.good_frames
    assert workbench.blobs.read_bytes(original) == (shoot.path / shoot.good_frames[0]).read_bytes()


def test_empty_files_fail_as_empty_not_as_duplicates(workbench: Workbench, tmp_path: Path) -> None:
    folder = tmp_path / "empties"
    write_shoot_toml(folder, name="empties", sitters=["P0001"])
    (folder / "P0001").mkdir()
    for name in ("a.dng", "b.dng", "c.jpg"):
        (folder / "P0001" / name).write_bytes(b"")
    summary = api.ingest_folder(workbench=workbench, path=folder, actor="test")
    assert summary.duplicates == []
    assert sorted((Path(p).name, kind) for p, kind, _ in summary.failed) == [
        ("a.dng", "empty"), ("b.dng", "empty"), ("c.jpg", "empty")
    ]
    again = api.ingest_folder(workbench=workbench, path=folder, actor="test")  # recorded once per path
    assert again.duplicates == [] and len(again.failed) == 3


# -- LIKENESS_MAX_PIXELS decides for rasters as for RAW files -------------------------------------

def test_our_pixel_limit_refuses_a_raster_bomb_with_our_message(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 10_000)).save(bomb)  # a small file, 200 megapixels: over Pillow's own guard too
    with pytest.raises(FrameError) as refused:
        decode_frame(bomb, max_pixels=1_000)
    assert refused.value.kind == "too_large"
    assert "20000x10000" in refused.value.reason and "1,000" in refused.value.reason
    assert "LIKENESS_MAX_PIXELS" in refused.value.reason
    assert str(Image.MAX_IMAGE_PIXELS) not in refused.value.reason.replace(",", "")  # not Pillow's number


def test_a_raster_within_our_limit_decodes_whatever_pillows_guard_says(tmp_path: Path) -> None:
    frame = tmp_path / "frame.png"
    Image.new("RGB", (300, 200), "grey").save(frame)
    with pixel_limit(10_000):  # Pillow's guard far below the frame; ours above it
        decoded = decode_frame(frame, max_pixels=100_000)
    assert decoded.rgb.shape == (200, 300, 3)
    with pytest.raises(FrameError, match="300x200 .*exceeds the pixel limit of 50,000"):
        decode_frame(frame, max_pixels=50_000)


def test_the_worker_runs_pillow_under_our_limit(tmp_path: Path) -> None:
    frame = tmp_path / "frame.png"
    Image.new("RGB", (300, 200), "grey").save(frame)
    settings = make_settings(tmp_path, "sqlite://")
    job = FrameJob(
        path=frame, relative_path="frame.png", sha256="0" * 64, blob_url=str(tmp_path / "blobs"),
        align_size=settings.align_size, preview_size=settings.preview_size, max_pixels=5_000,
    )
    before = Image.MAX_IMAGE_PIXELS
    outcome = process_frame(job)
    assert isinstance(outcome, FrameFailure) and outcome.kind == "too_large" and "5,000" in outcome.reason
    assert Image.MAX_IMAGE_PIXELS == before  # put back after the frame
