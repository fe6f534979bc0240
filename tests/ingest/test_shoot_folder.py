"""Reading a shoot folder: which files are frames, whose they are, and what is skipped and why."""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path

import pytest

from ingest import api
from ingest.coordinator import IngestSummary
from ingest.shoot_folder import MANIFEST_MAX_BYTES, FrameFile, ShootFolder, SkippedEntry, read_shoot_folder
from likeness.errors import InvalidInput
from likeness.workbench import Workbench
from pipeline.cli import print_summary
from ui.staging import ShootFields, stage_upload

TOML = 'name = "s"\ndate = 2026-11-20\nsitters = ["P0004"]\n'


def _shoot(root: Path, files: list[str], *, csv: str | None = None, toml: str = TOML) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "shoot.toml").write_text(toml)
    for relative in files:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(relative.encode())
    if csv is not None:
        (root / "frames.csv").write_text("file,sitter\n" + csv)
    return root


def _sitters(folder: ShootFolder) -> dict[str, str | None]:
    return {frame.relative_path: frame.sitter_code for frame in folder.frames}


def _skipped(folder: ShootFolder) -> dict[str, str]:
    return {entry.relative_path: entry.reason for entry in folder.skipped}


# -- frames.csv matches paths, never base names ----------------------------------------------

CARDS = ["IMG_0001.jpg", "P0004/IMG_0001.jpg", "P0005/IMG_0001.png", "unsorted/IMG_0001.jpg"]


def test_a_row_matches_only_its_own_path(tmp_path: Path) -> None:
    folder = read_shoot_folder(_shoot(tmp_path / "s", CARDS, csv="IMG_0001.jpg,P0001\nunsorted/IMG_0001.jpg,P0002\n"))
    assert _sitters(folder) == {
        "IMG_0001.jpg": "P0001",
        "P0004/IMG_0001.jpg": "P0004",  # its sitter folder, not the row naming a file of the same name
        "P0005/IMG_0001.png": None,  # P0005 is not a sitter of the shoot, and no row names this path
        "unsorted/IMG_0001.jpg": "P0002",
    }
    assert folder.skipped == []


def test_a_base_name_row_names_no_file_and_is_reported(tmp_path: Path) -> None:
    folder = read_shoot_folder(_shoot(tmp_path / "s", CARDS[1:], csv="unsorted/x.jpg,P0001\nIMG_0001.jpg,P0001\n"))
    assert _sitters(folder) == {"P0004/IMG_0001.jpg": "P0004", "P0005/IMG_0001.png": None, "unsorted/IMG_0001.jpg": None}
    assert folder.skipped == [
        SkippedEntry("unsorted/x.jpg", "frames.csv row 2 names no file"),
        SkippedEntry("IMG_0001.jpg", "frames.csv row 3 names no file"),
    ]


def test_rows_are_normalised_paths_inside_the_shoot(tmp_path: Path) -> None:
    root = _shoot(tmp_path / "s", ["unsorted/a.jpg", "unsorted/b.jpg"], csv="./unsorted/a.jpg,p0001\nunsorted//./b.jpg,P0002\n")
    assert _sitters(read_shoot_folder(root)) == {"unsorted/a.jpg": "P0001", "unsorted/b.jpg": "P0002"}
    for bad in ("../outside.jpg", "/etc/passwd", "unsorted/../../x.jpg", "."):
        (root / "frames.csv").write_text(f"file,sitter\nunsorted/a.jpg,P0001\n{bad},P0001\n")
        with pytest.raises(InvalidInput, match=r"frames\.csv row 3: .* is not a path inside the shoot folder"):
            read_shoot_folder(root)


def test_a_file_claimed_by_its_sitter_folder_and_a_row_is_an_error(tmp_path: Path) -> None:
    root = _shoot(tmp_path / "s", CARDS, csv="unsorted/IMG_0001.jpg,P0001\nP0004/IMG_0001.jpg,P0001\n")
    with pytest.raises(InvalidInput) as caught:
        read_shoot_folder(root)
    message = str(caught.value)
    assert "frames.csv" in message and "P0004/IMG_0001.jpg" in message
    assert "row 3 (P0001)" in message and "sitter folder P0004" in message
    assert "unsorted/IMG_0001.jpg" not in message


def test_a_file_claimed_by_two_rows_is_an_error_even_for_one_sitter(tmp_path: Path) -> None:
    root = _shoot(tmp_path / "s", CARDS, csv="unsorted/IMG_0001.jpg,P0001\nIMG_0001.jpg,P0002\n./unsorted/IMG_0001.jpg,P0001\n")
    with pytest.raises(InvalidInput, match=r"unsorted/IMG_0001\.jpg: frames\.csv row 2 \(P0001\) and frames\.csv row 4 \(P0001\)"):
        read_shoot_folder(root)


# -- symlinks and special files --------------------------------------------------------------

def test_symlinks_leading_outside_are_refused_and_reported(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"not yours")
    root = _shoot(tmp_path / "s", ["P0004/a.jpg"], csv="P0004/stolen.jpg,P0001\n")
    (root / "P0004" / "stolen.jpg").symlink_to(outside / "secret.jpg")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "up.jpg").symlink_to("../outside/secret.jpg")
    (root / "inside.jpg").symlink_to("P0004/a.jpg")  # stays in the shoot: followed as before
    folder = read_shoot_folder(root)
    assert _sitters(folder) == {"P0004/a.jpg": "P0004", "inside.jpg": None}
    assert _skipped(folder) == {
        "P0004/stolen.jpg": "frames.csv row 2 names a skipped entry",
        "elsewhere": "symlink leads outside the shoot",
        "up.jpg": "symlink leads outside the shoot",
    }
    assert SkippedEntry("P0004/stolen.jpg", "symlink leads outside the shoot") in folder.skipped


def test_symlink_loops_and_broken_links_are_reported_not_followed(tmp_path: Path) -> None:
    root = _shoot(tmp_path / "s", ["P0004/a.jpg"])
    (root / "P0004" / "again").symlink_to("..", target_is_directory=True)  # a folder loop
    (root / "ping.jpg").symlink_to("pong.jpg")
    (root / "pong.jpg").symlink_to("ping.jpg")
    (root / "gone.jpg").symlink_to("nothing-here.jpg")
    (root / "alias").symlink_to("P0004", target_is_directory=True)  # a folder inside the shoot: followed
    started = time.monotonic()
    folder = read_shoot_folder(root)
    assert time.monotonic() - started < 10
    assert _sitters(folder) == {"P0004/a.jpg": "P0004", "alias/a.jpg": None}
    assert _skipped(folder) == {
        "P0004/again": "symlink loop",
        "alias/again": "symlink loop",
        "ping.jpg": "symlink loop",
        "pong.jpg": "symlink loop",
        "gone.jpg": "broken symlink",
    }


def test_fifos_and_sockets_are_reported_and_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _shoot(tmp_path / "s", ["P0004/a.jpg"])
    os.mkfifo(root / "P0004" / "pipe.dng")
    (root / "P0004" / "via-link.dng").symlink_to("pipe.dng")
    expected = {"P0004/pipe.dng": "not a regular file (FIFO)", "P0004/via-link.dng": "not a regular file (FIFO)"}
    server = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(root)  # a short path: AF_UNIX names are limited to about 100 bytes
    try:
        server.bind("sock.jpg")
        expected["sock.jpg"] = "not a regular file (socket)"
    except OSError:
        pass
    try:
        folder = read_shoot_folder(root)
    finally:
        server.close()
    assert _sitters(folder) == {"P0004/a.jpg": "P0004"}
    assert _skipped(folder) == expected


def test_hidden_files_and_sidecars_are_listed(tmp_path: Path) -> None:
    folder = read_shoot_folder(_shoot(tmp_path / "s", ["P0004/a.jpg", "P0004/a.xmp", ".DS_Store", ".cache/x.jpg"]))
    assert _sitters(folder) == {"P0004/a.jpg": "P0004"}
    assert _skipped(folder) == {".DS_Store": "hidden", ".cache": "hidden", "P0004/a.xmp": "sidecar (.xmp)"}


@pytest.mark.parametrize("name", ["shoot.toml", "frames.csv"])
def test_manifest_and_map_must_be_regular_files_inside_the_shoot(tmp_path: Path, name: str) -> None:
    root = _shoot(tmp_path / "s", ["P0004/a.jpg"], csv="P0004/a.jpg,P0001\n")
    (tmp_path / "elsewhere").write_bytes((root / name).read_bytes())
    (root / name).unlink()
    (root / name).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput, match=f"{name} is a symlink that leads outside the shoot folder"):
        read_shoot_folder(root)
    (root / name).unlink()
    os.mkfifo(root / name)
    with pytest.raises(InvalidInput, match=rf"{name} is not a regular file \(FIFO\)"):
        read_shoot_folder(root)


# -- limits on shoot.toml --------------------------------------------------------------------

def test_a_large_manifest_is_refused_reading_only_up_to_the_cap(tmp_path: Path) -> None:
    slots = ",\n".join(f'{{ slot = "{i}", pose = "three-quarter left" }}' for i in range(3000))
    root = _shoot(tmp_path / "s", [], toml=TOML + f"plan = [\n{slots}\n]\n")
    assert (root / "shoot.toml").stat().st_size > MANIFEST_MAX_BYTES
    with pytest.raises(InvalidInput, match=r"shoot\.toml is larger than the limit of 64 KiB"):
        read_shoot_folder(root)
    with open(root / "shoot.toml", "r+b") as handle:  # 8 GiB (sparse): reading it whole would take long
        handle.truncate(8 * 1024**3)
    started = time.monotonic()
    with pytest.raises(InvalidInput, match=r"shoot\.toml is larger than the limit of 64 KiB"):
        read_shoot_folder(root)
    assert time.monotonic() - started < 5


def test_plan_length_and_field_lengths_are_capped(tmp_path: Path) -> None:
    root = _shoot(tmp_path / "s", [], toml=TOML + "plan = [" + "{}," * 10_001 + "]\n")
    with pytest.raises(InvalidInput, match=r"shoot\.toml: plan: .*10000"):
        read_shoot_folder(root)
    (root / "shoot.toml").write_text(TOML + "plan = [" + "{}," * 10_000 + "]\n")
    assert len(read_shoot_folder(root).manifest.plan) == 10_000
    (root / "shoot.toml").write_text(f'date = 2026-11-20\nstudio = "{"x" * 201}"\n')
    with pytest.raises(InvalidInput, match=r"shoot\.toml: studio: .*200 characters"):
        read_shoot_folder(root)
    (root / "shoot.toml").write_text(f'date = 2026-11-20\nplan = [{{ pose = "{"x" * 201}" }}]\n')
    with pytest.raises(InvalidInput, match=r"shoot\.toml: plan\.0\.pose: .*200 characters"):
        read_shoot_folder(root)


def test_reference_frame_must_be_a_frame_inside_the_shoot(tmp_path: Path) -> None:
    root = _shoot(tmp_path / "s", ["P0004/a.jpg"], toml=TOML + 'reference_frame = "./P0004/a.jpg"\n')
    assert read_shoot_folder(root).manifest.reference_frame == "P0004/a.jpg"
    (tmp_path / "grey.jpg").write_bytes(b"grey")
    (root / "shoot.toml").write_text(TOML + 'reference_frame = "../grey.jpg"\n')
    with pytest.raises(InvalidInput, match=r"shoot\.toml: reference_frame: .*not a path inside the shoot folder"):
        read_shoot_folder(root)


# -- reporting -------------------------------------------------------------------------------

def test_ingest_summary_carries_the_skipped_entries(workbench: Workbench, tmp_path: Path) -> None:
    root = _shoot(tmp_path / "s", [], csv="P0004/missing.jpg,P0004\n")
    (root / "P0004").mkdir()
    (root / "P0004" / "passwd.jpg").symlink_to("/etc/passwd")
    summary = api.ingest_folder(workbench=workbench, path=root, actor="test", workers=0)
    assert summary.files == 0 and summary.ok
    assert summary.skipped == [
        SkippedEntry("P0004/passwd.jpg", "symlink leads outside the shoot"),
        SkippedEntry("P0004/missing.jpg", "frames.csv row 2 names no file"),
    ]


def test_print_summary_lists_the_skipped_entries() -> None:
    from likeness.cli import console

    summary = IngestSummary(shoot="s", shoot_id=1, skipped=[SkippedEntry("P0004/[x].jpg", "symlink leads outside the shoot")])
    with console.capture() as captured:
        print_summary(summary)
    output = captured.get()
    assert "skipped" in output and "P0004/[x].jpg: symlink leads outside the shoot" in output


# -- browser uploads still make readable shoot folders ---------------------------------------

class _Upload(io.BytesIO):
    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(data)
        self.name = name


def test_staged_uploads_read_back_with_their_sitter(tmp_path: Path) -> None:
    fields = ShootFields(name="", date=None, studio="", sitter_code="P0007", photographer="ana")
    manifest = _Upload("shoot.toml", b'name = "up"\ndate = 2026-11-20\nsitters = ["P0001", "P0002"]\n')
    folder = stage_upload(tmp_path, [manifest, _Upload("a.dng", b"a"), _Upload("b.jpg", b"b")], fields)
    read = read_shoot_folder(folder)
    assert read.frames == [FrameFile(folder / "P0007" / "a.dng", "P0007/a.dng", "P0007"),
                           FrameFile(folder / "P0007" / "b.jpg", "P0007/b.jpg", "P0007")]
    assert read.skipped == []
    fields = ShootFields(name="form", date=None, studio="", sitter_code="P0008", photographer="ana")
    folder = stage_upload(tmp_path, [_Upload("a.dng", b"a")], ShootFields(**{**fields.__dict__, "date": read.manifest.date}))
    assert _sitters(read_shoot_folder(folder)) == {"P0008/a.dng": "P0008"}
