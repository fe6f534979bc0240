"""`likeness dataset`: build, list, show, check and export dataset snapshots.

The command line runs as the machine's operator: builds may use the admin-only intake statements
(`self.KEY` quotas) and are recorded as built by "cli".
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from likeness.cli import console, err_console, open_workbench, print_line, print_table, sub_app
from likeness.errors import InvalidInput
from likeness.progress import ProgressFn
from training.snapshots import api, report

dataset_app = sub_app("Build balanced, consent-checked dataset snapshots and export them for training.")
ACTOR = "cli"


class ExportSplit(enum.StrEnum):
    train = "train"
    val = "val"
    all = "all"


@contextmanager
def _progress(what: str, *, enabled: bool = True) -> Iterator[ProgressFn]:
    """A rich progress bar on a terminal (nothing otherwise), fed by a ProgressFn."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not (enabled and err_console.is_terminal)) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total or None, description=f"{what}: {name}" if name else what)

        yield update


def _print_report(data: dict[str, Any], *, title: str) -> None:
    print_table(report.balance_table(data, title=title))
    lines = report.shortfall_lines(data)
    if lines:
        print_line(f"shortfall ({len(data.get('shortfall', []))} cell(s)):")
        for line in lines:
            print_line(f"  {line}")
    else:
        print_line("shortfall: none, every quota is within its band")
    print_line(report.split_line(data))
    print_line(report.pool_line(data))


def _write_plot(data: dict[str, Any], path: Path, title: str, *, as_json: bool) -> None:
    try:
        path.write_bytes(report.balance_plot(data, title=title))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot write the plot ({exc.strerror or exc})") from exc
    # With --json, stdout holds the JSON alone.
    (err_console if as_json else console).print(f"balance plot written to {path}", markup=False, highlight=False,
                                                soft_wrap=True)


def _json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=str))


@dataset_app.command("build")
def dataset_build(
    spec: Path = typer.Argument(..., help="The snapshot spec (TOML; see the README's example specs)."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write the balance plot to this PNG file."),
    as_json: bool = typer.Option(False, "--json", help="Print the snapshot and its report as JSON, nothing else."),
) -> None:
    """Build a snapshot from a spec (or find the identical one built before) and print its balance."""
    try:
        text = spec.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{spec}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{spec}: cannot read the spec ({exc})") from None
    with open_workbench() as workbench, _progress(f"build {spec.name}", enabled=not as_json) as progress:
        result = api.build(workbench, text, actor=ACTOR, admin=True, where=str(spec), progress=progress)
    title = f"snapshot #{result.snapshot_id}"
    if plot is not None:
        _write_plot(result.report, plot, f"{title}: target vs achieved", as_json=as_json)
    if as_json:
        _json({"snapshot": {"id": result.snapshot_id, "sha256": result.sha256, "created": result.created},
               **result.report})
        return
    state = "created" if result.created else "existing (an identical snapshot was built before)"
    print_line(f"{title} {result.sha256} {state}")
    _print_report(result.report, title=f"balance of {title}")


@dataset_app.command("list")
def dataset_list() -> None:
    """List the snapshots, newest first."""
    with open_workbench() as workbench:
        rows = api.snapshots(workbench)
    if not rows:
        print_line("no dataset snapshots yet (`likeness dataset build SPEC.toml` builds one)")
        return
    table = Table("id", "hash", "name", "size", "train", "val", "px", "built on", "by", "shortfall", "tainted")
    for s in rows:
        table.add_row(str(s.id), s.sha256[:12], s.name or "", str(s.size), str(s.train), str(s.val), str(s.resolution),
                      s.built_on.isoformat(), s.built_by, str(s.shortfall or ""), "yes" if s.tainted else "")
    print_table(table)


@dataset_app.command("show")
def dataset_show(
    ref: str = typer.Argument(..., help="Snapshot id, or at least 6 characters of its hash."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write the balance plot to this PNG file."),
    as_json: bool = typer.Option(False, "--json", help="Print the snapshot and its report as JSON, nothing else."),
    spec: bool = typer.Option(False, "--spec", help="Also print the spec it was built from."),
) -> None:
    """A snapshot's balance, shortfall, split and what the pool left out."""
    with open_workbench() as workbench:
        s = api.snapshot_detail(workbench, ref)
    title = f"snapshot #{s.id}"
    if plot is not None:
        _write_plot(s.report, plot, f"{title}: target vs achieved", as_json=as_json)
    if as_json:
        _json({"snapshot": {"id": s.id, "sha256": s.sha256, "name": s.name, "size": s.size, "train": s.train,
                            "val": s.val, "resolution": s.resolution, "built_on": s.built_on.isoformat(),
                            "built_by": s.built_by, "tainted": s.tainted, "label_encoding": s.label_encoding},
               **s.report})
        return
    name = f" {s.name!r}" if s.name else ""
    print_line(f"{title}{name} {s.sha256}")
    print_line(f"{s.size} faces ({s.train} train, {s.val} validation) at {s.resolution} px; built on {s.built_on} "
          f"by {s.built_by}" + ("; TAINTED: a member's release was revoked" if s.tainted else ""))
    labels = ", ".join(f"{slot['attribute']} ({slot['kind']}, {slot['width']})" for slot in s.label_encoding)
    print_line(f"label vector: {labels or 'none (unconditional)'}")
    _print_report(s.report, title=f"balance of {title}")
    print_line(report.solver_line(s.report))
    if spec:
        print_line(s.spec_text)


@dataset_app.command("check")
def dataset_check(ref: str = typer.Argument(..., help="Snapshot id, or at least 6 characters of its hash.")) -> None:
    """Re-check consent today: exit 1, naming person and release, when any member's release no longer covers it."""
    today = dt.date.today()
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        snapshot_id = api.find_snapshot_id(session, ref)
        problems = api.check_consent(session, snapshot_id, today=today)
    if not problems:
        print_line(f"snapshot #{snapshot_id}: every member's release still covers training on {today}")
        return
    table = Table("person", "release", "faces", "detail", title=f"snapshot #{snapshot_id}: consent lapsed on {today}",
                  title_justify="left")
    for p in problems:
        table.add_row(p.person, f"#{p.release_id}" if p.release_id is not None else "none", str(p.faces), p.detail)
    print_table(table)
    faces = sum(p.faces for p in problems)
    err_console.print(f"error: snapshot #{snapshot_id}: {faces} face(s) of {len(problems)} person(s) are no longer "
                      f"covered by a release (build a new snapshot)", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@dataset_app.command("export")
def dataset_export(
    ref: str = typer.Argument(..., help="Snapshot id, or at least 6 characters of its hash."),
    dest: Path = typer.Argument(..., help="The .zip to write (or a new folder)."),
    split: ExportSplit = typer.Option(ExportSplit.train, "--split", help="train, val or all."),
) -> None:
    """Export a snapshot in NVIDIA's dataset format with its manifest; refused when consent has lapsed."""
    with open_workbench() as workbench, _progress(f"export {dest.name}") as progress:
        result = api.export(workbench, ref, dest, split=split.value, progress=progress)
    print_line(f"{result.images} {result.split} image(s) written to {result.path} (fingerprint {result.fingerprint[:12]})")
