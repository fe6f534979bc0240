"""The only files Label Studio can read: the images of pushed faces, one file per hash.

Label Studio's local-files serving hands out any file under its LOCAL_FILES_DOCUMENT_ROOT that
lies in a project's local-files storage. Our blob store also holds release documents and RAW
originals, so Label Studio never sees it: its document root is a folder of its own (by default
`data/labelstudio/files/`), and the project's storage is that folder's `faces/` subfolder (Label
Studio wants the storage strictly inside the root). Push puts there the crop and preview of each
face it sends, named by hash: a hard link to the blob, or a copy where the blob store is on
another filesystem (or not a local folder), written atomically. Images of pushed faces whose
frame is no longer accepted, or whose sitter's release no longer holds, are taken out again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from likeness.blobstore import SHA256_RE, BlobStore
from likeness.errors import ConfigError
from likeness.files import atomic_output, fsync_dir

STORAGE_DIR = "faces"
URL_PREFIX = "/data/local-files/?d="
# A hard link is impossible here, but a copy works (another filesystem, no links, too many links).
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EACCES}


def _name(sha256: str) -> str:
    if not SHA256_RE.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256


def storage_path(files_root: Path) -> Path:
    """The folder connected as the project's local-files storage (inside the document root)."""
    return files_root / STORAGE_DIR


def file_url(sha256: str) -> str:
    """The URL Label Studio serves an image under (path relative to its document root)."""
    return f"{URL_PREFIX}{STORAGE_DIR}/{_name(sha256)}"


def check_apart(files_root: Path, blob_root: str | Path) -> None:
    """Refuse a served folder that overlaps the blob store: Label Studio would see blobs we never pushed."""
    served, blobs = files_root.resolve(), Path(blob_root).resolve()
    if served == blobs or blobs in served.parents or served in blobs.parents:
        raise ConfigError(f"Label Studio's files root {served} overlaps the blob store {blobs}",
                          hint="point LIKENESS_LABEL_STUDIO_FILES_ROOT at a folder of its own")


def prepare(files_root: Path) -> Path:
    """Create the storage folder (Label Studio checks that it exists); returns it."""
    folder = storage_path(files_root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serve(blobs: BlobStore, files_root: Path, sha256: str) -> bool:
    """Put blob `sha256` into the served folder; False when it was there already."""
    target = storage_path(files_root) / _name(sha256)
    if target.is_file():
        return False  # named by content: a file there is the right one
    folder = prepare(files_root)
    if blobs.is_local:
        try:
            os.link(blobs.local_path(sha256), target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
        else:
            fsync_dir(folder)
            return True
    with blobs.open(sha256) as source, atomic_output(target) as out:
        shutil.copyfileobj(source, out)
    return True


def withdraw(files_root: Path, sha256: str) -> bool:
    """Take an image out of the served folder; False when it was not there."""
    target = storage_path(files_root) / _name(sha256)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
        fsync_dir(target.parent)
        return True
    return False
