"""A shoot folder: shoot.toml, frames in one sub-folder per sitter code, or a frames.csv map."""

from __future__ import annotations

import csv
import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.people import normalise_code
from likeness.errors import InvalidInput

MANIFEST = "shoot.toml"
FRAME_MAP = "frames.csv"
# Sidecars and housekeeping files that travel with shoots but are not frames.
IGNORED_SUFFIXES = {".xmp", ".thm", ".pp3", ".dop", ".cos"}


class ShootManifest(BaseModel):
    """The contents of shoot.toml."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Unique shoot name; default: the folder name.")
    date: dt.date = Field(description="Capture date: releases are judged against it.")
    studio: str | None = None
    photographer: str | None = None
    camera: str | None = None
    lighting_preset: str | None = None
    sitters: list[str] = Field(default_factory=list, description="Sitter codes; each may have a sub-folder.")
    reference_frame: str | None = Field(default=None, description="Relative path of the grey-card frame.")
    plan: list[dict[str, str]] = Field(default_factory=list, description="Shot-plan slots.")

    @field_validator("sitters")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        return [normalise_code(code) for code in codes]


@dataclass(frozen=True)
class FrameFile:
    path: Path
    relative_path: str
    sitter_code: str | None


@dataclass(frozen=True)
class ShootFolder:
    root: Path
    manifest: ShootManifest
    frames: list[FrameFile]

    @property
    def name(self) -> str:
        return self.manifest.name or self.root.name


def read_manifest(folder: Path) -> ShootManifest:
    path = folder / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{path} is missing", hint="every shoot folder needs a shoot.toml with at least a date")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    try:
        return ShootManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"{path}: {problems}") from None


def read_frame_map(folder: Path) -> dict[str, str]:
    """frames.csv: file name or relative path -> sitter code."""
    path = folder / FRAME_MAP
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"file", "sitter"} <= set(reader.fieldnames):
            raise InvalidInput(f"{path} needs a header line with the columns file,sitter")
        mapping = {}
        for line, row in enumerate(reader, start=2):
            name, sitter = (row.get("file") or "").strip(), (row.get("sitter") or "").strip()
            if not name or not sitter:
                raise InvalidInput(f"{path} line {line}: both file and sitter are needed")
            mapping[name] = normalise_code(sitter)
    return mapping


def read_shoot_folder(folder: Path) -> ShootFolder:
    """The manifest plus every candidate frame with its sitter (None when nothing names one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", hint="pass the shoot folder that holds shoot.toml")
    manifest = read_manifest(folder)
    frame_map = read_frame_map(folder)
    sitters = set(manifest.sitters)
    frames = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if relative.as_posix() in (MANIFEST, FRAME_MAP) or path.suffix.lower() in IGNORED_SUFFIXES:
            continue
        first = relative.parts[0].upper() if len(relative.parts) > 1 else None
        sitter = frame_map.get(relative.as_posix()) or frame_map.get(path.name)
        if sitter is None and first in sitters:
            sitter = first
        frames.append(FrameFile(path, relative.as_posix(), sitter))
    if manifest.reference_frame and not (folder / manifest.reference_frame).is_file():
        raise InvalidInput(f"{folder / MANIFEST}: reference_frame {manifest.reference_frame} does not exist")
    return ShootFolder(folder, manifest, frames)
