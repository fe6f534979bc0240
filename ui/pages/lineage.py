"""Lineage: what a person, release, shot, snapshot, checkpoint or generated image came from and
what was made from it, and the runs a revocation left to retrain. Admins only.

The page calls the same function as `likeness lineage` (model_registry.lineage) and shows the
same levels: each with its count, how many are flagged (revoked, quarantined, tainted) and the
first few of them. The query string holds the question (`?kind=person&ref=P0042`), so a lineage
can be bookmarked or sent to a colleague.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ingest import api as ingest_api
from likeness.models import Role
from model_registry.lineage import SHOWN, Kind, Level, lineage
from model_registry.taint import retrain_plan
from ui._common import guard, plain, require_role, workbench

KIND_KEY = "lineage_kind"
REF_KEY = "lineage_ref"
SHOW_KEY = "lineage_show"
HINTS = {
    Kind.person: "the sitter's code, e.g. P0042",
    Kind.release: "the release number",
    Kind.shot: "the shot's SHA-256, or a prefix of 6+ hex digits",
    Kind.snapshot: "the dataset snapshot's id or hash prefix",
    Kind.checkpoint: "the checkpoint id",
    Kind.image: "the generated image's SHA-256, or a prefix of 6+ hex digits",
}

require_role(Role.admin)
wb = workbench()
st.title("Lineage")
st.caption("Every generated face traces back to the people whose released frames trained it, and every person "
           "forward to all that was made from their faces. Counts are complete; the first few of each level are named.")


def _from_query() -> None:
    """Start from the question in the URL, once per browser session."""
    if KIND_KEY in st.session_state:
        return
    kind = st.query_params.get("kind", Kind.person.value)
    st.session_state[KIND_KEY] = kind if kind in {k.value for k in Kind} else Kind.person.value
    st.session_state[REF_KEY] = st.query_params.get("ref", "")


def _levels_table(levels: list[Level]) -> pd.DataFrame:
    return pd.DataFrame([{"level": lv.name, "count": lv.count, "flagged": f"{lv.flagged} {lv.flag}" if lv.flagged else "",
                          "first of them": ", ".join(lv.shown) + (" …" if lv.count > len(lv.shown) else "")}
                         for lv in levels])


_from_query()
with guard(stop=True), wb.db.unit_of_work() as session:
    codes = ingest_api.person_codes(session=session)
left, middle, right = st.columns([1, 3, 1])
kind = Kind(left.selectbox("Start from", [k.value for k in Kind], key=KIND_KEY))
if kind is Kind.person and codes:
    if st.session_state.get(REF_KEY) not in codes:
        st.session_state[REF_KEY] = codes[0]
    ref = middle.selectbox("Sitter", codes, key=REF_KEY)
else:
    ref = middle.text_input("Which one", key=REF_KEY, placeholder=HINTS[kind])
show = int(right.number_input("Name per level", min_value=0, max_value=100, value=SHOWN, key=SHOW_KEY))

if ref and str(ref).strip():
    st.query_params.update({"kind": kind.value, "ref": str(ref).strip()})
    with guard(), wb.db.unit_of_work() as session:
        found = lineage(session, kind, str(ref), limit=show)
        st.subheader(plain(found.subject))
        for flag in found.flags:
            st.error(plain(flag))
        sides = [("up", "**Up:** what it came from", found.up, "the start of the chain"),
                 ("down", "**Down:** what was made from it", found.down, "the end of the chain")]
        for column, (key, heading, levels, end) in zip(st.columns(2), sides, strict=True):
            with column:
                st.markdown(heading)
                if levels:
                    st.dataframe(_levels_table(levels), hide_index=True, key=f"lineage_{key}", width="stretch")
                else:
                    st.caption(f"Nothing: {end}.")
else:
    st.caption(f"Name {HINTS[kind]} to see its lineage.")

st.header("Runs to retrain")
with guard(), wb.db.unit_of_work() as session:
    plan = retrain_plan(session)
if plan:
    st.markdown(f"**{len(plan)} tainted runs:** trained on faces whose release was revoked; "
                "`likeness dataset build` leaves those people out of a new snapshot to train them again.")
    st.dataframe(pd.DataFrame([{"run": f"#{p.run_id} {p.run}", "status": p.status,
                                "snapshot": f"#{p.snapshot_id}" if p.snapshot_id is not None else "",
                                "fine-tuned from": f"checkpoint #{p.parent_checkpoint_id}" if p.parent_checkpoint_id else "",
                                "leave out": ", ".join(p.people), "reasons": "; ".join(p.reasons),
                                "tainted checkpoints": p.checkpoints, "tainted images": p.images} for p in plan]),
                 hide_index=True, key="lineage_retrain", width="stretch")
else:
    st.caption("No tainted runs: no revoked release reaches a training run.")
