"""`likeness person` and `likeness release`: sitters and their model releases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from ingest import api
from likeness.cli import console, open_workbench, sub_app

person_app = sub_app("Sitters, known by pseudonymous codes.")
# `release revoke` is added by model_registry.taint_cli: a revocation also taints what was made
# from the sitter's faces, which is the registry's to know (upstream stages never import it).
release_app = sub_app("Model releases: add, revoke, check.")
ACTOR = "cli"


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


@person_app.command("add")
def person_add(
    code: str = typer.Argument(..., help="Pseudonymous code, e.g. P0042."),
    name: str | None = typer.Option(None, help="Legal name (admin-only personal data)."),
    born: str | None = typer.Option(None, help="Date of birth YYYY-MM-DD (decides whether a guardian must sign)."),
    email: str | None = typer.Option(None),
    phone: str | None = typer.Option(None),
) -> None:
    """Register a sitter."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        person = api.add_person(
            session=session, code=code, legal_name=name, date_of_birth=_date(born, "--born"),
            email=email, phone=phone, actor=ACTOR,
        )
        console.print(f"person {person.code} added")


@person_app.command("erase")
def person_erase(
    code: str = typer.Argument(..., help="The sitter's code."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Erase a sitter's personal data on request (name, contact, date of birth, self-identified
    data). The code, releases, release documents (consent evidence) and frames are kept."""
    if not yes:
        typer.confirm(f"Erase the personal data of {code.upper()}? This cannot be undone", abort=True)
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        result = api.erase_personal_data(session=session, code=code, actor=ACTOR)
    console.print(result.describe())


@person_app.command("list")
def person_list(search: str | None = typer.Option(None, help="Only sitters whose code contains this.")) -> None:
    """List sitters with their releases (no personal data)."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        table = Table("code", "releases", "ai_training today")
        for person in api.list_people(session=session, today=dt.date.today(), search=search):
            table.add_row(person.code, str(person.releases), person.ai_training_today)
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
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        release = api.add_release(
            session=session, blobs=workbench.blobs, person_code=code, document=document,
            signed_on=_date(signed, "--signed"), scopes=scope, expires_on=_date(expires, "--expires"),  # type: ignore[arg-type]
            guardian_name=guardian, witness_name=witness, actor=ACTOR,
        )
        console.print(f"release #{release.id} for {code.upper()} recorded ({', '.join(release.scopes)})")


@release_app.command("list")
def release_list(code: str | None = typer.Argument(None, help="Only this sitter.")) -> None:
    """List releases."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        table = Table("#", "sitter", "signed", "expires", "scopes", "guardian", "revoked")
        warnings = []
        for r in api.list_releases(session=session, person_code=code):
            table.add_row(
                str(r.id), r.person, str(r.signed_on), str(r.expires_on or "-"), r.scopes,
                r.guardian or "-", str(r.revoked_on or "-"),
            )
            if (warning := r.expiry_warning(dt.date.today())) is not None:
                warnings.append(warning)
        console.print(table)
        for warning in warnings:
            console.print(f"warning: {warning}", markup=False, highlight=False)


@release_app.command("status")
def release_status(
    code: str = typer.Argument(..., help="The sitter's code."),
    on: str | None = typer.Option(None, help="Capture date, YYYY-MM-DD (default today)."),
    scope: str = typer.Option("ai_training", help="Scope to check."),
) -> None:
    """Say whether a sitter's releases cover a capture on a date."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        person = api.get_person(session=session, code=code)
        status = api.release_status(person, _date(on, "--on") or dt.date.today(), scope)
        console.print(f"{person.code} {scope} on {on or dt.date.today()}: {status.state.value} ({status.detail})")
        if not status.valid:
            raise typer.Exit(1)
