"""Turn a browser upload into a shoot folder that ingest.api.ingest_folder can read.

The folder is <upload_dir>/<uuid>/ with shoot.toml at the top and the frames in a sub-folder
named by the sitter code. It is kept after the ingest: it is the shoot's recorded source_path.

A shoot with several sitters arrives as one .zip of a shoot folder (shoot.toml, one sub-folder
per sitter, optionally frames.csv), unpacked here with every member checked: no absolute paths,
no `..`, no links or devices, at most MAX_ZIP_MEMBERS members and MAX_ZIP_BYTES unpacked, and
no member that inflates more than MAX_ZIP_RATIO times (sizes are counted as bytes are written,
not taken from the zip's own headers).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import stat
import tomllib
import uuid
import zipfile
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
UPLOAD_TYPES = (*FRAME_EXTENSIONS, "toml", "zip")
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_BYTES = 32 * 1024**3  # unpacked
MAX_ZIP_RATIO = 200  # unpacked / packed size of one member; RAW files barely compress
MAX_ZIP_PATH_CHARS = 500
_CHUNK = 1024 * 1024


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


def form_sitter_code(text: str) -> str:
    """The form's Sitter code, normalised; an error that names the field when it is empty or not a code."""
    if not text.strip():
        raise InvalidInput(
            "Sitter code is empty: every uploaded frame needs the person code of its sitter",
            hint="fill in Sitter code (such as P0042), or upload a .zip of the shoot folder for several sitters",
        )
    try:
        return normalise_code(text)
    except InvalidInput as exc:
        raise InvalidInput(f"Sitter code: {exc.message}", hint=exc.hint) from None


def manifest_text(fields: ShootFields) -> str:
    """shoot.toml for a shoot described by the form; checked against ShootManifest first."""
    name = " ".join(fields.name.split())
    if not name:
        raise InvalidInput("Shoot name is empty: the shoot needs a name", hint="fill in Shoot name or upload a shoot.toml")
    if fields.date is None:
        raise InvalidInput(f"Shoot date is empty: shoot {name} needs a date", hint="fill in Shoot date or upload a shoot.toml")
    code = form_sitter_code(fields.sitter_code)
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
    archives = [u for u in uploads if safe_name(u.name).lower().endswith(".zip")]
    if archives:
        if len(uploads) > 1:
            raise InvalidInput(
                f"{safe_name(archives[0].name)} is a whole shoot folder: upload it on its own",
                hint="put every frame and the shoot.toml into the one .zip",
            )
        return stage_zip(upload_dir, archives[0])
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
            code = form_sitter_code(fields.sitter_code)
        elif len(manifest.sitters) == 1:
            code = manifest.sitters[0]
        else:
            raise InvalidInput(
                f"the uploaded shoot.toml names {len(manifest.sitters)} sitters, so the frames' sitter is unclear",
                hint="fill in Sitter code",
            )
    else:
        # The form describes the shoot: its fields are checked in the order they are shown.
        manifest_bytes, manifest = manifest_text(fields).encode("utf-8"), None
        code = form_sitter_code(fields.sitter_code)

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

def _zip_members(archive: zipfile.ZipFile, label: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The files of the archive with their checked relative paths (one shared top folder dropped)."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise InvalidInput(f"{label} holds {len(infos)} entries, more than {MAX_ZIP_MEMBERS}", hint="split the shoot into several uploads")
    members = []
    for info in infos:
        raw = info.filename
        name = raw.replace("\\", "/")
        if any(ord(c) < 32 for c in name) or len(name) > MAX_ZIP_PATH_CHARS:
            raise InvalidInput(f"{label}: the entry name {raw!r} cannot be used", hint="rename it and zip the shoot again")
        path = PurePosixPath(name)
        if name.startswith("/") or (path.parts and ":" in path.parts[0]) or ".." in path.parts:
            raise InvalidInput(f"{label}: the entry {raw!r} points outside the shoot folder", hint="zip the shoot folder itself")
        if path.parts and path.parts[0] == "__MACOSX":
            continue  # Finder's resource forks, not part of the shoot
        mode = info.external_attr >> 16
        if info.is_dir():
            continue
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # 0: no file type recorded (a plain file)
            raise InvalidInput(f"{label}: {raw} is a link or a special file, not a file", hint="zip the files themselves")
        if info.flag_bits & 0x1:
            raise InvalidInput(f"{label}: {raw} is encrypted", hint="zip the shoot without a password")
        members.append((info, PurePosixPath(*[p for p in path.parts if p not in ("", ".")])))
    if not members:
        raise InvalidInput(f"{label} holds no files", hint="zip the shoot folder with its shoot.toml and frames")
    tops = {p.parts[0] for _, p in members}
    if len(tops) == 1 and all(len(p.parts) > 1 for _, p in members) and not any(p.as_posix() == MANIFEST for _, p in members):
        members = [(i, PurePosixPath(*p.parts[1:])) for i, p in members]  # the zip holds the shoot folder itself
    names = [p.as_posix().lower() for _, p in members]
    if MANIFEST not in names:
        raise InvalidInput(
            f"{label} has no {MANIFEST} at its top",
            hint="a shoot .zip holds shoot.toml, one folder per sitter and optionally frames.csv",
        )
    exact = [p.as_posix() for _, p in members]
    repeated = sorted({n for n in exact if exact.count(n) > 1})
    if repeated:
        raise InvalidInput(f"{label} holds {repeated[0]} twice", hint="zip the shoot folder again")
    return members


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, label: str, budget: int) -> int:
    """Write one member, counting the bytes as they come; returns how many were written."""
    limit = min(budget, max(info.compress_size, 1) * MAX_ZIP_RATIO)
    written = 0
    with archive.open(info) as source, open(target, "xb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                what = f"more than {MAX_ZIP_BYTES // 1024**3} GiB unpacked" if limit == budget else "it inflates like a zip bomb"
                raise InvalidInput(f"{label}: {info.filename} cannot be unpacked: {what}", hint="zip the shoot files as they are")
            out.write(chunk)
    return written


def stage_zip(upload_dir: Path, upload: Upload) -> Path:
    """Unpack an uploaded .zip of a shoot folder into a new shoot folder and return it."""
    label = f"the uploaded {safe_name(upload.name)}"
    upload.seek(0)
    try:
        archive = zipfile.ZipFile(upload)  # a readable, seekable body
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidInput(f"{label} is not a readable zip: {exc}", hint="zip the shoot folder again") from None
    folder = upload_dir / uuid.uuid4().hex
    with archive:
        members = _zip_members(archive, label)
        folder.mkdir(parents=True)
        try:
            budget = MAX_ZIP_BYTES
            for info, path in members:
                target = folder.joinpath(*path.parts)
                if not target.resolve().is_relative_to(folder.resolve()):
                    raise InvalidInput(f"{label}: the entry {info.filename!r} points outside the shoot folder")
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    budget -= _unpack(archive, info, target, label, budget)
                except (FileExistsError, NotADirectoryError) as exc:
                    raise InvalidInput(f"{label}: {info.filename} clashes with another entry: {exc.strerror}",
                                       hint="zip the shoot folder again") from None
            manifest_path = next(folder.joinpath(*p.parts) for _, p in members if p.as_posix().lower() == MANIFEST)
            if manifest_path.name != MANIFEST:
                manifest_path.rename(folder / MANIFEST)
            with open(folder / MANIFEST, "rb") as handle:
                _, manifest = _uploaded_manifest(_Named(f"{MANIFEST} in {label}", handle.read()))
            if not manifest.name:
                raise InvalidInput(f"{MANIFEST} in {label} has no name", hint='add name = "..." to it')
        except zipfile.BadZipFile as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise InvalidInput(f"{label} is damaged: {exc}", hint="zip the shoot folder again") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return folder


class _Named(io.BytesIO):
    def __init__(self, name: str, data: bytes) -> None:
        super().__init__(data)
        self.name = name


def discard(folder: Path) -> None:
    """Remove a staged folder that no shoot refers to."""
    shutil.rmtree(folder, ignore_errors=True)
