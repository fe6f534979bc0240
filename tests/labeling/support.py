"""Helpers the labeling tests share: the served Label Studio, faces to push, annotating as
labelers."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image
from skimage import data as skimage_data
from sqlalchemy import select

from labeling import api, server
from labeling.client import LabelStudioClient
from likeness.config import Settings
from likeness.models import Face, LabelTask, Person, Shoot, Shot
from likeness.workbench import Workbench
from tests.factories.people import SHOOT_DATE, register_sitter


@dataclass
class LabelStudioServer:
    settings: Settings          # the settings `serve` ran with (its data dir, port, venv)
    blob_root: Path             # the blob store every test workbench shares (Label Studio never sees it)

    @property
    def connection(self) -> server.Connection:
        found = server.read_connection(self.settings)
        assert found is not None
        return found

    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.connection)


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


# -- annotating in Label Studio ------------------------------------------------------------------

def choice(attribute: str, value: str) -> dict:
    return {"from_name": attribute, "to_name": "crop", "type": "choices", "value": {"choices": [value]}}


def task_ids(wb: Workbench) -> dict[int, int]:
    """Face id → Label Studio task id, for every pushed face."""
    with wb.db.unit_of_work() as session:
        return cast(dict[int, int], dict(session.execute(select(LabelTask.face_id, LabelTask.ls_task_id)).all()))


def labeler(ls: LabelStudioClient, name: str) -> int:
    """The Label Studio user `name` (created the first time)."""
    email = f"{name}@studio.test"
    for user in ls.sdk.users.list():
        if user.email == email:
            assert user.id is not None
            return user.id
    created = ls.sdk.users.create(email=email, username=name)
    assert created.id is not None
    return created.id


def annotate(ls: LabelStudioClient, task_id: int, user_id: int, **values: str) -> int:
    result = [choice(attribute, value) for attribute, value in values.items()]
    annotation = ls.sdk.annotations.create(id=task_id, result=result, completed_by=user_id)
    assert annotation.id is not None
    return annotation.id


def setup_and_push(wb: Workbench) -> tuple[LabelStudioClient, dict[int, int]]:
    """Set the project up and push; the client and face id → task id."""
    api.setup(workbench=wb)
    api.push(workbench=wb)
    return api.client(workbench=wb), task_ids(wb)
