"""Shoot plans: from a snapshot spec's shortfall (released sitters on the planned date only),
hand-written TOML, stored on the shoot and shown as coverage."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from capture.coverage import pose_of
from capture.plan import read_plan_file
from likeness.errors import InvalidInput
from likeness.models import Person, Release, Shoot
from likeness.workbench import Workbench
from samples.labelled_pool import SitterPlan, add_pool
from tests.cli_runner import run_cli

# Only P0001 is a senior of Monk 8-10; the joint cell wants smiling ones and the pool is short.
SPEC = """
size = 40
resolution = 32
seed = 1
tolerance = 0.05
label_attributes = ["age_band", "expression"]
[quotas.age_band]
senior = 0.5
"*" = 0.5
[[joint]]
where = { age_band = "senior", skin_tone = "8-10", expression = "smile" }
share = 0.5
"""


def seed(workbench: Workbench) -> None:
    sitters = [SitterPlan(code=f"P{i:04d}", faces=12,
                          person={"age_band": "senior" if i < 2 else "adult", "skin_tone": "9" if i < 2 else "3"},
                          frames={"expression": ["neutral", "smile", "grin"]}) for i in range(4)]
    with workbench.db.unit_of_work() as session:
        add_pool(session, workbench.blobs, sitters)


def test_plan_from_spec_names_released_sitters_and_the_cells_frame_attributes(env_workbench: Workbench, tmp_path: Path) -> None:
    seed(env_workbench)
    planned = dt.date.today() + dt.timedelta(days=7)
    with env_workbench.db.unit_of_work() as session:  # P0001's release ends before the shoot
        release = session.scalars(select(Release).join(Person).where(Person.code == "P0001")).one()
        release.expires_on = planned - dt.timedelta(days=1)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC, encoding="utf-8")
    made = run_cli("capture", "plan", "--from-spec", str(spec), "--date", planned.isoformat(), "--shoot", "gaps", "--json")
    assert made.exit_code == 0, made.output
    plan = json.loads(made.output)
    joint = [s for s in plan["slots"] if "skin_tone" in s.get("cell", "")]
    assert joint and {s["sitter"] for s in joint} == {"P0000"}
    assert all(s["expression"] == "smile" and s["pose"] == "frontal" for s in joint)
    assert sum(int(s["count"]) for s in joint) > 0
    with env_workbench.db.unit_of_work() as session:
        shoot = session.scalar(select(Shoot).where(Shoot.name == "gaps"))
        assert shoot is not None and shoot.shoot_date == planned and shoot.plan == plan["slots"]
    shown = run_cli("capture", "plan", "show", "gaps")
    assert shown.exit_code == 0 and "0 of" in shown.output and "P0000" in shown.output


def test_hand_written_plan_and_its_errors(env_workbench: Workbench, tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text('shoot = "s1"\ndate = 2026-11-20\n[[slot]]\nsitter = "p0042"\npose = "three_quarter_left"\n'
                    'expression = "smile"\ncount = 3\n', encoding="utf-8")
    made = run_cli("capture", "plan", "--from-file", str(path))
    assert made.exit_code == 0, made.output
    assert "3 frames in 1 slots stored on shoot s1" in made.output
    shown = run_cli("capture", "plan", "show", "s1", "--json")
    assert json.loads(shown.output)["slots"][0] | {} == {
        "sitter": "P0042", "pose": "three_quarter_left", "expression": "smile", "count": "3", "filled": 0, "frames": []}

    path.write_text('shoot = "s1"\ndate = 2026-11-20\n[[slot]]\nsitter = "P0042"\npose = "sideways"\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"plan.toml slot 1: pose 'sideways' is not a head pose"):
        read_plan_file(path)
    bad = run_cli("capture", "plan", "--from-file", str(tmp_path / "none.toml"))
    assert bad.exit_code == 1 and "no such plan file" in bad.output


def test_pose_categories_follow_the_detector_sign_convention() -> None:
    assert pose_of(2.0, 1.0) == "frontal"
    assert pose_of(30.0, 0.0) == "three_quarter_right" and pose_of(-30.0, 0.0) == "three_quarter_left"
    assert pose_of(70.0, 0.0) == "profile_right" and pose_of(0.0, 25.0) == "up" and pose_of(0.0, -25.0) == "down"
    assert pose_of(float("nan"), 0.0) is None
