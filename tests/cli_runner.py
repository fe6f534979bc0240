"""Run the `likeness` command tree in-process, the way a user's shell would."""

from __future__ import annotations

from typer.testing import CliRunner

from likeness.cli import build_app


def run_cli(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(build_app(), list(args), input=input, catch_exceptions=False)
    assert "Traceback" not in result.output, result.output
    return result
