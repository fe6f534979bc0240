"""People (pseudonymous sitters) and their model releases."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError
from email_validator import validate_email as _validate_email
from PIL import Image, UnidentifiedImageError
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest import gate
from ingest.releases import ADULT_AGE, age_on
from likeness import audit
from likeness.blobstore import BlobStore
from likeness.errors import InvalidInput, NotFound
from likeness.models import Person, PersonalData, Release, Scope, Shoot, Shot

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


def check_email(email: str, *, code: str) -> str:
    """The address in its normalised form, or InvalidInput naming the field. Only the syntax and
    the domain's form are checked: no DNS lookup (the studio may be offline)."""
    try:
        return _validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"email {email.strip()!r} for {code} is not a valid address: {exc}") from None


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
    email = check_email(email, code=code) if email is not None and email.strip() else None
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


# No release the studio holds was signed before 1990 (the UI's date pickers start there too):
# an earlier date is a slip of the keyboard (1800 for 2018, 0026 for 2026), not a real release.
EARLIEST_SIGNING = dt.date(1990, 1, 1)

# Scans are accepted in the formats scanners write (and the UI uploads): PNG, JPEG, TIFF.
SCAN_FORMATS = frozenset({"PNG", "JPEG", "TIFF"})
# A page scanned at 75 dpi, the lowest setting of common scanners, is 620 x 877 px (A4) or
# 638 x 825 px (Letter). Anything with a side under 600 px is a thumbnail or an icon, too small
# for the text and the signature of a release to be legible.
MIN_SCAN_SIDE = 600


def _check_pdf(path: Path, data: bytes) -> None:
    """Open the PDF with pypdf: it must parse, be readable and hold at least one page."""
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # A PDF with only an owner password opens with the empty user password.
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise InvalidInput(f"release document {path} is an encrypted PDF that cannot be decrypted here ({exc})") from exc
            if opened == PasswordType.NOT_DECRYPTED:
                raise InvalidInput(
                    f"release document {path} is an encrypted PDF that needs a password to read",
                    hint="store the release without a password",
                )
        pages = len(reader.pages)
        if pages:
            _ = reader.pages[0].mediabox  # resolves the first page object
    except InvalidInput:
        raise
    except Exception as exc:  # a parser fed arbitrary bytes fails in many ways; all mean "not a PDF"
        raise InvalidInput(f"release document {path} is not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if pages < 1:
        raise InvalidInput(f"release document {path} is a PDF with no pages")


def _check_scan(path: Path, data: bytes) -> str:
    """A scan must be a decodable PNG, JPEG or TIFF of at least MIN_SCAN_SIDE px on each side."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or ""
            width, height = image.size
            if image_format not in SCAN_FORMATS:
                raise InvalidInput(
                    f"release document {path} is a {image_format or 'unknown'} image, not a scan",
                    hint="scan the signed release as PDF, PNG, JPEG or TIFF",
                )
            image.load()  # decode the pixels: verify() checks only the structure
    except InvalidInput:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"release document {path} is an image too large to decode ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"release document {path} is neither a PDF nor a readable image") from exc
    if min(width, height) < MIN_SCAN_SIDE:
        raise InvalidInput(
            f"release document {path} is a {width}x{height} px image, too small for a scanned release "
            f"(each side needs at least {MIN_SCAN_SIDE} px)",
            hint="scan the signed page at 75 dpi or more",
        )
    return image_format.lower()


def document_type(path: Path, data: bytes | None = None) -> str:
    """'pdf' or a scan's image format ('png', 'jpeg', 'tiff'), judged by content, not by the file name.

    A PDF must open in pypdf, hold at least one page and not need a password; a scan must decode
    and be of page size (see MIN_SCAN_SIDE). `data`, when given, is the file's content.
    """
    if data is None:
        data = _read_document(path)
    if data.startswith(b"%PDF-"):
        if b"%%EOF" not in data[-2048:]:
            raise InvalidInput(f"release document {path} is a truncated PDF (no end-of-file marker)")
        _check_pdf(path, data)
        return "pdf"
    return _check_scan(path, data)


def _read_document(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read release document {path}: {exc.strerror}") from exc


def _check_dates(person: Person, signed_on: dt.date, expires_on: dt.date | None) -> None:
    if signed_on > dt.date.today():
        raise InvalidInput(f"the release for {person.code} is dated in the future ({signed_on})")
    if signed_on < EARLIEST_SIGNING:
        raise InvalidInput(
            f"the release for {person.code} is dated {signed_on}, before {EARLIEST_SIGNING}",
            hint="check the year of the signing date",
        )
    date_of_birth = person.personal.date_of_birth if person.personal is not None else None
    if date_of_birth is not None and signed_on < date_of_birth:
        # The date of birth itself is admin-only personal data: name the problem, not the date.
        raise InvalidInput(f"the release for {person.code} is dated {signed_on}, before the sitter's date of birth")
    if expires_on is not None and expires_on < signed_on:
        raise InvalidInput(f"the release for {person.code} expires ({expires_on}) before it is signed ({signed_on})")


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
    _check_dates(person, signed_on, expires_on)
    # Check and store the same bytes, so the blob (and its hash on the release) is what was checked.
    data = _read_document(document)
    kind = document_type(document, data)
    sha = blobs.put_bytes(data)
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


# -- release documents and expiry ------------------------------------------------------------------

# A release that expires within this many days is flagged on the People page (and in
# `likeness release list`), so the studio can ask for a new one before frames fall out of consent.
EXPIRY_WARNING_DAYS = 30

_DOCUMENT_MIME = {"pdf": "application/pdf", "png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff"}


@dataclass(frozen=True)
class ReleaseDocument:
    """A release's signed document as stored: the blob, under the name it was uploaded with."""

    release_id: int
    name: str
    mime_type: str
    data: bytes


def release_document(*, session: Session, blobs: BlobStore, release_id: int) -> ReleaseDocument:
    """The stored document of a release (admins only: it carries the sitter's name and signature)."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release #{release_id}")
    data = blobs.read_bytes(release.document_sha256)
    return ReleaseDocument(
        release_id=release.id, name=release.document_name,
        mime_type=_DOCUMENT_MIME.get(release.document_type, "application/octet-stream"), data=data,
    )


# -- erasure of personal data ---------------------------------------------------------------------

@dataclass(frozen=True)
class ErasureResult:
    code: str
    erased: tuple[str, ...]  # the fields that held a value and were removed
    kept_date_of_birth: bool  # kept because the sitter was a minor on a date that needs it

    def describe(self) -> str:
        erased = ", ".join(self.erased) or "nothing"
        kept = (
            "; the date of birth is kept: the sitter was under 18 on a capture date (or is today), "
            "and it decides whether a guardian must have signed"
            if self.kept_date_of_birth else ""
        )
        return f"erased {erased} for {self.code}{kept}"


def _was_minor(session: Session, person: Person, date_of_birth: dt.date) -> bool:
    """Whether the sitter was under 18 on any capture date of their frames, or is today (so a
    future frame would need a guardian's signature)."""
    days = [dt.date.today()]
    for captured_at, shoot_date in session.execute(
        select(Shot.captured_at, Shoot.shoot_date).join(Shoot, Shot.shoot_id == Shoot.id).where(Shot.sitter_code == person.code)
    ):
        days.append(gate.capture_date(captured_at, shoot_date))
    return age_on(date_of_birth, min(days)) < ADULT_AGE


def erase_personal_data(*, session: Session, code: str, actor: str) -> ErasureResult:
    """Erase a sitter's personal data on their request: legal name, email, phone, date of birth
    and self-identified data. The code, the releases and the frames stay.

    The release documents (and the guardian and witness names on a release) are kept: they are
    the evidence of the consent under which the kept frames were used, needed to answer a claim
    or an audit, and are read by admins only. A sitter who also withdraws consent has their
    release revoked, which quarantines the frames; deleting frames is a separate decision.

    The date of birth is kept only while it still decides the consent rule: if the sitter was
    under 18 on a capture date of any frame (or is today), erasing it would make those frames
    look as if no guardian were needed. The audit event records who erased which fields and when,
    never the values (and takes no free-text reason, which could repeat them).
    """
    person = get_person(session=session, code=code)
    personal = session.get(PersonalData, person.id)
    values: dict[str, object] = {}
    if personal is not None:
        values = {
            "legal_name": personal.legal_name, "email": personal.email, "phone": personal.phone,
            "date_of_birth": personal.date_of_birth, "self_identified": personal.self_identified,
        }
    keep_birth = (
        personal is not None and personal.date_of_birth is not None
        and _was_minor(session, person, personal.date_of_birth)
    )
    erased = tuple(field for field, value in values.items() if value and not (field == "date_of_birth" and keep_birth))
    if not erased:
        raise InvalidInput(f"{person.code} holds no personal data to erase")
    assert personal is not None
    if keep_birth:
        personal.legal_name, personal.email, personal.phone, personal.self_identified = "", None, None, {}
    else:
        session.delete(personal)
    audit.record(
        session=session, actor=actor, action="person.erase", subject_type="person", subject_id=person.code,
        erased=list(erased), kept=["date_of_birth"] if keep_birth else [],
    )
    session.flush()
    session.expire(person, ["personal"])
    return ErasureResult(code=person.code, erased=erased, kept_date_of_birth=keep_birth)
