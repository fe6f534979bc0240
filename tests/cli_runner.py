"""Run the `likeness` command tree in-process, the way a user's shell would."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from likeness.cli import build_app


def run_cli(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(build_app(), list(args), input=input, catch_exceptions=False)
    assert "Traceback" not in result.output, result.output
    return result
