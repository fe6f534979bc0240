from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingest import api
from likeness import doctor
from likeness.models import Face, Shot
from likeness.workbench import Workbench
from samples.shoot import build_sample_shoot
from tests.cli_runner import process_env
from tests.factories.people import register_sitter


def _count_shots(workbench: Workbench) -> int:
    with workbench.db.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Shot)) or 0


@pytest.mark.slow
def test_killed_ingest_resumes_with_nothing_lost_or_doubled(workbench: Workbench, tmp_path: Path) -> None:
    shoot = build_sample_shoot(tmp_path / "big-shoot", n_good=10, frame_size=(2048, 1366), include_bad=False)
    register_sitter(workbench, tmp_path)
    env = process_env(workbench, LIKENESS_WORKERS="1", LIKENESS_BATCH_SIZE="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "likeness", "ingest", str(shoot.path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 240
    try:
        while _count_shots(workbench) < 2:
            assert process.poll() is None, "the ingest ended before it could be killed"
            assert time.monotonic() < deadline, "no batch was committed in time"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the coordinator and its worker, mid-frame
        process.wait()
    stored_when_killed = _count_shots(workbench)
    assert 2 <= stored_when_killed < len(shoot.good_frames)

    summary = api.ingest_folder(workbench=workbench, path=shoot.path, actor="test")
    assert summary.ok
    assert len(summary.already_stored) == stored_when_killed
    assert len(summary.accepted) == len(shoot.good_frames) - stored_when_killed
    with workbench.db.unit_of_work() as session:
        paths = list(session.scalars(select(Shot.relative_path)))
        assert sorted(paths) == sorted(shoot.good_frames)  # each frame exactly once
        assert session.scalar(select(func.count()).select_from(Face)) == len(shoot.good_frames)
        report = doctor.check(session=session, blobs=workbench.blobs)
    assert report.orphan_blobs == [] and report.missing == []
    # originals + previews + crops + the release document, nothing else
    assert report.blobs_stored == report.blobs_referenced == 3 * len(shoot.good_frames) + 1
