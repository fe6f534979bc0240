"""Training: follow StyleGAN2-ADA runs, start one, and generate faces from a checkpoint. Admins only.

A run trains in a process of its own (`likeness train run`), which records its progress and
checkpoints in the database; this page only reads them back, so it never waits for training.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from likeness.models import Checkpoint, Role, RunStatus
from training import generate as gen
from training import runs
from ui._common import guard, plain, require_role, thumbnail, workbench

GENERATED_KEY = "training_generated"  # ids of the images generated last, shown until the next generation

require_role(Role.admin)
wb = workbench()
st.title("Training")


@st.fragment(run_every=5 if st.session_state.get("training_live") else None)
def runs_table() -> list[runs.RunSummary]:
    """The runs, re-read every few seconds while one of them is training."""
    with guard(stop=True), wb.db.unit_of_work() as session:
        summaries = runs.run_status(session)
    st.session_state["training_live"] = any(s.status == RunStatus.running.value for s in summaries)
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
    kimg = left.number_input("Length (kimg)", min_value=0.001, value=25000.0, key="training_kimg")
    batch = middle.number_input("Batch", min_value=1, value=32, step=1, key="training_batch")
    snapshot_kimg = right.number_input("Snapshot every (kimg)", min_value=0.001, value=200.0, key="training_snapshot")
    if st.form_submit_button("Start training", type="primary", key="training_start_submit"):
        name = name.strip() or Path(dataset.strip()).stem
        if not Path(dataset.strip()).exists():
            st.error(f"No dataset at {plain(dataset.strip())}.", icon=":material/error:")
        elif not name or any(s.name == name for s in summaries):
            st.error(f"Run {plain(name)} exists already: choose another name.", icon=":material/error:")
        else:
            run_dir = wb.settings.data_dir / "runs" / name
            run_dir.mkdir(parents=True, exist_ok=True)
            log_path = run_dir / "train.log"
            with log_path.open("ab") as log_file:
                subprocess.Popen(
                    [sys.executable, "-m", "likeness.cli", "train", "run",
                     dataset.strip(), "--out", str(run_dir), "--name", name, "--kimg", f"{kimg:g}",
                     "--batch", str(int(batch)), "--snapshot-kimg", f"{snapshot_kimg:g}"],
                    env=os.environ.copy(), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    start_new_session=True,  # the run outlives this page and a restart of the app
                )
            st.session_state["training_live"] = True
            st.success(f"Started run {plain(name)}; its output goes to {plain(str(log_path))}. "
                       "Press Refresh to follow it.")

if not summaries:
    st.stop()

st.subheader("Progress")
run_name = st.selectbox("Run", [s.name for s in summaries], key="training_run")
with guard(stop=True), wb.db.unit_of_work() as session:
    checkpoints = runs.list_checkpoints(session, run_name=run_name)
    latest = session.get(Checkpoint, checkpoints[-1].id) if checkpoints else None
    grid_sha256 = latest.grid_sha256 if latest is not None else None

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
    checkpoint_id = st.selectbox("Checkpoint", list(labels), index=len(labels) - 1, format_func=labels.get,
                                 key="training_checkpoint")
    left, middle, right = st.columns(3)
    first_seed = left.number_input("First seed", min_value=0, max_value=gen.MAX_SEED, value=0, step=1,
                                   key="training_first_seed")
    count = middle.number_input("Images", min_value=1, max_value=64, value=8, step=1, key="training_count")
    psi = right.number_input("Truncation psi", min_value=0.0, max_value=2.0, value=0.7, step=0.05, key="training_psi")
    if st.form_submit_button("Generate", type="primary", key="training_generate_submit"):
        seeds = range(int(first_seed), min(int(first_seed) + int(count), gen.MAX_SEED + 1))
        with guard(), st.spinner("generating…"):
            st.session_state[GENERATED_KEY] = gen.generate(wb, checkpoint_id, seeds=list(seeds), psi=psi)
            st.success(f"Generated {len(seeds)} images; they are queued for review.")

if st.session_state.get(GENERATED_KEY):
    with guard(stop=True), wb.db.unit_of_work() as session:
        pairs = gen.image_blobs(session, st.session_state[GENERATED_KEY])
    columns = st.columns(8)
    for i, (seed, sha256) in enumerate(pairs):
        columns[i % 8].image(thumbnail(wb.blobs.url, sha256, (256, 256)), caption=f"seed {seed}", width=128)
