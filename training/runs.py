"""Training runs in the database: start or resume a run, record its progress and snapshots.

`start_run` wraps `training.loop.train`. The run's row (`TrainingRun`) is written before the
first step and updated at every tick, each time in a short transaction of its own, so the app
can watch a run while it trains. Every snapshot the loop writes becomes a `Checkpoint` row whose
file (and sample grid) is first copied into the blob store: a row never names a missing file.

Snapshots are found through the run folder's metrics.jsonl, where the loop appends one line per
snapshot (its kimg, losses and file name) after writing the file. The latest line for a file
name describes the file as it is now (names hold whole kimg, so a short run can overwrite one),
unless the file is newer than the line, which only a crash between the two writes leaves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from likeness.errors import ConfigError, NotFound
from likeness.models import Checkpoint, RunStatus, TrainingRun, utcnow
from likeness.workbench import Workbench
from training.checkpoint import METRICS_FILE, OPTIONS_FILE
from training.config import TrainConfig, TrainProgress, TrainResult
from training.loop import train

log = logging.getLogger(__name__)

Resume = Path | Literal["auto"] | None


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One run as `likeness train status` and the app show it."""

    id: int
    name: str
    status: str
    kimg: float
    total_kimg: float
    augment_p: float
    checkpoints: int
    latest_checkpoint_id: int | None
    last_metrics: dict[str, Any]
    error: str | None
    run_dir: str
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class CheckpointSummary:
    """One checkpoint as `likeness train checkpoints` and the app show it."""

    id: int
    run_name: str
    kimg: float
    stage: str
    tainted: bool
    file_sha256: str
    grid_sha256: str | None             # the sample grid written with the snapshot
    metrics: dict[str, Any]


def start_run(
    workbench: Workbench,
    config: TrainConfig,
    *,
    name: str | None = None,             # the run's unique name (default: the run folder's name)
    resume: Resume = None,               # "auto": the run folder's latest snapshot; a snapshot path; None: fresh
    progress: Callable[[TrainProgress], None] | None = None,  # called after each tick is recorded
    abort: Callable[[], bool] | None = None,  # polled every step; True ends the run as stopped
) -> int:
    """Train with `config`, keeping the `TrainingRun` row and its checkpoints current; returns its id.

    Starting under a name that exists continues that run (its row, folder and checkpoints): a
    finished run needs `resume`, an unfinished one (killed, stopped, failed) resumes from its
    latest snapshot by itself; otherwise a new row is created. The run ends finished, stopped (abort or
    Ctrl-C) or failed (the error is kept on the row and raised again).
    """
    run_dir = Path(config.out_dir)
    name = name or run_dir.name
    run_id, resume = _open_run(workbench, config, name=name, resume=resume)
    recorder = _SnapshotRecorder(workbench, run_id, run_dir)

    def on_tick(report: TrainProgress) -> None:
        _record_tick(workbench, run_id, run_dir, report)
        recorder.record_new()
        if progress is not None:
            progress(report)

    try:
        result = train(config, resume=resume, progress_fn=on_tick, abort_fn=abort)
    except KeyboardInterrupt:
        _close_run(workbench, run_id, recorder, RunStatus.stopped, error=None)
        raise
    except Exception as exc:
        _close_run(workbench, run_id, recorder, RunStatus.failed, error=str(exc) or type(exc).__name__)
        raise
    finished = result.cur_nimg >= round(config.total_kimg * 1000)
    _close_run(workbench, run_id, recorder, RunStatus.finished if finished else RunStatus.stopped,
               error=None, result=result)
    return run_id


def run_status(*, session: Session) -> list[RunSummary]:
    """Every run, newest first, with its checkpoint count and latest checkpoint."""
    counts = (select(Checkpoint.run_id, func.count().label("n"), func.max(Checkpoint.id).label("latest"))
              .group_by(Checkpoint.run_id).subquery())
    rows = session.execute(
        select(TrainingRun.id, TrainingRun.name, TrainingRun.status, TrainingRun.kimg, TrainingRun.total_kimg,
               TrainingRun.augment_p, counts.c.n, counts.c.latest, TrainingRun.last_metrics, TrainingRun.error,
               TrainingRun.run_dir, TrainingRun.updated_at)
        .outerjoin(counts, counts.c.run_id == TrainingRun.id)
        .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
    )
    return [
        RunSummary(id=run_id, name=name, status=status, kimg=kimg, total_kimg=total_kimg, augment_p=augment_p,
                   checkpoints=n or 0, latest_checkpoint_id=latest, last_metrics=dict(last_metrics or {}),
                   error=error, run_dir=run_dir, updated_at=updated_at)
        for (run_id, name, status, kimg, total_kimg, augment_p, n, latest, last_metrics, error, run_dir,
             updated_at) in rows
    ]


def find_run_id(name: str, *, session: Session) -> int | None:
    """The id of the run called `name`, or None."""
    return session.scalar(select(TrainingRun.id).where(TrainingRun.name == name))


def list_checkpoints(*, session: Session, run_name: str | None = None) -> list[CheckpointSummary]:
    """Checkpoints of one run (or of all), oldest first."""
    query = (select(Checkpoint.id, TrainingRun.name, Checkpoint.kimg, Checkpoint.stage, Checkpoint.tainted,
                    Checkpoint.file_sha256, Checkpoint.grid_sha256, Checkpoint.metrics)
             .join(TrainingRun, Checkpoint.run_id == TrainingRun.id)
             .order_by(TrainingRun.id, Checkpoint.kimg))
    if run_name is not None:
        if find_run_id(run_name, session=session) is None:
            raise NotFound(f"no training run named {run_name!r}", hint="`likeness train status` lists the runs")
        query = query.where(TrainingRun.name == run_name)
    return [
        CheckpointSummary(id=checkpoint_id, run_name=run, kimg=kimg, stage=stage, tainted=tainted,
                          file_sha256=file_sha256, grid_sha256=grid_sha256, metrics=dict(metrics or {}))
        for checkpoint_id, run, kimg, stage, tainted, file_sha256, grid_sha256, metrics in session.execute(query)
    ]


def checkpoint_file(workbench: Workbench, checkpoint_id: int, *, scratch: Path) -> Path:
    """A readable path to a checkpoint's snapshot: the blob itself, or a copy in `scratch`."""
    with workbench.db.unit_of_work() as session:
        checkpoint = session.get(Checkpoint, checkpoint_id)
        if checkpoint is None:
            raise NotFound(f"no checkpoint #{checkpoint_id}", hint="`likeness train checkpoints` lists them")
        sha256, file_name = checkpoint.file_sha256, checkpoint.file_name
    if workbench.blobs.is_local:
        return workbench.blobs.local_path(sha256)
    scratch.mkdir(parents=True, exist_ok=True)
    return workbench.blobs.copy_to(sha256, scratch / f"checkpoint-{checkpoint_id}-{file_name}")


# ---- The row: opened before training, updated per tick, closed at the end. ---------------------

def _open_run(workbench: Workbench, config: TrainConfig, *, name: str, resume: Resume) -> tuple[int, Resume]:
    """The run's row, and what to resume from: a run that did not finish (killed, stopped or
    failed) continues from its latest snapshot without being asked to."""
    with workbench.db.unit_of_work() as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        if run is None:
            run = TrainingRun(name=name, dataset_path=config.data, run_dir=config.out_dir,
                              total_kimg=config.total_kimg, started_at=utcnow())
            session.add(run)
        elif resume is None and run.status == RunStatus.finished:
            raise ConfigError(f"training run {name!r} already exists (#{run.id}, {run.status})",
                              hint="continue it with --resume auto, or choose another --name")
        elif Path(run.run_dir) != Path(config.out_dir):
            raise ConfigError(f"training run {name!r} lives in {run.run_dir}, not in {config.out_dir}",
                              hint=f"resume it with --out {run.run_dir}")
        if run.id is not None and resume is None:
            log.warning("run %s ended %s; continuing from its latest snapshot", name, run.status)
            resume = "auto"
        elif run.status == RunStatus.running:
            log.warning("run %s is marked running; continuing it (it was probably killed)", name)
        run.status = RunStatus.running
        run.config = config.to_dict()
        run.dataset_path = config.data
        run.total_kimg = config.total_kimg
        run.error = None
        run.finished_at = None
        session.flush()
        return run.id, resume


def _record_tick(workbench: Workbench, run_id: int, run_dir: Path, report: TrainProgress) -> None:
    with workbench.db.unit_of_work() as session:
        run = session.get_one(TrainingRun, run_id)
        run.kimg = report.kimg
        run.augment_p = report.augment_p
        run.last_metrics = {"tick": report.tick, "losses": report.losses, "sec_per_kimg": report.sec_per_kimg,
                            "img_per_s": report.img_per_s}
        if run.network is None:
            _adopt_options(run, run_dir)


def _adopt_options(run: TrainingRun, run_dir: Path) -> None:
    """Copy the resolved network and the dataset fingerprint from the loop's training_options.json."""
    path = run_dir / OPTIONS_FILE
    if not path.is_file():
        return  # the loop stopped before it had read the dataset
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return
    run.network = options.get("network_config")
    run.dataset_fingerprint = options.get("dataset_fingerprint")


def _close_run(workbench: Workbench, run_id: int, recorder: _SnapshotRecorder, status: RunStatus, *,
               error: str | None, result: TrainResult | None = None) -> None:
    """Record what the loop left behind and the outcome; never hides the error that ended the run."""
    try:
        recorder.record_new()
        with workbench.db.unit_of_work() as session:
            run = session.get_one(TrainingRun, run_id)
            run.status = status
            run.error = error
            run.finished_at = utcnow()
            if result is not None:
                run.kimg = result.cur_nimg / 1000
                run.augment_p = result.augment_p
                run.network = result.network.to_dict()
            if run.network is None or run.dataset_fingerprint is None:
                _adopt_options(run, Path(run.run_dir))
    except Exception:
        if status is RunStatus.finished:
            raise
        log.exception("could not record the end of training run #%d (%s)", run_id, status.value)
    log.info("training run #%d %s", run_id, status.value)


# ---- Snapshots: files in the run folder become Checkpoint rows with blobs. ---------------------

class _SnapshotRecorder:
    """Turns snapshots listed in metrics.jsonl into Checkpoint rows, each once."""

    def __init__(self, workbench: Workbench, run_id: int, run_dir: Path) -> None:
        self.workbench = workbench
        self.run_id = run_id
        self.run_dir = run_dir
        with workbench.db.unit_of_work() as session:
            self.known = set(session.scalars(select(Checkpoint.kimg).where(Checkpoint.run_id == run_id)))

    def record_new(self) -> list[int]:
        ids = []
        for record in self._pending():
            snapshot = self.run_dir / record["snapshot"]
            grid = self.run_dir / f"fakes{snapshot.stem.rsplit('-', 1)[-1]}.png"
            file_sha = self.workbench.blobs.put_file(snapshot)
            grid_sha = self.workbench.blobs.put_file(grid) if _written_by(grid, record) else None
            metrics = {k: v for k, v in record.items() if k not in ("kimg", "snapshot", "timestamp")}
            with self.workbench.db.unit_of_work() as session:
                checkpoint = Checkpoint(run_id=self.run_id, kimg=record["kimg"], file_sha256=file_sha,
                                        file_name=snapshot.name, grid_sha256=grid_sha, metrics=metrics)
                session.add(checkpoint)
                session.flush()
                ids.append(checkpoint.id)
            self.known.add(record["kimg"])
            log.info("checkpoint #%d: %s at kimg %.3f", checkpoint.id, snapshot, record["kimg"])
        return ids

    def _pending(self) -> list[dict[str, Any]]:
        path = self.run_dir / METRICS_FILE
        if not path.is_file():
            return []
        latest: dict[str, dict[str, Any]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(record, dict) and record.get("snapshot"):
                latest[record["snapshot"]] = record
        return sorted(
            (r for r in latest.values()
             if float(r["kimg"]) not in self.known and _written_by(self.run_dir / r["snapshot"], r)),
            key=lambda r: float(r["kimg"]),
        )


def _written_by(path: Path, record: dict[str, Any]) -> bool:
    """The file exists and was last written before its metrics line (so the line describes it)."""
    try:
        return path.stat().st_mtime <= float(record.get("timestamp", float("inf")))
    except OSError:
        return False
