"""`likeness filter`: learn the filter from reviewers' votes on generated faces, measure it, and
let it decide the faces a machine can decide.

Training is recorded as made by `cli:<the machine's user>` unless `--by` names someone.
"""

from __future__ import annotations

import typer

from likeness.cli import cli_actor, open_workbench, print_line, sub_app
from qa.filter import store

filter_app = sub_app("The filter learned from reviewers' votes on generated faces.")


@filter_app.command("train")
def filter_train(
    seed: int = typer.Option(0, help="Seed of the split into training, calibration and held-out votes."),
    no_activate: bool = typer.Option(False, "--no-activate", help="Store the new version without making it active."),
    by: str | None = typer.Option(None, "--by", help="Who trains it, for the audit trail (default: cli:<your user name>)."),
) -> None:
    """Learn a new version from every clear verdict on generated faces; thresholds calibrated on held-out votes."""
    with open_workbench() as wb:
        version = store.train(wb, actor=cli_actor(by), seed=seed, activate=not no_activate)
    print_line(version.describe())


@filter_app.command("evaluate")
def filter_evaluate(version: int | None = typer.Option(None, help="The version to measure (default: the active one).")) -> None:
    """A version's held-out figures, and its calls measured on the verdicts given since it was trained."""
    with open_workbench() as wb:
        found = store.evaluate(wb, version=version)
    for line in found.lines():
        print_line(line)


@filter_app.command("decide")
def filter_decide(
    checkpoint: int | None = typer.Option(None, help="Only the faces of this checkpoint."),
    redecide: bool = typer.Option(False, "--redecide", help="Also faces an earlier version decided."),
    version: int | None = typer.Option(None, help="The version to apply (default: the active one)."),
) -> None:
    """Accept or reject the generated faces the filter is sure of; the rest stay in the review queue."""
    with open_workbench() as wb:
        ids = store.image_ids_of_checkpoint(wb, checkpoint) if checkpoint is not None else None
        result = store.decide(wb, image_ids=ids, version=version, redecide=redecide)
    print_line(result.describe())


@filter_app.command("list")
def filter_list() -> None:
    """Every version, newest last."""
    with open_workbench() as wb:
        versions = store.filters(wb)
    if not versions:
        print_line("no filter yet: `likeness filter train` learns one from the reviewers' votes")
    for v in versions:
        print_line(v.describe())
