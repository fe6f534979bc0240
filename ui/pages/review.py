"""Review: a keyboard-driven grid of queued faces for reviewers (and admins).

Every key is a button with a shortcut, and every vote is written in its own unit of work as it
is made, so a reload loses nothing. The batch on screen is a tuple of item ids in session state:
the grid keeps its order while votes land and is replaced when each face in it has a vote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st
from sqlalchemy.orm import Session

from likeness.errors import LikenessError
from likeness.models import DefectReason, Role, Thumb
from qa import api as qa_api
from ui import queries
from ui._common import current_user, guard, plain, require_role, thumbnail, workbench

REVIEWERS = (Role.reviewer, Role.admin)
BATCH = 48
PER_ROW = 8
THUMB_SIZE = (128, 128)  # small inline JPEGs keep a 48-face rerun light
DETAIL_SIZE = (256, 256)
UNDO_DEPTH = 200
REASON_KEYS = {
    "1": DefectReason.closed_eyes, "2": DefectReason.crossed_eyes, "3": DefectReason.crater,
    "4": DefectReason.background, "5": DefectReason.ears, "6": DefectReason.headwear, "7": DefectReason.collar,
    "8": DefectReason.teeth, "9": DefectReason.hands, "0": DefectReason.asymmetry, "o": DefectReason.other,
}
KEY_OF_REASON = {reason.value: key.upper() for key, reason in REASON_KEYS.items()}

# Session state: plain values only.
BATCH_KEY = "review_batch"  # tuple of item ids on screen
CURSOR_KEY = "review_cursor"  # index into the batch
UNDO_KEY = "review_undo"  # list of (item id, previous thumb or None, previous reasons)
MEASURES_KEY = "review_show_measures"
ERROR_KEY = "review_error"

# The current face gets an outline, faces already voted on are dimmed (container keys become CSS classes).
STYLE = """<style>
[class*="st-key-review_current_"] { outline: 3px solid #ff4b4b; outline-offset: 3px; border-radius: 0.4rem; }
[class*="_voted_"] img { opacity: 0.35; }
</style>"""


# -- actions (button callbacks: they run before the page, so the page shows their result) ----

@contextlib.contextmanager
def _as_reviewer() -> Iterator[tuple[Session, int] | None]:
    """A unit of work for the signed-in reviewer, or None when they may no longer review.
    Callbacks run before the app re-reads the role, so the role is checked here as well."""
    user = current_user()
    with workbench().db.unit_of_work() as session:
        allowed = user is not None and queries.active_role(session, user.user_id) in REVIEWERS
        yield (session, user.user_id) if allowed else None


def _batch() -> list[int]:
    return list(st.session_state.get(BATCH_KEY, ()))


def _next_open(batch: list[int], voted: dict[int, object], cursor: int) -> int:
    """The first face after the cursor without a vote, else the first one anywhere; else stay."""
    for position in [*range(cursor + 1, len(batch)), *range(0, cursor + 1)]:
        if batch[position] not in voted:
            return position
    return cursor


def move(step: int) -> None:
    batch = _batch()
    if batch:
        st.session_state[CURSOR_KEY] = min(max(st.session_state.get(CURSOR_KEY, 0) + step, 0), len(batch) - 1)


def vote(thumb: Thumb, reasons: tuple[str, ...] = ()) -> None:
    batch, cursor = _batch(), st.session_state.get(CURSOR_KEY, 0)
    if not 0 <= cursor < len(batch):
        return
    item_id = batch[cursor]
    try:
        with _as_reviewer() as reviewer:
            if reviewer is None:
                return
            session, reviewer_id = reviewer
            before = queries.my_votes(session, reviewer_id, [item_id]).get(item_id)
            qa_api.cast_vote(session=session, item_id=item_id, reviewer_id=reviewer_id, thumb=thumb, reasons=reasons)
            voted = queries.my_votes(session, reviewer_id, batch)
    except LikenessError as exc:
        st.session_state[ERROR_KEY] = str(exc)
        return
    previous = (item_id, *before) if before else (item_id, None, ())
    st.session_state[UNDO_KEY] = [*st.session_state.get(UNDO_KEY, []), previous][-UNDO_DEPTH:]
    st.session_state[CURSOR_KEY] = _next_open(batch, voted, cursor)


def undo() -> None:
    """Put back this session's last vote: retract it, or restore the vote it replaced."""
    stack = list(st.session_state.get(UNDO_KEY, []))
    if not stack:
        return
    item_id, thumb, reasons = stack.pop()
    try:
        with _as_reviewer() as reviewer:
            if reviewer is None:
                return
            session, reviewer_id = reviewer
            if thumb is None:
                qa_api.retract_vote(session=session, item_id=item_id, reviewer_id=reviewer_id)
            else:
                qa_api.cast_vote(session=session, item_id=item_id, reviewer_id=reviewer_id, thumb=thumb, reasons=reasons)
    except LikenessError as exc:
        st.session_state[ERROR_KEY] = str(exc)
        return
    st.session_state[UNDO_KEY] = stack
    batch = _batch()
    if item_id not in batch:  # the vote finished a batch that has since been replaced
        batch.insert(0, item_id)
        st.session_state[BATCH_KEY] = tuple(batch)
    st.session_state[CURSOR_KEY] = batch.index(item_id)


def toggle_measures() -> None:
    st.session_state[MEASURES_KEY] = not st.session_state.get(MEASURES_KEY, False)


# -- rendering -------------------------------------------------------------------------------

def _badge(text: str, colour: str) -> str:
    return f":{colour}-badge[{plain(text)}]"


def _flag(card: queries.ReviewCard) -> str:
    if not card.flag:
        return ""
    confidence = f" {card.flag_confidence:.2f}" if card.flag_confidence is not None else ""
    return _badge(card.flag.replace("_", " ") + confidence, "orange")


def _vote_badge(given: tuple[str, tuple[str, ...]] | None) -> str:
    if given is None:
        return ""
    thumb, reasons = given
    return _badge("up", "green") if thumb == Thumb.up.value else _badge(", ".join(reasons) or "down", "red")


def _number(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def show_measures(card: queries.ReviewCard, verdict: dict) -> None:
    image, text = st.columns([1, 4], vertical_alignment="top")
    with image, guard():
        st.image(thumbnail(blob_url, card.image_sha256, DETAIL_SIZE), width=200)
    if not verdict:
        text.caption("The detector stored no measures for this face.")
        return
    text.markdown(
        f"Detector: **{plain(str(verdict.get('state', '–')))}** · confidence {_number(verdict.get('confidence'))}"
        + (f" · {plain(str(verdict['reason']))}" if verdict.get("reason") else "")
    )
    values = verdict.get("measures") or {}
    text.caption(" · ".join(f"{plain(name)} {_number(value)}" for name, value in values.items()) or "no measures")


def show_counts(progress: queries.ReviewProgress, stats: qa_api.ReviewStats) -> None:
    rows = ["| key | reason | you | all | κ |", "|:-:|---|--:|--:|--:|"]
    for reason in DefectReason:
        kappa = stats.agreement.get(reason.value)
        rows.append(
            f"| {KEY_OF_REASON[reason.value]} | {reason.value.replace('_', ' ')} | {progress.reasons.get(reason.value, 0)} "
            f"| {stats.reason_counts.get(reason.value, 0)} | {'–' if kappa is None else f'{kappa:.2f}'} |"
        )
    st.markdown("\n".join(rows))
    st.caption(
        f"All reviewers: {stats.votes} votes on {stats.reviewed_items} of {stats.items} faces; "
        f"{stats.multi_reviewed_items} seen by two or more (κ: agreement on each reason among those)."
    )


user = require_role(*REVIEWERS)
wb = workbench()
blob_url = wb.blobs.url
st.title("Review")

with guard(stop=True), wb.db.unit_of_work() as session:
    cards = queries.review_cards(session, _batch())
    votes = queries.my_votes(session, user.user_id, [c.id for c in cards])
    if len(votes) == len(cards):  # batch finished (or none yet): the next faces not voted on
        items = qa_api.next_items(session=session, reviewer_id=user.user_id, limit=BATCH)
        cards = [queries.ReviewCard(i.id, i.image_sha256, i.flag, i.flag_confidence) for i in items]
        votes = {}
        st.session_state[CURSOR_KEY] = 0
    st.session_state[BATCH_KEY] = tuple(c.id for c in cards)
    cursor = min(max(st.session_state.get(CURSOR_KEY, 0), 0), max(len(cards) - 1, 0))
    st.session_state[CURSOR_KEY] = cursor
    showing_measures = st.session_state.get(MEASURES_KEY, False) and bool(cards)
    verdict = queries.review_measures(session, cards[cursor].id) if showing_measures else {}
    progress = queries.review_progress(session, user.user_id)
    stats = qa_api.review_stats(session=session)

if error := st.session_state.pop(ERROR_KEY, None):
    st.error(" ".join(error.split()), icon=":material/error:")
st.progress(
    progress.reviewed / progress.items if progress.items else 0.0,
    text=f"{progress.reviewed} of {progress.items} reviewed by you · {progress.up} up, {progress.down} down",
)

with st.container(horizontal=True, gap="small", key="review_keys"):
    st.button("Previous", key="review_left", shortcut="Left", on_click=move, args=(-1,), icon=":material/arrow_back:")
    st.button("Next", key="review_right", shortcut="Right", on_click=move, args=(1,), icon=":material/arrow_forward:")
    st.button("Row up", key="review_row_up", shortcut="Up", on_click=move, args=(-PER_ROW,))
    st.button("Row down", key="review_row_down", shortcut="Down", on_click=move, args=(PER_ROW,))
    st.button("Good", key="review_thumb_up", shortcut="U", on_click=vote, args=(Thumb.up,),
              icon=":material/thumb_up:", type="primary")
    for key, reason in REASON_KEYS.items():
        st.button(reason.value.replace("_", " "), key=f"review_reason_{reason.value}", shortcut=key.upper(),
                  on_click=vote, args=(Thumb.down, (reason.value,)))
    st.button("Undo", key="review_undo", shortcut="Z", on_click=undo, icon=":material/undo:")
    st.button("Measures", key="review_measures", shortcut="M", on_click=toggle_measures, icon=":material/straighten:")
st.caption(
    "Keys: ← → move, ↑ ↓ a row · **U** thumbs up · **1**–**9**, **0**, **O** thumbs down for that reason · "
    "**Z** undo · **M** the detector's measures. Each vote is saved at once and moves on to the next open face."
)

if not cards:
    st.success("Nothing left to review: you have a vote on every queued face.", icon=":material/done_all:")
else:
    if showing_measures:
        show_measures(cards[cursor], verdict)
    st.html(STYLE)
    for start in range(0, len(cards), PER_ROW):
        for offset, column in enumerate(st.columns(PER_ROW, gap="small")):
            position = start + offset
            if position >= len(cards):
                break
            card, given = cards[position], votes.get(cards[position].id)
            state = "current" if position == cursor else "face"
            with column.container(key=f"review_{state}_{'voted' if given else 'open'}_{card.id}", gap=None):
                with guard():
                    st.image(thumbnail(blob_url, card.image_sha256, THUMB_SIZE, pad=True), width="stretch")
                marker = "▶ " if position == cursor else ""
                st.caption(" ".join(p for p in (f"{marker}**{position + 1}**", _flag(card), _vote_badge(given)) if p))

with st.sidebar:
    st.subheader("Thumbs down by reason")
    show_counts(progress, stats)
