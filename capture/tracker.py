"""When is a file in the hot folder complete? The rules, fed with watchdog's events:

- closed after writing (inotify's IN_CLOSE_WRITE), or renamed inside the folder (a copy tool's
  temp name + rename): complete once no writer holds it open and nothing changed for ``quiet_s``
  (a tool that closes and opens again within that time is waited for);
- moved in from elsewhere, found by the start-up scan, or seen by polling (a network share has
  no close events): complete once its size and mtime have not changed for ``stable_s``, and, on
  inotify, no writer we saw open it still holds it.

A file that is complete by these rules but does not decode is held while it stays unchanged, and
only reported (truncated, corrupt…) after ``give_up_s``: a writer that pauses longer than the
rules wait gets its file taken again once it changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from capture.feed import signature

Signature = tuple[int, int, int]


@dataclass
class Pending:
    path: Path
    seq: int  # order of arrival
    how: str  # closed, moved, created, modified, scan or poll
    sig: Signature | None
    sig_at: float  # when the signature last changed
    event_at: float
    opens: int = 0
    failed_sig: Signature | None = None  # it did not decode at this signature
    final: bool = False  # take it as it is, failure included
    retry_at: float = 0.0
    announced: set[str] = field(default_factory=set)  # alerts already given for this file


class Tracker:
    def __init__(self, *, quiet_s: float, stable_s: float, give_up_s: float, close_events: bool) -> None:
        self.quiet_s, self.stable_s, self.give_up_s = quiet_s, stable_s, give_up_s
        self.close_events = close_events
        self.pending: dict[Path, Pending] = {}
        self.done: dict[Path, Signature] = {}  # taken, at this signature
        self.busy: set[Path] = set()  # being ingested now
        self._seq = itertools.count()

    def _get(self, path: Path, how: str, now: float) -> Pending:
        entry = self.pending.get(path)
        if entry is None:
            sig = signature(path)
            entry = Pending(path, next(self._seq), how, sig, now, now)
            self.pending[path] = entry
        return entry

    def _changed(self, path: Path) -> bool:
        """Has ``path`` new content since it was taken (or was it never taken)?"""
        return path not in self.done or signature(path) != self.done[path]

    def created(self, path: Path, now: float) -> None:
        if self._changed(path):
            self._get(path, "created", now).event_at = now

    def opened(self, path: Path, now: float) -> None:
        if path in self.pending:
            self.pending[path].opens += 1

    def modified(self, path: Path, now: float) -> None:
        if path in self.pending or self._changed(path):
            self._get(path, "modified", now).event_at = now

    def closed(self, path: Path, now: float, *, wrote: bool) -> None:
        entry = self.pending.get(path)
        if entry is None and wrote and self._changed(path):
            entry = self._get(path, "closed", now)
        if entry is None:
            return
        entry.opens = max(0, entry.opens - 1)
        if wrote:
            entry.how, entry.event_at = "closed", now

    def moved(self, src: Path, dest: Path | None, now: float) -> None:
        self.pending.pop(src, None)
        self.done.pop(src, None)
        if dest is not None:
            self.pending.pop(dest, None)
            entry = self._get(dest, "moved", now)
            entry.event_at = now

    def deleted(self, path: Path) -> bool:
        """Forget ``path``; True when it was waiting to be taken (deleted before it was read)."""
        self.done.pop(path, None)
        return self.pending.pop(path, None) is not None

    def found(self, path: Path, now: float, how: str = "scan") -> None:
        """A file seen by a scan or by polling."""
        if path not in self.busy and (path in self.pending or self._changed(path)):
            self._get(path, how, now)

    def ready(self, now: float) -> list[Pending]:
        """Files complete by the rules, in order of arrival; they leave ``pending``."""
        taken = []
        for entry in sorted(self.pending.values(), key=lambda e: e.seq):
            if entry.path in self.busy or entry.retry_at > now:
                continue
            sig = signature(entry.path)
            if sig is None:  # gone; its deleted or moved event tells the rest
                continue
            if sig != entry.sig:
                entry.sig, entry.sig_at = sig, now
                entry.failed_sig = None
            if self._complete(entry, now):
                taken.append(entry)
        for entry in taken:
            del self.pending[entry.path]
        return taken

    def _complete(self, entry: Pending, now: float) -> bool:
        assert entry.sig is not None
        unchanged = now - entry.sig_at
        if entry.failed_sig == entry.sig or entry.sig[1] == 0:
            # It did not decode, or is empty: wait for more data, report it when none comes.
            entry.final = unchanged >= self.give_up_s
            return entry.final
        if self.close_events and entry.how in ("closed", "moved"):
            return entry.opens == 0 and now - entry.event_at >= self.quiet_s and unchanged >= self.quiet_s
        if unchanged < self.stable_s:
            return False
        # On inotify a writer we saw open the file still holds it: wait for its close.
        return not self.close_events or entry.opens == 0 or unchanged >= self.give_up_s

    def hold(self, entry: Pending, sig: Signature, now: float) -> None:
        """The file did not decode at ``sig``: keep it until it changes or ``give_up_s`` passes."""
        entry.failed_sig, entry.final = sig, False
        if entry.sig != sig:
            entry.sig, entry.sig_at = sig, now
        self.pending.setdefault(entry.path, entry)

    def again(self, entry: Pending, now: float, after_s: float) -> None:
        entry.retry_at = now + after_s
        self.pending.setdefault(entry.path, entry)
