"""Benchmark: review decisions per minute on the Review page, for the generated faces the
learned filter leaves undecided, next to the same votes cast through the API.

    python -m bench.review [--per-face 20] [--decisions 15] [--rounds 3] [--json PATH]

A fresh workbench (SQLite, in a temporary folder) holds the proxy set's faces
(:mod:`samples.proxy_faces`: real aligned crops, good or with an artifact made by code) as
generated faces of one checkpoint, each checked as `likeness generate` checks them
(qa.generated.store.check_images) and queued for review. A reviewer's votes on the train
sources teach a filter (qa.filter.store.train), which then decides the held-out faces
(store.decide): the confident ones leave the queue, and the rest wait, the most uncertain first.
That remainder is what is reviewed here.

The app is served with `streamlit run` and driven through Debian's chromium by the keyboard
alone, as a reviewer works: per face, `U` or the key of its defect's reason. A decision counts
once its vote row is committed and the cursor outlines the next face; each round opens the
Review page afresh and makes ``--decisions`` of them. The baseline, alternating with the page's
rounds, casts as many votes through qa.review.cast_vote as another reviewer, one transaction
each: the database's own pace. Prints decisions per minute on the page (median over rounds, and
the slowest round), the API's, their ratio, the latency per decision (median and p95), and the
load line (the server and the browser count as other processes); the last line is JSON. This is
the page's own speed, the ceiling above a person's.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console

from bench.harness import ACTOR, CpuMeter, emit, fresh_workbench, load_line, stats
from tests.factories.people import user_id
from tests.factories.review import votes_of

console = Console()
REVIEWER, API_REVIEWER, TRAINER = "rita", "api-reviewer", "trainer"
PASSWORD = "review bench password"
# The reason a reviewer gives each artifact.
REASON_OF = {"crater": "crater", "smear": "background", "closed_eye": "closed_eyes", "mismatched_eyes": "asymmetry",
             "misaligned": "other", "no_face": "other"}


def vote_of(artifact: str) -> tuple[Any, tuple[str, ...]]:
    """The thumb and reasons a reviewer gives a face with this artifact ("none": a good face)."""
    from likeness.models import Thumb

    return (Thumb.up, ()) if artifact == "none" else (Thumb.down, (REASON_OF[artifact],))


def seed_faces(wb: Any, per_face: int) -> dict[str, Any]:
    """The proxy set as checked, queued generated faces; the train side voted on, a filter
    trained on those votes and its decisions on the rest. Returns the item id -> artifact of
    every face still waiting, and the triage's figures."""
    from sqlalchemy import select

    from likeness.models import GeneratedImage, ReviewItem, Role
    from likeness.users import create_user
    from qa.filter import store
    from qa.generated.store import check_images
    from qa.review import cast_vote, enqueue
    from samples.labelled_pool import SitterPlan, add_pool
    from samples.lineage_pool import PipelinePlan, write_pipeline
    from samples.proxy_faces import build_proxy_set
    from training.generate import png_bytes

    items = build_proxy_set(per_face=per_face)
    with wb.db.unit_of_work() as session:
        for name in (REVIEWER, API_REVIEWER, TRAINER):
            create_user(session=session, username=name, password=PASSWORD, role=Role.reviewer, actor=ACTOR)
        faces = add_pool(session, None, [SitterPlan(code="P0000", faces=2, person={"age_band": "adult"})])
        checkpoint = write_pipeline(session, faces["P0000"], PipelinePlan([[0, 1]], [(0, None)], [0], []),
                                    tag="review-bench").checkpoints[0]
        image_ids = []
        for seed, item in enumerate(items):
            sha = wb.blobs.put_bytes(png_bytes(Image.fromarray(item.image)))
            image = GeneratedImage(checkpoint_id=checkpoint, seed=seed, psi=0.7, label=None, label_key="",
                                   noise_mode="const", image_sha256=sha)
            session.add(image)
            session.flush()
            enqueue(session=session, image_sha256=sha, source=store.GENERATED)
            image_ids.append(image.id)
    started = time.perf_counter()
    check_images(wb, image_ids)
    checked_s = time.perf_counter() - started
    with wb.db.unit_of_work() as session:
        item_of = dict(session.execute(select(GeneratedImage.id, ReviewItem.id).join(
            ReviewItem, ReviewItem.image_sha256 == GeneratedImage.image_sha256)).all())
        trainer = user_id(wb, TRAINER)
        for image_id, item in zip(image_ids, items, strict=True):
            if item.split == "train":
                thumb, reasons = vote_of(item.artifact)
                cast_vote(session=session, item_id=item_of[image_id], reviewer_id=trainer, thumb=thumb, reasons=reasons)
    version = store.train(wb, actor=ACTOR)
    decided = store.decide(wb)
    with wb.db.unit_of_work() as session:
        undecided = set(session.scalars(select(GeneratedImage.id).where(GeneratedImage.decision.is_(None))))
    held = [(i, item) for i, item in zip(image_ids, items, strict=True) if item.split != "train"]
    waiting = {item_of[i]: item.artifact for i, item in held if i in undecided}
    return {"faces": len(items), "held_out": len(held), "checked_s": checked_s, "filter": version.version,
            "accepted": decided.accepted, "rejected": decided.rejected, "waiting": waiting}


def page_round(page: Any, url: str, wb: Any, waiting: dict[int, str], decisions: int) -> list[float]:
    """One round on the Review page: open it, then `decisions` keyboard decisions; the seconds
    each took (key press to vote committed and cursor on the next face)."""
    from tests.ui.browser_support import CURRENT_ID_JS, GRID_IDS_JS, open_review, wait_until
    from ui.review_keys import KEY_OF_REASON

    page.goto(url)
    page.get_by_role("heading", name="Shoots").wait_for(timeout=120_000)
    open_review(page, min(decisions + 1, len(waiting)))
    shown = page.evaluate(GRID_IDS_JS)
    wait_until(lambda: page.evaluate(CURRENT_ID_JS) == shown[0], timeout_s=30)
    before = len(votes_of(wb, REVIEWER))
    seconds = []
    for n in range(decisions):
        _, reasons = vote_of(waiting[shown[n]])
        key = KEY_OF_REASON[reasons[0]] if reasons else "u"
        seconds.append(_decide(page, wb, key, votes=before + n + 1, then_on=shown[n + 1]))
    return seconds


def _decide(page: Any, wb: Any, key: str, *, votes: int, then_on: int) -> float:
    """Seconds from pressing `key` until the reviewer has `votes` votes and the cursor is on `then_on`."""
    from tests.ui.browser_support import CURRENT_ID_JS, wait_until

    start = time.perf_counter()
    page.keyboard.press(key)
    wait_until(lambda: len(votes_of(wb, REVIEWER)) == votes, timeout_s=60)
    wait_until(lambda: page.evaluate(CURRENT_ID_JS) == then_on, timeout_s=60)
    return time.perf_counter() - start


def api_round(wb: Any, items: list[int], waiting: dict[int, str]) -> list[float]:
    """The same number of votes through qa.review.cast_vote, one transaction each."""
    from qa.review import cast_vote

    reviewer = user_id(wb, API_REVIEWER)
    seconds = []
    for item_id in items:
        thumb, reasons = vote_of(waiting[item_id])
        start = time.perf_counter()
        with wb.db.unit_of_work() as session:
            cast_vote(session=session, item_id=item_id, reviewer_id=reviewer, thumb=thumb, reasons=reasons)
        seconds.append(time.perf_counter() - start)
    return seconds


def per_minute(seconds: list[float]) -> float:
    return 60.0 * len(seconds) / sum(seconds)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-face", type=int, default=20, help="Jittered crops per source face (the proxy set's size).")
    parser.add_argument("--decisions", type=int, default=15, help="Decisions per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.getLogger("faces").setLevel(logging.ERROR)
    from playwright.sync_api import sync_playwright

    from tests.ui.browser_support import CHROMIUM, CHROMIUM_ARGS, serve_app, sign_in

    with tempfile.TemporaryDirectory(prefix="likeness-bench-review-") as tmp:
        root = Path(tmp)
        wb = fresh_workbench(root, workers=0, align_size=256, preview_size=512)
        try:
            seeded = seed_faces(wb, args.per_face)
            waiting: dict[int, str] = seeded["waiting"]
            needed = args.rounds * args.decisions
            console.print(f"proxy set: {seeded['faces']} faces checked in {seeded['checked_s']:.1f} s; filter "
                          f"v{seeded['filter']} on the {seeded['held_out']} held-out faces: accepted {seeded['accepted']}, "
                          f"rejected {seeded['rejected']}, {len(waiting)} left for people")
            if len(waiting) < needed + 1:
                raise SystemExit(f"only {len(waiting)} faces wait for review; --rounds x --decisions needs "
                                 f"{needed + 1}: raise --per-face")
            env = {**os.environ, "LIKENESS_DATA_DIR": str(root), "LIKENESS_DATABASE_URL": wb.settings.resolved_database_url,
                   "LIKENESS_BLOB_URL": wb.settings.resolved_blob_url}
            meter = CpuMeter().start()
            page_s: list[list[float]] = []
            api_s: list[list[float]] = []
            # Another reviewer's votes leave the faces in this reviewer's queue: each round reads its grid afresh.
            api_items = sorted(waiting)[:needed]
            with serve_app(root / "streamlit.log", env) as url, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1600, "height": 1100})
                page.set_default_timeout(60_000)
                try:
                    sign_in(page, url, REVIEWER, PASSWORD)
                    for r in range(args.rounds):
                        page_s.append(page_round(page, url, wb, waiting, args.decisions))
                        api_s.append(api_round(wb, api_items[r * args.decisions:(r + 1) * args.decisions], waiting))
                        console.print(f"  round {r}: page {per_minute(page_s[-1]):.0f} decisions/min, "
                                      f"API {per_minute(api_s[-1]):.0f}")
                finally:
                    browser.close()
            load = meter.stop()
        finally:
            wb.close()
    page_rates = [per_minute(s) for s in page_s]
    api_rates = [per_minute(s) for s in api_s]
    latencies = sorted(x for s in page_s for x in s)
    report: dict[str, Any] = {
        "triage": {k: v for k, v in seeded.items() if k != "waiting"} | {"waiting": len(waiting)},
        "page_per_minute": stats(page_rates), "api_per_minute": stats(api_rates),
        "page_time_over_api": statistics.median(api_rates) / statistics.median(page_rates),
        "latency_s": {"median": statistics.median(latencies), "p95": latencies[int(0.95 * (len(latencies) - 1))]},
        "decisions": len(latencies), "load": load}
    console.print(f"Review page: {report['page_per_minute']['median']:.0f} decisions/min median "
                  f"({report['page_per_minute']['min']:.0f} in the slowest round), key press to next face "
                  f"{1000 * report['latency_s']['median']:.0f} ms median, {1000 * report['latency_s']['p95']:.0f} ms p95; "
                  f"API alone {report['api_per_minute']['median']:.0f}/min: the page takes "
                  f"{report['page_time_over_api']:.0f}x the database's time per decision")
    console.print(load_line(load))
    return emit(report, args.json)


if __name__ == "__main__":
    main()
