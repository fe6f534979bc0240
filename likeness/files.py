"""Durable file writes: a file is complete before its name appears.

Every writer in the project goes through :func:`write_atomic`: a temporary file beside the
target, fsync, rename over the target, fsync of the folder. A process killed at any point
leaves either the old file or the new one, never a mix, and at worst a ``.tmp`` file that
:func:`stale_temp_files` finds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"


def fsync_dir(folder: Path | str) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: Path | str, *, mode: int | None = None,
                  tmp_dir: Path | str | None = None) -> Iterator[IO[bytes]]:
    """A binary handle whose content replaces ``path`` when the block ends without error.

    ``mode`` sets the file's permissions before any byte is written (0o600 for secrets).
    ``tmp_dir`` puts the temporary file elsewhere on the same filesystem (a blob store's
    scratch folder); by default it sits beside ``path``.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], object], *, mode: int | None = None) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then put it in place (see module)."""
    path = Path(path)
    with atomic_output(path, mode=mode) as handle:
        write(handle)
    return path


def write_bytes_atomic(path: Path | str, data: bytes, *, mode: int | None = None) -> Path:
    return write_atomic(path, lambda handle: handle.write(data), mode=mode)


def write_text_atomic(path: Path | str, text: str, *, mode: int | None = None) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def append_line_durably(path: Path | str, line: str) -> None:
    """Append one line and fsync: a log that survives a crash up to its last whole line."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def stale_temp_files(folder: Path | str, *, older_than_s: float = 0.0, pattern: str = f"*{TMP_SUFFIX}") -> list[Path]:
    """Temporary files a killed writer left in ``folder``."""
    cutoff = time.time() - older_than_s
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [p for p in folder.glob(pattern) if p.is_file() and p.stat().st_mtime <= cutoff]
