"""The handles every command and page needs: settings, database and blob store."""

from __future__ import annotations

from dataclasses import dataclass

from likeness.blobstore import BlobStore
from likeness.config import Settings
from likeness.db import Database


@dataclass
class Workbench:
    settings: Settings
    db: Database
    blobs: BlobStore

    @classmethod
    def open(cls, settings: Settings | None = None) -> Workbench:
        settings = settings or Settings()
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            blobs=BlobStore(settings.resolved_blob_url),
        )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
