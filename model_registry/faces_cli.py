"""`likeness faces`: generated faces — their automatic checks, and a balanced delivery to a spec."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import select

from likeness.cli import open_workbench, print_line, sub_app
from likeness.models import GeneratedImage
from model_registry.delivery import deliver
from qa.generated.store import check_images
from training.snapshots.spec import load_spec

faces_app = sub_app("Generated faces: automatic checks on every image, and balanced deliveries.")


@faces_app.command("check")
def check(checkpoint: int | None = typer.Option(None, "--checkpoint", help="Only this checkpoint's images."),
          every: bool = typer.Option(False, "--all", help="Check again images checked before.")) -> None:
    """Run the image checks on generated faces (by default those not checked yet) and store them."""
    with open_workbench() as workbench:
        with workbench.db.unit_of_work() as session:
            query = select(GeneratedImage.id, GeneratedImage.checks).order_by(GeneratedImage.id)
            if checkpoint is not None:
                query = query.where(GeneratedImage.checkpoint_id == checkpoint)
            # "Not checked yet" is judged in Python: an empty JSON object compares differently per database.
            ids = [row.id for row in session.execute(query) if every or "face_found" not in (row.checks or {})]
        summary = check_images(workbench, ids)
    print_line(summary.describe())


@faces_app.command("export")
def export(spec: Path = typer.Argument(..., help="A dataset snapshot spec (TOML): size and quotas."),
           out: Path = typer.Argument(..., help="Folder for the signed PNGs and attributes.csv.")) -> None:
    """Deliver a balanced set of approved generated faces to the spec's quotas, with Content Credentials."""
    with open_workbench() as workbench:
        delivery = deliver(workbench, load_spec(spec), out)
    for line in delivery.lines():
        print_line(line)
