"""Revocation that propagates: a real snapshot → tiny run → generation traced and tainted; over
random pipelines, revoking taints exactly the descendants an independent oracle finds; a revoke
killed mid-way leaves everything as before; clearing a taint is explicit, admin-only and audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from likeness.errors import ConsentViolation, InvalidInput, NotFound
from likeness.models import (
    AuditEvent,
    Checkpoint,
    DatasetSnapshot,
    Face,
    GeneratedImage,
    Person,
    Release,
    ReviewItem,
    Role,
    Shoot,
    Shot,
    ShotStatus,
    SnapshotMember,
    TrainingRun,
)
from likeness.workbench import Workbench
from model_registry import taint
from model_registry.export import withheld_images
from model_registry.lineage import lineage
from qa.review import next_items
from samples.labelled_pool import SitterPlan, add_pool
from samples.lineage_pool import PipelinePlan, write_pipeline
from tests.cli_runner import process_env, run_cli
from tests.factories.people import add_user, user_id
from tests.model_registry.test_lineage import write
from tests.training.conftest import LABELLED_SPEC, tiny_config, tiny_network
from training import api as training_api
from training.snapshots import api as snapshots_api

SPEC = LABELLED_SPEC  # a labelled snapshot of 24 tiny faces, half adults and half seniors


def tainted_ids(workbench: Workbench) -> dict[str, set[int]]:
    """The tainted rows per level; an image is tainted with its checkpoint."""
    with workbench.db.unit_of_work() as session:
        marked = {name: set(session.scalars(select(model.id).where(model.tainted.is_(True))))
                  for name, model in taint.TAINTABLE.items()}
        marked["images"] = set(session.scalars(select(GeneratedImage.id).where(GeneratedImage.checkpoint_id.in_(
            select(Checkpoint.id).where(Checkpoint.tainted.is_(True))))))
        return marked


# ---- A real pipeline: snapshot, tiny training, generation. ----------------------------------------

def test_round_trip_every_image_traces_to_the_snapshot_people_and_a_revoke_taints_them(
        env_workbench: Workbench, tmp_path: Path) -> None:
    wb = env_workbench
    with wb.db.unit_of_work() as session:
        add_pool(session, wb.blobs, [SitterPlan(code=f"P{i:04d}", faces=8, person={"age_band": ("adult", "senior")[i % 2]},
                                                frames={"expression": ["neutral", "smile"]}) for i in range(6)])
    built = snapshots_api.build(wb, SPEC, actor="test", admin=True)
    export = snapshots_api.training_export(wb, built.snapshot_id)
    config = tiny_config(export.path, tmp_path / "run", network=tiny_network(c_dim=8), total_kimg=0.004)
    run_id = training_api.start_run(wb, config, name="tiny", snapshot_id=built.snapshot_id)
    [checkpoint] = training_api.checkpoints(wb, run_name="tiny")
    label = snapshots_api.label_for_checkpoint(wb, checkpoint.id, "age_band=senior,expression=smile")
    images = training_api.generate(wb, checkpoint.id, seeds=[0, 1], label=label)
    with wb.db.unit_of_work() as session:
        members = {code: rid for code, rid in session.execute(select(Person.code, SnapshotMember.release_id).join(
            SnapshotMember, SnapshotMember.person_id == Person.id).where(SnapshotMember.snapshot_id == built.snapshot_id))}
        outside = set(session.scalars(select(Person.code))) - set(members)
        shas = list(session.scalars(select(GeneratedImage.image_sha256).where(GeneratedImage.id.in_(images))))
        for sha in shas:
            people = lineage(session, "image", sha, limit=100).level("up", "people")
            assert people is not None and set(people.shown) == set(members) and people.count == len(members)
        for code in outside:   # not chosen for the snapshot: nothing was made from their faces
            assert lineage(session, "person", code).count("down", "images") == 0
    add_user(wb, "rev", Role.reviewer)
    with wb.db.unit_of_work() as session:
        assert len(next_items(session=session, reviewer_id=user_id(wb, "rev"), source="generated")) == 2

    code, release_id = sorted(members.items())[0]
    revoked = run_cli("release", "revoke", str(release_id), "--reason", "withdrawn by email")
    assert revoked.exit_code == 0, revoked.output
    assert "tainted: 1 snapshots" in revoked.output and "1 runs" in revoked.output and "2 generated images" in revoked.output
    assert f"run #{run_id} tiny" in revoked.output and f"retrain without {code}" in revoked.output
    assert tainted_ids(wb) == {"snapshots": {built.snapshot_id}, "runs": {run_id}, "checkpoints": {checkpoint.id},
                               "images": set(images)}
    with pytest.raises(ConsentViolation, match="tainted"):
        training_api.generate(wb, checkpoint.id, seeds=[2], label=label)
    assert set(withheld_images(wb, images)) == set(images)
    with wb.db.unit_of_work() as session:
        assert next_items(session=session, reviewer_id=user_id(wb, "rev"), source="generated") == []
        assert session.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.source == "generated")) == 2
    plan = run_cli("registry", "retrain-plan")
    assert plan.exit_code == 0 and "tiny" in plan.output and code in plan.output


# ---- Random pipelines against an oracle. ----------------------------------------------------------

EXAMPLES = itertools.count()
BASE = dt.date(2026, 3, 1)


@st.composite
def pipelines(draw: Any) -> tuple[list[int], PipelinePlan, int]:
    faces_per = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    n_faces = sum(faces_per)
    snapshots = draw(st.lists(st.lists(st.integers(0, n_faces - 1), min_size=1, max_size=5, unique=True), max_size=3))
    runs: list[tuple[int | None, int | None]] = []
    checkpoints: list[int] = []
    for r in range(draw(st.integers(0, 5))):
        snapshot = draw(st.none() | st.integers(0, len(snapshots) - 1)) if snapshots else None
        parent = draw(st.none() | st.integers(0, len(checkpoints) - 1)) if checkpoints else None
        runs.append((snapshot, parent))
        checkpoints += [r] * draw(st.integers(0, 2))
    images = [c for c in range(len(checkpoints)) for _ in range(draw(st.integers(0, 2)))]
    return faces_per, PipelinePlan(snapshots, runs, checkpoints, images), draw(st.integers(0, len(faces_per) - 1))


def oracle(faces_per: list[int], plan: PipelinePlan, person: int) -> dict[str, set[int]]:
    """The plan's indexes made from `person`'s faces, worked out from the plan alone."""
    start = sum(faces_per[:person])
    mine = set(range(start, start + faces_per[person]))
    snapshots = {i for i, members in enumerate(plan.snapshots) if mine & set(members)}
    runs: set[int] = set()
    for i, (snapshot, parent) in enumerate(plan.runs):   # parents belong to earlier runs
        if snapshot in snapshots or (parent is not None and plan.checkpoints[parent] in runs):
            runs.add(i)
    checkpoints = {i for i, run in enumerate(plan.checkpoints) if run in runs}
    return {"snapshots": snapshots, "runs": runs, "checkpoints": checkpoints,
            "images": {i for i, c in enumerate(plan.images) if c in checkpoints}}


def write_people(workbench: Workbench, tag: str, faces_per: list[int]) -> tuple[list[int], list[int]]:
    """People with one release each and one face per shot; (face ids, release ids)."""
    with workbench.db.unit_of_work() as session:
        shoot = Shoot(name=f"property {tag}", shoot_date=BASE)
        session.add(shoot)
        session.flush()
        faces: list[int] = []
        releases: list[int] = []
        for i, n in enumerate(faces_per):
            person = Person(code=f"{tag}-{i}")
            session.add(person)
            session.flush()
            release = Release(person_id=person.id, document_sha256=hashlib.sha256(f"{tag} {i}".encode()).hexdigest(),
                              document_name="r.pdf", document_type="application/pdf", signed_on=BASE - dt.timedelta(days=9),
                              scopes=["ai_training"])
            session.add(release)
            session.flush()
            releases.append(release.id)
            shots = session.scalars(insert(Shot).returning(Shot.id, sort_by_parameter_order=True), [
                {"sha256": hashlib.sha256(f"{tag} {i} {k}".encode()).hexdigest(), "shoot_id": shoot.id,
                 "person_id": person.id, "sitter_code": person.code, "relative_path": f"{i}/{k}.dng", "file_format": "dng",
                 "file_size": 1, "width": 8, "height": 8, "capture_date": BASE, "status": ShotStatus.accepted,
                 "face_count": 1, "qa": {"passed": True, "failed": [], "checks": []}, "exif": {}} for k in range(n)]).all()
            faces += session.scalars(insert(Face).returning(Face.id, sort_by_parameter_order=True), [
                {"shot_id": s, "face_index": 0, "box": [], "score": 1.0, "landmarks": [], "quad": [], "crop_size": 8,
                 "qa": {}} for s in shots]).all()
        return faces, releases


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=pipelines())
def test_revoking_taints_exactly_the_descendants(workbench: Workbench, case: tuple[list[int], PipelinePlan, int]) -> None:
    faces_per, plan, person = case
    tag = f"H{next(EXAMPLES):04d}"
    faces, releases = write_people(workbench, tag, faces_per)
    with workbench.db.unit_of_work() as session:
        rows = write_pipeline(session, faces, plan, tag=tag)
    with workbench.db.unit_of_work() as session:
        result = taint.revoke(session, releases[person], "withdrawn", "test")
    expected = oracle(faces_per, plan, person)
    ids = {"snapshots": rows.snapshots, "runs": rows.runs, "checkpoints": rows.checkpoints, "images": rows.images}
    want = {name: {ids[name][i] for i in found} for name, found in expected.items()}
    assert (set(result.snapshots), set(result.runs), set(result.checkpoints), result.images) == (
        want["snapshots"], want["runs"], want["checkpoints"], len(want["images"]))
    assert {item.run_id for item in result.retrain} == want["runs"]
    with workbench.db.unit_of_work() as session:   # every row of the database, earlier examples' too
        for name, model in taint.TAINTABLE.items():
            marked = {i for i, entries in session.execute(select(model.id, model.taint))
                      if any(e.get("release_id") == releases[person] for e in entries)}
            assert marked == want[name], name
            assert want[name] <= set(session.scalars(select(model.id).where(model.tainted.is_(True))))
        images = set(session.scalars(select(GeneratedImage.id).where(GeneratedImage.checkpoint_id.in_(want["checkpoints"]))))
        assert images == want["images"]


# ---- A revoke killed mid-way. ---------------------------------------------------------------------

KILLED_REVOKE = textwrap.dedent("""
    import os, signal, sys
    from likeness.workbench import Workbench
    from model_registry import taint
    def killed(*args, **kwargs):      # every UPDATE and the audit event are flushed; the commit is not
        os.kill(os.getpid(), signal.SIGKILL)
    taint.retrain_plan = killed
    with Workbench.open() as wb, wb.db.unit_of_work() as session:
        taint.revoke(session, int(sys.argv[1]), "withdrawn", "test")
""")


def state(workbench: Workbench) -> tuple[Any, ...]:
    with workbench.db.unit_of_work() as session:
        return (list(session.execute(select(Release.id, Release.revoked_on).order_by(Release.id))),
                list(session.execute(select(Shot.id, Shot.status, Shot.reason).order_by(Shot.id))),
                {name: list(session.execute(select(m.id, m.tainted, m.taint).order_by(m.id))) for name, m in taint.TAINTABLE.items()},
                session.scalar(select(func.count()).select_from(AuditEvent)))


@pytest.mark.parametrize("how", ["exception", "sigkill"])
def test_a_revoke_killed_mid_way_leaves_everything_as_before(env_workbench: Workbench, how: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(env_workbench)
    with env_workbench.db.unit_of_work() as session:
        release_id = session.scalar(select(Release.id).order_by(Release.id).limit(1))
    before = state(env_workbench)
    if how == "exception":
        def fail(*args: object, **kwargs: object) -> list[Any]:
            raise RuntimeError("killed after the UPDATEs")
        with monkeypatch.context() as patched, pytest.raises(RuntimeError, match="killed"):
            patched.setattr(taint, "retrain_plan", fail)
            run_cli("release", "revoke", str(release_id), "--reason", "withdrawn")
    else:
        done = subprocess.run([sys.executable, "-c", KILLED_REVOKE, str(release_id)], env=process_env(env_workbench),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == -9, done.stderr
    assert state(env_workbench) == before
    assert run_cli("release", "revoke", str(release_id), "--reason", "withdrawn").exit_code == 0
    assert state(env_workbench) != before


# ---- Reinstatement, clearing, and bad input. ------------------------------------------------------

def test_a_new_release_does_not_untaint_and_clearing_is_explicit_admin_only_and_audited(env_workbench: Workbench) -> None:
    wb = env_workbench
    write(wb)
    with wb.db.unit_of_work() as session:
        person_id, release_id = session.execute(select(Release.person_id, Release.id).order_by(Release.id).limit(1)).one()
        result = taint.revoke(session, release_id, "withdrawn", "test")
    tainted = tainted_ids(wb)
    assert tainted["images"] and tainted["checkpoints"]
    refused = run_cli("registry", "clear-taint", str(release_id), "--reason", "oops")
    assert refused.exit_code == 1 and "cannot be cleared" in refused.output and result.person in refused.output
    with wb.db.unit_of_work() as session:   # the sitter signs again: a new release covering the old frames
        old = session.get_one(Release, release_id)
        session.add(Release(person_id=person_id, document_sha256="0" * 64, document_name="new.pdf",
                            document_type="application/pdf", signed_on=old.signed_on, scopes=["ai_training"]))
    assert tainted_ids(wb) == tainted, "a new release does not untaint"
    with wb.db.unit_of_work() as session, pytest.raises(ConsentViolation, match="only an admin"):
        taint.clear_taint(session, release_id, reason="re-signed", actor="ana", admin=False)
    cleared = run_cli("registry", "clear-taint", str(release_id), "--reason", "re-signed", "--by", "admin-ana")
    assert cleared.exit_code == 0, cleared.output
    assert "cleared from 1 snapshots, 3 runs, 4 checkpoints (6 generated images with them)" in cleared.output
    assert tainted_ids(wb) == {name: set() for name in tainted}
    with wb.db.unit_of_work() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "release.taint.clear")).one()
        assert event.actor == "admin-ana" and event.details["reason"] == "re-signed"
        assert all(not entries for entries in session.scalars(select(Checkpoint.taint)))
        assert not session.scalar(select(func.count()).select_from(DatasetSnapshot).where(DatasetSnapshot.tainted.is_(True)))
        assert not session.scalar(select(func.count()).select_from(TrainingRun).where(TrainingRun.tainted.is_(True)))
    assert run_cli("registry", "retrain-plan").output.startswith("no tainted runs")
    again = run_cli("registry", "clear-taint", str(release_id), "--reason", "again")
    assert again.exit_code == 1 and "nothing is tainted by release" in again.output


def test_unknown_or_bad_ids_give_one_clear_error(env_workbench: Workbench) -> None:
    write(env_workbench)
    for args, message in [
        (("release", "revoke", "999", "--reason", "x"), "no release #999"),
        (("registry", "clear-taint", "999", "--reason", "x"), "no release #999"),
    ]:
        result = run_cli(*args)
        assert result.exit_code == 1 and result.output.startswith("error: ") and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    with env_workbench.db.unit_of_work() as session:
        with pytest.raises(InvalidInput, match="needs a reason"):
            taint.revoke(session, 1, "  ", "test")
    with env_workbench.db.unit_of_work() as session:
        taint.revoke(session, 1, "withdrawn", "test")
    with env_workbench.db.unit_of_work() as session, pytest.raises(InvalidInput, match="already revoked"):
        taint.revoke(session, 1, "again", "test")
    with env_workbench.db.unit_of_work() as session, pytest.raises(NotFound):
        taint.clear_taint(session, 999, reason="x", actor="a", admin=True)
