"""The model registry on both databases: aliases set, moved and removed with an audit trail, the
refusals (tainted, unknown, badly named), `likeness registry ...`, `likeness generate` from the
production alias, and migration 0009 carrying stages over to aliases and back."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text, update

from likeness.db import Database, alembic_config
from likeness.errors import ConsentViolation, InvalidInput, NotFound
from likeness.models import AuditEvent, Checkpoint, CheckpointAlias, GeneratedImage, TrainingRun
from likeness.workbench import Workbench
from model_registry import aliases, registry
from tests.cli_runner import run_cli
from tests.training.conftest import tiny_config
from training.runs import start_run


def add_checkpoints(wb: Workbench, run: str, *metrics: dict[str, Any]) -> list[int]:
    """A run with one checkpoint row per `metrics` (kimg 1, 2, ...); no files behind them."""
    with wb.db.unit_of_work() as session:
        row = TrainingRun(name=run, dataset_path="/data", run_dir=f"/runs/{run}", total_kimg=10.0)
        session.add(row)
        session.flush()
        checkpoints = [Checkpoint(run_id=row.id, kimg=float(i), file_sha256=f"{row.id:02d}{i:062d}",
                                  file_name=f"network-snapshot-{i:06d}.pt", metrics=m)
                       for i, m in enumerate(metrics, start=1)]
        session.add_all(checkpoints)
        session.flush()
        return [c.id for c in checkpoints]


def taint(wb: Workbench, checkpoint_id: int) -> None:
    with wb.db.unit_of_work() as session:
        session.execute(update(Checkpoint).where(Checkpoint.id == checkpoint_id).values(
            tainted=True, taint=[{"release_id": 7, "person": "P0042", "reason": "withdrew consent",
                                  "at": "2026-12-01T10:00:00+00:00"}]))


def audit_count(wb: Workbench) -> int:
    with wb.db.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_alias_moves_are_audited_with_who_and_when(env_workbench: Workbench) -> None:
    a, b = add_checkpoints(env_workbench, "r1", {}, {})
    with env_workbench.db.unit_of_work() as session:
        first = aliases.set_alias(session=session, name="production", checkpoint_id=a, actor="ana")
    with env_workbench.db.unit_of_work() as session:
        moved = aliases.set_alias(session=session, name="production", checkpoint_id=b, actor="ben")
        aliases.set_alias(session=session, name="candidate", checkpoint_id=a, actor="ana")
    with env_workbench.db.unit_of_work() as session:
        assert aliases.set_alias(session=session, name="production", checkpoint_id=b, actor="cy") is None
        removed = aliases.remove_alias(session=session, name="candidate", actor="cy")
    assert first is not None and moved is not None
    assert (first.kind, first.previous_checkpoint_id, first.checkpoint_id) == ("set", None, a)
    assert (moved.kind, moved.previous_checkpoint_id, moved.checkpoint_id) == ("move", a, b)
    assert (removed.kind, removed.previous_checkpoint_id, removed.checkpoint_id) == ("remove", a, None)
    assert audit_count(env_workbench) == 4  # the unchanged promotion records nothing

    with env_workbench.db.unit_of_work() as session:
        production = aliases.history(session=session, alias="production")
        of_a = aliases.history(session=session, checkpoint_id=a)
        assert [(c.actor, c.kind, c.previous_checkpoint_id, c.checkpoint_id) for c in production] == [
            ("ben", "move", a, b), ("ana", "set", None, a)]
        assert production[0].at >= production[1].at
        assert [(c.alias, c.kind) for c in of_a] == [
            ("candidate", "remove"), ("candidate", "set"), ("production", "move"), ("production", "set")]
        assert [(x.name, x.checkpoint_id, x.set_by) for x in aliases.list_aliases(session=session)] == [
            ("production", b, "ben")]
        assert aliases.resolve(session=session, ref="production") == b
        assert aliases.resolve(session=session, ref=f"#{a}") == a
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [e.action for e in events] == ["registry.alias.set", "registry.alias.move",
                                              "registry.alias.set", "registry.alias.remove"]
        assert all(e.subject_type == "checkpoint_alias" for e in events)


def test_bad_promotions_are_refused_and_change_nothing(env_workbench: Workbench) -> None:
    good, bad = add_checkpoints(env_workbench, "r1", {}, {})
    taint(env_workbench, bad)
    with env_workbench.db.unit_of_work() as session:
        with pytest.raises(ConsentViolation, match="P0042 release #7: withdrew consent"):
            aliases.set_alias(session=session, name="production", checkpoint_id=bad, actor="ana")
        with pytest.raises(NotFound, match="no checkpoint #999"):
            aliases.set_alias(session=session, name="production", checkpoint_id=999, actor="ana")
        for name in ("Production", "9lives", "", "has space", "x" * 65):
            with pytest.raises(InvalidInput, match="not a valid alias name"):
                aliases.set_alias(session=session, name=name, checkpoint_id=good, actor="ana")
        with pytest.raises(NotFound, match="no checkpoint has the alias 'production'"):
            aliases.resolve(session=session, ref="production")
        with pytest.raises(NotFound, match="no checkpoint has the alias 'staging'"):
            aliases.remove_alias(session=session, name="staging", actor="ana")
        # An alias a checkpoint held before it was tainted can be moved away from it.
        session.add(CheckpointAlias(name="candidate", checkpoint_id=bad, set_by="ana"))
        session.flush()
        change = aliases.set_alias(session=session, name="candidate", checkpoint_id=good, actor="ana")
        assert change is not None and change.previous_checkpoint_id == bad
    assert audit_count(env_workbench) == 1

    tainted = run_cli("registry", "promote", str(bad), "production")
    assert tainted.exit_code == 1 and len(lines(tainted.output)) == 1
    assert tainted.output.startswith(f"error: checkpoint #{bad} is tainted")
    unknown = run_cli("registry", "promote", "999", "production")
    assert unknown.exit_code == 1 and lines(unknown.output) == [
        "error: no checkpoint #999 (`likeness registry list` lists the checkpoints)"]
    badly_named = run_cli("registry", "promote", str(good), "Prod")
    assert badly_named.exit_code == 1 and len(lines(badly_named.output)) == 1
    assert "'Prod' is not a valid alias name" in badly_named.output
    no_alias = run_cli("registry", "show", "production")
    assert no_alias.exit_code == 1 and "no checkpoint has the alias 'production'" in no_alias.output
    assert run_cli("registry", "demote", "production").exit_code == 1
    with env_workbench.db.unit_of_work() as session:
        assert [x.name for x in aliases.list_aliases(session=session)] == ["candidate"]


def test_registry_commands_list_promote_show_and_demote(env_workbench: Workbench,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    inception = {"metrics": {"fid": 12.5, "kid": 0.0125, "kid_std": 0.001}}
    offline = {"metrics": {"fid_randconv": 3.25, "kid_randconv": 0.5}}
    a, b = add_checkpoints(env_workbench, "r1", inception, offline)
    [c] = add_checkpoints(env_workbench, "r2", {})
    taint(env_workbench, c)

    assert run_cli("registry", "promote", str(a), "production", "--by", "ana").exit_code == 0
    assert run_cli("registry", "promote", "production", "candidate", "--by", "ana").exit_code == 0
    moved = run_cli("registry", "promote", str(b), "production", "--by", "ben")
    assert moved.exit_code == 0 and lines(moved.output) == [f"production -> checkpoint #{b} (was #{a})"]

    listed = run_cli("registry", "list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line for line in listed.output.splitlines() if line.split()[1:2] in ([str(x)] for x in (a, b, c))}
    assert "candidate" in rows[str(a)] and "12.5" in rows[str(a)] and "0.0125" in rows[str(a)]
    assert "production" in rows[str(b)] and "3.25 (randconv)" in rows[str(b)]
    assert "yes" in rows[str(c)] and "no" in rows[str(a)]
    aliased = run_cli("registry", "list", "--aliased")
    assert str(c) not in [line.split()[1] for line in aliased.output.splitlines() if len(line.split()) > 1]

    with env_workbench.db.unit_of_work() as session:
        entries = registry.list_checkpoints(session=session, run_name="r1")
    assert [(e.id, e.version, e.aliases) for e in entries] == [(a, 1, ("candidate",)), (b, 2, ("production",))]
    assert entries[0].quality == registry.Quality(fid=12.5, kid=0.0125, kid_std=0.001, extractor="inception")

    shown = run_cli("registry", "show", "production")
    assert shown.exit_code == 0, shown.output
    out = lines(shown.output)
    assert out[0].startswith(f"checkpoint #{b}: run r1 v2, kimg 2")
    assert "  aliases: production" in out and "  quality: FID 3.25  KID 0.5 (randconv)" in out
    history = [h.strip().split("  ", 2) for h in out[out.index("  alias history:") + 1:]]
    assert [(who, what) for _, who, what in history] == [("ben", f"moved production #{a} -> #{b}")]
    of_a = [h.strip().split("  ", 2) for h in lines(run_cli("registry", "show", str(a)).output)
            if h.startswith("    ")]
    assert [(who, what) for _, who, what in of_a] == [
        ("ben", f"moved production #{a} -> #{b}"), ("ana", f"set candidate -> #{a}"), ("ana", f"set production -> #{a}")]
    tainted = run_cli("registry", "show", str(c))
    assert "  tainted: yes (P0042 release #7: withdrew consent)" in lines(tainted.output)

    demoted = run_cli("registry", "demote", "candidate", "--by", "cy")
    assert demoted.exit_code == 0 and lines(demoted.output) == [f"candidate removed from checkpoint #{a}"]
    everything = lines(run_cli("registry", "history").output)
    assert len(everything) == 4 and everything[0].endswith(f"cy  removed candidate from #{a}")


@pytest.fixture
def checkpoint_id(env_workbench: Workbench, tiny_trained_run: tuple[Path, Path], tmp_path: Path) -> int:
    """The session's tiny trained snapshot recorded as a checkpoint."""
    data, run = tiny_trained_run
    shutil.copytree(run, tmp_path / "run")
    run_id = start_run(env_workbench, tiny_config(data, tmp_path / "run", total_kimg=0.004), resume="auto",
                       external=True)
    with env_workbench.db.unit_of_work() as session:
        found = session.scalar(select(Checkpoint.id).where(Checkpoint.run_id == run_id))
        assert found is not None
        return found


def generated_from(wb: Workbench) -> list[int]:
    with wb.db.unit_of_work() as session:
        return list(session.scalars(select(GeneratedImage.checkpoint_id).order_by(GeneratedImage.id)))


def test_generate_defaults_to_the_production_alias(env_workbench: Workbench, checkpoint_id: int) -> None:
    none_yet = run_cli("generate", "--seeds", "0")
    assert none_yet.exit_code == 1 and len(lines(none_yet.output)) == 1
    assert "no checkpoint has the alias 'production'" in none_yet.output
    assert "likeness registry promote CKPT production" in none_yet.output
    assert generated_from(env_workbench) == []

    assert run_cli("registry", "promote", str(checkpoint_id), "production").exit_code == 0
    made = run_cli("generate", "--seeds", "0-1", "--no-review")
    assert made.exit_code == 0, made.output
    assert f"2 images from checkpoint {checkpoint_id} (production)" in " ".join(made.output.split())
    by_name = run_cli("generate", "production", "--seeds", "2", "--no-review")
    assert by_name.exit_code == 0, by_name.output
    assert generated_from(env_workbench) == [checkpoint_id] * 3

    taint(env_workbench, checkpoint_id)
    refused = run_cli("generate", "--seeds", "3")
    assert refused.exit_code == 1 and "tainted" in refused.output
    assert len(generated_from(env_workbench)) == 3


def test_migration_0009_carries_production_to_an_alias_and_back(database_url: str) -> None:
    db = Database(database_url)
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO training_runs (id, name, status, config, dataset_path, run_dir, kimg, total_kimg, augment_p, "
            "last_metrics, created_at, updated_at) VALUES (1, 'r', 'finished', '{}', '/d', '/r', 3, 3, 0, '{}', :t, :t)"),
            {"t": now})
        for ckpt_id, stage, minutes in ((1, "production", 0), (2, "production", 5), (3, "candidate", 9),
                                        (4, "archived", 10)):
            connection.execute(text(
                "INSERT INTO checkpoints (id, run_id, kimg, file_sha256, file_name, metrics, stage, tainted, "
                "created_at) VALUES (:id, 1, :id, :sha, 'f.pt', '{}', :stage, false, :t)"),
                {"id": ckpt_id, "sha": f"{ckpt_id:064d}", "stage": stage, "t": now + dt.timedelta(minutes=minutes)})
        connection.execute(text(
            "INSERT INTO generated_images (id, checkpoint_id, seed, psi, label_key, noise_mode, image_sha256, tainted, "
            "created_at) VALUES (1, 2, 0, 0.7, '', 'const', :sha, false, :t)"), {"sha": "f" * 64, "t": now})

    db.upgrade()
    if db.engine.dialect.name == "sqlite":  # the migration ran with enforcement off; the pool turns it on again
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert "stage" not in {c["name"] for c in inspect(db.engine).get_columns("checkpoints")}
    with db.unit_of_work() as session:
        assert [(x.name, x.checkpoint_id, x.set_by) for x in aliases.list_aliases(session=session)] == [
            ("production", 2, "migration")]
        [change] = aliases.history(session=session, alias="production")
        assert (change.actor, change.kind, change.checkpoint_id) == ("migration", "set", 2)
        assert session.execute(select(Checkpoint.taint, Checkpoint.tainted).order_by(Checkpoint.id)).all() == [
            ([], False)] * 4
        assert session.execute(select(GeneratedImage.checkpoint_id)).all() == [(2,)]
        run = session.get_one(TrainingRun, 1)
        assert (run.taint, run.tainted, run.parent_checkpoint_id) == ([], False, None)
        aliases.set_alias(session=session, name="production", checkpoint_id=3, actor="ana")
        aliases.set_alias(session=session, name="candidate", checkpoint_id=4, actor="ana")

    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    assert "checkpoint_aliases" not in inspect(db.engine).get_table_names()
    with db.engine.connect() as connection:
        stages = connection.execute(text("SELECT id, stage FROM checkpoints ORDER BY id")).all()
        images = connection.execute(text("SELECT id, checkpoint_id FROM generated_images")).all()
    assert [tuple(row) for row in stages] == [(1, "candidate"), (2, "candidate"), (3, "production"), (4, "candidate")]
    assert [tuple(row) for row in images] == [(1, 2)]
    db.upgrade()
    db.close()


def test_migration_0010_moves_image_taint_onto_the_checkpoint_and_back(database_url: str) -> None:
    db = Database(database_url)
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    entry = {"release_id": 7, "person": "P0007", "reason": "withdrawn", "at": "2026-12-02T00:00:00"}
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO training_runs (id, name, status, config, dataset_path, run_dir, kimg, total_kimg, augment_p, "
            "last_metrics, created_at, updated_at) VALUES (1, 'r', 'finished', '{}', '/d', '/r', 3, 3, 0, '{}', :t, :t)"),
            {"t": now})
        for ckpt_id in (1, 2):
            connection.execute(text(
                "INSERT INTO checkpoints (id, run_id, kimg, file_sha256, file_name, metrics, tainted, created_at) "
                "VALUES (:id, 1, :id, :sha, 'f.pt', '{}', false, :t)"), {"id": ckpt_id, "sha": f"{ckpt_id:064d}", "t": now})
        for image_id, ckpt_id, tainted in ((1, 1, False), (2, 2, True), (3, 2, False)):
            connection.execute(text(
                "INSERT INTO generated_images (id, checkpoint_id, seed, psi, label_key, noise_mode, image_sha256, tainted, "
                "taint, created_at) VALUES (:id, :ckpt, :id, 0.7, '', 'const', :sha, :tainted, :taint, :t)"),
                {"id": image_id, "ckpt": ckpt_id, "sha": f"{image_id:064x}", "tainted": tainted,
                 "taint": json.dumps([entry] if tainted else []), "t": now})

    db.upgrade()
    assert not {"tainted", "taint"} & {c["name"] for c in inspect(db.engine).get_columns("generated_images")}
    with db.unit_of_work() as session:   # no image became untainted: its checkpoint carries the mark now
        assert session.execute(select(Checkpoint.id, Checkpoint.tainted, Checkpoint.taint).order_by(Checkpoint.id)).all() == [
            (1, False, []), (2, True, [entry])]

    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    with db.engine.connect() as connection:
        images = connection.execute(text("SELECT id, tainted FROM generated_images ORDER BY id")).all()
    assert [(i, bool(t)) for i, t in images] == [(1, False), (2, True), (3, True)]
    db.upgrade()
    db.close()
