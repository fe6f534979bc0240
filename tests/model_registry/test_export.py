"""Exports of generated faces: signed with Content Credentials that trace to the checkpoint,
tainted faces withheld, an unusable signing certificate refused before anything is rendered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from likeness.errors import ConsentViolation, NotFound
from likeness.models import Checkpoint, DatasetSnapshot, GeneratedImage, TrainingRun
from likeness.workbench import Workbench
from model_registry import signing
from model_registry.export import export_file_name, export_generated, withheld_images
from model_registry.provenance import DIGITAL_SOURCE_TYPE, verify
from tests.cli_runner import run_cli
from training import api
from training import generate as gen


def recorded(workbench: Workbench, image_id: int) -> tuple[GeneratedImage, str, str | None]:
    with workbench.db.unit_of_work() as session:
        image = session.get(GeneratedImage, image_id)
        assert image is not None
        checkpoint = session.get(Checkpoint, image.checkpoint_id)
        assert checkpoint is not None
        run = session.get(TrainingRun, checkpoint.run_id)
        assert run is not None
        session.expunge(image)
        return image, checkpoint.file_sha256, run.dataset_fingerprint


def test_exported_faces_carry_credentials_that_trace_to_their_checkpoint(
        workbench: Workbench, checkpoint_id: int, tmp_path: Path) -> None:
    ids = gen.generate(workbench, checkpoint_id, seeds=[0, 1], psi=0.6, queue_for_review=False)
    steps: list[tuple[int, int]] = []
    result = export_generated(workbench, ids, tmp_path / "export", progress=lambda *step: steps.append(step))
    assert result.withheld == [] and len(result.written) == 2 and steps == [(1, 2), (2, 2)]
    assert result.trust_anchor == workbench.settings.data_dir / "signing" / "root-ca.pem"
    anchor, _ = signing.trust_anchor(workbench.settings)
    for image_id, path in zip(ids, result.written, strict=True):
        image, checkpoint_sha, fingerprint = recorded(workbench, image_id)
        assert path.name == export_file_name(image.seed, image.image_sha256)
        verdict = verify(path, trust_anchor_pem=anchor)
        assert verdict.valid, verdict.problems
        facts = verdict.facts
        assert facts is not None
        assert (facts.seed, facts.psi, facts.label, facts.noise_mode) == (image.seed, 0.6, None, "const")
        assert (facts.checkpoint_id, facts.checkpoint_sha256) == (checkpoint_id, checkpoint_sha)
        assert facts.image_sha256 == image.image_sha256 and facts.dataset_fingerprint == fingerprint
        assert facts.snapshot_hash is None
        assert verdict.digital_source_type == verdict.xmp_digital_source_type == DIGITAL_SOURCE_TYPE
        # The blob (the unsigned render) is untouched: the export is a signed copy.
        assert workbench.blobs.read_bytes(image.image_sha256) != path.read_bytes()

    with pytest.raises(NotFound, match="no generated image #9999"):
        export_generated(workbench, [ids[0], 9999], tmp_path / "other")


def test_the_manifest_names_the_dataset_snapshot_of_the_run(workbench: Workbench, checkpoint_id: int,
                                                              tmp_path: Path) -> None:
    with workbench.db.unit_of_work() as session:
        snapshot = DatasetSnapshot(sha256="5" * 64, spec={}, spec_text="", size=3, resolution=16,
                                   built_on=dt.date(2026, 12, 1), built_by="tester")
        session.add(snapshot)
        session.flush()
        run_id = session.get_one(Checkpoint, checkpoint_id).run_id
        session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(snapshot_id=snapshot.id))
    ids = gen.generate(workbench, checkpoint_id, seeds=[3], queue_for_review=False)
    [path] = export_generated(workbench, ids, tmp_path / "export").written
    anchor, _ = signing.trust_anchor(workbench.settings)
    verdict = verify(path, trust_anchor_pem=anchor)
    assert verdict.valid and verdict.facts is not None
    assert verdict.facts.snapshot_hash == "5" * 64


def test_tainted_faces_are_withheld_from_every_export(workbench: Workbench, checkpoint_id: int, tmp_path: Path) -> None:
    ids = gen.generate(workbench, checkpoint_id, seeds=[0, 1, 2], queue_for_review=False)
    with workbench.db.unit_of_work() as session:   # one image moves to a second checkpoint, tainted
        source = session.get_one(Checkpoint, checkpoint_id)
        tainted = Checkpoint(run_id=source.run_id, kimg=source.kimg + 1, file_sha256=source.file_sha256,
                             file_name=source.file_name, metrics={}, tainted=True)
        session.add(tainted)
        session.flush()
        session.execute(update(GeneratedImage).where(GeneratedImage.id == ids[1]).values(checkpoint_id=tainted.id))
        tainted_id = tainted.id
    assert withheld_images(workbench, ids) == {ids[1]: f"its checkpoint #{tainted_id} is tainted: a release behind "
                                                        "its training data was revoked"}
    result = export_generated(workbench, ids, tmp_path / "export")
    assert [w.image_id for w in result.withheld] == [ids[1]] and len(result.written) == 2
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == sorted(p.name for p in result.written)
    with pytest.raises(ConsentViolation, match=rf"generated image #{ids[1]} withheld: its checkpoint #{tainted_id} is tainted"):
        api.write_generated(workbench, ids, tmp_path / "out")
    assert not (tmp_path / "out").exists()

    with workbench.db.unit_of_work() as session:
        session.execute(update(Checkpoint).where(Checkpoint.id == checkpoint_id).values(tainted=True))
    result = export_generated(workbench, ids, tmp_path / "later")
    assert result.written == [] and len(result.withheld) == 3
    assert f"its checkpoint #{checkpoint_id} is tainted" in result.withheld[0].reason


def test_cli_generate_export(env_workbench: Workbench, checkpoint_id: int, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    result = run_cli("generate", str(checkpoint_id), "--seeds", "3-4", "--export", str(folder))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"2 images from checkpoint {checkpoint_id}" in text
    assert f"exported 2 images with Content Credentials to {folder}" in text
    assert "likeness provenance verify FILE" in text
    files = sorted(folder.iterdir())
    assert [p.name[:9] for p in files] == ["seed0003-", "seed0004-"]
    checked = run_cli("provenance", "verify", str(files[0]))
    assert checked.exit_code == 0 and "valid: Content Credentials intact and trusted" in checked.output

    # A tainted checkpoint is refused before anything is rendered or written.
    with env_workbench.db.unit_of_work() as session:
        session.execute(update(Checkpoint).where(Checkpoint.id == checkpoint_id).values(tainted=True))
        before = session.scalar(select(func.count()).select_from(GeneratedImage))
    refused = run_cli("generate", str(checkpoint_id), "--seeds", "5", "--export", str(tmp_path / "refused"))
    assert refused.exit_code == 1 and refused.output.startswith(f"error: checkpoint #{checkpoint_id} is tainted")
    assert not (tmp_path / "refused").exists()
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(GeneratedImage)) == before


def test_cli_export_with_an_unusable_signing_certificate_renders_nothing(
        env_workbench: Workbench, checkpoint_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIKENESS_SIGNING_CERT", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("LIKENESS_SIGNING_KEY", str(tmp_path / "missing.key"))
    result = run_cli("generate", str(checkpoint_id), "--seeds", "0", "--export", str(tmp_path / "export"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: signing certificate {tmp_path / 'missing.pem'} (LIKENESS_SIGNING_CERT) "
                                    "does not exist")
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(GeneratedImage)) == 0
    assert not (tmp_path / "export").exists()
