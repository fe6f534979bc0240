"""What the rest of the project calls to train and generate: the CLI and the Training page.

`likeness train ...` / `likeness generate ...` (training/cli.py) and the Training page
(ui/pages/training.py) both go through these functions, so they agree on where runs live, on
the defaults a run starts with (`RUN_DEFAULTS`), and on what a run or checkpoint summary holds.
Each function opens its own short unit of work; the reads are column-only selects returning
frozen dataclasses (training/runs.py, training/generate.py). New faces get their scores here
(training.generated_scores) and, through qa's own modules, the image checks (qa.generated) and
the learned filter's decisions (qa.filter): training sits below qa, so it may call them. Both
callers hand each committed batch to the same `GenerationChecks` (training.generation_checks),
so a face made on the page is scored, checked and decided as one made by `likeness generate`.

A run started from the page trains in a process of its own (`start_run_process` runs
`likeness train run`, `resume_run_process` continues one from its latest snapshot), which
records its progress in the database; the page only reads it back. Its output goes to
train.log in the run folder as it is written (PYTHONUNBUFFERED), and a thread of the starting
process waits for it, so a process that ends (stopped, finished, killed) is reaped at once and
never lingers as <defunct> under the app. `request_stop` asks a run to stop (it snapshots and
ends as stopped).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from likeness.errors import ConfigError, ConsentViolation, LikenessError, NotFound
from likeness.workbench import Workbench
from model_registry.export import withheld_images
from training import generate as gen
from training import runs
from training.config import RUN_DEFAULTS, RunDefaults, TrainConfig, TrainProgress
from training.dataset import ImageFolderDataset
from training.estimate import Estimate, describe_device, format_duration
from training.estimate import estimate as _estimate
from training.generate import MAX_SEED, MAX_SEEDS_PER_CALL, NOISE_MODES, GenerationProgress, Label
from training.generated_scores import CheckpointScorer, ScoreSummary, score_images, unscored_images
from training.generation_checks import GenerationChecks
from training.generation_mix import Mix, allocate, checkpoint_slots
from training.runs import CheckpointSummary, Resume, RunSummary
from training.snapshots.api import find_snapshot_id, require_consent
from training.snapshots.spec import load_spec

__all__ = [
    "MAX_SEED", "MAX_SEEDS_PER_CALL", "NOISE_MODES", "RUN_DEFAULTS", "CheckpointScorer",
    "CheckpointSummary", "Estimate", "GenerationChecks", "GenerationProgress", "Label",
    "Mix", "Resume", "RunDefaults", "RunSummary", "ScoreSummary", "StartedRun", "TrainConfig", "TrainProgress",
    "checkpoint_file", "checkpoints", "describe_device", "estimate_run",
    "format_duration", "generate", "generate_mix", "generated_images", "plan_mix", "read_log", "request_stop",
    "resume_run_process", "run_command", "run_folder", "run_summaries", "run_summary", "score_generated", "start_run",
    "start_run_process", "unscored_generated", "write_generated",
]

LOG_FILE = "train.log"


# ---- Runs: where they live, what they are. -----------------------------------------------------

def run_folder(workbench: Workbench, name: str) -> Path:
    """The default folder of the run called `name`: runs/<name> in the data directory."""
    return workbench.settings.data_dir / "runs" / name


def run_summaries(workbench: Workbench) -> list[RunSummary]:
    """Every run, newest first, with its checkpoint count and latest checkpoint."""
    with workbench.db.unit_of_work() as session:
        return runs.run_status(session=session)


def run_summary(workbench: Workbench, run_id: int) -> RunSummary:
    """One run by id; NotFound when there is none."""
    summary = next((s for s in run_summaries(workbench) if s.id == run_id), None)
    if summary is None:
        raise NotFound(f"no training run #{run_id}", hint="`likeness train status` lists the runs")
    return summary


def checkpoints(workbench: Workbench, *, run_name: str | None = None) -> list[CheckpointSummary]:
    """Checkpoints of one run (by name) or of all runs, oldest first; NotFound for an unknown run."""
    with workbench.db.unit_of_work() as session:
        return runs.list_checkpoints(session=session, run_name=run_name)


def checkpoint_file(workbench: Workbench, checkpoint_id: int, *, scratch: Path) -> Path:
    """A readable path to a checkpoint's snapshot (to resume from it): the blob, or a copy in `scratch`."""
    return runs.checkpoint_file(workbench, checkpoint_id, scratch=scratch)


# ---- Starting a run: in this process, or in a process of its own. -----------------------------

def start_run(
    workbench: Workbench,
    config: TrainConfig,
    *,
    name: str | None = None,             # the run's unique name (default: the run folder's name)
    resume: Resume = None,               # "auto", a snapshot path, or None (see runs.start_run)
    progress: Callable[[TrainProgress], None] | None = None,  # after each tick is recorded
    abort: Callable[[], bool] | None = None,  # polled every step; True ends the run as stopped
    snapshot_id: int | None = None,      # the dataset snapshot config.data was exported from
    external: bool = False,              # or: outside data, with no consent lineage
) -> int:
    """Train in this process, recording the run and its checkpoints; returns the run's id."""
    return runs.start_run(workbench, config, name=name, resume=resume, progress=progress, abort=abort,
                          snapshot_id=snapshot_id, external=external)


@dataclasses.dataclass(frozen=True)
class StartedRun:
    """A training process started by `start_run_process`."""

    pid: int
    name: str
    run_dir: Path
    log_path: Path                      # its stdout and stderr
    command: tuple[str, ...]


def run_command(*, data: Sequence[str], run_dir: Path, name: str, kimg: float = RUN_DEFAULTS.kimg,
                batch: int = RUN_DEFAULTS.batch, snapshot_kimg: float = RUN_DEFAULTS.snapshot_kimg) -> list[str]:
    """The `likeness train run` command line of a run, with this interpreter. `data` is
    ["--dataset", SNAPSHOT], [PATH, "--external"] or, to resume a recorded run, [PATH]."""
    return [sys.executable, "-m", "likeness.cli", "train", "run", *data, "--out", str(run_dir),
            "--name", name, "--kimg", f"{kimg:g}", "--batch", str(int(batch)), "--snapshot-kimg", f"{snapshot_kimg:g}"]


def start_run_process(
    *,
    workbench: Workbench,
    snapshot: str | int | None = None,   # a dataset snapshot (id or hash prefix) ...
    dataset: str | Path | None = None,   # ... or outside data: a folder or .zip, with `external`
    external: bool = False,
    name: str | None = None,             # a new run's name (default: the snapshot's or dataset's name)
    kimg: float = RUN_DEFAULTS.kimg,
    batch: int = RUN_DEFAULTS.batch,
    snapshot_kimg: float = RUN_DEFAULTS.snapshot_kimg,
    log_path: Path | None = None,        # where its output goes (default: train.log in the run folder)
    extra_args: Sequence[str] = (),      # more `likeness train run` options (--network, --tick-kimg ...)
) -> StartedRun:
    """Start a new run as `likeness train run` in a detached process; returns at once.

    The process outlives the caller (a page, or an app restart): it is detached from the
    caller's terminal and process group. NotFound when there is no such snapshot or no dataset at
    `dataset`, ConsentViolation for a dataset not declared external, ConfigError when a run of
    that name exists already.
    """
    if snapshot is not None and str(snapshot).strip():
        with workbench.db.unit_of_work() as session:
            snapshot_id = find_snapshot_id(session, snapshot)
            require_consent(session, snapshot_id, today=dt.date.today())
        data, default_name = ["--dataset", str(snapshot_id)], f"snapshot-{snapshot_id}"
    else:
        given = str(dataset or "").strip()
        path = Path(given)
        if not given or not path.exists():
            raise NotFound(f"No dataset at {given or '(none given)'}.", hint="choose a dataset snapshot, or give a folder")
        if not external:
            raise ConsentViolation(f"{given}: a folder of images has no consent lineage",
                                   hint="train on a dataset snapshot, or mark the folder as external data")
        data, default_name = [str(path), "--external"], path.stem
    name = (name or "").strip() or default_name
    if not name:
        raise ConfigError("A run needs a name.")
    with workbench.db.unit_of_work() as session:
        taken = runs.find_run_id(name, session=session) is not None
    if taken:
        raise ConfigError(f"Run {name} exists already: choose another name.")
    run_dir = run_folder(workbench, name)
    command = run_command(data=data, run_dir=run_dir, name=name, kimg=kimg, batch=batch,
                          snapshot_kimg=snapshot_kimg) + list(extra_args)
    return _spawn(command, name=name, run_dir=run_dir, log_path=log_path or run_dir / LOG_FILE)


def resume_run_process(*, workbench: Workbench, name: str, extra_args: Sequence[str] = ()) -> StartedRun:
    """Continue the run called `name` from its latest snapshot, with its own settings, as
    `likeness train run ... --resume auto` in a detached process; returns at once.

    NotFound for no such run, ConfigError when it is running or finished already.
    """
    summary = next((s for s in run_summaries(workbench) if s.name == name), None)
    if summary is None:
        raise NotFound(f"no training run named {name!r}", hint="`likeness train status` lists the runs")
    if summary.status in ("running", "finished"):
        raise ConfigError(f"Run {name} is {summary.status}: there is nothing to resume.")
    config = summary.config
    run_dir = Path(summary.run_dir)
    command = run_command(data=[summary.dataset_path], run_dir=run_dir, name=name,
                          kimg=float(config.get("total_kimg", summary.total_kimg)),
                          batch=int(config.get("batch", RUN_DEFAULTS.batch)),
                          snapshot_kimg=float(config.get("snapshot_kimg", RUN_DEFAULTS.snapshot_kimg)))
    command += ["--tick-kimg", f"{float(config.get('kimg_per_tick', RUN_DEFAULTS.tick_kimg)):g}"]
    if summary.network is not None and (config.get("network") or config.get("network_overrides")):
        network_file = run_dir / "network.json"   # the run's own network, not the preset
        network_file.write_text(json.dumps(summary.network), encoding="utf-8")
        command += ["--network", str(network_file)]
    command += [*extra_args, "--resume", "auto"]
    return _spawn(command, name=name, run_dir=run_dir, log_path=run_dir / LOG_FILE)


def _spawn(command: list[str], *, name: str, run_dir: Path, log_path: Path) -> StartedRun:
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}   # the log grows line by line, not per 8 KiB block
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # setsid: no signal aimed at the caller's terminal reaches it
        )
    if hasattr(process, "wait"):
        # Reap it as soon as it ends, however it ends: no <defunct> child under the app.
        threading.Thread(target=process.wait, name=f"reap-train-{process.pid}", daemon=True).start()
    return StartedRun(pid=process.pid, name=name, run_dir=run_dir, log_path=log_path, command=tuple(command))


def request_stop(workbench: Workbench, name: str) -> int:
    """Ask the run called `name` to stop at its next step (it snapshots, then ends as stopped);
    returns its id. NotFound for no such run, ConfigError when it is not running."""
    with workbench.db.unit_of_work() as session:
        return runs.request_stop(name, session=session)


def read_log(summary: RunSummary, *, max_bytes: int = 64 * 1024) -> str | None:
    """The end of a run's train.log (at most `max_bytes`), or None when it has none."""
    path = Path(summary.run_dir) / LOG_FILE
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def estimate_run(workbench: Workbench, config: TrainConfig, *, measure: bool = True,
                 done_kimg: float = 0.0) -> Estimate | None:
    """Device and estimated time of `config` (training.estimate): from the speed of the latest
    matching run on this machine, else (when `measure`) from a short benchmark."""
    try:
        resolution: int | None = ImageFolderDataset(config.data).resolution
    except LikenessError:
        resolution = None
    return _estimate(config, run_summaries(workbench), resolution=resolution, measure=measure, done_kimg=done_kimg)


# ---- Generating faces. -------------------------------------------------------------------------

def generate(
    workbench: Workbench,
    checkpoint: int | Path,              # a checkpoint id, or a snapshot file recorded as a checkpoint
    *,
    seeds: Sequence[int],
    psi: float = 0.7,
    label: Label | None = None,
    noise_mode: str = "const",
    queue_for_review: bool = True,
    progress: gen.ProgressFn | None = None,   # after each batch: seeds done, images rendered, images/s
    after_batch: gen.BatchFn | None = None,   # the ids each batch rendered (e.g. to score them)
    batch_checks: GenerationChecks | None = None,   # scores, checks and decides each batch, then the rest
) -> list[int]:
    """One reproducible PNG per seed from a checkpoint (see training.generate); GeneratedImage ids.
    A call killed part way resumes when asked again: existing recipes are skipped, not redone,
    and `batch_checks` then catches up on the faces the killed call committed but never reached."""
    ids = gen.generate(workbench, checkpoint, seeds=seeds, psi=psi, label=label, noise_mode=noise_mode,
                       queue_for_review=queue_for_review, progress=progress,
                       after_batch=_each_batch(after_batch, batch_checks))
    if batch_checks is not None:
        batch_checks.finish(ids)
    return ids


def _each_batch(after_batch: gen.BatchFn | None, batch_checks: GenerationChecks | None) -> gen.BatchFn | None:
    """The checks first (a caller's hook then sees the batch scored and decided), then the hook."""
    if after_batch is None or batch_checks is None:
        return after_batch or batch_checks

    def both(ids: list[int]) -> None:
        batch_checks(ids)
        after_batch(ids)
    return both


def plan_mix(workbench: Workbench, checkpoint_id: int, spec_path: Path, *, n: int | None = None) -> Mix:
    """How n faces (default: the spec's size) spread over the checkpoint's label cells to meet the
    spec's quotas (training.generation_mix)."""
    return allocate(load_spec(spec_path), checkpoint_slots(workbench, checkpoint_id), n=n)


def generate_mix(workbench: Workbench, checkpoint_id: int, mix: Mix, **options: Any) -> list[int]:
    """Generate every cell of a planned mix with its label and seeds (`options` as for `generate`,
    with `progress` hearing the whole mix's seeds, `batch_checks` finishing after the last cell);
    the ids, cell after cell."""
    progress = options.pop("progress", None)
    batch_checks: GenerationChecks | None = options.pop("batch_checks", None)
    options["after_batch"] = _each_batch(options.pop("after_batch", None), batch_checks)
    ids: list[int] = []
    for cell in mix.cells:
        base = len(ids)

        def report(p: gen.GenerationProgress, base: int = base) -> None:
            if progress is not None:
                progress(dataclasses.replace(p, done=base + p.done, total=mix.total))

        ids += gen.generate(workbench, checkpoint_id, seeds=cell.seeds, label=list(cell.label), progress=report,
                            **options)
    if batch_checks is not None:
        batch_checks.finish(ids)
    return ids


def score_generated(workbench: Workbench, ids: Sequence[int], *,
                    progress: Callable[[int, int], None] | None = None,
                    scorers: dict[int, CheckpointScorer] | None = None) -> ScoreSummary:
    """The discriminator and realism checks of generated images (training.generated_scores)."""
    return score_images(workbench, ids, progress=progress, scorers=scorers)


def unscored_generated(workbench: Workbench, *, checkpoint_id: int | None = None) -> list[int]:
    """Generated images of untainted checkpoints that lack either of those two checks."""
    return unscored_images(workbench, checkpoint_id=checkpoint_id)


def generated_images(workbench: Workbench, ids: Sequence[int]) -> list[tuple[int, str]]:
    """(seed, image SHA-256) of generated images, in the order of `ids`."""
    with workbench.db.unit_of_work() as session:
        return gen.image_blobs(ids, session=session)


def write_generated(workbench: Workbench, ids: Sequence[int], folder: Path) -> list[Path]:
    """Copy generated images to `folder` as seed<SEED>.png (unsigned working copies; exports with
    Content Credentials are model_registry.export's); returns the paths written.

    ConsentViolation, before anything is written, when an image's checkpoint is tainted."""
    withheld = withheld_images(workbench, ids)
    if withheld:
        first, reason = next(iter(withheld.items()))
        more = f" (and {len(withheld) - 1} more)" if len(withheld) > 1 else ""
        raise ConsentViolation(f"generated image #{first}{more} withheld: {reason}",
                               hint="generate from a checkpoint trained without that data")
    pairs = generated_images(workbench, ids)
    folder.mkdir(parents=True, exist_ok=True)
    return [workbench.blobs.copy_to(sha256, folder / f"seed{seed:04d}.png") for seed, sha256 in pairs]
