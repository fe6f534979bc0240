"""Builders for test data: sample shoots rendered from a real portrait, sitters with releases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from likeness.workbench import Workbench
from samples.releases import register_sitter as register_sample_sitter

SHOOT_DATE = dt.date(2026, 11, 20)


def register_sitter(workbench: Workbench, tmp_path: Path, code: str = "P0001", *, release: bool = True) -> None:
    with workbench.db.unit_of_work() as session:
        register_sample_sitter(session=session, blobs=workbench.blobs, code=code, document_dir=tmp_path,
                               date_of_birth=dt.date(1990, 1, 1), release_signed_on=SHOOT_DATE if release else None,
                               actor="test")


def write_shoot_toml(folder: Path, *, name: str, sitters: list[str], date: dt.date = SHOOT_DATE) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    codes = ", ".join(f'"{code}"' for code in sitters)
    (folder / "shoot.toml").write_text(f'name = "{name}"\ndate = {date.isoformat()}\nsitters = [{codes}]\n')
