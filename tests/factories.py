"""Builders for test data: sample shoots rendered from a real portrait, sitters with releases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ingest import api
from ingest.sample_shoot import write_release_document
from likeness.workbench import Workbench

SHOOT_DATE = dt.date(2026, 11, 20)


def register_sitter(workbench: Workbench, tmp_path: Path, code: str = "P0001", *, release: bool = True) -> None:
    with workbench.db.unit_of_work() as session:
        api.add_person(session=session, code=code, date_of_birth=dt.date(1990, 1, 1), actor="test")
        if release:
            document = write_release_document(
                tmp_path / f"{code}.pdf", person_code=code, signed_on=SHOOT_DATE, scopes=["ai_training"]
            )
            api.add_release(
                session=session, blobs=workbench.blobs, person_code=code, document=document,
                signed_on=SHOOT_DATE, scopes=["ai_training"], actor="test",
            )


def write_shoot_toml(folder: Path, *, name: str, sitters: list[str], date: dt.date = SHOOT_DATE) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    codes = ", ".join(f'"{code}"' for code in sitters)
    (folder / "shoot.toml").write_text(f'name = "{name}"\ndate = {date.isoformat()}\nsitters = [{codes}]\n')
