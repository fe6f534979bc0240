"""The review page through AppTest, on both databases: real face photos from the shared test
data go through ingest and shot QA into the queue, then a reviewer works through them with the
page's key buttons."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import NamedTuple, cast

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from likeness.models import ReviewItem, Role, User
from likeness.workbench import Workbench
from qa import api as qa_api
from tests.factories.app import sign_in, start, titles
from tests.factories.people import add_user, user_id
from tests.factories.review import queue_faces, votes_of, write_face_shoot

REVIEW_PAGE = "ui/pages/review.py"


# -- helpers ---------------------------------------------------------------------------------

def open_review(username: str) -> AppTest:
    at = sign_in(start(), username)
    at.switch_page(REVIEW_PAGE).run()
    assert not at.exception, at.exception
    assert titles(at) == ["Review"]
    return at


def press(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


class Face(NamedTuple):
    item_id: int
    image: str
    caption: str


FACE_HTML = re.compile(r'<figure class="lk-face" data-item="(\d+)">(.*?)<figcaption>(.*?)</figcaption></figure>')
CURRENT_CSS = re.compile(r'\.lk-face\[data-item="(\d+)"\] \{ outline-color')
VOTE_CSS = re.compile(r'\.lk-face\[data-item="(\d+)"\] figcaption::after \{ content: "([^"]*)"')


def _html(at: AppTest) -> tuple[str | None, str]:
    """The grid's HTML block and the style block after it that marks the cursor and the votes."""
    bodies = [e.proto.body for e in at.get("html")]  # style-only blocks sit outside at.main
    grids = [b for b in bodies if 'class="lk-grid"' in b]
    marks = [b for b in bodies if b.startswith("<style>") and 'class="lk-grid"' not in b]
    assert len(grids) <= 1 and len(marks) <= 1
    return (grids[0] if grids else None), (marks[0] if marks else "")


def grid(at: AppTest) -> list[Face]:
    """The faces in the grid, in grid order."""
    body, _ = _html(at)
    return [Face(int(i), image, caption) for i, image, caption in FACE_HTML.findall(body)] if body else []


def marked(at: AppTest) -> tuple[list[int], dict[int, str]]:
    """The face(s) drawn with the cursor, and the vote badges."""
    _, css = _html(at)
    return [int(i) for i in CURRENT_CSS.findall(css)], {int(i): text for i, text in VOTE_CSS.findall(css)}


def counts(at: AppTest) -> dict[str, tuple[int, int]]:
    """The sidebar's thumbs-down counts: reason -> (this reviewer, all reviewers)."""
    table = "\n".join(m.value for m in at.sidebar.markdown)
    return {
        reason: (int(mine), int(everyone))
        for reason, mine, everyone in re.findall(r"^\| \*\*\w\*\* ([\w ]+) \| (\d+) \| (\d+) \|", table, re.M)
    }


@pytest.fixture(scope="session")
def review_frames(testdata_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real faces: the crossed-eye pair, two with closed eyes, two open."""
    return write_face_shoot(testdata_dir, tmp_path_factory.mktemp("review") / "faces", per_label=2)


# -- tests -----------------------------------------------------------------------------------

def test_a_reviewer_votes_with_the_keys_and_each_vote_is_saved_at_once(
    env_workbench: Workbench, review_frames: Path, tmp_path: Path
) -> None:
    wb = env_workbench
    queued = queue_faces(wb, review_frames, tmp_path)
    add_user(wb, "rita", Role.reviewer)
    at = open_review("rita")

    batch = list(at.session_state["review_batch"])
    with wb.db.unit_of_work() as session:
        expected = [i.id for i in qa_api.next_items(session=session, reviewer_id=user_id(wb, "rita"))]
        flags = dict(session.execute(select(ReviewItem.id, ReviewItem.flag)).all())
    assert batch == expected and len(batch) == queued
    # The detector's flagged faces come first, each with its flag as a badge.
    assert flags[batch[0]] is not None and flags[batch[-1]] is None
    faces = grid(at)
    assert [f.item_id for f in faces] == batch
    assert all(f.image.startswith('<img src="data:image/jpeg;base64,') for f in faces)
    assert marked(at) == ([batch[0]], {})
    assert faces[0].caption.startswith("<b>1</b>") and cast(str, flags[batch[0]]).replace("_", " ") in faces[0].caption
    assert "lk-flag" not in faces[-1].caption
    assert any(f"0 of {queued} reviewed by you" in p.proto.text for p in at.main.get("progress"))

    press(at, "review_thumb_up")  # U on face 1
    assert votes_of(wb, "rita") == {batch[0]: ("up", [])}
    assert at.session_state["review_cursor"] == 1
    assert marked(at) == ([batch[1]], {batch[0]: "up"})

    press(at, "review_reason_closed_eyes")  # 1 on face 2
    assert votes_of(wb, "rita") == {batch[0]: ("up", []), batch[1]: ("down", ["closed_eyes"])}
    assert at.session_state["review_cursor"] == 2

    press(at, "review_right")  # → to face 4: moving writes nothing
    assert at.session_state["review_cursor"] == 3 and len(votes_of(wb, "rita")) == 2

    press(at, "review_reason_crossed_eyes")  # 2 on face 4; on to face 5, the next open one
    assert votes_of(wb, "rita")[batch[3]] == ("down", ["crossed_eyes"])
    assert at.session_state["review_cursor"] == 4

    press(at, "review_undo")  # Z: the crossed-eyes vote is gone and the cursor is back on face 4
    assert votes_of(wb, "rita") == {batch[0]: ("up", []), batch[1]: ("down", ["closed_eyes"])}
    assert at.session_state["review_cursor"] == 3
    assert marked(at) == ([batch[3]], {batch[0]: "up", batch[1]: "closed eyes"})

    # A second vote on a face replaces the first; undo restores the vote it replaced.
    press(at, "review_left")
    press(at, "review_left")
    press(at, "review_left")
    assert at.session_state["review_cursor"] == 0
    press(at, "review_reason_other")
    assert votes_of(wb, "rita")[batch[0]] == ("down", ["other"])
    press(at, "review_undo")
    assert votes_of(wb, "rita") == {batch[0]: ("up", []), batch[1]: ("down", ["closed_eyes"])}
    assert at.session_state["review_batch"] == tuple(batch)  # the grid never reshuffled
    assert any(f"2 of {queued} reviewed by you" in p.proto.text for p in at.main.get("progress"))
    assert counts(at)["closed eyes"][0] == 1 and counts(at)["crossed eyes"][0] == 0  # (you, all)

    # A reload is a new session: the voted faces are not offered again, the rest keep their order.
    st.cache_data.clear()  # the all-reviewer counts are cached for a few seconds
    again = open_review("rita")
    assert counts(again)["closed eyes"] == (1, 1) and counts(again)["other"] == (0, 0)
    assert list(again.session_state["review_batch"]) == [i for i in batch if i not in (batch[0], batch[1])]
    assert [f.item_id for f in grid(again)] == list(again.session_state["review_batch"])
    assert votes_of(wb, "rita") == {batch[0]: ("up", []), batch[1]: ("down", ["closed_eyes"])}


def test_measures_finishing_the_queue_and_undo_after_it(
    env_workbench: Workbench, review_frames: Path, tmp_path: Path
) -> None:
    wb = env_workbench
    queued = queue_faces(wb, review_frames, tmp_path)
    add_user(wb, "rita", Role.reviewer)
    at = open_review("rita")
    batch = list(at.session_state["review_batch"])

    press(at, "review_measures")  # M shows the detector's verdict for the current face
    detector = [m.value for m in at.main.markdown if m.value.startswith("Detector:")]
    assert len(detector) == 1 and ("crossed" in detector[0] or "closed" in detector[0])
    assert any("openness" in c.value and "vergence" in c.value for c in at.main.caption)
    press(at, "review_measures")
    assert not [m for m in at.main.markdown if m.value.startswith("Detector:")]

    for _ in range(queued):
        press(at, "review_thumb_up")
    assert votes_of(wb, "rita") == {i: ("up", []) for i in batch}
    assert any("Nothing left to review" in s.value for s in at.success)
    assert not grid(at)

    press(at, "review_undo")  # the last vote is taken back and its face shown again
    assert votes_of(wb, "rita") == {i: ("up", []) for i in batch[:-1]}
    assert at.session_state["review_batch"] == (batch[-1],) and at.session_state["review_cursor"] == 0
    assert [f.item_id for f in grid(at)] == [batch[-1]]
    press(at, "review_reason_teeth")
    assert votes_of(wb, "rita")[batch[-1]] == ("down", ["teeth"])


def test_a_deactivated_reviewer_cannot_vote_from_an_open_page(
    env_workbench: Workbench, review_frames: Path, tmp_path: Path
) -> None:
    wb = env_workbench
    queue_faces(wb, review_frames, tmp_path)
    add_user(wb, "rita", Role.reviewer)
    at = open_review("rita")
    with wb.db.unit_of_work() as session:
        cast(User, session.scalar(select(User).where(User.username == "rita"))).active = False
    at.button(key="review_thumb_up").click().run()
    assert not at.exception
    assert votes_of(wb, "rita") == {}
    assert at.session_state["user"] is None and titles(at) == ["likeness"]


@pytest.mark.parametrize("role", [Role.labeler, Role.photographer])
def test_other_roles_cannot_open_the_review_page(env_workbench: Workbench, role: Role) -> None:
    add_user(env_workbench, "someone", role)
    at = sign_in(start(), "someone")
    at.switch_page(REVIEW_PAGE).run()
    assert not at.exception
    assert "Review" not in titles(at)
    assert not [b for b in at.button if (b.key or "").startswith("review_")]


def test_admins_review_too_and_an_empty_queue_says_so(env_workbench: Workbench) -> None:
    add_user(env_workbench, "root", Role.admin)
    at = open_review("root")
    assert any("Nothing left to review" in s.value for s in at.success)
    assert at.session_state["review_batch"] == ()
    press(at, "review_thumb_up")  # nothing to vote on: no error, nothing stored
    assert votes_of(env_workbench, "root") == {}


def _generated_faces(workbench: Workbench, n: int) -> list[int]:
    """Generated 32 px faces in the queue, as training/generate.py stores them."""
    from PIL import Image

    ids = []
    with workbench.db.unit_of_work() as session:
        for i in range(n):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), (40 * i, 90, 160)).save(buffer, format="PNG")
            sha = workbench.blobs.put_bytes(buffer.getvalue())
            ids.append(qa_api.enqueue(session=session, image_sha256=sha, source="generated").id)
    return ids


def test_the_all_count_follows_other_reviewers_votes_at_once(env_workbench: Workbench) -> None:
    items = _generated_faces(env_workbench, 3)
    add_user(env_workbench, "rita", Role.reviewer)
    add_user(env_workbench, "ruth", Role.reviewer)
    at = open_review("rita")
    assert counts(at)["closed eyes"] == (0, 0)
    with env_workbench.db.unit_of_work() as session:
        qa_api.cast_vote(session=session, item_id=items[0], reviewer_id=user_id(env_workbench, "ruth"),
                         thumb="down", reasons=["closed_eyes"])
    press(at, "review_right")
    assert counts(at)["closed eyes"] == (0, 1)


def test_review_filters_by_source_and_zooms_the_current_face(env_workbench: Workbench) -> None:
    items = _generated_faces(env_workbench, 2)
    add_user(env_workbench, "rita", Role.reviewer)
    at = open_review("rita")
    assert [f.item_id for f in grid(at)] == items
    at.segmented_control(key="review_source").set_value("shot").run()
    assert not at.exception and grid(at) == []
    at.segmented_control(key="review_source").set_value("generated").run()
    assert [f.item_id for f in grid(at)] == items
    press(at, "review_zoom_button")
    assert len([i for i in at.image if "enlarged" in str(i.proto)]) == 1
    press(at, "review_zoom_button")
    assert not [i for i in at.image if "enlarged" in str(i.proto)]


def test_generated_faces_the_filter_decided_are_not_shown_and_the_hardest_come_first(env_workbench: Workbench) -> None:
    from likeness.models import GeneratedImage
    from tests.qa.test_filter import write_faces

    wb = env_workbench
    ids = write_faces(wb, 6)
    with wb.db.unit_of_work() as session:   # the filter decided the first two; of the rest, seed 4 is the most uncertain
        rows = {g.seed: g for g in session.scalars(select(GeneratedImage).where(GeneratedImage.id.in_(ids)))}
        for seed, (decision, score) in enumerate([("accept", 0.99), ("reject", 0.01), (None, 0.8), (None, 0.3),
                                                  (None, 0.52), (None, 0.9)]):
            rows[seed].decision, rows[seed].decision_score = decision, score
        items = {i.image_sha256: i for i in session.scalars(select(ReviewItem))}
        for row in rows.values():
            items[row.image_sha256].priority = 0.5 * (1 - abs(2 * (row.decision_score or 0.0) - 1))
        expected = [items[rows[s].image_sha256].id for s in (4, 3, 2, 5)]
    add_user(wb, "rita", Role.reviewer)
    at = open_review("rita")
    assert list(at.session_state["review_batch"]) == expected

    press(at, "review_measures")   # M shows the automatic checks and the filter's score
    assert any(m.value.startswith("Automatic checks") and "0.520" in m.value for m in at.main.markdown)
    assert any("craters" in c.value for c in at.main.caption)
