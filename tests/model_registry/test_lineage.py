"""Lineage both ways over written pipeline rows (with fine-tuning between runs), the CLI's output,
and one clear error for an unknown or malformed id."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from likeness.models import GeneratedImage, Release, Shot
from likeness.workbench import Workbench
from model_registry.lineage import lineage
from samples.labelled_pool import SitterPlan, add_pool
from samples.lineage_pool import PipelinePlan, PipelineRows, write_pipeline
from tests.cli_runner import run_cli

# Three sitters of five faces: snapshot 0 holds P0000 and P0001, snapshot 1 only P0002. Run 2 is
# fine-tuned from run 0's first checkpoint on outside data; run 3 from run 2 on snapshot 1.
PLAN = PipelinePlan(snapshots=[[0, 1, 2, 5, 6], [10, 11]], runs=[(0, None), (1, None), (None, 0), (1, 3)],
                    checkpoints=[0, 0, 1, 2, 3], images=[0, 1, 1, 2, 3, 4, 4])


def write(workbench: Workbench) -> PipelineRows:
    with workbench.db.unit_of_work() as session:
        faces = add_pool(session, None, [SitterPlan(code=f"P{i:04d}", faces=5, person={"age_band": "adult"})
                                         for i in range(3)])
        return write_pipeline(session, [f for code in sorted(faces) for f in faces[code]], PLAN)


def test_lineage_runs_both_ways_through_fine_tuning(workbench: Workbench) -> None:
    rows = write(workbench)
    with workbench.db.unit_of_work() as session:
        person = lineage(session, "person", "p0000")
        assert [(lv.name, lv.count) for lv in person.down] == [
            ("releases", 1), ("shots", 5), ("faces", 5), ("snapshots", 1), ("runs", 3), ("checkpoints", 4), ("images", 6)]
        assert person.level("down", "runs").shown == ["pipeline run 0", "pipeline run 2", "pipeline run 3"]  # type: ignore[union-attr]
        assert person.up == []
        # P0002 is only in snapshot 1: runs 1 and 3.
        assert lineage(session, "person", "P0002").count("down", "runs") == 2

        fine_tuned = lineage(session, "checkpoint", str(rows.checkpoints[4]))   # run 3's
        assert fine_tuned.level("up", "people").shown == ["P0000", "P0001", "P0002"]  # type: ignore[union-attr]
        assert fine_tuned.count("up", "snapshots") == 2 and fine_tuned.count("up", "runs") == 3
        assert fine_tuned.level("up", "checkpoints").shown == [f"#{rows.checkpoints[0]}", f"#{rows.checkpoints[3]}"]  # type: ignore[union-attr]
        assert [(lv.name, lv.count) for lv in fine_tuned.down] == [("runs", 0), ("checkpoints", 0), ("images", 2)]

        parent = lineage(session, "checkpoint", str(rows.checkpoints[0]))
        assert [(lv.name, lv.count) for lv in parent.down] == [("runs", 2), ("checkpoints", 2), ("images", 4)]

        sha = session.scalar(select(GeneratedImage.image_sha256).where(GeneratedImage.id == rows.images[0]))
        image = lineage(session, "image", sha[:10])  # type: ignore[index]
        assert image.down == [] and image.level("up", "people").shown == ["P0000", "P0001"]  # type: ignore[union-attr]

        snapshot = lineage(session, "snapshot", str(rows.snapshots[1]))
        assert [(lv.name, lv.count) for lv in snapshot.up] == [("people", 1), ("releases", 1), ("shots", 2), ("faces", 2)]
        assert [(lv.name, lv.count) for lv in snapshot.down] == [("runs", 2), ("checkpoints", 2), ("images", 3)]

        release = session.scalar(select(Release.id).join(Release.person).where(Release.person.has(code="P0001")))
        by_release = lineage(session, "release", str(release))
        assert by_release.count("up", "people") == 1 and by_release.count("down", "shots") == 5
        assert by_release.count("down", "snapshots") == 1 and by_release.count("down", "images") == 6

        shot = session.scalar(select(Shot.sha256).where(Shot.relative_path == "P0002/00000.dng"))
        by_shot = lineage(session, "shot", shot)  # type: ignore[arg-type]
        assert by_shot.count("up", "releases") == 1 and by_shot.count("down", "images") == 3


def test_cli_prints_the_chain_and_one_error_for_unknown_ids(env_workbench: Workbench) -> None:
    rows = write(env_workbench)
    shown = run_cli("lineage", "checkpoint", str(rows.checkpoints[0]))
    assert shown.exit_code == 0, shown.output
    assert "people: 2  P0000, P0001" in shown.output and "images: 4" in shown.output
    assert run_cli("lineage", "person", "P0000", "--json").output.lstrip().startswith("{")
    for args, message in [
        (("person", "P9999"), "no person with code P9999"),
        (("release", "999"), "no release #999"),
        (("release", "one"), "release 'one' is not a number"),
        (("shot", "abcdef12"), "no shot with SHA-256 abcdef12"),
        (("shot", "xyz"), "is not a SHA-256"),
        (("snapshot", "77"), "no dataset snapshot '77'"),
        (("checkpoint", "999"), "no checkpoint #999"),
        (("image", "0" * 64), "no generated image with SHA-256"),
    ]:
        result = run_cli("lineage", *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("error: ") and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["person", "release", "shot", "snapshot", "checkpoint", "image"])
def test_every_kind_has_a_command(kind: str) -> None:
    assert run_cli("lineage", kind, "--help").exit_code == 0
