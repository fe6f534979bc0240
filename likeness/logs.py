"""The console: our own ``logging`` set up once, and what native libraries write to stderr caught.

MediaPipe and TensorFlow Lite log from C++ (absl) straight to file descriptor 2, and ignore
GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL and the like (mediapipe 0.10.21 was measured with each):
:func:`native_stderr` lends fd 2 to a temporary file for the length of a call, so that the caller
can drop those lines or attach them to what they concern (LibRaw names no frame of ours: its
messages become part of the frame's failure reason or a warning that names the file).

Standard library only: every worker process imports this.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

__all__ = ["CPP_LOG_LINE", "Captured", "configure", "drop_native_log_lines", "emit", "native_stderr"]

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# absl / glog lines: severity letter, MMDD, time, thread, file:line] message.
CPP_LOG_LINE = re.compile(r"^(?P<severity>[IWEF])\d{4} [\d:. ]+\s+\d+ (?P<where>[\w./-]+:\d+)\] (?P<message>.*)$")
# Lines TensorFlow Lite and absl print without that prefix, once per process.
_NATIVE_BANNERS = (
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
)


def configure(*, verbose: bool = False) -> None:
    """Our log records on stderr as ``LEVEL logger: message``: INFO and up when verbose, else
    WARNING and up."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT)


class Captured:
    """What was written to fd 2 inside :func:`native_stderr`; ``text`` is set on exit."""

    text: str = ""

    @property
    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]


_lock = threading.RLock()
_sink: tuple[int, IO[bytes]] | None = None  # (pid, temporary file) of this process


def _sink_fd() -> int:
    global _sink
    if _sink is None or _sink[0] != os.getpid():  # a forked child gets a file of its own
        _sink = (os.getpid(), tempfile.TemporaryFile(prefix="likeness-stderr-"))
    return _sink[1].fileno()


@contextlib.contextmanager
def native_stderr() -> Iterator[Captured]:
    """Send fd 2 to a temporary file inside the block; the text it got is on the yielded
    :class:`Captured` afterwards. fd 2 belongs to the whole process, so threads take turns
    (blocks nest); what other threads print meanwhile is captured too, and the caller hands on
    what it does not recognise (:func:`drop_native_log_lines`, then ``emit``)."""
    captured = Captured()
    with _lock:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (a daemon): nothing to catch
            yield captured
            return
        sink = _sink_fd()
        start = os.lseek(sink, 0, os.SEEK_END)
        _flush()
        try:
            os.dup2(sink, 2)
            try:
                yield captured
            finally:
                _flush()
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            end = os.lseek(sink, 0, os.SEEK_END)
            if end > start:  # taken, also when the block raised; an enclosing block does not see it again
                captured.text = os.pread(sink, end - start, start).decode(errors="replace")
                os.ftruncate(sink, start)
                os.lseek(sink, start, os.SEEK_SET)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def drop_native_log_lines(text: str, log: logging.Logger, *, source: str) -> str:
    """``text`` without the C++ log lines of MediaPipe and TensorFlow Lite: info and warnings
    (notes about the models' signatures and projections, for the library's developers) are
    dropped, errors go to ``log`` as warnings naming ``source``. Returns the rest."""
    kept = []
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        match = CPP_LOG_LINE.match(stripped)
        if match is not None:
            if match["severity"] in "EF":
                log.warning("%s reported an error (%s): %s", source, match["where"], match["message"])
            continue
        if stripped in _NATIVE_BANNERS:
            continue
        kept.append(line)
    return "".join(kept)


def emit(text: str) -> None:
    """Write ``text`` to the real stderr (what a capture took that was not ours to keep)."""
    if text:
        _flush()
        os.write(2, text.encode(errors="replace"))
