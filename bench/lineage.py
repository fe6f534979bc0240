"""Lineage benchmark: `lineage person` and a revocation at seed scale, each next to a floor.

    python -m bench.lineage [--people 69] [--shots 29000] [--images 100000] [--rounds 3]
                            [--database sqlite|postgres|both] [--json PATH]

What it does, for each database:

1. Writes the seed studio's rows (set-up, reported but not counted) straight into the real
   schema with bulk inserts: ``--people`` sitters holding ``--shots`` accepted shots with one face
   each (``samples.labelled_pool.add_pool``), 3 dataset snapshots of a third of the faces each,
   10 training runs (three per snapshot and one fine-tuned from another run's checkpoint), 100
   checkpoints and ``--images`` generated images (``samples.lineage_pool.write_pipeline``).
2. For each round, alternating: the floor, one indexed select of a sitter's shot ids, then
   ``model_registry.lineage.lineage(session, "person", CODE)`` for that sitter, each in a fresh
   transaction; then the floor again next to a revocation of another sitter's release
   (``model_registry.taint.revoke``: the frames quarantined and every snapshot, run, checkpoint
   and image made from the sitter's faces tainted, committed). Every sitter is in every snapshot,
   so each revocation taints all the images.
3. Prints min and median per figure, the ratios to the floor, the targets (lineage <= 100 ms,
   revocation <= 1 s), how busy the machine was, and as the last line of stdout the figures as JSON.

PostgreSQL is started from the Debian binaries (or ``$LIKENESS_TEST_POSTGRES_URL``, an admin URL).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import ACTOR, REPO, CpuMeter, cpu_model, load_line, stats, timed, verdict

LINEAGE_TARGET_S = 0.100
REVOKE_TARGET_S = 1.0
SNAPSHOTS, RUNS, CHECKPOINTS = 3, 10, 100


@contextmanager
def database(kind: str, root: Path) -> Iterator[str]:
    """A fresh, empty database URL of that kind."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'lineage.db'}"
        return
    import os

    from sqlalchemy import create_engine, text

    server = None
    admin_url = os.environ.get("LIKENESS_TEST_POSTGRES_URL")
    if not admin_url:
        sys.path.insert(0, str(REPO))
        from tests.postgres_server import PostgresServer, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise SystemExit("postgres: set LIKENESS_TEST_POSTGRES_URL or install the Debian package postgresql")
        server = PostgresServer(bin_dir).start()
        admin_url = server.url()
    name = f"likeness_bench_lineage_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if server is not None:
            server.stop()


def seed_rows(url: str, people: int, shots: int, images: int) -> dict[str, Any]:
    """The schema at head and the seed studio's rows; the counts and the set-up time."""
    from sqlalchemy import func, select

    from likeness.db import Database
    from likeness.models import GeneratedImage, Shot
    from samples.labelled_pool import SitterPlan, add_pool
    from samples.lineage_pool import PipelinePlan, write_pipeline

    rng = random.Random(7)
    per_person = [shots // people + (1 if i < shots % people else 0) for i in range(people)]
    start = time.perf_counter()
    db = Database(url)
    db.upgrade()
    with db.unit_of_work() as session:
        faces_of = add_pool(session, None, [SitterPlan(code=f"P{i:04d}", faces=n, person={"age_band": "adult"})
                                            for i, n in enumerate(per_person)])
        faces = [f for code in sorted(faces_of) for f in faces_of[code]]
        snapshots = [sorted(rng.sample(range(len(faces)), len(faces) // SNAPSHOTS)) for _ in range(SNAPSHOTS)]
        runs: list[tuple[int | None, int | None]] = [(i % SNAPSHOTS, None) for i in range(RUNS - 1)]
        runs.append((0, CHECKPOINTS // RUNS - 1))       # fine-tuned from run 0's last checkpoint
        checkpoints = [i // (CHECKPOINTS // RUNS) for i in range(CHECKPOINTS)]
        write_pipeline(session, faces, PipelinePlan(snapshots, runs, checkpoints,
                                                    [i % CHECKPOINTS for i in range(images)]), tag="seed")
    with db.unit_of_work() as session:
        counts = {"shots": session.scalar(select(func.count()).select_from(Shot)),
                  "images": session.scalar(select(func.count()).select_from(GeneratedImage))}
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            from sqlalchemy import text
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with db.engine.begin() as conn:
            from sqlalchemy import text
            conn.execute(text("ANALYZE"))
    db.close()
    return {**counts, "setup_s": time.perf_counter() - start}


def measure(url: str, rounds: int, people: int) -> dict[str, list[float]]:
    from sqlalchemy import select

    from likeness.db import Database
    from likeness.models import Person, Release, Shot
    from model_registry.lineage import lineage
    from model_registry.taint import revoke

    db = Database(url)
    with db.unit_of_work() as session:
        ids: dict[str, int] = {code: pid for code, pid in session.execute(select(Person.code, Person.id))}
        releases: dict[int, int] = {pid: rid for pid, rid in session.execute(select(Release.person_id, Release.id))}
    codes = sorted(ids)
    figures: dict[str, list[float]] = {"floor_lineage": [], "lineage": [], "floor_revoke": [], "revoke": [],
                                       "tainted_images": []}

    def floor(code: str) -> float:
        def select_shots() -> int:
            with db.unit_of_work() as session:
                return len(session.scalars(select(Shot.id).where(Shot.person_id == ids[code])).all())
        return timed(select_shots)[0]

    def person_lineage(code: str) -> tuple[float, Any]:
        def run() -> Any:
            with db.unit_of_work() as session:
                return lineage(session, "person", code)
        return timed(run)

    for code in codes[:2]:            # warm the caches and the connection pool
        floor(code)
        person_lineage(code)
    for r in range(rounds):
        code = codes[r % people]
        figures["floor_lineage"].append(floor(code))
        seconds, found = person_lineage(code)
        figures["lineage"].append(seconds)
        victim = codes[-1 - r]
        figures["floor_revoke"].append(floor(victim))

        def revoke_one(victim: str = victim) -> Any:
            with db.unit_of_work() as session:
                return revoke(session, releases[ids[victim]], "withdrawn (benchmark)", ACTOR)
        seconds, result = timed(revoke_one)
        figures["revoke"].append(seconds)
        figures["tainted_images"].append(float(result.images))
        if r == 0:
            print("  " + "\n  ".join(found.lines()), flush=True)
    db.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=69)
    parser.add_argument("--shots", type=int, default=29_000)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args(argv)
    if args.rounds > args.people // 2:
        parser.error("--rounds: at most half the people (each round revokes a new sitter)")
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    report: dict[str, Any] = {"cpu": cpu_model(), "people": args.people, "shots": args.shots, "images": args.images,
                              "rounds": args.rounds, "databases": {}}
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="likeness-bench-lineage-") as tmp, database(kind, Path(tmp)) as url:
            print(f"{kind}: writing {args.shots} shots of {args.people} people, {SNAPSHOTS} snapshots, {RUNS} runs, "
                  f"{CHECKPOINTS} checkpoints, {args.images} generated images ...", flush=True)
            seeded = seed_rows(url, args.people, args.shots, args.images)
            print(f"  set-up {seeded['setup_s']:.1f} s (not counted)", flush=True)
            meter = CpuMeter().start()
            figures = measure(url, args.rounds, args.people)
            load = meter.stop()
        result: dict[str, Any] = {name: stats(values) for name, values in figures.items()}
        result["lineage_over_floor"] = result["lineage"]["median"] / result["floor_lineage"]["median"]
        result["revoke_over_floor"] = result["revoke"]["median"] / result["floor_revoke"]["median"]
        result["lineage_ok"] = result["lineage"]["median"] <= LINEAGE_TARGET_S
        result["revoke_ok"] = result["revoke"]["median"] <= REVOKE_TARGET_S
        result["seeded"], result["load"] = seeded, load
        report["databases"][kind] = result
        ms = 1000.0
        print(f"  floor (one indexed select of a sitter's shots): median {result['floor_lineage']['median'] * ms:.2f} ms")
        print(f"  lineage person: min {result['lineage']['min'] * ms:.1f} ms, median {result['lineage']['median'] * ms:.1f} ms "
              f"= {result['lineage_over_floor']:.1f}x floor; target <= {LINEAGE_TARGET_S * ms:.0f} ms: {verdict(result['lineage_ok'])}")
        print(f"  revocation ({int(result['tainted_images']['median'])} images tainted, committed): min "
              f"{result['revoke']['min'] * ms:.0f} ms, median {result['revoke']['median'] * ms:.0f} ms "
              f"= {result['revoke_over_floor']:.0f}x floor ({result['floor_revoke']['median'] * ms:.2f} ms); "
              f"target <= {REVOKE_TARGET_S:.0f} s: {verdict(result['revoke_ok'])}")
        print(f"  {load_line(load)}", flush=True)
    text = json.dumps(report, default=str)
    if args.json is not None:
        args.json.write_text(text)
    print(text)
    return 0 if all(r["lineage_ok"] and r["revoke_ok"] for r in report["databases"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
