"""Datasets: build balanced, consent-checked dataset snapshots from a spec, see their balance,
shortfall and split, re-check consent and export them. Admins only.

The page calls the same functions as `likeness dataset` (training.snapshots.api) and shows the
same report (training.snapshots.report). Builds run as the signed-in admin, so a spec may use the
admin-only intake statements (`self.KEY` quotas). Exports are written under the data folder's
`exports/` and offered as a download.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from likeness.models import Role
from training.snapshots import api, report
from ui._common import guard, plain, require_role, workbench

SPEC_KEY = "datasets_spec"
UPLOADED_KEY = "datasets_uploaded"     # the file id of the spec last loaded from an upload
NOTICE_KEY = "datasets_notice"         # what the last build found, shown above its snapshot
SELECTED_KEY = "datasets_snapshot"
EXPORT_KEY = "datasets_export"         # (snapshot id, split, path) of the page's last export
DOWNLOAD_LIMIT_BYTES = 512 * 1024 * 1024
SPLITS = ("train", "val", "all")

EXAMPLE_SPEC = """\
# A dataset snapshot spec: see "Dataset snapshots" in the README.
name = "balanced portraits"
size = 100                      # faces, train and validation together
resolution = 256                # side of the exported PNGs
seed = 0
tolerance = 0.05                # each quota may miss its share by this much
max_person_share = 0.25         # nobody above a quarter of the snapshot
validation_share = 0.1          # held out by person: nobody on both sides
label_attributes = ["age_band", "expression"]

[filters]
shot_qa = "passed"
labels = { usable = "yes" }

[quotas.age_band]
adult = 0.4
senior = 0.3
"*" = 0.3

[quotas.expression]
smile = 0.5
"*" = 0.5

[[joint]]
where = { age_band = "senior", expression = "smile" }
share = 0.15
"""

user = require_role(Role.admin)
wb = workbench()
st.title("Datasets")
st.caption("A snapshot is an immutable, hash-named set of released, labelled faces balanced to a spec's quotas and "
           "split by person. Only faces whose sitter's release covers AI training on the capture date and still "
           "does today are eligible.")


def _png_url(png: bytes) -> str:
    # Inlined: Streamlit's /media route fails on PNGs here (see ui._common.thumbnail).
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def show_report(data: dict[str, Any], *, key: str) -> None:
    """The balance table and plot, the shortfall, the split and what the pool left out."""
    rows = report.balance_rows(data)
    outside = sum(1 for r in rows if r["ok"] != report.OK)
    if rows:
        st.markdown(f"**Balance:** {len(rows) - outside} of {len(rows)} quota cells within their band")
        st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{key}_balance", width="stretch",
                     column_config={"share": st.column_config.NumberColumn(format="%.3f")})
        st.image(_png_url(report.balance_plot(data)), caption="target vs achieved per cell", width="stretch")
    else:
        st.markdown("**Balance:** the spec has no quotas")
    lines = report.shortfall_lines(data)
    if lines:
        st.warning("**Shortfall**\n\n" + "\n".join(f"- {plain(line)}" for line in lines), icon=":material/warning:")
    else:
        st.success("No shortfall: every quota is within its band.", icon=":material/check_circle:")
    st.markdown(plain(report.split_line(data)))
    st.markdown(plain(report.pool_line(data)))
    st.caption(plain(report.solver_line(data)))


# -- build ----------------------------------------------------------------------------------

st.subheader("Build a snapshot")
uploaded = st.file_uploader("Load a spec file", type=["toml"], key="datasets_spec_file",
                            help="Its text replaces the spec below, where you can still edit it.")
if uploaded is not None and st.session_state.get(UPLOADED_KEY) != uploaded.file_id:
    st.session_state[UPLOADED_KEY] = uploaded.file_id
    try:
        st.session_state[SPEC_KEY] = uploaded.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        st.error(f"{plain(uploaded.name)} is not UTF-8 text.", icon=":material/error:")
st.session_state.setdefault(SPEC_KEY, EXAMPLE_SPEC)
spec_text = st.text_area("Spec (TOML)", height=420, key=SPEC_KEY)

if st.button("Build", type="primary", key="datasets_build", icon=":material/dataset:"):
    bar = st.progress(0.0, text="reading the eligible pool …")

    def progress(done: int, total: int, step: str) -> None:
        bar.progress(done / total if total else 0.0, text=f"{step} done ({done}/{total})")

    with guard():
        built = api.build(wb, spec_text, actor=user.username, admin=True, where="spec", progress=progress)
        st.session_state[SELECTED_KEY] = built.snapshot_id
        st.session_state[NOTICE_KEY] = (built.snapshot_id, "Built" if built.created else
                                        "An identical snapshot exists already:")
    bar.empty()

# -- snapshots ------------------------------------------------------------------------------

st.subheader("Snapshots")
with guard(stop=True):
    summaries = api.snapshots(wb)
if not summaries:
    st.caption("No snapshots yet.")
    st.stop()
st.dataframe(pd.DataFrame([{
    "id": s.id, "hash": s.sha256[:12], "name": s.name or "", "size": s.size, "train": s.train, "val": s.val,
    "px": s.resolution, "built on": s.built_on.isoformat(), "by": s.built_by, "short cells": s.shortfall,
    "tainted": "yes" if s.tainted else "",
} for s in summaries]), hide_index=True, key="datasets_list", width="stretch")

by_id = {s.id: s for s in summaries}
if st.session_state.get(SELECTED_KEY) not in by_id:
    st.session_state[SELECTED_KEY] = summaries[0].id
selected_id = st.selectbox("Snapshot", list(by_id), key=SELECTED_KEY,
                           format_func=lambda i: f"#{i} {by_id[i].name or ''} · {by_id[i].size} faces · "
                                                 f"{by_id[i].sha256[:12]}")
snapshot = by_id[selected_id]

notice = st.session_state.get(NOTICE_KEY)
if notice is not None and notice[0] == snapshot.id:
    st.success(f"{notice[1]} snapshot #{snapshot.id} {snapshot.sha256}", icon=":material/check:")
st.markdown(plain(f"#{snapshot.id} {snapshot.name or ''}: {snapshot.size} faces ({snapshot.train} train, "
                  f"{snapshot.val} validation) at {snapshot.resolution} px, built on {snapshot.built_on} by "
                  f"{snapshot.built_by}"))
if snapshot.tainted:
    st.error("Tainted: a member's release was revoked. It cannot be exported or trained on; build a new snapshot.",
             icon=":material/block:")
show_report(snapshot.report, key="datasets_detail")
with st.expander("Spec"):
    st.code(snapshot.spec_text, language="toml")

check_col, split_col, export_col = st.columns([1, 1, 1], vertical_alignment="bottom")
if check_col.button("Check consent today", key="datasets_check", icon=":material/verified_user:"):
    with guard(), wb.db.unit_of_work() as session:
        problems = api.check_consent(session, snapshot.id, today=dt.date.today())
        if problems:
            st.error(f"{sum(p.faces for p in problems)} face(s) are no longer covered by a release; build a new "
                     "snapshot.", icon=":material/error:")
            st.dataframe(pd.DataFrame([{"person": p.person, "release": p.release_id, "faces": p.faces,
                                        "detail": p.detail} for p in problems]), hide_index=True,
                         key="datasets_problems")
        else:
            st.success(f"Every member's release still covers training on {dt.date.today()}.",
                       icon=":material/verified_user:")

split = split_col.selectbox("Export split", SPLITS, key="datasets_split")
if export_col.button("Export", key="datasets_export_button", icon=":material/archive:", disabled=snapshot.tainted):
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    dest = wb.settings.data_dir / "exports" / f"snapshot-{snapshot.id}-{snapshot.sha256[:12]}-{split}-{stamp}.zip"
    bar = st.progress(0.0, text="exporting …")

    def export_progress(done: int, total: int, _name: str) -> None:
        bar.progress(done / total if total else 0.0, text=f"{done}/{total} images")

    with guard():
        result = api.export(wb, snapshot.id, dest, split=split, progress=export_progress)
        st.session_state[EXPORT_KEY] = (snapshot.id, split, str(result.path), result.images)
    bar.empty()

exported = st.session_state.get(EXPORT_KEY)
if exported is not None and exported[0] == snapshot.id and Path(exported[2]).exists():
    path = Path(exported[2])
    st.success(plain(f"Exported {exported[3]} {exported[1]} image(s) to {path}"), icon=":material/archive:")
    if path.stat().st_size <= DOWNLOAD_LIMIT_BYTES:
        st.download_button(f"Download {path.name}", path.read_bytes(), file_name=path.name, mime="application/zip",
                           key="datasets_download", icon=":material/download:", on_click="ignore")
    else:
        st.caption(plain(f"Too large to download through the page: copy it from {path}."))
