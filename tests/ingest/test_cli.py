from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

from PIL import Image
from sqlalchemy import func, select

from likeness.models import Shot
from likeness.workbench import Workbench
from samples.shoot import SampleShoot
from tests.cli_runner import run_cli


def test_person_release_ingest_recheck_revoke(env_workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path) -> None:
    shoot = tmp_path / "shoot"
    shutil.copytree(sample_shoot.path, shoot)
    first = run_cli("ingest", str(shoot))
    assert first.exit_code == 1  # the sample shoot holds broken files on purpose
    assert "unknown_sitter" in first.output and "failed" in first.output
    for relative in sample_shoot.bad_files:
        assert relative in first.output
    assert run_cli("person", "add", "P0001", "--name", "Ana Example", "--born", "1990-02-03").exit_code == 0
    assert "Ana Example" not in run_cli("person", "list").output  # personal data stays out of listings
    document = tmp_path / "release.pdf"
    Image.new("RGB", (100, 140), "white").save(document, format="PDF")
    added = run_cli("release", "add", "P0001", str(document), "--signed", "2026-11-01", "--scope", "ai_training")
    assert added.exit_code == 0 and "release #1" in added.output
    with env_workbench.db.unit_of_work() as session:
        good = [s for s in session.scalars(select(Shot)) if s.relative_path in sample_shoot.good_frames]
    # The release lifts the quarantine; the QA verdicts taken while quarantined still hold.
    assert {s.relative_path for s in good if s.status == "accepted"} == {s.relative_path for s in good if s.qa["passed"]}
    assert all(s.status == "rejected" and (s.reason or "").startswith("qa_") for s in good if not s.qa["passed"])
    assert len(good) == len(sample_shoot.good_frames)
    status = run_cli("release", "status", "P0001", "--on", "2026-11-20")
    assert status.exit_code == 0 and "valid" in status.output
    assert run_cli("release", "status", "P0001", "--on", "2026-10-01").exit_code == 1  # before signing
    recheck = run_cli("ingest", "recheck", "--shoot", "demo-shoot")
    assert recheck.exit_code == 0 and "0 now accepted" in recheck.output
    revoked = run_cli("release", "revoke", "1", "--reason", "withdrawn")
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "2026" in run_cli("release", "list").output
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Shot).where(Shot.status == "accepted")) == 0
    again = run_cli("ingest", "folder", str(shoot))
    assert "already stored" in again.output


def test_doctor_finds_and_repairs(env_workbench: Workbench, sample_shoot: SampleShoot, tmp_path: Path) -> None:
    run_cli("person", "add", "P0001")
    run_cli("ingest", str(sample_shoot.path))
    assert run_cli("doctor").exit_code == 0
    blobs = env_workbench.blobs
    with env_workbench.db.unit_of_work() as session:
        shot = session.scalar(select(Shot).where(Shot.relative_path == sample_shoot.good_frames[0]))
        assert shot is not None
        original, crop = shot.sha256, shot.faces[0].crop_sha256
        other = session.scalar(select(Shot).where(Shot.relative_path == sample_shoot.good_frames[1]))
        assert other is not None
        other_preview = other.preview_sha256
        assert other_preview is not None
    orphan = blobs.put_bytes(b"left behind by a killed run")
    blobs.delete(original)
    blobs.delete(other_preview)
    report = run_cli("doctor")
    assert report.exit_code == 1 and "1 orphan" in report.output and "2 rows missing a blob" in report.output
    young = run_cli("doctor", "--repair")  # the orphan is younger than the grace period: kept
    assert "1 recent orphans kept" in young.output and blobs.exists(orphan)
    repaired = run_cli("doctor", "--repair", "--grace", "0")
    assert repaired.exit_code == 0 and not blobs.exists(orphan)
    # The shot whose original vanished is gone (its face crop is now an orphan, deleted too);
    # the other shot lost only its preview reference.
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(Shot).where(Shot.sha256 == original)) is None
        assert session.scalar(select(Shot.preview_sha256).where(Shot.sha256 == other.sha256)) is None
    assert not blobs.exists(cast(str, crop))
    assert run_cli("doctor").exit_code == 0
    # Re-ingesting the folder restores the deleted shot.
    run_cli("ingest", str(sample_shoot.path))
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(Shot).where(Shot.sha256 == original)) is not None
