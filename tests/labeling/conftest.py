"""A real Label Studio for the labeling tests: one server per session, one project per test."""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data
from sqlalchemy import select

from labeling import server
from labeling.client import LabelStudioClient
from likeness.config import Settings
from likeness.errors import LikenessError
from likeness.models import Face, Person, Shoot, Shot
from likeness.workbench import Workbench
from tests.conftest import REPO_ROOT, make_settings, skip_or_fail
from tests.factories import SHOOT_DATE, register_sitter
from tests.postgres_server import _free_port


@dataclass
class LabelStudioServer:
    settings: Settings          # the settings `serve` ran with (its data dir, port, venv)
    blob_root: Path             # the blob store every test workbench shares (the server's files root)

    @property
    def connection(self) -> server.Connection:
        found = server.read_connection(self.settings)
        assert found is not None
        return found

    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.connection)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    home = tmp_path_factory.mktemp("labelstudio")
    blob_root = home / "files" / "blobs"
    blob_root.mkdir(parents=True)
    venv = Path(os.environ.get("LIKENESS_LABEL_STUDIO_VENV", REPO_ROOT / ".venv-labelstudio"))
    settings = Settings(data_dir=home / "data", blob_url=str(blob_root), label_studio_port=_free_port(),
                        label_studio_venv=venv)
    try:
        server.start(settings, str(blob_root))
    except LikenessError as exc:
        skip_or_fail(f"Label Studio could not be started: {exc}", "LIKENESS_REQUIRE_LABEL_STUDIO")
    try:
        yield LabelStudioServer(settings, blob_root)
    finally:
        server.stop(settings)


@pytest.fixture
def lwb(tmp_path: Path, database_url: str, label_studio: LabelStudioServer,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Workbench]:
    """A workbench that uses the session's Label Studio as an existing server (URL + token),
    also exported through LIKENESS_* variables for CLI and app runs."""
    connection = label_studio.connection
    values = dict(data_dir=tmp_path / "data", database_url=database_url, blob_url=str(label_studio.blob_root),
                  label_studio_url=connection.url, label_studio_token=connection.token,
                  label_studio_files_root=label_studio.blob_root.parent)
    for name, value in values.items():
        monkeypatch.setenv(f"LIKENESS_{name.upper()}", str(value))
    with Workbench.open(make_settings(tmp_path, **values)) as wb:
        yield wb


_PORTRAIT = skimage_data.astronaut()[:256, 96:352]  # a real face, 256 x 256


def _png(seed: int) -> bytes:
    """A real face crop, shifted per seed so every crop is a distinct blob."""
    rng = np.random.default_rng(seed)
    crop = np.roll(_PORTRAIT, int(rng.integers(1, 40)), axis=1).copy()
    crop[0, 0] = [seed % 256, (seed // 256) % 256, 7]
    out = io.BytesIO()
    Image.fromarray(crop).save(out, format="PNG")
    return out.getvalue()


def add_faces(wb: Workbench, tmp_path: Path, *, n: int, shoot: str = "shoot-a", sitter: str = "P0001",
              status: str = "accepted", release: bool = True, eyes: str = "open", yaw: float = 2.0,
              seed: int = 0) -> list[int]:
    """Shots with one aligned face each, for a sitter (registered here, with or without a release)."""
    with wb.db.unit_of_work() as session:
        registered = session.scalar(select(Person.id).where(Person.code == sitter)) is not None
    if not registered:
        register_sitter(wb, tmp_path, sitter, release=release)
    ids = []
    with wb.db.unit_of_work() as session:
        person = session.scalars(select(Person).where(Person.code == sitter)).one()
        shoot_row = session.scalars(select(Shoot).where(Shoot.name == shoot)).one_or_none()
        if shoot_row is None:
            shoot_row = Shoot(name=shoot, shoot_date=SHOOT_DATE)
            session.add(shoot_row)
        for i in range(n):
            k = seed * 10_000 + i
            crop = wb.blobs.put_bytes(_png(k))
            original = wb.blobs.put_bytes(f"original {shoot} {sitter} {k}".encode())
            shot = Shot(sha256=original, shoot=shoot_row, person_id=person.id, sitter_code=sitter,
                        relative_path=f"{sitter}/frame{k:04d}.dng", file_format="dng", file_size=1,
                        width=256, height=256, capture_date=SHOOT_DATE, status=status,
                        preview_sha256=crop, captured_at=dt.datetime(2026, 11, 20, 10, 0))
            face = Face(shot=shot, face_index=0, box=[0, 0, 256, 256], score=0.99, landmarks=[], quad=[],
                        crop_sha256=crop, crop_size=256, yaw=yaw, pitch=0.0, roll=0.0,
                        qa={"eyes": {"state": eyes, "confidence": 0.9}})
            session.add_all([shot, face])
            session.flush()
            ids.append(face.id)
    return ids
