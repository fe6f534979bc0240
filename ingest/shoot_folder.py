"""A shoot folder: shoot.toml, frames in one sub-folder per sitter code, or a frames.csv map.

Only what lies inside the shoot folder is read: a symlink that leads outside it is refused,
loops and special files (FIFOs, sockets, devices) are never opened, and every entry that is
not ingested is reported in `ShootFolder.skipped` with its reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import posixpath
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from ingest.people import normalise_code
from likeness.errors import InvalidInput

MANIFEST = "shoot.toml"
FRAME_MAP = "frames.csv"
# Sidecars and housekeeping files that travel with shoots but are not frames.
IGNORED_SUFFIXES = {".xmp", ".thm", ".pp3", ".dop", ".cos"}

# Limits on what a shoot folder may describe: the manifest is stored in the shoot's row.
MANIFEST_MAX_BYTES = 64 * 1024
FRAME_MAP_MAX_BYTES = 16 * 1024 * 1024
MAX_NAME_CHARS = 200  # shoot name, studio, camera… and every key and value of a plan slot
MAX_PATH_CHARS = 500  # reference_frame
MAX_SITTERS = 1_000
MAX_PLAN_SLOTS = 10_000
MAX_SLOT_FIELDS = 50

Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]
Slot = Annotated[dict[Name, Name], Field(max_length=MAX_SLOT_FIELDS)]

_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


class ShootManifest(BaseModel):
    """The contents of shoot.toml."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, description="Unique shoot name; default: the folder name.")
    date: dt.date = Field(description="Capture date: releases are judged against it.")
    studio: Name | None = None
    photographer: Name | None = None
    camera: Name | None = None
    lighting_preset: Name | None = None
    sitters: list[Name] = Field(
        default_factory=list, max_length=MAX_SITTERS, description="Sitter codes; each may have a sub-folder."
    )
    reference_frame: Annotated[str, StringConstraints(max_length=MAX_PATH_CHARS)] | None = Field(
        default=None, description="Relative path of the grey-card frame."
    )
    plan: list[Slot] = Field(default_factory=list, max_length=MAX_PLAN_SLOTS, description="Shot-plan slots.")

    @field_validator("sitters")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        return [normalise_code(code) for code in codes]

    @field_validator("reference_frame")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is None:
            return None
        relative = normalise_relative(value)
        if relative is None:
            raise ValueError(f"{value!r} is not a path inside the shoot folder")
        return relative


@dataclass(frozen=True)
class FrameFile:
    path: Path
    relative_path: str
    sitter_code: str | None


@dataclass(frozen=True)
class SkippedEntry:
    """Something in the shoot folder that is not ingested, and why."""

    relative_path: str
    reason: str


@dataclass(frozen=True)
class ShootFolder:
    root: Path
    manifest: ShootManifest
    frames: list[FrameFile]
    skipped: list[SkippedEntry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest.name or self.root.name


@dataclass(frozen=True)
class FrameMapRow:
    row: int  # as a spreadsheet numbers it: the header is row 1
    relative_path: str
    sitter_code: str


def normalise_relative(path: str) -> str | None:
    """A POSIX path relative to the shoot folder without ./ or .. parts; None if it leaves the folder."""
    if not path or path.startswith("/"):
        return None
    normal = posixpath.normpath(path)
    if normal in (".", "..") or normal.startswith("../"):
        return None
    return normal


def _inside(target: Path, root: Path) -> bool:
    return target == root or root in target.parents


def _special_kind(mode: int) -> str | None:
    for check, kind in _SPECIAL_KINDS:
        if check(mode):
            return kind
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "unknown kind"


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def _read_capped(root: Path, name: str, limit: int) -> bytes | None:
    """The bytes of a file at the top of the shoot folder (None if there is none), at most `limit`."""
    path = root / name
    if not os.path.lexists(path):
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidInput(f"{path} is a broken symlink or a symlink loop") from None
    if not _inside(target, root.resolve()):
        raise InvalidInput(f"{path} is a symlink that leads outside the shoot folder ({target})")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below refuses it.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InvalidInput(f"{path} cannot be read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"{path} is not a regular file ({_special_kind(mode) or 'folder'})")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{path} is larger than the limit of {_size(limit)}", hint="keep it to the shoot's description")
    return data


def read_manifest(folder: Path) -> ShootManifest:
    path = folder / MANIFEST
    data = _read_capped(folder, MANIFEST, MANIFEST_MAX_BYTES)
    if data is None:
        raise InvalidInput(f"{path} is missing", hint="every shoot folder needs a shoot.toml with at least a date")
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    try:
        return ShootManifest.model_validate(parsed)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()[:5])
        if exc.error_count() > 5:
            problems += f"; and {exc.error_count() - 5} more"
        raise InvalidInput(f"{path}: {problems}") from None


def read_frame_map(folder: Path) -> list[FrameMapRow]:
    """The rows of frames.csv: a path relative to the shoot folder and a sitter code each."""
    path = folder / FRAME_MAP
    data = _read_capped(folder, FRAME_MAP, FRAME_MAP_MAX_BYTES)
    if data is None:
        return []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or not {"file", "sitter"} <= set(reader.fieldnames):
        raise InvalidInput(f"{path} needs a header line with the columns file,sitter")
    rows = []
    try:
        for number, row in enumerate(reader, start=2):
            name, sitter = (row.get("file") or "").strip(), (row.get("sitter") or "").strip()
            if not name or not sitter:
                raise InvalidInput(f"{path} row {number}: both file and sitter are needed")
            relative = normalise_relative(name)
            if relative is None:
                raise InvalidInput(
                    f"{path} row {number}: {name!r} is not a path inside the shoot folder",
                    hint="write the path relative to the shoot folder, such as P0042/IMG_0001.CR3",
                )
            try:
                code = normalise_code(sitter)
            except InvalidInput as exc:
                raise InvalidInput(f"{path} row {number}: {exc.message}", hint=exc.hint) from None
            rows.append(FrameMapRow(number, relative, code))
    except csv.Error as exc:
        raise InvalidInput(f"{path} is not valid CSV: {exc}") from None
    return rows


@dataclass
class _Walk:
    root: Path
    real_root: Path
    files: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)

    def skip(self, relative: str, reason: str) -> None:
        self.skipped.append(SkippedEntry(relative, reason))

    def walk(self, directory: Path, prefix: str, ancestors: frozenset[Path]) -> None:
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            self.skip(prefix.rstrip("/") or ".", f"folder cannot be read ({exc.strerror or exc})")
            return
        for entry in entries:
            self.entry(Path(entry.path), prefix + entry.name, ancestors)

    def entry(self, path: Path, relative: str, ancestors: frozenset[Path]) -> None:
        name = path.name
        if name.startswith("."):
            self.skip(relative, "hidden")
            return
        if relative in (MANIFEST, FRAME_MAP):
            return
        try:
            mode = path.lstat().st_mode
        except OSError as exc:
            self.skip(relative, f"cannot be read ({exc.strerror or exc})")
            return
        real = path
        if stat.S_ISLNK(mode):
            try:
                real = path.resolve(strict=True)
            except FileNotFoundError:
                self.skip(relative, "broken symlink")
                return
            except (OSError, RuntimeError):  # ELOOP
                self.skip(relative, "symlink loop")
                return
            if not _inside(real, self.real_root):
                self.skip(relative, "symlink leads outside the shoot")
                return
            try:
                mode = real.stat().st_mode
            except OSError as exc:
                self.skip(relative, f"cannot be read ({exc.strerror or exc})")
                return
        else:
            real = path.resolve() if stat.S_ISDIR(mode) else path
        if stat.S_ISDIR(mode):
            if real in ancestors:
                self.skip(relative, "symlink loop")
                return
            self.walk(path, relative + "/", ancestors | {real})
            return
        special = _special_kind(mode)
        if special is not None:
            self.skip(relative, f"not a regular file ({special})")
            return
        suffix = Path(name).suffix.lower()
        if suffix in IGNORED_SUFFIXES:
            self.skip(relative, f"sidecar ({suffix})")
            return
        self.files.append((path, relative))


def _walk(folder: Path) -> _Walk:
    real_root = folder.resolve()
    walk = _Walk(folder, real_root)
    walk.walk(folder, "", frozenset({real_root}))
    return walk


def _claim_text(claims: list[FrameMapRow | str]) -> str:
    parts = []
    for claim in claims:
        if isinstance(claim, FrameMapRow):
            parts.append(f"{FRAME_MAP} row {claim.row} ({claim.sitter_code})")
        else:
            parts.append(f"the sitter folder {claim}")
    return " and ".join(parts)


def _iter_sitter_claims(files: list[tuple[Path, str]], sitters: set[str]) -> Iterator[tuple[str, str]]:
    for _, relative in files:
        first, _, rest = relative.partition("/")
        if rest and first.upper() in sitters:
            yield relative, first


def read_shoot_folder(folder: Path) -> ShootFolder:
    """The manifest plus every candidate frame with its sitter (None when nothing names one).

    A frame's sitter comes from its sitter folder or from the one frames.csv row naming its path
    relative to the shoot folder; a frame claimed twice is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", hint="pass the shoot folder that holds shoot.toml")
    manifest = read_manifest(folder)
    rows = read_frame_map(folder)
    walk = _walk(folder)
    found = {relative for _, relative in walk.files}
    skipped_paths = {entry.relative_path for entry in walk.skipped}

    claims: dict[str, list[FrameMapRow | str]] = {}
    for relative, sitter_folder in _iter_sitter_claims(walk.files, set(manifest.sitters)):
        claims.setdefault(relative, []).append(sitter_folder)
    unmatched = []
    for row in rows:
        claims.setdefault(row.relative_path, []).append(row)
        if row.relative_path in skipped_paths:
            unmatched.append(SkippedEntry(row.relative_path, f"{FRAME_MAP} row {row.row} names a skipped entry"))
        elif row.relative_path not in found:
            unmatched.append(SkippedEntry(row.relative_path, f"{FRAME_MAP} row {row.row} names no file"))
    conflicts = {relative: c for relative, c in claims.items() if len(c) > 1}
    if conflicts:
        listed = "; ".join(f"{relative}: {_claim_text(c)}" for relative, c in sorted(conflicts.items())[:10])
        more = f"; and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        raise InvalidInput(
            f"{folder / FRAME_MAP}: {len(conflicts)} file(s) have more than one sitter claim: {listed}{more}",
            hint="name each frame once: by its sitter folder or by one frames.csv row",
        )

    frames = []
    for path, relative in walk.files:
        claim = claims.get(relative, [None])[0]
        sitter = claim.sitter_code if isinstance(claim, FrameMapRow) else claim.upper() if claim else None
        frames.append(FrameFile(path, relative, sitter))
    if manifest.reference_frame and manifest.reference_frame not in found:
        raise InvalidInput(f"{folder / MANIFEST}: reference_frame {manifest.reference_frame} does not exist")
    return ShootFolder(folder, manifest, frames, walk.skipped + unmatched)
