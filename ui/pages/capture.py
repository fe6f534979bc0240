"""Capture: the live hot folder of a shoot while the sitter is still in the chair. Photographers
and admins.

`likeness capture watch FOLDER --shoot NAME` ingests and judges each frame as it lands and writes
its verdicts and alerts to the shoot's event log (capture.watch); this page reads that log every
REFRESH_S seconds (`st.fragment(run_every=...)`), so a frame shows with its verdict without a
reload: the latest frames large with their verdict in plain words, the alerts, the plan's
coverage filling in (capture.coverage), the frames to reshoot, and the exposure and white-balance
drift against the session's reference frame. Previews of frames no valid release covers are
withheld from photographers, as on the Shoots page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from capture.coverage import Coverage, coverage
from capture.watch import events_path, read_events
from ingest import api as ingest_api
from ingest.gate import CONSENT_REASONS
from ingest.reads import SheetFilter
from likeness.models import Role
from ui._common import UPLOADERS, guard, plain, require_role, thumbnail, workbench

REFRESH_S = 2.0
LARGE = 2  # the newest frames, shown large
SMALL = 8  # the ones before them, in a row of small cards
LARGE_SIZE = (720, 540)
SMALL_SIZE = (320, 240)
ALERTS_SHOWN = 5
DRIFT_FRAMES = 500
SHOOT_KEY = "capture_shoot"
SOUND_KEY = "capture_sound"
HEARD_KEY = "capture_alerts_heard"  # (shoot, alerts counted) when the sound last played
# A short beep from the browser's own audio (nothing fetched).
BEEP = """<script>(() => { const ctx = new (window.AudioContext || window.webkitAudioContext)();
const tone = ctx.createOscillator(); tone.frequency.value = 880; tone.connect(ctx.destination);
tone.start(); tone.stop(ctx.currentTime + 0.35); })();</script>"""

user = require_role(*UPLOADERS)
wb = workbench()
blob_url = wb.blobs.url
admin = user.role is Role.admin
st.title("Capture")


def latest_verdicts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per frame, the newest first."""
    newest: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["kind"] == "verdict" and event.get("path"):
            newest.pop(event["path"], None)
            newest[event["path"]] = event
    return list(reversed(newest.values()))


def frame_key(verdict: dict[str, Any]) -> str:
    """A frame's card key, the same before and after it is stored (its path, made key-safe)."""
    return "capture_frame_" + hashlib.sha1(verdict["path"].encode()).hexdigest()[:12]


def colour_of(verdict: dict[str, Any]) -> str:
    if not verdict.get("words"):
        return "green"
    return "red" if verdict.get("reason") in CONSENT_REASONS else "orange"


def headline(verdict: dict[str, Any]) -> str:
    """The verdict in the photographer's words, as the watcher prints it."""
    who = verdict.get("sitter") or "no sitter"
    if verdict.get("words"):
        return f"{who}: {verdict['words']}"
    fills = f", fills {verdict['slot']}" if verdict.get("slot") else ""
    return f"{who}: ok{fills}"


def preview_of(verdict: dict[str, Any], card: ingest_api.ShotCard | None) -> str | None:
    """The frame's preview: the stored shot's, else (judged on its first look, not stored yet)
    the look's, withheld on the same rule (no valid release covers it: admins only)."""
    if card is not None:
        return card.preview_sha256
    if verdict.get("reason") in CONSENT_REASONS and not admin:
        return None
    return verdict.get("preview_sha256")


def show_frame(verdict: dict[str, Any], card: ingest_api.ShotCard | None, size: tuple[int, int]) -> None:
    preview = preview_of(verdict, card)
    if preview:
        with guard():
            st.image(thumbnail(blob_url, preview, size, pad=True), width="stretch")
    elif (card is not None and card.withheld) or (card is None and verdict.get("reason") in CONSENT_REASONS):
        st.caption("preview withheld: no valid release covers this frame (an admin can resolve it)")
    colour = colour_of(verdict)
    st.markdown(f":{colour}[**{plain(headline(verdict))}**]")
    stamp = dt.datetime.fromtimestamp(verdict["at"]).strftime("%H:%M:%S")
    details = [plain(verdict["path"]), stamp]
    if verdict.get("pose"):
        details.append(f"pose {plain(verdict['pose'].replace('_', ' '))}")
    if verdict.get("eyes"):
        details.append(f"eyes {plain(verdict['eyes'].replace('_', ' '))}")
    st.caption(" · ".join(details))
    for note in verdict.get("notes") or []:
        st.caption(plain(note))


def show_coverage(cov: Coverage, words: dict[str, str]) -> None:
    st.subheader("Plan coverage")
    if not cov.slots:
        st.caption(f"Shoot {plain(cov.shoot)} has no plan: `likeness capture plan make` stores one.")
    else:
        st.progress(cov.filled / max(cov.planned, 1),
                    text=f"{cov.filled} of {cov.planned} planned frames filled · {cov.frames} frames stored")
        st.dataframe(pd.DataFrame([{
            "sitter": entry.slot.sitter, "pose": entry.slot.pose.replace("_", " "),
            "expression": entry.slot.expression, "lighting": entry.slot.lighting or "",
            "filled": f"{entry.filled}/{entry.slot.count}", "done": entry.done,
        } for entry in cov.slots]), hide_index=True, width="stretch", key="capture_slots")
        if cov.unplanned:
            st.caption(f"{len(cov.unplanned)} usable frames fill no slot of the plan.")
    if cov.reshoot:
        st.markdown(f"**Frames to reshoot: {len(cov.reshoot)}**")
        lines = []
        for item in cov.reshoot:
            why = words.get(item.relative_path) or item.reason.replace("_", " ")
            detail = f" ({item.detail})" if admin and item.detail and item.relative_path not in words else ""
            lines.append(f"- {plain(item.relative_path)} · {plain(item.sitter or 'no sitter')}: {plain(why + detail)}")
        st.markdown("\n".join(lines))


def drift(cards: list[ingest_api.ShotCard]) -> pd.DataFrame | None:
    """Exposure (stops) and white-balance drift against the reference frame, frame by frame."""
    rows = []
    for card in cards:
        checks = {c["name"]: c.get("value") for c in (card.qa or {}).get("checks", [])}
        if checks.get("exposure_shift") is not None or checks.get("white_balance_shift") is not None:
            rows.append({"frame": card.relative_path, "exposure shift, stops": checks.get("exposure_shift"),
                         "white balance shift": checks.get("white_balance_shift")})
    return pd.DataFrame(rows).set_index("frame") if rows else None


def beep_on_new_alerts(shoot: str, alerts: int) -> None:
    heard = st.session_state.get(HEARD_KEY)
    st.session_state[HEARD_KEY] = (shoot, alerts)
    if st.session_state.get(SOUND_KEY) and heard is not None and heard[0] == shoot and alerts > heard[1]:
        st.html(BEEP, unsafe_allow_javascript=True)


with guard(stop=True), wb.db.unit_of_work() as session:
    shoots = ingest_api.list_shoots(session=session)
if not shoots:
    st.info("No shoots stored yet. `likeness capture watch FOLDER --shoot NAME` stores the shoot of a hot folder "
            "with its first frame; `likeness capture plan` stores a planned one.")
    st.stop()
by_id = {s.id: s for s in shoots}
if st.session_state.get(SHOOT_KEY) not in by_id:
    st.session_state[SHOOT_KEY] = shoots[0].id
pick, sound = st.columns([4, 1], vertical_alignment="bottom")
shoot_id = pick.selectbox("Shoot", list(by_id), format_func=lambda i: by_id[i].label(), key=SHOOT_KEY)
sound.toggle("Sound on alerts", key=SOUND_KEY)
shoot = by_id[shoot_id]
code_name = shoot.name.replace("`", "'")  # inside a code span: shown as it is, no escapes
st.caption(f"Watch the shoot's folder with `likeness capture watch FOLDER --shoot {code_name}`; "
           f"this page follows it every {REFRESH_S:g} s. `likeness capture close {code_name}` ends the session.")


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    events = read_events(events_path(wb, shoot.name))
    verdicts = latest_verdicts(events)
    alerts = [e for e in events if e["kind"] == "alert"]
    beep_on_new_alerts(shoot.name, len(alerts))
    with guard(stop=True), wb.db.unit_of_work() as session:
        cov = coverage(session, shoot.name)
        shown = verdicts[: LARGE + SMALL]
        cards = {c.relative_path: c for c in ingest_api.contact_sheet(
            session=session, shoot_id=shoot.id, limit=len(shown), show_unreleased=admin,
            where=SheetFilter(relative_paths=tuple(v["path"] for v in shown)),
        )} if shown else {}
        timeline = ingest_api.contact_sheet(session=session, shoot_id=shoot.id, limit=DRIFT_FRAMES,
                                            where=SheetFilter(sort="captured"))

    if verdicts:
        bad = sum(1 for v in verdicts if v.get("words"))
        judged = f"{len(verdicts)} frame{'' if len(verdicts) == 1 else 's'} judged"
        st.markdown(f"**{judged}**, {bad} to look at, {len(alerts)} alert{'' if len(alerts) == 1 else 's'}")
    else:
        st.info(f"No frames judged yet: start `likeness capture watch FOLDER --shoot {code_name}` "
                "and drop frames into the folder.")
    if events:
        last = dt.datetime.fromtimestamp(events[-1]["at"]).strftime("%H:%M:%S")
        st.caption(f"Last from the watcher, at {last}: {plain(events[-1]['message'])}")

    for alert in reversed(alerts[-ALERTS_SHOWN:]):
        stamp = dt.datetime.fromtimestamp(alert["at"]).strftime("%H:%M:%S")
        st.error(f"{stamp} {plain(alert['message'])}", icon=":material/warning:")

    if verdicts:
        st.subheader("Latest frames")
        for column, verdict in zip(st.columns(LARGE), verdicts[:LARGE]):
            with column.container(border=True, key=frame_key(verdict)):
                show_frame(verdict, cards.get(verdict["path"]), LARGE_SIZE)
        older = verdicts[LARGE : LARGE + SMALL]
        if older:
            for column, verdict in zip(st.columns(max(4, len(older))), older):
                with column.container(border=True, key=frame_key(verdict)):
                    show_frame(verdict, cards.get(verdict["path"]), SMALL_SIZE)

    show_coverage(cov, {v["path"]: v["words"] for v in verdicts if v.get("words")})

    plot = drift(timeline)
    if plot is not None:
        st.subheader("Drift against the reference frame")
        st.line_chart(plot)


live()
