"""Two ingests of the same folder at the same time, in two real processes: both finish cleanly
and every shot is stored exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from likeness import doctor
from likeness.models import Face, IngestFailure, Shoot, Shot
from likeness.workbench import Workbench
from samples.shoot import build_sample_shoot
from tests.cli_runner import process_env
from tests.factories.people import register_sitter

RUNS = 2


@pytest.mark.slow
def test_two_ingests_of_one_folder_at_once_both_succeed(workbench: Workbench, tmp_path: Path) -> None:
    shoot = build_sample_shoot(tmp_path / "shoot", n_good=4, frame_size=(512, 384), include_bad=False)
    register_sitter(workbench, tmp_path)
    # Many small transactions: many chances to collide.
    env = process_env(workbench, LIKENESS_WORKERS="0", LIKENESS_BATCH_SIZE="1")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "likeness", "ingest", str(shoot.path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(RUNS)
    ]
    results = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, results):
        assert "Traceback" not in err and "IntegrityError" not in err + out, err
        assert process.returncode == 0, out + err
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Shoot)) == 1
        paths = sorted(session.scalars(select(Shot.relative_path)))
        assert paths == sorted(shoot.good_frames)  # each frame exactly once
        assert session.scalar(select(func.count()).select_from(Face)) == len(shoot.good_frames)
        assert session.scalar(select(func.count()).select_from(IngestFailure)) == 0
        assert "quarantined" not in set(session.scalars(select(Shot.status)))  # QA may reject small frames
        report = doctor.check(session=session, blobs=workbench.blobs)
    assert report.missing == [] and report.orphan_blobs == []
    # originals + previews + crops + the release document
    assert report.blobs_stored == report.blobs_referenced == 3 * len(shoot.good_frames) + 1
