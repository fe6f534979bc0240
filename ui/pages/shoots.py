"""Shoots: upload a shoot (photographers and admins) and look through contact sheets (every role).

Only admins see the gate's reason details: they can state a sitter's age, which comes from the
admin-only personal data. Everyone else sees sitter codes, statuses and reason codes.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict

import streamlit as st

from ingest import api as ingest_api
from ingest.gate import QA_REASON_PREFIX
from ingest.reads import SORTS, SheetFilter, sheet_facets
from likeness.errors import LikenessError
from likeness.models import Role
from pipeline.api import ingest_and_check
from qa import api as qa_api
from ui._common import UPLOADERS, guard, plain, require_role, thumbnail, workbench
from ui.staging import UPLOAD_TYPES, ShootFields, discard, stage_upload

PER_PAGE = 24
PER_ROW = 4
CROP_SIZE = (160, 160)
PREVIEW_SIZE = (480, 400)  # portrait and landscape frames share one cell height
ENLARGED_SIZE = (1600, 1600)  # the dialog's preview: the stored preview at its own size, or scaled up
LIVE_CARDS = PER_PAGE  # cards drawn while an upload is ingested; the rest are counted
STATUS_COLOURS = {"accepted": "green", "quarantined": "orange", "rejected": "red"}
# What a photographer can do about a quarantine they cannot lift themselves.
NEXT_STEPS = {
    "unknown_sitter": "ask an admin to register the sitter and their release",
    "no_release": "ask an admin to record the sitter's signed release",
    "release_expired": "ask an admin to record a new release from the sitter",
    "release_revoked": "the sitter revoked their release: these frames cannot be used",
    "minor_without_guardian": "ask an admin to record the guardian's signature",
}

user = require_role(*Role)
wb = workbench()
blob_url = wb.blobs.url
st.title("Shoots")


def show_summary(summary: ingest_api.IngestSummary) -> None:
    quarantined = sum(len(paths) for paths in summary.quarantined.values())
    line = (
        f"**{plain(summary.shoot)}**: {summary.files} files in {summary.elapsed_s:.1f} s: {len(summary.accepted)} accepted, "
        f"{quarantined} quarantined, {len(summary.duplicates)} duplicates skipped, "
        f"{len(summary.already_stored)} already stored, {len(summary.failed)} failed, {len(summary.skipped)} skipped"
    )
    (st.warning if summary.failed or quarantined else st.success)(line)
    lines = [
        f"- quarantined ({reason}): {plain(', '.join(paths))}"
        + (f" · {NEXT_STEPS[reason]}" if reason in NEXT_STEPS and user.role is not Role.admin else "")
        for reason, paths in sorted(summary.quarantined.items())
    ]
    lines += [f"- duplicate: {plain(path)} repeats {plain(of)}" for path, of in summary.duplicates]
    lines += [f"- failed: {plain(path)}: {plain(reason)} ({kind})" for path, kind, reason in summary.failed]
    lines += [f"- skipped: {plain(entry.relative_path)}: {plain(entry.reason)}" for entry in summary.skipped]
    if lines:
        st.markdown("\n".join(lines))


def _camera_lines(card: ingest_api.ShotCard) -> list[str]:
    return [line for line in (
        " · ".join(p for p in (card.camera, card.lens) if p) or None,
        card.exposure(),
    ) if line]


@st.dialog("Frame", width="large")
def enlarge(card: ingest_api.ShotCard) -> None:
    """The full preview with everything stored about the frame."""
    if card.preview_sha256:
        with guard():
            st.image(thumbnail(blob_url, card.preview_sha256, ENLARGED_SIZE), width="stretch")
    st.markdown(f"**{plain(card.relative_path)}** · {card.width}×{card.height}")
    st.table({
        "": ["sitter", "status", "camera", "lens", "ISO", "shutter", "aperture", "focal length", "captured"],
        "value": [
            card.sitter_code or "–", card.status + (f" ({card.reason})" if card.reason else ""), card.camera or "–",
            card.lens or "–", f"{card.iso:g}" if card.iso else "–",
            (f"1/{1 / card.shutter_s:.0f} s" if card.shutter_s < 0.5 else f"{card.shutter_s:g} s") if card.shutter_s else "–",
            f"f/{card.aperture:g}" if card.aperture else "–",
            f"{card.focal_length_mm:g} mm" if card.focal_length_mm else "–",
            str(card.captured_at) if card.captured_at else "–",
        ],
    })


def show_card(card: ingest_api.ShotCard, *, live: bool = False) -> None:
    if card.preview_sha256:
        with guard():
            st.image(thumbnail(blob_url, card.preview_sha256, PREVIEW_SIZE, pad=True), width="stretch")
        if not live and st.button("Enlarge", key=f"enlarge_{card.id}", icon=":material/zoom_in:", type="tertiary"):
            enlarge(card)
    if card.withheld:
        st.caption("withheld from other roles: no valid release covers this frame" if user.role is Role.admin
                   else "preview withheld: no valid release covers this frame (an admin can resolve it)")
    st.caption(f"{plain(card.relative_path)} · {card.sitter_code or 'no sitter'} · {card.width}×{card.height}")
    if camera := _camera_lines(card):
        st.caption("  \n".join(plain(line) for line in camera))
    colour = STATUS_COLOURS.get(card.status, "gray")
    st.markdown(f":{colour}[**{card.status}**]" + (f" · {plain(card.reason)}" if card.reason else ""))
    if card.reason in NEXT_STEPS and user.role is not Role.admin:
        st.caption(f"What to do: {NEXT_STEPS[card.reason]}.")
    qa_reason = (card.reason or "").startswith(QA_REASON_PREFIX) and bool(card.qa and card.qa.get("checks"))
    if card.reason_detail and user.role is Role.admin and not qa_reason:  # a QA failure is listed once, below
        st.caption(plain(card.reason_detail))
    if card.qa and card.qa.get("checks"):
        failed = [c for c in card.qa["checks"] if c["passed"] is False]
        st.caption(
            "QA: " + ("all checks pass" if not failed else
                      "; ".join(f"{c['name']} {c['value']} (needs {c['threshold']})" for c in failed))
        )
    for face in card.faces:
        crop, measures = st.columns([1, 2], vertical_alignment="center")
        if face.crop_sha256:
            with crop, guard():
                st.image(thumbnail(blob_url, face.crop_sha256, CROP_SIZE), width=96)
        measures.caption(
            f"EAR R {_n(face.ear_right, 2)} / L {_n(face.ear_left, 2)}  \n"
            f"iris R {_n(face.iris_right, 2)} / L {_n(face.iris_left, 2)}  \n"
            f"yaw {_n(face.yaw, 0)}° pitch {_n(face.pitch, 0)}° roll {_n(face.roll, 0)}°"
        )


def ingest_upload(files: list, fields: ShootFields) -> ingest_api.IngestSummary:
    """Stage and ingest the upload; its contact sheet fills in below the bar as frames are stored."""
    folder = stage_upload(wb.settings.resolved_upload_dir, files, fields)
    bar = st.progress(0.0, text="reading the upload …")
    holder = st.empty()
    live = holder.container(key="live_sheet")
    try:
        found = ingest_api.read_shoot_folder(folder)
        total = len(found.frames)
        bar.progress(0.0, text=f"0/{total} stored · {total} files found, reading them …")
        with live:
            more = st.empty()
        shown: list[str] = []
        shoot_ids: list[int] = []
        row: list = []

        def progress(done: int, total: int, path: str) -> None:
            bar.progress(done / max(total, 1), text=f"{done}/{total} · {path}")
            if not path or path in shown:
                return
            with wb.db.unit_of_work() as session:
                if not shoot_ids:
                    shoot_ids.append(ingest_api.shoot_id_by_name(session=session, name=found.name) or 0)
                cards = ingest_api.contact_sheet(
                    session=session, shoot_id=shoot_ids[0], limit=1, show_unreleased=user.role is Role.admin,
                    where=SheetFilter(relative_paths=(path,)),
                )
            if not cards:  # a duplicate, a failed file: nothing stored to show
                return
            shown.append(path)
            if len(shown) > LIVE_CARDS:
                more.caption(f"{len(shown) - LIVE_CARDS} more frames stored; all of them are on the contact sheet below when the ingest ends.")
                return
            if not row:
                with live:
                    row.extend(st.columns(PER_ROW))
            with row.pop(0).container(border=True):
                show_card(cards[0], live=True)

        done = ingest_and_check(
            workbench=wb, path=folder, actor=user.username, workers=wb.settings.workers, progress=progress,
        )
    except LikenessError:
        # Refused before anything was stored (a bad manifest, a name taken): drop the staging folder.
        with wb.db.unit_of_work() as session:
            if not ingest_api.shoot_uses_folder(session=session, folder=folder):
                discard(folder)
        raise
    finally:
        bar.empty()
        holder.empty()
    return done.ingest


def _n(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# -- upload ----------------------------------------------------------------------------------
if user.role in UPLOADERS:
    with st.expander("Upload a shoot", icon=":material/upload:"):
        # The files stay in the picker when the upload is refused, so the fix is one field away.
        with st.form("upload", clear_on_submit=False):
            files = st.file_uploader(
                "Frames (RAW, JPEG, PNG, TIFF), optionally with a shoot.toml; or one .zip of a shoot folder",
                type=list(UPLOAD_TYPES), accept_multiple_files=True, key="upload_files",
            )
            st.caption(
                "Without a shoot.toml these fields describe the shoot; the sitter code applies to every frame. "
                "A shoot with several sitters: upload one .zip of its folder (shoot.toml, a folder per sitter, "
                "optionally frames.csv); the fields are then not used."
            )
            left, right = st.columns(2)
            name = left.text_input("Shoot name", key="upload_name")
            date = right.date_input("Shoot date", key="upload_date", min_value=dt.date(2000, 1, 1))
            studio = left.text_input("Studio", key="upload_studio")
            sitter = right.text_input("Sitter code", key="upload_sitter", placeholder="P0042")
            submitted = st.form_submit_button("Ingest", type="primary", icon=":material/upload:", key="upload_submit")
        if submitted:
            with guard():
                fields = ShootFields(name=name, date=date, studio=studio, sitter_code=sitter, photographer=user.username)
                summary = ingest_upload(files or [], fields)
                st.session_state["last_ingest"] = summary
                st.session_state["shoot_id"] = summary.shoot_id
    if "last_ingest" in st.session_state:
        show_summary(st.session_state["last_ingest"])

# -- contact sheets --------------------------------------------------------------------------
with guard(stop=True), wb.db.unit_of_work() as session:
    shoots = ingest_api.list_shoots(session=session)
if not shoots:
    st.info("No shoots stored yet." + (" Upload one above." if user.role in UPLOADERS else ""))
    st.stop()
by_id = {s.id: s for s in shoots}
if st.session_state.get("shoot_id") not in by_id:
    st.session_state["shoot_id"] = shoots[0].id
shoot_id = st.selectbox("Shoot", list(by_id), format_func=lambda i: by_id[i].label(), key="shoot_id")

with guard(stop=True), wb.db.unit_of_work() as session:
    facets = sheet_facets(session=session, shoot_id=shoot_id)
    stored = ingest_api.count_shots(session=session, shoot_id=shoot_id)
status_col, reason_col, sitter_col, sort_col = st.columns([2, 2, 2, 1])
where = SheetFilter(
    statuses=tuple(status_col.multiselect("Status", facets.statuses, key=f"sheet_status_{shoot_id}", placeholder="all")),
    reasons=tuple(reason_col.multiselect("Reason", facets.reasons, key=f"sheet_reason_{shoot_id}", placeholder="all")),
    sitters=tuple(sitter_col.multiselect(
        "Sitter", facets.sitters, key=f"sheet_sitter_{shoot_id}", placeholder="all",
        format_func=lambda code: code or "no sitter",
    )),
    sort=sort_col.selectbox("Sort by", list(SORTS), format_func=SORTS.__getitem__, key=f"sheet_sort_{shoot_id}"),
)
with guard(stop=True), wb.db.unit_of_work() as session:
    total = ingest_api.count_shots(session=session, shoot_id=shoot_id, where=where)
pages = max(1, math.ceil(total / PER_PAGE))
page = st.number_input("Page", 1, pages, key=f"page_{shoot_id}_{hash(where)}") if pages > 1 else 1
with guard(stop=True), wb.db.unit_of_work() as session:
    cards = ingest_api.contact_sheet(session=session, shoot_id=shoot_id, offset=(page - 1) * PER_PAGE, limit=PER_PAGE,
                                     show_unreleased=user.role is Role.admin, where=where)
    failures = ingest_api.ingest_failures(session=session, shoot_id=shoot_id)

shoot = by_id[shoot_id]
st.caption(
    f"{shoot.shoot_date} · {plain(shoot.studio or 'studio not given')} · by {plain(shoot.photographer or 'unknown')} · "
    f"{stored} frames stored" + (f", {total} shown" if total != stored else "")
)
if not cards:
    st.info("No frames of this shoot are stored." if not stored else "No frames match these filters.")
else:
    with st.expander("Consistency across the session", icon=":material/monitoring:"), guard():
        with wb.db.unit_of_work() as session:
            st.image(qa_api.consistency_report(session=session, shoot_id=shoot_id))
for start in range(0, len(cards), PER_ROW):
    for column, card in zip(st.columns(PER_ROW), cards[start : start + PER_ROW]):
        with column.container(border=True):
            show_card(card)

if failures:
    st.subheader("Files that could not be ingested")
    st.dataframe(
        [{k: "–" if v is None else v for k, v in asdict(f).items()} for f in failures], hide_index=True, width="stretch",
        column_config={"relative_path": "File", "kind": "Problem", "reason": "Reason"},
    )
