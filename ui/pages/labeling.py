"""Labeling: progress per shoot and attribute, agreement, disagreements, pull now. Labelers and admins.

The labeling itself happens in Label Studio; this page says how far it got and where annotators
disagree, with links that open each task there.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling import api
from likeness.errors import LikenessError
from likeness.models import Role
from ui._common import guard, require_role, workbench

user = require_role(Role.labeler, Role.admin)
wb = workbench()
st.title("Labeling")

try:
    connection = api.connection(workbench=wb)
except LikenessError as exc:
    if user.role is Role.admin:
        st.info(f"{exc}")
    else:  # labelers cannot run commands on the server: say who can
        st.info("Label Studio is not running yet: ask an admin to start Label Studio. "
                "This page shows progress and disagreements once it is up.", icon=":material/info:")
    st.stop()

try:
    with wb.db.unit_of_work() as session:
        project = api.project(session=session, server_url=connection.url)
except LikenessError as exc:
    if user.role is Role.admin:
        st.error(" ".join(str(exc).split()), icon=":material/error:")
    else:
        st.info("Label Studio has no labeling project yet: ask an admin to set it up.", icon=":material/info:")
    st.stop()
st.link_button("Open Label Studio", api.project_url(connection.url, project.ls_project_id), icon=":material/open_in_new:")

left, right = st.columns(2)
if left.button("Pull annotations now", key="label_pull", type="primary", icon=":material/sync:"):
    with guard(), st.spinner("pulling from Label Studio…"):
        result = api.pull(workbench=wb)
        st.success(f"Read {result.tasks_read} changed tasks: {result.added} labels added, "
                   f"{result.superseded} superseded, {result.retracted} retracted.")
        for item in result.unknown:
            st.warning(f"Task {item['task']}: {item['attribute']} = {item['value']!r} is not in the taxonomy (kept raw).")
if user.role is Role.admin and right.button("Push new faces", key="label_push", icon=":material/upload:"):
    with guard(), st.spinner("pushing to Label Studio…"):
        pushed = api.push(workbench=wb)
        withheld = ", ".join(f"{n} {reason}" for reason, n in sorted(pushed.withheld.items())) or "none"
        st.success(f"Pushed {pushed.pushed} faces ({pushed.already} already there; withheld: {withheld}).")

with guard(stop=True), wb.db.unit_of_work() as session:
    progress = api.progress(session=session)
    agreement = api.agreement_report(session=session)
    split = api.disagreements(session=session)

st.subheader("Progress")
if not progress:
    st.caption("No faces pushed yet.")
else:
    rows = [{"shoot": p.shoot, "faces": p.pushed, "annotated": p.annotated, **p.by_attribute} for p in progress]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="label_progress")

st.subheader("Agreement (Krippendorff's alpha)")
st.dataframe(pd.DataFrame([{"attribute": a.attribute, "alpha": a.alpha, "faces rated twice+": a.faces_rated_twice,
                            "ratings": a.ratings, "metric": a.metric} for a in agreement]),
             hide_index=True, key="label_agreement", column_config={"alpha": st.column_config.NumberColumn(format="%.3f")})

st.subheader("Disagreements to resolve")
if not split:
    st.caption("Annotators agree on every face rated more than once.")
else:
    st.dataframe(pd.DataFrame([{
        "face": d.consensus.face_id, "attribute": d.consensus.attribute,
        "votes": ", ".join(f"{v} ×{n}" for v, n in sorted(d.consensus.votes.items())),
        "consensus": d.consensus.value or "tie",
        "task": api.task_url(connection.url, project.ls_project_id, d.ls_task_id) if d.ls_task_id else None,
    } for d in split]), hide_index=True, key="label_disagreements",
        column_config={"task": st.column_config.LinkColumn("task", display_text="open in Label Studio")})
