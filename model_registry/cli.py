"""`likeness registry`: checkpoints with their aliases, quality and taint; promote and demote.

Alias changes are recorded as made by `cli:<the machine's user>` unless `--by` names someone.
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from likeness.cli import cli_actor, console, open_workbench, print_line, print_table, sub_app
from model_registry import aliases, registry
from model_registry.aliases import AliasChange

registry_app = sub_app("Checkpoints with their aliases, metrics and taint.")
BY_HELP = "Who makes the change, for the audit trail (default: cli:<your user name>)."


def _change_line(c: AliasChange) -> str:
    when = c.at.strftime("%Y-%m-%d %H:%M:%S")
    if c.kind == "set":
        what = f"set {c.alias} -> #{c.checkpoint_id}"
    elif c.kind == "move":
        what = f"moved {c.alias} #{c.previous_checkpoint_id} -> #{c.checkpoint_id}"
    else:
        what = f"removed {c.alias} from #{c.previous_checkpoint_id}"
    return f"{when}  {c.actor}  {what}"


@registry_app.command("list")
def registry_list(
    run: str | None = typer.Option(None, help="Only this run's checkpoints (by name)."),
    aliased: bool = typer.Option(False, "--aliased", help="Only checkpoints that hold an alias."),
) -> None:
    """List checkpoints with their run, version, kimg, aliases, FID/KID and taint."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        entries = registry.list_checkpoints(session=session, run_name=run, alias_only=aliased)
    if not entries:
        print_line("no checkpoints" + (" with an alias" if aliased else " yet"))
        return
    table = Table("#", "run", "v", "kimg", "aliases", "FID", "KID", "tainted")
    for e in entries:
        q = e.quality
        fid = "-" if q is None or q.fid is None else f"{q.fid:.4g}"
        kid = "-" if q is None or q.kid is None else f"{q.kid:.4g}"
        if q is not None and q.extractor != "inception":
            fid, kid = f"{fid} ({q.extractor})", f"{kid} ({q.extractor})"
        table.add_row(str(e.id), e.run_name, str(e.version), f"{e.kimg:g}", ", ".join(e.aliases) or "-", fid, kid,
                      "yes" if e.tainted else "no")
    print_table(table)


@registry_app.command("promote")
def registry_promote(
    checkpoint: str = typer.Argument(..., help="Checkpoint id (17 or #17), or an alias it holds (e.g. candidate)."),
    alias: str = typer.Argument(..., help="The alias to point at it: production, candidate or a name of your own."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
) -> None:
    """Point ALIAS at a checkpoint, moving it from the one that held it; audited. A tainted
    checkpoint cannot be promoted."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        checkpoint_id = aliases.resolve(session=session, ref=checkpoint)
        change = aliases.set_alias(session=session, name=alias, checkpoint_id=checkpoint_id,
                                   actor=cli_actor(by))
    if change is None:
        print_line(f"{alias} already points at checkpoint #{checkpoint_id}")
    elif change.previous_checkpoint_id is None:
        print_line(f"{alias} -> checkpoint #{checkpoint_id}")
    else:
        print_line(f"{alias} -> checkpoint #{checkpoint_id} (was #{change.previous_checkpoint_id})")


@registry_app.command("demote")
def registry_demote(
    alias: str = typer.Argument(..., help="The alias to remove (e.g. production)."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
) -> None:
    """Remove ALIAS from the checkpoint that holds it; audited."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        change = aliases.remove_alias(session=session, name=alias, actor=cli_actor(by))
    print_line(f"{alias} removed from checkpoint #{change.previous_checkpoint_id}")


@registry_app.command("show")
def registry_show(
    checkpoint: str = typer.Argument(..., help="Checkpoint id (17 or #17) or an alias (e.g. production)."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored metrics as JSON as well."),
) -> None:
    """Show one checkpoint: run, version, aliases, quality, taint, lineage and its alias history."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        d = registry.checkpoint_detail(session=session, ref=checkpoint)
    e = d.entry
    print_line(f"checkpoint #{e.id}: run {e.run_name} v{e.version}, kimg {e.kimg:g}, "
          f"created {e.created_at.strftime('%Y-%m-%d %H:%M')}")
    print_line(f"  aliases: {', '.join(e.aliases) or '-'}")
    print_line(f"  quality: {e.quality.short() if e.quality is not None else 'no FID/KID stored'}")
    print_line(f"  tainted: {'yes (' + aliases.taint_reason(e.taint) + ')' if e.tainted else 'no'}")
    data = ("outside data (no consent lineage)" if d.external else
            f"dataset snapshot #{d.snapshot_id} ({d.snapshot_sha256})" if d.snapshot_id is not None else "-")
    print_line(f"  trained on: {data}")
    if d.parent_checkpoint_id is not None:
        print_line(f"  resumed from: checkpoint #{d.parent_checkpoint_id}")
    print_line(f"  snapshot file sha256: {e.file_sha256}")
    print_line("  alias history:" + ("" if d.history else " none"))
    for change in d.history:
        print_line(f"    {_change_line(change)}")
    if as_json:
        console.print_json(json.dumps(d.metrics, default=str))


@registry_app.command("history")
def registry_history(
    alias: str | None = typer.Argument(None, help="Only this alias (default: every alias)."),
) -> None:
    """Every alias change, newest first, with who made it and when."""
    with open_workbench() as wb, wb.db.unit_of_work() as session:
        if alias is not None:
            aliases.check_alias_name(alias)
        changes = aliases.history(session=session, alias=alias)
    if not changes:
        print_line("no alias changes" + (f" of {alias}" if alias else " yet"))
    for change in changes:
        print_line(_change_line(change))


# `registry retrain-plan` and `registry clear-taint` (model_registry/taint_cli.py).
from model_registry import taint_cli  # noqa: E402

taint_cli.register(registry_app)
