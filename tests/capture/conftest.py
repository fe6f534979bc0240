"""A watched shoot folder, real frames from the shared test data, and a watcher run in a thread."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter, ImageOps

from capture.watch import Watcher, WatchOptions, events_path, read_events
from likeness.workbench import Workbench
from tests.factories.people import EARLY_RELEASE, register_sitter
from tests.factories.shoots import write_shoot_toml

SHOOT = "hot-folder"
WAIT_S = 180.0  # how long a test waits for the watcher before it fails (never a timing assertion)


def _no_exif(source: Path, target: Path, blur: float = 0.0) -> None:
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    image.save(target, format="PNG" if target.suffix == ".png" else "JPEG", quality=92)


@pytest.fixture(scope="session")
def frames(testdata_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photographs as a camera would hand them over: two open-eyed faces, a closed-eyed one, a
    blurred one (made from a real portrait), one whose camera clock is years off (its own EXIF
    date), the colour-chart DNG (no face) and that DNG cut short."""
    out = tmp_path_factory.mktemp("frames")
    faces = testdata_dir / "faces"
    made = {
        "open_a": out / "open_a.png", "open_b": out / "open_b.png", "closed": out / "closed.jpg",
        "blurred": out / "blurred.jpg", "clock_off": out / "clock_off.jpg", "raw": out / "chart.dng",
        "truncated": out / "cut.dng",
    }
    _no_exif(faces / "open" / "astronaut_eileen_collins.png", made["open_a"])
    _no_exif(faces / "open" / "lin_manuel_miranda.png", made["open_b"])
    _no_exif(faces / "closed" / "cew_closed_eye_0030.jpg", made["closed"])
    _no_exif(faces / "open" / "obama_official_portrait_2012.jpg", made["blurred"], blur=3)
    shutil.copy(faces / "open" / "selfie_open_eyes.jpg", made["clock_off"])  # EXIF says 2025-04-03
    raw = testdata_dir / "raw" / "canon_eos_kiss_x4_colorchart.dng"
    shutil.copy(raw, made["raw"])
    made["truncated"].write_bytes(raw.read_bytes()[: raw.stat().st_size * 6 // 10])
    return made


def make_hot_folder(wb: Workbench, tmp_path: Path) -> Path:
    """The shoot folder a watcher watches: today's shoot, P0001 registered and released."""
    folder = tmp_path / SHOOT
    write_shoot_toml(folder, name=SHOOT, sitters=["P0001"], date=dt.date.today())
    (folder / "P0001").mkdir()
    register_sitter(wb, tmp_path, signed_on=EARLY_RELEASE)
    return folder


@pytest.fixture
def hot_folder(tmp_path: Path, workbench: Workbench) -> Path:
    return make_hot_folder(workbench, tmp_path)


FAST = WatchOptions(quiet_s=0.2, stable_s=0.6, give_up_s=1.5, workers=0)


class Running:
    """A watcher on its own thread, and ways to wait for what it reports."""

    def __init__(self, workbench: Workbench, folder: Path, options: WatchOptions) -> None:
        self.workbench = workbench
        self.watcher = Watcher(workbench, folder, SHOOT, options=options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = read_events(events_path(self.workbench, SHOOT))
        return [e for e in found if kind is None or e["kind"] == kind]

    def wait(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            assert self.error is None, f"the watcher died: {self.error!r}"
            assert time.monotonic() < deadline, f"gave up waiting for {what}; events: {self.events()}"
            time.sleep(0.05)

    def wait_verdict(self, path: str) -> dict[str, Any]:
        self.wait(f"a verdict on {path}", lambda: any(e.get("path") == path for e in self.events("verdict")))
        return next(e for e in self.events("verdict") if e.get("path") == path)

    def wait_alert(self, text: str) -> dict[str, Any]:
        self.wait(f"an alert with {text!r}", lambda: any(text in e["message"] for e in self.events("alert")))
        return next(e for e in self.events("alert") if text in e["message"])

    def stop(self) -> None:
        self.watcher.stop()
        self.thread.join(timeout=WAIT_S)
        assert self.error is None, f"the watcher died: {self.error!r}"


@pytest.fixture
def watch(workbench: Workbench, hot_folder: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(options: WatchOptions = FAST) -> Running:
        running = Running(workbench, hot_folder, options)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.watcher.stop()
            running.thread.join(timeout=WAIT_S)


def write_chunked(source: Path, target: Path, *, chunks: int = 4, pause_s: float = 0.4,
                  between: Callable[[], None] | None = None) -> None:
    """As a camera or a slow card reader writes: one open, several writes with pauses, one close."""
    data = source.read_bytes()
    step = -(-len(data) // chunks)
    with open(target, "wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            os.fsync(handle.fileno())
            if between is not None:
                between()
            time.sleep(pause_s)
