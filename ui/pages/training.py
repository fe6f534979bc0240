"""Training: follow StyleGAN2-ADA runs, start, stop and resume them, and generate faces from a
checkpoint. Admins only.

A run trains in a process of its own (`training.api.start_run_process`), which records its
progress (at least every few seconds) and checkpoints in the database; this page only reads them
back (through `training.api`), so it never waits for training. While a run is live (or one just
started has not written its row yet) the runs and the selected run's log re-read themselves every
REFRESH_S seconds (`st.fragment(run_every=...)`), and the runs every IDLE_REFRESH_S otherwise, so
a run started elsewhere shows up. Stop asks the run to stop at its next step (it
snapshots and ends as stopped); Resume continues a stopped, interrupted or failed run from its
latest snapshot. Before starting, the form names the device and estimates the time. Faces
generated here are scored, checked and decided by the learned filter batch by batch, by the same
`training.api.GenerationChecks` as `likeness generate`, and its summary is shown with them.
"""

from __future__ import annotations

import os
import tempfile

import pandas as pd
import streamlit as st

from likeness.errors import LikenessError
from likeness.models import Role, RunStatus
from model_registry.export import withheld_images
from model_registry.registry import quality as checkpoint_quality
from training import api
from training.snapshots import api as snapshots_api
from ui._common import guard, plain, require_role, thumbnail, workbench

GENERATED_KEY = "training_generated"  # ids of the images generated last, shown until the next generation
CHECKED_KEY = "training_checked"      # what their scores, checks and the filter found, shown with them
PENDING_KEY = "training_pending"      # (name, pid) of a run this page started whose row may not exist yet
NOTICE_KEY = "training_notice"        # a message to show after the rerun that follows start/stop/resume
REFRESH_S = 2
IDLE_REFRESH_S = 10                   # with nothing live: a run started elsewhere (CLI, another tab) shows up

require_role(Role.admin)
wb = workbench()
st.title("Training")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False    # ended and reaped (training.api waits for the processes it starts)
    except PermissionError:
        return True
    return True


def _is_live(summaries: list[api.RunSummary]) -> bool:
    """A run is training, or one this page started is still starting (no row yet)."""
    pending = st.session_state.get(PENDING_KEY)
    if pending is not None and (any(s.name == pending[0] for s in summaries) or not _alive(pending[1])):
        st.session_state.pop(PENDING_KEY, None)
        pending = None
    return pending is not None or any(s.status == RunStatus.running for s in summaries)


def _status(s: api.RunSummary) -> str:
    return "stopping" if s.stop_requested else str(s.status)


def _progress_line(s: api.RunSummary) -> str:
    m = s.last_metrics
    parts = [f"**{plain(s.name)}** {_status(s)}: kimg {s.kimg:.3f} / {s.total_kimg:g}"]
    if m.get("img_per_s"):
        parts.append(f"{float(m['img_per_s']):.1f} img/s")
    if m.get("eta_s") is not None:
        parts.append(f"ETA {api.format_duration(float(m['eta_s']))}")
    losses = "  ".join(f"{k} {v:.3f}" for k, v in m.get("losses", {}).items())
    if losses:
        parts.append(losses)
    return " · ".join(parts)


with guard(stop=True):
    first_read = api.run_summaries(wb)
LIVE = _is_live(first_read)


@st.fragment(run_every=REFRESH_S if LIVE else IDLE_REFRESH_S)
def runs_table() -> list[api.RunSummary]:
    """The runs, re-read every REFRESH_S seconds while one of them is live, else every IDLE_REFRESH_S."""
    with guard(stop=True):
        summaries = api.run_summaries(wb)
    if _is_live(summaries) != LIVE:
        st.rerun()      # a run started or ended: the whole page follows (and the refresh turns on or off)
    pending = st.session_state.get(PENDING_KEY)
    if pending is not None:
        st.caption(f"Starting run {plain(pending[0])}…")
    if not summaries:
        st.caption("No training runs yet.")
        return summaries
    st.dataframe(pd.DataFrame([{
        "run": s.name, "status": _status(s), "kimg": f"{s.kimg:g} / {s.total_kimg:g}", "augment p": s.augment_p,
        "img/s": float(s.last_metrics.get("img_per_s") or 0.0),
        "ETA": (api.format_duration(float(s.last_metrics["eta_s"]))
                if s.status == RunStatus.running and s.last_metrics.get("eta_s") is not None else ""),
        "checkpoints": s.checkpoints,
        "losses": "  ".join(f"{k} {v:.3f}" for k, v in s.last_metrics.get("losses", {}).items()),
        "error": s.error or "",
    } for s in summaries]), hide_index=True, key="training_runs",
        column_config={"augment p": st.column_config.NumberColumn(format="%.3f"),
                       "img/s": st.column_config.NumberColumn(format="%.1f")})
    for s in summaries:
        if s.status == RunStatus.running:
            st.markdown(_progress_line(s))
    return summaries


st.button("Refresh", key="training_refresh", icon=":material/refresh:")
if NOTICE_KEY in st.session_state:
    st.success(st.session_state.pop(NOTICE_KEY))
summaries = runs_table()

EXTERNAL = "External data (a folder or .zip from outside the studio)"
snapshot_choices = {f"#{s.id} {s.name or ''} · {s.train} train faces · {s.sha256[:12]}": s.id
                    for s in snapshots_api.snapshots(wb) if not s.tainted}

with st.expander("Start a run"), st.form("training_start"):
    st.caption(f"Trains on {plain(api.describe_device())}.")
    source = st.selectbox("Training data", [*snapshot_choices, EXTERNAL], key="training_source",
                          help="Our faces reach training only through a dataset snapshot (the Datasets page builds "
                               "them); consent is checked again when the run starts and at every resume.")
    dataset = st.text_input("External dataset folder or .zip", key="training_dataset",
                            help="Only for External data, made by `likeness train prepare`: the run has no consent lineage.")
    name = st.text_input("Run name", key="training_name", help="Default: the snapshot's or dataset's name.")
    left, middle, right = st.columns(3)
    kimg = left.number_input("Length (kimg)", min_value=0.001, value=api.RUN_DEFAULTS.kimg, key="training_kimg")
    batch = middle.number_input("Batch", min_value=1, value=api.RUN_DEFAULTS.batch, step=1, key="training_batch")
    snapshot_kimg = right.number_input("Snapshot every (kimg)", min_value=0.001, value=api.RUN_DEFAULTS.snapshot_kimg,
                                       key="training_snapshot")
    estimate_col, start_col = st.columns(2)
    if estimate_col.form_submit_button("Estimate time", key="training_estimate_submit"):
        try:
            with tempfile.TemporaryDirectory() as scratch, st.spinner("measuring a few training steps…"):
                data = (dataset.strip() if source == EXTERNAL
                        else str(snapshots_api.training_export(wb, snapshot_choices[source]).path))
                config = api.TrainConfig(data=data, out_dir=scratch, total_kimg=kimg, batch=int(batch),
                                         snapshot_kimg=snapshot_kimg)
                found = api.estimate_run(wb, config)
        except LikenessError as exc:
            st.error(plain(" ".join(str(exc).split())), icon=":material/error:")
        else:
            if found is not None:
                st.info(plain(f"On {found.device}: {found.line()}"), icon=":material/timer:")
    if start_col.form_submit_button("Start training", type="primary", key="training_start_submit"):
        try:
            started = api.start_run_process(
                workbench=wb, snapshot=None if source == EXTERNAL else snapshot_choices[source],
                dataset=dataset if source == EXTERNAL else None, external=source == EXTERNAL, name=name, kimg=kimg,
                batch=int(batch), snapshot_kimg=snapshot_kimg)
        except LikenessError as exc:  # shown escaped: dataset paths and run names are not markup
            st.error(plain(" ".join(str(exc).split())), icon=":material/error:")
        else:
            st.session_state[PENDING_KEY] = (started.name, started.pid)
            st.session_state[NOTICE_KEY] = (f"Started run {plain(started.name)}; its output goes to "
                                            f"{plain(str(started.log_path))}. Progress follows here.")
            st.rerun()

if not summaries:
    st.stop()

st.subheader("Progress")
run_name = st.selectbox("Run", [s.name for s in summaries], key="training_run")
selected = next(s for s in summaries if s.name == run_name)
if selected.status == RunStatus.running:
    if st.button("Stop", key="training_stop", icon=":material/stop:", disabled=selected.stop_requested,
                 help="Ends the run after its current step, with a snapshot to resume from."):
        with guard():
            api.request_stop(wb, selected.name)
            st.session_state[NOTICE_KEY] = f"Asked run {plain(selected.name)} to stop after its current step."
            st.rerun()
elif selected.status in (RunStatus.stopped, RunStatus.interrupted, RunStatus.failed):
    if st.button("Resume", key="training_resume", icon=":material/play_arrow:",
                 help="Continues the run from its latest snapshot, with its own settings."):
        with guard():
            started = api.resume_run_process(workbench=wb, name=selected.name)
            st.session_state[PENDING_KEY] = (started.name, started.pid)
            st.session_state[NOTICE_KEY] = f"Resuming run {plain(selected.name)} from its latest snapshot."
            st.rerun()


@st.fragment(run_every=REFRESH_S if LIVE else None)
def run_log(summary: api.RunSummary) -> None:
    """The end of the run's train.log, re-read with the runs while a run is live."""
    text = api.read_log(summary)
    with st.expander("Log", expanded=summary.status == RunStatus.running):
        if text is None:
            st.caption("This run has no log (it was not started from this page).")
        else:
            st.code(text[-20_000:] or "(empty so far)", language=None)


run_log(selected)

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


def _quality_cells(metrics: dict[str, object]) -> dict[str, float | str | None]:
    q = checkpoint_quality(metrics)
    return {"FID": None if q is None else q.fid, "KID": None if q is None else q.kid,
            "features": "" if q is None else q.extractor}


st.caption("Checkpoints (FID/KID as stored by `likeness train` metrics or a quality evaluation)")
st.dataframe(pd.DataFrame([{
    "#": c.id, "kimg": c.kimg, "aliases": ", ".join(c.aliases), **_quality_cells(c.metrics),
    "tainted": "yes" if c.tainted else "",
} for c in checkpoints]), hide_index=True, key="training_checkpoints")

st.subheader("Generate")
labels = {c.id: f"#{c.id}  kimg {c.kimg:g}" + "".join(f"  [{a}]" for a in c.aliases)
          + ("  (tainted)" if c.tainted else "") for c in checkpoints}
with st.form("training_generate"):
    checkpoint_id = st.selectbox("Checkpoint", list(labels), index=len(labels) - 1,
                                 format_func=lambda i: labels[i], key="training_checkpoint")
    left, middle, right = st.columns(3)
    first_seed = left.number_input("First seed", min_value=0, max_value=api.MAX_SEED, value=0, step=1,
                                   key="training_first_seed")
    count = middle.number_input("Images", min_value=1, max_value=64, value=8, step=1, key="training_count")
    psi = right.number_input("Truncation psi", min_value=0.0, max_value=2.0, value=0.7, step=0.05, key="training_psi")
    left, right = st.columns(2)
    score = left.checkbox("Score", value=True, key="training_score",
                          help="The checkpoint's discriminator and the realism against the run's images, on each new face.")
    checks = right.checkbox("Check and filter", value=True, key="training_checks",
                            help="The automatic image checks on each new face, then the learned filter accepts or "
                                 "rejects those it is sure of; the rest are left to reviewers.")
    if st.form_submit_button("Generate", type="primary", key="training_generate_submit") and checkpoint_id is not None:
        seeds = range(int(first_seed), min(int(first_seed) + int(count), api.MAX_SEED + 1))
        with guard(), st.spinner("generating…"):
            # As `likeness generate` does: each committed batch scored, checked and decided.
            batch_checks = api.GenerationChecks(wb, checkpoint_id, score=score, checks=checks)
            ids = api.generate(wb, checkpoint_id, seeds=list(seeds), psi=psi, batch_checks=batch_checks)
            st.session_state[GENERATED_KEY] = ids
            st.session_state[CHECKED_KEY] = batch_checks.lines()
            st.success(f"Generated {len(seeds)} images; they are queued for review.")

if st.session_state.get(GENERATED_KEY):
    with guard(stop=True):
        withheld = withheld_images(wb, st.session_state[GENERATED_KEY])   # tainted since they were made
        pairs = api.generated_images(wb, [i for i in st.session_state[GENERATED_KEY] if i not in withheld])
    if withheld:
        st.warning(f"{len(withheld)} of these images are withheld: {next(iter(withheld.values()))}.")
    if st.session_state.get(CHECKED_KEY):
        st.info("  \n".join(plain(line) for line in st.session_state[CHECKED_KEY]), icon=":material/fact_check:")
    columns = st.columns(8)
    for i, (seed, sha256) in enumerate(pairs):
        columns[i % 8].image(thumbnail(wb.blobs.url, sha256, (256, 256)), caption=f"seed {seed}", width=128)
