"""The live hot folder: watchdog's observer (inotify on Linux, polling for network shares) feeds
the completeness rules (capture.tracker); each complete frame is staged, then both looked at
(capture.look, a warm worker of its own) and ingested (the warm ingest pool, at a lower CPU
priority), and judged (capture.verdict) in order of arrival. The first look's verdict is
reported at once; the stored shot's verdict confirms it (an info line) or revises it (an alert
and a new verdict).

Every fault is an alert and the watcher goes on: the folder vanishing (it waits for it to come
back), a full disk (the frame is tried again), a file deleted or renamed while it is read, a
truncated file, an unknown sitter folder, a camera clock far off. Nothing is written before a
frame is whole, and every write is the batch ingest's own, keyed by content: killed at any point
and started again, the start-up scan takes what it had not stored, and nothing twice.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from capture.feed import Feeder, Staged, StageError, not_a_frame
from capture.look import Look
from capture.tracker import Pending, Tracker
from capture.verdict import FrameVerdict, LiveJudge
from ingest.coordinator import IngestSummary
from ingest.frame import FrameFailure, FrameJob
from likeness.errors import LikenessError
from likeness.workbench import Workbench

log = logging.getLogger(__name__)

ACTOR = "capture"
RETRY_S = 3.0  # a frame that failed for a passing reason (disk full, database busy) is tried again after this
RESCAN_S = 30.0  # a full scan now and then takes anything whose events were lost
_FAILURE_WORDS = {
    "truncated": "the file is cut short (an interrupted transfer?) — copy it again",
    "corrupt": "the file is damaged — copy it again from the card",
    "empty": "the file is empty — copy it again from the card",
    "unsupported_format": "a format LibRaw cannot decode (or a RAW cut short) — copy it again",
    "not_an_image": "not an image or RAW file",
    "too_large": "the image is larger than the pixel limit",
    "unreadable": "the file cannot be read",
}


@dataclass(frozen=True)
class WatchOptions:
    poll: bool = False  # PollingObserver: network shares and other filesystems without inotify
    poll_interval_s: float = 0.5
    quiet_s: float = 0.2
    stable_s: float = 1.0
    give_up_s: float = 5.0
    workers: int = 1


def events_path(workbench: Workbench, shoot: str) -> Path:
    """Where the watcher of ``shoot`` writes its verdicts and alerts, one JSON object a line."""
    return workbench.settings.data_dir / "capture" / f"{shoot}.events.jsonl"


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events written so far (a last line still being written is left out)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


class EventLog:
    def __init__(self, path: Path, say: Callable[[dict[str, Any]], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.say = path, say

    def write(self, kind: str, message: str, **fields: Any) -> None:
        event = {"at": time.time(), "kind": kind, "message": message, **fields}
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:  # a full disk must not stop the alerts on the terminal
            log.warning("cannot write %s: %s", self.path, exc)
        self.say(event)


class _Handler(FileSystemEventHandler):
    def __init__(self, events: queue.Queue[FileSystemEvent]) -> None:
        self.events = events

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.events.put(event)


@dataclass
class _InFlight:
    entry: Pending
    staged: Staged
    job: FrameJob
    future: Future  # the full ingest
    summary: IngestSummary
    look: Future | None  # the first look; None once it is taken (or when it was reported before)


@dataclass
class WatchStats:
    verdicts: int = 0
    alerts: int = 0


class Watcher:
    def __init__(self, workbench: Workbench, folder: Path, shoot: str, *, options: WatchOptions = WatchOptions(),
                 say: Callable[[dict[str, Any]], None] = lambda event: None) -> None:
        self.workbench, self.root, self.options = workbench, Path(folder).resolve(), options
        self.log = EventLog(events_path(workbench, shoot), say)
        self.feeder = Feeder(workbench, self.root, shoot, workers=options.workers, actor=ACTOR)
        with workbench.db.unit_of_work() as session:
            self.judge = LiveJudge(session, workbench.blobs, self.feeder.shoot_id)
        self.tracker = Tracker(quiet_s=options.quiet_s, stable_s=options.stable_s, give_up_s=options.give_up_s,
                               close_events=not options.poll)
        self.events: queue.Queue[FileSystemEvent] = queue.Queue()
        self.inflight: deque[_InFlight] = deque()
        # First-look verdicts reported whose frame is not stored yet (by content hash): a frame
        # tried again after a passing fault is not looked at, nor announced, twice.
        self.first: dict[str, FrameVerdict] = {}
        self.stats = WatchStats()
        self.stop_event = threading.Event()
        self._observer: Any = None
        self._present = True
        self._next_scan = 0.0

    # -- the observer --------------------------------------------------------------------------

    def _start_observer(self) -> None:
        observer = (PollingObserver(timeout=self.options.poll_interval_s) if self.options.poll else Observer())
        observer.schedule(_Handler(self.events), str(self.root), recursive=True)
        observer.start()
        self._observer = observer

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def _route(self, event: FileSystemEvent, now: float) -> None:
        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, FileMovedEvent):
            dest = Path(os.fsdecode(event.dest_path))
            inside = dest.is_relative_to(self.root) and not_a_frame(self.root, dest) is None
            self.tracker.moved(src, dest if inside else None, now)
            return
        if isinstance(event, FileDeletedEvent):
            if self.tracker.deleted(src) and src.is_relative_to(self.root):
                relative = self._relative(src)
                self.alert(None, f"{relative}: deleted before it was read — nothing stored", kind="vanished", path=relative)
            return
        if not_a_frame(self.root, src) is not None:
            return
        if isinstance(event, FileCreatedEvent):
            self.tracker.created(src, now)
        elif isinstance(event, FileOpenedEvent):
            self.tracker.opened(src, now)
        elif isinstance(event, FileClosedEvent):
            self.tracker.closed(src, now, wrote=True)
        elif isinstance(event, FileClosedNoWriteEvent):
            self.tracker.closed(src, now, wrote=False)
        elif isinstance(event, FileModifiedEvent):
            self.tracker.modified(src, now)
            if self.options.poll:
                self.tracker.found(src, now, "poll")

    # -- the loop ------------------------------------------------------------------------------

    def scan(self, now: float) -> None:
        """Every frame in the folder, oldest first, not yet taken at its present content."""
        found = []
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                path = Path(directory) / name
                if not_a_frame(self.root, path) is None:
                    try:
                        found.append((path.stat().st_mtime_ns, path))
                    except OSError:
                        continue
        for _mtime, path in sorted(found):
            self.tracker.found(path, now, "poll" if self.options.poll else "scan")

    def catch_up(self) -> None:
        """Take what is already in the folder and not stored (files that arrived while it was down)."""
        self._mark_stored()
        self.scan(time.monotonic())

    def _mark_stored(self) -> None:
        """Files already stored with their content are not taken again (without hashing them all,
        a file whose path and size match a stored shot of the shoot is checked by hash)."""
        from sqlalchemy import select

        from likeness.models import Shot

        with self.workbench.db.unit_of_work() as session:
            stored = dict(session.execute(select(Shot.relative_path, Shot.file_size).where(Shot.shoot_id == self.feeder.shoot_id)).all())
        for relative, size in stored.items():
            path = self.root / relative
            sig = _sig(path)
            if sig is not None and sig[1] == size:
                self.tracker.done[path] = sig

    def run(self, *, until: Callable[[], bool] | None = None) -> WatchStats:
        self.log.write("info", f"watching {self.root} for shoot {self.feeder.folder.name}", folder=str(self.root))
        self._start_observer()
        self.catch_up()
        self._next_scan = time.monotonic() + RESCAN_S
        try:
            while not self.stop_event.is_set() and not (until is not None and until()):
                self.step()
        finally:
            self._stop_observer()
            self.drain()
            self.feeder.close()
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()

    def step(self, wait_s: float = 0.05) -> None:
        try:
            event = self.events.get(timeout=wait_s)
            now = time.monotonic()
            self._route(event, now)
            while True:
                self._route(self.events.get_nowait(), now)
        except queue.Empty:
            pass
        now = time.monotonic()
        if not self._check_folder(now):
            return
        if now >= self._next_scan:
            self.scan(now)
            self._next_scan = now + RESCAN_S
        for entry in self.tracker.ready(now):
            self._start(entry, now)
        self._first_looks()
        self._finish()

    def drain(self) -> None:
        while self.inflight:
            self.inflight[0].future.exception()
            self._first_looks()
            self._finish()

    def _check_folder(self, now: float) -> bool:
        present = self.root.is_dir()
        if present == self._present:
            return present
        self._present = present
        if not present:
            self._stop_observer()
            self.alert(None, f"the watched folder {self.root} is gone (unmounted or deleted?) — waiting for it to come back",
                       kind="folder")
            return False
        self.log.write("info", f"the watched folder {self.root} is back; catching up")
        try:
            self.feeder.refresh()
            self._start_observer()
            self.scan(now)
        except (OSError, LikenessError) as exc:
            self._present = False
            self.alert(None, f"the folder {self.root} came back but cannot be watched: {exc}", kind="folder")
        return self._present

    # -- one frame -----------------------------------------------------------------------------

    def alert(self, entry: Pending | None, message: str, *, kind: str, once: bool = False, **fields: Any) -> None:
        if entry is not None and once:
            if kind in entry.announced:
                return
            entry.announced.add(kind)
        self.stats.alerts += 1
        self.log.write("alert", message, fault=kind, **fields)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _start(self, entry: Pending, now: float) -> None:
        relative = self._relative(entry.path)
        try:
            if self.feeder.manifest_changed():
                self.feeder.refresh()
            staged = self.feeder.stage(entry.path)
        except StageError as error:
            self._stage_failed(entry, error, now)
            return
        except LikenessError as error:  # shoot.toml or frames.csv cannot be used right now
            self.alert(entry, f"{relative}: {error} — the frame waits until this is fixed", kind="manifest",
                       once=True, path=relative)
            self.tracker.again(entry, now, RETRY_S)
            return
        self.log.write("info", f"{relative}: complete, ingesting", path=relative, phase="start")
        summary = IngestSummary(shoot=self.feeder.folder.name, shoot_id=self.feeder.shoot_id)
        try:
            job = self.feeder.plan(staged, summary)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a moment
            self.feeder.discard(staged.copy)
            self.alert(entry, f"{relative}: cannot be checked against the store ({exc}) — trying again", kind="store",
                       once=True, path=relative)
            self.tracker.again(entry, now, RETRY_S)
            return
        if job is None:
            self._not_decoded(entry, staged, summary)
            return
        self.tracker.busy.add(entry.path)
        look = None if staged.sha256 in self.first else self.feeder.look(job)
        self.inflight.append(_InFlight(entry, staged, job, self.feeder.submit(job), summary, look))

    def _stage_failed(self, entry: Pending, error: StageError, now: float) -> None:
        relative = self._relative(entry.path)
        if error.kind == "vanished":
            self.alert(entry, f"{relative}: deleted before it was read — nothing stored", kind="vanished", path=relative)
        elif error.kind == "moved":
            self.alert(entry, f"{relative}: renamed while it was read — taken again under its new name", kind="moved",
                       path=relative)
            self.tracker.found(entry.path, now)  # still there? (a rename over itself) then take it again
        elif error.kind == "changed":
            self.tracker.found(entry.path, now)  # still being written: the rules wait again
        elif error.kind == "disk":
            self.alert(entry, f"{error.message} — the disk is full; free space and it is taken again", kind="disk",
                       once=True, path=relative)
            self.tracker.again(entry, now, RETRY_S)
        else:
            self.alert(entry, error.message, kind=error.kind, once=True, path=relative)
            self.tracker.again(entry, now, RETRY_S)

    def _not_decoded(self, entry: Pending, staged: Staged, summary: IngestSummary) -> None:
        """Stored already, repeated, or empty: what the batch ingest records, nothing decoded."""
        self.feeder.discard(staged.copy)
        self.tracker.done[entry.path] = staged.signature
        if summary.already_stored:
            self.log.write("info", f"{staged.relative_path}: already stored (same content)", path=staged.relative_path)
        for relative, kind, reason in summary.failed:
            self.alert(entry, f"{relative}: {_FAILURE_WORDS.get(kind, reason)} ({reason})", kind=kind, path=relative)

    def _first_looks(self) -> None:
        """Report first looks in order of arrival, each as soon as it and those before it are in."""
        for flight in self.inflight:
            if flight.look is None:
                continue
            if not flight.look.done():
                return
            self._first_look(flight)

    def _first_look(self, flight: _InFlight) -> None:
        look, flight.look = flight.look, None
        assert look is not None
        try:
            outcome = look.result()
        except Exception as exc:  # noqa: BLE001 - the full ingest still judges the frame
            log.warning("%s: first look failed: %s", flight.staged.relative_path, exc)
            return
        if not isinstance(outcome, Look):  # a file that does not decode: the full ingest reports it
            return
        staged = flight.staged
        try:
            with self.workbench.db.unit_of_work() as session:
                person = self.feeder.person(session, staged.sitter)
                verdict = self.judge.first_look(session, outcome, staged.relative_path, staged.sitter, person)
        except Exception as exc:  # noqa: BLE001 - the database away for a moment: the stored verdict follows
            log.warning("%s: first look not judged: %s", staged.relative_path, exc)
            return
        self.first[staged.sha256] = verdict
        self._report(verdict)

    def _finish(self) -> None:
        while self.inflight and self.inflight[0].future.done():
            flight = self.inflight.popleft()
            if flight.look is not None and flight.look.done():
                self._first_look(flight)
            elif flight.look is not None:  # the full ingest came first: its verdict is the one
                flight.look.cancel()
            self.tracker.busy.discard(flight.entry.path)
            try:
                self._complete(flight)
            finally:
                self.feeder.discard(flight.staged.copy)

    def _complete(self, flight: _InFlight) -> None:
        entry, staged, now = flight.entry, flight.staged, time.monotonic()
        relative = staged.relative_path
        try:
            outcome = flight.future.result()
        except OSError as exc:
            words = "the disk is full" if exc.errno in (27, 28, 122) else f"it could not be stored ({exc.strerror or exc})"
            self.alert(entry, f"{relative}: {words} — nothing stored; it is taken again shortly", kind="disk",
                       once=True, path=relative)
            self.tracker.again(entry, now, RETRY_S)
            return
        except Exception as exc:  # noqa: BLE001 - a worker that died, say; the frame is tried again
            self.alert(entry, f"{relative}: the ingest failed ({type(exc).__name__}: {exc}) — trying again",
                       kind="worker", once=True, path=relative)
            self.tracker.again(entry, now, RETRY_S)
            return
        if isinstance(outcome, FrameFailure) and not entry.final:
            self.tracker.hold(entry, staged.signature, now)  # perhaps still being written
            return
        try:
            self.feeder.write(staged, outcome, flight.summary)
            verdict = self._judge(staged)
        except Exception as exc:  # noqa: BLE001 - nothing was committed: the unit of work rolled back
            self.alert(entry, f"{relative}: could not be written to the database ({exc}) — trying again",
                       kind="store", once=True, path=relative)
            self.tracker.again(entry, now, RETRY_S)
            return
        self.tracker.done[entry.path] = staged.signature
        first = self.first.pop(staged.sha256, None)
        if isinstance(outcome, FrameFailure):
            self.alert(entry, f"{relative}: {_FAILURE_WORDS.get(outcome.kind, outcome.reason)} ({outcome.reason})",
                       kind=outcome.kind, path=relative)
            return
        if verdict is None:  # another ingest stored the same content meanwhile
            self.log.write("info", f"{relative}: already stored (same content)", path=relative)
            return
        if first is None:
            self._report(verdict)
        elif first.same_call(verdict):
            self.log.write("info", f"{relative}: stored; verdict confirmed", path=relative, phase="stored",
                           shot_id=verdict.shot_id)
        else:
            self.alert(None, f"{relative}: verdict revised once stored — {verdict.line()}", kind="revised",
                       path=relative, sitter=verdict.sitter)
            self._report(verdict, revised=True)

    def _judge(self, staged: Staged) -> FrameVerdict | None:
        with self.workbench.db.unit_of_work() as session:
            shot, person = self.feeder.stored_shot(session, staged.sha256)
            if shot is None or shot.relative_path != staged.relative_path:
                return None
            return self.judge.judge(session, shot, person, ACTOR)

    def _report(self, verdict: FrameVerdict, *, revised: bool = False) -> None:
        if not revised:
            self.stats.verdicts += 1
        fields = verdict.as_dict()
        self.log.write("verdict", verdict.line(), path=verdict.relative_path, revised=revised,
                       **{k: v for k, v in fields.items() if k != "relative_path"})
        if verdict.words and not revised:
            self.alert(None, verdict.line(), kind="reshoot" if "reshoot" in verdict.words else "consent",
                       path=verdict.relative_path, sitter=verdict.sitter)


def _sig(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns
