"""training.api: the functions the CLI and the Training page share, and their one set of defaults."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from likeness.errors import ConfigError, NotFound
from likeness.workbench import Workbench
from tests.training.conftest import make_dataset, tiny_config, tiny_process_args
from training import api
from training.cli import train_run
from training.config import RUN_DEFAULTS, TrainConfig


@pytest.fixture
def popen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, Any]]]:
    started: list[tuple[list[str], dict[str, Any]]] = []

    def fake(args: list[str], **kwargs: Any) -> SimpleNamespace:
        started.append((args, kwargs))
        return SimpleNamespace(pid=4242)

    monkeypatch.setattr(subprocess, "Popen", fake)
    return started


def test_the_run_defaults_live_in_one_place() -> None:
    fields = {f.name: f.default for f in TrainConfig.__dataclass_fields__.values()}
    assert (fields["total_kimg"], fields["batch"], fields["snapshot_kimg"], fields["kimg_per_tick"]) == (
        RUN_DEFAULTS.kimg, RUN_DEFAULTS.batch, RUN_DEFAULTS.snapshot_kimg, RUN_DEFAULTS.tick_kimg)
    options = {name: p.default.default for name, p in inspect.signature(train_run).parameters.items()}
    assert (options["kimg"], options["batch"], options["snapshot_kimg"], options["tick_kimg"]) == (
        RUN_DEFAULTS.kimg, RUN_DEFAULTS.batch, RUN_DEFAULTS.snapshot_kimg, RUN_DEFAULTS.tick_kimg)
    started = inspect.signature(api.start_run_process).parameters
    assert (started["kimg"].default, started["batch"].default, started["snapshot_kimg"].default) == (
        RUN_DEFAULTS.kimg, RUN_DEFAULTS.batch, RUN_DEFAULTS.snapshot_kimg)


def test_start_run_process_runs_the_cli_detached(workbench: Workbench, tmp_path: Path,
                                                  popen: list[tuple[list[str], dict[str, Any]]]) -> None:
    prepared = make_dataset(tmp_path)
    started = api.start_run_process(workbench=workbench, dataset=f" {prepared.dest} ", external=True, name="", kimg=0.5)
    run_dir = workbench.settings.data_dir / "runs" / "data"          # named after the dataset
    assert (started.pid, started.name, started.run_dir, started.log_path) == (4242, "data", run_dir,
                                                                              run_dir / "train.log")
    [(args, kwargs)] = popen
    assert args == [sys.executable, "-m", "likeness.cli", "train", "run", str(prepared.dest), "--external", "--out", str(run_dir),
                    "--name", "data", "--kimg", "0.5", "--batch", "32", "--snapshot-kimg", "200"]
    assert tuple(args) == started.command and kwargs["start_new_session"] is True
    assert started.log_path.is_file()


def test_start_run_process_refuses_a_missing_dataset_and_a_taken_name(
        workbench: Workbench, tmp_path: Path, popen: list[tuple[list[str], dict[str, Any]]]) -> None:
    with pytest.raises(NotFound, match="No dataset at"):
        api.start_run_process(workbench=workbench, dataset=tmp_path / "nothing", external=True, name="x")
    with pytest.raises(NotFound, match="No dataset at"):
        api.start_run_process(workbench=workbench, dataset="  ", external=True, name="x")
    prepared = make_dataset(tmp_path)
    run_id = api.start_run(workbench, tiny_config(prepared.dest, tmp_path / "taken", total_kimg=0.004), external=True)
    with pytest.raises(ConfigError, match="Run taken exists already"):
        api.start_run_process(workbench=workbench, dataset=prepared.dest, external=True, name="taken")
    assert not popen

    summary = api.run_summary(workbench, run_id)
    assert (summary.name, summary.status, summary.checkpoints) == ("taken", "finished", 1)
    [checkpoint] = api.checkpoints(workbench, run_name="taken")
    assert checkpoint.id == summary.latest_checkpoint_id and checkpoint.grid_sha256 is not None
    with pytest.raises(NotFound, match="no training run #999"):
        api.run_summary(workbench, 999)


def _wait_for(what: str, check: Any, deadline_s: float = 300) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` if it never does."""
    import time
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"never happened: {what}")


def _zombie_or_alive(pid: int) -> bool:
    """Whether a process table entry for `pid` still exists (running, or ended and not reaped)."""
    return Path(f"/proc/{pid}").exists()


def test_a_run_process_reports_live_logs_as_it_goes_stops_on_request_and_on_sigterm_and_is_reaped(
        env_workbench: Workbench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workbench = env_workbench    # the process finds the database through the LIKENESS_* variables
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    prepared = make_dataset(tmp_path / "set")
    started = api.start_run_process(workbench=workbench, dataset=prepared.dest, external=True, name="live", kimg=1000, batch=4,
                                    snapshot_kimg=1000, extra_args=tiny_process_args(tmp_path))
    # Progress reaches the row long before the first tick (1000 kimg away): live records.
    running = _wait_for("live progress on the row", lambda: next(
        (s for s in api.run_summaries(workbench) if s.name == "live" and s.kimg > 0), None))
    assert running.status == "running" and running.last_metrics["live"] is True
    assert running.last_metrics["img_per_s"] > 0 and running.last_metrics["eta_s"] > 0
    assert running.last_metrics["device"].startswith("CPU")
    # The log holds the first lines while the process still runs: device and estimate.
    log_text = api.read_log(running) or ""
    assert "device: CPU (1 thread)" in log_text and "estimated time:" in log_text
    assert _zombie_or_alive(started.pid)

    api.request_stop(workbench, "live")
    assert api.run_summary(workbench, running.id).stop_requested
    _wait_for("the stopped process to be reaped", lambda: not _zombie_or_alive(started.pid))
    stopped = api.run_summary(workbench, running.id)
    assert stopped.status == "stopped" and not stopped.stop_requested and stopped.checkpoints == 1
    [checkpoint] = api.checkpoints(workbench, run_name="live")
    assert checkpoint.kimg == stopped.kimg > 0
    with pytest.raises(ConfigError, match="is not running"):
        api.request_stop(workbench, "live")

    # Resume continues from the snapshot; SIGTERM stops it the same graceful way.
    resumed = api.resume_run_process(workbench=workbench, name="live", extra_args=["--workers", "0"])
    assert resumed.command[-2:] == ("--resume", "auto") and "--network" in resumed.command
    _wait_for("the resumed run to train further", lambda: api.run_summary(workbench, running.id).kimg > stopped.kimg
              and api.run_summary(workbench, running.id).status == "running")
    os.kill(resumed.pid, signal.SIGTERM)
    _wait_for("the terminated process to be reaped", lambda: not _zombie_or_alive(resumed.pid))
    final = api.run_summary(workbench, running.id)
    assert final.status == "stopped" and final.checkpoints == 2 and final.kimg > stopped.kimg
    assert "SIGTERM received" in (api.read_log(final) or "")


def test_stop_requests_name_the_run(workbench: Workbench, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no training run named 'ghost'"):
        api.request_stop(workbench, "ghost")
    with pytest.raises(NotFound, match="no training run named 'ghost'"):
        api.resume_run_process(workbench=workbench, name="ghost")
