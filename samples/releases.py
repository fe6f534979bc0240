"""Sample model releases: a one-page release PDF, and a sitter registered with a signed
``ai_training`` release, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy.orm import Session

from ingest import api as ingest_api
from likeness.blobstore import BlobStore

__all__ = ["add_signed_release", "register_sitter", "write_release_document"]


def add_signed_release(
    *, session: Session, blobs: BlobStore, code: str, document_dir: Path, signed_on: date, actor: str,
    scopes: Sequence[str] = ("ai_training",), witness_name: str | None = None,
) -> int:
    """Write a release document for a registered sitter into ``document_dir`` and record it;
    returns the release id. The sitter's frames are re-checked, as for any new release."""
    document = write_release_document(
        Path(document_dir) / f"release-{code}-{signed_on.isoformat()}.pdf",
        person_code=code, signed_on=signed_on, scopes=list(scopes),
    )
    release = ingest_api.add_release(
        session=session, blobs=blobs, person_code=code, document=document, signed_on=signed_on,
        scopes=list(scopes), witness_name=witness_name, actor=actor,
    )
    return release.id


def register_sitter(
    *, session: Session, blobs: BlobStore, code: str, document_dir: Path, actor: str,
    release_signed_on: date | None, legal_name: str | None = None, date_of_birth: dt.date | None = None,
    email: str | None = None, witness_name: str | None = None,
) -> None:
    """Register a sitter and, unless ``release_signed_on`` is None, their signed release."""
    ingest_api.add_person(session=session, code=code, legal_name=legal_name, date_of_birth=date_of_birth,
                          email=email, actor=actor)
    if release_signed_on is not None:
        add_signed_release(session=session, blobs=blobs, code=code, document_dir=document_dir,
                           signed_on=release_signed_on, witness_name=witness_name, actor=actor)


def _font(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """A font with an em dash if the system has one; flag says whether it does."""
    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf"):
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    return ImageFont.load_default(size=size), False


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, max_width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and draw.textlength(candidate, font=font) > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def write_release_document(
    path: Path,
    *,
    person_code: str,
    signed_on: date,
    scopes: Sequence[str],
    guardian: str | None = None,
) -> Path:
    """Write a one-page model-release PDF (rendered text on an A4 page image)."""
    path = Path(path)
    if not isinstance(person_code, str) or not person_code.strip():
        raise ValueError("person_code must be a non-empty string")
    if not isinstance(signed_on, date):
        raise ValueError(f"signed_on must be a date, got {type(signed_on).__name__}")
    if isinstance(scopes, str):
        raise ValueError("scopes must be a sequence of strings, not a single string")
    scopes = [str(s).strip() for s in scopes]
    if not scopes or any(not s for s in scopes):
        raise ValueError("scopes must contain at least one non-empty scope")
    if guardian is not None and (not isinstance(guardian, str) or not guardian.strip()):
        raise ValueError("guardian must be None or a non-empty string")

    signed = signed_on.isoformat() if not isinstance(signed_on, datetime) else signed_on.date().isoformat()
    page_w, page_h, dpi = 1240, 1754, 150  # A4 at 150 dpi
    page = Image.new("RGB", (page_w, page_h), "white")
    draw = ImageDraw.Draw(page)
    title_font, has_dash = _font(44)
    body_font, _ = _font(28)
    dash = "\u2014" if has_dash else "-"

    margin = 110
    y = margin
    draw.text((margin, y), "Model release", font=title_font, fill="black")
    y += 90
    headline = f"Model release {dash} {person_code} {dash} signed {signed} {dash} scopes {', '.join(scopes)}"
    body = [
        headline,
        "",
        f"Person code: {person_code}",
        f"Signed on: {signed}",
        f"Scopes: {', '.join(scopes)}",
    ]
    if guardian is not None:
        body.append(f"Signed by guardian: {guardian}")
    body += [
        "",
        "The person named by the code above consents to the capture and use of their likeness "
        "for the scopes listed, and may withdraw consent in writing at any time.",
    ]
    for paragraph in body:
        lines = _wrap(draw, paragraph, body_font, page_w - 2 * margin) if paragraph else [""]
        for line in lines:
            draw.text((margin, y), line, font=body_font, fill="black")
            y += 42
    draw.line((margin, page_h - 260, margin + 500, page_h - 260), fill="black", width=2)
    draw.text((margin, page_h - 245), "Signature", font=body_font, fill="black")

    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, format="PDF", resolution=dpi)
    return path
