"""Faces: the gallery of approved, untainted generated faces, filtered by what they show. Every role.

Approved means accepted by the learned filter, or voted up by reviewers and not rejected
(model_registry.gallery). Filters: the conditioning label's age band, gender presentation,
expression and head pose, the Monk skin tone measured under the face mesh, the checkpoint, and
whether the measurements agree with the label. Admins export what the filters show, each file
with Content Credentials, as a zip with an attributes CSV (model_registry.delivery).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import streamlit as st

from likeness.models import Role
from model_registry import gallery
from model_registry.delivery import export_faces
from ui._common import guard, plain, require_role, thumbnail, workbench

PAGE_KEY = "faces_page"
EXPORT_KEY = "faces_export"            # path of the page's last export zip
EXPORT_LIMIT = 2000
COLUMNS = 6
TITLES = {"age_band": "Age band", "gender_presentation": "Gender presentation", "expression": "Expression",
          "head_pose": "Head pose"}

user = require_role(Role.photographer, Role.labeler, Role.reviewer, Role.admin)
wb = workbench()
st.title("Faces")
st.caption("Generated faces the filter accepted or reviewers approved; faces of tainted checkpoints never show.")

with guard(stop=True), wb.db.unit_of_work() as session:
    offered = gallery.choices(session)
    checkpoint_ids = gallery.checkpoint_ids(session)

with st.sidebar:
    st.subheader("Filters")
    labels = {name: st.multiselect(TITLES.get(name, name), values, key=f"faces_{name}")
              for name, values in offered.items()}
    monk = st.slider("Monk skin tone (measured)", 1, 10, (1, 10), key="faces_monk")
    checkpoints = st.multiselect("Checkpoint", checkpoint_ids, format_func=lambda i: f"#{i}", key="faces_checkpoint")
    matching = st.checkbox("Only faces whose measurements agree with their label", key="faces_matching")

chosen = gallery.GalleryFilter(labels={k: v for k, v in labels.items() if v}, monk=None if monk == (1, 10) else monk,
                               checkpoints=checkpoints, matching_label=matching)
with guard(stop=True), wb.db.unit_of_work() as session:
    total = gallery.count(session, chosen)
    pages = max(1, -(-total // gallery.PAGE))
    page = min(int(st.session_state.get(PAGE_KEY, 1)), pages)
    shown = gallery.faces(session, chosen, offset=(page - 1) * gallery.PAGE)

st.markdown(f"**{total} faces** match" + (f" · page {page} of {pages}" if pages > 1 else ""))
if pages > 1:
    st.number_input("Page", min_value=1, max_value=pages, step=1, key=PAGE_KEY)
if not shown:
    st.caption("No approved faces match these filters.")
columns = st.columns(COLUMNS)
for i, face in enumerate(shown):
    tone = face.measured.get("monk_tone")
    caption = " · ".join([f"#{face.checkpoint_id} seed {face.seed}", *face.label.values()]
                         + ([f"Monk {tone}"] if tone is not None else []))
    with columns[i % COLUMNS], guard():
        st.image(thumbnail(wb.blobs.url, face.image_sha256, (256, 256)), caption=caption, width=160)
        if face.mismatch:
            st.caption(f"measured ≠ label: {plain(', '.join(face.mismatch))}")

if user.role is Role.admin and total:
    st.subheader("Export")
    st.caption(f"The faces these filters show (at most {EXPORT_LIMIT}), each PNG signed with Content Credentials.")
    if st.button(f"Export {min(total, EXPORT_LIMIT)} faces", key="faces_export_button", type="primary"):
        with guard(), st.spinner("signing…"), tempfile.TemporaryDirectory() as scratch:
            with wb.db.unit_of_work() as session:
                picked = gallery.by_ids(session, gallery.ids(session, chosen)[:EXPORT_LIMIT])
            result, _csv = export_faces(wb, picked, Path(scratch) / "faces")
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            exports = wb.settings.data_dir / "exports"
            exports.mkdir(parents=True, exist_ok=True)
            archive = shutil.make_archive(str(exports / f"faces-{stamp}"), "zip", result.folder)
            st.session_state[EXPORT_KEY] = archive
            st.success(f"Exported {len(result.written)} faces" + (f"; {len(result.withheld)} withheld" if result.withheld else ""))
    if st.session_state.get(EXPORT_KEY):
        path = Path(st.session_state[EXPORT_KEY])
        if path.is_file():
            st.download_button(f"Download {path.name}", path.read_bytes(), file_name=path.name, mime="application/zip",
                               key="faces_download")
