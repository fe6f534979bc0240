"""training.api: the functions the CLI and the Training page share, and their one set of defaults."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from likeness.errors import ConfigError, NotFound
from likeness.workbench import Workbench
from tests.training.conftest import make_dataset, tiny_config
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
    started = api.start_run_process(workbench=workbench, dataset=f" {prepared.dest} ", name="", kimg=0.5)
    run_dir = workbench.settings.data_dir / "runs" / "data"          # named after the dataset
    assert (started.pid, started.name, started.run_dir, started.log_path) == (4242, "data", run_dir,
                                                                              run_dir / "train.log")
    [(args, kwargs)] = popen
    assert args == [sys.executable, "-m", "likeness.cli", "train", "run", str(prepared.dest), "--out", str(run_dir),
                    "--name", "data", "--kimg", "0.5", "--batch", "32", "--snapshot-kimg", "200"]
    assert tuple(args) == started.command and kwargs["start_new_session"] is True
    assert started.log_path.is_file()


def test_start_run_process_refuses_a_missing_dataset_and_a_taken_name(
        workbench: Workbench, tmp_path: Path, popen: list[tuple[list[str], dict[str, Any]]]) -> None:
    with pytest.raises(NotFound, match="No dataset at"):
        api.start_run_process(workbench=workbench, dataset=tmp_path / "nothing", name="x")
    with pytest.raises(NotFound, match="No dataset at"):
        api.start_run_process(workbench=workbench, dataset="  ", name="x")
    prepared = make_dataset(tmp_path)
    run_id = api.start_run(workbench, tiny_config(prepared.dest, tmp_path / "taken", total_kimg=0.004))
    with pytest.raises(ConfigError, match="Run taken exists already"):
        api.start_run_process(workbench=workbench, dataset=prepared.dest, name="taken")
    assert not popen

    summary = api.run_summary(workbench, run_id)
    assert (summary.name, summary.status, summary.checkpoints) == ("taken", "finished", 1)
    [checkpoint] = api.checkpoints(workbench, run_name="taken")
    assert checkpoint.id == summary.latest_checkpoint_id and checkpoint.grid_sha256 is not None
    with pytest.raises(NotFound, match="no training run #999"):
        api.run_summary(workbench, 999)
