from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingest.api import revoke_release
from likeness.errors import InvalidInput, NotFound
from likeness.models import Release, Review, Role
from likeness.users import create_user
from likeness.workbench import Workbench
from pipeline.api import ingest_and_check
from qa.agreement import fleiss_kappa
from qa.review import ReviewVerdict, cast_vote, enqueue, next_items, retract_vote, review_stats, verdict_of
from samples.releases import add_signed_release
from samples.shoot import build_sample_shoot
from tests.factories.people import register_sitter


def test_fleiss_kappa_matches_the_published_example() -> None:
    # Fleiss (1971) as reproduced in most references: 10 subjects, 14 raters, 5 categories.
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=0.001)
    assert fleiss_kappa([[2, 0], [0, 2], [2, 0]]) == pytest.approx(1.0)
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # everyone agrees on one category: undefined
    assert fleiss_kappa([[1, 0]]) is None  # a single rating says nothing about agreement


def _reviewers(workbench: Workbench, n: int) -> list[int]:
    with workbench.db.unit_of_work() as session:
        return [
            create_user(session=session, username=f"r{i:02d}", password="password123", role=Role.reviewer).id
            for i in range(n)
        ]


def _items(workbench: Workbench, n: int, flagged: frozenset[int] | set[int] = frozenset()) -> list[int]:
    with workbench.db.unit_of_work() as session:
        return [
            enqueue(
                session=session, image_sha256=f"{i:064x}", source="shot",
                flag="closed" if i in flagged else None, flag_confidence=0.9 if i in flagged else None,
            ).id
            for i in range(n)
        ]


def test_votes_verdicts_and_queue_order(workbench: Workbench) -> None:
    ana, bo, cy = _reviewers(workbench, 3)
    items = _items(workbench, 4, flagged={2})
    with workbench.db.unit_of_work() as session:
        assert [i.id for i in next_items(session=session, reviewer_id=ana)][0] == items[2]  # flagged first
        cast_vote(session=session, item_id=items[0], reviewer_id=ana, thumb="down", reasons=["closed_eyes"])
        cast_vote(session=session, item_id=items[0], reviewer_id=bo, thumb="down", reasons=["closed_eyes", "teeth"])
        cast_vote(session=session, item_id=items[0], reviewer_id=cy, thumb="up")
        cast_vote(session=session, item_id=items[1], reviewer_id=ana, thumb="up")
        cast_vote(session=session, item_id=items[1], reviewer_id=bo, thumb="down", reasons=["ears"])
        # A second vote by the same reviewer replaces the first.
        cast_vote(session=session, item_id=items[1], reviewer_id=ana, thumb="down", reasons=["ears"])
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 5
        queue = [i.id for i in next_items(session=session, reviewer_id=ana)]
        assert items[0] not in queue and items[1] not in queue and queue[0] == items[2]
        stats = review_stats(session=session)
    assert stats.verdicts[ReviewVerdict.down.value] == 2 and stats.verdicts[ReviewVerdict.unreviewed.value] == 2
    assert stats.reason_counts == {"closed_eyes": 2, "teeth": 1, "ears": 2}
    assert stats.agreement["ears"] == pytest.approx(1.0)  # both raters of both items agree on ears
    assert stats.multi_reviewed_items == 2
    with workbench.db.unit_of_work() as session:
        assert retract_vote(session=session, item_id=items[0], reviewer_id=cy)  # undo
        assert not retract_vote(session=session, item_id=items[0], reviewer_id=cy)
        assert items[0] in [i.id for i in next_items(session=session, reviewer_id=cy)]


def test_bad_votes_are_refused(workbench: Workbench) -> None:
    (ana,) = _reviewers(workbench, 1)
    (item,) = _items(workbench, 1)
    with workbench.db.unit_of_work() as session:
        with pytest.raises(InvalidInput, match="at least one defect reason"):
            cast_vote(session=session, item_id=item, reviewer_id=ana, thumb="down")
        with pytest.raises(InvalidInput, match="takes no defect"):
            cast_vote(session=session, item_id=item, reviewer_id=ana, thumb="up", reasons=["ears"])
        with pytest.raises(InvalidInput, match="not a vote"):
            cast_vote(session=session, item_id=item, reviewer_id=ana, thumb="down", reasons=["ugly"])
        with pytest.raises(NotFound):
            cast_vote(session=session, item_id=item + 99, reviewer_id=ana, thumb="up")


def test_verdict_is_the_majority() -> None:
    assert verdict_of(["down", "down", "up"]) is ReviewVerdict.down
    assert verdict_of(["down", "up"]) is ReviewVerdict.tied
    assert verdict_of([]) is ReviewVerdict.unreviewed


def test_twenty_reviewers_voting_at_once_lose_nothing(workbench: Workbench) -> None:
    reviewers = _reviewers(workbench, 20)
    items = _items(workbench, 10)
    start = threading.Barrier(20)

    def vote(index: int) -> None:
        start.wait()
        for round_ in range(2):  # every reviewer votes twice on every item: the second replaces the first
            for item in items:
                with workbench.db.unit_of_work() as session:
                    down = (index + item + round_) % 3 == 0
                    cast_vote(session=session, item_id=item, reviewer_id=reviewers[index],
                              thumb="down" if down else "up", reasons=["closed_eyes"] if down else [])

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(vote, range(20)))
    expected = {
        item: verdict_of(["down" if (i + item + 1) % 3 == 0 else "up" for i in range(20)]) for item in items
    }
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 20 * len(items)
        for item in items:
            thumbs = list(session.scalars(select(Review.thumb).where(Review.item_id == item)))
            assert len(thumbs) == 20 and verdict_of(thumbs) is expected[item]


def test_revoking_a_release_withdraws_its_faces_from_reviewers(workbench: Workbench, tmp_path: Path) -> None:
    register_sitter(workbench, tmp_path)
    shoot = build_sample_shoot(tmp_path / "shoot", n_good=2, frame_size=(512, 384), include_bad=False)
    ingest_and_check(workbench=workbench, path=shoot.path, actor="test")
    with workbench.db.unit_of_work() as session:
        reviewer = create_user(session=session, username="rita", password="long enough", role="reviewer", actor="test")
        session.flush()
        rita = reviewer.id
        shown = next_items(session=session, reviewer_id=rita)
        assert len(shown) == 2
        release = session.scalar(select(Release))
        assert release is not None
        revoke_release(session=session, release_id=release.id, reason="withdrawn", actor="test")
    with workbench.db.unit_of_work() as session:
        assert next_items(session=session, reviewer_id=rita) == []
        assert review_stats(session=session).items == 0
        with pytest.raises(InvalidInput, match="withdrawn"):
            cast_vote(session=session, item_id=shown[0].id, reviewer_id=rita, thumb="up")
        # A new release brings them back.
        add_signed_release(session=session, blobs=workbench.blobs, code="P0001", document_dir=tmp_path / "again",
                           signed_on=dt.date(2026, 1, 1), actor="test")
    with workbench.db.unit_of_work() as session:
        assert {i.id for i in next_items(session=session, reviewer_id=rita)} == {i.id for i in shown}
