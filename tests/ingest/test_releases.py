from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import select

from ingest import api
from ingest.releases import ReleaseState, age_on
from likeness.errors import InvalidInput, NotFound
from likeness.models import AuditEvent, Person, PersonalData, Release
from likeness.workbench import Workbench

CAPTURE = dt.date(2026, 6, 1)


def _person(dob: dt.date | None, *releases: Release) -> Person:
    person = Person(code="P0001")
    person.personal = PersonalData(legal_name="x", date_of_birth=dob) if dob else None
    person.releases = list(releases)
    for number, release in enumerate(releases, start=1):
        release.id = number
    return person


def _release(signed: dt.date, *, scopes=("ai_training",), expires=None, revoked=None, guardian=None) -> Release:
    return Release(signed_on=signed, scopes=list(scopes), expires_on=expires, revoked_on=revoked, guardian_name=guardian)


@pytest.mark.parametrize(
    ("dob", "release", "state"),
    [
        (dt.date(1990, 1, 1), None, ReleaseState.missing),
        (dt.date(1990, 1, 1), _release(dt.date(2026, 5, 1)), ReleaseState.valid),
        (dt.date(1990, 1, 1), _release(dt.date(2026, 5, 1), scopes=["editorial"]), ReleaseState.missing),
        (dt.date(1990, 1, 1), _release(dt.date(2026, 7, 1)), ReleaseState.missing),  # signed after the capture
        (dt.date(1990, 1, 1), _release(dt.date(2025, 1, 1), expires=dt.date(2026, 5, 31)), ReleaseState.expired),
        (dt.date(1990, 1, 1), _release(dt.date(2025, 1, 1), expires=CAPTURE), ReleaseState.valid),  # last day
        (dt.date(1990, 1, 1), _release(dt.date(2025, 1, 1), revoked=dt.date(2026, 9, 1)), ReleaseState.revoked),
        (dt.date(2010, 1, 1), _release(dt.date(2026, 5, 1)), ReleaseState.minor_without_guardian),
        (dt.date(2010, 1, 1), _release(dt.date(2026, 5, 1), guardian="Parent"), ReleaseState.valid),
        (dt.date(2008, 6, 1), _release(dt.date(2026, 5, 1)), ReleaseState.valid),  # 18 on the capture day
        (dt.date(2008, 6, 2), _release(dt.date(2026, 5, 1)), ReleaseState.minor_without_guardian),
    ],
)
def test_release_states(dob, release, state) -> None:
    person = _person(dob, *([release] if release else []))
    assert api.release_status(person, CAPTURE, "ai_training").state is state


def test_one_valid_release_is_enough_and_problems_are_ranked() -> None:
    revoked = _release(dt.date(2025, 1, 1), revoked=dt.date(2026, 1, 1))
    expired = _release(dt.date(2025, 1, 1), expires=dt.date(2025, 12, 31))
    assert api.release_status(_person(None, expired, revoked), CAPTURE).state is ReleaseState.revoked
    good = _release(dt.date(2026, 1, 1))
    status = api.release_status(_person(None, revoked, expired, good), CAPTURE)
    assert status.valid and status.release_id == 3


dates = st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31))
releases = st.builds(
    _release,
    dates,
    scopes=st.lists(st.sampled_from(["ai_training", "commercial", "editorial"]), unique=True),
    expires=st.none() | dates,
    revoked=st.none() | dates,
    guardian=st.none() | st.just("Guardian"),
)


@settings(max_examples=300, deadline=None)
@given(dob=st.none() | st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2020, 1, 1)),
       rels=st.lists(releases, max_size=4), capture=dates)
def test_valid_exactly_when_some_release_satisfies_every_condition(dob, rels, capture) -> None:
    person = _person(dob, *rels)
    minor = dob is not None and age_on(dob, capture) < 18

    def covers(r: Release) -> bool:
        return (
            r.revoked_on is None and "ai_training" in r.scopes and r.signed_on <= capture
            and (r.expires_on is None or capture <= r.expires_on) and (not minor or bool(r.guardian_name))
        )

    status = api.release_status(person, capture, "ai_training")
    assert status.valid == any(covers(r) for r in rels)
    if status.valid:
        assert covers(next(r for r in rels if r.id == status.release_id))


def release_pdf(path: Path) -> Path:
    Image.new("RGB", (200, 280), "white").save(path, format="PDF")
    return path


def test_add_and_revoke_release_through_the_database(workbench: Workbench, tmp_path: Path) -> None:
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="p0042", legal_name="A Sitter", date_of_birth=dt.date(1990, 1, 1), actor="t")
        release = api.add_release(
            session=session, blobs=workbench.blobs, person_code="P0042", document=release_pdf(tmp_path / "r.pdf"),
            signed_on=dt.date(2026, 1, 1), scopes=["ai_training", "commercial"], actor="t",
        )
        release_id = release.id
    with workbench.db.unit_of_work() as session:
        person = api.get_person(session=session, code="P0042")
        assert api.release_status(person, CAPTURE).valid
        stored = session.get(Release, release_id)
        assert stored is not None
        assert workbench.blobs.exists(stored.document_sha256) and stored.document_type == "pdf"
        api.revoke_release(session=session, release_id=release_id, reason="sitter asked", actor="t")
    with workbench.db.unit_of_work() as session:
        person = api.get_person(session=session, code="P0042")
        assert api.release_status(person, CAPTURE).state is ReleaseState.revoked
        actions = set(session.scalars(select(AuditEvent.action)))
        assert {"person.add", "release.add", "release.revoke"} <= actions


def test_release_documents_are_checked_by_content(workbench: Workbench, tmp_path: Path) -> None:
    fake = tmp_path / "release.pdf"
    fake.write_text("I agree")
    truncated = tmp_path / "cut.pdf"
    truncated.write_bytes(release_pdf(tmp_path / "whole.pdf").read_bytes()[:200])
    scan = tmp_path / "scan.bin"
    Image.new("RGB", (50, 50), "white").save(scan, format="PNG")
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", actor="t")
        for bad, message in [(fake, "neither a PDF nor"), (truncated, "truncated PDF")]:
            with pytest.raises(InvalidInput, match=message):
                api.add_release(session=session, blobs=workbench.blobs, person_code="P0001", document=bad,
                                signed_on=dt.date(2026, 1, 1), scopes=["ai_training"], actor="t")
        with pytest.raises(InvalidInput, match="unknown scope"):
            api.add_release(session=session, blobs=workbench.blobs, person_code="P0001", document=scan,
                            signed_on=dt.date(2026, 1, 1), scopes=["everything"], actor="t")
        with pytest.raises(NotFound, match="P0002"):
            api.add_release(session=session, blobs=workbench.blobs, person_code="P0002", document=scan,
                            signed_on=dt.date(2026, 1, 1), scopes=["ai_training"], actor="t")
        release = api.add_release(session=session, blobs=workbench.blobs, person_code="P0001", document=scan,
                                  signed_on=dt.date(2026, 1, 1), scopes=["ai_training"], actor="t")
        assert release.document_type == "png"
    assert list(workbench.blobs.iter_hashes()) == [release.document_sha256]  # refused documents left nothing
