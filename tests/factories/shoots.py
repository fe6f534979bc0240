"""Shoot folders written by tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.factories.people import SHOOT_DATE


def write_shoot_toml(folder: Path, *, name: str, sitters: list[str], date: dt.date = SHOOT_DATE) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    codes = ", ".join(f'"{code}"' for code in sitters)
    (folder / "shoot.toml").write_text(f'name = "{name}"\ndate = {date.isoformat()}\nsitters = [{codes}]\n')
