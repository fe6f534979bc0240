"""`likeness capture`: shoot plans, the live hot folder and closing a session."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.table import Table

from capture import plan as plans
from capture.coverage import Coverage, coverage
from likeness.cli import DefaultCommandGroup, console, open_workbench, sub_app
from likeness.errors import InvalidInput

ACTOR = "cli"

capture_app = sub_app("Shoot plans from dataset gaps, and a live hot folder that calls reshoots at once.")


class _PlanGroup(DefaultCommandGroup):
    default_command = "make"

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        # `capture plan --from-spec …` means `capture plan make --from-spec …`.
        if args and args[0].startswith("--") and args[0] not in ("--help",):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


plan_app = sub_app("Shoot plans: made from a snapshot spec's shortfall or a hand-written TOML file.", cls=_PlanGroup)
capture_app.add_typer(plan_app, name="plan")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--date {text!r} is not a date", hint="write it as 2026-11-20") from None


@plan_app.command("make")
def plan_make(
    from_spec: Path | None = typer.Option(None, "--from-spec", help="Snapshot spec (TOML) whose shortfall to plan for."),
    from_file: Path | None = typer.Option(None, "--from-file", help="A hand-written plan (TOML with [[slot]])."),
    date: str | None = typer.Option(None, "--date", help="Planned shoot date; releases must cover it."),
    shoot: str | None = typer.Option(None, "--shoot", help="Shoot name (default: plan-DATE)."),
    lighting: str | None = typer.Option(None, "--lighting", help="Lighting preset for every generated slot."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON, nothing else."),
) -> None:
    """Make a shoot plan, print it and store it on the shoot."""
    if (from_spec is None) == (from_file is None):
        raise InvalidInput("give one of --from-spec SPEC.toml or --from-file PLAN.toml")
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        if from_file is not None:
            plan = plans.read_plan_file(from_file)
            if date is not None and _date(date) != plan.date:
                raise InvalidInput(f"{from_file}: its date {plan.date} is not --date {date}")
            if shoot is not None:
                plan = plans.Plan(shoot, plan.date, plan.slots, [])
        else:
            assert from_spec is not None
            if date is None:
                raise InvalidInput("--from-spec needs --date: releases are judged against the shoot's date")
            day = _date(date)
            shortfall = plans.shortfall_of_spec(session, from_spec, today=dt.date.today(), admin=True)
            people = plans.people_by_code(session, {code for cell in shortfall for code in cell.sitters})
            plan = plans.plan_from_shortfall(shortfall, people=people, shoot=shoot or f"plan-{day}", date=day,
                                             lighting=lighting)
        shoot_id = plans.store_plan(session, plan, actor=ACTOR)
    if as_json:
        typer.echo(json.dumps({"shoot": plan.shoot, "shoot_id": shoot_id, "date": plan.date.isoformat(),
                               "frames": plan.frames, "slots": [s.as_stored() for s in plan.slots],
                               "unfillable": [u.__dict__ for u in plan.unfillable]}, indent=1, ensure_ascii=False))
        return
    table = Table("sitter", "pose", "expression", "lighting", "frames", "fills", title=f"plan for {plan.shoot} on {plan.date}")
    for slot in plan.slots:
        table.add_row(slot.sitter, slot.pose, slot.expression, slot.lighting or "", str(slot.count), slot.cell or "")
    console.print(table)
    for cell in plan.unfillable:
        console.print(f"cannot plan {cell.cell} ({cell.missing} frames): {cell.why}", markup=False, highlight=False)
    console.print(f"{plan.frames} frames in {len(plan.slots)} slots stored on shoot {plan.shoot}")


def print_coverage(cov: Coverage) -> None:
    table = Table("sitter", "pose", "expression", "filled", title=f"plan coverage of {cov.shoot}: {cov.filled} of {cov.planned} frames")
    for entry in cov.slots:
        mark = "done" if entry.done else ""
        table.add_row(entry.slot.sitter, entry.slot.pose, entry.slot.expression, f"{entry.filled}/{entry.slot.count} {mark}")
    console.print(table)
    if cov.unplanned:
        console.print(f"{len(cov.unplanned)} usable frames fill no slot")
    for item in cov.reshoot:
        console.print(f"reshoot {item.relative_path} ({item.sitter or 'no sitter'}): {item.reason}"
                      + (f" — {item.detail}" if item.detail else ""), markup=False, highlight=False)


@plan_app.command("show")
def plan_show(
    shoot: str = typer.Argument(..., help="The shoot's name."),
    as_json: bool = typer.Option(False, "--json", help="Print the coverage as JSON."),
) -> None:
    """Coverage of a shoot's plan: slots filled by usable frames, frames to reshoot."""
    with open_workbench() as workbench, workbench.db.unit_of_work() as session:
        cov = coverage(session, shoot)
    if as_json:
        typer.echo(json.dumps(cov.as_dict(), indent=1, ensure_ascii=False))
        return
    print_coverage(cov)


_COLOURS = {"alert": "red", "verdict": "green", "info": "dim"}


def _say(event: dict) -> None:
    colour = _COLOURS.get(event["kind"], "white")
    if event["kind"] == "verdict" and event.get("words"):
        colour = "yellow"
    stamp = dt.datetime.fromtimestamp(event["at"]).strftime("%H:%M:%S")
    console.print(f"[{colour}]{stamp} {event['message']}[/{colour}]", highlight=False)


@capture_app.command("watch")
def capture_watch(
    folder: Path = typer.Argument(..., help="The hot folder: a shoot folder with shoot.toml, frames in sitter folders."),
    shoot: str = typer.Option(..., "--shoot", help="The shoot's name (as in shoot.toml, else the folder's name)."),
    poll: bool = typer.Option(False, "--poll", help="Poll instead of inotify (network shares, other filesystems)."),
    workers: int = typer.Option(1, "--workers", min=0, help="Warm worker processes (0: in this process)."),
    stable: float = typer.Option(1.0, "--stable", min=0.1, help="Seconds a moved-in or polled file must stay unchanged."),
    give_up: float = typer.Option(5.0, "--give-up", min=0.5, help="Seconds an unchanged file that does not decode waits before it is reported."),
) -> None:
    """Ingest and judge every frame as soon as it is complete; alerts on the terminal (Ctrl-C stops)."""
    import signal

    from capture.watch import Watcher, WatchOptions

    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", hint="pass the shoot folder that holds shoot.toml")
    options = WatchOptions(poll=poll, workers=workers, stable_s=stable, give_up_s=give_up)
    with open_workbench() as workbench:
        watcher = Watcher(workbench, folder, shoot, options=options, say=_say)
        signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
        try:
            stats = watcher.run()
        except KeyboardInterrupt:
            watcher.stop()
            stats = watcher.stats
    console.print(f"stopped: {stats.verdicts} frames judged, {stats.alerts} alerts")


@capture_app.command("hook")
def capture_hook(
    into: Path | None = typer.Option(None, "--into", envvar="LIKENESS_CAPTURE_INTO",
                                     help="The sitter folder of the watched shoot to move each download into."),
) -> None:
    """gphoto2's --hook-script: on ACTION=download, move ARGUMENT (the file) into the hot folder
    under a temporary name, then rename it, which the watcher takes as complete."""
    import os

    from capture.hook import deliver

    action = os.environ.get("ACTION", "")
    if action != "download":
        return  # init, start, stop: nothing to do
    argument = os.environ.get("ARGUMENT")
    if not argument:
        raise InvalidInput("ACTION=download without ARGUMENT (gphoto2 names the downloaded file there)")
    if into is None:
        raise InvalidInput("no folder to deliver into", hint="pass --into or set LIKENESS_CAPTURE_INTO")
    console.print(f"delivered {deliver(Path(argument), into)}", highlight=False)


@capture_app.command("close")
def capture_close(
    shoot: str = typer.Argument(..., help="The shoot's name."),
    folder: Path | None = typer.Option(None, "--folder", help="The shoot folder (default: where it was watched)."),
    as_json: bool = typer.Option(False, "--json", help="Print the coverage as JSON."),
) -> None:
    """Finish a session: ingest anything the watcher missed, shot QA over the whole shoot (the
    record a batch `likeness ingest` gives), then plan coverage and the frames to reshoot."""
    from ingest.api import shoot_id_by_name
    from likeness.models import Shoot
    from pipeline.api import ingest_and_check

    with open_workbench() as workbench:
        with workbench.db.unit_of_work() as session:
            stored = session.get(Shoot, shoot_id_by_name(session=session, name=shoot))
            source = folder or (Path(stored.source_path) if stored is not None and stored.source_path else None)
        if source is None:
            raise InvalidInput(f"shoot {shoot} has no folder on record", hint="pass --folder")
        done = ingest_and_check(workbench=workbench, path=source, actor=ACTOR)
        with workbench.db.unit_of_work() as session:
            cov = coverage(session, shoot)
    if as_json:
        typer.echo(json.dumps({**cov.as_dict(), "ingest": {"accepted": len(done.ingest.accepted),
                                                            "failed": done.ingest.failed},
                               "qa": done.qa.__dict__ if done.qa else None}, indent=1, ensure_ascii=False, default=str))
        return
    if done.qa is not None:
        console.print(f"shot QA: {done.qa.passed} of {done.qa.shots} frames pass")
    for relative, kind, reason in done.ingest.failed:
        console.print(f"failed: {relative}: {reason} ({kind})", markup=False, highlight=False)
    print_coverage(cov)
