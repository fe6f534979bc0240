"""One process trains a run at a time: the lease, interrupted runs, stale temporary files."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from likeness import doctor
from likeness.errors import ConfigError
from likeness.models import Checkpoint, RunStatus, TrainingRun, utcnow
from likeness.workbench import Workbench
from tests.cli_runner import run_cli
from tests.training.conftest import TINY, make_dataset, tiny_config
from training.networks import NetworkConfig
from training.runs import LEASE_TIMEOUT_S, lease_is_live, run_status, start_run

REPO_ROOT = Path(__file__).resolve().parents[2]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def row(workbench: Workbench, name: str) -> TrainingRun | None:
    with workbench.db.unit_of_work() as session:
        return session.scalar(select(TrainingRun).where(TrainingRun.name == name))


def status_of(workbench: Workbench, name: str) -> str:
    with workbench.db.unit_of_work() as session:
        return next(s.status for s in run_status(session=session) if s.name == name)


def ticked(workbench: Workbench, name: str) -> bool:
    run = row(workbench, name)
    return run is not None and run.kimg > 0


def long_cli_run(dataset: Path, out: Path, name: str, network: Path) -> subprocess.Popen[str]:
    """`likeness train run` far longer than any test waits, snapshotting every tick."""
    return subprocess.Popen(
        [sys.executable, "-m", "likeness.cli", "train", "run", str(dataset), "--external", "--out", str(out), "--name", name,
         "--network", str(network), "--kimg", "1000", "--batch", "4", "--snapshot-kimg", "0.004",
         "--tick-kimg", "0.004", "--device", "cpu", "--workers", "0"],
        cwd=REPO_ROOT, env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, preexec_fn=_take_sigint)


def _take_sigint() -> None:
    # A suite started in the background (`cmd &` in a script) ignores SIGINT, and so would the
    # run it starts; the test plays a Ctrl-C at a terminal, where the run takes it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def network_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.json"
    path.write_text(json.dumps(NetworkConfig(**TINY).to_dict()))
    return path


@pytest.mark.slow
def test_two_runs_of_one_name_at_once_one_is_refused(env_workbench: Workbench, tmp_path: Path,
                                                     network_file: Path) -> None:
    prepared = make_dataset(tmp_path)
    out = tmp_path / "faces"
    both = [long_cli_run(prepared.dest, out, "faces", network_file) for _ in range(2)]
    try:
        # Neither run ends by itself: the one that exits is the one refused.
        wait_for("one of the two runs to exit", lambda: any(p.poll() is not None for p in both))
        [refused] = [p for p in both if p.poll() is not None]
        [winner] = [p for p in both if p is not refused]
        output = refused.communicate()[0]
        assert refused.returncode == 1, output
        assert "error: training run 'faces' is running" in " ".join(output.split()), output
        assert "Traceback" not in output

        wait_for("the winner's first tick", lambda: ticked(env_workbench, "faces"))
        assert status_of(env_workbench, "faces") == "running"
        running = row(env_workbench, "faces")
        assert running is not None
        assert (running.lease_pid, running.lease_host) == (winner.pid, socket.gethostname())
        winner.send_signal(signal.SIGINT)
        output = winner.communicate(timeout=120)[0]
        assert winner.returncode == 130, output
    finally:
        for p in both:
            if p.poll() is None:
                p.kill()
                p.wait()

    stopped = row(env_workbench, "faces")
    assert stopped is not None
    assert (stopped.status, stopped.lease_pid, stopped.lease_host, stopped.heartbeat_at) == ("stopped", None, None, None)
    with env_workbench.db.unit_of_work() as session:
        report = doctor.check(session=session, blobs=env_workbench.blobs)
        kimgs = list(session.scalars(select(Checkpoint.kimg).where(Checkpoint.run_id == stopped.id)))
        assert len(session.scalars(select(TrainingRun)).all()) == 1
    assert report.healthy, report  # no orphan blob from the refused run
    assert kimgs and len(kimgs) == len(set(kimgs))


@pytest.mark.slow
def test_a_killed_run_shows_interrupted_and_the_next_start_takes_it_over(
        env_workbench: Workbench, tmp_path: Path, network_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    prepared = make_dataset(tmp_path)
    out = tmp_path / "faces"
    process = long_cli_run(prepared.dest, out, "faces", network_file)
    try:
        wait_for("the first tick", lambda: ticked(env_workbench, "faces"))
        assert status_of(env_workbench, "faces") == "running"
    finally:
        process.kill()  # SIGKILL: nothing of the run's own code runs
        process.communicate()
    stale = out / ".network-snapshot-000000.pt.k1ll3d.tmp"  # as a kill during a snapshot write leaves it
    stale.write_bytes(b"half a snapshot")

    killed = row(env_workbench, "faces")
    assert killed is not None and killed.status == RunStatus.running  # the row itself still says running
    assert status_of(env_workbench, "faces") == "interrupted"
    listed = run_cli("train", "status")
    line = next(line for line in listed.output.splitlines() if line.split()[1:2] == ["faces"])
    assert "interrupted" in line

    kimg = killed.kimg
    run_id = start_run(env_workbench, tiny_config(prepared.dest, out, total_kimg=kimg + 0.004), name="faces", external=True)

    assert run_id == killed.id
    assert not stale.exists()
    done = row(env_workbench, "faces")
    assert done is not None
    assert (done.status, done.lease_pid, done.kimg) == ("finished", None, pytest.approx(kimg + 0.004))
    assert status_of(env_workbench, "faces") == "finished"


def test_a_lease_holds_until_its_process_is_gone_or_its_heartbeat_is_old(workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)
    out = tmp_path / "faces"
    run_id = start_run(workbench, tiny_config(prepared.dest, out, total_kimg=0.004), name="faces", external=True)
    stale = out / ".training_options.json.abc.tmp"

    def hold(pid: int, host: str, age_s: float) -> None:
        with workbench.db.unit_of_work() as session:
            run = session.get_one(TrainingRun, run_id)
            run.status = RunStatus.running
            run.lease_pid, run.lease_host = pid, host
            run.heartbeat_at = utcnow() - dt.timedelta(seconds=age_s)
        stale.write_bytes(b"")

    # Another host, recent heartbeat: live. A second start is refused and touches nothing.
    hold(4242, "elsewhere", 5)
    assert status_of(workbench, "faces") == "running"
    with pytest.raises(ConfigError, match=r"'faces' is running .*process 4242 on elsewhere"):
        start_run(workbench, tiny_config(prepared.dest, out, total_kimg=0.008), name="faces", external=True)
    assert stale.exists()
    assert row(workbench, "faces").lease_host == "elsewhere"  # type: ignore[union-attr]

    # This host, a live process (this one): live, however the pid got there.
    hold(os.getpid(), socket.gethostname(), 5)
    assert status_of(workbench, "faces") == "running"

    # This host, a process that is gone: interrupted.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    hold(gone.pid, socket.gethostname(), 5)
    assert status_of(workbench, "faces") == "interrupted"

    # Another host whose heartbeat is older than the timeout: interrupted, and taken over.
    hold(4242, "elsewhere", LEASE_TIMEOUT_S + 5)
    assert status_of(workbench, "faces") == "interrupted"
    assert start_run(workbench, tiny_config(prepared.dest, out, total_kimg=0.008), name="faces", external=True) == run_id
    assert not stale.exists()
    done = row(workbench, "faces")
    assert done is not None and (done.status, done.kimg, done.lease_host) == ("finished", 0.008, None)


def test_lease_rules() -> None:
    now = utcnow()
    here = socket.gethostname()
    assert lease_is_live(os.getpid(), here, now, now=now)
    assert lease_is_live(1, "elsewhere", now.replace(tzinfo=None), now=now)  # SQLite's naive UTC
    assert not lease_is_live(1, "elsewhere", now - dt.timedelta(seconds=LEASE_TIMEOUT_S + 1), now=now)
    assert not lease_is_live(None, None, None)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for("the child to exit", lambda: Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
             if Path(f"/proc/{zombie.pid}/stat").exists() else True, timeout_s=30)
    assert not lease_is_live(zombie.pid, here, now, now=now)  # killed but not reaped yet
    zombie.wait()


def test_interrupted_is_a_status_the_database_accepts(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        session.add(TrainingRun(name="x", dataset_path="d", run_dir="r", total_kimg=1, status=RunStatus.interrupted))
    assert row(workbench, "x").status == RunStatus.interrupted  # type: ignore[union-attr]
