"""The watcher killed (SIGKILL) while it ingests a frame, then started again: it catches up with
no frame lost or doubled. A full disk: an alert, nothing stored, the frame taken once there is
room. gphoto2's hook delivering a download."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from capture.watch import events_path, read_events
from likeness.workbench import Workbench
from tests.capture.conftest import SHOOT, WAIT_S
from tests.capture.test_watch import paths
from tests.cli_runner import process_env


def _wait(what: str, condition, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc is not None:
            assert proc.poll() is None, f"the watcher exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _watcher(workbench: Workbench, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "likeness", "capture", "watch", str(folder), "--shoot", SHOOT, "--workers", "1",
         "--stable", "0.5", "--give-up", "1.5"],
        env=process_env(workbench, LIKENESS_WORKERS="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def test_killed_mid_frame_and_restarted_catches_up(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch
) -> None:
    log = events_path(workbench, SHOOT)
    proc = _watcher(workbench, hot_folder)
    try:
        shutil.copy(frames["open_a"], hot_folder / "P0001" / "one.png")
        _wait("the first verdict", lambda: any(e["kind"] == "verdict" for e in read_events(log)), proc)
        shutil.copy(frames["open_b"], hot_folder / "P0001" / "two.png")
        _wait("the second frame to start", lambda: any(e.get("phase") == "start" and e["path"] == "P0001/two.png"
                                                        for e in read_events(log)), proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # While it is down, more frames arrive.
    shutil.copy(frames["closed"], hot_folder / "P0001" / "three.jpg")
    shutil.copy(frames["raw"], hot_folder / "P0001" / "four.dng")

    running = watch()
    for name in ("two.png", "three.jpg", "four.dng"):
        running.wait_verdict(f"P0001/{name}")
    running.stop()
    assert paths(workbench) == Counter({f"P0001/{n}": 1 for n in ("one.png", "two.png", "three.jpg", "four.dng")})
    assert not list((workbench.settings.data_dir / "capture" / "staging").glob("*/*"))  # staging copies cleared


@pytest.fixture
def small_staging(workbench: Workbench):
    """The staging folder on a 1 MiB tmpfs (needs root), enlarged on request."""
    staging = workbench.settings.data_dir / "capture" / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(staging)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(staging)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(staging)], check=False)


def test_disk_full_alerts_stores_nothing_and_takes_the_frame_once_there_is_room(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch, small_staging
) -> None:
    running = watch()
    shutil.copy(frames["raw"], hot_folder / "P0001" / "chart.dng")  # 3.9 MB: more than the disk holds
    alert = running.wait_alert("the disk is full")
    assert "chart.dng" in alert["message"] and alert["fault"] == "disk"
    assert paths(workbench) == Counter()
    small_staging()
    running.wait_verdict("P0001/chart.dng")
    running.stop()
    assert paths(workbench) == Counter({"P0001/chart.dng": 1})


def test_gphoto2_hook_delivers_into_the_hot_folder(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch, tmp_path: Path
) -> None:
    running = watch()
    download = tmp_path / "gphoto" / "IMG_0001.png"
    download.parent.mkdir()
    shutil.copy(frames["open_a"], download)
    env = process_env(workbench, ACTION="download", ARGUMENT=str(download),
                      LIKENESS_CAPTURE_INTO=str(hot_folder / "P0001"))
    done = subprocess.run([sys.executable, "-m", "likeness", "capture", "hook"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not download.exists() and (hot_folder / "P0001" / "IMG_0001.png").is_file()
    running.wait_verdict("P0001/IMG_0001.png")
    idle = subprocess.run([sys.executable, "-m", "likeness", "capture", "hook"], env={**env, "ACTION": "init"},
                          capture_output=True, text=True)
    assert idle.returncode == 0
    running.stop()
    assert paths(workbench) == Counter({"P0001/IMG_0001.png": 1})
    assert json.loads(json.dumps(running.events("verdict")))[0]["status"] == "accepted"
    assert os.listdir(hot_folder / "P0001") == ["IMG_0001.png"]
