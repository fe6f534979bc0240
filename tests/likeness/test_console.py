"""A quiet console: no C++ log lines from MediaPipe or TensorFlow Lite, no anonymous messages
from LibRaw or exifread; every failure names its file. Real processes, real files."""

from __future__ import annotations

import logging
import os
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tifffile
from PIL import Image

from ingest.decode import FrameError, decode_frame
from likeness import logs
from samples.shoot import build_sample_shoot

REPO = Path(__file__).resolve().parents[2]
NATIVE_NOISE = re.compile(
    r"^[WIEF]\d{4} |inference_feedback_manager|landmark_projection_calculator|File format not recognized"
    r"|TensorFlow Lite|absl::InitializeLog|^\S+: Unexpected end of file$",  # the last: LibRaw's own line
    re.MULTILINE,
)


def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _largest_page(tif: tifffile.TiffFile) -> tifffile.TiffPage:
    pages = []
    for page in tif.pages:
        assert isinstance(page, tifffile.TiffPage)
        pages.append(page)
        for offset in page.subifds or ():
            tif.filehandle.seek(offset)
            pages.append(tifffile.TiffPage(tif, index=0))
    return max(pages, key=lambda p: sum(p.databytecounts))  # the raw image, not the preview


def short_strip_dng(source: Path, dest: Path) -> Path:
    """A copy of a sample DNG whose raw strip is declared, and stored, half as long as its pixels
    need: the TIFF structure is whole, so only LibRaw finds the cut, and says so on stderr."""
    with tifffile.TiffFile(source) as tif:
        raw = _largest_page(tif)
        tag = raw.tags["StripByteCounts"]
        assert tag.count == 1 and tag.dtype == 4  # one LONG, stored in the entry itself
        offset, count, start = tag.valueoffset, int(raw.databytecounts[0]), int(raw.dataoffsets[0])
    data = bytearray(source.read_bytes())
    data[offset : offset + 4] = struct.pack("<I" if data[:2] == b"II" else ">I", count // 2)
    dest.write_bytes(bytes(data[: start + count // 2]))
    return dest


def bmp_named_jpg(dest: Path) -> Path:
    """A real portrait that Pillow reads but exifread does not recognise."""
    from skimage import data

    Image.fromarray(data.astronaut()).save(dest, format="BMP")
    return dest


@pytest.fixture(scope="module")
def sample_shoot(tmp_path_factory: pytest.TempPathFactory):
    shoot = build_sample_shoot(tmp_path_factory.mktemp("console") / "shoot", n_good=3, include_bad=True)
    sitter = shoot.path / shoot.good_frames[0].split("/")[0]
    short_strip_dng(shoot.path / shoot.good_frames[0], sitter / "frame_cut.dng")
    bmp_named_jpg(sitter / "frame_bitmap.jpg")
    return shoot


def test_libraw_messages_join_the_failure_of_their_file(sample_shoot, capfd: pytest.CaptureFixture[str]) -> None:
    cut = sample_shoot.path / "P0001" / "frame_cut.dng"
    with pytest.raises(FrameError) as failure:
        decode_frame(cut, max_pixels=10**9)
    assert failure.value.kind == "truncated"
    assert "LibRaw: Unexpected end of file" in failure.value.reason
    assert str(cut) not in failure.value.reason  # the reason belongs to the file: no path repeated
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_exifread_notes_name_their_file(sample_shoot, capfd: pytest.CaptureFixture[str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    bitmap = sample_shoot.path / "P0001" / "frame_bitmap.jpg"
    with caplog.at_level(logging.INFO):
        decoded = decode_frame(bitmap, max_pixels=10**9)
    assert decoded.rgb.shape == (512, 512, 3)
    exifread_records = [r for r in caplog.records if r.name == "exifread"]
    assert exifread_records == []  # no anonymous "File format not recognized."
    named = [r.getMessage() for r in caplog.records if str(bitmap) in r.getMessage()]
    assert named and "File format not recognized" in named[0] and caplog.records[0].levelno == logging.INFO
    assert capfd.readouterr().err == ""


def test_mediapipe_prints_nothing_from_cpp() -> None:
    """A fresh process builds every graph (detectors, meshes) and runs them on a real portrait."""
    script = textwrap.dedent("""
        import numpy as np
        from skimage import data
        from faces.detect import find_faces, mesh_aligned_face
        from faces.align import align_face, ffhq_quad
        rgb = np.ascontiguousarray(data.astronaut())
        faces = find_faces(rgb)
        find_faces(np.zeros((600, 800, 3), np.uint8))
        crop = align_face(rgb, ffhq_quad(faces[0].landmarks), 512)
        print(len(faces), mesh_aligned_face(crop) is not None)
    """)
    run = _python("-c", script)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "True"]
    assert run.stderr == "", run.stderr


def test_native_stderr_hands_on_what_is_not_a_cpp_log_line(capfd: pytest.CaptureFixture[str],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with logs.native_stderr() as outer:
        os.write(2, b"outer before\n")
        with logs.native_stderr() as inner:
            os.write(2, b"W0101 12:00:00.000000   123 calculator.cc:12] a note\n"
                        b"E0101 12:00:00.000000   123 calculator.cc:34] a real error\n"
                        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nsomething else\n")
        os.write(2, b"outer after\n")
    assert outer.text == "outer before\nouter after\n"  # the inner block took its own lines
    with caplog.at_level(logging.WARNING):
        rest = logs.drop_native_log_lines(inner.text, logging.getLogger("probe"), source="mediapipe")
    assert rest == "something else\n"
    assert [r.getMessage() for r in caplog.records] == ["mediapipe reported an error (calculator.cc:34): a real error"]
    with pytest.raises(RuntimeError), logs.native_stderr() as failed:
        os.write(2, b"said before failing\n")
        raise RuntimeError("boom")
    assert failed.text == "said before failing\n"
    assert capfd.readouterr().err == ""  # everything was caught; fd 2 is the test's again
    os.write(2, b"back\n")
    assert capfd.readouterr().err == "back\n"


def test_ingest_console_has_no_native_noise_and_failures_name_their_files(sample_shoot, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKENESS_")}
    env.update(LIKENESS_DATA_DIR=str(tmp_path / "data"), COLUMNS="1000")  # wide: one line per failure
    assert _python("-m", "likeness", "db", "upgrade", env=env).returncode == 0
    run = _python("-m", "likeness", "ingest", str(sample_shoot.path), "--workers", "2", env=env)
    console = run.stdout + run.stderr
    assert run.returncode == 1, console  # the broken files fail, the batch goes on
    assert NATIVE_NOISE.search(console) is None, console
    failing = {**sample_shoot.bad_files, "P0001/frame_cut.dng": "truncated"}
    failure_lines = [line for line in console.splitlines() if "failed:" in line]
    assert len(failure_lines) == len(failing), console
    for relative, kind in failing.items():
        assert any(line.strip().startswith(f"failed: {relative}: ") and line.endswith(f"({kind})")
                   for line in failure_lines), (relative, console)
    assert "LibRaw: Unexpected end of file" in console
    shoot_files = [str(p.relative_to(sample_shoot.path)) for p in sample_shoot.path.rglob("*") if p.is_file()]
    for line in run.stderr.splitlines():  # anything on stderr is about a file, and says which
        assert any(name in line for name in shoot_files), line


def test_native_stderr_without_a_stderr_catches_nothing_and_breaks_nothing() -> None:
    script = textwrap.dedent("""
        import os
        from likeness import logs
        os.close(2)
        with logs.native_stderr() as captured:
            pass
        print(repr(captured.text))
    """)
    run = _python("-c", script)
    assert (run.returncode, run.stdout.strip()) == (0, "''"), run.stderr
