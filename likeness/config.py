"""Settings, read from LIKENESS_* environment variables with embedded defaults under ./data/."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything that can be configured. Paths default to ./data/ beside the working directory."""

    model_config = SettingsConfigDict(env_prefix="LIKENESS_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Folder for the embedded defaults.")
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
    def resolved_upload_dir(self) -> Path:
        return (self.upload_dir or self.data_dir / "uploads").resolve()
