"""Training runs in the database: start or resume a run, record its progress and snapshots.

`start_run` wraps `training.loop.train`. The run's row (`TrainingRun`) is written before the
first step and updated at every tick and between ticks at least every LIVE_EVERY_S seconds of
wall time (kimg, img/s, s/kimg, ETA, losses; the loop's live reports), each time in a short
transaction of its own, so the app can watch a run while it trains.

Stopping. `request_stop` sets the row's `stop_requested_at` (`likeness train stop NAME`, the
Training page); the training process reads it at most every STOP_POLL_S seconds and the loop
honours it at its next step: it writes a final snapshot and the run ends as stopped. SIGTERM
does the same (`kill PID`, a service manager stopping the app). Ctrl-C (SIGINT) still stops at
once, without a final snapshot; the next start continues from the latest one. Every snapshot the loop writes becomes a `Checkpoint` row whose
file (and sample grid) is first copied into the blob store: a row never names a missing file.

Snapshots are found through the run folder's metrics.jsonl, where the loop appends one line per
snapshot (its kimg, losses and file name) after writing the file. Names hold the image count,
so two snapshots never share one (older runs' names held whole kimg and could be overwritten:
the latest line for a name describes the file as it is now), unless the file is newer than the
line, which only a crash between the two writes leaves.

One process at a time trains a run: it holds the run's lease, the row's `lease_pid`, `lease_host`
and `heartbeat_at` (refreshed at every progress record, and at most every HEARTBEAT_EVERY_S
while steps run). Starting a run whose lease is live raises ConfigError ("is running"). A lease
is expired when its process is gone (same host, that pid no longer alive) or its heartbeat is
older than LEASE_TIMEOUT_S (any host); an expired lease is taken over by the next start, which
also deletes the stale `.tmp` files a killed snapshot write left in the run folder. Taking the
lease is a compare-and-set on the row, so of two starts at once exactly one wins.

A run whose row says running but whose lease is expired is reported as `interrupted` by
`run_status` (so `likeness train status` and the Training page): marked on read, without
writing; the row itself stays running until the next start takes it over and continues it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Result, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from likeness.blobstore import sha256_file
from likeness.errors import ConfigError, ConsentViolation, NotFound
from likeness.files import stale_temp_files
from likeness.models import Checkpoint, CheckpointAlias, RunStatus, TrainingRun, utcnow
from likeness.workbench import Workbench
from training.checkpoint import METRICS_FILE, OPTIONS_FILE
from training.config import TrainConfig, TrainProgress, TrainResult
from training.estimate import describe_device
from training.loop import train
from training.snapshots.api import require_consent

log = logging.getLogger(__name__)

Resume = Path | Literal["auto"] | None

LEASE_TIMEOUT_S = 30 * 60       # a lease whose heartbeat is older than this is expired, whatever its host
HEARTBEAT_EVERY_S = 60.0        # between progress records, steps refresh the heartbeat this often at most
LIVE_EVERY_S = 2.0              # wall-time seconds between live progress records, at least
STOP_POLL_S = 2.0               # the training process reads the run's stop request this often at most


class LeaseLost(ConfigError):
    """Another process took this run over (its lease had expired): this one must stop."""


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
    dataset_path: str = ""
    config: dict[str, Any] = dataclasses.field(default_factory=dict)   # TrainConfig.to_dict()
    network: dict[str, Any] | None = None                              # the resolved NetworkConfig
    stop_requested: bool = False        # a stop is asked for and the run has not ended yet


@dataclasses.dataclass(frozen=True)
class CheckpointSummary:
    """One checkpoint as `likeness train checkpoints` and the app show it."""

    id: int
    run_name: str
    kimg: float
    aliases: tuple[str, ...]            # the registry's aliases on it (`production`, `candidate`, ...)
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
    snapshot_id: int | None = None,      # the dataset snapshot `config.data` was exported from
    external: bool = False,              # or: data from outside the studio, with no consent lineage
) -> int:
    """Train with `config`, keeping the `TrainingRun` row and its checkpoints current; returns its id.

    Starting under a name that exists continues that run (its row, folder and checkpoints): a
    finished run needs `resume`, an unfinished one (killed, stopped, failed) resumes from its
    latest snapshot by itself; otherwise a new row is created. The run ends finished, stopped (abort or
    Ctrl-C) or failed (the error is kept on the row and raised again).

    Our faces reach training only through a dataset snapshot: every start and every resume checks
    again that each of its training members' releases still covers them (ConsentViolation naming
    the person and release otherwise). A folder of other images needs `external`, and the run is
    then marked as having no consent lineage.
    """
    run_dir = Path(config.out_dir)
    name = name or run_dir.name
    lease = _Lease(workbench)
    run_id, resume = _open_run(workbench, config, name=name, resume=resume, lease=lease,
                               source=_DataSource(snapshot_id, external))
    if isinstance(resume, Path):
        _record_parent(workbench, run_id, resume)
    _remove_stale_temp_files(run_dir)
    recorder = _SnapshotRecorder(workbench, run_id, run_dir)
    stop = _StopRequest(workbench, run_id)
    where = {"host": lease.host, "device": describe_device(config.device)}

    def on_tick(report: TrainProgress) -> None:
        _record_tick(workbench, run_id, run_dir, report, lease, where)
        recorder.record_new()
        if progress is not None:
            progress(report)

    def poll() -> bool:
        lease.beat(run_id, every_s=HEARTBEAT_EVERY_S)
        return stop.asked() or (abort is not None and abort())

    try:
        with stop.on_sigterm():
            result = train(config, resume=resume, progress_fn=on_tick, abort_fn=poll, live_fn=on_tick,
                           live_every_s=LIVE_EVERY_S)
    except KeyboardInterrupt:
        # Ctrl-C can land inside a database call and leave that pooled connection unusable:
        # record the stop on fresh connections.
        workbench.db.engine.dispose()
        _close_run(workbench, run_id, recorder, RunStatus.stopped, error=None, lease=lease)
        raise
    except LeaseLost:
        log.error("training run #%d was taken over by another process; this one stops", run_id)
        raise
    except Exception as exc:
        _close_run(workbench, run_id, recorder, RunStatus.failed, error=str(exc) or type(exc).__name__, lease=lease)
        raise
    finished = result.cur_nimg >= round(config.total_kimg * 1000)
    _close_run(workbench, run_id, recorder, RunStatus.finished if finished else RunStatus.stopped,
               error=None, result=result, lease=lease)
    return run_id


def run_status(*, session: Session) -> list[RunSummary]:
    """Every run, newest first, with its checkpoint count and latest checkpoint. A run marked
    running whose lease has expired (its process is gone) is reported as interrupted."""
    counts = (select(Checkpoint.run_id, func.count().label("n"), func.max(Checkpoint.id).label("latest"))
              .group_by(Checkpoint.run_id).subquery())
    rows = session.execute(
        select(TrainingRun.id, TrainingRun.name, TrainingRun.status, TrainingRun.kimg, TrainingRun.total_kimg,
               TrainingRun.augment_p, counts.c.n, counts.c.latest, TrainingRun.last_metrics, TrainingRun.error,
               TrainingRun.run_dir, TrainingRun.updated_at, TrainingRun.lease_pid, TrainingRun.lease_host,
               TrainingRun.heartbeat_at, TrainingRun.dataset_path, TrainingRun.config, TrainingRun.network,
               TrainingRun.stop_requested_at)
        .outerjoin(counts, counts.c.run_id == TrainingRun.id)
        .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
    )
    return [
        RunSummary(id=run_id, name=name, kimg=kimg, total_kimg=total_kimg, augment_p=augment_p,
                   status=(RunStatus.interrupted if status == RunStatus.running
                           and not lease_is_live(pid, host, heartbeat) else status),
                   checkpoints=n or 0, latest_checkpoint_id=latest, last_metrics=dict(last_metrics or {}),
                   error=error, run_dir=run_dir, updated_at=updated_at, dataset_path=dataset_path,
                   config=dict(config or {}), network=network,
                   stop_requested=stop_at is not None and status == RunStatus.running)
        for (run_id, name, status, kimg, total_kimg, augment_p, n, latest, last_metrics, error, run_dir,
             updated_at, pid, host, heartbeat, dataset_path, config, network, stop_at) in rows
    ]


def request_stop(name: str, *, session: Session) -> int:
    """Ask the process training the run called `name` to stop at its next step; returns its id.
    NotFound for no such run, ConfigError when it is not running (or its process is gone)."""
    run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
    if run is None:
        raise NotFound(f"no training run named {name!r}", hint="`likeness train status` lists the runs")
    if run.status != RunStatus.running or not lease_is_live(run.lease_pid, run.lease_host, run.heartbeat_at):
        shown = run.status if run.status != RunStatus.running else RunStatus.interrupted
        raise ConfigError(f"training run {name!r} is not running ({shown}): there is nothing to stop",
                          hint="continue it with `likeness train run ... --resume auto` or the Resume button")
    if run.stop_requested_at is None:
        run.stop_requested_at = utcnow()
    return run.id


def find_run_id(name: str, *, session: Session) -> int | None:
    """The id of the run called `name`, or None."""
    return session.scalar(select(TrainingRun.id).where(TrainingRun.name == name))


def list_checkpoints(*, session: Session, run_name: str | None = None) -> list[CheckpointSummary]:
    """Checkpoints of one run (or of all), oldest first."""
    query = (select(Checkpoint.id, TrainingRun.name, Checkpoint.kimg, Checkpoint.tainted,
                    Checkpoint.file_sha256, Checkpoint.grid_sha256, Checkpoint.metrics)
             .join(TrainingRun, Checkpoint.run_id == TrainingRun.id)
             .order_by(TrainingRun.id, Checkpoint.kimg))
    if run_name is not None:
        if find_run_id(run_name, session=session) is None:
            raise NotFound(f"no training run named {run_name!r}", hint="`likeness train status` lists the runs")
        query = query.where(TrainingRun.name == run_name)
    rows = session.execute(query).all()
    aliases: dict[int, list[str]] = {}
    alias_query = select(CheckpointAlias.checkpoint_id, CheckpointAlias.name).order_by(CheckpointAlias.name)
    if run_name is not None:
        alias_query = alias_query.where(CheckpointAlias.checkpoint_id.in_([row[0] for row in rows]))
    for checkpoint_id, alias in session.execute(alias_query):
        aliases.setdefault(checkpoint_id, []).append(alias)
    return [
        CheckpointSummary(id=checkpoint_id, run_name=run, kimg=kimg, aliases=tuple(aliases.get(checkpoint_id, ())),
                          tainted=tainted, file_sha256=file_sha256, grid_sha256=grid_sha256,
                          metrics=dict(metrics or {}))
        for checkpoint_id, run, kimg, tainted, file_sha256, grid_sha256, metrics in rows
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

@dataclasses.dataclass(frozen=True)
class _DataSource:
    snapshot_id: int | None
    external: bool

    def check(self, session: Session, run: TrainingRun | None, data: str) -> None:
        """Consent before any step: the run's snapshot (the one it was started on, for a resume)
        must still be covered today; data without a snapshot must be declared external."""
        recorded = None if run is None else run.snapshot_id
        if run is not None and self.snapshot_id is not None and recorded != self.snapshot_id:
            raise ConfigError(f"training run {run.name!r} trains on "
                              f"{'dataset snapshot #' + str(recorded) if recorded else 'external data'}, "
                              f"not on snapshot #{self.snapshot_id}", hint="choose another --name for a new run")
        snapshot_id = recorded if recorded is not None else self.snapshot_id
        if snapshot_id is not None:
            require_consent(session, snapshot_id, today=dt.date.today())
        elif not self.external and not (run is not None and run.external):
            raise ConsentViolation(f"{data}: a folder of images has no consent lineage",
                                   hint="train on a dataset snapshot (`likeness train run --dataset ID`), "
                                        "or pass --external for data from outside the studio")


def _open_run(workbench: Workbench, config: TrainConfig, *, name: str, resume: Resume,
              lease: _Lease, source: _DataSource) -> tuple[int, Resume]:
    """Take the run's lease and open its row; returns the row id and what to resume from: a run
    that did not finish (killed, stopped or failed) continues from its latest snapshot without
    being asked to. ConfigError when another live process holds the run; ConsentViolation when
    its data may not be trained on (see `_DataSource.check`)."""
    for _attempt in range(5):
        with workbench.db.unit_of_work() as session:
            run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
            source.check(session, run, config.data)
            if run is None:
                pass
            elif lease_is_live(run.lease_pid, run.lease_host, run.heartbeat_at):
                raise ConfigError(
                    f"training run {name!r} is running (#{run.id}, process {run.lease_pid} on {run.lease_host}, "
                    f"heartbeat {_when(run.heartbeat_at)}); two processes cannot train one run",
                    hint="wait for it to end, stop it, or choose another --name; a lease whose process is gone "
                         f"or whose heartbeat is older than {LEASE_TIMEOUT_S // 60} minutes is taken over")
            elif resume is None and run.status == RunStatus.finished:
                raise ConfigError(f"training run {name!r} already exists (#{run.id}, {run.status})",
                                  hint="continue it with --resume auto, or choose another --name")
            elif Path(run.run_dir) != Path(config.out_dir):
                raise ConfigError(f"training run {name!r} lives in {run.run_dir}, not in {config.out_dir}",
                                  hint=f"resume it with --out {run.run_dir}")
            else:
                run_id, held_by = run.id, (run.lease_pid, run.lease_host)
                was = run.status
        if run is None:
            try:
                with workbench.db.unit_of_work() as session:
                    row = TrainingRun(name=name, dataset_path=config.data, run_dir=config.out_dir,
                                      total_kimg=config.total_kimg, started_at=utcnow(), status=RunStatus.running,
                                      config=config.to_dict(), snapshot_id=source.snapshot_id,
                                      external=source.snapshot_id is None, **lease.columns())
                    session.add(row)
                    session.flush()
                    return row.id, resume
            except IntegrityError:
                continue  # another process created it first: look again
        with workbench.db.unit_of_work() as session:
            taken = _rowcount(session.execute(
                update(TrainingRun)
                .where(TrainingRun.id == run_id, TrainingRun.lease_pid.is_not_distinct_from(held_by[0]),
                       TrainingRun.lease_host.is_not_distinct_from(held_by[1]))
                .values(**lease.columns())
                .execution_options(synchronize_session=False)))
            if taken != 1:
                continue  # another process took the lease meanwhile: look again
            row = session.get_one(TrainingRun, run_id)
            if was == RunStatus.running:
                log.warning("run %s was interrupted (process %s on %s is gone); continuing it",
                            name, held_by[0], held_by[1])
            if resume is None:
                log.warning("run %s ended %s; continuing from its latest snapshot", name,
                            RunStatus.interrupted if was == RunStatus.running else was)
                resume = "auto"
            row.status = RunStatus.running
            row.config = config.to_dict()
            row.dataset_path = config.data
            row.total_kimg = config.total_kimg
            row.error = None
            row.finished_at = None
            row.stop_requested_at = None
            return row.id, resume
    raise ConfigError(f"training run {name!r} is being started by another process", hint="try again")


def _record_parent(workbench: Workbench, run_id: int, snapshot: Path) -> None:
    """A run resumed (or fine-tuned) from a recorded checkpoint of another run keeps it as its
    parent; the snapshot file is known by its content. The first parent stays."""
    try:
        sha256 = sha256_file(snapshot)
    except OSError:
        return  # the training loop reports the unreadable file
    with workbench.db.unit_of_work() as session:
        found = session.execute(select(Checkpoint.id, Checkpoint.run_id)
                                .where(Checkpoint.file_sha256 == sha256).order_by(Checkpoint.id)).all()
        if not found or any(owner == run_id for _, owner in found):
            return  # an outside file, or one of the run's own snapshots
        run = session.get_one(TrainingRun, run_id)
        if run.parent_checkpoint_id is None:
            run.parent_checkpoint_id = found[0].id


# ---- Stopping: a request on the row, or SIGTERM. ------------------------------------------------

class _StopRequest:
    """Whether this run is asked to stop: SIGTERM received, or `stop_requested_at` set on its row."""

    def __init__(self, workbench: Workbench, run_id: int) -> None:
        self.workbench = workbench
        self.run_id = run_id
        self.signalled = False
        self.requested = False
        self.last_read = -float("inf")

    def asked(self) -> bool:
        if not (self.signalled or self.requested) and time.monotonic() - self.last_read >= STOP_POLL_S:
            self.last_read = time.monotonic()
            with self.workbench.db.unit_of_work() as session:
                self.requested = session.scalar(
                    select(TrainingRun.stop_requested_at).where(TrainingRun.id == self.run_id)) is not None
            if self.requested:
                log.info("training run #%d: stop requested; stopping after this step's snapshot", self.run_id)
        return self.signalled or self.requested

    @contextlib.contextmanager
    def on_sigterm(self) -> Iterator[None]:
        """SIGTERM asks for a stop while training (only the main thread can take signals)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, _frame: object) -> None:
            log.warning("training run #%d: %s received; stopping after this step's snapshot", self.run_id,
                        signal.Signals(signum).name)
            self.signalled = True

        previous = signal.signal(signal.SIGTERM, handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


# ---- The lease: which process trains a run. ----------------------------------------------------

class _Lease:
    """This process's claim on a run: pid, host and heartbeat on the run's row."""

    def __init__(self, workbench: Workbench) -> None:
        self.workbench = workbench
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.last_beat = time.monotonic()

    def columns(self) -> dict[str, Any]:
        self.last_beat = time.monotonic()
        return {"lease_pid": self.pid, "lease_host": self.host, "heartbeat_at": utcnow()}

    def held(self) -> Any:
        return (TrainingRun.lease_pid == self.pid) & (TrainingRun.lease_host == self.host)

    def beat(self, run_id: int, *, every_s: float = 0.0, session: Session | None = None) -> None:
        """Refresh the heartbeat (at most every `every_s`); LeaseLost when another process holds the run."""
        if time.monotonic() - self.last_beat < every_s:
            return
        if session is None:
            with self.workbench.db.unit_of_work() as own:
                return self.beat(run_id, session=own)
        self.last_beat = time.monotonic()
        done = session.execute(update(TrainingRun).where(TrainingRun.id == run_id, self.held())
                               .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False))
        if _rowcount(done) != 1:
            raise LeaseLost(f"training run #{run_id} is now trained by another process (its lease had expired)")


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


def lease_is_live(pid: int | None, host: str | None, heartbeat: dt.datetime | None, *,
                  now: dt.datetime | None = None) -> bool:
    """Whether a lease still holds: its heartbeat is recent and, on this host, its process lives."""
    if pid is None or host is None or heartbeat is None:
        return False
    if heartbeat.tzinfo is None:
        heartbeat = heartbeat.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC
    if ((now or utcnow()) - heartbeat).total_seconds() > LEASE_TIMEOUT_S:
        return False
    return host != socket.gethostname() or _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:  # a killed child nobody has reaped yet still answers signals
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _when(moment: dt.datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _remove_stale_temp_files(run_dir: Path) -> None:
    """Delete the `.tmp` files a killed write left in the run folder (only its lease holder may)."""
    for path in stale_temp_files(run_dir):
        try:
            path.unlink()
        except OSError as exc:
            log.warning("cannot remove stale temporary file %s: %s", path, exc)
        else:
            log.info("removed stale temporary file %s", path)


def _record_tick(workbench: Workbench, run_id: int, run_dir: Path, report: TrainProgress, lease: _Lease,
                 where: dict[str, str]) -> None:
    """Record a tick's or a live report's progress on the row (with the host and device, so
    estimates can find the speed of this machine)."""
    with workbench.db.unit_of_work() as session:
        lease.beat(run_id, session=session)
        run = session.get_one(TrainingRun, run_id)
        run.kimg = report.kimg
        run.augment_p = report.augment_p
        run.last_metrics = {"tick": report.tick, "losses": report.losses, "sec_per_kimg": report.sec_per_kimg,
                            "img_per_s": report.img_per_s, "eta_s": report.eta_s, "live": report.live, **where}
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
               error: str | None, lease: _Lease, result: TrainResult | None = None) -> None:
    """Record what the loop left behind and the outcome, and release the lease; never hides the
    error that ended the run."""
    try:
        lease.beat(run_id)
        recorder.record_new()
        with workbench.db.unit_of_work() as session:
            lease.beat(run_id, session=session)
            run = session.get_one(TrainingRun, run_id)
            run.status = status
            run.lease_pid = run.lease_host = run.heartbeat_at = run.stop_requested_at = None
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
            grid = self.run_dir / f"fakes{snapshot.stem.rsplit('-', 1)[-1]}.png"  # fakes000000.004.png
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
