"""`likeness provenance`: read and validate the Content Credentials of a file."""

from __future__ import annotations

from likeness.cli import sub_app

provenance_app = sub_app("Read and validate Content Credentials (C2PA) on exported faces.")
