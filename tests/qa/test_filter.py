"""The filter learned from reviewers' votes: calibration that holds its precision on fresh data,
training from the review queue's votes, deciding faces (which then leave the queue with their
reason), measuring a version on later votes, and one clear error for too few votes."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from likeness.errors import InvalidInput, NotFound
from likeness.models import AuditEvent, Checkpoint, FaceFilter, GeneratedImage, Review, ReviewItem, Role, Thumb
from likeness.workbench import Workbench
from qa.filter import features, model, store
from qa.review import cast_vote, enqueue, next_items
from samples.labelled_pool import SitterPlan, add_pool
from samples.lineage_pool import PipelinePlan, write_pipeline
from tests.cli_runner import run_cli
from tests.factories.people import add_user, user_id


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping classes: a score that separates them with noise, and a useless column."""
    rng = np.random.default_rng(seed)
    good = rng.random(n) < 0.6
    score = np.where(good, rng.normal(0.0, 1.0, n), rng.normal(2.5, 1.0, n))
    return np.column_stack([score, rng.normal(size=n)]), good.astype(np.int64)


def test_calibrate_picks_the_loosest_thresholds_whose_precision_bound_reaches_the_target() -> None:
    bad, good_faces = np.linspace(0.01, 0.2, 60), np.linspace(0.7, 0.99, 60)
    p = np.concatenate([bad, [0.25], np.linspace(0.3, 0.6, 20), [0.65], good_faces])
    good = np.concatenate([np.zeros(60), [1], np.arange(20) % 2, [0], np.ones(60)]).astype(np.int64)
    t = model.calibrate(p, good, target=0.95)
    assert (t.reject, t.accept) == (pytest.approx(0.2), pytest.approx(0.7))   # one more face would break the bound
    assert 0.95 < model.precision_bound(60, 60) < 0.96 and model.precision_bound(7, 7) < 0.8
    assert model.calibrate(p[:30], good[:30], target=0.95).reject == -math.inf   # 30 right calls prove too little
    assert t.decide(0.7) == "accept" and t.decide(0.2) == "reject" and t.decide(0.4) is None


def test_reach_says_how_sure_a_side_that_decides_nothing_could_be() -> None:
    # One bad face above 40 good ones: no accept threshold proves 95 %, the best is all 41.
    p = np.concatenate([[0.99], np.linspace(0.98, 0.5, 40), np.linspace(0.4, 0.01, 60)])
    good = np.concatenate([[0], np.ones(40), np.zeros(60)]).astype(np.int64)
    assert model.calibrate(p, good).accept == math.inf
    best = model.reach(p, good, "accept")
    assert best.decided == 41 and best.bound == pytest.approx(model.precision_bound(40, 41)) and best.bound < 0.95
    assert model.reach(p, good, "reject").decided == 60                       # the 60 bad ones, no good one
    # A threshold takes all faces of one score or none: five good and one bad at 0.9 decide six.
    tied = model.reach(np.array([0.9] * 6 + [0.1] * 6), np.array([1] * 5 + [0] + [0] * 6), "accept")
    assert tied.decided == 6 and tied.bound == pytest.approx(model.precision_bound(5, 6))
    version = store.FilterVersion(id=1, version=3, active=True, created_by="ana", features=[],
                                  thresholds=model.Thresholds(reject=0.2, accept=math.inf),
                                  metrics={"target_precision": 0.95, "reach": {
                                      "accept": {"bound": best.bound, "decided": 41}, "reject": {"bound": 0.96, "decided": 60}}})
    line = version.describe()
    assert f"accept at p(good) >= never (at best {best.bound:.1%} sure, over 41 faces; needs 95%)" in line
    assert "reject at p(good) <= 0.200, accept" in line                     # a side that decides says no more


def test_the_calibrated_precision_holds_on_fresh_data() -> None:
    x, good = synthetic(1500, seed=1)
    trained = model.fit(x, good, ["score", "noise"], seed=0)
    fresh_x, fresh_good = synthetic(20000, seed=2)
    fresh = model.evaluate(trained.p_good(fresh_x), fresh_good, trained.thresholds)
    assert fresh.accept_precision is not None and fresh.accept_precision >= 0.93
    assert fresh.reject_precision is not None and fresh.reject_precision >= 0.93
    assert 0.2 < fresh.coverage < 0.95       # overlapping classes: some faces must go to people
    assert abs(fresh.coverage - trained.test.coverage) < 0.1


def test_a_worse_check_value_never_raises_p_good() -> None:
    """Monotonic in each check: the training data has a bump (bad faces at the lowest crater
    values too, as one photograph might give) that an unconstrained model would follow."""
    rng = np.random.default_rng(4)
    n = 600
    craters, d = rng.uniform(0, 10, n), rng.normal(0, 1, n)
    good = ((craters < 5) & (craters > 1) & (d > -1) | (rng.random(n) < 0.05)).astype(np.int64)
    names = ["craters.value", "discriminator.value", "eyes.value"]
    x = np.column_stack([craters, d, rng.normal(size=n)])
    trained = model.fit(x, good, names, seed=0)
    assert [features.direction(name) for name in names] == [-1, 1, 0]
    assert features.direction("background.flagged") == -1 and features.direction("newcheck.value") == 0
    sweep = np.linspace(0, 10, 101)
    along_craters = trained.p_good(np.column_stack([sweep, np.zeros(101), np.zeros(101)]))
    along_d = trained.p_good(np.column_stack([np.full(101, 3.0), np.linspace(-3, 3, 101), np.zeros(101)]))
    assert np.all(np.diff(along_craters) <= 1e-12) and along_craters[0] > along_craters[-1] + 0.3
    assert np.all(np.diff(along_d) >= -1e-12) and along_d[-1] > along_d[0] + 0.3


def test_groups_never_straddle_the_split() -> None:
    groups = [i // 7 for i in range(700)]
    part = model.split_groups(groups, 3, (0.6, 0.2, 0.2))
    for g in set(groups):
        assert len({int(p) for p, gg in zip(part, groups, strict=True) if gg == g}) == 1
    assert set(part.tolist()) == {0, 1, 2}


def test_too_few_votes_is_one_clear_error() -> None:
    x, good = synthetic(10, seed=0)
    with pytest.raises(ValueError, match="needs at least"):
        model.fit(x, good, ["a", "b"])


# ---- On the database. ------------------------------------------------------------------------------

def png(value: int, index: int) -> bytes:
    """A flat image, made distinct by its first pixel (the blob store keeps one copy per content)."""
    pixels = np.full((32, 32, 3), value, dtype=np.uint8)
    pixels[0, 0] = (index % 256, index // 256 % 256, 7)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_faces(wb: Workbench, n: int, seed: int = 0) -> list[int]:
    """`n` generated faces of one checkpoint, queued for review, each with a crater check whose
    value is low for the good ones (even ids of the plan) and high for the bad ones."""
    rng = np.random.default_rng(seed)
    with wb.db.unit_of_work() as session:
        faces = add_pool(session, None, [SitterPlan(code="P0000", faces=2, person={"age_band": "adult"})])
        rows = write_pipeline(session, faces["P0000"], PipelinePlan([[0, 1]], [(0, None)], [0], []), tag="filter")
        ids = []
        for i in range(n):
            good = i % 2 == 0
            crater = float(rng.normal(0.2 if good else 0.8, 0.12))
            sha = wb.blobs.put_bytes(png(int(rng.integers(0, 256)), seed * 1000 + i))
            image = GeneratedImage(checkpoint_id=rows.checkpoints[0], seed=i, psi=0.7, label=None, label_key="",
                                   noise_mode="const", image_sha256=sha,
                                   checks={"craters": {"value": crater, "threshold": 0.5, "flagged": crater > 0.5, "note": ""}})
            session.add(image)
            session.flush()
            enqueue(session=session, image_sha256=sha, source=store.GENERATED)
            ids.append(image.id)
    return ids


def vote_all(wb: Workbench, ids: list[int], reviewer: str) -> None:
    """Thumbs up for the good faces (even seeds), down with a reason for the bad."""
    with wb.db.unit_of_work() as session:
        items = dict(session.execute(select(GeneratedImage.id, ReviewItem.id).join(
            ReviewItem, ReviewItem.image_sha256 == GeneratedImage.image_sha256).where(GeneratedImage.id.in_(ids))).all())
        seeds = dict(session.execute(select(GeneratedImage.id, GeneratedImage.seed).where(GeneratedImage.id.in_(ids))).all())
        for image_id in ids:
            good = seeds[image_id] % 2 == 0
            cast_vote(session=session, item_id=items[image_id], reviewer_id=user_id(wb, reviewer),
                      thumb=Thumb.up if good else Thumb.down, reasons=[] if good else ["crater"])


def test_train_decide_and_evaluate_through_the_cli(env_workbench: Workbench) -> None:
    wb = env_workbench
    add_user(wb, "rev", Role.reviewer)
    ids = write_faces(wb, 260)
    voted, fresh = ids[:200], ids[200:]
    vote_all(wb, voted[:10], "rev")
    too_few = run_cli("filter", "train")
    assert too_few.exit_code == 1 and "needs at least 20" in too_few.output
    vote_all(wb, voted[10:], "rev")

    trained = run_cli("filter", "train", "--by", "ana")
    assert trained.exit_code == 0, trained.output
    assert "filter v1 (active)" in trained.output and "learned from 200 votes by ana" in trained.output
    [version] = store.filters(wb)
    assert version.metrics["test"]["accept_precision"] >= 0.95 and version.metrics["test"]["reject_precision"] >= 0.95
    assert version.features[:2] == ["craters.value", "craters.flagged"]
    with wb.db.unit_of_work() as session:
        assert session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "filter.train")).all() == ["ana"]
        queued_before = {i.image_sha256 for i in next_items(session=session, reviewer_id=user_id(wb, "rev"), limit=1000)}
        assert len(queued_before) == len(fresh)   # what rev voted on is not shown to rev again

    decided = run_cli("filter", "decide")
    assert decided.exit_code == 0, decided.output
    assert f"filter v1 scored {len(fresh)} faces" in decided.output   # the voted ones are people's calls
    with wb.db.unit_of_work() as session:
        calls = {seed: (decision, reason, filter_id) for seed, decision, reason, filter_id in session.execute(
            select(GeneratedImage.seed, GeneratedImage.decision, GeneratedImage.decision_reason, GeneratedImage.filter_id)
            .where(GeneratedImage.id.in_(fresh)))}
        made = {seed: c for seed, c in calls.items() if c[0] is not None}
        assert len(made) >= len(fresh) // 2                       # most faces decided by the machine
        wrong = sum(1 for seed, (d, _r, _f) in made.items() if (d == "accept") != (seed % 2 == 0))
        assert wrong <= max(1, len(made) // 20)
        assert all(f == version.id and r is not None and r.startswith("filter v1: p(good)") for _d, r, f in made.values())
        left = {i.image_sha256 for i in next_items(session=session, reviewer_id=user_id(wb, "rev"), limit=1000)}
        undecided = set(session.scalars(select(GeneratedImage.image_sha256).where(
            GeneratedImage.id.in_(fresh), GeneratedImage.decision.is_(None))))
        assert left == undecided                                  # only the undecided are shown to people

    add_user(wb, "rev2", Role.reviewer)
    with wb.db.unit_of_work() as session:   # a second reviewer sees the faces people voted on, and the undecided
        shown = next_items(session=session, reviewer_id=user_id(wb, "rev2"), limit=1000, source=store.GENERATED)
        by_people = set(session.scalars(select(GeneratedImage.image_sha256).where(GeneratedImage.id.in_(voted))))
        assert {i.image_sha256 for i in shown} == undecided | by_people
    # The decided faces judged by that reviewer too: votes the filter never learned from.
    with wb.db.unit_of_work() as session:
        session.execute(update(GeneratedImage).where(GeneratedImage.id.in_(fresh)).values(decision=None))
    vote_all(wb, fresh, "rev2")
    evaluated = run_cli("filter", "evaluate")
    assert evaluated.exit_code == 0, evaluated.output
    assert f"on the votes since: {len(fresh)} held-out items" in " ".join(evaluated.output.split())
    result = store.evaluate(wb)
    assert result.since.items == len(fresh) and (result.since.accept_precision or 1.0) >= 0.9


def test_decide_skips_tainted_checkpoints_and_needs_a_filter(workbench: Workbench) -> None:
    with pytest.raises(NotFound, match="no active filter"):
        store.decide(workbench)
    add_user(workbench, "rev", Role.reviewer)
    ids = write_faces(workbench, 120, seed=4)
    vote_all(workbench, ids[:100], "rev")
    with workbench.db.unit_of_work() as session:   # every verdict alike teaches nothing
        session.execute(update(Review).values(thumb=Thumb.up, reasons=[]))
    with pytest.raises(InvalidInput, match="only good or only bad"):
        store.train(workbench, actor="t")
    assert store.filters(workbench) == []
    vote_all(workbench, ids[:100], "rev")           # a vote again replaces the reviewer's earlier one
    store.train(workbench, actor="t")
    with workbench.db.unit_of_work() as session:
        session.execute(update(Checkpoint).values(tainted=True))
    assert store.decide(workbench).scored == 0
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(FaceFilter.active)) is True


def test_checks_are_read_by_name_and_pixel_features_only_where_a_version_has_them() -> None:
    rgb = np.zeros((40, 40, 3), dtype=np.uint8)
    rgb[:, :20] = 200
    names = features.feature_names([{"eyes": {}}, {"craters": {}}])
    assert names == ["craters.value", "craters.flagged", "eyes.value", "eyes.flagged"]
    values = features.row(names, {"eyes": {"value": 0.3, "flagged": True}}, rgb)
    assert math.isnan(values[0]) and math.isnan(values[1]) and values[2:4] == [0.3, 1.0]
    old = features.row([*names, *features.PIXEL_FEATURES], {"eyes": {"value": 0.3, "flagged": True}}, rgb)
    assert old[2:4] == [0.3, 1.0] and len(old) == len(names) + len(features.PIXEL_FEATURES)
    assert all(math.isfinite(v) for v in old[4:]) and old[-2] > 0.3   # half bright, half dark: contrast
