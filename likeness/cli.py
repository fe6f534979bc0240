"""The `likeness` command: kernel commands plus the stages' sub-apps found through entry points."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from likeness import doctor as doctor_mod
from likeness import logs, users
from likeness.db import PROJECT_ROOT
from likeness.errors import LikenessError
from likeness.models import Role
from likeness.workbench import Workbench

console = Console()
err_console = Console(stderr=True)


def print_line(text: str) -> None:
    """One line of plain output: no rich markup or highlighting, never wrapped mid-word."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


PIPE_WIDTH = 160        # columns of tables printed without a terminal


def print_table(table: Table) -> None:
    """A table at the terminal's width, or wide enough to stay readable in a log or a pipe."""
    (console if console.is_terminal else Console(width=PIPE_WIDTH)).print(table)


def cli_actor(by: str | None = None) -> str:
    """Who a command acts as in the audit trail: `by`, else `cli:<the machine's user>`."""
    if by:
        return by
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


class LikenessGroup(TyperGroup):
    """Turns our own errors into one clear line on stderr and exit 1 (a traceback with --debug)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LikenessError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument, when it names no sub-command, goes to `default_command`
    (so `likeness ingest PATH` means `likeness ingest folder PATH`)."""

    default_command = ""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def sub_app(help_text: str, **kwargs: object) -> typer.Typer:
    """A stage's sub-app with the project's conventions (plain help, no rich tracebacks)."""
    options: dict[str, object] = {"no_args_is_help": True, "rich_markup_mode": None, "pretty_exceptions_enable": False}
    options.update(kwargs)
    return typer.Typer(help=help_text, **options)  # type: ignore[arg-type]


db_app = sub_app("Database schema.")
user_app = sub_app("Workbench users and roles.")


def open_workbench() -> Workbench:
    """The workbench from settings, refusing a database whose schema is behind the code."""
    workbench = Workbench.open()
    workbench.db.require_current()
    return workbench


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Alembic revision to migrate to.")) -> None:
    """Create or migrate the database schema."""
    with Workbench.open() as workbench:
        workbench.db.upgrade(revision)
        console.print(f"database {workbench.db.safe_url} at revision {workbench.db.current_revision()}")


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision of the database and of the code."""
    with Workbench.open() as workbench:
        console.print(f"database {workbench.db.safe_url}: {workbench.db.current_revision() or 'empty'}; code: {workbench.db.head_revision()}")


@user_app.command("add")
def user_add(
    username: str,
    role: Role = typer.Option(..., help="photographer, labeler, reviewer or admin."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True, envvar="LIKENESS_NEW_PASSWORD"),
) -> None:
    """Create a user who can log in to the workbench."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        user = users.create_user(session=session, username=username, password=password, role=role)
        console.print(f"user {user.username} ({user.role}) created")


@user_app.command("list")
def user_list() -> None:
    """List users and their roles."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        table = Table("username", "role", "active")
        for user in users.list_users(session=session):
            table.add_row(user.username, user.role.value, "yes" if user.active else "no")
        console.print(table)


@user_app.command("reset-password")
def user_reset_password(
    username: str,
    password: str = typer.Option(..., prompt="New password", hide_input=True, confirmation_prompt=True, envvar="LIKENESS_NEW_PASSWORD"),
) -> None:
    """Give a user a new password."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        user = users.reset_password(session=session, username=username, password=password, actor="cli")
        console.print(f"password of {user.username} reset")


@user_app.command("deactivate")
def user_deactivate(username: str) -> None:
    """Deactivate a user: signed out at once, cannot sign in until reactivated."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        user = users.set_active(session=session, username=username, active=False, actor="cli")
        console.print(f"user {user.username} deactivated")


@user_app.command("activate")
def user_activate(username: str) -> None:
    """Reactivate a deactivated user."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        user = users.set_active(session=session, username=username, active=True, actor="cli")
        console.print(f"user {user.username} reactivated")


@user_app.command("role")
def user_role(
    username: str,
    role: Role = typer.Argument(..., help="photographer, labeler, reviewer or admin."),
) -> None:
    """Change a user's role (takes effect on their next page load)."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        user = users.set_role(session=session, username=username, role=role, actor="cli")
        console.print(f"user {user.username} is now {user.role.value}")


def doctor(
    repair: bool = typer.Option(False, "--repair", help="Delete orphan blobs and fix rows whose blob is gone."),
    grace: float = typer.Option(doctor_mod.DEFAULT_GRACE_S, help="Keep orphan blobs younger than this (seconds)."),
) -> None:
    """Check that every row's blob exists and every blob is referenced."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        report = doctor_mod.check(session=session, blobs=workbench.blobs)
        console.print(
            f"{report.blobs_stored} blobs stored, {report.blobs_referenced} referenced, "
            f"{len(report.orphan_blobs)} orphan, {len(report.missing)} rows missing a blob, "
            f"{len(report.stale_temp_files)} stale temp files"
        )
        for item in report.missing:
            console.print(f"  missing: {item.table} #{item.row_id} {item.column} -> {item.sha256[:12]}…")
        if repair:
            doctor_mod.repair(session=session, blobs=workbench.blobs, report=report, actor="cli", grace_s=grace)
            console.print(
                f"repaired: {len(report.deleted_rows)} rows deleted (re-ingest their source to restore them), "
                f"{len(report.cleared_refs)} references cleared, {len(report.deleted_blobs)} orphan blobs deleted, "
                f"{len(report.kept_young_orphans)} recent orphans kept"
            )
        elif not report.healthy:
            console.print("run `likeness doctor --repair` to fix")
            raise typer.Exit(1)


def app_command(
    port: int = typer.Option(8501, help="Port for the workbench."),
    address: str = typer.Option("127.0.0.1", help="Address to bind; localhost unless you mean to share it."),
) -> None:
    """Launch the workbench web app."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "streamlit_app.py"),
        "--server.address", address, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]
    raise typer.Exit(subprocess.call(command, env=os.environ.copy()))


def build_app() -> typer.Typer:
    """The complete command tree: kernel commands plus every registered stage."""
    app = typer.Typer(
        cls=LikenessGroup, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
        help="likeness: studio capture, ingest, labeling and training workbench for portrait models.",
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
    ) -> None:
        ctx.obj = {"debug": debug}
        logs.configure(verbose=verbose)

    app.add_typer(db_app, name="db")
    app.add_typer(user_app, name="user")
    app.command("doctor")(doctor)
    app.command("app")(app_command)
    for entry in sorted(entry_points(group="likeness.cli"), key=lambda e: e.name):
        app.add_typer(entry.load(), name=entry.name)
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
