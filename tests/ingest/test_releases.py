from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader, PdfWriter
from sqlalchemy import select

from ingest import api
from ingest.releases import ReleaseState, age_on
from likeness.errors import InvalidInput, NotFound
from likeness.models import AuditEvent, Person, PersonalData, Release
from likeness.workbench import Workbench
from samples.releases import write_release_document

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
    Image.new("RGB", (620, 877), "white").save(scan, format="PNG")  # an A4 page at 75 dpi
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


def _add(workbench: Workbench, session, document: Path, *, code: str = "P0001", signed_on: dt.date = dt.date(2026, 1, 1),
         expires_on: dt.date | None = None) -> Release:
    return api.add_release(session=session, blobs=workbench.blobs, person_code=code, document=document,
                           signed_on=signed_on, expires_on=expires_on, scopes=["ai_training"], actor="t")


def _encrypted_pdf(path: Path, *, user_password: str) -> Path:
    writer = PdfWriter(clone_from=PdfReader(release_pdf(path.with_suffix(".plain.pdf"))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def test_pdf_documents_must_parse_have_pages_and_be_readable(workbench: Workbench, tmp_path: Path) -> None:
    shell = tmp_path / "shell.pdf"
    shell.write_bytes(b"%PDF-1.4\n" + b"0" * 14 + b"\n%%EOF\n")  # the magic and the end marker, nothing between
    assert len(shell.read_bytes()) == 30
    empty = tmp_path / "empty.pdf"
    with open(empty, "wb") as handle:
        PdfWriter().write(handle)
    locked = _encrypted_pdf(tmp_path / "locked.pdf", user_password="secret")
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", actor="t")
        for bad, message in [(shell, "shell.pdf is not a readable PDF"), (empty, "empty.pdf is a PDF with no pages"),
                             (locked, "locked.pdf is an encrypted PDF that needs a password")]:
            with pytest.raises(InvalidInput, match=message):
                _add(workbench, session, bad)
        # Encrypted with an owner password only, it opens without one and is accepted.
        owner_only = _add(workbench, session, _encrypted_pdf(tmp_path / "owner.pdf", user_password=""))
        assert owner_only.document_type == "pdf"
    assert list(workbench.blobs.iter_hashes()) == [owner_only.document_sha256]


def test_scans_must_be_decodable_images_of_page_size(workbench: Workbench, tmp_path: Path) -> None:
    thumbnail = tmp_path / "thumb.jpg"
    Image.new("RGB", (160, 120), "white").save(thumbnail, format="JPEG")
    narrow = tmp_path / "narrow.png"
    Image.new("L", (599, 2000), "white").save(narrow, format="PNG")
    gif = tmp_path / "page.gif"
    Image.new("RGB", (1240, 1754), "white").save(gif, format="GIF")
    cut = tmp_path / "cut.png"
    whole = io.BytesIO()
    Image.effect_noise((1240, 1754), 64).save(whole, format="PNG")
    cut.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])  # a valid header, half the pixels
    scan = tmp_path / "scan.tif"
    Image.new("L", (600, 600), "white").save(scan, format="TIFF")
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", actor="t")
        for bad, message in [(thumbnail, "thumb.jpg is a 160x120 px image, too small"), (narrow, "narrow.png is a 599x2000 px image"),
                             (gif, "page.gif is a GIF image, not a scan"), (cut, "cut.png is neither a PDF nor a readable image")]:
            with pytest.raises(InvalidInput, match=message):
                _add(workbench, session, bad)
        release = _add(workbench, session, scan)
        assert release.document_type == "tiff"
    assert list(workbench.blobs.iter_hashes()) == [release.document_sha256]


def test_absurd_signing_and_expiry_dates_are_refused(workbench: Workbench, tmp_path: Path) -> None:
    document = release_pdf(tmp_path / "r.pdf")
    today = dt.date.today()
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", date_of_birth=dt.date(2000, 3, 4), actor="t")
        api.add_person(session=session, code="P0002", actor="t")
        cases = [
            ("P0002", dt.date(1800, 1, 1), None, "dated 1800-01-01, before 1990-01-01"),
            ("P0002", dt.date(1989, 12, 31), None, "before 1990-01-01"),
            ("P0001", dt.date(2000, 3, 3), None, "dated 2000-03-03, before the sitter's date of birth"),
            ("P0002", today + dt.timedelta(days=1), None, "dated in the future"),
            ("P0002", dt.date(2026, 1, 1), dt.date(2025, 12, 31), r"expires \(2025-12-31\) before it is signed"),
        ]
        for code, signed_on, expires_on, message in cases:
            with pytest.raises(InvalidInput, match=message) as raised:
                _add(workbench, session, document, code=code, signed_on=signed_on, expires_on=expires_on)
            assert "2000-03-04" not in str(raised.value)  # the date of birth is admin-only
        # The limits themselves are allowed: signed on the day of birth (by a guardian), in 1990, today.
        for code, signed_on in [("P0001", dt.date(2000, 3, 4)), ("P0002", dt.date(1990, 1, 1)), ("P0002", today)]:
            assert _add(workbench, session, document, code=code, signed_on=signed_on).signed_on == signed_on
    with workbench.db.unit_of_work() as session:
        assert len(list(session.scalars(select(Release)))) == 3


def test_release_keeps_the_hash_of_the_stored_document(workbench: Workbench, tmp_path: Path) -> None:
    document = write_release_document(tmp_path / "release.pdf", person_code="P0001", signed_on=dt.date(2026, 1, 1),
                                      scopes=["ai_training"])
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code="P0001", actor="t")
        release_id = _add(workbench, session, document).id
    with workbench.db.unit_of_work() as session:
        stored = session.get(Release, release_id)
        assert stored is not None and stored.document_type == "pdf" and stored.document_name == "release.pdf"
        assert stored.document_sha256 == hashlib.sha256(document.read_bytes()).hexdigest()
        assert workbench.blobs.read_bytes(stored.document_sha256) == document.read_bytes()
