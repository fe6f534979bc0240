"""`likeness lineage`: the chain from a person's release to every generated face, up and down."""

from __future__ import annotations

import dataclasses
import json

import typer

from likeness.cli import console, open_workbench, print_line, sub_app
from model_registry.lineage import SHOWN, Kind, Lineage, lineage

lineage_app = sub_app("Lineage: what a person, release, shot, snapshot, checkpoint or image came from and what was made from it.")

SHOW_OPTION = typer.Option(SHOWN, "--show", min=0, help="How many items to name per level (counts are always complete).")
JSON_OPTION = typer.Option(False, "--json", help="Print the lineage as JSON.")


def _print(kind: Kind, ref: str, show: int, as_json: bool) -> None:
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        found = lineage(session, kind, ref, limit=show)
    if as_json:
        console.print_json(json.dumps(_as_dict(found)))
        return
    for line in found.lines():
        print_line(line)


def _as_dict(found: Lineage) -> dict[str, object]:
    return {"kind": found.kind.value, "subject": found.subject, "flags": found.flags,
            "up": [dataclasses.asdict(level) for level in found.up],
            "down": [dataclasses.asdict(level) for level in found.down]}


@lineage_app.command("person")
def person(code: str = typer.Argument(..., help="The sitter's code, e.g. P0042."),
           show: int = SHOW_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Everything made from a sitter's frames: releases, shots, faces, snapshots, runs, checkpoints, images."""
    _print(Kind.person, code, show, as_json)


@lineage_app.command("release")
def release(release_id: str = typer.Argument(..., help="Release number."),
            show: int = SHOW_OPTION, as_json: bool = JSON_OPTION) -> None:
    """A release's sitter, the shots it covers and everything trained on them."""
    _print(Kind.release, release_id, show, as_json)


@lineage_app.command("shot")
def shot(sha: str = typer.Argument(..., help="The shot's SHA-256 (or a prefix of 6+ hex digits)."),
         show: int = SHOW_OPTION, as_json: bool = JSON_OPTION) -> None:
    """A shot's sitter and releases, its faces and everything trained on them."""
    _print(Kind.shot, sha, show, as_json)


@lineage_app.command("snapshot")
def snapshot(ref: str = typer.Argument(..., help="Dataset snapshot id or hash prefix."),
             show: int = SHOW_OPTION, as_json: bool = JSON_OPTION) -> None:
    """A dataset snapshot's people, releases, shots and faces, and the runs, checkpoints and images from it."""
    _print(Kind.snapshot, ref, show, as_json)


@lineage_app.command("checkpoint")
def checkpoint(checkpoint_id: str = typer.Argument(..., help="Checkpoint id."),
               show: int = SHOW_OPTION, as_json: bool = JSON_OPTION) -> None:
    """What a checkpoint learned from (through fine-tuning too), and the runs and images made from it."""
    _print(Kind.checkpoint, checkpoint_id, show, as_json)


@lineage_app.command("image")
def image(sha: str = typer.Argument(..., help="The generated image's SHA-256 (or a prefix of 6+ hex digits)."),
          show: int = SHOW_OPTION, as_json: bool = JSON_OPTION) -> None:
    """A generated image's checkpoint, run, snapshot and the people whose faces trained it."""
    _print(Kind.image, sha, show, as_json)
