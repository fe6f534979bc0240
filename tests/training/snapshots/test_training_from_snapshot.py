"""Training from dataset snapshots: the run records its snapshot, consent is checked at start and
at every resume, outside folders need --external, and `generate --label` takes attribute names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest import api as ingest_api
from likeness.errors import ConsentViolation, InvalidInput
from likeness.models import GeneratedImage, Person, SnapshotMember, Split, TrainingRun
from likeness.workbench import Workbench
from samples.labelled_pool import SitterPlan, add_pool
from tests.cli_runner import run_cli
from tests.training.conftest import LABELLED_SPEC, make_dataset, tiny_config, tiny_network
from training import api as training_api
from training.config import TrainConfig
from training.snapshots import api

SPEC = LABELLED_SPEC  # a labelled snapshot of 24 tiny faces, half adults and half seniors


def pool(workbench: Workbench) -> None:
    sitters = [SitterPlan(code=f"P{i:04d}", faces=8, person={"age_band": ("adult", "senior")[i % 2]},
                          frames={"expression": ["neutral", "smile"]}) for i in range(6)]
    with workbench.db.unit_of_work() as session:
        add_pool(session, workbench.blobs, sitters)


def labelled_config(data: Path, out: Path) -> TrainConfig:
    slots = 1 + 7   # age band (ordinal) + expression (one-hot)
    return tiny_config(data, out, network=tiny_network(c_dim=slots), total_kimg=0.004)


def test_a_run_on_a_snapshot_records_it_and_stops_once_a_member_release_is_revoked(workbench: Workbench,
                                                                                   tmp_path: Path) -> None:
    pool(workbench)
    built = api.build(workbench, SPEC, actor="test", admin=True)
    export = api.training_export(workbench, built.snapshot_id)
    assert export.run_name == "tiny-labelled-faces" and export.path.is_file()
    run_id = training_api.start_run(workbench, labelled_config(export.path, tmp_path / "run"),
                                    name="tiny", snapshot_id=built.snapshot_id)
    with workbench.db.unit_of_work() as session:
        run = session.get_one(TrainingRun, run_id)
        assert (run.snapshot_id, run.external) == (built.snapshot_id, False)
        member = session.scalars(select(SnapshotMember).where(SnapshotMember.snapshot_id == built.snapshot_id,
                                                              SnapshotMember.split == Split.train)).first()
        assert member is not None
        code = session.get_one(Person, member.person_id).code
        ingest_api.revoke_release(session=session, release_id=member.release_id, reason="withdrawn", actor="test")
    with pytest.raises(ConsentViolation) as raised:
        training_api.start_run(workbench, labelled_config(export.path, tmp_path / "run"), name="tiny",
                               resume="auto")
    assert code in str(raised.value) and f"release #{member.release_id}" in str(raised.value)
    with workbench.db.unit_of_work() as session:
        assert session.get_one(TrainingRun, run_id).kimg == pytest.approx(0.004), "the refused resume trained nothing"
    with pytest.raises(ConsentViolation):
        api.training_export(workbench, built.snapshot_id)


def test_a_folder_trains_only_when_declared_external(workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)
    with pytest.raises(ConsentViolation, match="no consent lineage"):
        training_api.start_run(workbench, tiny_config(prepared.dest, tmp_path / "run", total_kimg=0.004))
    run_id = training_api.start_run(workbench, tiny_config(prepared.dest, tmp_path / "run", total_kimg=0.004), external=True)
    with workbench.db.unit_of_work() as session:
        run = session.get_one(TrainingRun, run_id)
        assert (run.snapshot_id, run.external) == (None, True)
    with pytest.raises(ConsentViolation, match="no consent lineage"):
        training_api.start_run_process(workbench=workbench, dataset=prepared.dest, name="other")


def test_cli_trains_on_a_snapshot_and_generates_by_attribute_names(env_workbench: Workbench, tmp_path: Path) -> None:
    pool(env_workbench)
    built = api.build(env_workbench, SPEC, actor="test", admin=True)
    network = tmp_path / "net.json"
    network.write_text(json.dumps(tiny_network(c_dim=8).to_dict()))
    refused = run_cli("train", "run", str(make_dataset(tmp_path).dest), "--out", str(tmp_path / "x"), "--no-estimate")
    assert refused.exit_code != 0 and "no consent lineage" in refused.output
    result = run_cli("train", "run", "--dataset", built.sha256[:8], "--network", str(network), "--kimg", "0.004",
                     "--batch", "4", "--snapshot-kimg", "0.004", "--tick-kimg", "0.004", "--device", "cpu",
                     "--workers", "0", "--no-estimate")
    assert result.exit_code == 0, result.output
    [summary] = training_api.run_summaries(env_workbench)
    assert summary.name == "tiny-labelled-faces" and summary.status == "finished"
    [checkpoint] = training_api.checkpoints(env_workbench, run_name="tiny-labelled-faces")
    label = api.label_for_checkpoint(env_workbench, checkpoint.id, "age_band=senior,expression=smile")
    assert label == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    made = run_cli("generate", str(checkpoint.id), "--seeds", "0-1", "--label", "expression=smile,age_band=senior",
                   "--no-review")
    assert made.exit_code == 0, made.output
    with env_workbench.db.unit_of_work() as session:
        labels = list(session.scalars(select(GeneratedImage.label)))
    assert labels == [label, label]
    wrong = run_cli("generate", str(checkpoint.id), "--seeds", "2", "--label", "age_band=ancient,expression=smile")
    assert wrong.exit_code != 0 and "age_band='ancient' is not one of" in wrong.output


def test_attribute_labels_are_refused_for_external_checkpoints(workbench: Workbench, tmp_path: Path) -> None:
    prepared = make_dataset(tmp_path)
    training_api.start_run(workbench, tiny_config(prepared.dest, tmp_path / "run", total_kimg=0.004), external=True)
    [checkpoint] = training_api.checkpoints(workbench)
    with pytest.raises(InvalidInput, match="no attribute label encoding"):
        api.label_for_checkpoint(workbench, checkpoint.id, "age_band=senior")
