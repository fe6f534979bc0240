"""The balance report of a snapshot, for people: a table, a plot and plain lines.

Everything here reads the report dict a build stores with the snapshot (`BuildResult.report`,
`SnapshotSummary.report`): "cells" (target and achieved per quota and joint cell), "shortfall",
"split", "pool", "size" and "size_missing". The CLI prints the table and the lines; the Datasets
page shows the same rows, the plot and the lines.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from rich.table import Table

from training.snapshots.select import Shortfall

OK, SHORT = "✓", "✗"
TARGET_COLOUR = "#b8c2cc"
ACHIEVED_COLOUR = "#2f6fad"
SHORT_COLOUR = "#c0392b"
EXCESS_COLOUR = "#e67e22"


def _cells(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(report.get("cells", []))


def _within(cell: Mapping[str, Any]) -> bool:
    return int(cell["low"]) <= int(cell["achieved"]) <= int(cell["high"])


def _band(cell: Mapping[str, Any]) -> str:
    low, high = int(cell["low"]), int(cell["high"])
    return str(low) if low == high else f"{low}..{high}"


def _number(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def balance_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One plain row per quota cell, marginal cells first, in the spec's order."""
    return [{
        "cell": cell["key"], "kind": "joint" if cell.get("joint") else "marginal", "share": float(cell["share"]),
        "target": _number(float(cell["target"])), "band": _band(cell), "achieved": int(cell["achieved"]),
        "missing": int(cell.get("missing", 0)), "excess": int(cell.get("excess", 0)),
        "ok": OK if _within(cell) else SHORT,
    } for cell in _cells(report)]


def balance_table(report: Mapping[str, Any], *, title: str | None = None) -> Table:
    """Target against achieved for every quota and joint cell, with its tolerance band."""
    size, missing = int(report.get("size", 0)), int(report.get("size_missing", 0))
    caption = f"{size} faces" + (f", {missing} short of the size" if missing else "")
    table = Table(title=title or "Balance", caption=caption, title_justify="left", caption_justify="left")
    table.add_column("cell", overflow="fold")
    table.add_column("kind")
    table.add_column("share", justify="right")
    table.add_column("target", justify="right")
    table.add_column("band", justify="right")
    table.add_column("achieved", justify="right")
    table.add_column("missing", justify="right")
    table.add_column("excess", justify="right")
    table.add_column("ok", justify="center")
    for row in balance_rows(report):
        good = row["ok"] == OK
        table.add_row(row["cell"], row["kind"], f"{row['share']:g}", row["target"], row["band"], str(row["achieved"]),
                      str(row["missing"] or ""), str(row["excess"] or ""), f"[green]{OK}[/]" if good else f"[red]{SHORT}[/]")
    return table


def shortfalls(report: Mapping[str, Any]) -> list[Shortfall]:
    """The report's shortfall back as data (what the capture stage turns into a shot list)."""
    return [Shortfall(key=s["key"], where={k: list(v) for k, v in s["where"].items()}, missing=int(s["missing"]),
                      sitters=list(s["sitters"])) for s in report.get("shortfall", [])]


def shortfall_lines(report: Mapping[str, Any]) -> list[str]:
    """ "needs 37 more: age_band=senior × skin_tone=8-10 (could sit: P0042, …)", one per short cell,
    then the faces missing from the size, if any."""
    lines = [s.describe() for s in shortfalls(report)]
    missing = int(report.get("size_missing", 0))
    if missing:
        lines.append(f"needs {missing} more faces to reach the size {int(report.get('size', 0)) + missing}")
    return lines


def _people(codes: list[str], limit: int = 8) -> str:
    return ", ".join(codes[:limit]) + (" …" if len(codes) > limit else "")


def split_line(report: Mapping[str, Any]) -> str:
    """ "split: 81 train (6 people), 19 validation (2 people: P0002, P0003); 0 people in both" """
    split = report.get("split") or {}
    val_people = list(split.get("validation_people", []))
    leaked = list(split.get("leaked_people", []))
    val = f"{split.get('val', 0)} validation ({len(val_people)} people" + (f": {_people(val_people)})" if val_people else ")")
    both = f"{len(leaked)} people in both" + (f": {_people(leaked)}" if leaked else "")
    line = f"split: {split.get('train', 0)} train ({split.get('train_people', 0)} people), {val}; {both}"
    return line + (f" ({split['note']})" if split.get("note") else "")


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.items())


def pool_line(report: Mapping[str, Any]) -> str:
    """ "pool: 188 eligible; left out: 20 consent: revoked, 4 shot QA not passed; tied: 2 expression" """
    pool = report.get("pool") or {}
    parts = [f"pool: {pool.get('eligible', 0)} eligible"]
    for key, title in (("excluded", "left out"), ("tied", "tied consensus"), ("unlabelled", "unlabelled")):
        if pool.get(key):
            parts.append(f"{title}: {_counts(pool[key])}")
    if len(parts) == 1:
        parts.append("nothing left out")
    return "; ".join(parts)


def solver_line(report: Mapping[str, Any]) -> str:
    solver = report.get("solver") or {}
    timings = report.get("timings") or {}
    took = sum(float(v) for v in timings.values())
    return (f"solver: {solver.get('status', '?')} in {float(solver.get('seconds', 0)):.2f} s over {solver.get('groups', 0)} "
            f"groups; worst deviation {float(report.get('worst_deviation', 0)):.1%} of the size; build {took:.2f} s")


def balance_plot(report: Mapping[str, Any], *, title: str | None = None) -> bytes:
    """A PNG: target and achieved faces per cell as grouped horizontal bars, the tolerance band on
    the target, cells short of their band in red (with how many they miss), over it in orange."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    cells = _cells(report)
    count = max(len(cells), 1)
    figure = Figure(figsize=(9, 1.8 + 0.55 * count), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    ys = list(range(len(cells)))[::-1]          # the first cell on top
    targets = [float(c["target"]) for c in cells]
    achieved = [int(c["achieved"]) for c in cells]
    colours = [SHORT_COLOUR if int(c.get("missing", 0)) else EXCESS_COLOUR if int(c.get("excess", 0)) else ACHIEVED_COLOUR
               for c in cells]
    height = 0.38
    axis.barh([y + height / 2 for y in ys], targets, height=height, color=TARGET_COLOUR)
    axis.barh([y - height / 2 for y in ys], achieved, height=height, color=colours)
    if cells:
        axis.errorbar(targets, [y + height / 2 for y in ys],
                      xerr=[[t - int(c["low"]) for t, c in zip(targets, cells)],
                            [int(c["high"]) - t for t, c in zip(targets, cells)]],
                      fmt="none", ecolor="#333333", capsize=3, linewidth=1)
    top = max([*targets, *achieved, *(int(c["high"]) for c in cells), 1])
    for y, cell, value in zip(ys, cells, achieved):
        missing, excess = int(cell.get("missing", 0)), int(cell.get("excess", 0))
        note = f"{value}" + (f"  short {missing}" if missing else f"  over {excess}" if excess else "")
        axis.text(value + top * 0.01, y - height / 2, note, va="center", fontsize=8,
                  color=SHORT_COLOUR if missing else "#222222", fontweight="bold" if missing else "normal")
    axis.set_yticks(ys, [str(c["key"]).replace(" × ", " ×\n") if c.get("joint") else str(c["key"]) for c in cells],
                    fontsize=8)
    for label, cell in zip(axis.get_yticklabels(), cells):
        if int(cell.get("missing", 0)):
            label.set_color(SHORT_COLOUR)
            label.set_fontweight("bold")
    axis.set_xlim(0, top * 1.18)
    axis.set_xlabel("faces")
    axis.grid(axis="x", alpha=0.3)
    axis.set_axisbelow(True)
    legend = [Patch(color=TARGET_COLOUR, label="target (with band)"), Patch(color=ACHIEVED_COLOUR, label="achieved"),
              Patch(color=SHORT_COLOUR, label="short of band"), Patch(color=EXCESS_COLOUR, label="over band")]
    figure.legend(handles=legend, fontsize=8, loc="lower center", ncol=4, frameon=False)
    short = len(report.get("shortfall", []))
    axis.set_title(title or f"Balance: target vs achieved ({int(report.get('size', 0))} faces"
                   + (f", {short} cell(s) short)" if short else ")"), fontsize=10)
    figure.tight_layout(rect=(0, 0.4 / (1.8 + 0.55 * count), 1, 1))   # room for the legend below
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
