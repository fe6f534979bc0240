"""The shoots page's parts: staging uploads (form fields, shoot .zips), contact-sheet reads
(filters, sort, EXIF), live cards during an ingest, thumbnails; and the pages through AppTest."""

from __future__ import annotations

import base64
import datetime as dt
import io
import stat
import zipfile
from pathlib import Path
from typing import cast

import pytest
from PIL import Image
from sqlalchemy import select

from ingest import api
from ingest.reads import NO_SITTER, SheetFilter, sheet_facets
from likeness.errors import InvalidInput
from likeness.models import Role, Shot, ShotStatus
from likeness.workbench import Workbench
from samples.shoot import MAKE, MODEL
from tests.factories.app import sign_in, start
from tests.factories.people import EARLY_RELEASE, add_user, register_sitter
from ui._common import thumbnail
from ui.staging import MAX_ZIP_RATIO, ShootFields, stage_upload

SITTER = "P0001"


class _Upload(io.BytesIO):
    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(data)
        self.name = name


def _zip(entries: dict[str, bytes], *, links: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return out.getvalue()


MANIFEST = b'name = "two sitters"\ndate = 2026-11-20\nsitters = ["P0001", "P0002"]\n'


# -- the upload form's fields ------------------------------------------------------------------

def test_a_missing_shoot_name_is_named_even_when_the_sitter_is_missing_too(tmp_path: Path) -> None:
    fields = ShootFields(name="", date=dt.date(2026, 1, 2), studio="", sitter_code="", photographer="ana")
    with pytest.raises(InvalidInput, match="Shoot name") as caught:
        stage_upload(tmp_path, [_Upload("a.dng", b"1")], fields)
    assert "person code" not in str(caught.value)
    assert not any(tmp_path.iterdir())


def test_an_empty_sitter_code_names_the_field(tmp_path: Path) -> None:
    fields = ShootFields(name="s", date=dt.date(2026, 1, 2), studio="", sitter_code=" ", photographer="ana")
    with pytest.raises(InvalidInput, match="Sitter code is empty"):
        stage_upload(tmp_path, [_Upload("a.dng", b"1")], fields)


# -- a shoot .zip ------------------------------------------------------------------------------

FIELDS = ShootFields(name="", date=None, studio="", sitter_code="", photographer="ana")


def test_a_zip_of_a_shoot_folder_with_several_sitters_is_staged_and_ingested(
    env_workbench: Workbench, small_shoot: Path, tmp_path: Path
) -> None:
    frames = sorted(small_shoot.rglob("*.dng"))
    entries = {
        "my-shoot/shoot.toml": MANIFEST,
        f"my-shoot/P0001/{frames[0].name}": frames[0].read_bytes(),
        "my-shoot/unsorted/second.dng": frames[1].read_bytes(),
        "my-shoot/frames.csv": b"file,sitter\nunsorted/second.dng,P0002\n",
        "__MACOSX/my-shoot/._shoot.toml": b"resource fork",
    }
    folder = stage_upload(tmp_path / "uploads", [_Upload("shoot.zip", _zip(entries))], FIELDS)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        f"P0001/{frames[0].name}", "frames.csv", "shoot.toml", "unsorted/second.dng",
    ]
    summary = api.ingest_folder(workbench=env_workbench, path=folder, actor="test")
    assert summary.shoot == "two sitters" and summary.files == 2 and not summary.failed
    with env_workbench.db.unit_of_work() as session:
        cards = api.contact_sheet(session=session, shoot_id=summary.shoot_id, show_unreleased=True)
    assert sorted(c.sitter_code or "" for c in cards) == ["P0001", "P0002"]


@pytest.mark.parametrize(
    ("entries", "links", "message"),
    [
        ({"shoot.toml": MANIFEST, "../evil.dng": b"1"}, (), "points outside the shoot folder"),
        ({"shoot.toml": MANIFEST, "/abs/evil.dng": b"1"}, (), "points outside the shoot folder"),
        ({"shoot.toml": MANIFEST, "P0001\\..\\..\\evil.dng": b"1"}, (), "points outside the shoot folder"),
        ({"shoot.toml": MANIFEST}, ("P0001/link.dng",), "is a link"),
        ({"P0001/a.dng": b"1"}, (), "has no shoot.toml"),
        ({"shoot.toml": b'date = 2026-11-20\nsitters = ["P0001"]\n', "P0001/a.dng": b"1"}, (), "has no name"),
        ({"shoot.toml": MANIFEST, "P0001/bomb.dng": b"\0" * (MAX_ZIP_RATIO * 4096)}, (), "zip bomb"),
    ],
)
def test_unsafe_or_incomplete_zips_are_refused_and_leave_nothing(
    tmp_path: Path, entries: dict[str, bytes], links: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        stage_upload(tmp_path, [_Upload("shoot.zip", _zip(entries, links=links))], FIELDS)
    assert not any(tmp_path.iterdir())
    assert not (tmp_path.parent / "evil.dng").exists()


def test_a_zip_comes_alone_and_must_be_a_zip(tmp_path: Path) -> None:
    archive = _zip({"shoot.toml": MANIFEST, "P0001/a.dng": b"1"})
    with pytest.raises(InvalidInput, match="upload it on its own"):
        stage_upload(tmp_path, [_Upload("shoot.zip", archive), _Upload("b.dng", b"2")], FIELDS)
    with pytest.raises(InvalidInput, match="not a readable zip"):
        stage_upload(tmp_path, [_Upload("shoot.zip", b"PK not really")], FIELDS)


# -- thumbnails --------------------------------------------------------------------------------

def _decode(url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_small_images_are_scaled_up_to_the_grid_size(env_workbench: Workbench) -> None:
    tiny = Image.new("RGB", (32, 32), (200, 30, 30))
    buffer = io.BytesIO()
    tiny.save(buffer, format="PNG")
    sha = env_workbench.blobs.put_bytes(buffer.getvalue())
    padded = _decode(thumbnail(env_workbench.blobs.url, sha, (128, 128), pad=True))
    assert padded.size == (128, 128)
    # No white padding left: the 32 px face fills the whole cell.
    rgb = padded.convert("RGB")
    assert all(cast(tuple, rgb.getpixel(xy))[1] < 100 for xy in [(2, 2), (125, 125)])
    assert _decode(thumbnail(env_workbench.blobs.url, sha, (96, 64))).size == (64, 64)


# -- contact-sheet reads -----------------------------------------------------------------------

def test_contact_sheet_filters_sorts_and_carries_exif(
    env_workbench: Workbench, small_shoot: Path, tmp_path: Path
) -> None:
    summary = api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")  # sitter unknown
    shoot_id = summary.shoot_id
    with env_workbench.db.unit_of_work() as session:
        facets = sheet_facets(session=session, shoot_id=shoot_id)
        assert facets.statuses == ("quarantined",) and facets.reasons == ("unknown_sitter",)
        everything = api.contact_sheet(session=session, shoot_id=shoot_id, show_unreleased=True)
        assert len(everything) == 2
        assert all(c.camera == f"{MAKE} {MODEL}" for c in everything)
        assert all(c.exposure() and "ISO" in (c.exposure() or "") for c in everything)
        assert api.count_shots(session=session, shoot_id=shoot_id, where=SheetFilter(statuses=("accepted",))) == 0
        assert api.count_shots(session=session, shoot_id=shoot_id, where=SheetFilter(reasons=("unknown_sitter",))) == 2
        assert api.count_shots(session=session, shoot_id=shoot_id, where=SheetFilter(sitters=("P0042",))) == 0
        by_sitter = api.count_shots(session=session, shoot_id=shoot_id, where=SheetFilter(sitters=(SITTER, NO_SITTER)))
        assert by_sitter == 2
        one = api.contact_sheet(session=session, shoot_id=shoot_id,
                                where=SheetFilter(relative_paths=(everything[1].relative_path,)))
        assert [c.id for c in one] == [everything[1].id]
        for sort in ("captured", "status", "sitter"):
            assert {c.id for c in api.contact_sheet(session=session, shoot_id=shoot_id,
                                                    where=SheetFilter(sort=sort))} == {c.id for c in everything}
        with pytest.raises(InvalidInput, match="sorted by"):
            api.contact_sheet(session=session, shoot_id=shoot_id, where=SheetFilter(sort="size"))


def test_each_frame_is_readable_when_its_progress_call_comes(
    env_workbench: Workbench, small_shoot: Path
) -> None:
    """The live contact sheet reads each frame's card in the progress callback."""
    seen: list[tuple[int, int, int]] = []

    def progress(done: int, total: int, path: str) -> None:
        with env_workbench.db.unit_of_work() as session:
            shoot_id = api.shoot_id_by_name(session=session, name="demo-shoot")
            assert shoot_id is not None
            cards = api.contact_sheet(session=session, shoot_id=shoot_id, where=SheetFilter(relative_paths=(path,)))
        seen.append((done, total, len(cards)))

    api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test", progress=progress)
    assert seen == [(1, 2, 1), (2, 2, 1)]


# -- pages -------------------------------------------------------------------------------------

def test_photographers_get_a_next_step_for_unknown_sitters_and_filters_work(
    env_workbench: Workbench, small_shoot: Path
) -> None:
    api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")  # the sitter is not registered
    add_user(env_workbench, "ana", Role.photographer)
    at = sign_in(start(), "ana")
    assert any("ask an admin to register the sitter and their release" in c.value for c in at.caption)
    assert any(c.value.startswith(f"{MAKE} {MODEL}") or MODEL in c.value for c in at.caption)
    at.multiselect(key=f"sheet_status_{at.selectbox(key='shoot_id').value}").select("quarantined").run()
    assert not at.exception
    assert len([m for m in at.markdown if "quarantined" in m.value]) == 2


def test_admins_see_a_qa_failure_once(env_workbench: Workbench, small_shoot: Path, tmp_path: Path) -> None:
    register_sitter(env_workbench, tmp_path, signed_on=EARLY_RELEASE, personal_data=True)
    api.ingest_folder(workbench=env_workbench, path=small_shoot, actor="test")
    check = {"name": "sharpness", "value": 12.5, "threshold": ">= 40", "passed": False}
    with env_workbench.db.unit_of_work() as session:  # what shot QA stores for a blurred frame
        shot = session.scalars(select(Shot).order_by(Shot.relative_path)).first()
        assert shot is not None
        shot.qa = {"checks": [check]}
        shot.status, shot.reason = ShotStatus.rejected, "qa_sharpness"
        shot.reason_detail = "sharpness = 12.5 (needs >= 40)"
    add_user(env_workbench, "root", Role.admin)
    at = sign_in(start(), "root")
    assert len([m for m in at.markdown if "rejected" in m.value]) == 1
    assert len([c.value for c in at.caption if "12.5" in c.value]) == 1


def test_a_labeler_is_told_to_ask_an_admin_to_start_label_studio(env_workbench: Workbench) -> None:
    add_user(env_workbench, "lou", Role.labeler)
    at = sign_in(start(), "lou")
    at.switch_page("ui/pages/labeling.py").run()
    assert not at.exception
    text = " ".join(i.value for i in at.info)
    assert "ask an admin to start Label Studio" in text and "likeness label serve" not in text
