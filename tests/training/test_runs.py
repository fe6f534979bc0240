"""Training runs in the database: progress, checkpoints as blobs, resume, failure, stop, and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from alembic import command
from sqlalchemy import inspect, select

from likeness import doctor
from likeness.db import Database, alembic_config
from likeness.errors import ConfigError
from likeness.models import Checkpoint, CheckpointAlias, RunStatus, TrainingRun
from likeness.workbench import Workbench
from tests.cli_runner import run_cli
from tests.training.conftest import TINY, make_crops, make_dataset, tiny_config
from training.config import TrainProgress
from training.dataset import DatasetError
from training.networks import NetworkConfig
from training.runs import list_checkpoints, run_status, start_run


def flat(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def checkpoints_of(workbench: Workbench, run_id: int) -> list[Checkpoint]:
    with workbench.db.unit_of_work() as session:
        return list(session.scalars(select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.kimg)))


def run_row(workbench: Workbench, run_id: int) -> TrainingRun:
    with workbench.db.unit_of_work() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        return run


def test_run_records_progress_and_every_snapshot_as_a_blob(workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)
    seen: list[tuple[float, str]] = []

    def watch(report: TrainProgress) -> None:
        # Each tick is in the database before the caller hears of it.
        seen.append((report.kimg, run_row(workbench, run_id_of("r1")).status))

    def run_id_of(name: str) -> int:
        with workbench.db.unit_of_work() as session:
            found = session.scalar(select(TrainingRun.id).where(TrainingRun.name == name))
            assert found is not None
            return found

    run_id = start_run(workbench, tiny_config(prepared.dest, tmp_path / "r1"), progress=watch, external=True)

    assert seen == [(0.004, "running"), (0.008, "running")]
    run = run_row(workbench, run_id)
    assert (run.name, run.status, run.kimg, run.error) == ("r1", "finished", 0.008, None)
    assert run.dataset_fingerprint == prepared.fingerprint
    assert run.network == NetworkConfig(**TINY).to_dict()
    assert run.config["total_kimg"] == 0.008 and run.finished_at is not None
    assert set(run.last_metrics["losses"]) >= {"D", "G"}

    first, last = checkpoints_of(workbench, run_id)
    assert (first.kimg, last.kimg) == (0.004, 0.008)
    assert not first.tainted and first.taint == [] and run.parent_checkpoint_id is None
    assert first.metrics["step"] == 1 and "D_r1" in first.metrics["losses"]
    # Snapshots 4 images apart (both in whole kimg 0) have names of their own: neither overwrites the other.
    snapshot = tmp_path / "r1" / "network-snapshot-000000.008.pt"
    assert workbench.blobs.read_bytes(last.file_sha256) == snapshot.read_bytes()
    assert workbench.blobs.read_bytes(first.file_sha256) == (tmp_path / "r1" / "network-snapshot-000000.004.pt").read_bytes()
    assert first.file_sha256 != last.file_sha256
    state = torch.load(io.BytesIO(workbench.blobs.read_bytes(first.file_sha256)), weights_only=True)
    assert state["cur_nimg"] == 4
    assert last.grid_sha256 is not None
    assert workbench.blobs.read_bytes(last.grid_sha256) == (tmp_path / "r1" / "fakes000000.008.png").read_bytes()
    assert first.grid_sha256 is not None and first.grid_sha256 != last.grid_sha256

    with workbench.db.unit_of_work() as session:
        report = doctor.check(session=session, blobs=workbench.blobs)
        [summary] = run_status(session=session)
    assert report.healthy and report.blobs_referenced == 4
    assert (summary.name, summary.checkpoints, summary.latest_checkpoint_id) == ("r1", 2, last.id)


def test_resuming_by_name_continues_the_same_row(workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)
    out = tmp_path / "run"
    run_id = start_run(workbench, tiny_config(prepared.dest, out, total_kimg=0.004), name="faces", external=True)
    with pytest.raises(ConfigError, match="'faces' already exists"):
        start_run(workbench, tiny_config(prepared.dest, out), name="faces", external=True)
    with pytest.raises(ConfigError, match="lives in"):
        start_run(workbench, tiny_config(prepared.dest, tmp_path / "elsewhere"), name="faces", resume="auto", external=True)

    again = start_run(workbench, tiny_config(prepared.dest, out, total_kimg=0.012), name="faces", resume="auto", external=True)

    assert again == run_id
    run = run_row(workbench, run_id)
    assert (run.status, run.kimg, run.total_kimg) == ("finished", 0.012, 0.012)
    assert [c.kimg for c in checkpoints_of(workbench, run_id)] == [0.004, 0.008, 0.012]
    with workbench.db.unit_of_work() as session:
        assert [c.kimg for c in list_checkpoints(session=session, run_name="faces")] == [0.004, 0.008, 0.012]
        assert len(session.scalars(select(TrainingRun)).all()) == 1
    assert run.parent_checkpoint_id is None  # resumed from its own snapshots

    # A new run resumed from another run's recorded checkpoint records it as its parent.
    parent = checkpoints_of(workbench, run_id)[1]
    tuned = start_run(workbench, tiny_config(prepared.dest, tmp_path / "tuned", total_kimg=0.012), name="tuned",
                      resume=out / parent.file_name, external=True)
    assert tuned != run_id and run_row(workbench, tuned).parent_checkpoint_id == parent.id


def test_a_failing_run_ends_failed_with_its_error(workbench: Workbench, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dataset"
    with pytest.raises(DatasetError) as raised:
        start_run(workbench, tiny_config(missing, tmp_path / "broken"), external=True)
    with workbench.db.unit_of_work() as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == "broken"))
    assert run is not None
    assert run.status == RunStatus.failed
    assert run.error == str(raised.value) and str(missing) in run.error
    assert run.finished_at is not None and run.kimg == 0


def test_interrupted_and_aborted_runs_end_stopped_with_their_snapshots(workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)

    def interrupt(report: TrainProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        start_run(workbench, tiny_config(prepared.dest, tmp_path / "ctrl-c"), progress=interrupt, external=True)
    aborted = start_run(workbench, tiny_config(prepared.dest, tmp_path / "aborted"), abort=lambda: True, external=True)

    with workbench.db.unit_of_work() as session:
        runs = {r.name: r for r in session.scalars(select(TrainingRun))}
        kimgs = {name: [c.kimg for c in list_checkpoints(session=session, run_name=name)] for name in runs}
    assert {name: (r.status, r.kimg) for name, r in runs.items()} == {
        "ctrl-c": ("stopped", 0.004), "aborted": ("stopped", 0.004)}
    assert kimgs == {"ctrl-c": [0.004], "aborted": [0.004]}
    assert runs["aborted"].id == aborted


def test_migration_0004_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    assert not {"training_runs", "checkpoints", "generated_images"} & set(inspect(db.engine).get_table_names())
    db.upgrade()
    assert {"training_runs", "checkpoints", "generated_images"} <= set(inspect(db.engine).get_table_names())
    db.close()


# -- the command line -----------------------------------------------------------------------------

def test_cli_prepare_builds_a_dataset_and_errors_are_one_line(env_workbench: Workbench, tmp_path: Path) -> None:
    crops = make_crops(tmp_path / "crops", count=3)
    result = run_cli("train", "prepare", str(crops), str(tmp_path / "dataset"), "--resolution", "16")
    assert result.exit_code == 0, result.output
    assert "3 images at 16px" in flat(result.output)
    assert sorted(p.name for p in (tmp_path / "dataset").rglob("*.png")) == ["img00000000.png", "img00000001.png", "img00000002.png"]

    again = run_cli("train", "prepare", str(crops), str(tmp_path / "dataset"), "--resolution", "16")
    assert again.exit_code == 1
    assert again.output.startswith("error: ") and str(tmp_path / "dataset") in again.output
    assert len(again.output.strip().splitlines()) == 1


def test_cli_status_and_checkpoints(env_workbench: Workbench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # whole table rows
    empty = run_cli("train", "status")
    assert empty.exit_code == 0 and "no training runs yet" in empty.output

    prepared = make_dataset(tmp_path)
    start_run(env_workbench, tiny_config(prepared.dest, tmp_path / "first", total_kimg=0.004), external=True)
    with pytest.raises(DatasetError):
        start_run(env_workbench, tiny_config(tmp_path / "gone", tmp_path / "second"), external=True)

    status = run_cli("train", "status")
    assert status.exit_code == 0, status.output
    lines = {line.split()[1]: line for line in status.output.splitlines() if line.split()[1:2] in (["first"], ["second"])}
    assert "finished" in lines["first"] and "0.004/0.004" in lines["first"]
    assert "failed" in lines["second"] and "gone" in lines["second"]

    with env_workbench.db.unit_of_work() as session:
        first = session.scalars(select(Checkpoint.id)).one()
        session.add(CheckpointAlias(name="candidate", checkpoint_id=first, set_by="tester"))
    listed = run_cli("train", "checkpoints", "first")
    assert listed.exit_code == 0 and "aliases" in listed.output
    [row] = [line for line in listed.output.splitlines() if "first" in line]
    assert f"{first}" in row and "candidate" in row
    missing = run_cli("train", "checkpoints", "nope")
    assert missing.exit_code == 1 and "no training run named 'nope'" in missing.output


def test_cli_run_trains_and_records(env_workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)
    network = tmp_path / "net.json"
    network.write_text(json.dumps(NetworkConfig(**TINY).to_dict()))
    result = run_cli("train", "run", str(prepared.dest), "--external", "--out", str(tmp_path / "cli-run"), "--network", str(network),
                     "--kimg", "0.004", "--batch", "4", "--snapshot-kimg", "0.004", "--tick-kimg", "0.004",
                     "--device", "cpu", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "run cli-run: finished at kimg 0.004, 1 checkpoints" in flat(result.output)
    assert checkpoints_of(env_workbench, run_status_id(env_workbench, "cli-run"))[0].kimg == 0.004


def run_status_id(workbench: Workbench, name: str) -> int:
    with workbench.db.unit_of_work() as session:
        return next(s.id for s in run_status(session=session) if s.name == name)


def test_a_killed_run_continues_from_its_last_snapshot_when_started_again(workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)
    out = tmp_path / "run"
    run_id = start_run(workbench, tiny_config(prepared.dest, out, total_kimg=0.004), name="faces", external=True)
    with workbench.db.unit_of_work() as session:
        killed = session.get(TrainingRun, run_id)
        assert killed is not None
        killed.status = RunStatus.running  # as a killed process leaves it

    again = start_run(workbench, tiny_config(prepared.dest, out, total_kimg=0.008), name="faces", external=True)

    assert again == run_id
    assert [c.kimg for c in checkpoints_of(workbench, run_id)] == [0.004, 0.008]
    assert run_row(workbench, run_id).status == "finished"
