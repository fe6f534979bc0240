"""Training: follow StyleGAN2-ADA runs, start one, and generate faces from a checkpoint. Admins only.

A run trains in a process of its own (`training.api.start_run_process`), which records its
progress and checkpoints in the database; this page only reads them back (through
`training.api`), so it never waits for training.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from likeness.errors import LikenessError
from likeness.models import Role, RunStatus
from training import api
from ui._common import guard, plain, require_role, thumbnail, workbench

GENERATED_KEY = "training_generated"  # ids of the images generated last, shown until the next generation

require_role(Role.admin)
wb = workbench()
st.title("Training")


@st.fragment(run_every=5 if st.session_state.get("training_live") else None)
def runs_table() -> list[api.RunSummary]:
    """The runs, re-read every few seconds while one of them is training."""
    with guard(stop=True):
        summaries = api.run_summaries(wb)
    st.session_state["training_live"] = any(s.status == RunStatus.running for s in summaries)
    if not summaries:
        st.caption("No training runs yet.")
        return summaries
    st.dataframe(pd.DataFrame([{
        "run": s.name, "status": s.status, "kimg": f"{s.kimg:g} / {s.total_kimg:g}", "augment p": s.augment_p,
        "checkpoints": s.checkpoints,
        "losses": "  ".join(f"{k} {v:.3f}" for k, v in s.last_metrics.get("losses", {}).items()),
        "error": s.error or "",
    } for s in summaries]), hide_index=True, key="training_runs",
        column_config={"augment p": st.column_config.NumberColumn(format="%.3f")})
    return summaries


st.button("Refresh", key="training_refresh", icon=":material/refresh:")
summaries = runs_table()

with st.expander("Start a run"), st.form("training_start"):
    dataset = st.text_input("Dataset folder or .zip", key="training_dataset",
                            help="Made by `likeness train prepare`.")
    name = st.text_input("Run name", key="training_name", help="Default: the dataset's name.")
    left, middle, right = st.columns(3)
    kimg = left.number_input("Length (kimg)", min_value=0.001, value=api.RUN_DEFAULTS.kimg, key="training_kimg")
    batch = middle.number_input("Batch", min_value=1, value=api.RUN_DEFAULTS.batch, step=1, key="training_batch")
    snapshot_kimg = right.number_input("Snapshot every (kimg)", min_value=0.001, value=api.RUN_DEFAULTS.snapshot_kimg,
                                       key="training_snapshot")
    if st.form_submit_button("Start training", type="primary", key="training_start_submit"):
        try:
            started = api.start_run_process(workbench=wb, dataset=dataset, name=name, kimg=kimg, batch=int(batch),
                                            snapshot_kimg=snapshot_kimg)
        except LikenessError as exc:  # shown escaped: dataset paths and run names are not markup
            st.error(plain(" ".join(str(exc).split())), icon=":material/error:")
        else:
            st.session_state["training_live"] = True
            st.success(f"Started run {plain(started.name)}; its output goes to {plain(str(started.log_path))}. "
                       "Press Refresh to follow it.")

if not summaries:
    st.stop()

st.subheader("Progress")
run_name = st.selectbox("Run", [s.name for s in summaries], key="training_run")
with guard(stop=True):
    checkpoints = api.checkpoints(wb, run_name=run_name)
grid_sha256 = checkpoints[-1].grid_sha256 if checkpoints else None

if not checkpoints:
    st.caption("No checkpoints yet: curves and samples appear with the first snapshot.")
    st.stop()

curves = pd.DataFrame([{"kimg": c.kimg, **c.metrics.get("losses", {})} for c in checkpoints]).set_index("kimg")
augment = pd.DataFrame([{"kimg": c.kimg, "augment p": c.metrics.get("augment_p", 0.0)} for c in checkpoints])
left, right = st.columns(2)
left.caption("Losses per snapshot")
left.line_chart(curves)
right.caption("Augmentation probability")
right.line_chart(augment.set_index("kimg"))
if grid_sha256 is not None:
    with guard():
        st.image(thumbnail(wb.blobs.url, grid_sha256, (1024, 1024)),
                 caption=f"Samples at kimg {checkpoints[-1].kimg:g}")

st.subheader("Generate")
labels = {c.id: f"#{c.id}  kimg {c.kimg:g}  {c.stage}" + ("  (tainted)" if c.tainted else "") for c in checkpoints}
with st.form("training_generate"):
    checkpoint_id = st.selectbox("Checkpoint", list(labels), index=len(labels) - 1,
                                 format_func=lambda i: labels[i], key="training_checkpoint")
    left, middle, right = st.columns(3)
    first_seed = left.number_input("First seed", min_value=0, max_value=api.MAX_SEED, value=0, step=1,
                                   key="training_first_seed")
    count = middle.number_input("Images", min_value=1, max_value=64, value=8, step=1, key="training_count")
    psi = right.number_input("Truncation psi", min_value=0.0, max_value=2.0, value=0.7, step=0.05, key="training_psi")
    if st.form_submit_button("Generate", type="primary", key="training_generate_submit") and checkpoint_id is not None:
        seeds = range(int(first_seed), min(int(first_seed) + int(count), api.MAX_SEED + 1))
        with guard(), st.spinner("generating…"):
            st.session_state[GENERATED_KEY] = api.generate(wb, checkpoint_id, seeds=list(seeds), psi=psi)
            st.success(f"Generated {len(seeds)} images; they are queued for review.")

if st.session_state.get(GENERATED_KEY):
    with guard(stop=True):
        pairs = api.generated_images(wb, st.session_state[GENERATED_KEY])
    columns = st.columns(8)
    for i, (seed, sha256) in enumerate(pairs):
        columns[i % 8].image(thumbnail(wb.blobs.url, sha256, (256, 256)), caption=f"seed {seed}", width=128)
