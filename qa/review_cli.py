"""`likeness review`: the thumbs-down queue from the command line."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from likeness.cli import console, open_workbench, sub_app
from likeness.errors import NotFound
from likeness.models import User
from qa import review

review_app = sub_app("The review queue: next items, votes and agreement.")


def _reviewer_id(*, session: Session, username: str) -> int:
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFound(f"no user {username}", hint="create one with `likeness user add`")
    return user_id


@review_app.command("next")
def review_next(
    reviewer: str = typer.Option(..., "--as", help="Reviewer's username."),
    limit: int = typer.Option(20, help="How many items."),
) -> None:
    """Show the items this reviewer should look at next (flagged first)."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        items = review.next_items(session=session, reviewer_id=_reviewer_id(session=session, username=reviewer), limit=limit)
        table = Table("item", "source", "flag", "confidence", "image")
        for item in items:
            confidence = f"{item.flag_confidence:.2f}" if item.flag_confidence is not None else "-"
            table.add_row(str(item.id), item.source, item.flag or "-", confidence, item.image_sha256[:12])
        console.print(table if items else "nothing left to review")


@review_app.command("vote")
def review_vote(
    item: int = typer.Argument(..., help="Item number."),
    thumb: str = typer.Argument(..., help="up or down."),
    reviewer: str = typer.Option(..., "--as", help="Reviewer's username."),
    reason: list[str] = typer.Option([], help="Defect reason for a thumbs-down (repeatable)."),
    note: str | None = typer.Option(None, help="Free note."),
) -> None:
    """Vote on an item (a second vote replaces the first)."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        review.cast_vote(session=session, item_id=item, reviewer_id=_reviewer_id(session=session, username=reviewer),
                         thumb=thumb, reasons=reason, note=note)
    console.print(f"item {item}: {thumb} recorded")


@review_app.command("stats")
def review_stats() -> None:
    """Verdicts, reasons and agreement between reviewers per reason (Fleiss' kappa)."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        stats = review.review_stats(session=session)
    console.print(
        f"{stats.items} items, {stats.reviewed_items} reviewed, {stats.votes} votes; "
        f"verdicts: {', '.join(f'{k} {v}' for k, v in sorted(stats.verdicts.items()))}; "
        f"detector flags confirmed: {stats.flagged_confirmed} of {stats.flagged_items}"
    )
    kappa = "-" if stats.thumb_agreement is None else f"{stats.thumb_agreement:.2f}"
    table = Table("reason", "votes", f"kappa ({stats.multi_reviewed_items} shared items)",
                  title=f"thumbs agreement kappa {kappa}")
    for reason, value in stats.agreement.items():
        table.add_row(reason, str(stats.reason_counts.get(reason, 0)), "-" if value is None else f"{value:.2f}")
    console.print(table)
