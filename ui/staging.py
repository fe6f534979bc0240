"""Turn a browser upload into a shoot folder that ingest.api.ingest_folder can read.

The folder is <upload_dir>/<uuid>/ with shoot.toml at the top and the frames in a sub-folder
named by the sitter code. It is kept after the ingest: it is the shoot's recorded source_path.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from ingest.people import normalise_code
from ingest.shoot_folder import FRAME_MAP, MANIFEST, ShootManifest
from likeness.errors import InvalidInput

RAW_EXTENSIONS = (
    "dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "raf", "orf", "rw2", "pef", "srw",
    "x3f", "3fr", "iiq", "erf", "mef", "mos", "kdc", "dcr", "rwl",
)
RASTER_EXTENSIONS = ("jpg", "jpeg", "png", "tif", "tiff")
FRAME_EXTENSIONS = RAW_EXTENSIONS + RASTER_EXTENSIONS
UPLOAD_TYPES = (*FRAME_EXTENSIONS, "toml")


class Upload(Protocol):
    """What st.file_uploader hands over (streamlit's UploadedFile): a name and a readable body."""

    name: str

    def seek(self, offset: int, whence: int = 0) -> int: ...
    def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class ShootFields:
    """The form's description of a shoot, used when no shoot.toml is uploaded."""

    name: str
    date: dt.date | None
    studio: str
    sitter_code: str
    photographer: str


def safe_name(name: str) -> str:
    """The base name of an uploaded file: no folders, no traversal, nothing hidden or empty."""
    base = PurePosixPath(name.replace("\\", "/").strip()).name.strip()
    if not base or base in (".", "..") or base.startswith("."):
        raise InvalidInput(f"the uploaded file name {name!r} cannot be used", hint="rename the file and upload it again")
    if any(ord(c) < 32 for c in base):
        raise InvalidInput(f"the uploaded file name {name!r} contains control characters")
    return base


def _toml_string(value: str) -> str:
    # A JSON string literal is also a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def manifest_text(fields: ShootFields) -> str:
    """shoot.toml for a shoot described by the form; checked against ShootManifest first."""
    name = " ".join(fields.name.split())
    if not name:
        raise InvalidInput("the shoot needs a name", hint="fill in Shoot name or upload a shoot.toml")
    if fields.date is None:
        raise InvalidInput(f"shoot {name} needs a date", hint="fill in Shoot date or upload a shoot.toml")
    code = normalise_code(fields.sitter_code)
    lines = [f"name = {_toml_string(name)}", f"date = {fields.date.isoformat()}"]
    if fields.studio.strip():
        lines.append(f"studio = {_toml_string(fields.studio.strip())}")
    lines += [f"photographer = {_toml_string(fields.photographer)}", f"sitters = [{_toml_string(code)}]"]
    text = "\n".join(lines) + "\n"
    ShootManifest.model_validate(tomllib.loads(text))
    return text


def _uploaded_manifest(upload: Upload) -> tuple[bytes, ShootManifest]:
    upload.seek(0)
    data = upload.read()
    try:
        manifest = ShootManifest.model_validate(tomllib.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise InvalidInput(f"the uploaded {upload.name} is not a valid shoot.toml: {detail}") from None
    return data, manifest


def _copy(upload: Upload, target: Path) -> None:
    upload.seek(0)
    with open(target, "xb") as out:  # "x": never overwrite, even if two names collide
        shutil.copyfileobj(upload, out)


def stage_upload(upload_dir: Path, uploads: Sequence[Upload], fields: ShootFields) -> Path:
    """Write the uploads into a new shoot folder and return it.

    An uploaded *.toml is the manifest; without one it is written from `fields`. Every frame goes
    into the sub-folder of the sitter code from the form, or of the manifest's only sitter.
    """
    manifests: list[Upload] = []
    frames: list[Upload] = []
    for upload in uploads:
        (manifests if safe_name(upload.name).lower().endswith(".toml") else frames).append(upload)
    if len(manifests) > 1:
        raise InvalidInput(f"upload one shoot.toml at most, not {len(manifests)}")
    if not frames:
        raise InvalidInput("no frames were uploaded", hint="add the frames of the shoot to the upload")
    names = [safe_name(u.name) for u in frames]
    for name in names:
        if PurePosixPath(name).suffix.lower().lstrip(".") not in FRAME_EXTENSIONS:
            raise InvalidInput(f"{name} is not a frame", hint=f"frames are {', '.join(FRAME_EXTENSIONS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidInput(f"two uploaded files are both called {repeated[0]}", hint="rename one of them")

    if manifests:
        manifest_bytes, manifest = _uploaded_manifest(manifests[0])
        if not manifest.name:
            # Without a name the shoot would be called after the staging folder (a UUID).
            raise InvalidInput(f"the uploaded {manifests[0].name} has no name", hint='add name = "..." to it')
        if fields.sitter_code.strip():
            code = normalise_code(fields.sitter_code)
        elif len(manifest.sitters) == 1:
            code = manifest.sitters[0]
        else:
            raise InvalidInput(
                f"the uploaded shoot.toml names {len(manifest.sitters)} sitters, so the frames' sitter is unclear",
                hint="fill in Sitter code",
            )
    else:
        code = normalise_code(fields.sitter_code)
        manifest_bytes, manifest = manifest_text(fields).encode("utf-8"), None

    folder = upload_dir / uuid.uuid4().hex
    (folder / code).mkdir(parents=True)
    try:
        (folder / MANIFEST).write_bytes(manifest_bytes)
        for upload, name in zip(frames, names):
            _copy(upload, folder / code / name)
        if manifest is not None and code not in manifest.sitters:
            # The uploaded manifest does not list this sitter's folder: map the frames explicitly.
            with open(folder / FRAME_MAP, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["file", "sitter"])
                writer.writerows([f"{code}/{name}", code] for name in names)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder



def discard(folder: Path) -> None:
    """Remove a staged folder that no shoot refers to."""
    shutil.rmtree(folder, ignore_errors=True)
