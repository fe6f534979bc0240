"""Review: a keyboard-driven grid of queued faces for reviewers (and admins).

Every key is a button with a shortcut, and every vote is written in its own unit of work as it
is made, so a reload loses nothing. The batch on screen is a tuple of item ids in session state:
the grid keeps its order while votes land and is replaced when each face in it has a vote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import logging
from collections.abc import Container, Iterator

import streamlit as st
from sqlalchemy.orm import Session

from likeness import users
from likeness.errors import LikenessError
from likeness.models import DefectReason, Role, Thumb
from qa import api as qa_api
from qa.review_reads import votes_version
from ui._common import current_user, guard, plain, require_role, thumbnail, workbench
from ui.review_keys import KEY_OF_REASON, REASON_KEYS

log = logging.getLogger(__name__)

REVIEWERS = (Role.reviewer, Role.admin)
BATCH = 48
PER_ROW = 8
THUMB_SIZE = (128, 128)  # small inline JPEGs keep a 48-face rerun light
DETAIL_SIZE = (256, 256)
ZOOM_SIZE = (640, 640)  # the enlarged current face; small generated faces are scaled up to it
UNDO_DEPTH = 200
SOURCE_LABELS = {"shot": "shot (photographed)", "generated": "generated"}

# Session state: plain values only.
BATCH_KEY = "review_batch"  # tuple of item ids on screen
CURSOR_KEY = "review_cursor"  # index into the batch
UNDO_KEY = "review_undo_stack"  # list of (item id, previous thumb or None, previous reasons)
MEASURES_KEY = "review_show_measures"
ZOOM_KEY = "review_zoom"
SOURCE_KEY = "review_source"  # the source filter's widget: None for all, else "shot" or "generated"
BATCH_SOURCE_KEY = "review_batch_source"  # the filter the batch on screen was drawn with
ERROR_KEY = "review_error"

# The grid is one HTML block that changes only with the batch, and the cursor and the votes are a
# small style block after it. Streamlit sends an unchanged large element as a reference the browser
# has cached, so a key press moves a few hundred bytes instead of every thumbnail again.
GRID_STYLE = f"""<style>
.lk-grid {{ display: grid; grid-template-columns: repeat({PER_ROW}, minmax(0, 1fr)); gap: 0.9rem 0.75rem; }}
.lk-face {{ margin: 0; padding: 3px; border-radius: 0.5rem; outline: 3px solid transparent; }}
.lk-face img, .lk-missing {{ display: block; width: 100%; aspect-ratio: 1; border-radius: 0.3rem; }}
.lk-missing {{ background: #eee; color: #888; font-size: 0.75rem; display: grid; place-items: center; }}
.lk-face figcaption {{ display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.15rem 0.3rem;
  font-size: 0.8rem; opacity: 0.8; margin-top: 0.25rem; line-height: 1.5; }}
.lk-face figcaption span, .lk-face figcaption::after {{ border-radius: 0.3rem; padding: 0 0.3rem;
  max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }}
.lk-flag {{ background: rgba(255, 164, 33, 0.15); color: #b86200; }}
</style>"""
CURRENT_COLOUR = "#ff4b4b"
SCROLL_SCRIPT = """<script>
document.querySelector('.lk-face[data-item="%d"]')?.scrollIntoView({block: "nearest"});
</script>"""
VOTE_COLOURS: dict[str, tuple[str, str]] = {  # (background, text) of a vote's badge
    Thumb.up: ("rgba(33, 195, 84, 0.15)", "#158237"),
    Thumb.down: ("rgba(255, 43, 43, 0.12)", "#c21f1f"),
}


# -- actions (button callbacks: they run before the page, so the page shows their result) ----

@contextlib.contextmanager
def _as_reviewer() -> Iterator[tuple[Session, int] | None]:
    """A unit of work for the signed-in reviewer, or None when they may no longer review.
    Callbacks run before the app re-reads the role, so the role is checked here as well."""
    user = current_user()
    with workbench().db.unit_of_work() as session:
        if user is None or users.active_role(session=session, user_id=user.user_id) not in REVIEWERS:
            yield None
        else:
            yield session, user.user_id


def _batch() -> list[int]:
    return list(st.session_state.get(BATCH_KEY, ()))


def _next_open(batch: list[int], voted: Container[int], cursor: int) -> int:
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
            before = qa_api.my_votes(session=session, reviewer_id=reviewer_id, item_ids=[item_id]).get(item_id)
            qa_api.cast_vote(session=session, item_id=item_id, reviewer_id=reviewer_id, thumb=thumb, reasons=reasons)
            voted = qa_api.my_votes(session=session, reviewer_id=reviewer_id, item_ids=batch)
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
                qa_api.cast_vote(
                    session=session, item_id=item_id, reviewer_id=reviewer_id, thumb=thumb, reasons=reasons
                )
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


def toggle_zoom() -> None:
    st.session_state[ZOOM_KEY] = not st.session_state.get(ZOOM_KEY, False)


# -- rendering -------------------------------------------------------------------------------

def _label(text: str) -> str:
    return text.replace("_", " ")


def _face_html(position: int, card: qa_api.ReviewCard) -> str:
    try:
        image = f'<img src="{thumbnail(blob_url, card.image_sha256, THUMB_SIZE, pad=True)}" alt="face {position + 1}">'
    except LikenessError as exc:
        log.info("review item %s: %s", card.id, exc)
        image = '<div class="lk-missing">image unreadable</div>'
    flag = ""
    if card.flag:
        confidence = f" {card.flag_confidence:.2f}" if card.flag_confidence is not None else ""
        flag = f' <span class="lk-flag">{html.escape(_label(card.flag))}{confidence}</span>'
    caption = f"<figcaption><b>{position + 1}</b>{flag}</figcaption>"
    return f'<figure class="lk-face" data-item="{card.id}">{image}{caption}</figure>'


def grid_html(cards: list[qa_api.ReviewCard]) -> str:
    """The faces of the batch with their index and the detector's flag: the same until the batch changes."""
    return GRID_STYLE + '<div class="lk-grid">' + "".join(_face_html(i, c) for i, c in enumerate(cards)) + "</div>"


def state_css(current: int | None, votes: dict[int, tuple[str, tuple[str, ...]]]) -> str:
    """The cursor's outline and marker, and each vote as a badge on a dimmed face."""
    rules = []
    if current is not None:
        face = f'.lk-face[data-item="{current}"]'
        rules.append(f'{face} {{ outline-color: {CURRENT_COLOUR}; }} {face} b::before {{ content: "▶ "; }}')
    for item_id, (thumb, reasons) in sorted(votes.items()):
        text = "up" if thumb == Thumb.up else ", ".join(map(_label, reasons)) or "down"
        background, colour = VOTE_COLOURS.get(thumb, VOTE_COLOURS[Thumb.down])
        face = f'.lk-face[data-item="{item_id}"]'
        rules.append(
            f"{face} img {{ opacity: 0.35; }} "
            f'{face} figcaption::after {{ content: "{text}"; background: {background}; color: {colour}; }}'
        )
    return "<style>\n" + "\n".join(rules) + "\n</style>"


def _number(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def show_measures(card: qa_api.ReviewCard, verdict: dict) -> None:
    image, text = st.columns([1, 4], vertical_alignment="top")
    with image, guard():
        st.image(thumbnail(blob_url, card.image_sha256, DETAIL_SIZE), width=200)
    if not verdict:
        text.caption("The detector stored no measures for this face.")
        return
    if "checks" in verdict:   # a generated face: its automatic checks and the learned filter's score
        score = verdict.get("filter_score")
        text.markdown("Automatic checks" + (f" · filter p(good) **{score:.3f}**" if score is not None else ""))
        text.caption(" · ".join(
            f"{plain(name)} {_number(entry.get('value'))}" + (" ⚑" if entry.get("flagged") else "")
            for name, entry in verdict["checks"].items() if isinstance(entry, dict)) or "no checks stored")
        if "state" not in verdict:
            return
    text.markdown(
        f"Detector: **{plain(str(verdict.get('state', '–')))}** · confidence {_number(verdict.get('confidence'))}"
        + (f" · {plain(str(verdict['reason']))}" if verdict.get("reason") else "")
    )
    values = verdict.get("measures") or {}
    text.caption(" · ".join(f"{plain(name)} {_number(value)}" for name, value in values.items()) or "no measures")


@st.cache_data(show_spinner=False, max_entries=8)
def overall_stats(database_url: str, version: tuple[int, int, int, str]) -> tuple[qa_api.ReviewStats, str]:
    """Every reviewer's counts and agreement, and the time they were taken. This reads all votes,
    so it is shared between sessions and keyed by the votes' fingerprint (`version`): it is read
    again when any vote changes, and never shows a stale count."""
    with workbench().db.unit_of_work() as session:
        return qa_api.review_stats(session=session), dt.datetime.now().strftime("%H:%M:%S")


def show_counts(progress: qa_api.ReviewProgress, stats: qa_api.ReviewStats, taken_at: str) -> None:
    rows = ["| reason | you | all\\* | κ\\* |", "|---|--:|--:|--:|"]
    for reason in DefectReason:
        kappa = stats.agreement.get(reason.value)
        rows.append(
            f"| **{KEY_OF_REASON[reason.value].upper()}** {_label(reason.value)} | {progress.reasons.get(reason.value, 0)} "
            f"| {stats.reason_counts.get(reason.value, 0)} | {'–' if kappa is None else f'{kappa:.2f}'} |"
        )
    st.markdown("\n".join(rows))
    st.caption(
        f"\\* All reviewers as of {taken_at}: {stats.votes} votes on "
        f"{stats.reviewed_items} of {stats.items} faces, {stats.multi_reviewed_items} seen by two or more; "
        "κ is their agreement on each reason."
    )


user = require_role(*REVIEWERS)
wb = workbench()
blob_url = wb.blobs.url
st.title("Review")

source = st.segmented_control(
    "Source", list(SOURCE_LABELS), format_func=lambda s: SOURCE_LABELS.get(s, s), key=SOURCE_KEY,
    help="Only photographed faces (shot crops) or only generated ones; none chosen shows both.",
)
with guard(stop=True), wb.db.unit_of_work() as session:
    cards = qa_api.review_cards(session=session, item_ids=_batch())
    votes = qa_api.my_votes(session=session, reviewer_id=user.user_id, item_ids=[c.id for c in cards])
    # A finished batch (or none yet), or one drawn under another source filter: the next faces not voted on.
    if len(votes) == len(cards) or st.session_state.get(BATCH_SOURCE_KEY) != source:
        items = qa_api.next_items(session=session, reviewer_id=user.user_id, limit=BATCH, source=source)
        cards = [qa_api.ReviewCard(i.id, i.image_sha256, i.flag, i.flag_confidence) for i in items]
        votes = qa_api.my_votes(session=session, reviewer_id=user.user_id, item_ids=[c.id for c in cards])
        st.session_state[CURSOR_KEY] = 0
    st.session_state[BATCH_KEY] = tuple(c.id for c in cards)
    st.session_state[BATCH_SOURCE_KEY] = source
    cursor = min(max(st.session_state.get(CURSOR_KEY, 0), 0), max(len(cards) - 1, 0))
    st.session_state[CURSOR_KEY] = cursor
    showing_measures = st.session_state.get(MEASURES_KEY, False) and bool(cards)
    verdict = qa_api.review_measures(session=session, item_id=cards[cursor].id) if showing_measures else {}
    progress = qa_api.review_progress(session=session, reviewer_id=user.user_id)
    version = votes_version(session=session)
with guard(stop=True):
    stats, taken_at = overall_stats(wb.db.url, version)

if error := st.session_state.pop(ERROR_KEY, None):
    st.error(" ".join(error.split()), icon=":material/error:")
st.progress(
    progress.reviewed / progress.items if progress.items else 0.0,
    text=f"{progress.reviewed} of {progress.items} reviewed by you · {progress.up} up, {progress.down} down",
)

with st.container(horizontal=True, gap="small", key="review_votes"):
    st.button("Thumbs up", key="review_thumb_up", shortcut="U", on_click=vote, args=(Thumb.up,),
              icon=":material/thumb_up:", type="primary")
    for key, reason in REASON_KEYS.items():
        st.button(_label(reason.value), key=f"review_reason_{reason.value}", shortcut=key.upper(),
                  on_click=vote, args=(Thumb.down, (reason.value,)))
with st.container(horizontal=True, gap="small", vertical_alignment="center", key="review_moves"):
    for label, key, shortcut, step in (
        ("Previous", "review_left", "Left", -1), ("Next", "review_right", "Right", 1),
        ("Row up", "review_row_up", "Up", -PER_ROW), ("Row down", "review_row_down", "Down", PER_ROW),
    ):
        st.button(label, key=key, shortcut=shortcut, on_click=move, args=(step,), type="tertiary")
    st.button("Undo", key="review_undo", shortcut="Z", on_click=undo, icon=":material/undo:", type="tertiary")
    st.button("Measures", key="review_measures", shortcut="M", on_click=toggle_measures,
              icon=":material/straighten:", type="tertiary")
    st.button("Zoom", key="review_zoom_button", shortcut="E", on_click=toggle_zoom,
              icon=":material/zoom_in:", type="tertiary", help="Enlarge the current face (E)")
    st.caption("A number key is a thumbs down for that reason. Each vote is saved at once.", width="content")

if not cards:
    st.success("Nothing left to review: you have a vote on every queued face.", icon=":material/done_all:")
else:
    if showing_measures:
        show_measures(cards[cursor], verdict)
    if st.session_state.get(ZOOM_KEY, False):
        with st.container(key="review_zoomed"), guard():
            st.image(thumbnail(blob_url, cards[cursor].image_sha256, ZOOM_SIZE, pad=True), width=ZOOM_SIZE[0],
                     caption=f"face {cursor + 1}, enlarged (E to close)")
    st.html(grid_html(cards))
    st.html(state_css(cards[cursor].id, votes))
    # Keep the current face on screen: the grid is taller than a window, and the keys move the cursor.
    st.html(SCROLL_SCRIPT % cards[cursor].id, unsafe_allow_javascript=True)

with st.sidebar:
    st.subheader("Thumbs down by reason")
    show_counts(progress, stats, taken_at)
