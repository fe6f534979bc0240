"""`likeness label`: run Label Studio, set up the project, push faces, pull labels, report agreement."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from labeling import api
from likeness.cli import console, err_console, open_workbench, sub_app
from likeness.progress import ProgressFn
from likeness.workbench import Workbench

label_app = sub_app("Labeling in Label Studio: server, project, push and pull.")


@label_app.command("serve")
def serve() -> None:
    """Start our Label Studio on 127.0.0.1 (installing it the first time) and wait until it answers."""
    with Workbench.open() as wb:
        err_console.print("starting Label Studio (the first start installs it and takes a few minutes)…")
        connection = api.serve(workbench=wb)
        console.print(f"Label Studio runs at {connection.url} (pid {connection.pid}); "
                      f"admin {connection.admin_email}, password and token in {wb.settings.label_studio_dir / 'connection.json'}")


@label_app.command("stop")
def stop() -> None:
    """Stop the Label Studio that `serve` started."""
    with Workbench.open() as wb:
        console.print("stopped" if api.stop(workbench=wb) else "no Label Studio of ours was running")


@label_app.command("status")
def status() -> None:
    """Say which Label Studio is used, whether it answers, and the project's pull cursor."""
    with Workbench.open() as wb:
        state = api.status(workbench=wb)
        if state.source == "none":
            console.print("no Label Studio configured: run `likeness label serve` or set LIKENESS_LABEL_STUDIO_URL")
            raise typer.Exit(1)
        where = f" (pid {state.pid}, data in {state.data_dir})" if state.pid else ""
        console.print(f"{state.source} Label Studio at {state.url}: {'running' if state.running else 'NOT answering'}{where}")
        if not state.running:
            raise typer.Exit(1)


@label_app.command("setup")
def setup() -> None:
    """Create the labeling project from the taxonomy, or update its config after a taxonomy change."""
    with open_workbench() as wb:
        result = api.setup(workbench=wb)
    what = "created" if result.created else "config updated" if result.config_changed else "unchanged"
    console.print(f"project {result.ls_project_id}: {what}")
    for attribute, values in result.retired.items():
        console.print(f"  kept retired values of {attribute} still used by annotations: {', '.join(values)}")


def _bar(what: str) -> Progress:
    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), console=err_console, transient=True)


def _advance(bar: Progress) -> ProgressFn:
    """A progress callback that moves a new task of `bar` (no total while it is unknown)."""
    task = bar.add_task("", total=None)

    def advance(done: int, total: int, _name: str) -> None:
        bar.update(task, completed=done, total=total or None)
    return advance


@label_app.command("push")
def push(shoot: str = typer.Option(None, "--shoot", help="Only this shoot's faces.")) -> None:
    """Create a task for every accepted, released face not yet pushed, with our predictions."""
    with open_workbench() as wb, _bar("pushing") as bar:
        result = api.push(workbench=wb, shoot=shoot, progress=_advance(bar))
    console.print(f"pushed {result.pushed} faces ({result.already} were already there"
                  + (f", {result.adopted} adopted from an interrupted push" if result.adopted else "") + ")")
    if result.migrated:
        console.print(f"  moved {result.migrated} tasks onto the served image folder")
    if result.withdrawn:
        console.print(f"  withdrew {result.withdrawn} images of faces that may no longer be labelled")
    for reason, count in sorted(result.withheld.items()):
        console.print(f"  withheld {count}: {reason}")


@label_app.command("pull")
def pull() -> None:
    """Fetch new, edited and deleted annotations into our database."""
    with open_workbench() as wb, _bar("pulling") as bar:
        result = api.pull(workbench=wb, progress=_advance(bar))
    console.print(f"read {result.tasks_read} changed tasks: {result.added} labels added, "
                  f"{result.superseded} superseded, {result.retracted} retracted")
    for item in result.unknown:
        console.print(f"  unknown value kept raw: task {item['task']} {item['attribute']}={item['value']!r}")


@label_app.command("agreement")
def agreement() -> None:
    """Krippendorff's alpha per attribute and the faces annotators disagree on."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        table = Table("attribute", "alpha", "faces rated twice+", "ratings", "metric")
        for row in api.agreement_report(session=session):
            table.add_row(row.attribute, "—" if row.alpha is None else f"{row.alpha:.3f}",
                          str(row.faces_rated_twice), str(row.ratings), row.metric)
        console.print(table)
        split = api.disagreements(session=session)
        ties = sum(d.consensus.tied for d in split)
        console.print(f"{len(split)} disagreements, {ties} tied")
        for item in split[:20]:
            c = item.consensus
            votes = ", ".join(f"{v}×{n}" for v, n in sorted(c.votes.items()))
            console.print(f"  face {c.face_id} {c.attribute}: {votes}" + (" (tie)" if c.tied else f" → {c.value}"))
