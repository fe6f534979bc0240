"""Sitters' personal data: email validation, search, erasure on request, release documents and
expiry warnings (public API and CLI, on both databases)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest import api
from likeness.errors import InvalidInput
from likeness.models import AuditEvent, Person, PersonalData, Release, Shot
from likeness.workbench import Workbench
from samples.releases import write_release_document
from samples.shoot import build_sample_shoot
from tests.cli_runner import run_cli
from tests.factories.people import BIRTHDAY, EMAIL, LEGAL_NAME, register_sitter

TODAY = dt.date.today()


def _release(workbench: Workbench, tmp_path: Path, code: str, *, signed_on: dt.date, expires_on: dt.date | None = None,
             guardian: str | None = None) -> int:
    document = write_release_document(tmp_path / f"{code}-{signed_on}.pdf", person_code=code, signed_on=signed_on,
                                      scopes=["ai_training"])
    with workbench.db.unit_of_work() as session:
        return api.add_release(session=session, blobs=workbench.blobs, person_code=code, document=document,
                               signed_on=signed_on, expires_on=expires_on, scopes=["ai_training"],
                               guardian_name=guardian, actor="test").id


# -- email ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("email", ["ana", "ana@", "ana@studio", "ana @example.org", "ana@@example.org", "ana@site.test"])
def test_an_invalid_email_is_refused_naming_the_field(workbench: Workbench, email: str) -> None:
    with workbench.db.unit_of_work() as session:
        with pytest.raises(InvalidInput, match=rf"^email '{email.strip()}' for P0042 is not a valid address: "):
            api.add_person(session=session, code="P0042", email=email, actor="test")
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(Person)) is None


def test_a_valid_email_is_stored_normalised(workbench: Workbench) -> None:
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0042", email=" Ana@Example.ORG ", actor="test")
        api.add_person(session=session, code="P0043", email="  ", actor="test")  # blank means none
    with workbench.db.unit_of_work() as session:
        assert list(session.scalars(select(PersonalData.email))) == ["Ana@example.org"]


def test_the_cli_refuses_an_invalid_email_in_one_line(env_workbench: Workbench) -> None:
    result = run_cli("person", "add", "P0042", "--email", "ana.example.org")
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: email 'ana.example.org' for P0042 is not a valid address")


# -- search --------------------------------------------------------------------------------------

def test_search_by_code_and_for_admins_by_name_or_email(env_workbench: Workbench, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, "P0001", personal_data=True)
    with env_workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0002", legal_name="Bo Rivers", email="bo@studio.example", actor="test")
        api.add_person(session=session, code="X_100", actor="test")

        def codes(search: str, personal_data: bool) -> list[str]:
            return [p.code for p in api.list_people(session=session, today=TODAY, personal_data=personal_data, search=search)]

        assert codes("p000", personal_data=False) == ["P0001", "P0002"]
        assert codes("  ", personal_data=False) == ["P0001", "P0002", "X_100"]
        assert codes("QUARR", personal_data=True) == ["P0001"]  # legal name, any case
        assert codes("studio.example", personal_data=True) == ["P0002"]  # email
        assert codes("quarr", personal_data=False) == []  # others never match on personal data
        assert codes("_", personal_data=True) == ["X_100"]  # a literal underscore, not a LIKE wildcard
        assert codes("%", personal_data=True) == []
    listing = run_cli("person", "list", "--search", "x_").output
    assert "X_100" in listing and "P0001" not in listing and "P0002" not in listing


# -- release documents and expiry ----------------------------------------------------------------

def test_a_release_document_comes_back_as_stored_with_its_name_and_type(workbench: Workbench, tmp_path: Path) -> None:
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", actor="test")
    release_id = _release(workbench, tmp_path, "P0001", signed_on=dt.date(2020, 1, 1))
    with workbench.db.unit_of_work() as session:
        stored = api.release_document(session=session, blobs=workbench.blobs, release_id=release_id)
        release = session.get(Release, release_id)
        assert release is not None
    assert stored.name == "P0001-2020-01-01.pdf" and stored.mime_type == "application/pdf"
    assert stored.data == (tmp_path / "P0001-2020-01-01.pdf").read_bytes()


def test_expired_and_soon_expiring_releases_are_flagged(env_workbench: Workbench, tmp_path: Path) -> None:
    with env_workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", actor="test")
    signed = dt.date(2020, 1, 1)
    expired = _release(env_workbench, tmp_path, "P0001", signed_on=signed, expires_on=TODAY - dt.timedelta(days=1))
    soon = _release(env_workbench, tmp_path, "P0001", signed_on=dt.date(2020, 1, 2), expires_on=TODAY + dt.timedelta(days=5))
    later = _release(env_workbench, tmp_path, "P0001", signed_on=dt.date(2020, 1, 3),
                     expires_on=TODAY + dt.timedelta(days=api.EXPIRY_WARNING_DAYS + 1))
    endless = _release(env_workbench, tmp_path, "P0001", signed_on=dt.date(2020, 1, 4))
    revoked = _release(env_workbench, tmp_path, "P0001", signed_on=dt.date(2020, 1, 5), expires_on=TODAY)
    with env_workbench.db.unit_of_work() as session:
        api.revoke_release(session=session, release_id=revoked, reason="withdrawn", actor="test")
        rows = {r.id: r for r in api.list_releases(session=session)}
    assert rows[expired].expiry_warning(TODAY) == f"release #{expired} of P0001 expired on {TODAY - dt.timedelta(days=1)}"
    assert rows[soon].expiry_warning(TODAY) == f"release #{soon} of P0001 expires on {TODAY + dt.timedelta(days=5)} (in 5 days)"
    assert rows[later].expiry_warning(TODAY) is None
    assert rows[later].expiry_warning(TODAY, within_days=api.EXPIRY_WARNING_DAYS + 1) is not None
    assert rows[endless].expiry_warning(TODAY) is None
    assert rows[revoked].expiry_warning(TODAY) is None  # revoked already says more than expiry
    listing = run_cli("release", "list").output
    assert f"warning: release #{expired} of P0001 expired" in listing
    assert f"warning: release #{soon} of P0001 expires" in listing
    assert f"#{later} of" not in listing.split("warning:", 1)[1]


# -- erasure ---------------------------------------------------------------------------------------

def test_erasure_removes_personal_data_and_keeps_code_releases_and_audit_without_values(
    workbench: Workbench, tmp_path: Path
) -> None:
    register_sitter(workbench, tmp_path, "P0001", personal_data=True)
    with workbench.db.unit_of_work() as session:
        person = api.get_person(session=session, code="P0001")
        assert person.personal is not None
        person.personal.self_identified = {"ethnicity": "Scottish"}
    with workbench.db.unit_of_work() as session:
        result = api.erase_personal_data(session=session, code="p0001", actor="root")
    assert result.erased == ("legal_name", "email", "date_of_birth", "self_identified")
    assert not result.kept_date_of_birth
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(PersonalData)) is None
        assert [p.code for p in api.list_people(session=session, today=TODAY, personal_data=True)] == ["P0001"]
        row = api.list_people(session=session, today=TODAY, personal_data=True)[0]
        assert (row.legal_name, row.email, row.date_of_birth, row.releases) == (None, None, None, 1)
        assert row.ai_training_today == "valid"  # the release still covers the sitter
        release = session.scalar(select(Release))
        assert release is not None and workbench.blobs.exists(release.document_sha256)  # consent evidence kept
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "person.erase"))
        assert event is not None and (event.actor, event.subject_id) == ("root", "P0001") and event.at is not None
        assert event.details == {"erased": ["legal_name", "email", "date_of_birth", "self_identified"], "kept": []}
        everything_audited = " ".join(str(e.details) for e in session.scalars(select(AuditEvent)))
        for value in (LEGAL_NAME, EMAIL, BIRTHDAY.isoformat(), "Scottish"):
            assert value not in everything_audited
        with pytest.raises(InvalidInput, match="P0001 holds no personal data to erase"):
            api.erase_personal_data(session=session, code="P0001", actor="root")


def test_erasure_keeps_the_date_of_birth_of_a_sitter_who_was_a_minor_on_a_capture_date(
    workbench: Workbench, tmp_path: Path
) -> None:
    shoot = build_sample_shoot(tmp_path / "shoot", sitter="P0001", date=dt.date(2020, 6, 1), n_good=1,
                               frame_size=(768, 512), include_bad=False)
    with workbench.db.unit_of_work() as session:
        # 17 on the shoot's date, an adult today: the guardian rule still applies to those frames.
        api.add_person(session=session, code="P0001", legal_name="Young Sitter", date_of_birth=dt.date(2003, 1, 1),
                       phone="+44 20 7946 0000", actor="test")
    _release(workbench, tmp_path, "P0001", signed_on=dt.date(2020, 1, 1))  # no guardian signed
    api.ingest_folder(workbench=workbench, path=shoot.path, actor="test")
    with workbench.db.unit_of_work() as session:
        assert set(session.scalars(select(Shot.reason))) == {"minor_without_guardian"}
        result = api.erase_personal_data(session=session, code="P0001", actor="root")
        assert result.erased == ("legal_name", "phone") and result.kept_date_of_birth
        assert "the date of birth is kept" in result.describe()
    with workbench.db.unit_of_work() as session:
        personal = session.scalar(select(PersonalData))
        assert personal is not None
        assert (personal.legal_name, personal.phone, personal.date_of_birth) == ("", None, dt.date(2003, 1, 1))
        api.recheck(session=session, actor="test", person_code="P0001")
        assert set(session.scalars(select(Shot.reason))) == {"minor_without_guardian"}  # still not usable
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "person.erase"))
        assert event is not None and event.details == {"erased": ["legal_name", "phone"], "kept": ["date_of_birth"]}


def test_the_cli_erases_after_confirmation(env_workbench: Workbench, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, "P0001", personal_data=True)
    declined = run_cli("person", "erase", "P0001", input="n\n")
    assert declined.exit_code == 1
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(PersonalData.legal_name)) == LEGAL_NAME
    erased = run_cli("person", "erase", "P0001", "--yes")
    assert erased.exit_code == 0, erased.output
    assert "erased legal_name, email, date_of_birth for P0001" in erased.output
    with env_workbench.db.unit_of_work() as session:
        assert session.scalar(select(PersonalData)) is None
    again = run_cli("person", "erase", "P0001", "--yes")
    assert again.exit_code == 1 and again.output.strip() == "error: P0001 holds no personal data to erase"
