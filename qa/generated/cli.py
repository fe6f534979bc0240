"""`likeness faces`: the automatic checks on generated faces."""

from __future__ import annotations

import typer
from sqlalchemy import select

from likeness.cli import open_workbench, print_line, sub_app
from likeness.models import GeneratedImage
from qa.generated.store import check_images

faces_app = sub_app("Generated faces: automatic checks on every image.")


@faces_app.callback()
def _group() -> None:
    """Generated faces: automatic checks on every image."""


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
    flagged = ", ".join(f"{name} {count}" for name, count in sorted(summary.flagged.items())) or "none"
    print_line(f"checked {summary.checked} generated image(s): {summary.no_face} without a face, "
               f"{summary.mismatched} contradicting their label; flagged: {flagged}")
