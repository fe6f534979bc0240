"""What every benchmark shares: timers, alternating rounds, ratios, the process pool, a fresh
workbench, peak RSS, and how busy the machine is.

On a shared machine wall-clock figures move with other people's load: ``CpuMeter`` records a
benchmark's own CPU time and everybody else's next to each figure, ``wait_for_quiet`` waits for a
quiet moment before timing, and ``alternate`` runs the sides in turn, round after round, so that
drift in the load falls on all of them.

Only the standard library at module level: spawned pool workers import the benchmark module that
imports this one again, and must not pay for the workbench's imports.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import multiprocessing
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ACTOR", "QUIET_LOAD", "REPO", "CpuMeter", "Step", "StepClock", "alternate", "available", "compare", "cpu_model",
    "explicit_settings", "fresh_workbench", "load_line", "peak_rss_mib", "process_pool", "stats", "testdata_dir", "timed",
    "verdict", "wait_for_quiet",
]

REPO = Path(__file__).resolve().parent.parent
ACTOR = "bench"  # the actor of every audit row a benchmark writes
QUIET_LOAD = 0.05  # other processes' share of the machine above which timings are flagged


def testdata_dir() -> Path:
    """The shared test data (``$LIKENESS_TESTDATA``, default ``<repo>/../shared/testdata``)."""
    return Path(os.environ.get("LIKENESS_TESTDATA") or REPO.parent / "shared" / "testdata")


# -------------------------------------------------------------------------------------------------
# Timers, rounds and ratios
# -------------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of ``fn()`` (perf_counter) and what it returned."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def alternate(rounds: Iterable[Any], sides: Sequence[Callable[[Any], Any]],
              before: Callable[[], None] | None = None) -> list[list[Any]]:
    """Call every side with each round in turn (a, b, a, b ...), ``before()`` ahead of every call
    (a wait for a quiet machine), so that drift in the machine's load falls on all the sides.
    Returns each side's results, in round order."""
    results: list[list[Any]] = [[] for _ in sides]
    for round_ in rounds:
        for side, collected in zip(sides, results, strict=True):
            if before is not None:
                before()
            collected.append(side(round_))
    return results


def stats(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def compare(baseline: Sequence[float], ours: Sequence[float]) -> dict[str, Any]:
    """Our figures over the baseline's, measured in the same rounds: the ratios of their mins,
    medians and means, and round by round."""
    base, mine = stats(baseline), stats(ours)
    per_round = [o / b for b, o in zip(baseline, ours, strict=False)]
    return {
        "baseline": base,
        "ours": mine,
        "ratio_of_mins": mine["min"] / base["min"],
        "ratio_of_medians": mine["median"] / base["median"],
        "ratio_of_means": statistics.fmean(ours) / statistics.fmean(baseline),
        "per_round": per_round,
        "median_per_round": statistics.median(per_round),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


@dataclass(frozen=True)
class Step:
    """One function that ``StepClock`` times: ``attribute`` of ``target`` ("module" or
    "module:Class"), counted as ``name``; with a ``parent``, only the calls made inside that step.
    ``context``: the function returns a context manager whose enter and exit are timed (not the
    body); ``when(args, kwargs)``: only the calls it accepts are timed."""

    name: str
    target: str
    attribute: str
    parent: str | None = None
    context: bool = False
    when: Callable[[tuple, dict], bool] | None = None


def _owner(target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    owner = importlib.import_module(module_name)
    return getattr(owner, class_name) if class_name else owner


def available(steps: Iterable[Step]) -> list[Step]:
    """The steps whose function exists (a benchmark run against older code skips the rest)."""
    found = []
    for step in steps:
        try:
            owner = _owner(step.target)
        except (ImportError, AttributeError):
            continue
        if step.attribute in (owner.__dict__ if isinstance(owner, type) else vars(owner)):
            found.append(step)
    return found


class StepClock:
    """Wall and CPU seconds per step while the wrapped functions run. A few timers per call cost
    nothing measurable (cProfile, which traces every Python call, would inflate the Python-heavy
    steps such as imports)."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # step -> [wall, cpu, calls]
        self.active: list[str] = []

    def add(self, step: str, wall: float, cpu: float) -> None:
        entry = self.totals.setdefault(step, [0.0, 0.0, 0])
        entry[0] += wall
        entry[1] += cpu
        entry[2] += 1

    def seconds(self, step: str) -> tuple[float, float]:
        wall, cpu, _calls = self.totals.get(step, (0.0, 0.0, 0))
        return wall, cpu

    def measure(self, step: str, action: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return action()
        finally:
            self.add(step, time.perf_counter() - wall, time.process_time() - cpu)

    def wrap(self, step: Step, fn: Any) -> Any:
        clock = self

        if step.context:
            @functools.wraps(fn)
            def transaction(*args: Any, **kwargs: Any) -> Any:
                return _TimedContext(clock, step.name, fn(*args, **kwargs))

            return transaction

        @functools.wraps(fn)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            if step.name in clock.active or (step.parent is not None and step.parent not in clock.active):
                return fn(*args, **kwargs)  # a recursive call, or one made outside the parent step
            if step.when is not None and not step.when(args, kwargs):
                return fn(*args, **kwargs)
            clock.active.append(step.name)
            try:
                return clock.measure(step.name, lambda: fn(*args, **kwargs))
            finally:
                clock.active.pop()

        return timed_call

    def instrument(self, steps: Iterable[Step]) -> Callable[[], None]:
        """Wrap every step's function; returns the function that puts the originals back."""
        restore = []
        for step in steps:
            owner = _owner(step.target)
            original = owner.__dict__[step.attribute] if isinstance(owner, type) else getattr(owner, step.attribute)
            restore.append((owner, step.attribute, original))
            setattr(owner, step.attribute, self.wrap(step, original))

        def undo() -> None:
            for owner, attribute, original in reversed(restore):
                setattr(owner, attribute, original)

        return undo


class _TimedContext:
    """A context whose enter and exit are timed; inside another timed step (a lookup that opens its
    own transaction) that step already counts them."""

    def __init__(self, clock: StepClock, step: str, context: Any) -> None:
        self.clock, self.step, self.context = clock, step, context

    def _timed(self, action: Any) -> Any:
        if self.clock.active:
            return action()
        return self.clock.measure(self.step, action)

    def __enter__(self) -> Any:
        return self._timed(self.context.__enter__)

    def __exit__(self, *exc: Any) -> Any:
        return self._timed(lambda: self.context.__exit__(*exc))


# -------------------------------------------------------------------------------------------------
# How busy the machine is
# -------------------------------------------------------------------------------------------------


def _own_cpu_s() -> float:
    """User + system CPU of this process and of its reaped children (the pool workers, once the
    pool is shut down), all threads included."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Wall time, own CPU time and other processes' CPU time between start() and stop().

    The machine may be shared: ``other_load`` (the other processes' CPU as a share of all CPUs
    over the run) says how much a figure may be disturbed; ``cpu_s`` hardly depends on it.
    """

    def start(self) -> CpuMeter:
        self._own, self._busy = _own_cpu_s(), _machine_busy_s()
        self._wall = time.perf_counter()
        return self

    def elapsed(self) -> float:
        """Wall seconds since start()."""
        return time.perf_counter() - self._wall

    def stop(self) -> dict[str, float | None]:
        wall = self.elapsed()
        own = _own_cpu_s() - self._own
        busy = _machine_busy_s()
        other = None if busy is None or self._busy is None else max(0.0, busy - self._busy - own)
        cpus = os.cpu_count() or 1
        return {
            "cpu_s": own,
            "other_cpu_s": other,
            "other_load": None if other is None or wall <= 0 else other / (wall * cpus),
        }


def wait_for_quiet(limit_s: float, say: Callable[[str], Any]) -> None:
    """Wait (at most ``limit_s``) for a few seconds in which other processes leave the machine
    nearly idle, so that a timed run starts on a quiet machine. Nothing to do without /proc/stat."""
    deadline = time.monotonic() + limit_s
    while True:
        meter = CpuMeter().start()
        time.sleep(3.0)
        load = meter.stop()["other_load"]
        if load is None or load <= QUIET_LOAD:
            return
        if time.monotonic() >= deadline:
            say(f"  the machine is still busy ({100 * load:.0f} % used by other processes); timing anyway")
            return


def emit(report: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """A benchmark's figures as JSON: written to ``path`` (indented) when given, and printed as
    the last line of stdout; returns them."""
    if path is not None:
        path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return report


def load_line(load: dict[str, float | None]) -> str:
    """How busy the machine was while a benchmark timed (from :meth:`CpuMeter.stop`)."""
    other = load.get("other_load")
    cpus = os.cpu_count() or 1
    if other is None:
        return f"machine load: unknown (no /proc/stat); this run used {load['cpu_s']:.1f} CPU s"
    flag = "" if other <= QUIET_LOAD else " (busy: figures are noisy, trust the ratios)"
    return (f"machine load: other processes used {100 * other:.0f} % of {cpus} CPUs, "
            f"this run {load['cpu_s']:.1f} CPU s{flag}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -------------------------------------------------------------------------------------------------
# Pool and workbench
# -------------------------------------------------------------------------------------------------


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started as the ingest starts its own
    (``ingest.coordinator.make_executor``: 'spawn', so workers start clean)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def explicit_settings(**values: Any):  # -> likeness.config.Settings
    """Settings with every field given: ``values`` where named, each field's default otherwise,
    so that LIKENESS_* variables in the environment cannot change a benchmark's run."""
    from likeness.config import Settings

    for name, field in Settings.model_fields.items():
        if name not in values:
            values[name] = field.get_default(call_default_factory=True)
    return Settings(**values)


def fresh_workbench(root: Path, *, workers: int, sitters: Sequence[str] = (),
                    release_signed_on: dt.date | None = None, **settings: Any):  # -> Workbench
    """A fresh SQLite database (``root/likeness.db``) and local blob store (``root/blobs`` unless
    ``blob_url`` is given) under ``root``, every setting explicit (``settings`` for the rest),
    schema upgraded, and each of ``sitters`` registered (``samples.releases.register_sitter``),
    with an ai_training release signed on ``release_signed_on`` unless that is None."""
    from likeness.workbench import Workbench

    settings.setdefault("blob_url", str((root / "blobs").resolve()))
    workbench = Workbench.open(explicit_settings(
        data_dir=root, database_url=f"sqlite:///{(root / 'likeness.db').resolve()}", workers=workers, **settings,
    ))
    try:
        workbench.db.upgrade()
        if sitters:
            from samples.releases import register_sitter

            with workbench.db.unit_of_work() as session:
                for code in sitters:
                    register_sitter(session=session, blobs=workbench.blobs, code=code, document_dir=root / "releases",
                                    release_signed_on=release_signed_on, actor=ACTOR)
    except BaseException:
        workbench.close()
        raise
    return workbench


# -------------------------------------------------------------------------------------------------
# Full-size test shoots: DNGs rendered from real photographs (bench.ingest, bench.capture)
# -------------------------------------------------------------------------------------------------

ASTRONAUT = "skimage:astronaut"
MIN_SOURCE_EDGE = 256  # smaller photographs hold too little detail to stand for a 24 MP frame
MAX_LOOK_ATTEMPTS = 6  # new framings tried when a rendered frame does not show exactly one face
SHOOT_NAME = "bench-shoot"


def frame_size(text: str):  # -> tuple[int, int]; an argparse type for --size WIDTHxHEIGHT
    import argparse

    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 6000x4000, got {text!r}") from None
    if not (128 <= width <= 6000 and 128 <= height <= 6000) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text}: each side must be even and between 128 and 6000 px")
    return width, height


def _probe_task(source: str) -> dict[str, Any]:
    """Size and faces of a source photograph, as the ingest's detector sees it."""
    import numpy as np

    from faces.detect import find_faces

    photo = _load_photo(source)
    faces = find_faces(photo)
    astronaut = _load_photo(ASTRONAUT)
    same_as_astronaut = (source != ASTRONAUT and photo.shape == astronaut.shape
                         and bool(np.array_equal(photo, astronaut)))
    return {
        "source": source,
        "width": int(photo.shape[1]),
        "height": int(photo.shape[0]),
        "faces": len(faces),
        "face_box": [float(v) for v in faces[0].box] if len(faces) == 1 else None,
        "same_as_astronaut": same_as_astronaut,
    }


def _build_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Render one frame from its source photograph and write it as a DNG."""
    import numpy as np

    from faces.detect import find_faces
    from samples.dng import write_dng
    from samples.shoot import MAKE, MODEL, SERIAL

    started = time.perf_counter()
    photo = _load_photo(spec["source"])
    rng = np.random.default_rng(spec["seed"])
    for attempt in range(1, MAX_LOOK_ATTEMPTS + 1):  # noqa: B007 (reported below)
        look = _draw_look(spec, photo, rng)
        faces = len(find_faces(look["display"]))
        if faces == 1:
            break
    else:
        raise RuntimeError(
            f"{spec['relative_path']}: no framing of {spec['source']} showed exactly one face "
            f"in {MAX_LOOK_ATTEMPTS} tries (last: {faces})"
        )
    path = Path(spec["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(
        path,
        _to_stored(look["display"], look["orientation"]),
        make=MAKE,
        model=MODEL,
        serial=SERIAL,
        white_balance=look["white_balance"],
        exposure_ev=look["exposure_ev"],
        orientation=look["orientation"],
        capture_time=dt.datetime.fromisoformat(spec["capture_time"]),
        iso=int(rng.choice([100, 100, 200, 400])),
        exposure_time=(1, int(rng.choice([125, 160, 200]))),
        f_number=float(rng.choice([5.6, 8.0, 11.0])),
        focal_length=85.0,
        preview_size=spec["preview_size"],
    )
    return {
        "relative_path": spec["relative_path"],
        "source": spec["source"],
        "seconds": time.perf_counter() - started,
        "attempts": attempt,
        "orientation": look["orientation"],
        "exposure_ev": round(look["exposure_ev"], 3),
        "white_balance": [round(v, 3) for v in look["white_balance"]],
        "bytes": path.stat().st_size,
    }


# -------------------------------------------------------------------------------------------------
# Rendering frames from photographs
# -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _load_photo(source: str):  # -> np.ndarray (H, W, 3) uint8, upright
    import numpy as np
    from PIL import Image, ImageOps

    if source == ASTRONAUT:
        from skimage import data as skdata

        return skdata.astronaut()
    with Image.open(source) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _draw_look(spec: dict[str, Any], photo, rng) -> dict[str, Any]:
    """One framing of the photograph, with its exposure and as-shot white balance."""
    from samples.shoot import render_portrait_frame

    width, height = spec["size"]
    exposure_ev = float(rng.uniform(-0.7, 0.7))
    white_balance = (float(rng.uniform(1.7, 2.4)), 1.0, float(rng.uniform(1.3, 1.9)))
    if spec["source"] == ASTRONAUT:
        # A camera turned for a portrait frame now and then, as in a real session.
        orientation = 6 if spec["index"] % 4 == 2 else 1
        display_size = (height, width) if orientation == 6 else (width, height)
        display = render_portrait_frame(
            photo,
            display_size,
            face_centre=(float(rng.uniform(0.36, 0.64)), float(rng.uniform(0.38, 0.52))),
            face_width=float(rng.uniform(0.18, 0.36)),
            rng=rng,
        )
    else:
        orientation = 6 if photo.shape[0] > photo.shape[1] else 1
        display_size = (height, width) if orientation == 6 else (width, height)
        display = _frame_photo(photo, display_size, spec["face_box"], rng)
    return {"display": display, "orientation": orientation, "exposure_ev": exposure_ev, "white_balance": white_balance}


def _frame_photo(photo, size: tuple[int, int], face_box: list[float], rng):
    """Crop ``photo`` to the aspect of ``size`` (zoomed in by a random amount, the face placed
    somewhere near the middle but always wholly inside) and scale it to ``size``."""
    import numpy as np
    from PIL import Image

    width, height = size
    ih, iw = photo.shape[:2]
    aspect = width / height
    if iw / ih > aspect:
        max_w, max_h = ih * aspect, float(ih)
    else:
        max_w, max_h = float(iw), iw / aspect
    x0, y0, x1, y1 = face_box
    fw, fh = max(1.0, x1 - x0), max(1.0, y1 - y0)
    max_zoom = max(1.0, min(1.6, max_w / (2.2 * fw), max_h / (2.2 * fh)))
    zoom = float(rng.uniform(1.0, max_zoom))
    ww, wh = max_w / zoom, max_h / zoom

    def place(start: float, lo_face: float, hi_face: float, extent: float, window: float) -> float:
        # Keep the window inside the photo and the face inside the window.
        lo, hi = max(0.0, hi_face - window), min(extent - window, lo_face)
        if lo > hi:  # the face is larger than the window: centre on it
            return float(np.clip((lo_face + hi_face - window) / 2, 0.0, extent - window))
        return float(np.clip(start, lo, hi))

    left = place((x0 + x1) / 2 - float(rng.uniform(0.38, 0.62)) * ww, x0, x1, iw, ww)
    top = place((y0 + y1) / 2 - float(rng.uniform(0.32, 0.5)) * wh, y0, y1, ih, wh)
    frame = Image.fromarray(photo).resize(
        (width, height), Image.Resampling.LANCZOS, box=(left, top, left + ww, top + wh)
    )
    return np.asarray(frame)


def _to_stored(display, orientation: int):
    """Pixels as the sensor records them, given how they are displayed (Orientation 1 or 6)."""
    import numpy as np

    if orientation == 1:
        return display
    if orientation == 6:  # displayed = stored rotated 90 degrees clockwise
        return np.ascontiguousarray(np.rot90(display, k=1))
    raise ValueError(f"unsupported orientation {orientation}")


# -------------------------------------------------------------------------------------------------
# The shoot
# -------------------------------------------------------------------------------------------------


def _candidate_sources() -> list[str]:
    sources = [ASTRONAUT]
    folder = testdata_dir() / "faces" / "open"
    if folder.is_dir():
        sources += sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return sources


def _source_label(source: str) -> str:
    return "skimage.data.astronaut()" if source == ASTRONAUT else Path(source).name


def build_shoot(dest: Path, *, files: int, size: tuple[int, int], preview_size: int, seed: int,
                shoot_date: dt.date, say) -> dict[str, Any]:
    """Probe the sources, then render ``files`` frames into ``dest`` (one sitter per source)."""
    started = time.perf_counter()
    build_workers = max(1, min(os.cpu_count() or 1, files))
    with process_pool(build_workers) as pool:
        probes = list(pool.map(_probe_task, _candidate_sources()))
        sources, skipped = [], {}
        for probe in probes:
            label = _source_label(probe["source"])
            if probe["same_as_astronaut"]:
                skipped[label] = "the same picture as skimage.data.astronaut()"
            elif min(probe["width"], probe["height"]) < MIN_SOURCE_EDGE:
                skipped[label] = f"{probe['width']}x{probe['height']} is under {MIN_SOURCE_EDGE} px"
            elif probe["source"] != ASTRONAUT and probe["faces"] != 1:
                skipped[label] = f"{probe['faces']} faces found, not exactly one"
            else:
                sources.append(probe)
        for label, why in skipped.items():
            say(f"  source skipped: {label} ({why})")
        sitters = {probe["source"]: f"P{number:04d}" for number, probe in enumerate(sources, start=1)}
        clock = dt.datetime.combine(shoot_date, dt.time(10, 0, 0))
        specs = []
        for index in range(files):
            probe = sources[index % len(sources)]
            relative = f"{sitters[probe['source']]}/frame_{index + 1:03d}.dng"
            specs.append({
                "index": index, "source": probe["source"], "face_box": probe["face_box"],
                "relative_path": relative, "path": str(dest / relative), "size": list(size),
                "seed": seed * 100_003 + index, "preview_size": preview_size,
                "capture_time": (clock + dt.timedelta(seconds=17 * index)).isoformat(),
            })
        say(f"  rendering {files} frames of {size[0]}x{size[1]} from {len(sources)} photographs "
            f"in {build_workers} processes …")
        frames = []
        for outcome in pool.map(_build_task, specs):
            frames.append(outcome)
            say(f"    {outcome['relative_path']}  {_source_label(outcome['source'])}  "
                f"EV {outcome['exposure_ev']:+.2f}  orientation {outcome['orientation']}  {outcome['seconds']:.1f} s")
    codes = sorted(set(sitters[s["source"]] for s in specs))
    manifest = [
        f'name = "{SHOOT_NAME}"',
        f"date = {shoot_date.isoformat()}",
        'studio = "Benchmark"',
        'camera = "Likeness Studio Simulator"',
        "sitters = [" + ", ".join(f'"{code}"' for code in codes) + "]",
    ]
    (dest / "shoot.toml").write_text("\n".join(manifest) + "\n", encoding="utf-8")
    return {
        "path": dest,
        "files": [dest / f["relative_path"] for f in frames],
        "frames": frames,
        "sitters": codes,
        "sources": {_source_label(s): sitters[s] for s in sitters},
        "skipped_sources": skipped,
        "bytes": sum(f["bytes"] for f in frames),
        "seconds": time.perf_counter() - started,
    }
