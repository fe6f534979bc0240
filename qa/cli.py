"""`likeness qa`: evaluate the eye-state detector on a labelled set and recalibrate it.

The commands only parse options and render; the work is in :mod:`qa.evaluate` and
:mod:`qa.calibrate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ingest import api as ingest_api
from likeness.cli import console, err_console, open_workbench, sub_app
from qa import api as qa_api
from qa import calibrate as calibrate_mod
from qa.evaluate import EvaluationReport, evaluate
from qa.eyes import THRESHOLDS_PATH, load_thresholds

qa_app = sub_app("Shot QA and the eye-state detector.")


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int, str], None]]:
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("", total=None)

        def update(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=path)

        yield update


# Column headers short enough for the matrix to fit an 80-column terminal.
_SHORT = {"half_closed": "half", "looking_away": "away", "undetermined": "undet"}


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_report(report: EvaluationReport) -> None:
    """Confusion matrix, per-class precision/recall and the misclassified files."""
    predictions = report.predictions
    matrix = Table(title=f"Confusion matrix ({report.labels_csv.name})",
                   caption="rows: label; columns: detector ("
                   + ", ".join(f"{short} = {cls}" for cls, short in _SHORT.items()) + ")")
    matrix.add_column("label")
    for cls in predictions:
        matrix.add_column(_SHORT.get(cls, cls), justify="right")
    for truth in report.truths:
        counts = [report.confusion.get((truth, p), 0) for p in predictions]
        matrix.add_row(truth, *[f"[bold]{n}[/bold]" if p == truth else (str(n) if n else ".")
                                for n, p in zip(counts, predictions)])
    console.print(matrix)

    scores = Table(title="Per class")
    for name in ("class", "labelled", "predicted", "correct", "precision", "recall"):
        scores.add_column(name, justify="left" if name == "class" else "right")
    for cls, score in report.per_class.items():
        scores.add_row(cls, str(score.support), str(score.predicted), str(score.correct),
                       _fraction(score.precision), _fraction(score.recall))
    console.print(scores)
    console.print(f"accuracy {_fraction(report.accuracy)} over {len(report.results)} images")

    if report.misclassified:
        wrong = Table(title="Misclassified")
        for name in ("file", "label", "predicted", "why"):
            wrong.add_column(name)
        for r in report.misclassified:
            why = "; ".join(f"{v.state.value}: {v.reason}" for v in r.verdicts if v.reason) or "-"
            wrong.add_row(r.relative, r.truth, r.predicted, why)
        console.print(wrong)
    else:
        console.print("no misclassified images")
    if report.faces_on_none:
        console.print("faces reported on images labelled none: "
                      + ", ".join(f"{r.relative} ({len(r.verdicts)})" for r in report.faces_on_none))


@qa_app.command("evaluate-eyes")
def evaluate_eyes(
    labels: Path = typer.Argument(..., help="Labels CSV (path,label); paths relative to its folder."),
    thresholds: Path = typer.Option(None, help="Thresholds JSON to use instead of the calibrated one."),
) -> None:
    """Run the eye-state detector over a labelled set: confusion matrix, precision and recall."""
    chosen = load_thresholds(thresholds)
    with _progress("classifying") as progress:
        report = evaluate(labels, thresholds=chosen, progress=progress)
    render_report(report)


@qa_app.command("calibrate-eyes")
def calibrate_eyes(
    labels: Path = typer.Argument(..., help="Labels CSV (path,label); paths relative to its folder."),
    out: Path = typer.Option(THRESHOLDS_PATH, "--out", help="Where to write the thresholds JSON."),
) -> None:
    """Recalibrate the eye-state thresholds from a labelled set and write them with provenance."""
    with _progress("measuring") as progress:
        result = calibrate_mod.calibrate_from_labels(labels, progress=progress)
    written = calibrate_mod.write_thresholds(result, out)
    table = Table("calibrated threshold", "value")
    for key, value in result.to_json()["calibrated"].items():
        table.add_row(key, f"{value:g}")
    console.print(table)
    console.print(f"written to {written}", soft_wrap=True)
    counts = ", ".join(f"{k} {v}" for k, v in result.provenance.get("n_faces", {}).items())
    console.print(f"calibrated on {counts or 'no faces'}")


@qa_app.command("shots")
def qa_shots(shoot: str | None = typer.Option(None, help="Only this shoot (by name); default all.")) -> None:
    """Measure shot QA (sharpness, exposure, white balance, pose, eyes); reject failing frames."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        shoot_id = ingest_api.shoot_id_by_name(session=session, name=shoot)
        result = qa_api.run_shot_qa(session=session, blobs=workbench.blobs, shoot_id=shoot_id, actor="cli")
    console.print(
        f"{result.shots} frames checked: {result.passed} passed, {result.rejected} newly rejected, "
        f"{result.restored} restored; {result.queued_faces} faces in the review queue"
    )


@qa_app.command("report")
def qa_report(
    shoot: str = typer.Option(..., help="The shoot (by name)."),
    out: Path = typer.Option(Path("consistency.png"), "--out", help="Where to write the PNG plot."),
) -> None:
    """Plot exposure, white balance and sharpness drift across a shoot."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        png = qa_api.consistency_report(session=session, shoot_id=ingest_api.shoot_id_by_name(session=session, name=shoot))  # type: ignore[arg-type]
    out.write_bytes(png)
    console.print(f"consistency report written to {out}", soft_wrap=True)
