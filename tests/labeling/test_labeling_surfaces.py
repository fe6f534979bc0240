"""The labeling CLI and the Labeling page, against the real Label Studio the test run shares."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from labeling import api
from likeness.models import Label, Role
from likeness.workbench import Workbench
from tests.cli_runner import run_cli
from tests.factories.app import APP, sign_in
from tests.factories.people import add_user
from tests.labeling.support import add_faces, annotate, labeler, setup_and_push, task_ids


def test_cli_setup_push_pull_agreement(lwb: Workbench, tmp_path: Path) -> None:
    faces = add_faces(lwb, tmp_path, n=2)
    add_faces(lwb, tmp_path, n=1, sitter="P0009", release=False, seed=3)
    assert "created" in run_cli("label", "setup").output
    pushed = run_cli("label", "push")
    assert pushed.exit_code == 0
    assert "pushed 2 faces" in pushed.output and "withheld 1: no valid release" in pushed.output
    assert "pushed 0 faces (2 were already there)" in run_cli("label", "push").output
    ls = api.client(workbench=lwb)
    tasks = task_ids(lwb)
    a, b = labeler(ls, "ann"), labeler(ls, "bea")
    annotate(ls, tasks[faces[0]], a, eyes="open")
    annotate(ls, tasks[faces[0]], b, eyes="closed")
    pulled = run_cli("label", "pull")
    assert "2 labels added" in pulled.output
    report = run_cli("label", "agreement")
    assert "1 disagreements, 1 tied" in report.output
    assert f"face {faces[0]} eyes: closed×1, open×1 (tie)" in report.output
    status = run_cli("label", "status")
    assert status.exit_code == 0 and "configured Label Studio at http://127.0.0.1" in status.output and "running" in status.output


def test_cli_without_a_label_studio_says_what_to_do(env_workbench: Workbench) -> None:
    result = run_cli("label", "pull")
    assert result.exit_code == 1
    assert "no Label Studio is configured" in result.output and "likeness label serve" in result.output


def test_labeling_page_shows_progress_disagreements_and_pulls(lwb: Workbench, tmp_path: Path) -> None:
    faces = add_faces(lwb, tmp_path, n=2, shoot="shoot-b")
    ls, tasks = setup_and_push(lwb)
    annotate(ls, tasks[faces[0]], labeler(ls, "ann"), eyes="open", usable="yes")
    annotate(ls, tasks[faces[0]], labeler(ls, "bea"), eyes="closed", usable="yes")
    add_user(lwb, "lena", Role.labeler)

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    sign_in(at, "lena")
    at.switch_page("ui/pages/labeling.py").run()
    assert not at.exception, at.exception
    at.button(key="label_pull").click().run()
    assert not at.exception, at.exception
    assert any("4 labels added" in s.value for s in at.success)
    assert not [b for b in at.button if b.key == "label_push"]  # pushing is for admins
    progress, agreement, split = (frame.value for frame in at.dataframe)  # in page order
    row = progress[progress["shoot"] == "shoot-b"].iloc[0]
    assert (row["faces"], row["annotated"], row["eyes"], row["usable"], row["age_band"]) == (2, 1, 1, 1, 0)
    assert agreement[agreement["attribute"] == "eyes"]["faces rated twice+"].iloc[0] == 1
    assert list(split["face"]) == [faces[0]] and list(split["consensus"]) == ["tie"]
    assert split["task"].iloc[0].endswith(f"/data?task={tasks[faces[0]]}")
    with lwb.db.unit_of_work() as session:
        assert len(session.scalars(select(Label).where(Label.source == "annotation")).all()) == 4
