"""Snapshot benchmark: a 10,000-face dataset snapshot from the seed studio's pool, against naive
per-attribute stratified sampling of the same pool.

    python -m bench.snapshots [--people 69] [--faces 29000] [--size 10000] [--rounds 3] [--keep DIR]
                              [--postgres] [--json PATH]

What it does, in one run:

1. Writes the pool (set-up, reported but not counted): ``--people`` sitters with ``--faces``
   accepted faces between them, straight into the real schema (``samples.labelled_pool.add_pool``,
   one annotator's labels, so every label is the consensus). The roster is skewed as a studio's
   is: more adults than children or seniors, few androgynous presentations, Monk tones 2–6 more
   common than 8–10, a few sitters with most of the frames. Age band, gender presentation and skin
   tone are the person's; expression, head pose and `usable` vary frame by frame (children smile
   more). Some sitters' releases are revoked or expired by the build date, one has none and one
   child has no guardian's signature, so the consent rule leaves their faces out.
2. For each round, in turn (a, b, a, b ...), each side in a fresh subprocess on a fresh copy of the
   pool (so set-up memory does not count, and every build stores its snapshot):

   a. ours: ``training.snapshots.build.build_snapshot`` with the spec below (four marginal quotas,
      two joint quotas, tolerance 0.01, a per-person cap and a validation share), committed; the
      report's timings per step (pool, select, split, store), the CBC time inside select and
      split, the commit, peak RSS and CPU time of the process (CBC included);
   b. the baseline: the same eligible pool (``eligible_pool``, timed apart), then independent
      per-attribute stratified sampling (``stratified_baseline``): each attribute's quota in
      turn, topping cells up or thinning them at random to their targets, blind to the joint
      cells and to what later attributes undo.

3. Prints a table (min and median over the rounds; worst deviation on marginal and joint cells;
   whether every quota is within tolerance; the time ratios ours / baseline; peak RSS against
   1 GB; build time against 10 s) and, as the last line of stdout, the figures as JSON.

SQLite in a temporary folder is the default; ``--postgres`` uses ``$LIKENESS_TEST_POSTGRES_URL``
(an admin URL) or starts a throw-away server from the Debian binaries, and copies the pool per
round with ``CREATE DATABASE ... TEMPLATE``.
"""

from __future__ import annotations

# Only the standard library at module level: each side runs in a fresh interpreter that imports
# this module, and the measured process must not pay for imports the side does not need.
import argparse
import datetime as dt
import functools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import (
    ACTOR,
    REPO,
    CpuMeter,
    Step,
    StepClock,
    compare,
    cpu_model,
    load_line,
    peak_rss_mib,
    stats,
    timed,
    verdict,
    wait_for_quiet,
)

BUILD_TARGET_S = 10.0
RSS_TARGET_MIB = 1024.0
SHOOT_DATE = dt.date(2026, 6, 1)          # the pool's first shoot (samples.labelled_pool.SHOOT_DATE)
BUILD_DATE = dt.date(2026, 10, 1)         # after the revocations and expiries of the roster

# ---- The roster --------------------------------------------------------------------------------

AGE_BANDS = {"child": 7, "teen": 5, "young_adult": 18, "adult": 25, "senior": 14}   # people per band
GENDER_WEIGHTS = {"feminine": 0.50, "masculine": 0.44, "androgynous": 0.06}
MONK_WEIGHTS = (3, 8, 12, 13, 12, 10, 8, 6, 4, 3)                                   # Monk 1..10
EXPRESSION_WEIGHTS = {"neutral": 0.38, "smile": 0.30, "grin": 0.10, "laugh": 0.08, "surprise": 0.06, "sad": 0.04,
                      "angry": 0.04}
POSE_WEIGHTS = {"frontal": 0.50, "three_quarter_left": 0.15, "three_quarter_right": 0.15, "profile_left": 0.05,
                "profile_right": 0.05, "up": 0.05, "down": 0.05}
UNUSABLE_SHARE = 0.04
# Releases the consent rule refuses on the build date (by position in the roster, adults mostly).
EXCLUDED_RELEASES = {3: "revoked", 11: "revoked", 40: "revoked", 20: "expired", 52: "expired", 30: "none"}

SPEC_TOML = """\
name = "bench: seed studio, 10k"
size = {size}
resolution = 256
seed = 7
tolerance = 0.01
max_person_share = 0.05
validation_share = 0.1
label_attributes = ["age_band", "gender_presentation", "skin_tone", "expression"]

[filters]
shot_qa = "passed"
labels = {{ usable = "yes" }}

[quotas.age_band]
child = 0.12
teen = 0.08
young_adult = 0.25
adult = 0.33
senior = 0.22

[quotas.gender_presentation]
feminine = 0.50
masculine = 0.46
androgynous = 0.04

[quotas.skin_tone]
"1-3" = 0.30
"4-7" = 0.50
"8-10" = 0.20

[quotas.expression]
neutral = 0.35
smile = 0.30
grin = 0.10
"*" = 0.25

[[joint]]
where = {{ age_band = "senior", skin_tone = "8-10" }}
share = 0.06

[[joint]]
where = {{ age_band = "child", expression = "smile" }}
share = 0.05
"""


def spec_text(size: int) -> str:
    return SPEC_TOML.format(size=size)


def _weighted(rng: random.Random, weights: dict[str, float], count: int) -> list[str]:
    return rng.choices(list(weights), weights=list(weights.values()), k=count)


def roster(people: int = 69, faces: int = 29_000, seed: int = 12) -> list[Any]:
    """The sitters (``SitterPlan``) of a studio roster, deterministic for a seed; ``people`` below
    69 scales the bands down (at least one person each)."""
    from samples.labelled_pool import SitterPlan

    rng = random.Random(seed)
    scale = people / sum(AGE_BANDS.values())
    bands = [band for band, n in AGE_BANDS.items() for _ in range(max(1, round(n * scale)))]
    while len(bands) > people:
        bands.remove("adult")
    while len(bands) < people:
        bands.append("adult")
    rng.shuffle(bands)
    # Face counts: a long tail (a few regulars sat many times), summing to `faces`.
    raw = [rng.lognormvariate(0.0, 0.55) for _ in range(people)]
    counts = [max(20, int(faces * r / sum(raw))) for r in raw]
    counts[counts.index(max(counts))] += faces - sum(counts)
    tones_seen: Counter[tuple[str, bool]] = Counter()
    plans = []
    for index, (band, count) in enumerate(zip(bands, counts, strict=True)):
        tone = rng.choices(range(1, 11), weights=MONK_WEIGHTS)[0]
        if band == "senior" and tones_seen[(band, True)] < 3 and tone < 8 and index % 2:
            tone = rng.choice((8, 9, 10))  # a studio that recruits seniors of darker tones on purpose
        tones_seen[(band, tone >= 8)] += 1
        gender = _weighted(rng, GENDER_WEIGHTS, 1)[0]
        expression = dict(EXPRESSION_WEIGHTS)
        if band == "child":
            expression.update(smile=0.45, neutral=0.23)
        expression = {k: v * rng.uniform(0.7, 1.3) for k, v in expression.items()}  # each sitter their own mix
        minor = band in ("child", "teen")
        release = EXCLUDED_RELEASES.get(index, "minor_guardian" if minor else "signed")
        plans.append(SitterPlan(
            code=f"S{index + 1:03d}", faces=count,
            person={"age_band": band, "gender_presentation": gender, "skin_tone": str(tone)},
            frames={"expression": _weighted(rng, expression, count), "head_pose": _weighted(rng, POSE_WEIGHTS, count),
                    "usable": rng.choices(("yes", "no"), weights=(1 - UNUSABLE_SHARE, UNUSABLE_SHARE), k=count)},
            release=release, shoots=1 + index % 4,
        ))
    children = [i for i, p in enumerate(plans) if p.person["age_band"] == "child"]
    if len(children) > 1:  # the smallest child's guardian never signed
        smallest = min(children, key=lambda i: plans[i].faces)
        plans[smallest] = _with_release(plans[smallest], "minor_no_guardian")
    return plans


def _with_release(plan: Any, release: str) -> Any:
    from dataclasses import replace

    return replace(plan, release=release)


def roster_summary(plans: Sequence[Any]) -> dict[str, Any]:
    def tally(key: str) -> dict[str, int]:
        return dict(sorted(Counter(p.person[key] for p in plans).items()))

    return {"people": len(plans), "faces": sum(p.faces for p in plans), "age_band": tally("age_band"),
            "gender_presentation": tally("gender_presentation"), "skin_tone": tally("skin_tone"),
            "releases": dict(sorted(Counter(p.release for p in plans).items()))}


# ---- The databases -----------------------------------------------------------------------------


class SqliteStore:
    """The pool in one SQLite file; each round builds on a copy of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pristine = root / "pool.db"

    def url(self, path: Path) -> str:
        return f"sqlite:///{path.resolve()}"

    def pool_url(self) -> str:
        return self.url(self.pristine)

    def finish_pool(self) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.pool_url())
        with engine.connect() as conn:   # fold the WAL into the file, so a plain copy is the whole pool
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        engine.dispose()

    @contextmanager
    def copy(self, name: str) -> Iterator[str]:
        target = self.root / f"{name}.db"
        shutil.copyfile(self.pristine, target)
        try:
            yield self.url(target)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        pass


class PostgresStore:
    """The pool in one PostgreSQL database; each round builds on a TEMPLATE copy of it."""

    def __init__(self, admin_url: str, server: Any = None) -> None:
        from sqlalchemy import create_engine

        self.admin_url, self.server = admin_url, server
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"likeness_bench_pool_{uuid.uuid4().hex[:8]}"
        self._execute(f'CREATE DATABASE "{self.name}"')

    def _execute(self, sql: str) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(sql))

    def url(self, name: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def pool_url(self) -> str:
        return self.url(self.name)

    def finish_pool(self) -> None:
        pass

    @contextmanager
    def copy(self, name: str) -> Iterator[str]:
        target = f"{self.name}_{name}"
        self._execute(f'CREATE DATABASE "{target}" TEMPLATE "{self.name}"')
        try:
            yield self.url(target)
        finally:
            self._execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')

    def close(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()
        if self.server is not None:
            self.server.stop()


def open_store(root: Path, postgres: bool) -> SqliteStore | PostgresStore:
    if not postgres:
        return SqliteStore(root)
    given = os.environ.get("LIKENESS_TEST_POSTGRES_URL")
    if given:
        return PostgresStore(given)
    sys.path.insert(0, str(REPO))
    from tests.postgres_server import PostgresServer, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("--postgres: set LIKENESS_TEST_POSTGRES_URL or install the Debian package postgresql")
    server = PostgresServer(bin_dir).start()
    return PostgresStore(server.url(), server)


def write_pool(url: str, plans: Sequence[Any]) -> dict[str, list[int]]:
    """The schema at head and the roster's pool, in one transaction."""
    from likeness.db import Database
    from samples.labelled_pool import add_pool

    db = Database(url)
    try:
        db.upgrade()
        with db.unit_of_work() as session:
            return add_pool(session, None, plans, shoot_date=SHOOT_DATE)
    finally:
        db.close()


# ---- The baseline ------------------------------------------------------------------------------


def stratified_baseline(candidates: Sequence[Any], spec: Any, seed: int = 0) -> list[Any]:
    """Independent per-attribute stratified sampling, the naive way: for each attribute with a
    marginal quota, in the spec's order, bring every cell of that attribute to round(share × size)
    faces, removing random faces from cells above target and adding random faces of the pool
    from cells below it (skipping people already at the cap). Joint quotas are not looked at, and a
    later attribute undoes what an earlier one balanced."""
    rng = random.Random(seed)
    size = spec.size
    cap = math.floor(spec.max_person_share * size + 1e-9)
    marginals: dict[str, list[Any]] = defaultdict(list)
    for quota in spec.quotas:
        if not quota.joint:
            marginals[quota.cells[0].attribute].append(quota)
    chosen: dict[int, Any] = {}
    per_person: Counter[int] = Counter()
    for attribute, quotas in marginals.items():
        for quota in quotas:
            values = set(quota.cells[0].values)
            want = round(quota.share * size)
            inside = [c for c in chosen.values() if c.attributes.get(attribute) in values]
            if len(inside) > want:
                for candidate in rng.sample(inside, len(inside) - want):
                    del chosen[candidate.face_id]
                    per_person[candidate.person_id] -= 1
                continue
            spare = [c for c in candidates if c.attributes.get(attribute) in values and c.face_id not in chosen]
            rng.shuffle(spare)
            for candidate in spare:
                if len(inside) >= want:
                    break
                if per_person[candidate.person_id] >= cap:
                    continue
                chosen[candidate.face_id] = candidate
                per_person[candidate.person_id] += 1
                inside.append(candidate)
    return sorted(chosen.values(), key=lambda c: c.face_id)


def deviations(chosen: Sequence[Any], spec: Any) -> list[dict[str, Any]]:
    """Each quota's achieved count against its target and tolerance band (as the build reports them)."""
    from training.snapshots.select import band

    size = spec.size
    out = []
    for quota in spec.quotas:
        achieved = sum(1 for c in chosen if all(c.attributes.get(x.attribute) in x.values for x in quota.cells))
        target = quota.share * size
        low, high = band(target, spec.tolerance * size)
        out.append({"key": quota.key, "joint": quota.joint, "target": target, "low": low, "high": high,
                    "achieved": achieved, "deviation": abs(achieved - target) / max(len(chosen), 1),
                    "within": low <= achieved <= high})
    return out


def worst(cells: Sequence[dict[str, Any]], joint: bool | None = None) -> float:
    return max((c["deviation"] for c in cells if joint is None or c["joint"] is joint), default=0.0)


# ---- One side, in a fresh process --------------------------------------------------------------


# Steps inside the build that the report's timings do not split: the CBC solves.
SOLVE_STEPS = (
    Step("select", "training.snapshots.build", "select_faces"),
    Step("split", "training.snapshots.build", "split_by_person"),
    Step("solve in select", "pulp:LpProblem", "solve", parent="select"),
    Step("solve in split", "pulp:LpProblem", "solve", parent="split"),
)


def run_ours(url: str, size: int) -> dict[str, Any]:
    """Build and commit the snapshot; timings, the solver's share, peak RSS and the quota cells."""
    from likeness.db import Database
    from training.snapshots.build import build_snapshot
    from training.snapshots.spec import parse_spec

    text = spec_text(size)
    spec = parse_spec(text, where="bench")
    db = Database(url)
    try:
        with db.unit_of_work() as session:   # connect and warm the engine before timing
            session.connection()
        rss_before = peak_rss_mib()
        clock = StepClock()
        restore = clock.instrument(SOLVE_STEPS)
        meter = CpuMeter().start()
        started = time.perf_counter()
        try:
            with db.unit_of_work() as session:
                result = build_snapshot(session=session, spec=spec, spec_text=text, today=BUILD_DATE, actor=ACTOR,
                                        admin=False)
                committing = time.perf_counter()
            commit_s = time.perf_counter() - committing
        finally:
            restore()
        total_s = time.perf_counter() - started
        load = meter.stop()
    finally:
        db.close()
    report = result.report
    cells = [{"key": c["key"], "joint": c["joint"], "target": c["target"], "low": c["low"], "high": c["high"],
              "achieved": c["achieved"], "deviation": abs(c["achieved"] - c["target"]) / max(report["size"], 1),
              "within": c["missing"] == 0 and c["excess"] == 0} for c in report["cells"]]
    return {
        "side": "ours", "seconds": total_s, "timings": report["timings"], "commit_s": commit_s,
        "solve_select_s": clock.seconds("solve in select")[0], "solve_split_s": clock.seconds("solve in split")[0],
        "solver_report_s": report["solver"]["seconds"], "solver_status": report["solver"]["status"],
        "groups": report["solver"]["groups"], "pool": report["pool"], "size": report["size"],
        "size_missing": report["size_missing"], "shortfall": report["shortfall"],
        "split": {k: report["split"][k] for k in ("train", "val", "train_people", "leaked_people")},
        "cells": cells, "worst_deviation": worst(cells), "worst_marginal": worst(cells, False),
        "worst_joint": worst(cells, True), "all_within": all(c["within"] for c in cells),
        "rss_before_mib": rss_before, "peak_rss_mib": peak_rss_mib(),
        "created": result.created, **load,
    }


def run_baseline(url: str, size: int) -> dict[str, Any]:
    """The same eligible pool, then naive stratified sampling; its time and its quota cells."""
    from likeness.db import Database
    from training.snapshots.pool import eligible_pool
    from training.snapshots.spec import parse_spec

    spec = parse_spec(spec_text(size), where="bench")
    db = Database(url)
    try:
        with db.unit_of_work() as session:
            session.connection()
        rss_before = peak_rss_mib()
        meter = CpuMeter().start()
        started = time.perf_counter()
        with db.unit_of_work() as session:
            pool = eligible_pool(session=session, spec=spec, today=BUILD_DATE, admin=False)
        pool_s = time.perf_counter() - started
        sampled = time.perf_counter()
        chosen = stratified_baseline(pool.candidates, spec, seed=spec.seed)
        sample_s = time.perf_counter() - sampled
        load = meter.stop()
    finally:
        db.close()
    cells = deviations(chosen, spec)
    return {
        "side": "baseline", "seconds": pool_s + sample_s, "pool_s": pool_s, "sample_s": sample_s,
        "size": len(chosen), "cells": cells, "worst_deviation": worst(cells), "worst_marginal": worst(cells, False),
        "worst_joint": worst(cells, True), "all_within": all(c["within"] for c in cells),
        "cells_outside": sum(not c["within"] for c in cells),
        "rss_before_mib": rss_before, "peak_rss_mib": peak_rss_mib(), **load,
    }


SIDES: dict[str, Callable[[str, int], dict[str, Any]]] = {"ours": run_ours, "baseline": run_baseline}


def run_side(side: str, url: str, size: int) -> dict[str, Any]:
    """One side in a fresh interpreter (``--side``); its figures from the last line of its stdout."""
    command = [sys.executable, "-m", "bench.snapshots", "--side", side, "--url", url, "--size", str(size)]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    lines = run.stdout.strip().splitlines()
    if run.returncode != 0 or not lines:
        raise SystemExit(f"the {side} run failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---- The run -----------------------------------------------------------------------------------


def summarise(ours: list[dict[str, Any]], baseline: list[dict[str, Any]], setup: dict[str, Any]) -> dict[str, Any]:
    def each(runs: list[dict[str, Any]], get: Callable[[dict[str, Any]], float]) -> list[float]:
        return [get(r) for r in runs]

    build = each(ours, lambda r: r["seconds"])
    select_s = each(ours, lambda r: r["timings"]["select"])
    peak = max(r["peak_rss_mib"] for r in ours)
    figures = {
        **setup,
        "rounds": len(ours),
        "build_s": stats(build),
        "cpu_s_ours": stats(each(ours, lambda r: r["cpu_s"])),
        "timings_s": {step: stats([r["timings"][step] for r in ours]) for step in ours[0]["timings"]},
        "commit_s": stats(each(ours, lambda r: r["commit_s"])),
        "solve_select_s": stats(each(ours, lambda r: r["solve_select_s"])),
        "solve_split_s": stats(each(ours, lambda r: r["solve_split_s"])),
        "solver_status": sorted({r["solver_status"] for r in ours}),
        "groups": ours[0]["groups"],
        "pool": ours[0]["pool"],
        "size": ours[0]["size"],
        "shortfall": ours[0]["shortfall"],
        "split": ours[0]["split"],
        "peak_rss_mib": peak, "rss_before_build_mib": max(r["rss_before_mib"] for r in ours),
        "worst_deviation": max(r["worst_deviation"] for r in ours),
        "worst_marginal": max(r["worst_marginal"] for r in ours),
        "worst_joint": max(r["worst_joint"] for r in ours),
        "all_within": all(r["all_within"] for r in ours),
        "cells": ours[-1]["cells"],
        "baseline": {
            "seconds": stats(each(baseline, lambda r: r["seconds"])),
            "pool_s": stats(each(baseline, lambda r: r["pool_s"])),
            "sample_s": stats(each(baseline, lambda r: r["sample_s"])),
            "cpu_s": stats(each(baseline, lambda r: r["cpu_s"])),
            "worst_deviation": max(r["worst_deviation"] for r in baseline),
            "worst_marginal": max(r["worst_marginal"] for r in baseline),
            "worst_joint": max(r["worst_joint"] for r in baseline),
            "all_within": all(r["all_within"] for r in baseline),
            "cells_outside": max(r["cells_outside"] for r in baseline),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in baseline),
            "cells": baseline[-1]["cells"],
        },
        "ratio_build": compare(each(baseline, lambda r: r["seconds"]), build),
        "ratio_select": compare(each(baseline, lambda r: r["sample_s"]), select_s),
        "other_load": max((r["other_load"] or 0.0) for r in ours + baseline),
        "cpu_s": sum(r["cpu_s"] for r in ours + baseline),
        "targets": {"build_s": BUILD_TARGET_S, "peak_rss_mib": RSS_TARGET_MIB},
    }
    figures["build_ok"] = figures["build_s"]["median"] <= BUILD_TARGET_S
    figures["rss_ok"] = peak <= RSS_TARGET_MIB
    return figures


def print_figures(figures: dict[str, Any], say: Callable[[str], Any] = print) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    base = figures["baseline"]
    table = Table("figure", "ours (min / median)", "baseline (min / median)",
                  title=f"snapshot of {figures['size']} faces from {figures['pool']['eligible']} eligible "
                        f"({figures['faces']} accepted, {figures['people']} people), {figures['rounds']} round(s)")

    def pair(s: dict[str, float]) -> str:
        return f"{s['min']:.2f} / {s['median']:.2f} s"

    def pair_cpu(s: dict[str, float]) -> str:
        return f"{s['min']:.2f} / {s['median']:.2f} CPU s"

    table.add_row("whole build (commit included)", pair(figures["build_s"]), pair(base["seconds"]))
    for step, s in figures["timings_s"].items():
        other = {"pool": pair(base["pool_s"]), "select": pair(base["sample_s"])}.get(step, "")
        table.add_row(f"  {step}", pair(s), other)
    table.add_row("  commit", pair(figures["commit_s"]), "")
    table.add_row("CBC solve in select", pair(figures["solve_select_s"]), "")
    table.add_row("CBC solve in split", pair(figures["solve_split_s"]), "")
    table.add_row("worst deviation, marginal cells", f"{figures['worst_marginal']:.4f}", f"{base['worst_marginal']:.4f}")
    table.add_row("worst deviation, joint cells", f"{figures['worst_joint']:.4f}", f"{base['worst_joint']:.4f}")
    table.add_row("every quota within tolerance", verdict(figures["all_within"]),
                  f"{verdict(base['all_within'])} ({base['cells_outside']} cells outside)")
    table.add_row("peak RSS of the process", f"{figures['peak_rss_mib']:.0f} MiB (before the build "
                  f"{figures['rss_before_build_mib']:.0f})", f"{base['peak_rss_mib']:.0f} MiB")
    table.add_row("CPU s of the process and CBC", pair_cpu(figures["cpu_s_ours"]), pair_cpu(base["cpu_s"]))
    rb, rs = figures["ratio_build"], figures["ratio_select"]
    table.add_row("time ratio, build (ours / baseline)", f"{rb['ratio_of_medians']:.2f} (of mins {rb['ratio_of_mins']:.2f})", "")
    table.add_row("time ratio, selection (ours / sampling)", f"{rs['ratio_of_medians']:.1f} (of mins {rs['ratio_of_mins']:.1f})", "")
    table.add_row(f"build <= {BUILD_TARGET_S:.0f} s", verdict(figures["build_ok"]), "")
    table.add_row(f"peak RSS <= {RSS_TARGET_MIB:.0f} MiB", verdict(figures["rss_ok"]), "")
    console.print(table)
    cells = Table("quota cell", "target", "band", "ours", "baseline", title="quota cells (last round)")
    for mine, theirs in zip(figures["cells"], base["cells"], strict=True):
        flag = "" if theirs["within"] else " ✗"
        cells.add_row(mine["key"], f"{mine['target']:.0f}", f"{mine['low']}–{mine['high']}", str(mine["achieved"]),
                      f"{theirs['achieved']}{flag}")
    console.print(cells)
    pool = figures["pool"]
    say(f"pool written in {figures['pool_write_s']:.1f} s (set-up, not counted); eligible {pool['eligible']}, "
        f"left out {pool['excluded']}")
    say(f"solver: {', '.join(figures['solver_status'])}, {figures['groups']} groups; split {figures['split']}")
    if figures["shortfall"]:
        say(f"shortfall: {figures['shortfall']}")
    say(load_line({"cpu_s": figures["cpu_s"], "other_load": figures["other_load"]}))


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=69)
    parser.add_argument("--faces", type=int, default=29_000, help="accepted faces in the pool")
    parser.add_argument("--size", type=int, default=10_000, help="faces in the snapshot")
    parser.add_argument("--rounds", type=int, default=3, help="builds of each side, alternating")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--keep", type=Path, help="write the pool here (an empty or new folder) and keep it")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine before each round")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.side:  # one side, in this fresh process
        print(json.dumps(SIDES[args.side](args.url, args.size)))
        return None

    root = args.keep or Path(tempfile.mkdtemp(prefix="likeness-bench-snapshots-"))
    root.mkdir(parents=True, exist_ok=True)
    store = open_store(root, args.postgres)
    try:
        plans = roster(args.people, args.faces)
        print(f"roster: {roster_summary(plans)}", flush=True)
        write_s = timed(functools.partial(write_pool, store.pool_url(), plans))[0]
        store.finish_pool()
        print(f"pool written in {write_s:.1f} s", flush=True)
        ours: list[dict[str, Any]] = []
        baseline: list[dict[str, Any]] = []
        for round_ in range(args.rounds):
            for side, collected in (("ours", ours), ("baseline", baseline)):
                if not args.no_wait:
                    wait_for_quiet(30.0, print)
                with store.copy(f"{side}{round_}") as url:
                    figures = run_side(side, url, args.size)
                collected.append(figures)
                print(f"round {round_ + 1} {side}: {figures['seconds']:.2f} s, worst deviation "
                      f"{figures['worst_deviation']:.4f}, peak RSS {figures['peak_rss_mib']:.0f} MiB", flush=True)
        setup = {"people": len(plans), "faces": sum(p.faces for p in plans), "pool_write_s": write_s,
                 "database": "postgresql" if args.postgres else "sqlite", "cpu": cpu_model(),
                 "cpus": os.cpu_count(), "load_average": os.getloadavg()}
        result = summarise(ours, baseline, setup)
    finally:
        store.close()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print_figures(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
