from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import click
import pytest

from likeness.cli import build_app
from likeness.workbench import Workbench
from tests.cli_runner import run_cli

REPO_ROOT = Path(__file__).resolve().parents[2]


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        found.append((path, command))
        if hasattr(command, "commands"):
            found.extend(_commands(cast(click.Group, command), path))
    return found


def test_every_command_has_help_and_is_in_the_readme() -> None:
    import typer

    root = cast(click.Group, typer.main.get_command(build_app()))
    readme = (REPO_ROOT / "README.md").read_text()
    for path, command in _commands(root):
        assert (command.help or "").strip(), f"`likeness {path}` has no help text"
        assert f"likeness {path}" in readme, f"`likeness {path}` is not in README.md"


def test_db_upgrade_creates_the_schema_on_an_empty_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LIKENESS_DATABASE_URL", raising=False)
    result = run_cli("person", "list")
    assert result.exit_code == 1 and result.output.startswith("error: ") and "likeness db upgrade" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run_cli("db", "upgrade").exit_code == 0
    assert (tmp_path / "likeness.db").exists()
    assert run_cli("person", "list").exit_code == 0


def test_user_errors_are_one_line_and_usage_errors_exit_2(env_workbench: Workbench, tmp_path: Path) -> None:
    missing = run_cli("ingest", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1
    assert re.fullmatch(r"error: .*nowhere is not a folder.*\n", missing.output)
    assert run_cli("release", "add", "P1", "--signed", "2026-01-01").exit_code == 2  # missing DOCUMENT
    bad_date = run_cli("person", "add", "P0001", "--born", "yesterday")
    assert bad_date.exit_code == 2 and "not a date" in bad_date.output
    bad_code = run_cli("person", "add", "robert smith")
    assert bad_code.exit_code == 1 and "is not valid" in bad_code.output


def test_users_from_the_command_line(env_workbench: Workbench) -> None:
    created = run_cli("user", "add", "ana", "--role", "reviewer", input="s3cret-pass\ns3cret-pass\n")
    assert created.exit_code == 0 and "ana (reviewer) created" in created.output
    listing = run_cli("user", "list")
    assert "ana" in listing.output and "reviewer" in listing.output
    again = run_cli("user", "add", "ana", "--role", "reviewer", input="s3cret-pass\ns3cret-pass\n")
    assert again.exit_code == 1 and "already exists" in again.output
