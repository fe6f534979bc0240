"""Fixtures for ingest tests: sample shoots rendered from a real portrait, a released sitter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest import api
from ingest.sample_shoot import SampleShoot, build_sample_shoot, write_release_document
from likeness.workbench import Workbench

SHOOT_DATE = dt.date(2026, 11, 20)


@pytest.fixture(scope="session")
def sample_shoot_template(tmp_path_factory: pytest.TempPathFactory) -> SampleShoot:
    return build_sample_shoot(tmp_path_factory.mktemp("shoot") / "demo-shoot", n_good=4, frame_size=(768, 512))


@pytest.fixture
def sample_shoot(sample_shoot_template: SampleShoot) -> SampleShoot:
    return sample_shoot_template


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
