"""One frame at a time into the ingest: the batch ingest's own steps (``ingest.api``: store_shoot,
plan_frames with content-hash dedupe, the worker's process_frame, write_frames through the consent
gate) on a long-lived process pool, so a watched frame is stored exactly as ``likeness ingest``
stores it and the decoder and face models stay loaded between frames.

Each file is first copied (and hashed in the same pass) into a private staging folder, and the
copy is what the worker reads: a file rewritten, renamed or deleted while it is read can then
never give a blob or a row of mixed content. The copy counts only if the file's inode, size and
mtime are the same after it as before.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import stat
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from capture.look import first_look

# The batch ingest's own steps: the watcher must take the very path a batch ingest takes.
from ingest.api import (
    FrameFailure,
    FrameJob,
    FrameResult,
    IngestSummary,
    make_executor,
    plan_frames,
    process_frame,
    store_shoot,
    write_frames,
)
from ingest.gate import check_shoot_date
from ingest.shoot_folder import (
    FRAME_MAP,
    IGNORED_SUFFIXES,
    MANIFEST,
    FrameFile,
    FrameMapRow,
    ShootFolder,
    ShootManifest,
    normalise_relative,
    read_frame_map,
    read_manifest,
)
from likeness.errors import InvalidInput
from likeness.models import Person, Shot
from likeness.workbench import Workbench

CHUNK = 1 << 20
# The full ingest yields the CPU to the first looks (capture.look): the verdict the photographer
# waits for comes first, the record catches up between frames.
INGEST_NICE = 10
# Names copy tools and browsers give a file while it is being transferred; it is renamed after.
TRANSFER_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".filepart", "~")


class StageError(Exception):
    """A frame that could not be read into staging; ``kind`` says why, the message in words."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Staged:
    source: Path
    relative_path: str
    sitter: str | None
    sha256: str
    copy: Path
    signature: tuple[int, int, int]  # inode, size, mtime_ns of the source when it was copied


def signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def not_a_frame(root: Path, path: Path) -> str | None:
    """Why ``path`` is no frame to take (hidden, sidecar, in transfer, outside the folder), or None."""
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        return "outside the watched folder"
    if relative in (MANIFEST, FRAME_MAP):
        return "the shoot's description"
    if any(part.startswith(".") for part in Path(relative).parts):
        return "hidden"
    name = path.name.lower()
    if Path(name).suffix in IGNORED_SUFFIXES:
        return "sidecar"
    if name.endswith(TRANSFER_SUFFIXES):
        return "still being transferred"
    if path.is_symlink():
        return "a symlink (copy the file itself into the folder)"
    return None


class Feeder:
    """The ingest of one shoot folder, frame by frame."""

    def __init__(self, workbench: Workbench, root: Path, shoot: str, *, workers: int, actor: str) -> None:
        self.workbench, self.root, self.actor = workbench, Path(root), actor
        self.expected_name = shoot
        self.staging = workbench.settings.data_dir / "capture" / "staging"
        self._clear_leftovers()
        self.pool: Executor = make_executor(workers, nice=INGEST_NICE)
        self.look_pool: Executor = make_executor(1 if workers else 0)
        self._numbers = itertools.count()
        self.manifest: ShootManifest
        self.rows: dict[str, FrameMapRow] = {}
        self._described: tuple[int | None, int | None] = (None, None)
        self.shoot_id = self.refresh()

    def _clear_leftovers(self) -> None:
        """Staging copies of a watcher that was killed (its pid is gone) are removed."""
        if not self.staging.is_dir():
            return
        for folder in self.staging.iterdir():
            pid = folder.name.partition("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        self.look_pool.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)

    @property
    def folder(self) -> ShootFolder:
        return ShootFolder(self.root, self.manifest, [])

    def _description_mtimes(self) -> tuple[int | None, int | None]:
        def mtime(name: str) -> int | None:
            try:
                return (self.root / name).stat().st_mtime_ns
            except OSError:
                return None

        return mtime(MANIFEST), mtime(FRAME_MAP)

    def manifest_changed(self) -> bool:
        return self._description_mtimes() != self._described

    def refresh(self) -> int:
        """Read shoot.toml and frames.csv again and store the shoot as a batch ingest would."""
        described = self._description_mtimes()
        manifest = read_manifest(self.root)
        name = manifest.name or self.root.name
        if name != self.expected_name:
            raise InvalidInput(f"{self.root / MANIFEST} names the shoot {name}, not {self.expected_name}",
                               hint="pass --shoot with the shoot's name in shoot.toml (or the folder's name)")
        check_shoot_date(manifest.date, source=str(self.root / MANIFEST))
        self.manifest = manifest
        self.rows = {row.relative_path: row for row in read_frame_map(self.root)}
        self.shoot_id = store_shoot(workbench=self.workbench, folder=self.folder, actor=self.actor)
        self._described = described
        return self.shoot_id

    def sitter_of(self, relative: str) -> str | None:
        """The shoot folder's rule (ingest.shoot_folder): a frames.csv row, else a sitter folder."""
        row = self.rows.get(relative)
        first, _, rest = relative.partition("/")
        folder = first.upper() if rest and first.upper() in self.manifest.sitters else None
        if row is not None and folder is not None:
            raise InvalidInput(f"{self.root / FRAME_MAP}: {relative} is claimed by row {row.row} ({row.sitter_code}) "
                               f"and by the sitter folder {first}", hint="name each frame once")
        return row.sitter_code if row is not None else folder

    def stage(self, path: Path) -> Staged:
        """Copy ``path`` into staging, hashing it on the way; StageError when that fails."""
        relative = normalise_relative(path.relative_to(self.root).as_posix())
        if relative is None:
            raise StageError("outside", f"{path} is not inside {self.root}")
        before = signature(path)
        if before is None:
            raise StageError("vanished", f"{relative} was deleted before it was read")
        target = self.staging / f"{os.getpid()}-{next(self._numbers)}" / path.name
        digest = hashlib.sha256()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as source, open(target, "wb") as copy:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    copy.write(chunk)
        except FileNotFoundError:
            self.discard(target)
            raise StageError("vanished", f"{relative} was deleted before it was read") from None
        except OSError as exc:
            self.discard(target)
            raise StageError("disk" if exc.errno in _DISK_ERRORS else "unreadable",
                             f"{relative} could not be copied for ingest: {exc.strerror or exc}") from None
        after = signature(path)
        if after != before:
            self.discard(target)
            if after is None:
                raise StageError("moved", f"{relative} was renamed or deleted while it was read")
            raise StageError("changed", f"{relative} changed while it was read")
        return Staged(path, relative, self.sitter_of(relative), digest.hexdigest(), target, before)

    def discard(self, copy: Path) -> None:
        shutil.rmtree(copy.parent, ignore_errors=True)

    def plan(self, staged: Staged, summary: IngestSummary) -> FrameJob | None:
        """The job for the staged frame, or None when the batch ingest would not decode it either
        (its content is stored already, or the file is empty: recorded in ``summary``)."""
        folder = replace(self.folder, frames=[FrameFile(staged.copy, staged.relative_path, staged.sitter)])
        jobs = plan_frames(workbench=self.workbench, folder=folder, hashes=[(staged.sha256, None)], summary=summary)
        return jobs[0] if jobs else None

    def submit(self, job: FrameJob) -> Future:
        return self.pool.submit(process_frame, job)

    def look(self, job: FrameJob) -> Future:
        return self.look_pool.submit(first_look, job)

    def write(self, staged: Staged, outcome: FrameResult | FrameFailure, summary: IngestSummary) -> None:
        write_frames(workbench=self.workbench, shoot_id=self.shoot_id, summary=summary, actor=self.actor,
                     frames=[FrameFile(staged.copy, staged.relative_path, staged.sitter)], outcomes=[outcome])

    def stored_shot(self, session: Session, sha256: str) -> tuple[Shot | None, Person | None]:
        shot = session.scalar(select(Shot).where(Shot.sha256 == sha256).options(selectinload(Shot.faces)))
        return shot, self.person(session, shot.sitter_code if shot is not None else None)

    def person(self, session: Session, code: str | None) -> Person | None:
        """The registered sitter with the releases the consent gate reads, or None."""
        if not code:
            return None
        return session.scalar(select(Person).where(Person.code == code)
                              .options(selectinload(Person.releases), selectinload(Person.personal)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_DISK_ERRORS = {27, 28, 122}  # EFBIG (a file size limit), ENOSPC, EDQUOT
