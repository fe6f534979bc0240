"""`likeness ingest`, `likeness person`, `likeness release` and `likeness demo`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from ingest import api
from ingest.coordinator import IngestSummary
from likeness.cli import DefaultCommandGroup, console, open_workbench, sub_app
from likeness.models import Person, Release
from qa import api as qa_api


class _IngestGroup(DefaultCommandGroup):
    default_command = "folder"


ingest_app = sub_app("Ingest shoot folders (`likeness ingest PATH`).", cls=_IngestGroup)
person_app = sub_app("Sitters, known by pseudonymous codes.")
release_app = sub_app("Model releases: add, revoke, check.")
ACTOR = "cli"


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


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
        with open_workbench() as wb:
            summary = api.ingest_folder(workbench=wb, path=path, actor=ACTOR, workers=workers, progress=progress)
            if bar.live.is_started:
                bar.stop()
            print_summary(summary)
            if qa:
                with wb.db.unit_of_work() as session:
                    checked = qa_api.run_shot_qa(session=session, blobs=wb.blobs, shoot_id=summary.shoot_id, actor=ACTOR)
                console.print(f"shot QA: {checked.passed} of {checked.shots} frames pass, {checked.rejected} newly rejected")
    finally:
        if bar.live.is_started:
            bar.stop()
    if not summary.ok:
        raise typer.Exit(1)


def print_summary(summary: IngestSummary) -> None:
    quarantined = sum(len(paths) for paths in summary.quarantined.values())
    table = Table("outcome", "frames", title=f"shoot {summary.shoot}: {summary.files} files in {summary.elapsed_s:.1f} s")
    table.add_row("accepted", str(len(summary.accepted)))
    for reason, paths in sorted(summary.quarantined.items()):
        table.add_row(f"quarantined: {reason}", str(len(paths)))
    table.add_row("duplicates skipped", str(len(summary.duplicates)))
    table.add_row("already stored", str(len(summary.already_stored)))
    table.add_row("failed", str(len(summary.failed)))
    console.print(table)
    for relative, of in summary.duplicates:
        console.print(f"  duplicate: {relative} repeats {of}")
    for relative, kind, reason in summary.failed:
        console.print(f"  [red]failed[/red]: {relative}: {reason} ({kind})")
    if quarantined:
        console.print(f"{quarantined} frames quarantined; `likeness ingest recheck` re-evaluates them after a release is added")


@ingest_app.command("recheck")
def ingest_recheck(shoot: str | None = typer.Option(None, help="Only this shoot (by name).")) -> None:
    """Re-apply the consent gate to stored frames without decoding them again."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        shoot_id = api.shoot_id_by_name(session=session, name=shoot)
        result = api.recheck(session=session, actor=ACTOR, shoot_id=shoot_id)
    console.print(f"{result.examined} frames examined: {result.accepted} now accepted, {result.quarantined} now quarantined")


@person_app.command("add")
def person_add(
    code: str = typer.Argument(..., help="Pseudonymous code, e.g. P0042."),
    name: str | None = typer.Option(None, help="Legal name (admin-only personal data)."),
    born: str | None = typer.Option(None, help="Date of birth YYYY-MM-DD (decides whether a guardian must sign)."),
    email: str | None = typer.Option(None),
    phone: str | None = typer.Option(None),
) -> None:
    """Register a sitter."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        person = api.add_person(
            session=session, code=code, legal_name=name, date_of_birth=_date(born, "--born"),
            email=email, phone=phone, actor=ACTOR,
        )
        console.print(f"person {person.code} added")


@person_app.command("list")
def person_list() -> None:
    """List sitters with their releases (no personal data)."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        table = Table("code", "releases", "ai_training today")
        for person in session.scalars(select(Person).order_by(Person.code)):
            state = api.release_status(person, dt.date.today(), "ai_training")
            table.add_row(person.code, str(len(person.releases)), state.state.value)
        console.print(table)


@release_app.command("add")
def release_add(
    code: str = typer.Argument(..., help="The sitter's code."),
    document: Path = typer.Argument(..., help="The signed release: a PDF or an image.", exists=True, dir_okay=False),
    signed: str = typer.Option(..., help="Date signed, YYYY-MM-DD."),
    scope: list[str] = typer.Option(["ai_training"], help="ai_training, commercial, editorial (repeatable)."),
    expires: str | None = typer.Option(None, help="Expiry date, YYYY-MM-DD."),
    guardian: str | None = typer.Option(None, help="Guardian who signed for a minor."),
    witness: str | None = typer.Option(None, help="Witness to the signature."),
) -> None:
    """Record a signed model release and re-check the sitter's frames."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        release = api.add_release(
            session=session, blobs=wb.blobs, person_code=code, document=document,
            signed_on=_date(signed, "--signed"), scopes=scope, expires_on=_date(expires, "--expires"),  # type: ignore[arg-type]
            guardian_name=guardian, witness_name=witness, actor=ACTOR,
        )
        console.print(f"release #{release.id} for {code.upper()} recorded ({', '.join(release.scopes)})")


@release_app.command("revoke")
def release_revoke(
    release_id: int = typer.Argument(..., help="Release number."),
    reason: str = typer.Option(..., help="Why it is revoked."),
) -> None:
    """Revoke a release: every frame it covered is quarantined."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        result = api.revoke_release(session=session, release_id=release_id, reason=reason, actor=ACTOR)
    console.print(f"release #{release_id} revoked; {result.quarantined} frames quarantined")


@release_app.command("list")
def release_list(code: str | None = typer.Argument(None, help="Only this sitter.")) -> None:
    """List releases."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        query = select(Release).join(Person).order_by(Person.code, Release.id)
        if code:
            query = query.where(Person.code == code.upper())
        table = Table("#", "sitter", "signed", "expires", "scopes", "guardian", "revoked")
        for r in session.scalars(query):
            table.add_row(
                str(r.id), r.person.code, str(r.signed_on), str(r.expires_on or "-"), ", ".join(r.scopes),
                r.guardian_name or "-", str(r.revoked_on or "-"),
            )
        console.print(table)


@release_app.command("status")
def release_status(
    code: str = typer.Argument(..., help="The sitter's code."),
    on: str | None = typer.Option(None, help="Capture date, YYYY-MM-DD (default today)."),
    scope: str = typer.Option("ai_training", help="Scope to check."),
) -> None:
    """Say whether a sitter's releases cover a capture on a date."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        person = api.get_person(session=session, code=code)
        status = api.release_status(person, _date(on, "--on") or dt.date.today(), scope)
        console.print(f"{person.code} {scope} on {on or dt.date.today()}: {status.state.value} ({status.detail})")
        if not status.valid:
            raise typer.Exit(1)
