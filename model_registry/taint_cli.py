"""`likeness registry retrain-plan` and `likeness registry clear-taint`, registered on the registry's
sub-app by `register(app)`, and `likeness release revoke`, added to ingest's release sub-app
(`release_app` here is that app, and the `release` entry point names it): a revocation taints
everything made from the sitter's faces, which only the registry knows.

The command line runs as the machine's operator, an admin: clearing a taint is allowed there and
audited as `cli:<the machine's user>` unless `--by` names someone.
"""

from __future__ import annotations

import dataclasses
import json

import typer

from ingest.cli import ACTOR, release_app
from likeness.cli import cli_actor, console, open_workbench, print_line
from model_registry.taint import clear_taint, retrain_plan, revoke


@release_app.command("revoke")
def release_revoke(
    release_id: int = typer.Argument(..., help="Release number."),
    reason: str = typer.Option(..., help="Why it is revoked."),
) -> None:
    """Revoke a release in one transaction: every frame it covered is quarantined, and every
    snapshot, run, checkpoint and generated image made from the sitter's faces is tainted."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        result = revoke(session, release_id, reason, ACTOR)
    for line in result.lines():
        print_line(line)


def retrain_plan_command(as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON.")) -> None:
    """List the tainted runs: each must be trained again on a snapshot built without the people named."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        plan = retrain_plan(session)
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(item) for item in plan]))
        return
    if not plan:
        print_line("no tainted runs: nothing to retrain")
        return
    for item in plan:
        print_line(item.describe())
    print_line("build each snapshot again from its spec (`likeness dataset build SPEC`: revoked releases are left out) "
          "and train on the new one")


def clear_taint_command(
    release_id: int = typer.Argument(..., help="The release whose taint is cleared."),
    reason: str = typer.Option(..., help="Why (a new release covers the frames, the revocation was a mistake...)."),
    by: str | None = typer.Option(None, "--by", help="Who clears it, for the audit trail (default: cli:<your user name>)."),
) -> None:
    """Clear a revoked release's taint from every snapshot, run, checkpoint and image (admins only,
    audited); refused while a snapshot still holds a face no release covers today."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        result = clear_taint(session, release_id, reason=reason, actor=cli_actor(by), admin=True)
    print_line(result.describe())


def register(app: typer.Typer) -> None:
    app.command("retrain-plan")(retrain_plan_command)
    app.command("clear-taint")(clear_taint_command)
