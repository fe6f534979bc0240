"""Where one ingest's time goes, step by step (`python -m bench.ingest --profile K`)."""

from __future__ import annotations

# Only the standard library at module level: spawned workers import this module again.
import datetime as dt
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.ingest import ACTOR, _floor_task, _spawn_pool, open_workbench

# (step, module, attribute, parent step or None). Each is wrapped with a timer for the profiled
# run only and restored afterwards; a dozen timers per frame cost nothing measurable (cProfile,
# which traces every Python call, would inflate the Python-heavy steps such as imports).
_STEP_TIMERS: tuple[tuple[str, str, str, str | None], ...] = (
    ("hash (SHA-256 of the file)", "ingest.coordinator", "_hash", None),
    ("decode_frame", "ingest.frame", "decode_frame", None),
    ("TIFF extent check (tifffile)", "ingest.decode", "_check_tiff_extent", "decode_frame"),
    ("EXIF: exifread", "ingest.decode", "read_exif", "decode_frame"),
    ("EXIF: LibRaw fill", "ingest.decode", "fill_from_libraw", "decode_frame"),
    ("embedded preview: extract + JPEG decode", "ingest.decode", "_embedded_preview", "decode_frame"),
    ("store original (copy + hash check + fsync)", "likeness.blobstore:BlobStore", "put_file", None),
    ("preview (resize + JPEG + store)", "ingest.frame", "_store_preview", None),
    ("find_faces", "ingest.frame", "find_faces", None),
    ("MediaPipe import + graph build", "faces.detect", "_graph", "find_faces"),
    ("align + PNG encode + store crop", "ingest.frame", "_store_face", None),
    ("ffhq_quad + align_face (warp)", "ingest.frame", "align_face", "align + PNG encode + store crop"),
    ("PNG encode of the crop", "PIL.Image:Image", "save", "align + PNG encode + store crop"),
    ("store crop", "likeness.blobstore:BlobStore", "put_bytes", "align + PNG encode + store crop"),
    ("DB: batch rows (_write_batch)", "ingest.coordinator", "_write_batch", None),
    ("DB: shoot row + known hashes", "ingest.coordinator", "_upsert_shoot", None),
    ("DB: shoot row + known hashes", "ingest.coordinator", "_known_hashes", None),
    ("DB: transactions (begin + commit)", "likeness.db:Database", "unit_of_work", None),
)


class _StepClock:
    """Accumulates wall and CPU seconds per step while the wrapped functions run."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # step -> [wall, cpu, calls]
        self.active: list[str] = []

    def add(self, step: str, wall: float, cpu: float) -> None:
        entry = self.totals.setdefault(step, [0.0, 0.0, 0])
        entry[0] += wall
        entry[1] += cpu
        entry[2] += 1

    def wrap(self, step: str, parent: str | None, fn: Any) -> Any:
        """``fn`` timed as ``step``; with a parent step, only the calls made inside that step."""
        import functools

        clock = self

        if fn.__name__ == "unit_of_work":  # a context manager: time its enter and exit, not the body
            @functools.wraps(fn)
            def transaction(*args: Any, **kwargs: Any) -> Any:
                return _TimedContext(clock, step, fn(*args, **kwargs))

            return transaction

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if step in clock.active or (parent is not None and parent not in clock.active):
                return fn(*args, **kwargs)  # a recursive call, or one made outside the parent step
            if fn.__name__ == "save":  # PIL's Image.save: only the crop's PNG encode
                fmt = kwargs.get("format") or (args[2] if len(args) > 2 else None)
                if str(fmt).upper() != "PNG":
                    return fn(*args, **kwargs)
            clock.active.append(step)
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                clock.add(step, time.perf_counter() - wall, time.process_time() - cpu)
                clock.active.pop()

        return timed


class _TimedContext:
    """A unit of work whose begin and commit are timed; inside another timed step (a lookup that
    opens its own transaction) that step already counts them."""

    def __init__(self, clock: _StepClock, step: str, context: Any) -> None:
        self.clock, self.step, self.context = clock, step, context

    def _timed(self, action: Any) -> Any:
        if self.clock.active:
            return action()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return action()
        finally:
            self.clock.add(self.step, time.perf_counter() - wall, time.process_time() - cpu)

    def __enter__(self) -> Any:
        return self._timed(self.context.__enter__)

    def __exit__(self, *exc: Any) -> Any:
        return self._timed(lambda: self.context.__exit__(*exc))


def _instrument(clock: _StepClock) -> list[tuple[Any, str, Any]]:
    """Wrap every step's function; returns what to restore."""
    import importlib

    restore = []
    for step, target, attribute, parent in _STEP_TIMERS:
        module_name, _, class_name = target.partition(":")
        owner = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
        original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
        restore.append((owner, attribute, original))
        setattr(owner, attribute, clock.wrap(step, parent, original))
    return restore


def _startup_task(module: str) -> float:
    import importlib

    importlib.import_module(module)
    return time.process_time()


def _worker_startup(module: str) -> dict[str, float]:
    """Wall time from creating a one-worker spawn pool to having ``module`` imported in it."""
    started = time.perf_counter()
    with _spawn_pool(1) as pool:
        cpu = pool.submit(_startup_task, module).result()
        wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": cpu}


def run_profile(shoot: dict[str, Any], root: Path, count: int, shoot_date: dt.date) -> dict[str, Any]:
    """Ingest ``count`` frames in this process (workers=0) with a timer on every step; also decode
    the same frames with rawpy alone, and time a worker's start-up for each."""
    from ingest.api import ingest_folder
    from ingest.decode import RAW_POSTPROCESS

    files = shoot["files"][:count]
    folder = root / "shoot"
    for path in files:
        target = folder / path.relative_to(shoot["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    shutil.copyfile(shoot["path"] / "shoot.toml", folder / "shoot.toml")

    startup = {"floor": _worker_startup("rawpy"), "ingest": _worker_startup("ingest.frame")}

    os.sync()
    floor_wall, floor_cpu = 0.0, 0.0
    for path in files:
        wall, cpu = time.perf_counter(), time.process_time()
        _floor_task(str(path), dict(RAW_POSTPROCESS))
        floor_wall += time.perf_counter() - wall
        floor_cpu += time.process_time() - cpu

    workbench = open_workbench(root / "data", workers=0, sitters=shoot["sitters"], shoot_date=shoot_date)
    clock = _StepClock()
    restore = _instrument(clock)
    try:
        os.sync()
        wall, cpu = time.perf_counter(), time.process_time()
        summary = ingest_folder(workbench=workbench, path=folder, actor=ACTOR, workers=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        for owner, attribute, original in reversed(restore):
            setattr(owner, attribute, original)
        workbench.close()

    def seconds(step: str) -> tuple[float, float]:
        wall_s, cpu_s, _calls = clock.totals.get(step, (0.0, 0.0, 0))
        return wall_s, cpu_s

    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for step, _target, _attribute, parent in _STEP_TIMERS:
        if step in seen:
            continue
        seen.add(step)
        step_wall, step_cpu = seconds(step)
        steps.append({"step": step, "wall_s": step_wall, "cpu_s": step_cpu, "parent": parent})
    by_name = {s["step"]: s for s in steps}
    # What decode_frame spends outside its timed parts is LibRaw: open, unpack and postprocess.
    decode = by_name["decode_frame"]
    parts = [s for s in steps if s["parent"] == "decode_frame"]
    libraw = {
        "step": "LibRaw open + unpack + postprocess (the rest)",
        "wall_s": decode["wall_s"] - sum(s["wall_s"] for s in parts),
        "cpu_s": decode["cpu_s"] - sum(s["cpu_s"] for s in parts),
        "parent": "decode_frame",
    }
    steps.insert(steps.index(parts[-1]) + 1, libraw)
    # The MediaPipe import and graph build are paid once per worker process, not per frame.
    graph = by_name["MediaPipe import + graph build"]
    find = by_name["find_faces"]
    find["wall_s"] -= graph["wall_s"]
    find["cpu_s"] -= graph["cpu_s"]
    graph["parent"], graph["once"] = None, True
    top = [s for s in steps if s["parent"] is None]
    steps.append({"step": "everything else", "wall_s": max(0.0, wall - sum(s["wall_s"] for s in top)),
                  "cpu_s": max(0.0, cpu - sum(s["cpu_s"] for s in top)), "parent": None})
    return {
        "frames": len(files),
        "accepted": len(summary.accepted),
        "wall_s": wall,
        "cpu_s": cpu,
        "floor_wall_s": floor_wall,
        "floor_cpu_s": floor_cpu,
        "worker_startup": startup,
        "steps": steps,
    }



def print_profile(console: Any, profile: dict[str, Any]) -> None:
    from rich.table import Table

    frames = profile["frames"]
    floor_cpu = profile["floor_cpu_s"] / frames
    table = Table(
        title=f"Where an ingest's time goes — {frames} frames ingested in this process (workers=0), per frame",
        caption=(
            f"rawpy-only decode of the same frames: {floor_cpu:.2f} CPU s, {profile['floor_wall_s'] / frames:.2f} s "
            f"wall per frame; whole ingest: {profile['cpu_s'] / frames:.2f} CPU s, {profile['wall_s'] / frames:.2f} s "
            f"wall per frame ({profile['accepted']}/{frames} accepted). CPU s: all threads of the process "
            f"(LibRaw decodes with OpenMP threads)."
        ),
    )
    table.add_column("step")
    table.add_column("CPU s", justify="right")
    table.add_column("wall s", justify="right")
    table.add_column("CPU × rawpy decode", justify="right")
    for step in profile["steps"]:
        label = ("   " + step["step"]) if step["parent"] else step["step"]
        if step.get("once"):
            continue
        cpu, wall = step["cpu_s"] / frames, step["wall_s"] / frames
        table.add_row(label, f"{cpu:.3f}", f"{wall:.3f}", f"{cpu / floor_cpu:.3f}")
    table.add_section()
    for step in profile["steps"]:
        if step.get("once"):
            table.add_row(f"{step['step']} (once per worker)", f"{step['cpu_s']:.2f}", f"{step['wall_s']:.2f}", "")
    startup = profile["worker_startup"]
    table.add_row("worker start-up, floor: spawn + import rawpy (once per worker)",
                  f"{startup['floor']['cpu_s']:.2f}", f"{startup['floor']['wall_s']:.2f}", "")
    table.add_row("worker start-up, ingest: spawn + import ingest.frame (once per worker)",
                  f"{startup['ingest']['cpu_s']:.2f}", f"{startup['ingest']['wall_s']:.2f}", "")
    console.print(table)


