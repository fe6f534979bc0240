"""`likeness ingest`: a shoot folder ingested, then checked by shot QA; the consent recheck."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ingest import api as ingest_api
from likeness.cli import DefaultCommandGroup, console, open_workbench, sub_app
from pipeline.api import ingest_and_check


class _IngestGroup(DefaultCommandGroup):
    default_command = "folder"


ingest_app = sub_app("Ingest shoot folders (`likeness ingest PATH`).", cls=_IngestGroup)
ACTOR = "cli"


@ingest_app.command("folder")
def ingest_folder(
    path: Path = typer.Argument(..., help="Shoot folder holding shoot.toml and the frames."),
    workers: int | None = typer.Option(None, help="Worker processes (default: LIKENESS_WORKERS or all cores)."),
    qa: bool = typer.Option(True, "--qa/--no-qa", help="Run shot QA on the shoot afterwards."),
) -> None:
    """Ingest every frame of a shoot folder (safe to re-run; resumes after a crash), then run shot QA."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=console, transient=True)
    task = bar.add_task(f"ingest {path}", total=None)

    def progress(done: int, total: int, _path: str) -> None:
        bar.start()  # only once the folder is known to be a shoot: errors stay one line
        bar.update(task, completed=done, total=total)

    try:
        with open_workbench() as workbench:
            done = ingest_and_check(workbench=workbench, path=path, actor=ACTOR, workers=workers, progress=progress, run_qa=qa)
    finally:
        if bar.live.is_started:
            bar.stop()
    print_summary(done.ingest)
    if done.qa is not None:
        console.print(f"shot QA: {done.qa.passed} of {done.qa.shots} frames pass, {done.qa.rejected} newly rejected")
    if not done.ingest.ok:
        raise typer.Exit(1)


def print_summary(summary: ingest_api.IngestSummary) -> None:
    quarantined = sum(len(paths) for paths in summary.quarantined.values())
    table = Table("outcome", "frames", title=f"shoot {summary.shoot}: {summary.files} files in {summary.elapsed_s:.1f} s")
    table.add_row("accepted", str(len(summary.accepted)))
    for reason, paths in sorted(summary.quarantined.items()):
        table.add_row(f"quarantined: {reason}", str(len(paths)))
    table.add_row("duplicates skipped", str(len(summary.duplicates)))
    table.add_row("already stored", str(len(summary.already_stored)))
    table.add_row("failed", str(len(summary.failed)))
    table.add_row("skipped", str(len(summary.skipped)))
    console.print(table)
    for relative, of in summary.duplicates:
        console.print(f"  duplicate: {relative} repeats {of}")
    for relative, kind, reason in summary.failed:
        console.print(f"  [red]failed[/red]: {relative}: {reason} ({kind})")
    for entry in summary.skipped:
        console.print(f"  skipped: {entry.relative_path}: {entry.reason}", markup=False, highlight=False)
    if quarantined:
        console.print(f"{quarantined} frames quarantined; `likeness ingest recheck` re-evaluates them after a release is added")


@ingest_app.command("recheck")
def ingest_recheck(shoot: str | None = typer.Option(None, help="Only this shoot (by name).")) -> None:
    """Re-apply the consent gate to stored frames without decoding them again."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        shoot_id = ingest_api.shoot_id_by_name(session=session, name=shoot)
        result = ingest_api.recheck(session=session, actor=ACTOR, shoot_id=shoot_id)
    console.print(result.describe())
