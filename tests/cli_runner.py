"""Run the `likeness` command tree in-process, the way a user's shell would."""

from __future__ import annotations

import os

from typer.testing import CliRunner, Result

from likeness.cli import build_app
from likeness.workbench import Workbench


def run_cli(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(build_app(), list(args), input=input, catch_exceptions=False)
    assert "Traceback" not in result.output, result.output
    return result


def process_env(workbench: Workbench, **overrides: str) -> dict[str, str]:
    """The environment for a `python -m likeness …` subprocess on this workbench's database and
    blob store; `overrides` are further LIKENESS_* settings (e.g. LIKENESS_WORKERS="1")."""
    settings = workbench.settings
    return {
        **os.environ,
        "LIKENESS_DATABASE_URL": settings.resolved_database_url,
        "LIKENESS_BLOB_URL": settings.resolved_blob_url,
        "LIKENESS_DATA_DIR": str(settings.data_dir),
        "LIKENESS_ALIGN_SIZE": str(settings.align_size),
        "LIKENESS_PREVIEW_SIZE": str(settings.preview_size),
        **overrides,
    }
