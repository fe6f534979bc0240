"""The first look: a large RAW judged on a half-size decode before the full ingest stores it. Its
verdict agrees with the stored shot's on real portraits (open, blurred, closed and averted eyes),
a damaged file fails it the way it fails the ingest, and a verdict the stored shot contradicts is
revised with an alert."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from capture.look import Look, first_look
from capture.verdict import FrameVerdict
from capture.watch import WatchOptions
from ingest.decode import HALF_SIZE_MIN_PIXELS
from ingest.frame import FrameFailure, FrameJob, FrameResult, process_frame
from likeness.workbench import Workbench
from samples.dng import write_dng
from tests.capture.conftest import Running
from tests.capture.test_watch import stored

# Real portraits enlarged to a studio camera's size (8 MP and more: the first look decodes them
# at half size), each with the verdict a photographer must hear.
PORTRAITS = {
    "open.dng": ("open/obama_official_portrait_2012.jpg", 3.0, 0.0),
    "blurred.dng": ("open/obama_official_portrait_2012.jpg", 3.0, 3.0),
    "closed.dng": ("closed/cew_closed_eye_0957.jpg", 3.6, 0.0),
    "averted.dng": ("crossed/obama_averted_gaze.jpg", 4.0, 0.0),
}


@pytest.fixture(scope="module")
def large_raws(testdata_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("large-raws")
    made = {}
    for name, (source, scale, blur) in PORTRAITS.items():
        with Image.open(testdata_dir / "faces" / source) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        image = image.resize((round(image.width * scale) // 2 * 2, round(image.height * scale) // 2 * 2),
                             Image.Resampling.LANCZOS)
        write_dng(out / name, np.asarray(image))
        made[name] = out / name
    return made


def _job(path: Path, blobs: Path) -> FrameJob:
    return FrameJob(path, path.name, hashlib.sha256(path.read_bytes()).hexdigest(), str(blobs),
                    align_size=1024, preview_size=1024, max_pixels=200_000_000)


def test_a_large_raw_is_looked_at_half_size_with_the_ingest_preview(large_raws: dict[str, Path], tmp_path: Path) -> None:
    job = _job(large_raws["open.dng"], tmp_path / "blobs")
    look, full = first_look(job), process_frame(job)
    assert isinstance(look, Look) and isinstance(full, FrameResult)
    assert full.width * full.height >= HALF_SIZE_MIN_PIXELS
    assert look.image_size == (full.width // 2, full.height // 2)
    assert len(look.faces) == len(full.faces) == 1
    # The preview is the camera's embedded one in both: the same bytes, stored once.
    assert look.preview_sha256 == full.preview_sha256
    # The face window the look measures covers the stored crop's (the same enlargement).
    assert look.faces[0].upscale == pytest.approx(full.faces[0].crop_size / np.linalg.norm(
        np.subtract(full.faces[0].quad[3], full.faces[0].quad[0])), rel=0.05)


def test_a_cut_raw_fails_the_look_as_it_fails_the_ingest(large_raws: dict[str, Path], tmp_path: Path) -> None:
    source = large_raws["open.dng"].read_bytes()
    cut = tmp_path / "cut.dng"
    cut.write_bytes(source[: len(source) * 6 // 10])
    look, full = first_look(_job(cut, tmp_path / "blobs")), process_frame(_job(cut, tmp_path / "blobs"))
    assert isinstance(look, FrameFailure) and isinstance(full, FrameFailure)
    assert (look.kind, look.reason) == (full.kind, full.reason) == ("truncated", full.reason)


def test_the_first_look_verdict_comes_first_and_the_stored_shot_confirms_it(
    workbench: Workbench, hot_folder: Path, large_raws: dict[str, Path], watch
) -> None:
    running: Running = watch(WatchOptions(quiet_s=0.2, stable_s=0.6, give_up_s=1.5, workers=1))
    for name, path in large_raws.items():
        (hot_folder / "P0001" / name).write_bytes(path.read_bytes())
    def done(path: str) -> bool:
        return any(e.get("phase") == "stored" or e.get("fault") == "revised" for e in running.events()
                   if e.get("path") == path)

    for name in large_raws:
        running.wait(f"{name} stored", functools.partial(done, f"P0001/{name}"))
    running.stop()

    events = running.events()
    verdicts = {e["path"]: e for e in events if e["kind"] == "verdict"}
    assert set(verdicts) == {f"P0001/{name}" for name in large_raws}
    assert not [e for e in events if e.get("fault") == "revised"], "a first look that the stored shot contradicts"
    assert all(v["stage"] == "look" and v["shot_id"] is None for v in verdicts.values()), verdicts
    for path, verdict in verdicts.items():
        confirmed = next(i for i, e in enumerate(events) if e.get("phase") == "stored" and e.get("path") == path)
        assert events.index(verdict) < confirmed  # announced before the record was written
    shots = {shot.relative_path: shot for shot in stored(workbench)}
    assert {path: (v["status"], v["reason"]) for path, v in verdicts.items()} == {
        path: (shot.status.value, shot.reason) for path, shot in shots.items()}
    calls = {path.removeprefix("P0001/"): (v["status"], v["eyes"]) for path, v in verdicts.items()}
    assert calls == {"open.dng": ("accepted", "open"), "blurred.dng": ("rejected", "open"),
                     "closed.dng": ("rejected", "closed"), "averted.dng": ("accepted", "looking_away")}
    assert verdicts["P0001/blurred.dng"]["reason"] == "qa_sharpness"
    alerts = [e["message"] for e in events if e["kind"] == "alert"]
    assert any("out of focus or blurred — reshoot" in m and "blurred.dng" in m for m in alerts), alerts
    assert any("reshoot" in m and "closed.dng" in m for m in alerts), alerts


def test_a_first_look_the_stored_shot_contradicts_is_revised_with_an_alert(
    workbench: Workbench, hot_folder: Path, frames: dict[str, Path], watch
) -> None:
    running: Running = watch()
    judge = running.watcher.judge
    looked = judge.first_look

    def sees_nothing_wrong(*args, **kwargs) -> FrameVerdict:  # a first look that misses the closed eyes
        verdict = looked(*args, **kwargs)
        verdict.status, verdict.reason, verdict.words = "accepted", None, None
        return verdict

    judge.first_look = sees_nothing_wrong  # type: ignore[method-assign]
    (hot_folder / "P0001" / "closed.jpg").write_bytes(frames["closed"].read_bytes())
    revised = running.wait_alert("verdict revised once stored")
    running.stop()
    assert "P0001: eyes closed — reshoot" in revised["message"] and revised["path"] == "P0001/closed.jpg"
    first, second = [e for e in running.events("verdict") if e["path"] == "P0001/closed.jpg"]
    assert (first["stage"], first["status"], first["revised"]) == ("look", "accepted", False)
    assert (second["stage"], second["status"], second["reason"], second["revised"]) == (
        "stored", "rejected", "qa_eyes", True)
    assert second["shot_id"] is not None
    assert running.watcher.stats.verdicts == 1  # one frame judged, its verdict revised once
