"""Hot-folder benchmark: file complete → verdict on full-size DNGs, next to the bare decode.

    python -m bench.capture [--frames 200] [--burst 20] [--pace 1.0 2.0] [--seed 0] [--workers 1]
                            [--size 6000x4000] [--write mixed|rename|close] [--keep DIR] [--json PATH]

What it does, in one run:

1. Builds ``1 + --frames + --burst`` full-size Bayer DNGs from real photographs with
   ``bench.harness.build_shoot`` (every frame its own framing, exposure and white balance, so no
   two share a hash), into a source folder outside the watched one (set-up, reported but not
   counted). A fresh SQLite database and blob store under a temporary folder get the shoot's
   sitters, each with an ai_training release signed on the shoot date (``harness.fresh_workbench``).
2. Starts the watcher the CLI's ``likeness capture watch FOLDER --shoot NAME`` runs
   (``capture.watch.Watcher`` with the CLI's options: inotify, a warm pool of ``--workers``
   processes) on its own thread, on an empty copy of the shoot folder (shoot.toml and the sitter
   folders). The verdict time of a frame is the ``at`` of the watcher's first ``verdict`` event
   on it (its first look's, ``capture.look``; a revision once stored is counted apart, as is the
   time until the full ingest stored the frame, which runs behind at a lower CPU priority);
   the complete time is when the writer closed the file (close after write) or renamed it from
   its temporary ``.part`` name (rename), both ``time.time()`` on the same machine.
3. One warm-up frame (the pool worker's start, imports and model load: reported, not counted).
4. Paced phase: ``--frames`` frames, one every ``--pace LO HI`` seconds (uniform, seeded),
   written on a fixed schedule whether or not the watcher has kept up, alternately closed after
   writing and renamed from a temporary name (``--write``).
5. The floor, interleaved: the same file decoded alone, ``rawpy.imread(path).postprocess(
   **ingest.decode.RAW_POSTPROCESS)`` as the ingest decodes, in a warm 'spawn' worker of its own,
   timed inside the worker. A frame's floor is decoded as soon as the watcher has given every
   verdict so far and the next frame is not due before the decode would end, so that it neither
   slows the watcher nor is slowed by it; floors still owed when the paced phase ends (a watcher
   that never caught up) are decoded right after it, and counted as such.
6. Burst: ``--burst`` frames copied under temporary names, then all renamed at once; the time
   from the first rename to the last verdict (the queue drained) and each frame's latency.
7. Prints frames written, verdicts received, missed and doubled, latency p50 and p95 (nearest
   rank) next to the floor (min and median), their ratios against the targets (p95 ≤ 1.3× the
   floor, no frame missed, the burst drained), where the time goes (complete → ingest start:
   the completeness rules' quiet time and the staging copy; start → verdict: decode, faces,
   store, QA), how busy the machine was, and, as the last line of stdout, the figures as JSON
   (also written to ``--json PATH``).

A quick check: ``python -m bench.capture --frames 6 --burst 4`` (``--size 1536x1024`` for small
frames). Everything happens in a temporary folder that is removed afterwards, unless ``--keep DIR``
names an empty (or new) folder to keep it all in.
"""

from __future__ import annotations

# Only the standard library at module level: the spawned floor worker imports this module again
# (as __mp_main__) and must not pay for the workbench's imports.
import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import SHOOT_NAME, CpuMeter, build_shoot, cpu_model, frame_size, fresh_workbench, load_line, process_pool, stats, verdict

RATIO_TARGET = 1.3  # p95 of file complete → verdict over the bare decode of the same files
PERCENTILES = (50, 95)
SETTLE_S = 120.0  # how long the bench waits for the watcher without any new event before it calls frames missed
LINGER_S = 3.0  # quiet time after the last verdict, so that a frame taken twice would show


# -------------------------------------------------------------------------------------------------
# The floor worker's task (top level, so the spawned worker can unpickle it)
# -------------------------------------------------------------------------------------------------


def _decode_task(path: str, postprocess: dict[str, Any]) -> float:
    """Decode one file with rawpy alone; the seconds it took, timed inside the worker."""
    import rawpy

    started = time.perf_counter()
    with rawpy.imread(path) as raw:
        raw.postprocess(**postprocess)
    return time.perf_counter() - started


# -------------------------------------------------------------------------------------------------
# Figures
# -------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (a value that occurred)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_figures(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), **stats(values), **{f"p{q}": percentile(values, q) for q in PERCENTILES},
            "mean": statistics.fmean(values)}


# -------------------------------------------------------------------------------------------------
# The watcher and what it reports
# -------------------------------------------------------------------------------------------------


class Recorder:
    """The watcher's events as it writes them (its ``say``), by frame."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.events: list[dict[str, Any]] = []
        self.verdicts: dict[str, list[dict[str, Any]]] = {}  # first verdicts (a revision is not one)
        self.revised: dict[str, list[dict[str, Any]]] = {}  # verdicts the stored shot revised
        self.stored: dict[str, float] = {}  # when the full ingest stored the frame (confirmed or revised)
        self.starts: dict[str, float] = {}
        self.last_event = time.monotonic()

    def say(self, event: dict[str, Any]) -> None:
        with self.changed:
            self.events.append(event)
            self.last_event = time.monotonic()
            path = event.get("path")
            if event["kind"] == "verdict" and path:
                (self.revised if event.get("revised") else self.verdicts).setdefault(path, []).append(event)
                if event.get("stage") == "stored":  # judged on the stored shot: no first look came before
                    self.stored.setdefault(path, event["at"])
            elif event["kind"] == "info" and event.get("phase") == "stored" and path:
                self.stored.setdefault(path, event["at"])
            elif event["kind"] == "info" and event.get("phase") == "start" and path:
                self.starts.setdefault(path, event["at"])
            self.changed.notify_all()

    def judged(self, path: str) -> bool:
        with self.lock:
            return path in self.verdicts

    def wait_for(self, paths: list[str], settle_s: float, alive: Callable[[], bool], *, stored: bool = False) -> bool:
        """Until every one of ``paths`` has a verdict (True; with ``stored``, is stored), or the
        watcher died or gave no event for ``settle_s`` since the call (False)."""
        called = time.monotonic()
        seen = self.stored if stored else self.verdicts
        with self.changed:
            while not all(p in seen for p in paths):
                if not alive() or time.monotonic() - max(self.last_event, called) > settle_s:
                    return False
                self.changed.wait(timeout=0.5)
        return True

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["kind"] == "alert"]


class LiveWatcher:
    """``capture.watch.Watcher`` with the CLI's options, run on its own thread."""

    def __init__(self, workbench: Any, folder: Path, shoot: str, workers: int, recorder: Recorder) -> None:
        from capture.watch import Watcher, WatchOptions

        self.watcher = Watcher(workbench, folder, shoot, options=WatchOptions(workers=workers), say=recorder.say)
        self.options = self.watcher.options
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="capture-watch", daemon=True)

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the bench
            self.error = exc

    def start(self) -> LiveWatcher:
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.watcher.stop()
        self.thread.join()
        if self.error is not None:
            raise RuntimeError(f"the watcher died: {self.error!r}") from self.error


# -------------------------------------------------------------------------------------------------
# Writing frames as cameras and copy tools do
# -------------------------------------------------------------------------------------------------


def write_closed(source: Path, target: Path) -> float:
    """Written under its own name in camera-sized chunks, then closed; the time of the close."""
    with open(source, "rb") as data, open(target, "wb") as handle:
        shutil.copyfileobj(data, handle, 4 << 20)
    return time.time()


def write_renamed(source: Path, target: Path) -> float:
    """Copied under a temporary name, then renamed; the time of the rename."""
    temporary = target.with_name(target.name + ".part")
    shutil.copyfile(source, temporary)
    os.rename(temporary, target)
    return time.time()


def writer_for(mode: str, index: int) -> tuple[str, Callable[[Path, Path], float]]:
    how = mode if mode != "mixed" else ("close", "rename")[index % 2]
    return how, (write_closed if how == "close" else write_renamed)


# -------------------------------------------------------------------------------------------------
# The run
# -------------------------------------------------------------------------------------------------


class Frame:
    def __init__(self, source: Path, relative: str, phase: str) -> None:
        self.source, self.relative, self.phase = source, relative, phase
        self.how = ""
        self.complete_at: float | None = None
        self.late_s = 0.0  # how far behind its schedule the write started
        self.floor_s: float | None = None
        self.floor_when = ""  # "between" (in a gap, watcher idle) or "after" (after the paced phase)

    def record(self, recorder: Recorder) -> dict[str, Any]:
        got = recorder.verdicts.get(self.relative, [])
        started = recorder.starts.get(self.relative)
        latency = got[0]["at"] - self.complete_at if got and self.complete_at is not None else None
        stored_at = recorder.stored.get(self.relative)
        return {
            "path": self.relative, "phase": self.phase, "how": self.how, "verdicts": len(got),
            "latency_s": latency, "stage": got[0].get("stage") if got else None,
            "stored_s": None if stored_at is None or self.complete_at is None else stored_at - self.complete_at,
            "revised": bool(recorder.revised.get(self.relative)),
            "wait_s": None if started is None or self.complete_at is None else started - self.complete_at,
            "work_s": None if started is None or not got else got[0]["at"] - started,
            "floor_s": self.floor_s, "floor_when": self.floor_when or None, "late_s": self.late_s,
            "status": got[0].get("status") if got else None, "reason": got[0].get("reason") if got else None,
            "_complete_at": self.complete_at,
        }


def run_bench(args: argparse.Namespace, workspace: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from ingest.decode import RAW_POSTPROCESS

    shoot_date = dt.date.today()
    total = 1 + args.frames + args.burst
    say(f"building {total} DNGs of {args.size[0]}x{args.size[1]} (not timed) …")
    built = build_shoot(workspace / "source" / SHOOT_NAME, files=total, size=args.size,
                        preview_size=args.preview_size, seed=args.seed, shoot_date=shoot_date, say=say)
    say(f"  built {len(built['files'])} files, {built['bytes'] / 1e9:.2f} GB, in {built['seconds']:.1f} s")
    source_root: Path = built["path"]
    frames = [Frame(path, path.relative_to(source_root).as_posix(),
                    "warm-up" if i == 0 else ("paced" if i <= args.frames else "burst"))
              for i, path in enumerate(built["files"])]

    hot = workspace / "hot" / SHOOT_NAME
    hot.mkdir(parents=True)
    shutil.copyfile(source_root / "shoot.toml", hot / "shoot.toml")
    for code in built["sitters"]:
        (hot / code).mkdir()
    workbench = fresh_workbench(workspace / "data", workers=args.workers, sitters=built["sitters"],
                                release_signed_on=shoot_date)
    recorder = Recorder()
    postprocess = dict(RAW_POSTPROCESS)
    floor_pool = process_pool(1)
    live: LiveWatcher | None = None
    figures: dict[str, Any] = {}
    try:
        floor_pool.submit(_decode_task, str(frames[0].source), postprocess).result()  # the floor worker warm
        os.sync()
        live = LiveWatcher(workbench, hot, SHOOT_NAME, args.workers, recorder).start()
        meter = CpuMeter().start()

        # -- warm-up ---------------------------------------------------------------------------
        warm = frames[0]
        warm.how, write = writer_for(args.write, 0)
        warm.complete_at = write(warm.source, hot / warm.relative)
        if not recorder.wait_for([warm.relative], args.settle, live.alive):
            raise RuntimeError(f"no verdict on the warm-up frame {warm.relative}: {recorder.events[-5:]}")
        warm.floor_s = floor_pool.submit(_decode_task, str(hot / warm.relative), postprocess).result()
        say(f"warm-up frame: {recorder.verdicts[warm.relative][0]['at'] - warm.complete_at:.2f} s to its verdict "
            f"(worker start included); floor {warm.floor_s:.2f} s")

        # -- paced phase -----------------------------------------------------------------------
        paced = [f for f in frames if f.phase == "paced"]
        rng = random.Random(args.seed)
        gaps = [rng.uniform(*args.pace) for _ in paced]
        owed: deque[Frame] = deque()
        floor_estimate = warm.floor_s

        def idle(written: list[Frame]) -> bool:
            return all(recorder.judged(f.relative) for f in written)

        def decode_floor(frame: Frame, when: str) -> None:
            nonlocal floor_estimate
            frame.floor_s = floor_pool.submit(_decode_task, str(hot / frame.relative), postprocess).result()
            frame.floor_when = when
            floor_estimate = max(floor_estimate * 0.8, frame.floor_s)

        say(f"paced phase: {len(paced)} frames, one every {args.pace[0]:g}–{args.pace[1]:g} s …")
        paced_started = time.monotonic()
        due = paced_started
        written: list[Frame] = []
        for index, (frame, gap) in enumerate(zip(paced, gaps, strict=True), start=1):
            while True:
                now = time.monotonic()
                if now >= due:
                    break
                if owed and due - now >= 1.2 * floor_estimate + 0.1 and idle(written):
                    decode_floor(owed.popleft(), "between")
                    continue
                time.sleep(min(0.02, due - now))
            frame.late_s = max(0.0, time.monotonic() - due)
            frame.how, write = writer_for(args.write, index)
            frame.complete_at = write(frame.source, hot / frame.relative)
            written.append(frame)
            owed.append(frame)
            due += gap
            if index % 10 == 0 or index == len(paced):
                judged = sum(recorder.judged(f.relative) for f in written)
                say(f"  {index}/{len(paced)} written, {judged} judged, {len(owed)} floors owed")
        caught_up = recorder.wait_for([f.relative for f in paced], args.settle, live.alive)
        paced_s = time.monotonic() - paced_started
        say(f"  paced phase over after {paced_s:.1f} s ({'all judged' if caught_up else 'frames missing'}); "
            f"{len(owed)} floors decoded after it")
        while owed:
            decode_floor(owed.popleft(), "after")

        # -- burst -----------------------------------------------------------------------------
        burst = [f for f in frames if f.phase == "burst"]
        drained, drain_s = True, None
        if burst:
            say(f"burst: {len(burst)} frames at once …")
            for frame in burst:
                frame.how = "rename"
                shutil.copyfile(frame.source, hot / (frame.relative + ".part"))
            for frame in burst:
                os.rename(hot / (frame.relative + ".part"), hot / frame.relative)
                frame.complete_at = time.time()
            drained = recorder.wait_for([f.relative for f in burst], args.settle, live.alive)
            last = max((recorder.verdicts[f.relative][0]["at"] for f in burst if recorder.judged(f.relative)),
                       default=None)
            first = min(f.complete_at for f in burst if f.complete_at is not None)
            drain_s = None if last is None or not drained else last - first
            say(f"  {'drained' if drained else 'NOT drained'}"
                + (f" {drain_s:.1f} s after the first rename" if drain_s is not None else ""))
        # The full ingests behind the verdicts: every frame stored before the watcher stops.
        stored_all = recorder.wait_for([f.relative for f in frames], args.settle, live.alive, stored=True)
        stored_last = max(recorder.stored.values(), default=None)
        last_write = max(f.complete_at for f in frames if f.complete_at is not None)
        backlog_s = None if stored_last is None or not stored_all else stored_last - last_write
        say(f"  {'all stored' if stored_all else 'NOT all stored'}"
            + (f", the last {backlog_s:.1f} s after the last frame was complete" if backlog_s is not None else ""))
        time.sleep(LINGER_S)
        live.stop()
        pending = len(live.watcher.tracker.pending) + len(live.watcher.inflight)
        live = None
        floor_pool.shutdown(wait=True)  # the workers are reaped: their CPU time is counted
        load = meter.stop()
        figures = summarise(args, built, frames, recorder, workbench, load, paced_s=paced_s, drain_s=drain_s,
                            drained=drained and stored_all and pending == 0, backlog_s=backlog_s)
    finally:
        if live is not None:
            live.watcher.stop()
            live.thread.join(timeout=60)
        floor_pool.shutdown(wait=True, cancel_futures=True)
        workbench.close()
    return figures


def summarise(args: argparse.Namespace, built: dict[str, Any], frames: list[Frame], recorder: Recorder,
              workbench: Any, load: dict[str, Any], *, paced_s: float, drain_s: float | None,
              drained: bool, backlog_s: float | None) -> dict[str, Any]:
    import rawpy
    from sqlalchemy import select

    from likeness.models import Shot

    records = [frame.record(recorder) for frame in frames]
    paced_writes = sorted(r["_complete_at"] for r in records if r["phase"] == "paced" and r["_complete_at"] is not None)
    gaps = [b - a for a, b in zip(paced_writes, paced_writes[1:])]
    counted = [r for r in records if r["phase"] != "warm-up"]
    paced = [r for r in counted if r["phase"] == "paced"]
    burst = [r for r in counted if r["phase"] == "burst"]
    with workbench.db.unit_of_work() as session:
        stored = Counter(session.scalars(select(Shot.relative_path)).all())
    written_paths = {r["path"] for r in records}
    counted_paths = {r["path"] for r in counted}
    unexpected = sorted(p for p in recorder.verdicts if p not in written_paths)

    def values(rows: list[dict[str, Any]], key: str) -> list[float]:
        return [r[key] for r in rows if r[key] is not None]

    floors = values(paced, "floor_s")
    floor = stats(floors) if floors else None
    paced_latency = latency_figures(values(paced, "latency_s"))
    burst_latency = latency_figures(values(burst, "latency_s"))
    missed = [r["path"] for r in counted if r["verdicts"] == 0]
    doubled = [r["path"] for r in records if r["verdicts"] > 1] + [p for p, n in stored.items() if n > 1]
    ratio_p95 = paced_latency["p95"] / floor["median"] if floor and paced_latency["n"] else None
    ratio_p50 = paced_latency["p50"] / floor["median"] if floor and paced_latency["n"] else None
    per_frame = [r["latency_s"] / r["floor_s"] for r in paced if r["latency_s"] is not None and r["floor_s"]]
    statuses = Counter(str(r["status"]) for r in counted if r["verdicts"])
    # What one frame costs the watcher once it is its turn: the time from its start (or the verdict
    # before it, when it had to wait for that) to its verdict, verdicts in the order they came.
    service, previous = [], None
    for r in sorted((r for r in paced if r["latency_s"] is not None and r["wait_s"] is not None),
                    key=lambda r: r["latency_s"] + r["_complete_at"]):
        started, judged = r["_complete_at"] + r["wait_s"], r["_complete_at"] + r["latency_s"]
        service.append(judged - (started if previous is None else max(started, previous)))
        previous = judged
    warm = records[0]
    return {
        "frames": len(paced),
        "burst": len(burst),
        "pace_s": list(args.pace),
        "seed": args.seed,
        "workers": args.workers,
        "size": f"{args.size[0]}x{args.size[1]}",
        "write": args.write,
        "set_bytes": built["bytes"],
        "build_s": built["seconds"],
        "written": len(counted),
        "verdicts": sum(r["verdicts"] for r in counted),
        "missed": len(missed),
        "missed_paths": missed,
        "doubled": len(doubled),
        "doubled_paths": doubled,
        "unexpected_verdicts": unexpected,
        "stored_shots": sum(n for p, n in stored.items() if p in counted_paths),
        "statuses": dict(statuses),
        "alerts": len(recorder.alerts()),
        "warm_up": {"latency_s": warm["latency_s"], "floor_s": warm["floor_s"]},
        "paced_s": paced_s,
        "latency": paced_latency,
        "floor": floor,
        "floors": {"between": sum(r["floor_when"] == "between" for r in paced),
                   "after": sum(r["floor_when"] == "after" for r in paced)},
        "ratio_p95_to_floor": ratio_p95,
        "ratio_p50_to_floor": ratio_p50,
        "ratio_per_frame": latency_figures(per_frame),
        "ratio_target": RATIO_TARGET,
        "ratio_pass": ratio_p95 is not None and ratio_p95 <= RATIO_TARGET,
        "wait": latency_figures(values(paced, "wait_s")),
        "work": latency_figures(values(paced, "work_s")),
        "late": latency_figures(values(paced, "late_s")),
        "service": latency_figures(service),
        "offered_interval": latency_figures(gaps),
        "burst_latency": burst_latency,
        "stored_latency": latency_figures(values(paced, "stored_s")),
        "burst_stored_latency": latency_figures(values(burst, "stored_s")),
        "first_stages": dict(Counter(str(r["stage"]) for r in counted if r["verdicts"])),
        "revised": sum(r["revised"] for r in counted),
        "revised_paths": [r["path"] for r in counted if r["revised"]],
        "backlog_s": backlog_s,
        "drain_s": drain_s,
        "drained": drained,
        "missed_pass": not missed and not doubled,
        "load": load,
        "per_frame": [{k: v for k, v in r.items() if not k.startswith("_")} for r in records],
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "rawpy": rawpy.__version__,
            "libraw": ".".join(str(v) for v in rawpy.libraw_version),
        },
    }


def print_report(figures: dict[str, Any]) -> None:
    def span(f: dict[str, Any]) -> str:
        if not f.get("n"):
            return "none"
        return f"p50 {f['p50']:.2f} s, p95 {f['p95']:.2f} s (min {f['min']:.2f}, max {f['max']:.2f}, n {f['n']})"

    machine = figures["machine"]
    print(f"Hot-folder benchmark — {figures['frames']} paced frames (one every {figures['pace_s'][0]:g}–"
          f"{figures['pace_s'][1]:g} s) and a burst of {figures['burst']}, DNGs of {figures['size']}, "
          f"{figures['workers']} worker(s), writes: {figures['write']}")
    print(f"  {machine['cpu']}, {machine['cpus']} CPUs; Python {machine['python']}, rawpy {machine['rawpy']} "
          f"(LibRaw {machine['libraw']})")
    warm = figures["warm_up"]
    if warm["latency_s"] is not None:
        print(f"  warm-up frame (not counted): {warm['latency_s']:.2f} s to its verdict, floor {warm['floor_s']:.2f} s")
    print(f"  frames written {figures['written']}, verdicts {figures['verdicts']}, missed {figures['missed']}, "
          f"doubled {figures['doubled']}, shots stored {figures['stored_shots']}; "
          f"statuses {figures['statuses']}, alerts {figures['alerts']}")
    floor = figures["floor"]
    floors = figures["floors"]
    if floor is not None:
        print(f"  floor, bare decode of the same files: min {floor['min']:.2f} s, median {floor['median']:.2f} s "
              f"({floors['between']} decoded between frames, {floors['after']} after the paced phase)")
    print(f"  paced, file complete → verdict: {span(figures['latency'])}; first verdicts by stage "
          f"{figures['first_stages']} (look: the first look's; stored: the stored shot's), "
          f"revised once stored: {figures['revised']}")
    print(f"    complete → ingest start (quiet time + staging copy): {span(figures['wait'])}")
    print(f"    ingest start → verdict (queued for the worker, decode, faces, store, QA): {span(figures['work'])}")
    service, offered = figures["service"], figures["offered_interval"]
    if service.get("n"):
        against = f", against a frame written every {offered['median']:.2f} s (median)" if offered.get("n") else ""
        print(f"    one frame's turn at the watcher (its start, or the verdict before it → its verdict): "
              f"median {service['median']:.2f} s{against}")
    late = figures["late"]
    if late.get("n") and late["max"] > 0.05:
        print(f"    writes behind their schedule: max {late['max']:.2f} s")
    ratio = figures["ratio_p95_to_floor"]
    if ratio is not None:
        print(f"  p50 / floor median {figures['ratio_p50_to_floor']:.2f}; p95 / floor median {ratio:.2f}; "
              f"target ≤ {figures['ratio_target']:.1f}: {verdict(figures['ratio_pass'])}")
    print(f"  file complete → stored (the full ingest, at lower priority): paced {span(figures['stored_latency'])}; "
          f"burst {span(figures['burst_stored_latency'])}"
          + (f"; the last frame stored {figures['backlog_s']:.1f} s after the last write" if figures["backlog_s"] is not None else ""))
    print(f"  no frame missed or doubled over {figures['written']} frames: {verdict(figures['missed_pass'])}")
    if figures["burst"]:
        drain = figures["drain_s"]
        print(f"  burst of {figures['burst']}: " + (f"drained in {drain:.1f} s" if drain is not None else "not drained")
              + f"; latency {span(figures['burst_latency'])}; target: drains: {verdict(figures['drained'])}")
    print(f"  {load_line(figures['load'])}", flush=True)


# -------------------------------------------------------------------------------------------------
# Command line
# -------------------------------------------------------------------------------------------------


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.capture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=_count, default=200, help="frames of the paced phase (default 200)")
    parser.add_argument("--burst", type=_count, default=20, help="frames dropped at once afterwards (default 20)")
    parser.add_argument("--pace", type=float, nargs=2, default=(1.0, 2.0), metavar=("LO", "HI"),
                        help="seconds between paced frames, drawn uniformly (default 1.0 2.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the frames and the pace")
    parser.add_argument("--workers", type=_count, default=1,
                        help="the watcher's warm worker processes, as `capture watch --workers` (default 1)")
    parser.add_argument("--size", type=frame_size, default=(6000, 4000), help="sensor WIDTHxHEIGHT (default 6000x4000)")
    parser.add_argument("--preview-size", type=int, default=1024,
                        help="long edge of the JPEG preview embedded in each DNG (default 1024)")
    parser.add_argument("--write", choices=["mixed", "close", "rename"], default="mixed",
                        help="paced frames closed after writing, renamed from a temporary name, or in turn")
    parser.add_argument("--settle", type=float, default=SETTLE_S, metavar="S",
                        help=f"frames are missed when the watcher gives no event for S seconds (default {SETTLE_S:g})")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR (new or empty) and keep everything")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    args.pace = tuple(args.pace)
    if not 0 < args.pace[0] <= args.pace[1]:
        parser.error("--pace LO HI: 0 < LO <= HI")
    if args.frames + args.burst < 1:
        parser.error("nothing to time: give --frames or --burst")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.keep:
        workspace = args.keep.resolve()
        if workspace.exists() and any(workspace.iterdir()):
            say(f"--keep {workspace}: the folder is not empty")
            return 2
        workspace.mkdir(parents=True, exist_ok=True)
    else:
        workspace = Path(tempfile.mkdtemp(prefix="likeness-bench-capture-"))
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's info lines; the workers inherit it
    try:
        say(f"workspace {workspace}")
        figures = run_bench(args, workspace, say)
    finally:
        if not args.keep:
            shutil.rmtree(workspace, ignore_errors=True)
    print_report(figures)
    text = json.dumps(figures, default=str)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text, flush=True)
    return 0 if figures["missed_pass"] and figures["drained"] and figures["ratio_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
