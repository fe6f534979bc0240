"""People (pseudonymous sitters) and their model releases."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest import gate
from likeness import audit
from likeness.blobstore import BlobStore
from likeness.errors import InvalidInput, NotFound
from likeness.models import Person, PersonalData, Release, Scope

CODE_RE = re.compile(r"^[A-Z][A-Z0-9_-]{1,31}$")


def normalise_code(code: str) -> str:
    code = code.strip().upper()
    if not CODE_RE.match(code):
        raise InvalidInput(f"person code {code!r} is not valid", hint="use a pseudonymous code such as P0042")
    return code


def get_person(*, session: Session, code: str) -> Person:
    person = session.scalar(select(Person).where(Person.code == normalise_code(code)))
    if person is None:
        raise NotFound(f"no person with code {code}", hint="add one with `likeness person add`")
    return person


def add_person(
    *,
    session: Session,
    code: str,
    legal_name: str | None = None,
    date_of_birth: dt.date | None = None,
    email: str | None = None,
    phone: str | None = None,
    self_identified: dict[str, str] | None = None,
    actor: str,
) -> Person:
    """Register a sitter; personal data (admin-only) is stored apart from the code."""
    code = normalise_code(code)
    if session.scalar(select(Person).where(Person.code == code)) is not None:
        raise InvalidInput(f"person {code} already exists")
    if date_of_birth is not None and date_of_birth > dt.date.today():
        raise InvalidInput(f"date of birth {date_of_birth} for {code} is in the future")
    person = Person(code=code)
    session.add(person)
    session.flush()
    if legal_name or date_of_birth or email or phone or self_identified:
        session.add(
            PersonalData(
                person_id=person.id, legal_name=legal_name or "", date_of_birth=date_of_birth,
                email=email, phone=phone, self_identified=self_identified or {},
            )
        )
    audit.record(session=session, actor=actor, action="person.add", subject_type="person", subject_id=code)
    session.flush()
    gate.recheck(session=session, actor=actor, person_code=code)
    return person


def document_type(path: Path) -> str:
    """'pdf' or an image format, judged by content, not by the file name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
            handle.seek(max(0, path.stat().st_size - 2048))
            tail = handle.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read release document {path}: {exc.strerror}") from exc
    if head.startswith(b"%PDF-"):
        if b"%%EOF" not in tail:
            raise InvalidInput(f"release document {path} is a truncated PDF (no end-of-file marker)")
        return "pdf"
    try:
        with Image.open(path) as image:
            image.verify()
            return (image.format or "image").lower()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInput(f"release document {path} is neither a PDF nor a readable image") from exc


def add_release(
    *,
    session: Session,
    blobs: BlobStore,
    person_code: str,
    document: Path,
    signed_on: dt.date,
    scopes: Sequence[str],
    expires_on: dt.date | None = None,
    guardian_name: str | None = None,
    witness_name: str | None = None,
    actor: str,
) -> Release:
    """Record a signed release with its document, then re-gate the sitter's shots."""
    person = get_person(session=session, code=person_code)
    try:
        scope_values = sorted({Scope(s.strip()).value for s in scopes if s.strip()})
    except ValueError as exc:
        valid = ", ".join(s.value for s in Scope)
        raise InvalidInput(f"unknown scope in {list(scopes)}", hint=f"choose from {valid}") from exc
    if not scope_values:
        raise InvalidInput(f"the release for {person.code} names no scope")
    if expires_on is not None and expires_on < signed_on:
        raise InvalidInput(f"the release for {person.code} expires ({expires_on}) before it is signed ({signed_on})")
    if signed_on > dt.date.today():
        raise InvalidInput(f"the release for {person.code} is dated in the future ({signed_on})")
    kind = document_type(document)
    sha = blobs.put_file(document)
    release = Release(
        person_id=person.id, document_sha256=sha, document_name=document.name, document_type=kind,
        signed_on=signed_on, expires_on=expires_on, scopes=scope_values,
        guardian_name=guardian_name, witness_name=witness_name,
    )
    session.add(release)
    session.flush()
    audit.record(
        session=session, actor=actor, action="release.add", subject_type="release", subject_id=release.id,
        person=person.code, scopes=scope_values, signed_on=signed_on.isoformat(),
    )
    session.refresh(person, ["releases"])
    gate.recheck(session=session, actor=actor, person_code=person.code)
    return release


def revoke_release(
    *, session: Session, release_id: int, reason: str, revoked_on: dt.date | None = None, actor: str
) -> gate.RecheckResult:
    """Revoke a release and quarantine every shot it no longer covers."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release #{release_id}")
    if release.revoked_on is not None:
        raise InvalidInput(f"release #{release_id} was already revoked on {release.revoked_on}")
    if not reason.strip():
        raise InvalidInput("a revocation needs a reason")
    release.revoked_on = revoked_on or dt.date.today()
    release.revoked_reason = reason.strip()
    audit.record(session=session, actor=actor, action="release.revoke", subject_type="release", subject_id=release_id, reason=reason)
    session.flush()
    return gate.recheck(session=session, actor=actor, person_code=release.person.code)
