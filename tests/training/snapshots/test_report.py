"""The balance report read back from a stored report dict: rows, table, lines and plot."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from rich.console import Console

from training.snapshots import report

REPORT: dict[str, Any] = {
    "size": 98, "size_missing": 2,
    "cells": [
        {"key": "age_band=adult", "where": {"age_band": ["adult"]}, "share": 0.5, "target": 50.0, "low": 48, "high": 52,
         "achieved": 50, "joint": False, "missing": 0, "excess": 0},
        {"key": "age_band=*", "where": {"age_band": ["child", "teen"]}, "share": 0.5, "target": 50.0, "low": 48,
         "high": 52, "achieved": 55, "joint": False, "missing": 0, "excess": 3},
        {"key": "age_band=senior × skin_tone=8-10", "where": {"age_band": ["senior"], "skin_tone": ["8", "9", "10"]},
         "share": 0.1, "target": 10.0, "low": 10, "high": 10, "achieved": 3, "joint": True, "missing": 7, "excess": 0},
    ],
    "shortfall": [{"key": "age_band=senior × skin_tone=8-10", "where": {"age_band": ["senior"], "skin_tone": ["8", "9", "10"]},
                   "missing": 7, "sitters": [f"P{i:04d}" for i in range(10)]}],
    "split": {"train": 80, "val": 18, "validation_people": ["P0002", "P0007"], "train_people": 9, "leaked_people": [],
              "cells": {}, "note": None},
    "pool": {"eligible": 400, "excluded": {"consent: revoked": 20, "shot QA not passed": 4}, "tied": {"expression": 2},
             "unlabelled": {}},
    "solver": {"status": "Optimal", "seconds": 0.5, "groups": 40},
    "worst_deviation": 0.07, "timings": {"pool": 0.1, "select": 0.5},
}


def test_rows_mark_each_cell_within_or_outside_its_band() -> None:
    rows = report.balance_rows(REPORT)
    assert [(r["cell"], r["kind"], r["band"], r["ok"]) for r in rows] == [
        ("age_band=adult", "marginal", "48..52", "✓"), ("age_band=*", "marginal", "48..52", "✗"),
        ("age_band=senior × skin_tone=8-10", "joint", "10", "✗")]
    assert (rows[1]["excess"], rows[2]["missing"], rows[2]["target"]) == (3, 7, "10")


def test_the_table_and_the_lines() -> None:
    console = Console(width=160, record=True)
    console.print(report.balance_table(REPORT, title="balance of snapshot #3"))
    text = console.export_text()
    assert "balance of snapshot #3" in text and "98 faces, 2 short of the size" in text
    assert "age_band=senior × skin_tone=8-10" in text and text.count("✗") == 2 and text.count("✓") == 1

    assert report.shortfall_lines(REPORT) == [
        "needs 7 more: age_band=senior × skin_tone=8-10 (could sit: P0000, P0001, P0002, P0003, P0004, P0005, P0006, "
        "P0007 …)",
        "needs 2 more faces to reach the size 100"]
    [short] = report.shortfalls(REPORT)
    assert short.missing == 7 and short.where["skin_tone"] == ["8", "9", "10"] and len(short.sitters) == 10
    assert report.split_line(REPORT) == "split: 80 train (9 people), 18 validation (2 people: P0002, P0007); 0 people in both"
    assert report.pool_line(REPORT) == ("pool: 400 eligible; left out: 20 consent: revoked, 4 shot QA not passed; "
                                        "tied consensus: 2 expression")
    assert report.solver_line(REPORT).startswith("solver: Optimal in 0.50 s over 40 groups; worst deviation 7.0%")


def test_the_plot_is_a_png_with_a_row_per_cell() -> None:
    png = report.balance_plot(REPORT)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width == 900
    taller = report.balance_plot({**REPORT, "cells": REPORT["cells"] * 3})
    assert Image.open(io.BytesIO(taller)).height > image.height
    empty = Image.open(io.BytesIO(report.balance_plot({"cells": [], "shortfall": []})))
    assert empty.format == "PNG"
