"""The workbench app through Streamlit's AppTest, on both databases (`env_workbench`)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from ingest import api
from likeness.errors import InvalidInput
from likeness.models import Person, PersonalData, Role, Shoot, Shot
from likeness.workbench import Workbench
from samples.releases import write_release_document
from tests.factories.app import APP, sign_in, start, titles
from tests.factories.people import (
    BIRTHDAY,
    EARLY_RELEASE,
    EMAIL,
    LEGAL_NAME,
    PASSWORD,
    SHOOT_DATE,
    add_user,
    register_sitter,
)
from ui.staging import ShootFields, safe_name, stage_upload

SITTER = "P0001"


# -- helpers ---------------------------------------------------------------------------------

def rendered_text(at: AppTest) -> str:
    """Everything the app sent to the browser, dataframes included, as one string."""
    parts = []
    for root in (at.main, at.sidebar):
        for node in root:
            if getattr(node, "proto", None) is not None:
                parts.append(str(node.proto))
            if node.type == "arrow_data_frame":
                parts.append(cast(Any, node).value.to_string())
    return "\n".join(parts)


# -- signing in ------------------------------------------------------------------------------

def test_signed_out_sees_only_the_login_form(env_workbench: Workbench) -> None:
    at = start()
    assert titles(at) == ["likeness"]
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert at.text_input(key="login_password").proto.type == at.text_input(key="login_password").proto.PASSWORD
    assert not at.sidebar.button  # no sign-out button
    at.switch_page("ui/pages/shoots.py").run()
    assert titles(at) == ["likeness"] and "Shoots" not in rendered_text(at)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LIKENESS_DATABASE_URL", "sqlite:///{tmp}/empty.db", "has no schema, the code needs"),
        ("LIKENESS_WORKERS", "-1", "LIKENESS_WORKERS"),
    ],
)
def test_setup_problems_are_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(variable, value.format(tmp=tmp_path))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value
    assert not at.text_input  # the app stops before any page


def test_wrong_credentials_give_one_error_without_a_hint(env_workbench: Workbench) -> None:
    add_user(env_workbench, "ana", Role.photographer)
    at = start()
    sign_in(at, "ana", "not the password")
    assert [e.value for e in at.error] == ["Wrong username or password."]
    assert titles(at) == ["likeness"]
    sign_in(at, "nobody", PASSWORD)
    assert [e.value for e in at.error] == ["Wrong username or password."]
    assert at.session_state["user"] is None


def test_photographer_sees_shoots_and_the_upload_form_but_not_people(env_workbench: Workbench) -> None:
    add_user(env_workbench, "ana", Role.photographer)
    at = sign_in(start(), "ana")
    assert titles(at) == ["Shoots"]
    assert at.session_state["user"].role is Role.photographer
    assert at.file_uploader(key="upload_files").accept_multiple_files
    assert any("ana" in c.value and "photographer" in c.value for c in at.sidebar.caption)
    at.switch_page("ui/pages/people.py").run()
    assert "People" not in titles(at)
    at.sidebar.button(key="sign_out").click().run()
    assert titles(at) == ["likeness"] and at.session_state["user"] is None


def test_a_deactivated_account_is_signed_out_on_the_next_rerun(env_workbench: Workbench) -> None:
    from likeness.models import User

    add_user(env_workbench, "ana", Role.photographer)
    at = sign_in(start(), "ana")
    with env_workbench.db.unit_of_work() as session:
        cast(User, session.scalar(select(User).where(User.username == "ana"))).active = False
    at.run()
    assert titles(at) == ["likeness"] and at.session_state["user"] is None


# -- shoots ----------------------------------------------------------------------------------

def test_shoots_page_shows_an_ingested_shoot_as_a_contact_sheet(
    env_workbench: Workbench, small_shoot: Path, tmp_path: Path
) -> None:
    register_sitter(env_workbench, tmp_path, signed_on=EARLY_RELEASE, personal_data=True)
    summary = api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")
    assert len(summary.accepted) == 2
    add_user(env_workbench, "ana", Role.photographer)
    at = sign_in(start(), "ana")
    shoot = at.selectbox(key="shoot_id")
    assert shoot.value == summary.shoot_id
    assert "demo-shoot" in shoot.format_func(shoot.value) and "2 accepted" in shoot.format_func(shoot.value)
    statuses = [m.value for m in at.markdown if "accepted" in m.value]
    assert len(statuses) == 2 and all("quarantined" not in s for s in statuses)
    # One preview and one aligned face crop per frame.
    assert len(at.image) == 4 + 1  # a preview and a face crop per frame, plus the drift plot
    measures = [c.value for c in at.caption if c.value.startswith("EAR")]
    assert len(measures) == 2 and all("yaw" in m and "iris" in m for m in measures)


def test_failed_files_are_listed_with_their_reasons(env_workbench: Workbench, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    (folder / SITTER).mkdir(parents=True)
    (folder / "shoot.toml").write_text('name = "broken"\ndate = 2026-01-05\nsitters = ["P0001"]\n')
    (folder / SITTER / "notes.dng").write_text("not an image at all")
    summary = api.ingest_folder(workbench=env_workbench, path=folder, actor="test")
    assert len(summary.failed) == 1
    add_user(env_workbench, "lou", Role.labeler)
    at = sign_in(start(), "lou")
    assert "0 frames stored" in rendered_text(at) or "No frames" in rendered_text(at)
    failures = at.dataframe[0].value
    assert list(failures["relative_path"]) == ["P0001/notes.dng"]
    assert failures["reason"][0]


def test_upload_form_stages_and_ingests_a_shoot(env_workbench: Workbench, small_shoot: Path, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, signed_on=EARLY_RELEASE, personal_data=True)
    add_user(env_workbench, "ana", Role.photographer)
    at = sign_in(start(), "ana")
    frames = sorted(small_shoot.rglob("*.dng"))
    at.file_uploader(key="upload_files").set_value([(p.name, p.read_bytes(), "image/x-adobe-dng") for p in frames])
    at.text_input(key="upload_name").input("upload test")
    at.text_input(key="upload_studio").input("Studio B")
    at.text_input(key="upload_sitter").input("p0001")
    at.date_input(key="upload_date").set_value(SHOOT_DATE)  # the day the camera recorded
    at.button(key="upload_submit").click().run(timeout=120)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("2 accepted" in s.value for s in at.success)
    with env_workbench.db.unit_of_work() as session:
        shoot = session.scalar(select(Shoot).where(Shoot.name == "upload test"))
        assert shoot is not None and shoot.photographer == "ana" and shoot.studio == "Studio B"
        assert shoot.sitters == [SITTER] and shoot.shoot_date == SHOOT_DATE
        shots = session.scalars(select(Shot).where(Shot.shoot_id == shoot.id)).all()
        assert sorted(s.relative_path for s in shots) == [f"{SITTER}/{p.name}" for p in frames]
        # Both pass the consent gate; shot QA may then reject one (the sample varies exposure).
        assert {s.status for s in shots} <= {"accepted", "rejected"}
        assert all(cast(str, s.reason).startswith("qa_") for s in shots if s.status == "rejected")
        assert all(s.qa.get("checks") for s in shots)
        source = Path(cast(str, shoot.source_path))
    assert source.parent == env_workbench.settings.resolved_upload_dir
    assert 'photographer = "ana"' in (source / "shoot.toml").read_text()
    # The new shoot is the one on show.
    assert at.selectbox(key="shoot_id").value == shoot.id


def test_upload_errors_are_one_line_and_leave_nothing_behind(env_workbench: Workbench, small_shoot: Path) -> None:
    add_user(env_workbench, "ana", Role.photographer)
    at = sign_in(start(), "ana")
    frame = next(small_shoot.rglob("*.dng"))
    at.file_uploader(key="upload_files").set_value([(frame.name, frame.read_bytes(), "image/x-adobe-dng")])
    at.text_input(key="upload_name").input("no sitter")
    at.button(key="upload_submit").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "person code" in at.error[0].value and "\n" not in at.error[0].value
    upload_dir = env_workbench.settings.resolved_upload_dir
    assert not upload_dir.exists() or not any(upload_dir.iterdir())


def test_a_shoot_name_taken_on_another_date_is_refused_and_unstaged(
    env_workbench: Workbench, small_shoot: Path, tmp_path: Path
) -> None:
    register_sitter(env_workbench, tmp_path, signed_on=EARLY_RELEASE, personal_data=True)
    api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")  # "demo-shoot", 2026-11-20
    add_user(env_workbench, "ana", Role.photographer)
    at = sign_in(start(), "ana")
    at.file_uploader(key="upload_files").set_value([("late.jpg", b"\xff\xd8 not really", "image/jpeg")])
    at.text_input(key="upload_name").input("demo-shoot")
    at.date_input(key="upload_date").set_value(dt.date(2026, 1, 1))
    at.text_input(key="upload_sitter").input(SITTER)
    at.button(key="upload_submit").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "already stored with date 2026-11-20" in at.error[0].value
    upload_dir = env_workbench.settings.resolved_upload_dir
    assert upload_dir.is_dir() and not any(upload_dir.iterdir())
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(Shoot.shoot_date).where(Shoot.name == "demo-shoot")) == dt.date(2026, 11, 20)


def test_labelers_and_reviewers_have_no_upload_form(env_workbench: Workbench) -> None:
    add_user(env_workbench, "lou", Role.labeler)
    at = sign_in(start(), "lou")
    assert titles(at) == ["Shoots"]
    assert not at.file_uploader


# -- personal data ---------------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.labeler, Role.reviewer, Role.photographer])
def test_personal_data_never_reaches_other_roles(
    env_workbench: Workbench, small_shoot: Path, tmp_path: Path, role: Role
) -> None:
    register_sitter(env_workbench, tmp_path, signed_on=EARLY_RELEASE, personal_data=True)
    api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")
    add_user(env_workbench, "someone", role)
    at = sign_in(start(), "someone")
    assert titles(at) == ["Shoots"] and len(at.image) == 4 + 1  # previews, crops, drift plot
    seen = rendered_text(at)
    assert SITTER in seen
    for secret in (LEGAL_NAME, EMAIL, BIRTHDAY.isoformat(), "Wilhelmina"):
        assert secret not in seen
    # Asking for the admin page directly does not show it either.
    at.switch_page("ui/pages/people.py").run()
    seen = rendered_text(at)
    assert "People" not in titles(at)
    assert LEGAL_NAME not in seen and EMAIL not in seen


def test_admin_sees_people_with_personal_data(env_workbench: Workbench, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, signed_on=EARLY_RELEASE, personal_data=True)
    add_user(env_workbench, "root", Role.admin)
    at = sign_in(start(), "root")
    at.switch_page("ui/pages/people.py").run()
    assert not at.exception
    assert titles(at) == ["People"]
    people = at.dataframe[0].value
    assert list(people["code"]) == [SITTER]
    assert list(people["legal_name"]) == [LEGAL_NAME]
    assert people["ai_training_today"][0] == "valid"
    releases = at.dataframe[1].value
    assert list(releases["scopes"]) == ["ai_training"]


def test_admin_adds_a_person_through_the_form(env_workbench: Workbench) -> None:
    add_user(env_workbench, "root", Role.admin)
    at = sign_in(start(), "root")
    at.switch_page("ui/pages/people.py").run()
    at.text_input(key="person_code").input("p0042")
    at.text_input(key="person_legal_name").input("Ada Example")
    at.date_input(key="person_date_of_birth").set_value(dt.date(2001, 2, 3))
    at.button(key="add_person_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == ["Added P0042."]
    assert "Ada Example" in list(at.dataframe[0].value["legal_name"])
    with env_workbench.db.unit_of_work() as session:
        person = session.scalar(select(Person).where(Person.code == "P0042"))
        assert person is not None
        personal = session.get(PersonalData, person.id)
        assert personal is not None
        assert personal.legal_name == "Ada Example" and personal.date_of_birth == dt.date(2001, 2, 3)
    # The same code again is refused with one line, and nothing is added.
    at.text_input(key="person_code").input("P0042")
    at.button(key="add_person_submit").click().run()
    assert [e.value for e in at.error] == ["person P0042 already exists"]


def test_admin_adds_and_revokes_a_release(env_workbench: Workbench, small_shoot: Path, tmp_path: Path) -> None:
    add_user(env_workbench, "root", Role.admin)
    with env_workbench.db.unit_of_work() as session:
        api.add_person(session=session, code=SITTER, actor="test")
    summary = api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")
    assert set(summary.quarantined) == {"no_release"}
    document = write_release_document(tmp_path / "r.pdf", person_code=SITTER, signed_on=dt.date(2020, 1, 1), scopes=["ai_training"])
    at = sign_in(start(), "root")
    at.switch_page("ui/pages/people.py").run()
    at.selectbox(key="release_person").set_value(SITTER)
    at.file_uploader(key="release_document").set_value(("release.pdf", document.read_bytes(), "application/pdf"))
    at.date_input(key="release_signed").set_value(dt.date(2020, 1, 1))
    at.button(key="add_release_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.dataframe[0].value["ai_training_today"][0] == "valid"
    with env_workbench.db.unit_of_work() as session:
        assert set(session.scalars(select(Shot.status))) == {"accepted"}
    release_id = at.selectbox(key="revoke_id").options[0]
    at.selectbox(key="revoke_id").select_index(0)
    at.text_input(key="revoke_reason").input("withdrawn by email")
    at.button(key="revoke_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("2 newly quarantined" in s.value for s in at.success), release_id
    assert at.dataframe[0].value["ai_training_today"][0].startswith("revoked")
    with env_workbench.db.unit_of_work() as session:
        assert set(session.scalars(select(Shot.reason))) == {"release_revoked"}


# -- staging ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("given", "kept"),
    [("frame.dng", "frame.dng"), ("../../etc/passwd.dng", "passwd.dng"), ("C:\\cards\\a b.CR3", "a b.CR3"),
     ("/abs/x.jpg", "x.jpg")],
)
def test_safe_name_keeps_only_the_base_name(given: str, kept: str) -> None:
    assert safe_name(given) == kept


@pytest.mark.parametrize("given", ["", "   ", "/", "..", "dir/..", ".hidden.dng", "bad\x00.dng"])
def test_safe_name_refuses_unusable_names(given: str) -> None:
    with pytest.raises(InvalidInput):
        safe_name(given)


class _Upload(io.BytesIO):
    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(data)
        self.name = name


FIELDS = ShootFields(name="s", date=dt.date(2026, 1, 2), studio="", sitter_code="P0007", photographer="ana")


def test_stage_upload_writes_a_shoot_folder(tmp_path: Path) -> None:
    folder = stage_upload(tmp_path, [_Upload("../a.dng", b"1"), _Upload("b.jpg", b"2")], FIELDS)
    assert folder.parent == tmp_path
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "P0007/a.dng", "P0007/b.jpg", "shoot.toml"
    ]
    assert (folder / "shoot.toml").read_text() == (
        'name = "s"\ndate = 2026-01-02\nphotographer = "ana"\nsitters = ["P0007"]\n'
    )


def test_stage_upload_maps_frames_an_uploaded_manifest_does_not_name(tmp_path: Path) -> None:
    manifest = _Upload("shoot.toml", b'name = "given"\ndate = 2026-01-02\nsitters = ["P0001", "P0002"]\n')
    folder = stage_upload(tmp_path, [manifest, _Upload("a.dng", b"1")], FIELDS)
    assert (folder / "shoot.toml").read_bytes() == manifest.getvalue()
    assert (folder / "frames.csv").read_text().splitlines() == ["file,sitter", "P0007/a.dng,P0007"]


@pytest.mark.parametrize(
    ("uploads", "fields", "message"),
    [
        ([], FIELDS, "no frames"),
        ([_Upload("a.dng", b"1"), _Upload("x/a.dng", b"2")], FIELDS, "both called a.dng"),
        ([_Upload("a.exe", b"1")], FIELDS, "is not a frame"),
        ([_Upload("a.dng", b"1")], ShootFields("", dt.date(2026, 1, 2), "", "P0007", "ana"), "needs a name"),
        ([_Upload("a.dng", b"1")], ShootFields("s", dt.date(2026, 1, 2), "", "bad code!", "ana"), "person code"),
        ([_Upload("a.dng", b"1"), _Upload("shoot.toml", b"date = 2026-01-02\n")], FIELDS, "has no name"),
        ([_Upload("a.dng", b"1"), _Upload("shoot.toml", b"date = [")], FIELDS, "not a valid shoot.toml"),
    ],
)
def test_stage_upload_refuses_bad_uploads(tmp_path: Path, uploads: list, fields: ShootFields, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        stage_upload(tmp_path, uploads, fields)
    assert not any(tmp_path.iterdir())


def test_frames_without_a_valid_release_show_no_pixels_except_to_admins(
    env_workbench: Workbench, small_shoot: Path, tmp_path: Path
) -> None:
    api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")  # the sitter is not registered
    add_user(env_workbench, "ana", Role.photographer)
    add_user(env_workbench, "root", Role.admin)
    at = sign_in(start(), "ana")
    assert [m.value for m in at.markdown if "quarantined" in m.value]
    assert len(at.image) == 1  # only the drift plot: no preview, no face crop
    assert any("preview withheld" in c.value for c in at.caption)
    admin = sign_in(start(), "root")
    assert len(admin.image) == 4 + 1
    assert any("withheld from other roles" in c.value for c in admin.caption)
