"""Content-addressed blob store: every file is named by its SHA-256.

A blob is complete before its name is visible (temp file, fsync, rename), so a crash leaves at
worst an unreferenced blob, never a row pointing at half a file. Local folders are the default;
any fsspec URL (s3://, gs://, memory://...) works, where a single PUT is already atomic.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import fsspec

from likeness.config import make_private_dir
from likeness.errors import ConfigError, IntegrityProblem, NotFound
from likeness.files import atomic_output, stale_temp_files

log = logging.getLogger(__name__)

CHUNK = 1 << 20
SHA256_RE = re.compile(r"[0-9a-f]{64}")  # always with fullmatch: `$` would let a trailing newline through
TMP_DIR = "tmp"


def sha256_file(path: Path) -> str:
    """Stream a file through SHA-256 (never loads it whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Put, get and list blobs by SHA-256 under one root (a folder or an fsspec URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"LIKENESS_BLOB_URL {url!r} cannot be opened: {exc}") from exc
        self.root = root.rstrip("/")
        self.is_local = "file" in _protocols(self.fs)
        if self.is_local:
            # Originals are photographs of people: the store is its owner's alone.
            make_private_dir(Path(self.root) / TMP_DIR)

    # -- naming -----------------------------------------------------------------------------
    def key(self, sha256: str) -> str:
        if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return f"{self.root}/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def local_path(self, sha256: str) -> Path:
        """The file's path on disk (local stores only): for tools that read files by path."""
        if not self.is_local:
            raise ConfigError(f"the blob store {self.url} is not a local folder")
        return Path(self.key(sha256))

    # -- writing ----------------------------------------------------------------------------
    def put_file(self, path: Path, sha256: str | None = None) -> str:
        """Store a copy of `path`; returns its SHA-256. Storing a known blob is a no-op."""
        sha256 = sha256 or sha256_file(path)
        if self.exists(sha256):
            return sha256
        if self.is_local:
            with open(path, "rb") as source:
                self._write_local(sha256, source)
        else:
            self.fs.put_file(str(path), self.key(sha256))
        return sha256

    def put_bytes(self, data: bytes) -> str:
        sha256 = sha256_bytes(data)
        if self.exists(sha256):
            return sha256
        if self.is_local:
            self._write_local(sha256, io.BytesIO(data))
        else:
            self.fs.pipe_file(self.key(sha256), data)
        return sha256

    def _write_local(self, sha256: str, source: BinaryIO) -> None:
        final = Path(self.key(sha256))
        make_private_dir(final.parent)
        digest = hashlib.sha256()
        with atomic_output(final, tmp_dir=Path(self.root) / TMP_DIR) as target:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                target.write(chunk)
            if digest.hexdigest() != sha256:
                # The source changed while we copied it: never store a file under a wrong name.
                raise IntegrityProblem(f"content changed while storing blob {sha256[:12]}…; try again")

    # -- reading ----------------------------------------------------------------------------
    def exists(self, sha256: str) -> bool:
        return bool(self.fs.exists(self.key(sha256)))

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.fs.open(self.key(sha256), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {sha256} is missing from {self.url}", hint="run `likeness doctor`") from exc

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as handle:
            return handle.read()

    def iter_hashes(self) -> Iterator[str]:
        """Every stored blob's SHA-256 (temporary files excluded)."""
        for path in self.fs.find(self.root):
            name = path.rsplit("/", 1)[-1]
            if SHA256_RE.fullmatch(name):
                yield name

    def modified_at(self, sha256: str) -> float | None:
        try:
            info = self.fs.info(self.key(sha256))
        except FileNotFoundError:
            return None
        mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
        if hasattr(mtime, "timestamp"):
            return float(mtime.timestamp())
        return float(mtime) if mtime is not None else None

    # -- removing ---------------------------------------------------------------------------
    def delete(self, sha256: str) -> None:
        key = self.key(sha256)
        if self.fs.exists(key):
            self.fs.rm_file(key)

    def stale_temp_files(self, older_than_s: float) -> list[Path]:
        """Temp files left by a killed writer (local stores only)."""
        if not self.is_local:
            return []
        return stale_temp_files(Path(self.root) / TMP_DIR, older_than_s=older_than_s)

    def copy_to(self, sha256: str, target: Path) -> Path:
        with self.open(sha256) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
        return target


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
