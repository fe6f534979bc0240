"""Settings, read from LIKENESS_* environment variables with embedded defaults under ./data/."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Our data (personal data, password hashes, photographs of people) is for its owner alone.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created in this block are readable by their owner only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as owner-only (0700) folders; existing ones are left
    as they are (they may be the user's own folders)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    with private_umask():
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile
                folder.mkdir(mode=PRIVATE_DIR_MODE)
    return path


def make_private_file(path: Path) -> None:
    """Create ``path`` empty as an owner-only (0600) file, or narrow an existing one that is wider."""
    path = Path(path)
    with private_umask():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE))
            return
        except FileExistsError:
            pass
    narrow_to_owner(path)


def narrow_to_owner(path: Path) -> None:
    """Take group and other permissions off an existing file (a no-op when it is missing)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


class Settings(BaseSettings):
    """Everything that can be configured. Paths default to ./data/ beside the working directory."""

    model_config = SettingsConfigDict(env_prefix="LIKENESS_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Folder for the embedded defaults (created owner-only, 0700)."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file data_dir/likeness.db."
    )
    blob_url: str | None = Field(
        default=None, description="Folder or fsspec URL of the blob store; default: data_dir/blobs."
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Ingest worker processes; 0 runs in the calling process.",
    )
    align_size: int = Field(default=1024, description="Side of the aligned face crop in pixels.")
    preview_size: int = Field(default=1024, description="Long edge of previews in pixels.")
    max_pixels: int = Field(
        default=200_000_000, description="Frames with more pixels are refused (decompression bomb)."
    )
    batch_size: int = Field(default=16, description="Ingest results written per transaction.")
    upload_dir: Path | None = Field(
        default=None, description="Where uploaded shoots are staged; default: data_dir/uploads."
    )

    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long a sign-in lasts, across reloads, before it must be repeated."
    )

    label_studio_url: str | None = Field(
        default=None, description="An existing Label Studio to use instead of `likeness label serve`'s own."
    )
    label_studio_token: str | None = Field(
        default=None, description="API token (personal access token or legacy) for label_studio_url."
    )
    label_studio_port: int = Field(default=8089, description="Port of the Label Studio that `likeness label serve` starts.")
    label_studio_venv: Path = Field(
        default=Path(".venv-labelstudio"), description="Virtual environment that holds the Label Studio server."
    )
    label_studio_files_root: Path | None = Field(
        default=None, description="The folder Label Studio serves (its LOCAL_FILES_DOCUMENT_ROOT); default: data/labelstudio/files."
    )
    label_overlap: int = Field(default=1, ge=1, le=20, description="Annotators per task on the overlap sample.")
    label_overlap_percent: int = Field(
        default=100, ge=0, le=100, description="Percent of tasks that get label_overlap annotators."
    )
    label_push_batch: int = Field(default=1000, ge=1, le=10_000, description="Tasks imported per request.")

    inception_weights: Path | None = Field(
        default=None,
        description="TorchScript Inception-v3 feature network for FID/KID (e.g. NVIDIA's inception-2015-12-05.pt); "
        "none ships with the workbench.",
    )
    signing_cert: Path | None = Field(
        default=None,
        description="PEM certificate chain (leaf first) that signs Content Credentials; default: a local CA made on first use.",
    )
    signing_key: Path | None = Field(default=None, description="PEM private key of signing_cert.")

    @field_validator("workers")
    @classmethod
    def _workers_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("LIKENESS_WORKERS must be 0 or more")
        return value

    @field_validator("align_size", "preview_size")
    @classmethod
    def _size_sane(cls, value: int) -> int:
        if not 64 <= value <= 8192:
            raise ValueError("must be between 64 and 8192 pixels")
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'likeness.db').resolve()}"

    @cached_property
    def resolved_blob_url(self) -> str:
        return self.blob_url or str((self.data_dir / "blobs").resolve())

    @cached_property
    def label_studio_dir(self) -> Path:
        """Where our own Label Studio keeps its data, log and connection file."""
        return (self.data_dir / "labelstudio").resolve()

    @cached_property
    def resolved_upload_dir(self) -> Path:
        return (self.upload_dir or self.data_dir / "uploads").resolve()
