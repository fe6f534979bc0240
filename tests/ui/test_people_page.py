"""The People page through AppTest: search, release documents, expiry warnings and erasure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from ingest import api
from likeness.models import AuditEvent, PersonalData, Role
from likeness.workbench import Workbench
from samples.releases import write_release_document
from tests.factories.app import sign_in, start
from tests.factories.people import LEGAL_NAME, add_user, register_sitter

TODAY = dt.date.today()


def _admin_on_people(workbench: Workbench) -> AppTest:
    add_user(workbench, "root", Role.admin)
    at = sign_in(start(), "root")
    at.switch_page("ui/pages/people.py").run()
    assert not at.exception
    return at


def test_admins_search_sitters_by_code_name_or_email(env_workbench: Workbench, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, "P0001", personal_data=True)
    with env_workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0002", legal_name="Bo Rivers", email="bo@rivers.example", actor="test")
    at = _admin_on_people(env_workbench)
    assert list(at.dataframe[0].value["code"]) == ["P0001", "P0002"]
    at.text_input(key="people_search").input("quarrington").run()
    assert list(at.dataframe[0].value["code"]) == ["P0001"]
    assert list(at.dataframe[1].value["person"]) == ["P0001"]  # releases of the sitters found
    at.text_input(key="people_search").input("rivers.example").run()
    assert list(at.dataframe[0].value["code"]) == ["P0002"]
    at.text_input(key="people_search").input("p0002").run()
    assert list(at.dataframe[0].value["code"]) == ["P0002"]
    at.text_input(key="people_search").input("nobody").run()
    assert [i.value for i in at.info][0] == "No sitter matches the search."


def test_expired_and_expiring_releases_are_warned_about(env_workbench: Workbench, tmp_path: Path) -> None:
    with env_workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", actor="test")
        for day, expires in ((1, TODAY - dt.timedelta(days=3)), (2, TODAY + dt.timedelta(days=10)), (3, None)):
            signed = dt.date(2020, 1, day)
            document = write_release_document(tmp_path / f"r{day}.pdf", person_code="P0001", signed_on=signed,
                                              scopes=["ai_training"])
            api.add_release(session=session, blobs=env_workbench.blobs, person_code="P0001", document=document,
                            signed_on=signed, expires_on=expires, scopes=["ai_training"], actor="test")
    at = _admin_on_people(env_workbench)
    assert [w.value for w in at.warning] == [
        f"Release #1 of P0001 expired on {TODAY - dt.timedelta(days=3)}.",
        f"Release #2 of P0001 expires on {TODAY + dt.timedelta(days=10)} (in 10 days).",
    ]


def test_admins_download_a_release_document_under_its_name(env_workbench: Workbench, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, "P0001")
    at = _admin_on_people(env_workbench)
    assert not at.get("download_button")
    at.selectbox(key="document_release").select_index(0).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    buttons = at.get("download_button")
    assert len(buttons) == 1
    with env_workbench.db.unit_of_work() as session:
        stored = api.release_document(session=session, blobs=env_workbench.blobs, release_id=1)
    proto = buttons[0].proto
    assert proto.label == f"Download {stored.name}" and stored.name.endswith(".pdf")
    assert stored.data.startswith(b"%PDF-")


def test_admins_erase_a_sitters_personal_data_after_confirming(env_workbench: Workbench, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, "P0001", personal_data=True)
    at = _admin_on_people(env_workbench)
    at.selectbox(key="erase_person").set_value("P0001")
    at.button(key="erase_submit").click().run()
    assert [e.value for e in at.error] == ["choose the person and confirm the erasure"]
    assert list(at.dataframe[0].value["legal_name"]) == [LEGAL_NAME]
    at.selectbox(key="erase_person").set_value("P0001")
    at.checkbox(key="erase_confirm").check()
    at.button(key="erase_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == ["Erased legal_name, email, date_of_birth for P0001."]
    people = at.dataframe[0].value
    assert list(people["code"]) == ["P0001"] and people["legal_name"].isna().all()
    assert len(at.dataframe[1].value) == 1  # the release stays
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(PersonalData)) is None
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "person.erase"))
        assert event is not None and event.actor == "root"
